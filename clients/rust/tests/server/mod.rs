//! The real sessiond, in-process on port 0 with a SQLite file of its own,
//! for the client to talk to over a real socket. Users are created and
//! changed through the admin API, as an operator would.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::sync::oneshot;

use sessiond::app::Application;
use sessiond::config::Settings;
use sessiond_client::SessiondClient;
use sessiond_testkit::http::{self, Reply};

pub(crate) const ADMIN_EMAIL: &str = "admin@localhost";
pub(crate) const ADMIN_PASSWORD: &str = "admin-password-for-tests";
const PASSWORD: &str = "password-123";

pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    db: sessiond::store::Db,
    admin_token: String,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub(crate) async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}", dir.path().join("sessiond.db").display()),
        jwt_secret: Some("client-test-secret-0123456789abcdef".into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        ..Settings::default()
    };
    let app = Application::build(settings).await.expect("sessiond builds");
    let addr = app.addr();
    let db = app.ctx().db.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let done = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let mut app = TestApp {
        addr,
        db,
        admin_token: String::new(),
        stop: Some(stop),
        done: Some(done),
        _dir: dir,
    };
    app.admin_token = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    app
}

impl TestApp {
    pub(crate) fn client(&self) -> SessiondClient {
        SessiondClient::new(&format!("http://{}", self.addr)).expect("a valid base URL")
    }

    async fn login(&self, email: &str, password: &str) -> String {
        self.client()
            .login(email, password)
            .await
            .expect("logs in")
            .token
    }

    /// An admin call: sessiond's answer.
    pub(crate) async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let request = http::Request {
            method,
            path,
            token: Some(&self.admin_token),
            body,
        };
        http::send(&self.addr.to_string(), request, Duration::from_secs(20))
            .await
            .expect("sessiond answers")
    }

    /// Creates a user with `role` and logs in as it: `(id, token)`.
    pub(crate) async fn user_with_token(&self, email: &str, role: &str) -> (i64, String) {
        let body = json!({ "email": email, "password": PASSWORD, "role": role }).to_string();
        let r = self.admin("POST", "/api/admin/users", Some(&body)).await;
        assert_eq!(r.status, 201, "create user: {}", r.text);
        let id = r.body["id"].as_i64().expect("id");
        (id, self.login(email, PASSWORD).await)
    }

    /// A new app key with `scopes` (as `sessiond appkey create` stores one).
    pub(crate) async fn app_key(&self, scopes: &str) -> String {
        let new = sessiond::usecases::appkeys::NewKey::generate();
        self.db
            .create_app_key(&new.id, "client tests", scopes, &new.hash)
            .await
            .expect("stores the key");
        new.key
    }

    /// Stops sessiond the way SIGTERM does and waits for it.
    pub(crate) async fn stop(mut self) {
        let (Some(stop), Some(done)) = (self.stop.take(), self.done.take()) else {
            return;
        };
        let _ = stop.send(());
        let stopped = done.await.expect("sessiond's task");
        stopped.expect("sessiond stops cleanly");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
