//! The command line's commands other than `serve` (the keys' are in
//! [`crate::keys`]).

use anyhow::Context as _;

use crate::auth;
use crate::clock::Clock;
use crate::config::{SourceCommand, UserAddArgs};
use crate::source::Source;
use crate::store::Db;
use crate::usecases::users::{self, NewUser, UserError};

/// `sessiond user add`.
pub async fn add_user(args: UserAddArgs) -> anyhow::Result<()> {
    let new = NewUser::parse(&args.email, args.password, Some(args.role))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = Db::connect(&args.database.database_url, Clock::new())
        .await
        .context("cannot open the database")?;
    let hash = auth::hash_password_blocking(new.password.clone()).await?;
    match users::insert(&db, &new, &hash).await {
        Ok(row) => {
            println!(
                "created user {} ({}) with role {}",
                row.id, row.email, row.role
            );
            Ok(())
        }
        Err(UserError::EmailTaken) => {
            anyhow::bail!("a user with email {} already exists", new.email)
        }
        Err(e) => Err(anyhow::anyhow!("{e}")).context("cannot create the user"),
    }
}

/// `sessiond source install|uninstall [--dry-run]`: adds the change
/// capture to the app's user table, or removes every trace of it.
pub async fn source(command: SourceCommand) -> anyhow::Result<()> {
    let (install, args) = match command {
        SourceCommand::Install(a) => (true, a),
        SourceCommand::Uninstall(a) => (false, a),
    };
    let source = args.source.resolve()?;
    let sql = match (&source, install) {
        (Source::App(app), true) => app.install_sql(),
        (_, false) => crate::source::uninstall_sql(),
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
        crate::source::check_schema(app, pool).await?;
    }
    let mut tx = pool.begin().await.context("cannot begin")?;
    sqlx::raw_sql(&sql)
        .execute(&mut *tx)
        .await
        .map_err(|e| anyhow::anyhow!("{}", crate::store::describe(&e)))?;
    tx.commit().await.context("cannot commit")?;
    match source.app() {
        Some(app) if install => {
            println!("installed the change capture on {}", app.qualified_table())
        }
        _ => println!("removed sessiond's change capture"),
    }
    Ok(())
}
