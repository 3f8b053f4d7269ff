//! Where users live: sessiond's own `users` table (the default), or the
//! application's own user table (`[source] kind = "app"`), read in place
//! and watched by triggers that `sessiond source install` adds
//! (docs/adopting.md).
//!
//! Here the configuration: the `[source]` section of the file named by
//! `--config` (or `SESSIOND_CONFIG`), its presets, and the flags that
//! override it. The SQL made from it is in `sql`; the checks made before
//! a node serves are in `check`. `sessiond source install|uninstall`
//! runs the SQL (the application's commands).

pub mod better_auth;
mod check;
mod sql;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Deserialize;

pub use check::check_schema;
pub use sql::uninstall_sql;
pub(crate) use sql::{ident, Queries};

use better_auth::{BetterAuth, BetterAuthArgs};

/// Everything a node checks of an app source before it serves: the
/// table, columns, id type and expressions, and the installed triggers.
pub(crate) async fn check_before_serving(
    app: &AppSource,
    pool: &sqlx::PgPool,
) -> anyhow::Result<()> {
    check::check_schema(app, pool).await?;
    check::check_installed(app, pool).await?;
    if let Some(ba) = &app.better_auth {
        ba.secret()?;
        better_auth::check_session_table(ba, pool).await?;
        better_auth::check_installed(ba, pool).await?;
    }
    Ok(())
}

/// The source flags; each overrides the same key of the file's
/// `[source]` section.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// A configuration file (TOML) whose `[source]` section says where
    /// users live (docs/adopting.md). Default: none (sessiond's own users).
    #[arg(long, env = "SESSIOND_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where users live: `sessiond` (its own table) or `app` (the
    /// application's table; implied by a preset).
    #[arg(long = "source", env = "SESSIOND_SOURCE", value_enum)]
    pub source_kind: Option<Kind>,
    /// The application's schema: `authjs` (the Auth.js SQL adapter's
    /// `users` table with a `role` column), `better-auth` (Better Auth's
    /// `user` table with its admin plugin), `custom`.
    #[arg(long, env = "SESSIOND_SOURCE_PRESET", value_enum)]
    pub source_preset: Option<Preset>,
    /// The schema the application's user table is in (default `public`).
    #[arg(long, env = "SESSIOND_SOURCE_SCHEMA")]
    pub source_schema: Option<String>,
    /// The application's user table.
    #[arg(long, env = "SESSIOND_SOURCE_TABLE")]
    pub source_table: Option<String>,
    /// The user table's id column (tokens name users by it).
    #[arg(long, env = "SESSIOND_SOURCE_ID_COLUMN")]
    pub source_id_column: Option<String>,
    /// The id column's SQL type (`integer`, `bigint`, `text`, `uuid`).
    #[arg(long, env = "SESSIOND_SOURCE_ID_TYPE")]
    pub source_id_type: Option<String>,
    /// The column holding the user's email.
    #[arg(long, env = "SESSIOND_SOURCE_EMAIL_COLUMN")]
    pub source_email_column: Option<String>,
    /// The column holding the user's role.
    #[arg(
        long,
        env = "SESSIOND_SOURCE_ROLE_COLUMN",
        conflicts_with = "source_role_sql"
    )]
    pub source_role_column: Option<String>,
    /// A SQL expression over the user's row giving the role.
    #[arg(long, env = "SESSIOND_SOURCE_ROLE_SQL")]
    pub source_role_sql: Option<String>,
    /// The column holding the status (`active` or `deactivated`).
    #[arg(
        long,
        env = "SESSIOND_SOURCE_STATUS_COLUMN",
        conflicts_with = "source_status_sql"
    )]
    pub source_status_column: Option<String>,
    /// A SQL expression over the user's row giving `active` or
    /// `deactivated`.
    #[arg(long, env = "SESSIOND_SOURCE_STATUS_SQL")]
    pub source_status_sql: Option<String>,
    /// A SQL expression over the user's row giving the instant (a
    /// timestamp) at which its role or status changes by itself, with no
    /// write (a ban's end), or NULL: a node serves a cached record no
    /// later than that. `none` for a table with nothing time-based.
    #[arg(long, env = "SESSIOND_SOURCE_CHANGES_AT_SQL")]
    pub source_changes_at_sql: Option<String>,
    /// Better Auth's own sessions (`[better_auth]`; docs/better-auth.md).
    #[command(flatten)]
    pub better_auth: BetterAuthArgs,
}

