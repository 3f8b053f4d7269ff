//! The command line (`sessiond --help`). Every flag also reads an environment variable;
//! durations are human-readable. Every default is written once: a constant
//! here, or beside the type it configures (the actors crate's
//! `CacheConfig`, the login limiter's and the HTTP front's `Limits`), and
//! both the flags and [`Settings::default`] take it from there. The checks
//! a parser cannot make (secret and cookie lengths, the cluster's
//! addresses and files) are in `validate`.
//!
//! Kept whole: the serve flags are one table (`sessiond serve --help`),
//! each beside its help text and default; split, the table would be too.

mod commands;
mod source_command;
mod validate;
mod values;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sessiond_actors::CacheConfig;

use crate::http::client_addr::{ClientIpHeader, TrustedProxies};
use crate::http::server::{Limits as HttpLimits, MAX_CONNECTIONS};
pub use crate::http::tls::TlsFiles as HttpsFiles;
use crate::limiter::Limits as LoginLimits;
use crate::logging::LogFormat;

pub use commands::*;
pub use source_command::{SourceCommand, SourceCommandArgs};
pub(crate) use validate::{check_jwt_secret, check_not_weak, cluster_settings};
pub use validate::{
    estimated_bits, MIN_ADMIN_PASSWORD_BITS, MIN_CLUSTER_COOKIE, MIN_JWT_SECRET, MIN_SECRET_BITS,
};
use values::{parse_bytes, parse_duration, parse_on_off};
pub use values::{Bytes, HumanDuration, OnOff, Secret};

/// `--listen`'s default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `--database-url`'s default.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://sessiond.db";
/// `--lease`'s default.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(2);
/// `--near-cache`'s default.
pub const DEFAULT_NEAR_CACHE: bool = true;
/// `--token-ttl`'s default: thirty days.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);
/// `--audit-retention`'s default: ninety days.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 86_400);
/// `--shutdown-grace`'s default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// `--admin-email`'s default.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";
/// `--admin-password-file`'s default (in the working directory).
pub const DEFAULT_ADMIN_PASSWORD_FILE: &str = "sessiond-admin-password";
/// The node name of a node that runs alone.
pub const DEFAULT_NODE_NAME: &str = "local";

/// The key-encryption key of the signing keys at rest, for `serve` and
/// `keys`.
#[derive(Debug, Clone, Default, Args)]
pub struct KekArgs {
    /// A file holding the key that encrypts the signing keys in the
    /// database (AES-256-GCM): 32 random bytes as base64 or hex, made with
    /// `openssl rand -base64 32`. Keys stored in clear are encrypted when
    /// `serve` starts with it; every node needs the same file. Without
    /// it, signing keys are stored in clear (a warning says so).
    #[arg(long, env = "SESSIOND_KEY_ENCRYPTION_KEY_FILE", value_name = "FILE")]
    pub key_encryption_key_file: Option<String>,
    /// The key-encryption key being replaced (repeatable): keys encrypted
    /// with it are still read, and `sessiond keys rewrap` encrypts them
    /// with --key-encryption-key-file.
    #[arg(
        long,
        env = "SESSIOND_PREVIOUS_KEY_ENCRYPTION_KEY_FILE",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub previous_key_encryption_key_file: Vec<String>,
}

/// The database, for every command that opens it.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DATABASE.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

#[derive(Parser)]
#[command(
    name = "sessiond",
    version,
    about = "Session resolution: a bearer JWT in, the user's current record out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once, at start
pub enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Manage token signing keys (kept in the database).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage app credentials: keys an application's server uses to mint
    /// sessions for users it signed in itself, or to call the admin routes.
    Appkey {
        #[command(subcommand)]
        command: AppKeyCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Serve the users of the application's own table: add or remove the
    /// change capture on it (docs/adopting.md).
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// Predict hit rate, database load and stale-role windows in virtual
    /// time, with the real session actors.
    #[cfg(feature = "simulate")]
    #[command(disable_help_flag = true)]
    Simulate(SimulateArgs),
}

