//! The command line's commands other than `serve` (the keys' are in
//! [`crate::keys`]).

use anyhow::Context as _;

use crate::auth;
use crate::clock::Clock;
use crate::config::UserAddArgs;
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
