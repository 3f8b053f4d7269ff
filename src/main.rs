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
                // hyper warns once per shed slow client: a slowloris
                // attack would otherwise flood the log.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hyper=error")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(Settings::from_args(args)).await,
        Command::Keys { command } => sessiond::keys::run(command).await,
        Command::User {
            command: UserCommand::Add(args),
        } => app::add_user(args).await,
        // Waiting for the simulator's process blocks: off the runtime.
        #[cfg(feature = "simulate")]
        Command::Simulate(args) => {
            return tokio::task::spawn_blocking(move || simulate::run(args.args))
                .await
                .unwrap_or(ExitCode::FAILURE)
        }
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

/// `sessiond simulate`: the `sessiond-sim` executable, run with the same
/// arguments. See the `simulate` feature in Cargo.toml for why it is a
/// process of its own.
#[cfg(feature = "simulate")]
mod simulate {
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::process::{Command, ExitCode};

    const SIM: &str = "sessiond-sim";

    /// Runs the simulator with `args` and answers its exit code.
    pub fn run(args: Vec<OsString>) -> ExitCode {
        let Some(sim) = find() else {
            eprintln!(
                "sessiond: `simulate` runs the {SIM} executable, which is neither beside \
                 this one nor on PATH; `cargo build --release` at the workspace root builds \
                 both (or `cargo build --release -p sessiond-sim`)"
            );
            return ExitCode::FAILURE;
        };
        let mut cmd = Command::new(&sim);
        cmd.args(args);
        // The simulator's help and messages then name the command the user typed.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::arg0(&mut cmd, "sessiond simulate");
        match cmd.status() {
            Ok(status) => exit_code(status),
            Err(e) => {
                eprintln!("sessiond: cannot run {}: {e}", sim.display());
                ExitCode::FAILURE
            }
        }
    }

    /// Beside the current executable (as cargo builds them), else on PATH.
    fn find() -> Option<PathBuf> {
        let name = format!("{SIM}{}", std::env::consts::EXE_SUFFIX);
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join(&name)));
        let on_path: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(&name)).collect())
            .unwrap_or_default();
        beside.into_iter().chain(on_path).find(|p| p.is_file())
    }

    /// The child's exit code; a child killed by a signal answers as a
    /// shell reports it (128 + the signal).
    fn exit_code(status: std::process::ExitStatus) -> ExitCode {
        if let Some(code) = status.code() {
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        #[cfg(unix)]
        if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
            return ExitCode::from(u8::try_from(128 + signal).unwrap_or(1));
        }
        ExitCode::FAILURE
    }
}
