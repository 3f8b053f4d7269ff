//! `sessiond appkey create|list|rotate|revoke` (`sessiond appkey --help`):
//! app credentials, the keys an application's own server uses to mint
//! sessiond's token for a user it signed in itself, or to call the admin
//! routes (the rules are [`crate::usecases::appkeys`]).
//!
//! A key is printed once, alone on its stdout line (`KEY=$(sessiond appkey
//! create …)`); what goes with it goes to stderr. Each command is audited
//! (`appkey.create`, `appkey.rotate`, `appkey.revoke`, by `cli`).

use anyhow::Context as _;

use crate::clock::{rfc3339_ms, Clock};
use crate::config::{AppKeyCommand, DatabaseArgs};
use crate::store::{AppKeyRow, AuditEntry, Db};
use crate::usecases::appkeys::{actor, parse_scopes, NewKey};

async fn open(args: &DatabaseArgs) -> anyhow::Result<Db> {
    Db::connect(&args.database_url, Clock::new())
        .await
        .context("cannot open the database")
}

/// An app key command in the audit trail.
async fn audit(db: &Db, action: &str, id: &str, detail: String) -> anyhow::Result<()> {
    let entry = AuditEntry {
        at: db.clock().now_ms(),
        actor_id: None,
        actor_email: Some("cli".into()),
        action: action.into(),
        target_id: None,
        detail: Some(format!("{}: {detail}", actor(id))),
        client: None,
        request_id: None,
    };
    db.record_audit(&entry)
        .await
        .context("cannot write the audit entry")
}

/// A key's state as `appkey list` shows it.
fn state(k: &AppKeyRow, now: i64) -> String {
    if let Some(at) = k.revoked_at {
        return format!("revoked {}", rfc3339_ms(at));
    }
    match k.previous_until {
        Some(until) if until > now => {
            format!(
                "active (previous secret accepted until {})",
                rfc3339_ms(until)
            )
        }
        _ => "active".into(),
    }
}

/// `sessiond appkey …`.
pub async fn run(command: AppKeyCommand) -> anyhow::Result<()> {
    match command {
        AppKeyCommand::Create(args) => {
            let scopes = parse_scopes(&args.scopes).map_err(anyhow::Error::msg)?;
            let name = args.name.trim();
            if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
                anyhow::bail!("--name is 1 to 200 printable characters");
            }
            let db = open(&args.database).await?;
            let new = NewKey::generate();
            db.create_app_key(&new.id, name, &scopes, &new.hash)
                .await
                .context("cannot store the key")?;
            audit(
                &db,
                "appkey.create",
                &new.id,
                format!("name: {name}, scopes: {scopes}"),
            )
            .await?;
            eprintln!("created app key {} ({name}) with scopes {scopes}", new.id);
            println!("{}", new.key);
            eprintln!("the key is shown this once: store it in your app's secrets now");
        }
        AppKeyCommand::List(args) => {
            let db = open(&args.database).await?;
            let keys = db.app_keys().await?;
            if keys.is_empty() {
                println!("no app keys (`sessiond appkey create --name N --scope mint` makes one)");
                return Ok(());
            }
            let now = db.clock().now_ms();
            println!(
                "{:<18} {:<24} {:<12} {:<26} STATE",
                "ID", "NAME", "SCOPES", "CREATED"
            );
            for k in &keys {
                println!(
                    "{:<18} {:<24} {:<12} {:<26} {}",
                    k.id,
                    k.name,
                    k.scopes,
                    rfc3339_ms(k.created_at),
                    state(k, now)
                );
            }
        }
        AppKeyCommand::Rotate(args) => {
            let db = open(&args.database).await?;
            let new = NewKey::with_id(args.id.clone());
            let grace_ms = i64::try_from(args.grace.0.as_millis()).unwrap_or(i64::MAX);
            let until = db.clock().now_ms().saturating_add(grace_ms);
            if !db.rotate_app_key(&args.id, &new.hash, until).await? {
                anyhow::bail!("no app key {} that is not revoked", args.id);
            }
            audit(
                &db,
                "appkey.rotate",
                &args.id,
                format!("previous secret accepted until {}", rfc3339_ms(until)),
            )
            .await?;
            println!("{}", new.key);
            eprintln!(
                "new secret for app key {}: shown this once. The previous secret is accepted \
                 until {}; give the app the new key before then",
                args.id,
                rfc3339_ms(until)
            );
        }
        AppKeyCommand::Revoke(args) => {
            let db = open(&args.database).await?;
            if !db.revoke_app_key(&args.id).await? {
                anyhow::bail!("no app key {} that is not revoked already", args.id);
            }
            audit(&db, "appkey.revoke", &args.id, "revoked".into()).await?;
            println!(
                "revoked app key {}: every node refuses it from its next request",
                args.id
            );
        }
    }
    Ok(())
}