/// Where users live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// sessiond's own `users` table; password login.
    Sessiond,
    /// The application's own user table.
    App,
}

/// A known application schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The Auth.js SQL adapter's `users` table (`@auth/pg-adapter`), with
    /// a `role` column added.
    Authjs,
    /// Better Auth's `user` table with its admin plugin (`role`, `banned`,
    /// `banExpires`).
    BetterAuth,
    /// Every key given.
    Custom,
}

/// How a value of the user's record is read from the app's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A column of the table.
    Column(String),
    /// A SQL expression over the row (its columns unqualified).
    Sql(String),
}

/// The application's user table, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSource {
    pub preset: Preset,
    pub schema: String,
    pub table: String,
    pub id_column: String,
    /// The id column's SQL type, as written in a cast.
    pub id_type: String,
    pub email: Expr,
    pub role: Expr,
    pub status: Expr,
    /// A SQL expression over the row: the instant (timestamp) its role or
    /// status changes by itself, or NULL. `None`: nothing time-based.
    pub changes_at: Option<String>,
    /// Better Auth's sessions served too (`[better_auth]`; only with the
    /// `better-auth` preset).
    pub better_auth: Option<BetterAuth>,
}

/// Where this deployment's users live.
// Made once at start and kept behind the store: its size is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// sessiond's own table (the default).
    #[default]
    Sessiond,
    App(AppSource),
}

impl Source {
    /// Whether `POST /api/auth/login` checks passwords: only where
    /// sessiond holds them (its own users). With the app's table the app
    /// signs people in and mints tokens for them.
    pub fn password_login(&self) -> bool {
        matches!(self, Source::Sessiond)
    }

    pub fn app(&self) -> Option<&AppSource> {
        match self {
            Source::App(a) => Some(a),
            Source::Sessiond => None,
        }
    }
}

/// The `[source]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    kind: Option<Kind>,
    preset: Option<Preset>,
    schema: Option<String>,
    table: Option<String>,
    id_column: Option<String>,
    id_type: Option<String>,
    email_column: Option<String>,
    role_column: Option<String>,
    role_sql: Option<String>,
    status_column: Option<String>,
    status_sql: Option<String>,
    changes_at_sql: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    source: Option<Section>,
    better_auth: Option<better_auth::Section>,
}

impl Section {
    fn read(path: &Path) -> anyhow::Result<(Section, Option<better_auth::Section>)> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!("cannot read the configuration {}: {e}", path.display())
        })?;
        let file: File = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!("the configuration {} is not valid: {e}", path.display())
        })?;
        Ok((file.source.unwrap_or_default(), file.better_auth))
    }

    /// The flags given, over the file's keys.
    fn with_flags(mut self, a: &SourceArgs) -> Section {
        fn over(slot: &mut Option<String>, flag: &Option<String>) {
            if flag.is_some() {
                slot.clone_from(flag);
            }
        }
        self.kind = a.source_kind.or(self.kind);
        self.preset = a.source_preset.or(self.preset);
        over(&mut self.schema, &a.source_schema);
        over(&mut self.table, &a.source_table);
        over(&mut self.id_column, &a.source_id_column);
        over(&mut self.id_type, &a.source_id_type);
        over(&mut self.email_column, &a.source_email_column);
        // A column flag replaces the file's expression and the other way round.
        if a.source_role_column.is_some() || a.source_role_sql.is_some() {
            self.role_column.clone_from(&a.source_role_column);
            self.role_sql.clone_from(&a.source_role_sql);
        }
        if a.source_status_column.is_some() || a.source_status_sql.is_some() {
            self.status_column.clone_from(&a.source_status_column);
            self.status_sql.clone_from(&a.source_status_sql);
        }
        over(&mut self.changes_at_sql, &a.source_changes_at_sql);
        self
    }
}

