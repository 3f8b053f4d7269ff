//! The commands other than `serve`, and their flags: `keys` (run by
//! [`crate::keys`]), `appkey` ([`crate::appkeys`]) and `user add`.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::values::{parse_duration, HumanDuration};
use super::{DatabaseArgs, KekArgs, DEFAULT_TOKEN_TTL};

/// `appkey rotate --grace`'s default: how long a rotated key's previous
/// secret is still accepted.
pub const DEFAULT_APPKEY_GRACE: Duration = Duration::from_secs(86_400);
#[derive(Debug, Subcommand)]
pub enum AppKeyCommand {
    /// Create a key and print it once (on stdout, alone on its line): only
    /// a hash of it is stored.
    Create(AppKeyCreateArgs),
    /// List the keys: id, name, scopes, state (never a secret).
    List(AppKeyListArgs),
    /// Give a key a new secret, printed once; the previous secret keeps
    /// working for --grace, so the app switches without a failed request.
    Rotate(AppKeyRotateArgs),
    /// Revoke a key: every node refuses it from its next request.
    Revoke(AppKeyIdArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AppKeyCreateArgs {
    /// A name for people: which app holds the key.
    #[arg(long)]
    pub name: String,
    /// What the key may do: `mint` (POST /api/sessions), `admin` (the
    /// admin routes); comma-separated or repeated.
    #[arg(long = "scope", value_name = "mint|admin[,..]", required = true)]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AppKeyListArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AppKeyRotateArgs {
    /// The key's id (as `appkey list` shows it).
    pub id: String,
    /// How long the previous secret is still accepted (`0`: not at all).
    #[arg(long, default_value_t = HumanDuration(DEFAULT_APPKEY_GRACE),
          value_parser = parse_duration)]
    pub grace: HumanDuration,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Debug, Clone, Args)]
pub struct AppKeyIdArgs {
    /// The key's id (as `appkey list` shows it).
    pub id: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add(UserAddArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys: id, creation time, state (never a secret).
    List(KeysArgs),
    /// Make a new active signing key; the previous one keeps verifying the
    /// tokens it signed. Every node signs with the new key within 5 s.
    Rotate(KeysArgs),
    /// Remove the keys whose tokens have all expired (rotated out more
    /// than --token-ttl ago), or the named key at once (its tokens stop
    /// resolving within 5 s). The active key cannot be retired.
    Retire(KeysRetireArgs),
    /// Encrypt every signing key with --key-encryption-key-file: keys in
    /// clear and keys encrypted with a --previous-key-encryption-key-file.
    /// Run it after every node was restarted with both files; then the
    /// previous file can go.
    Rewrap(KeysArgs),
}

#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub key_encryption: KekArgs,
    /// The token lifetime `serve` runs with: how long a rotated-out key
    /// still verifies live tokens.
    #[arg(long, env = "SESSIOND_TOKEN_TTL", default_value_t = HumanDuration(DEFAULT_TOKEN_TTL),
          value_parser = parse_duration)]
    pub token_ttl: HumanDuration,
}

#[derive(Debug, Clone, Args)]
pub struct KeysRetireArgs {
    /// The key to retire now (default: every key no longer needed).
    pub kid: Option<String>,
    #[command(flatten)]
    pub common: KeysArgs,
}

#[derive(Clone, Args)]
pub struct UserAddArgs {
    #[arg(long)]
    pub email: String,
    /// The password (or set SESSIOND_USER_PASSWORD to keep it out of the
    /// process list).
    #[arg(long, env = "SESSIOND_USER_PASSWORD", hide_env_values = true)]
    pub password: String,
    #[arg(long, default_value = "user")]
    pub role: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
}
