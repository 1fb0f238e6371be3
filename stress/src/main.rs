use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = stress::Cli::parse();
    let report = stress::run_loaded(&cli.config, cli.watch, cli.requests_in_flight).await?;
    println!("{report}");
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