/// The preset's value for a key the configuration leaves out.
struct Defaults {
    table: &'static str,
    id_type: &'static str,
    role: Expr,
    status: Expr,
    changes_at: Option<&'static str>,
}

fn preset_defaults(p: Preset) -> Option<Defaults> {
    match p {
        Preset::Authjs => Some(Defaults {
            table: "users",
            id_type: "integer",
            role: Expr::Column("role".into()),
            status: Expr::Sql("'active'".into()),
            changes_at: None,
        }),
        Preset::BetterAuth => Some(Defaults {
            table: "user",
            id_type: "text",
            role: Expr::Sql("COALESCE(\"role\", 'user')".into()),
            status: Expr::Sql(BETTER_AUTH_STATUS.into()),
            changes_at: Some(BETTER_AUTH_CHANGES_AT),
        }),
        Preset::Custom => None,
    }
}

/// Better Auth's admin plugin: `banned` with an optional `banExpires`;
/// a ban in force is a deactivated account.
pub const BETTER_AUTH_STATUS: &str = "CASE WHEN \"banned\" IS TRUE AND (\"banExpires\" IS NULL OR \"banExpires\" > now()) THEN 'deactivated' ELSE 'active' END";

/// When a Better Auth ban in force ends by itself: its `banExpires`.
pub const BETTER_AUTH_CHANGES_AT: &str =
    "CASE WHEN \"banned\" IS TRUE AND \"banExpires\" > now() THEN \"banExpires\" END";

fn expr(column: Option<String>, sql: Option<String>, key: &str) -> anyhow::Result<Option<Expr>> {
    match (column, sql) {
        (Some(_), Some(_)) => {
            anyhow::bail!("[source] gives both {key}_column and {key}_sql: give one")
        }
        (Some(c), None) => Ok(Some(Expr::Column(c))),
        (None, Some(s)) => Ok(Some(Expr::Sql(s))),
        (None, None) => Ok(None),
    }
}

