//! The application: built from [`Settings`], bound to its listener, run
//! until a shutdown signal. Tests build it on port 0 with a database of
//! their own and drive it over a real socket.
//!
//! Kept whole: the wiring of one application, read in the order it
//! starts (store, actors, lease keeper, cluster, HTTP front); split, that
//! order would be spread over several files.
//!
//! Here the wiring (store, actors, lease keeper, cluster, HTTP front, in
//! one readable sequence) and the run; the first administrator, leaving
//! and the `user add` command have files of their own. The flags are
//! checked in [`crate::config`].

mod commands;
mod first_admin;
mod shutdown;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::oneshot;

use sessiond_actors::{CacheConfig, LeaseKeeper, Link, Router};

use crate::auth;
use crate::clock::Clock;
use crate::cluster::{Cluster, ClusterLink};
use crate::config::{self, Settings};
use crate::http::{self, Ctx};
use crate::limiter::LoginLimiter;
use crate::metrics::Telemetry;
use crate::store::Db;
use crate::usecases::appkeys::AppKeys;
use crate::usecases::authenticate::Authenticator;
use crate::usecases::login::Login;
use crate::usecases::users::Users;
use crate::usecases::Audit;

pub use commands::{add_user, source as source_command};
use first_admin::ensure_first_admin;
pub use first_admin::FirstAdmin;
pub use shutdown::shutdown_signal;
use shutdown::{give_up_lease, leave};

type ServerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct Application {
    addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    /// The operations listener, when it has one of its own.
    ops_addr: Option<SocketAddr>,
    server: ServerFuture,
    stop: oneshot::Sender<()>,
    ctx: Arc<Ctx>,
    first_admin: Option<FirstAdmin>,
    upkeep: tokio::task::JoinHandle<()>,
    listener: Option<tokio::task::JoinHandle<()>>,
    /// Renews this node's freshness lease.
    keeper: Option<tokio::task::JoinHandle<()>>,
    /// How long a leaving node answers what still arrives.
    shutdown_grace: Duration,
}

/// `--lease 0` leaves a node without a lease row: writers elsewhere do not
/// wait for it (it serves its cache for the whole TTL after their changes),
/// and its own writes wait for no one. So it is refused wherever another
/// node can exist: in a cluster, or on a database where another node holds
/// a lease.
async fn refuse_lease_off_beside_others(settings: &Settings, db: &Db) -> anyhow::Result<()> {
    if !settings.lease.is_zero() {
        return Ok(());
    }
    if settings.cluster.is_some() {
        anyhow::bail!(
            "--lease 0 is refused in a cluster: a node without a freshness lease is invisible \
             to writers on other nodes and could answer a changed user from its cache for the \
             whole cache TTL; give every node a lease (the default is 2s)"
        );
    }
    let others = db
        .running_lease_nodes()
        .await
        .context("cannot read the freshness leases")?;
    if !others.is_empty() {
        anyhow::bail!(
            "--lease 0 is refused: other nodes ({}) hold freshness leases on this database, and \
             a node without a lease is invisible to their writers; give this node a lease (the \
             default is 2s)",
            others.join(", ")
        );
    }
    Ok(())
}

/// On PostgreSQL, the LISTEN task that applies changes made anywhere.
fn ctx_db_listener(
    db: &Db,
    router: &Router,
    telemetry: &Arc<Telemetry>,
    nudge: Option<Arc<tokio::sync::Notify>>,
) -> Option<tokio::task::JoinHandle<()>> {
    db.postgres().map(|pool| {
        crate::notify::spawn(pool.clone(), router.clone(), Arc::clone(telemetry), nudge)
    })
}

impl Application {
    /// Connects to the database (running migrations), prepares the secret,
    /// the first administrator and the actors, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        // Before touching the database: a weak secret is a configuration
        // error, not something to start with.
        if let Some(s) = &settings.jwt_secret {
            config::check_jwt_secret(s)?;
        }
        if let Some(p) = &settings.admin_password {
            config::check_not_weak(
                "the first administrator's password (SESSIOND_ADMIN_PASSWORD)",
                p,
                config::MIN_ADMIN_PASSWORD_BITS,
            )?;
        }
        let source = settings.source.resolve()?;
        // The cluster's settings are checked before anything is written
        // (the first administrator, its password file): a node that cannot
        // start leaves nothing behind.
        let cluster_settings = match &settings.cluster {
            Some(c) => Some(config::cluster_settings(&settings.node_name, c).await?),
            None => None,
        };
        let clock = Clock::new();
        let db = Db::connect(&settings.database_url, clock.clone())
            .await
            .with_context(|| "cannot open the database".to_string())?;
        let db = match source.app() {
            Some(app) => db.with_app_source(app.clone()).await?,
            None => db,
        };
        refuse_lease_off_beside_others(&settings, &db).await?;

        let tokens = crate::keys::tokens(&settings, &db, clock.clone()).await?;

