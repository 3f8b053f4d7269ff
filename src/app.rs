//! The application: built from [`Settings`], bound to its listener, run
//! until a shutdown signal. Tests build it on port 0 with a database of
//! their own and drive it over a real socket.
//!
//! Over the ~450-line guide: building the application wires every part
//! (store, actors, lease keeper, cluster, HTTP front) in one readable sequence.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::oneshot;

use sessiond_actors::{CacheConfig, LeaseKeeper, LeaseStore, Link, Router};

use crate::auth;
use crate::clock::Clock;
use crate::cluster::{Cluster, ClusterLink, ClusterSettings, ClusterTls};
use crate::config::{ClusterArgs, Settings, UserAddArgs};
use crate::http::{self, Ctx};
use crate::limiter::LoginLimiter;
use crate::metrics::Telemetry;
use crate::store::{Db, WriteError};
use crate::usecases::authenticate::Authenticator;
use crate::usecases::login::Login;
use crate::usecases::users::{self, validate_new_password, NewUser, UserError, Users};
use crate::usecases::Audit;

/// The email of the administrator created on first start.
pub const FIRST_ADMIN: &str = "admin@localhost";

/// The shortest HS256 secret accepted: RFC 7518 §3.2 requires a key at
/// least as long as the hash output (256 bits).
pub const MIN_JWT_SECRET: usize = 32;

fn check_jwt_secret(secret: &str) -> anyhow::Result<()> {
    if secret.len() < MIN_JWT_SECRET {
        anyhow::bail!(
            "the JWT secret (--jwt-secret or SESSIOND_JWT_SECRET) is {} bytes; HS256 needs at \
             least {MIN_JWT_SECRET} (RFC 7518 section 3.2): generate one with `openssl rand -base64 48`",
            secret.len()
        );
    }
    Ok(())
}

/// The shortest cluster cookie accepted.
pub const MIN_CLUSTER_COOKIE: usize = 32;

/// Validates the cluster flags.
async fn cluster_settings(node_name: &str, c: &ClusterArgs) -> anyhow::Result<ClusterSettings> {
    if c.cookie.trim().is_empty() {
        anyhow::bail!("a cluster needs a cookie: --cluster-cookie or SESSIOND_CLUSTER_COOKIE");
    }
    // The handshake digest lets anyone who sees it test cookies offline: a
    // short one falls to guessing.
    if c.cookie.len() < MIN_CLUSTER_COOKIE {
        anyhow::bail!(
            "the cluster cookie (--cluster-cookie or SESSIOND_CLUSTER_COOKIE) is {} bytes; at \
             least {MIN_CLUSTER_COOKIE} are required: generate one with `openssl rand -base64 48`",
            c.cookie.len()
        );
    }
    if node_name.is_empty() || node_name.len() > 255 {
        anyhow::bail!("--node-name must be 1 to 255 characters");
    }
    let listen = tokio::net::lookup_host(&c.listen)
        .await
        .with_context(|| format!("cannot resolve the cluster address {}", c.listen))?
        .next()
        .with_context(|| format!("no address for {}", c.listen))?;
    let tls = match &c.tls {
        Some(f) => Some(ClusterTls::load(&f.cert, &f.key, &f.ca)?),
        None => {
            tracing::warn!(
                listen = %listen,
                "CLUSTER TRAFFIC IS NOT ENCRYPTED: without --cluster-tls-cert/-key/-ca, \
                 user records and the cookie's handshake cross the network in plaintext; \
                 use TLS unless the network between nodes is private"
            );
            None
        }
    };
    Ok(ClusterSettings {
        node_name: node_name.to_string(),
        tls,
        listen,
        join: c
            .join
            .iter()
            .filter(|j| !j.trim().is_empty())
            .cloned()
            .collect(),
        cookie: c.cookie.clone(),
    })
}

