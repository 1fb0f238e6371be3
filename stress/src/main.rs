use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = stress::Cli::parse();
    let report = stress::run_watching(&cli.config, cli.watch).await?;
    println!("{report}");
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
