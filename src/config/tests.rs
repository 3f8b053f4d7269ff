//! The flags' defaults are the settings' defaults; the settings show no secret.

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

/// Printing the settings prints none of the secrets they hold.
#[test]
fn settings_show_no_secret() {
    let settings = Settings {
        jwt_secret: Some("jwt-secret-that-must-not-show-0123456789".into()),
        admin_password: Some("admin-password-that-must-not-show".into()),
        cluster: Some(ClusterArgs {
            listen: "127.0.0.1:0".into(),
            join: vec![],
            cookie: "cluster-cookie-that-must-not-show-0123".into(),
            tls: None,
            insecure: false,
        }),
        ..Settings::default()
    };
    let shown = format!("{settings:?}");
    assert!(!shown.contains("must-not-show"), "{shown}");
    assert!(shown.contains("<redacted>"));
}
