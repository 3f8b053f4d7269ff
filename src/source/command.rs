//! `sessiond source install|uninstall [--dry-run]`: adds the change
//! capture to the app's user table, or removes every trace of it.

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{check, sql, Source, SourceArgs};
use crate::clock::Clock;
use crate::config::DatabaseArgs;
use crate::store::Db;

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Add the triggers that number each change of the app's user table
    /// into sessiond's change log and announce it (idempotent). No column
    /// is added to the app's tables.
    Install(SourceCommandArgs),
    /// Remove every trigger and function `install` added.
    Uninstall(SourceCommandArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SourceCommandArgs {
    /// Print the SQL instead of running it (nothing is connected to).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub source: SourceArgs,
}

/// Runs a `sessiond source` command.
pub async fn run(command: SourceCommand) -> anyhow::Result<()> {
    let (install, args) = match command {
        SourceCommand::Install(a) => (true, a),
        SourceCommand::Uninstall(a) => (false, a),
    };
    let source = args.source.resolve()?;
    let sql = match (&source, install) {
        (Source::App(app), true) => app.install_sql(),
        (_, false) => sql::uninstall_sql(),
        (Source::Sessiond, true) => anyhow::bail!(
            "no app source is configured: give --config with a [source] section, or \
             --source-preset (sessiond's own users need no install)"
        ),
    };
    if args.dry_run {
        print!("{sql}");
        return Ok(());
    }
    let db = Db::connect(&args.database.database_url, Clock::new())
        .await
        .context("cannot open the database")?;
    let Some(pool) = db.postgres() else {
        anyhow::bail!("the app source needs PostgreSQL (docs/adopting.md)");
    };
    if let (Source::App(app), true) = (&source, install) {
        check::check_schema(app, pool).await?;
    }
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(&sql).execute(&mut *tx).await?;
    tx.commit().await?;
    match source.app() {
        Some(app) if install => println!(
            "installed the change capture on {}",
            app.qualified_table()
        ),
        _ => println!("removed sessiond's change capture"),
    }
    Ok(())
}