impl SourceArgs {
    /// The source: the file's `[source]` section, the flags over it, the
    /// preset's values for what both leave out. A key missing with no
    /// preset to supply it, or a contradiction, is an error naming it.
    pub fn resolve(&self) -> anyhow::Result<Source> {
        let (section, ba_section) = match &self.config {
            Some(path) => Section::read(path)?,
            None => (Section::default(), None),
        };
        let section = section.with_flags(self);
        let kind = match (section.kind, section.preset) {
            (Some(k), _) => k,
            (None, Some(_)) => Kind::App,
            (None, None) if section.table.is_some() => Kind::App,
            (None, None) => Kind::Sessiond,
        };
        if kind == Kind::Sessiond {
            if self.better_auth.resolve(ba_section, "public")?.is_some() {
                anyhow::bail!(
                    "[better_auth] needs the app's Better Auth tables as the source: set \
                     preset = \"better-auth\" in [source] (or --source-preset better-auth)"
                );
            }
            if section.preset.is_some() || section.table.is_some() {
                anyhow::bail!(
                    "[source] kind is \"sessiond\" (sessiond's own users) but a preset or a table \
                     of the app is given: set kind = \"app\" (or --source app)"
                );
            }
            return Ok(Source::Sessiond);
        }
        let preset = section.preset.unwrap_or(Preset::Custom);
        let defaults = preset_defaults(preset);
        let missing = |key: &str| {
            anyhow::anyhow!(
                "[source] {key} is required with preset \"custom\" (or --source-{})",
                key.replace('_', "-")
            )
        };
        let role = expr(section.role_column, section.role_sql, "role")?;
        let status = expr(section.status_column, section.status_sql, "status")?;
        let mut app = AppSource {
            better_auth: None,
            preset,
            schema: section.schema.unwrap_or_else(|| "public".into()),
            table: match (section.table, &defaults) {
                (Some(t), _) => t,
                (None, Some(d)) => d.table.into(),
                (None, None) => return Err(missing("table")),
            },
            id_column: section.id_column.unwrap_or_else(|| "id".into()),
            id_type: match (section.id_type, &defaults) {
                (Some(t), _) => t,
                (None, Some(d)) => d.id_type.into(),
                (None, None) => return Err(missing("id_type")),
            },
            email: Expr::Column(section.email_column.unwrap_or_else(|| "email".into())),
            role: match (role, &defaults) {
                (Some(r), _) => r,
                (None, Some(d)) => d.role.clone(),
                (None, None) => return Err(missing("role_column")),
            },
            status: match (status, &defaults) {
                (Some(s), _) => s,
                (None, Some(d)) => d.status.clone(),
                (None, None) => return Err(missing("status_column")),
            },
            // Given: that expression (`none`: nothing); not given: the
            // preset's. A custom status or role that reads the clock
            // should give one (docs/adopting.md).
            changes_at: match section.changes_at_sql {
                Some(s) if s.trim().eq_ignore_ascii_case("none") => None,
                Some(s) if s.trim().is_empty() => anyhow::bail!("[source] changes_at_sql is empty"),
                Some(s) => Some(s),
                None => defaults
                    .as_ref()
                    .and_then(|d| d.changes_at)
                    .map(str::to_string),
            },
        };
        for (key, value) in [
            ("schema", &app.schema),
            ("table", &app.table),
            ("id_column", &app.id_column),
            ("id_type", &app.id_type),
        ] {
            if value.trim().is_empty() {
                anyhow::bail!("[source] {key} is empty");
            }
        }
        app.better_auth = self.better_auth.resolve(ba_section, &app.schema)?;
        if app.better_auth.is_some() && preset != Preset::BetterAuth {
            anyhow::bail!(
                "[better_auth] is only served with the better-auth preset: set preset = \
                 \"better-auth\" in [source] (or --source-preset better-auth)"
            );
        }
        Ok(Source::App(app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_flags() {
        assert_eq!(SourceArgs::default().resolve().ok(), Some(Source::Sessiond));
        let a = SourceArgs {
            source_preset: Some(Preset::BetterAuth),
            source_role_column: Some("kind".into()),
            ..Default::default()
        };
        let Ok(Source::App(app)) = a.resolve() else {
            panic!("an app source");
        };
        assert_eq!(app.table, "user");
        assert_eq!(app.id_type, "text");
        assert_eq!(app.role, Expr::Column("kind".into()));
        assert_eq!(app.status, Expr::Sql(BETTER_AUTH_STATUS.into()));
        assert_eq!(app.changes_at.as_deref(), Some(BETTER_AUTH_CHANGES_AT));
        let off = SourceArgs {
            source_preset: Some(Preset::BetterAuth),
            source_changes_at_sql: Some("none".into()),
            ..Default::default()
        };
        let Ok(Source::App(app)) = off.resolve() else {
            panic!("an app source");
        };
        assert_eq!(app.changes_at, None);
        let custom = SourceArgs {
            source_kind: Some(Kind::App),
            source_table: Some("accounts".into()),
            ..Default::default()
        };
        let e = custom
            .resolve()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("id_type"), "{e}");
        let both = SourceArgs {
            source_kind: Some(Kind::Sessiond),
            source_preset: Some(Preset::Authjs),
            ..Default::default()
        };
        assert!(both.resolve().is_err());
    }
}
