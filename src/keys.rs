//! Token signing keys: the key set a serving node starts with, and
//! `sessiond keys list|rotate|retire` (`sessiond keys --help`).
//!
//! Keys live in the database, so every node of a cluster shares them: one
//! `active` key signs, keys rotated out are `verifying` (they check the
//! tokens they signed until those expire, then `keys retire` removes them).
//! A node reloads the set every [`KEY_RELOAD`] and when a token names a key
//! it has not seen. With `--key-encryption-key-file` every stored key is
//! encrypted at rest ([`crate::kek`]); `keys rewrap` moves them all to a
//! new key-encryption key. A configured secret (`--jwt-secret`) is a fixed key of
//! its own instead: it signs on the nodes given it, its id is a keyed hash
//! of it (`cfg-…`), it is never stored, and rotating it means database keys.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use sessiond_actors::BoxFuture;

use crate::auth::{self, KeyStore, StoredKey, TokenPolicy, Tokens, IAT_LEEWAY_SECS, KEY_RELOAD};
use crate::clock::{rfc3339_ms, Clock};
use crate::config::{KeysArgs, KeysCommand, Settings};
use crate::kek::{at_rest, AtRest, Keyring};
use crate::store::{Db, Retired, SigningKeyRow};

/// Length of a generated signing secret (characters of a 57-letter
/// alphabet: about 280 bits).
const SECRET_LEN: usize = 48;

/// The tokens of a serving node: with no configured secret, the database's
/// keys (a first one is made if there is none); reloaded every
/// [`KEY_RELOAD`] while the returned value lives.
pub async fn tokens(settings: &Settings, db: &Db, clock: Clock) -> anyhow::Result<Arc<Tokens>> {
    let ring = Arc::new(Keyring::from_args(&settings.key_encryption)?);
    // Every stored key must open before anything is written: a wrong
    // key-encryption key refuses to start, it seals nothing.
    check_all_open(db, &ring).await?;
    match ring.current() {
        Some(kek) => {
            let sealed = seal_clear(db, &ring).await?;
            if sealed > 0 {
                tracing::info!(
                    keys = sealed,
                    kek = kek.id(),
                    "encrypted the signing keys stored in clear"
                );
            }
        }
        None => tracing::warn!(
            "signing keys are stored in clear in the database: anyone who can read it (a \
             backup, a replica) can mint tokens; give --key-encryption-key-file to encrypt them"
        ),
    }
    let configured = settings.jwt_secret.as_ref().map(|s| s.as_bytes().to_vec());
    if configured.is_none() {
        let kid = auth::new_kid(clock.now_ms());
        let stored = ring
            .seal(&kid, &auth::random_secret(SECRET_LEN))
            .map_err(anyhow::Error::msg)?;
        db.add_first_signing_key(&kid, &stored)
            .await
            .context("cannot store the first signing key")?;
    }
    let policy = TokenPolicy {
        ttl: settings.token_ttl,
        audience: settings.jwt_audience.clone(),
    };
    let store = Arc::new(SealedKeys {
        db: db.clone(),
        ring,
    });
    let tokens = Arc::new(Tokens::load(store, configured, policy, clock).await?);
    Tokens::spawn_reloader(&tokens, KEY_RELOAD);
    Ok(tokens)
}

/// The database's keys, opened with the key-encryption keys.
struct SealedKeys {
    db: Db,
    ring: Arc<Keyring>,
}

impl KeyStore for SealedKeys {
    fn load_keys(&self) -> BoxFuture<'_, Result<Vec<StoredKey>, String>> {
        Box::pin(async move {
            let keys = self.db.load_keys().await?;
            keys.into_iter()
                .map(|k| {
                    Ok(StoredKey {
                        secret: self.ring.open(&k.kid, &k.secret)?,
                        ..k
                    })
                })
                .collect()
        })
    }
}

