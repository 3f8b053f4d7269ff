use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use sessiond::app::{self, Application};
use sessiond::config::{Cli, Command, Settings, UserCommand};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(Settings::from_args(args)).await,
        Command::User {
            command: UserCommand::Add(args),
        } => app::add_user(args).await,
        Command::Simulate(args) => simulate(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessiond: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    app.print_welcome();
    app.run_until_stopped(app::shutdown_signal()).await
}

/// The simulation runs its own paused-time runtime, on a thread of its own.
async fn simulate(args: sessiond_sim::SimArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || sessiond_sim::run(args)).await??;
    Ok(())
}
