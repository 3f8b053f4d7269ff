//! The first administrator: created on first start, when the database
//! has no user. A generated password is written to a file only its owner
//! can read, never to the terminal or the log.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::auth;
use crate::store::{Db, WriteError};
use crate::usecases::users::{normalize_email, validate_new_password};

/// The first administrator, when this start created one.
pub struct FirstAdmin {
    pub email: String,
    /// Set when the password was generated: the file it was written to.
    pub password_file: Option<PathBuf>,
}

/// With no user in the database, creates the administrator `email`, with
/// `password` or else a generated one written to `password_file`.
pub(super) async fn ensure_first_admin(
    db: &Db,
    email: &str,
    password: Option<String>,
    password_file: &str,
) -> anyhow::Result<Option<FirstAdmin>> {
    let email = normalize_email(email).map_err(|e| anyhow::anyhow!("--admin-email: {e}"))?;
    if db.count_users().await.context("cannot count users")? > 0 {
        return Ok(None);
    }
    let (password, file) = match password {
        Some(p) => {
            validate_new_password(&p)
                .map_err(|e| anyhow::anyhow!("SESSIOND_ADMIN_PASSWORD: {e}"))?;
            (p, None)
        }
        None => {
            let p = auth::random_secret(20);
            // Written before the user exists: no administrator whose
            // password nobody could read.
            let path = PathBuf::from(password_file);
            write_secret_file(&path, &p).with_context(|| {
                format!(
                    "cannot write the first administrator's password to {}",
                    path.display()
                )
            })?;
            (p, Some(path))
        }
    };
    let hash = auth::hash_password_blocking(password).await?;
    match db.create_user(&email, &hash, "admin").await {
        Ok(_) => {
            tracing::info!(email = %email, "created the first administrator");
            Ok(Some(FirstAdmin {
                email,
                password_file: file,
            }))
        }
        // Another node created it first: this password is no one's.
        Err(WriteError::EmailTaken) => {
            if let Some(path) = file {
                let _ = std::fs::remove_file(path);
            }
            Ok(None)
        }
        Err(WriteError::Db(e)) => Err(e).context("cannot create the first administrator"),
    }
}

/// Writes `secret` to a new file at `path` that only its owner can read
/// and write (0600); an existing file (or a symbolic link) there is an
/// error, never overwritten or followed.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn the_password_file_is_new_and_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        write_secret_file(&path, "s3cret").expect("writes");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).expect("reads"), "s3cret\n");
        assert!(
            write_secret_file(&path, "other").is_err(),
            "never overwritten"
        );
    }
}
