//! Better Auth's own sessions, resolved by sessiond (docs/better-auth.md):
//! with the `better-auth` source preset and a `[better_auth]` section,
//! `GET /api/better-auth/get-session` reads Better Auth's signed session
//! cookie (or its bearer token), finds the session among the rows the
//! user's actor holds beside the user's record, and answers Better Auth's
//! `getSession` body, refreshing the session as Better Auth does.
//!
//! - here: the configuration (`[better_auth]` and its flags);
//! - `cookie`: the signed cookie and bearer token, as Better Auth and
//!   `better-call` make them;
//! - `sql`: the statements made from the schema (the rows read with the
//!   user, the refresh, the session table's capture triggers);
//! - `resolve`: the use case, credential to answer.

mod cookie;
mod resolve;
mod sql;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::config::Secret;

pub use cookie::{credential, sign, signed_value, Credential, Refused};
pub use resolve::{Answer, BaError, BetterAuthSessions};
pub(crate) use sql::{
    check_installed, check_session_table, install_sql as session_install_sql, Statements,
    SESSION_CAPTURE_FUNCTION,
};

/// Better Auth's default `session.expiresIn`: 7 days.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(7 * 24 * 3600);
/// Better Auth's default `session.updateAge`: 1 day.
pub const DEFAULT_UPDATE_AGE: Duration = Duration::from_secs(24 * 3600);
/// Better Auth's default cookie prefix.
pub const DEFAULT_COOKIE_PREFIX: &str = "better-auth";
/// The fewest bytes of a secret accepted (Better Auth asks for 32).
pub const MIN_SECRET: usize = 32;
/// The session rows kept in memory per user by default.
pub const DEFAULT_MAX_SESSIONS_PER_USER: usize = 64;

/// The `[better_auth]` flags; each overrides the same key of the file's
/// section. Any of them (or the section) turns the route on.
#[derive(Debug, Clone, Default, Args)]
pub struct BetterAuthArgs {
    /// Serve Better Auth's sessions at `GET /api/better-auth/get-session`
    /// (needs `--source-preset better-auth` and the app's secret;
    /// docs/better-auth.md). Implied by a `[better_auth]` section.
    #[arg(long = "better-auth", env = "SESSIOND_BETTER_AUTH")]
    pub enabled: bool,
    /// A file holding the app's Better Auth secret (its `BETTER_AUTH_SECRET`).
    /// Else SESSIOND_BETTER_AUTH_SECRET, else BETTER_AUTH_SECRET.
    #[arg(long, env = "SESSIOND_BETTER_AUTH_SECRET_FILE", value_name = "FILE")]
    pub better_auth_secret_file: Option<PathBuf>,
    /// The app's Better Auth secret itself (prefer the file). Else
    /// BETTER_AUTH_SECRET when this section is on.
    #[arg(long, env = "SESSIOND_BETTER_AUTH_SECRET", hide_env_values = true)]
    pub better_auth_secret: Option<String>,
    /// The cookie prefix (Better Auth's `advanced.cookiePrefix`; default
    /// `better-auth`).
    #[arg(long, env = "SESSIOND_BETTER_AUTH_COOKIE_PREFIX")]
    pub better_auth_cookie_prefix: Option<String>,
    /// Better Auth's session table (default `session`, in the user table's
    /// schema).
    #[arg(long, env = "SESSIOND_BETTER_AUTH_SESSION_TABLE")]
    pub better_auth_session_table: Option<String>,
    /// Better Auth's `session.expiresIn` (default 7d).
    #[arg(long, env = "SESSIOND_BETTER_AUTH_EXPIRES_IN", value_parser = sessiond_actors::duration::parse)]
    pub better_auth_expires_in: Option<Duration>,
    /// Better Auth's `session.updateAge` (default 1d).
    #[arg(long, env = "SESSIOND_BETTER_AUTH_UPDATE_AGE", value_parser = sessiond_actors::duration::parse)]
    pub better_auth_update_age: Option<Duration>,
    /// Refuse bearer tokens without their signature (the bearer plugin's
    /// `requireSignature`; default off, as the plugin).
    #[arg(long, env = "SESSIOND_BETTER_AUTH_REQUIRE_SIGNATURE")]
    pub better_auth_require_signature: Option<bool>,
}

/// The `[better_auth]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Section {
    secret_file: Option<PathBuf>,
    cookie_prefix: Option<String>,
    session_table: Option<String>,
    expires_in: Option<String>,
    update_age: Option<String>,
    require_signature: Option<bool>,
    max_sessions_per_user: Option<usize>,
}

/// Better Auth's sessions, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BetterAuth {
    /// The app's secret; `None` when none was given (refused at start,
    /// enough for `source install`).
    pub secret: Option<Secret>,
    pub cookie_prefix: String,
    /// The session table's schema (the user table's).
    pub schema: String,
    pub session_table: String,
    pub expires_in: Duration,
    pub update_age: Duration,
    pub require_signature: bool,
    /// The session rows kept in memory per user (the newest).
    pub max_sessions_per_user: usize,
}

impl BetterAuth {
    /// `"schema"."session"`.
    pub fn qualified_session_table(&self) -> String {
        format!(
            "{}.{}",
            crate::source::ident(&self.schema),
            crate::source::ident(&self.session_table)
        )
    }