/// `sessiond simulate`'s arguments, untouched: the `sessiond-sim`
/// executable reads them (and answers `--help`), so its flags are defined
/// once, in the simulation crate.
#[cfg(feature = "simulate")]
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<std::ffi::OsString>,
}

#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SESSIOND_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// A listener of its own (plain HTTP) for /metrics, /api/perf, the
    /// dashboard and /readyz with the cluster's members; the API listener
    /// then answers those 404 (/healthz and /readyz without members stay
    /// there, for probes). Default: every route on --listen.
    #[arg(long, env = "SESSIOND_OPS_LISTEN")]
    pub ops_listen: Option<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How long a cached user record is served without reading the database
    /// (`0` disables the cache: every lookup reads the database).
    #[arg(long, env = "SESSIOND_CACHE_TTL", default_value_t = HumanDuration(CacheConfig::DEFAULT_TTL),
          value_parser = parse_duration)]
    pub cache_ttl: HumanDuration,
    /// The freshness lease: a node answers from its cache only while it
    /// holds one, and a write is acknowledged only once every node has
    /// confirmed it or its lease has ended (docs/freshness.md). `0` turns
    /// leases off: only for a lone node that every write goes through.
    #[arg(long, env = "SESSIOND_LEASE", default_value_t = HumanDuration(DEFAULT_LEASE),
          value_parser = parse_duration)]
    pub lease: HumanDuration,
    /// The most logged changes one lease renewal reads and applies one by
    /// one: a node further behind (after a bulk change of many users)
    /// drops its whole cache and starts from the newest change instead.
    #[arg(long, env = "SESSIOND_LEASE_CATCH_UP",
          default_value_t = sessiond_actors::DEFAULT_CATCH_UP,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_catch_up: u64,
    /// Near copies: a node that forwards a lookup to the user's owner keeps
    /// the answer, under the same fences as the owner's copy, and answers
    /// that user's next lookups itself (`off`: every such lookup is
    /// forwarded).
    #[arg(long, env = "SESSIOND_NEAR_CACHE", value_name = "on|off",
          default_value_t = OnOff(DEFAULT_NEAR_CACHE), value_parser = parse_on_off,
          action = clap::ArgAction::Set)]
    pub near_cache: OnOff,
    /// A user's session is passivated (dropped) after this long without a lookup; its
    /// actor hibernates sooner (after a tenth of this, between 100ms and
    /// 1m), which changes no answer.
    #[arg(long, env = "SESSIOND_IDLE_TIMEOUT",
          default_value_t = HumanDuration(CacheConfig::DEFAULT_IDLE_TIMEOUT),
          value_parser = parse_duration)]
    pub idle_timeout: HumanDuration,
    /// The most sessions (live or hibernated) on this node at once; beyond
    /// it the least recently used are passivated (dropped).
    #[arg(long, env = "SESSIOND_MAX_SESSIONS",
          default_value_t = CacheConfig::DEFAULT_MAX_SESSIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sessions: u64,
    /// A fixed HS256 signing secret (at least 32 bytes): it signs on this
    /// node (key id `cfg-…`, a keyed hash of it) and is never stored.
    /// Default: keys generated and kept in the database, rotated with
    /// `sessiond keys rotate`.
    #[arg(long, env = "SESSIOND_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    #[command(flatten)]
    pub key_encryption: KekArgs,
    /// Lifetime of issued tokens; a token whose `exp − iat` is longer is
    /// refused.
    #[arg(long, env = "SESSIOND_TOKEN_TTL", default_value_t = HumanDuration(DEFAULT_TOKEN_TTL),
          value_parser = parse_duration)]
    pub token_ttl: HumanDuration,
    /// The audience (`aud`) tokens are issued for and must name. Default:
    /// none (a token that names one is refused).
    #[arg(long, env = "SESSIOND_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// This node's name (shown in `Session.cache.node`); required in a cluster.
    #[arg(long, env = "SESSIOND_NODE_NAME")]
    pub node_name: Option<String>,
    /// Address for cluster traffic; with it, this node is a cluster member.
    #[arg(long, env = "SESSIOND_CLUSTER_LISTEN", requires = "node_name")]
    pub cluster_listen: Option<String>,
    /// A peer's cluster address to join, HOST:PORT (repeat, or
    /// comma-separate in the variable). A name is resolved again every
    /// second and every address it resolves to is dialled: a DNS name that
    /// lists every node (a Kubernetes headless Service) joins them all.
    #[arg(
        value_name = "HOST:PORT",
        long = "join",
        env = "SESSIOND_JOIN",
        value_delimiter = ',',
        requires = "cluster_listen"
    )]
    pub join: Vec<String>,
    /// The shared secret every node of the cluster must present.
    #[arg(long, env = "SESSIOND_CLUSTER_COOKIE", hide_env_values = true)]
    pub cluster_cookie: Option<String>,
    /// Failed logins per account within --login-window before 429.
    #[arg(long, env = "SESSIOND_LOGIN_MAX_FAILURES",
          default_value_t = LoginLimits::DEFAULT_PER_ACCOUNT as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub login_max_failures: u64,
    /// Failed logins per client address within --login-window before 429.
    #[arg(long, env = "SESSIOND_LOGIN_MAX_FAILURES_PER_ADDRESS",
          default_value_t = LoginLimits::DEFAULT_PER_ADDRESS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub login_max_failures_per_address: u64,
    /// The window failed logins are counted over.
    #[arg(long, env = "SESSIOND_LOGIN_WINDOW",
          default_value_t = HumanDuration(LoginLimits::DEFAULT_WINDOW),
          value_parser = parse_duration)]
    pub login_window: HumanDuration,
    /// Most memory the login limiter holds (bytes, or with KiB/MiB/GiB).
    #[arg(long, env = "SESSIOND_LOGIN_MEMORY",
          default_value_t = Bytes(LoginLimits::DEFAULT_MAX_BYTES), value_parser = parse_bytes)]
    pub login_memory: Bytes,
    /// How long the audit trail of admin actions is kept in the database.
    #[arg(long, env = "SESSIOND_AUDIT_RETENTION",
          default_value_t = HumanDuration(DEFAULT_AUDIT_RETENTION), value_parser = parse_duration)]
    pub audit_retention: HumanDuration,
    /// This node's certificate (PEM) for mutual TLS between nodes.
    #[arg(long, env = "SESSIOND_CLUSTER_TLS_CERT", requires_all = ["cluster_tls_key", "cluster_tls_ca"])]
    pub cluster_tls_cert: Option<String>,
    /// This node's private key (PEM).
    #[arg(long, env = "SESSIOND_CLUSTER_TLS_KEY", requires_all = ["cluster_tls_cert", "cluster_tls_ca"])]
    pub cluster_tls_key: Option<String>,
    /// The CA (PEM) that signs every node's certificate.
    #[arg(long, env = "SESSIOND_CLUSTER_TLS_CA", requires_all = ["cluster_tls_cert", "cluster_tls_key"])]
    pub cluster_tls_ca: Option<String>,
    /// With --cluster-tls-*: a node `N`'s certificate may name it as the
    /// DNS name `N.DOMAIN` instead of `N` (cert-manager's names for a
    /// StatefulSet's pods: `sessiond-peers.NAMESPACE.svc.cluster.local`).
    #[arg(
        long,
        env = "SESSIOND_CLUSTER_TLS_DOMAIN",
        requires = "cluster_tls_cert"
    )]
    pub cluster_tls_domain: Option<String>,
    /// Allow cluster traffic in clear on an address other than loopback
    /// (without it, such a --cluster-listen needs --cluster-tls-*). Only
    /// for a network between nodes that nothing else can reach.
    #[arg(
        long,
        env = "SESSIOND_CLUSTER_INSECURE",
        requires = "cluster_listen",
        conflicts_with = "cluster_tls_cert"
    )]
    pub cluster_insecure: bool,
    /// Proxies (addresses or CIDR blocks, comma-separated) whose
    /// X-Forwarded-For / Forwarded header names the client, and whose
    /// X-Request-Id is kept as the request's id. Default: none.
    #[arg(
        long,
        env = "SESSIOND_TRUSTED_PROXIES",
        value_name = "CIDR,...",
        default_value = ""
    )]
    pub trusted_proxies: TrustedProxies,
    /// The header the trusted proxies name the client in: the only one
    /// read (the other is ignored whatever it says).
    #[arg(long, env = "SESSIOND_CLIENT_IP_HEADER", value_enum,
          default_value_t = ClientIpHeader::XForwardedFor)]
    pub client_ip_header: ClientIpHeader,
    /// Close a connection that has not sent a whole request head in this long.
    #[arg(long, env = "SESSIOND_HEADER_TIMEOUT",
          default_value_t = HumanDuration(HttpLimits::DEFAULT_HEADER_TIMEOUT),
          value_parser = parse_duration)]
    pub header_timeout: HumanDuration,
    /// Close a connection on which nothing was read or written for this long.
    #[arg(long, env = "SESSIOND_KEEP_ALIVE_TIMEOUT",
          default_value_t = HumanDuration(HttpLimits::DEFAULT_IDLE_TIMEOUT),
          value_parser = parse_duration)]
    pub keep_alive_timeout: HumanDuration,
    /// Close a connection whose request is not answered this long after
    /// the first byte of its head (a body that trickles in included).
    #[arg(long, env = "SESSIOND_REQUEST_TIMEOUT",
          default_value_t = HumanDuration(HttpLimits::DEFAULT_REQUEST_TIMEOUT),
          value_parser = parse_duration)]
    pub request_timeout: HumanDuration,
    /// The most connections open at once; more wait to be accepted.
    #[arg(long, env = "SESSIOND_MAX_CONNECTIONS",
          default_value_t = HttpLimits::DEFAULT_MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..=MAX_CONNECTIONS as u64))]
    pub max_connections: u64,
    /// The most connections open at once from one client address (the TCP
    /// peer); more are closed at once. Trusted proxies are not capped.
    #[arg(long, env = "SESSIOND_MAX_CONNECTIONS_PER_ADDRESS",
          default_value_t = HttpLimits::DEFAULT_MAX_CONNECTIONS_PER_ADDRESS as u64,
          value_parser = clap::value_parser!(u64).range(1..=MAX_CONNECTIONS as u64))]
    pub max_connections_per_address: u64,
    /// The API's certificate chain (PEM): with --tls-key, the API is served
    /// over HTTPS only. Both files are read again every second; a changed
    /// pair is served to new connections without a restart.
    #[arg(long, env = "SESSIOND_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<String>,
    /// The API certificate's private key (PEM).
    #[arg(long, env = "SESSIOND_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<String>,
    /// Log lines as text, or as JSON objects (one per line, with
    /// timestamp, level, target, message, request_id and fields). The
    /// filter is RUST_LOG (default "info,hyper=error,sessiond::access=off").
    #[arg(long, env = "SESSIOND_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// On SIGTERM or SIGINT: /readyz turns 503, the peers are told this
    /// node leaves and take its users over, and requests that still arrive
    /// are answered until none has come for 1 s, for at most this long;
    /// then the node exits 0. A second signal ends the wait at once. Give
    /// the orchestrator a longer kill timeout.
    #[arg(long, env = "SESSIOND_SHUTDOWN_GRACE",
          default_value_t = HumanDuration(DEFAULT_SHUTDOWN_GRACE), value_parser = parse_duration)]
    pub shutdown_grace: HumanDuration,
    /// The email of the administrator created when the database has no
    /// user (its password: SESSIOND_ADMIN_PASSWORD, else generated and
    /// written to --admin-password-file).
    #[arg(long, env = "SESSIOND_ADMIN_EMAIL", default_value = DEFAULT_ADMIN_EMAIL)]
    pub admin_email: String,
    /// Where a generated first administrator's password is written (a new
    /// file, readable by this user only); the path is printed, never the
    /// password.
    #[arg(long, env = "SESSIOND_ADMIN_PASSWORD_FILE", default_value = DEFAULT_ADMIN_PASSWORD_FILE)]
    pub admin_password_file: String,
    #[command(flatten)]
    pub forward_auth: crate::http::forward_auth::ForwardAuthArgs,
    #[command(flatten)]
    pub source: crate::source::SourceArgs,
}