async fn hash_blocking(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .context("password hashing task failed")?
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

/// The first administrator, when this start created one.
pub struct FirstAdmin {
    pub email: String,
    /// Set when the password was generated (and so must be shown once).
    pub generated_password: Option<String>,
}

type ServerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct Application {
    addr: SocketAddr,
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
            check_jwt_secret(s)?;
        }
        let clock = Clock::new();
        let db = Db::connect(&settings.database_url, clock.clone())
            .await
            .with_context(|| "cannot open the database".to_string())?;

        let tokens = crate::keys::tokens(&settings, &db, clock.clone()).await?;

        let first_admin = ensure_first_admin(&db, settings.admin_password.clone()).await?;
        let dummy_hash = hash_blocking(auth::random_secret(24)).await?;

        let telemetry = Telemetry::new();
        let cache = CacheConfig {
            ttl: settings.cache_ttl,
            idle_timeout: settings.idle_timeout,
            hibernate_after: None,
            max_sessions: settings.max_sessions.max(1),
            call_timeout: Duration::from_secs(5),
            lease: (!settings.lease.is_zero()).then_some(settings.lease),
            near: settings.near_cache,
        };
        let cluster_settings = match &settings.cluster {
            Some(c) => Some(cluster_settings(&settings.node_name, c).await?),
            None => None,
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

        let keeper = LeaseKeeper::new(router.clone(), Arc::new(db.clone()));
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
        let ctx = Arc::new(Ctx {
            auth: Authenticator::new(Arc::clone(&tokens), router.clone(), Arc::clone(&telemetry)),
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
        });

        let listen = tokio::net::lookup_host(&settings.listen)
            .await
            .with_context(|| format!("cannot resolve the listen address {}", settings.listen))?
            .next()
            .with_context(|| format!("no address for {}", settings.listen))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let tcp = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = tcp
            .local_addr()
            .with_context(|| format!("cannot listen on {listen}"))?;
        let server = http::server::serve(
            tcp,
            http::routes(Arc::clone(&ctx)),
            settings.http.clone(),
            settings.trusted_proxies.clone(),
            Arc::clone(&ctx.drain),
            async {
                let _ = stopped.await;
            },
        );
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

    /// Shared state, for tests that look inside.
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    pub fn first_admin(&self) -> Option<&FirstAdmin> {
        self.first_admin.as_ref()
    }

    /// Tells a person at a terminal where the service is and how to log in.
    /// The generated password is printed here, once, and never logged.
    pub fn print_welcome(&self) {
        // Written whole and errors ignored: a closed stdout must not take
        // the service down.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), self.welcome().as_bytes());
    }

    fn welcome(&self) -> String {
        let url = format!("http://{}", self.addr);
        let mut out = format!("sessiond listening on {url}\n");
        let login = |email: &str, password: &str| {
            format!(
                "log in:\n  curl -s -X POST {url}/api/auth/login -H 'content-type: application/json' \\\n       -d '{{\"email\":\"{email}\",\"password\":\"{password}\"}}'\n"
            )
        };
        match &self.first_admin {
            Some(FirstAdmin {
                email,
                generated_password: Some(p),
            }) => {
                out += &format!("created the first administrator {email} with password: {p}\n");
                out += "(shown only now; set SESSIOND_ADMIN_PASSWORD to choose it instead)\n";
                out += &login(email, p);
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
    /// [`leave`]): answers what still arrives for up to the shutdown grace,
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

/// Leaving, in an order that keeps "no stale answer after an
/// acknowledged write" (docs/freshness.md):
///
/// 1. `/readyz` answers 503: load balancers stop sending new traffic.
/// 2. The lease keeper stops, then the lease ends locally: from now on
///    this node reads through (or forwards to a peer holding a lease) and
///    never answers from its cache. Only then is the lease row deleted,
///    so writers stop waiting for this node only once it cannot serve
///    what they change.
/// 3. The peers are told, and drop this node from their views at once:
///    they take its users over and stop forwarding to it. It still
///    answers their calls (forwards, invalidations) until it exits.
/// 4. Whatever still arrives is answered, until nothing has come for
///    [`http::drain::QUIET`] or `deadline` passes, or `cut` completes
///    (then it returns `true`).
async fn leave(
    ctx: &Ctx,
    keeper: Option<tokio::task::JoinHandle<()>>,
    deadline: tokio::time::Instant,
    cut: impl Future<Output = ()>,
) -> bool {
    ctx.drain.start_leaving();
    if let Some(k) = keeper {
        k.abort();
        // Awaited: a renewal finishing on another thread must not extend
        // the lease after it was given up.
        let _ = k.await;
    }
    give_up_lease(ctx).await;
    if let Some(c) = &ctx.cluster {
        c.leave().await;
    }
    tokio::select! {
        _ = ctx.drain.quiet(http::drain::QUIET, deadline) => {
            tracing::info!("no more traffic: closing");
            false
        }
        _ = cut => {
            tracing::warn!("stopped again: not waiting for traffic to stop");
            true
        }
    }
}

/// Stops answering from the cache, then deletes the lease row: writers
/// need not wait for a lease that is given up. The keeper must be stopped.
async fn give_up_lease(ctx: &Ctx) {
    if let Some(lease) = ctx.router.lease() {
        lease.expire();
        match tokio::time::timeout(Duration::from_secs(2), ctx.db.release(lease.instance())).await {
            Ok(Ok(())) => tracing::info!("freshness lease released"),
            // Writers then wait for it to run out (one --lease at most).
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing the freshness lease failed"),
            Err(_) => tracing::warn!("releasing the freshness lease timed out"),
        }
    }
}

/// With no user in the database, creates `admin@localhost`.
async fn ensure_first_admin(
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
    let hash = hash_blocking(password.clone()).await?;
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

/// `sessiond user add`.
pub async fn add_user(args: UserAddArgs) -> anyhow::Result<()> {
    let new = NewUser::parse(&args.email, args.password, Some(args.role))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = Db::connect(&args.database_url, Clock::new())
        .await
        .context("cannot open the database")?;
    let hash = hash_blocking(new.password.clone()).await?;
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

/// Completes on SIGINT or SIGTERM (one that arrives after the call is first
/// polled).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