        // With the app's table, administrators are the app's users whose
        // role is `admin`: sessiond makes none.
        let first_admin = match source.password_login() {
            true => {
                ensure_first_admin(
                    &db,
                    &settings.admin_email,
                    settings
                        .admin_password
                        .as_ref()
                        .map(|p| p.expose().to_string()),
                    &settings.admin_password_file,
                )
                .await?
            }
            false => None,
        };
        let dummy_hash = auth::hash_password_blocking(auth::random_secret(24)).await?;

        let telemetry = Telemetry::new();
        let cache = CacheConfig {
            ttl: settings.cache_ttl,
            idle_timeout: settings.idle_timeout,
            hibernate_after: None,
            max_sessions: settings.max_sessions.max(1),
            call_timeout: CacheConfig::DEFAULT_CALL_TIMEOUT,
            lease: (!settings.lease.is_zero()).then_some(settings.lease),
            near: settings.near_cache,
        };
        let link = cluster_settings
            .as_ref()
            .map(|_| ClusterLink::new(Arc::clone(&telemetry)));
        let router = Router::start_linked(
            cache,
            Arc::new(db.clone()),
            telemetry.clone(),
            settings.node_name.clone(),
            link.clone().map(|l| l as Arc<dyn Link>),
        )
        .await
        .context("cannot start the session supervisor")?;
        let cluster = match (cluster_settings, link) {
            (Some(cs), Some(link)) => {
                Some(Cluster::start(cs, router.clone(), link, Arc::clone(&telemetry)).await?)
            }
            _ => None,
        };