/// What an application is built from: the serve flags, resolved. Its
/// `Debug` shows no secret (they are [`Secret`]s); the parsed command line
/// has no `Debug` at all.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    /// The operations listener (`None`: operations on `listen`).
    pub ops_listen: Option<String>,
    pub database_url: String,
    pub cache_ttl: Duration,
    /// The freshness lease (zero: none).
    pub lease: Duration,
    /// The most logged changes one renewal applies (`--lease-catch-up`).
    pub lease_catch_up: u64,
    /// Keep near copies of other nodes' users (`--near-cache`).
    pub near_cache: bool,
    pub idle_timeout: Duration,
    pub max_sessions: usize,
    pub jwt_secret: Option<Secret>,
    /// The key-encryption key files of the stored signing keys.
    pub key_encryption: KekArgs,
    pub token_ttl: Duration,
    /// The `aud` tokens are issued with and must carry.
    pub jwt_audience: Option<String>,
    pub node_name: String,
    /// Cluster membership (`None`: this node runs alone).
    pub cluster: Option<ClusterArgs>,
    /// Login brute-force limits.
    pub login_limits: LoginLimits,
    pub audit_retention: Duration,
    /// The first administrator's password when the database has no user
    /// (`SESSIOND_ADMIN_PASSWORD`); generated and written to
    /// `admin_password_file` when absent.
    pub admin_password: Option<Secret>,
    /// The first administrator's email (`--admin-email`).
    pub admin_email: String,
    /// Where a generated first administrator's password is written.
    pub admin_password_file: String,
    pub trusted_proxies: TrustedProxies,
    /// Timeouts and connection cap of the HTTP front.
    pub http: HttpLimits,
    /// HTTPS on the API (`None`: plain HTTP).
    pub tls: Option<HttpsFiles>,
    /// How long a leaving node answers what still arrives.
    pub shutdown_grace: Duration,
    pub forward_auth: crate::http::forward_auth::ForwardAuthArgs,
    /// Where users live (`--config`'s `[source]`, the `--source-*`
    /// flags), resolved when the application is built.
    pub source: crate::source::SourceArgs,
}

