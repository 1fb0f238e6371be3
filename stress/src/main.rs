use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = stress::StressConfig::parse();
    let report = stress::run(&config).await?;
    println!("{report}");
    if !report.passed() {
        std::process::exit(1);
    }
    Ok(())
}
