//! Load straight on the engine (a server or a Redis Cluster): see
//! `stress::engine_load`.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = stress::engine_load::LoadConfig::parse();
    let report = stress::engine_load::run(&config).await?;
    println!("{report}");
    if report.ops() == 0 {
        anyhow::bail!("no command succeeded");
    }
    Ok(())
}
