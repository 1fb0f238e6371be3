//! `flashsale-api [serve]` runs the HTTP API; `flashsale-api seed-admin`
//! creates the first admin. Settings: `flashsale-api --help`.

use std::process::ExitCode;

use api::config::{Cli, Command};
use api::seed_admin::{seed_admin, Seeded};
use api::{telemetry, Application};
use clap::Parser;

// glibc's malloc was a fifth of the API's CPU per buy (perf); the API
// allocates many small, short-lived buffers per request, mimalloc's case.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.settings).await,
        Command::SeedAdmin(args) => match seed_admin(&cli.settings, &args).await {
            Ok(Seeded::Created(email)) => {
                println!("admin {email} created");
                ExitCode::SUCCESS
            }
            Ok(Seeded::AlreadyExists(email)) => {
                println!("admin {email} exists already; unchanged");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("seed-admin: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(settings: api::Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        port = app.port(),
        metrics_port = app.metrics_port(),
        "listening"
    );
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
