//! `sessiond-sim`: the simulator's executable. `sessiond simulate ARGS…`
//! runs it with the same arguments, so its flags, help, output and exit
//! code are those of `sessiond simulate` (README "Simulation").

use std::process::ExitCode;

use clap::Parser;

use sessiond_sim::SimArgs;

/// Predict hit rate, database load and stale-role windows in virtual time,
/// with the real session actors.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match sessiond_sim::run(cli.args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessiond simulate: {e}");
            ExitCode::FAILURE
        }
    }
}