impl Settings {
    pub fn from_args(a: ServeArgs) -> Settings {
        Settings {
            listen: a.listen,
            ops_listen: a.ops_listen.filter(|o| !o.is_empty()),
            database_url: a.database.database_url,
            cache_ttl: a.cache_ttl.0,
            lease: a.lease.0,
            lease_catch_up: a.lease_catch_up,
            near_cache: a.near_cache.0,
            idle_timeout: a.idle_timeout.0,
            max_sessions: usize::try_from(a.max_sessions).unwrap_or(usize::MAX),
            jwt_secret: a.jwt_secret.map(Secret::from),
            key_encryption: a.key_encryption,
            token_ttl: a.token_ttl.0,
            jwt_audience: a.jwt_audience.filter(|a| !a.is_empty()),
            node_name: a.node_name.unwrap_or_else(|| DEFAULT_NODE_NAME.to_string()),
            login_limits: LoginLimits {
                per_account: usize::try_from(a.login_max_failures).unwrap_or(usize::MAX),
                per_address: usize::try_from(a.login_max_failures_per_address)
                    .unwrap_or(usize::MAX),
                window: a.login_window.0,
                max_bytes: a.login_memory.0,
            },
            audit_retention: a.audit_retention.0,
            cluster: a.cluster_listen.map(|listen| ClusterArgs {
                listen,
                join: a.join,
                cookie: Secret::from(a.cluster_cookie.unwrap_or_default()),
                insecure: a.cluster_insecure,
                tls: match (a.cluster_tls_cert, a.cluster_tls_key, a.cluster_tls_ca) {
                    (Some(cert), Some(key), Some(ca)) => Some(TlsFiles {
                        cert,
                        key,
                        ca,
                        domain: a.cluster_tls_domain,
                    }),
                    _ => None,
                },
            }),
            admin_password: std::env::var("SESSIOND_ADMIN_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(Secret::from),
            admin_email: a.admin_email,
            admin_password_file: a.admin_password_file,
            trusted_proxies: a.trusted_proxies.with_header(a.client_ip_header),
            http: HttpLimits {
                header_timeout: a.header_timeout.0,
                idle_timeout: a.keep_alive_timeout.0,
                request_timeout: a.request_timeout.0,
                max_connections: usize::try_from(a.max_connections).unwrap_or(MAX_CONNECTIONS),
                max_connections_per_address: usize::try_from(a.max_connections_per_address)
                    .unwrap_or(MAX_CONNECTIONS),
            },
            tls: match (a.tls_cert, a.tls_key) {
                (Some(cert), Some(key)) => Some(HttpsFiles { cert, key }),
                _ => None,
            },
            shutdown_grace: a.shutdown_grace.0,
            forward_auth: a.forward_auth,
            source: a.source,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: DEFAULT_LISTEN.into(),
            ops_listen: None,
            database_url: DEFAULT_DATABASE_URL.into(),
            cache_ttl: CacheConfig::DEFAULT_TTL,
            lease: DEFAULT_LEASE,
            lease_catch_up: sessiond_actors::DEFAULT_CATCH_UP,
            near_cache: DEFAULT_NEAR_CACHE,
            idle_timeout: CacheConfig::DEFAULT_IDLE_TIMEOUT,
            max_sessions: CacheConfig::DEFAULT_MAX_SESSIONS,
            jwt_secret: None,
            key_encryption: KekArgs::default(),
            token_ttl: DEFAULT_TOKEN_TTL,
            jwt_audience: None,
            node_name: DEFAULT_NODE_NAME.into(),
            cluster: None,
            login_limits: LoginLimits::default(),
            audit_retention: DEFAULT_AUDIT_RETENTION,
            admin_password: None,
            admin_email: DEFAULT_ADMIN_EMAIL.into(),
            admin_password_file: DEFAULT_ADMIN_PASSWORD_FILE.into(),
            trusted_proxies: TrustedProxies::none(),
            http: HttpLimits::default(),
            tls: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            forward_auth: Default::default(),
            source: Default::default(),
        }
    }
}

/// The cluster flags, as given (the cookie a [`Secret`]: never in
/// `Debug`).
#[derive(Debug, Clone)]
pub struct ClusterArgs {
    pub listen: String,
    pub join: Vec<String>,
    pub cookie: Secret,
    pub tls: Option<TlsFiles>,
    /// Clear traffic allowed on a non-loopback address.
    pub insecure: bool,
}

/// PEM files for mutual TLS between nodes.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: String,
    pub key: String,
    pub ca: String,
    /// Node names may be certified under this domain.
    pub domain: Option<String>,
}

#[cfg(test)]
mod tests;
