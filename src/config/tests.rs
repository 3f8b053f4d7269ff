//! The flags' defaults are the settings' defaults.

use clap::{CommandFactory, FromArgMatches};

use super::*;

/// The flags left out give the settings [`Settings::default`] holds:
/// one set of defaults. (The environment is not read: the variables of
/// whoever runs the test are no defaults.)
#[test]
fn serve_without_flags_is_the_default_settings() {
    let matches = Cli::command()
        .mut_subcommand("serve", |c| c.mut_args(|a| a.env(None)))
        .try_get_matches_from(["sessiond", "serve"])
        .expect("`sessiond serve` parses");
    let Ok(Cli {
        command: Command::Serve(args),
    }) = Cli::from_arg_matches(&matches)
    else {
        panic!("`sessiond serve` is the serve command");
    };
    let mut parsed = Settings::from_args(args);
    let default = Settings::default();
    // Not a flag: read from the environment alone.
    parsed.admin_password = default.admin_password.clone();
    assert_eq!(format!("{parsed:?}"), format!("{default:?}"));
}
