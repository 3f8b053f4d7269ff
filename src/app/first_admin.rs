//! The first administrator: created on first start, when the database
//! has no user.

use anyhow::Context as _;

use crate::auth;
use crate::store::{Db, WriteError};
use crate::usecases::users::validate_new_password;

/// The email of the administrator created on first start.
pub const FIRST_ADMIN: &str = "admin@localhost";
/// The first administrator, when this start created one.
pub struct FirstAdmin {
    pub email: String,
    /// Set when the password was generated (and so must be shown once).
    pub generated_password: Option<String>,
}
/// With no user in the database, creates `admin@localhost`.
pub(super) async fn ensure_first_admin(
    db: &Db,
    password: Option<String>,
) -> anyhow::Result<Option<FirstAdmin>> {
    if db.count_users().await.context("cannot count users")? > 0 {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(p) => {
            validate_new_password(&p)
                .map_err(|e| anyhow::anyhow!("SESSIOND_ADMIN_PASSWORD: {e}"))?;
            (p, false)
        }
        None => (auth::random_secret(20), true),
    };
    let hash = auth::hash_password_blocking(password.clone()).await?;
    match db.create_user(FIRST_ADMIN, &hash, "admin").await {
        Ok(_) => {
            tracing::info!(email = FIRST_ADMIN, "created the first administrator");
            Ok(Some(FirstAdmin {
                email: FIRST_ADMIN.to_string(),
                generated_password: generated.then_some(password),
            }))
        }
        // Another node created it first.
        Err(WriteError::EmailTaken) => Ok(None),
        Err(WriteError::Db(e)) => Err(e).context("cannot create the first administrator"),
    }
}
