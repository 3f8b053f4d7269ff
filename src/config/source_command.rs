//! `sessiond source install|uninstall [--dry-run]`'s arguments (the
//! command itself runs in the application's commands).

use clap::{Args, Subcommand};

use super::DatabaseArgs;

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
    pub source: crate::source::SourceArgs,
}
