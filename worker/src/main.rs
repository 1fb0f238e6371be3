use clap::Parser;
use worker::config::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    worker::telemetry::init(&cli.config.log_format);
    match cli.command {
        Some(Command::Reconcile) => {
            let report = worker::reconcile_once(&cli.config).await?;
            println!("{report}");
            Ok(())
        }
        None => {
            worker::Worker::build(cli.config)
                .await?
                .run_until_stopped()
                .await
        }
    }
}