/// Refuses when a stored key does not open with the keys given.
async fn check_all_open(db: &Db, ring: &Keyring) -> anyhow::Result<()> {
    let keys = db
        .signing_keys()
        .await
        .context("cannot read the signing keys")?;
    for k in &keys {
        ring.open(&k.kid, &k.secret).map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// Encrypts with the current key-encryption key every key stored in
/// clear; returns how many.
async fn seal_clear(db: &Db, ring: &Keyring) -> anyhow::Result<usize> {
    reseal(db, ring, |stored| at_rest(stored) == AtRest::Clear).await
}

/// Encrypts again with the current key-encryption key every key `which`
/// picks among those that need it; returns how many were written.
async fn reseal(db: &Db, ring: &Keyring, which: impl Fn(&str) -> bool) -> anyhow::Result<usize> {
    let keys = db
        .signing_keys()
        .await
        .context("cannot read the signing keys")?;
    let mut done = 0;
    for k in keys
        .iter()
        .filter(|k| ring.needs_sealing(&k.secret) && which(&k.secret))
    {
        let secret = ring.open(&k.kid, &k.secret).map_err(anyhow::Error::msg)?;
        let sealed = ring.seal(&k.kid, &secret).map_err(anyhow::Error::msg)?;
        if db
            .reseal_signing_key(&k.kid, &k.secret, &sealed)
            .await
            .with_context(|| format!("cannot store signing key {} encrypted", k.kid))?
        {
            done += 1;
        }
    }
    Ok(done)
}

/// How long after its rotation a key may still have live tokens: the
/// token lifetime and the clock leeway on `iat`.
fn needed_for(token_ttl: Duration) -> i64 {
    token_ttl.as_millis() as i64 + IAT_LEEWAY_SECS * 1000
}

/// A key's state as `keys list` shows it.
fn state(k: &SigningKeyRow, now: i64, token_ttl: Duration) -> String {
    match k.rotated_at {
        _ if k.active => "active".to_string(),
        Some(at) if at + needed_for(token_ttl) <= now => {
            "expired (its tokens have expired; `keys retire` removes it)".to_string()
        }
        Some(at) => format!("verifying until {}", rfc3339_ms(at + needed_for(token_ttl))),
        None => "verifying".to_string(),
    }
}

async fn open(args: &KeysArgs) -> anyhow::Result<Db> {
    Db::connect(&args.database.database_url, Clock::new())
        .await
        .context("cannot open the database")
}

/// `sessiond keys …`.
pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List(args) => {
            let db = open(&args).await?;
            let keys = db.signing_keys().await?;
            if keys.is_empty() {
                println!("no signing keys (the first `sessiond serve` makes one)");
                return Ok(());
            }
            let now = db.clock().now_ms();
            println!("{:<22} {:<22} {:<22} STATE", "KID", "CREATED", "AT REST");
            for k in &keys {
                let rest = match at_rest(&k.secret) {
                    AtRest::Clear => "clear".to_string(),
                    AtRest::Sealed(id) => format!("encrypted ({id})"),
                };
                println!(
                    "{:<22} {:<22} {:<22} {}",
                    k.kid,
                    rfc3339_ms(k.created_at),
                    rest,
                    state(k, now, args.token_ttl.0)
                );
            }
        }
        KeysCommand::Rotate(args) => {
            let db = open(&args).await?;
            let ring = Keyring::from_args(&args.key_encryption)?;
            check_all_open(&db, &ring).await?;
            let kid = auth::new_kid(db.clock().now_ms());
            let stored = ring
                .seal(&kid, &auth::random_secret(SECRET_LEN))
                .map_err(anyhow::Error::msg)?;
            let previous = db
                .rotate_signing_key(&kid, &stored)
                .await
                .context("cannot rotate (did another rotation run at the same time? try again)")?;
            println!("{kid} is the active signing key");
            if let Some(p) = previous {
                println!(
                    "{p} verifies the tokens it signed; `sessiond keys retire` removes it once \
                     they have expired ({})",
                    rfc3339_ms(db.clock().now_ms() + needed_for(args.token_ttl.0))
                );
            }
            println!(
                "every node signs with the new key within {} s (nodes given --jwt-secret keep \
                 signing with it)",
                KEY_RELOAD.as_secs()
            );
        }
        KeysCommand::Rewrap(args) => {
            let db = open(&args).await?;
            let ring = Keyring::from_args(&args.key_encryption)?;
            let Some(kek) = ring.current() else {
                anyhow::bail!("give the key to encrypt with: --key-encryption-key-file");
            };
            check_all_open(&db, &ring).await?;
            let done = reseal(&db, &ring, |_| true).await?;
            println!(
                "{done} signing key(s) encrypted again with key-encryption key {}",
                kek.id()
            );
        }
        KeysCommand::Retire(r) => {
            let db = open(&r.common).await?;
            match r.kid {
                Some(kid) => match db.retire_signing_key(&kid).await? {
                    Retired::Done => println!(
                        "retired {kid}: tokens it signed stop resolving on every node within {} s",
                        KEY_RELOAD.as_secs()
                    ),
                    Retired::Active => anyhow::bail!(
                        "{kid} is the active signing key: `sessiond keys rotate` first"
                    ),
                    Retired::NotFound => anyhow::bail!("no signing key {kid}"),
                },
                None => {
                    let before = db.clock().now_ms() - needed_for(r.common.token_ttl.0);
                    let gone = db.retire_signing_keys_before(before).await?;
                    if gone.is_empty() {
                        println!("no key to retire: every key still verifies live tokens");
                    }
                    for kid in gone {
                        println!("retired {kid}");
                    }
                }
            }
        }
    }
    Ok(())
}