    /// The secret, or why the route cannot be served.
    pub fn secret(&self) -> anyhow::Result<&Secret> {
        let Some(s) = &self.secret else {
            anyhow::bail!(
                "[better_auth] needs the app's Better Auth secret: secret_file (or \
                 --better-auth-secret-file), else SESSIOND_BETTER_AUTH_SECRET or BETTER_AUTH_SECRET"
            );
        };
        if s.expose().len() < MIN_SECRET {
            anyhow::bail!(
                "the Better Auth secret is {} bytes; at least {MIN_SECRET} are needed (Better \
                 Auth's own rule)",
                s.expose().len()
            );
        }
        Ok(s)
    }
}

fn duration(
    key: &str,
    flag: Option<Duration>,
    file: Option<String>,
) -> anyhow::Result<Option<Duration>> {
    if flag.is_some() {
        return Ok(flag);
    }
    match file {
        None => Ok(None),
        Some(s) => sessiond_actors::duration::parse(&s)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("[better_auth] {key} = {s:?}: {e}")),
    }
}

fn read_secret_file(path: &Path) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the Better Auth secret file {}: {e}",
            path.display()
        )
    })?;
    Ok(Secret::from(
        text.trim_end_matches(['\r', '\n']).to_string(),
    ))
}

impl BetterAuthArgs {
    /// The configuration, when the section or a flag turns it on. `schema`
    /// is the user table's.
    pub(crate) fn resolve(
        &self,
        section: Option<Section>,
        schema: &str,
    ) -> anyhow::Result<Option<BetterAuth>> {
        let env_secret = self.better_auth_secret.clone().filter(|s| !s.is_empty());
        let on = section.is_some()
            || self.enabled
            || self.better_auth_secret_file.is_some()
            || env_secret.is_some()
            || self.better_auth_cookie_prefix.is_some()
            || self.better_auth_session_table.is_some()
            || self.better_auth_expires_in.is_some()
            || self.better_auth_update_age.is_some()
            || self.better_auth_require_signature.is_some();
        if !on {
            return Ok(None);
        }
        let s = section.unwrap_or_default();
        let secret = match (&self.better_auth_secret_file, &s.secret_file) {
            (Some(p), _) | (None, Some(p)) => Some(read_secret_file(p)?),
            (None, None) => env_secret
                .or_else(|| {
                    std::env::var("BETTER_AUTH_SECRET")
                        .ok()
                        .filter(|s| !s.is_empty())
                })
                .map(Secret::from),
        };
        let ba = BetterAuth {
            secret,
            cookie_prefix: self
                .better_auth_cookie_prefix
                .clone()
                .or(s.cookie_prefix)
                .unwrap_or_else(|| DEFAULT_COOKIE_PREFIX.into()),
            schema: schema.to_string(),
            session_table: self
                .better_auth_session_table
                .clone()
                .or(s.session_table)
                .unwrap_or_else(|| "session".into()),
            expires_in: duration("expires_in", self.better_auth_expires_in, s.expires_in)?
                .unwrap_or(DEFAULT_EXPIRES_IN),
            update_age: duration("update_age", self.better_auth_update_age, s.update_age)?
                .unwrap_or(DEFAULT_UPDATE_AGE),
            require_signature: self
                .better_auth_require_signature
                .or(s.require_signature)
                .unwrap_or(false),
            max_sessions_per_user: s
                .max_sessions_per_user
                .unwrap_or(DEFAULT_MAX_SESSIONS_PER_USER),
        };
        if ba.cookie_prefix.is_empty()
            || !ba
                .cookie_prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        {
            anyhow::bail!(
                "[better_auth] cookie_prefix {:?} cannot start a cookie name",
                ba.cookie_prefix
            );
        }
        if ba.session_table.trim().is_empty() {
            anyhow::bail!("[better_auth] session_table is empty");
        }
        if ba.expires_in.is_zero() || ba.expires_in.as_secs() > 400 * 24 * 3600 {
            anyhow::bail!(
                "[better_auth] expires_in must be more than 0 and at most 400 days (a cookie's \
                 longest Max-Age)"
            );
        }
        if ba.update_age > ba.expires_in {
            anyhow::bail!("[better_auth] update_age is longer than expires_in");
        }
        if ba.max_sessions_per_user == 0 {
            anyhow::bail!("[better_auth] max_sessions_per_user must be at least 1");
        }
        Ok(Some(ba))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_asked_and_defaults() {
        let a = BetterAuthArgs::default();
        assert!(matches!(a.resolve(None, "public"), Ok(None)));
        let Ok(Some(ba)) = a.resolve(Some(Section::default()), "app") else {
            panic!("on with a section");
        };
        assert_eq!(ba.cookie_prefix, "better-auth");
        assert_eq!(ba.qualified_session_table(), "\"app\".\"session\"");
        assert_eq!(ba.expires_in, DEFAULT_EXPIRES_IN);
        assert_eq!(ba.update_age, DEFAULT_UPDATE_AGE);
        assert!(!ba.require_signature);
        let short = BetterAuth {
            secret: Some(Secret::from("short")),
            ..ba.clone()
        };
        let e = short
            .secret()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("at least 32"), "{e}");
        assert!(format!("{short:?}").contains("redacted"));
        assert!(!format!("{short:?}").contains("short\""));
    }
}
