use std::process::ExitCode;

use clap::Parser;
use serde_json::{Map, Value};

use sessiond::app::{self, Application, FirstAdmin};
use sessiond::config::{Cli, Command, Settings, UserCommand};
use sessiond::logging::{self, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => LogFormat::Text,
    };
    logging::init(format);
    let result = match cli.command {
        Command::Serve(args) => serve(Settings::from_args(args), format).await,
        Command::Keys { command } => sessiond::keys::run(command).await,
        Command::Appkey { command } => sessiond::appkeys::run(command).await,
        Command::User {
            command: UserCommand::Add(args),
        } => app::add_user(args).await,
        Command::Source { command } => app::source_command(command).await,
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
            match format {
                LogFormat::Text => eprintln!("sessiond: {e:#}"),
                LogFormat::Json => eprintln!(
                    "{}",
                    logging::json_line("ERROR", "sessiond", &format!("{e:#}"), Map::new())
                ),
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, format: LogFormat) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    match format {
        LogFormat::Text => app.print_welcome(),
        // A log pipeline reads stdout too: the welcome is one JSON line,
        // written whole and errors ignored (a closed stdout must not take
        // the service down).
        LogFormat::Json => {
            let line = welcome_json(&app) + "\n";
            let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
        }
    }
    // A second SIGTERM or Ctrl-C ends the drain at once (the second
    // future is first polled after the first signal).
    app.run_until(app::shutdown_signal(), app::shutdown_signal())
        .await
}

/// The welcome as one JSON line: where the service listens and, when this
/// start created the first administrator, who (and the file holding a
/// generated password, never the password).
fn welcome_json(app: &Application) -> String {
    let mut fields = Map::new();
    fields.insert(
        "listen".into(),
        Value::from(format!("http://{}", app.addr())),
    );
    if let Some(FirstAdmin {
        email,
        password_file,
    }) = app.first_admin()
    {
        fields.insert("first_admin".into(), Value::from(email.as_str()));
        if let Some(path) = password_file {
            fields.insert(
                "first_admin_password_file".into(),
                Value::from(path.display().to_string()),
            );
        }
    }
    logging::json_line("INFO", "sessiond", "sessiond listening", fields)
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
    pub(super) fn run(args: Vec<OsString>) -> ExitCode {
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