        let keeper = LeaseKeeper::new(router.clone(), Arc::new(db.clone()))
            .map(|k| k.catch_up(settings.lease_catch_up));
        let nudge = keeper.as_ref().map(|k| k.nudge());
        let keeper = match keeper {
            Some(mut keeper) => {
                // The first lease before the first request, when the
                // database allows: until then every lookup reads through.
                let first = tokio::time::timeout(settings.lease, keeper.renew()).await;
                if !matches!(first, Ok(Ok(true))) {
                    tracing::warn!("no freshness lease yet: reading through until one is granted");
                }
                Some(tokio::spawn(keeper.run()))
            }
            None => None,
        };
        let listener = ctx_db_listener(&db, &router, &telemetry, nudge);
        // The threads that hash and check passwords: one per core, at least
        // two. Each holds one argon2 buffer (~19 MiB).
        let passwords = Arc::new(auth::PasswordPool::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
        ));
        let audit = Audit::new(db.clone(), clock.clone());
        let better_auth = crate::usecases::better_auth::BetterAuthSessions::new(
            &db,
            router.clone(),
            clock.clone(),
        )
        .map(Arc::new);
        let ctx = Arc::new(Ctx {
            auth: Authenticator::new(Arc::clone(&tokens), router.clone(), Arc::clone(&telemetry)),
            appkeys: AppKeys::new(
                db.clone(),
                router.clone(),
                Arc::clone(&tokens),
                audit.clone(),
            ),
            login: Login::new(
                db.clone(),
                tokens,
                LoginLimiter::new(settings.login_limits.clone()),
                Arc::clone(&passwords),
                audit.clone(),
                dummy_hash,
            ),
            users: Users::new(db.clone(), router.clone(), passwords, audit.clone()),
            audit,
            db,
            router,
            telemetry: Arc::clone(&telemetry),
            clock,
            cluster,
            trusted_proxies: settings.trusted_proxies.clone(),
            drain: http::drain::Drain::new(),
            forward_auth: settings.forward_auth.clone(),
            better_auth,
        });

        let listen = tokio::net::lookup_host(&settings.listen)
            .await
            .with_context(|| format!("cannot resolve the listen address {}", settings.listen))?
            .next()
            .with_context(|| format!("no address for {}", settings.listen))?;
        let https = match &settings.tls {
            Some(files) => Some(Arc::new(http::tls::Https::load(files.clone())?)),
            None => None,
        };
        let scheme = if https.is_some() { "https" } else { "http" };
        let (stop, stopped) = oneshot::channel::<()>();
        let (stop_ops, ops_stopped) = oneshot::channel::<()>();
        let ops = match &settings.ops_listen {
            Some(a) => {
                let tcp = tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on {a}"))?;
                let addr = tcp
                    .local_addr()
                    .with_context(|| format!("cannot listen on {a}"))?;
                let server = http::server::serve(
                    tcp,
                    http::server::Routes {
                        filter: http::routes_of(Arc::clone(&ctx), http::Front::Ops),
                        hot: http::hot::Hot::new(Arc::clone(&ctx), http::Front::Ops),
                    },
                    settings.http.clone(),
                    settings.trusted_proxies.clone(),
                    // Scrapes are not the traffic a leaving node waits out.
                    http::drain::Drain::new(),
                    None,
                    async {
                        let _ = ops_stopped.await;
                    },
                );
                Some((addr, server))
            }
            None => None,
        };
        let front = if ops.is_some() {
            http::Front::Api
        } else {
            http::Front::Both
        };
        let (ops_addr, ops_server) = match ops {
            Some((a, s)) => (Some(a), Some(s)),
            None => (None, None),
        };
        let tcp = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = tcp
            .local_addr()
            .with_context(|| format!("cannot listen on {listen}"))?;
        let server = http::server::serve(
            tcp,
            http::server::Routes {
                filter: http::routes_of(Arc::clone(&ctx), front),
                hot: http::hot::Hot::new(Arc::clone(&ctx), front),
            },
            settings.http.clone(),
            settings.trusted_proxies.clone(),
            Arc::clone(&ctx.drain),
            https,
            async {
                let _ = stopped.await;
                let _ = stop_ops.send(());
            },
        );
        let server = async move {
            match ops_server {
                Some(ops) => drop(tokio::join!(server, ops)),
                None => server.await,
            }
        };
        let (prune_db, retention) = (ctx.db.clone(), settings.audit_retention);
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            let mut round: u64 = 0;
            loop {
                every.tick().await;
                telemetry.upkeep();
                // The audit trail keeps --audit-retention; pruned hourly.
                if round % 720 == 0 {
                    let before = prune_db.clock().now_ms() - retention.as_millis() as i64;
                    if let Err(e) = prune_db.prune_audit(before).await {
                        tracing::warn!(error = %e, "audit pruning failed");
                    }
                }
                round += 1;
            }
        });
        Ok(Application {
            addr,
            ops_addr,
            scheme,
            server: Box::pin(server),
            stop,
            ctx,
            first_admin,
            upkeep,
            listener,
            keeper,
            shutdown_grace: settings.shutdown_grace,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The operations listener's address (`--ops-listen`), if any.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    /// Shared state, for tests that look inside.
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    pub fn first_admin(&self) -> Option<&FirstAdmin> {
        self.first_admin.as_ref()
    }

    /// Tells a person at a terminal where the service is and how to log in.
    /// A generated password is never printed: only the file it is in.
    pub fn print_welcome(&self) {
        // Written whole and errors ignored: a closed stdout must not take
        // the service down.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), self.welcome().as_bytes());
    }

    fn welcome(&self) -> String {
        let url = format!("{}://{}", self.scheme, self.addr);
        let mut out = format!("sessiond listening on {url}\n");
        if let Some(ops) = self.ops_addr {
            out += &format!("operations (metrics, perf, dashboard) on http://{ops}\n");
        }
        let login = |email: &str, password: &str| {
            format!(
                "log in:\n  curl -s -X POST {url}/api/auth/login -H 'content-type: application/json' \\\n       -d '{{\"email\":\"{email}\",\"password\":\"'\"{password}\"'\"}}'\n"
            )
        };
        match &self.first_admin {
            Some(FirstAdmin {
                email,
                password_file: Some(path),
            }) => {
                let path = path.display().to_string();
                out += &format!(
                    "created the first administrator {email}; its password is in the file {path}\n"
                );
                out += "(readable by this user only; set SESSIOND_ADMIN_PASSWORD to choose it instead)\n";
                out += &login(email, &format!("$(cat {path})"));
            }
            Some(FirstAdmin { email, .. }) => {
                out += &format!(
                    "created the first administrator {email} with the password from SESSIOND_ADMIN_PASSWORD\n"
                );
                out += &login(email, "$SESSIOND_ADMIN_PASSWORD");
            }
            None => out += &login("EMAIL", "PASSWORD"),
        }
        out
    }

    /// Serves until `shutdown` completes, then leaves gracefully (see
    /// `leave`): answers what still arrives for up to the shutdown grace,
    /// stops accepting, lets requests in progress finish (within the same
    /// grace), and stops the actors.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        self.run_until(shutdown, std::future::pending()).await
    }

    /// Like [`Application::run_until_stopped`], and `cut` (first polled
    /// once `shutdown` has completed: a second signal) ends the drain at
    /// once: the node still turns unready, gives up its lease and tells its
    /// peers, then exits without waiting for traffic to stop or for
    /// requests in progress.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()>,
        cut: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let Application {
            server,
            stop,
            ctx,
            upkeep,
            listener,
            keeper,
            shutdown_grace,
            ..
        } = self;
        let mut server = server;
        let mut keeper = keeper;
        tokio::select! {
            _ = &mut server => {}
            _ = shutdown => {
                let deadline = tokio::time::Instant::now() + shutdown_grace;
                tracing::info!(grace = ?shutdown_grace, "leaving: not ready, draining");
                // Serving goes on while the node leaves.
                let cut_short = tokio::select! {
                    _ = &mut server => false,
                    cut_short = leave(&ctx, keeper.take(), deadline, cut) => cut_short,
                };
                let _ = stop.send(());
                if cut_short {
                    tracing::warn!("stopping at once: requests in progress are dropped");
                } else if tokio::time::timeout_at(deadline, &mut server).await.is_err() {
                    tracing::warn!("requests still in flight at the end of the shutdown grace");
                }
            }
        }
        upkeep.abort();
        if let Some(l) = listener {
            l.abort();
        }
        if let Some(k) = keeper {
            k.abort();
            let _ = k.await;
            give_up_lease(&ctx).await;
        }
        if let Some(c) = &ctx.cluster {
            c.stop();
        }
        ctx.router.stop().await;
        tracing::info!("stopped");
        Ok(())
    }
}
