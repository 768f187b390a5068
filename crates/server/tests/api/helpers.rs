//! Test harness: starts the real application on port 0 with a fresh database (a temp SQLite
//! file, or a new database on the PostgreSQL server named by `TESSERA_TEST_PG_ADMIN_URL`) and
//! calls it over HTTP.
//!
//! PostgreSQL tests fail, never skip, when that variable is missing: `scripts/test` starts a
//! throw-away cluster and sets it.

use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tessera_core::config::Settings;
use tessera_core::service::Clock;
use tessera_server::Application;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A clock the test can move forward.
#[derive(Default)]
pub struct TestClock {
    offset_ms: AtomicI64,
}

impl TestClock {
    pub fn advance_secs(&self, s: i64) {
        self.offset_ms.fetch_add(s * 1000, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        tessera_core::service::SystemClock.now_ms() + self.offset_ms.load(Ordering::SeqCst)
    }
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub api: String,
    pub base: String,
    pub account: String,
    pub key: String,
    pub client: reqwest::Client,
    pub clock: Arc<TestClock>,
    pub settings: Settings,
    pub state: Arc<tessera_server::AppState>,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A fresh database URL for `backend` (None = the SQLite default in the data dir).
pub async fn fresh_database(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let admin = std::env::var("TESSERA_TEST_PG_ADMIN_URL")
                .expect("TESSERA_TEST_PG_ADMIN_URL is not set: PostgreSQL tests need a server (scripts/test starts one)");
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("cannot connect to the test PostgreSQL server");
            let name = format!("tessera_t_{}", hex::encode(rand::random::<[u8; 8]>()));
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
            Some(format!("{base}/{name}"))
        }
    }
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut settings = Settings { listen: "127.0.0.1:0".into(), data_dir: tmp.path().to_path_buf(), ..Settings::default() };
    settings.database_url = fresh_database(backend).await;
    configure(&mut settings);
    let clock = Arc::new(TestClock::default());
    let mut app = start(settings.clone(), clock.clone()).await;
    app._tmp = Some(tmp);
    app
}

/// Starts an application on existing settings (a restart keeps the data dir and database).
pub async fn start(settings: Settings, clock: Arc<TestClock>) -> TestApp {
    let application = Application::build_with_clock(settings.clone(), clock.clone()).await.expect("build app");
    let initial = application.initial_account.clone();
    let addr = application.local_addr();
    let state = application.state();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(application.run_until(async move {
        let _ = rx.await;
    }));
    let (account, key) = match initial {
        Some(k) => (k.account, k.key),
        None => {
            let text = std::fs::read_to_string(settings.data_dir.join("initial-account.json")).expect("initial-account.json");
            let v: Value = serde_json::from_str(&text).expect("json");
            (v["spAccountLoginName"].as_str().unwrap_or("").to_string(), v["spAccountLoginKey"].as_str().unwrap_or("").to_string())
        }
    };
    TestApp {
        addr,
        api: format!("http://{addr}/AuthServer/REST/U2F/U2FServer.aspx"),
        base: format!("http://{addr}"),
        account,
        key,
        client: reqwest::Client::new(),
        clock,
        data_dir: settings.data_dir.clone(),
        settings,
        state,
        _tmp: None,
        stop: Some(tx),
        task: Some(task),
    }
}

impl TestApp {
    /// Calls `type` with the app's account credentials and `fields`.
    pub async fn call(&self, ty: &str, fields: Value) -> Value {
        self.call_as(&self.account, &self.key, ty, fields).await
    }

    pub async fn call_as(&self, account: &str, key: &str, ty: &str, fields: Value) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), json!(ty));
        body.insert("spAccountLoginName".into(), json!(account));
        body.insert("spAccountLoginKey".into(), json!(key));
        if let Value::Object(m) = fields {
            body.extend(m);
        }
        let (status, v) = self.post_raw(serde_json::to_vec(&Value::Object(body)).expect("json")).await;
        assert_eq!(status, 200, "HTTP status for {ty}: {v}");
        assert!(v["type"].as_str().is_some(), "reply without type: {v}");
        v
    }

    /// Posts raw bytes; returns (HTTP status, parsed JSON body).
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let r = self.client.post(&self.api).header("content-type", "application/json").body(body).send().await.expect("request");
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let text = r.text().await.expect("body");
        assert!(ct.starts_with("application/json"), "content-type {ct:?} for body {text}");
        (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {text}")))
    }

    /// A JSON object with this app's credentials plus `fields`, as a string.
    pub fn body(&self, ty: &str, fields: Value) -> String {
        let mut m = Map::new();
        m.insert("type".into(), json!(ty));
        m.insert("spAccountLoginName".into(), json!(self.account));
        m.insert("spAccountLoginKey".into(), json!(self.key));
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        Value::Object(m).to_string()
    }

    /// Creates another account directly in the store; returns (name, key).
    pub async fn other_account(&self, name: &str) -> (String, String) {
        let k = tessera_core::service::accounts::create(&*self.state.service.store, name, 0).await.expect("create account");
        (k.account, k.key)
    }

    /// Stops gracefully (in-flight requests finish, audit flushed).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task").expect("server result");
        }
    }

    /// Stops and starts again on the same data dir and database.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let tmp = self._tmp.take();
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".into();
        let mut app = start(settings, self.clock.clone()).await;
        app._tmp = tmp;
        app
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs an async test body once per backend: `api_test!(name);` after `async fn name(b: Backend)`.
#[macro_export]
macro_rules! api_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// Asserts an envelope's errorCode, printing the reply when it differs.
#[track_caller]
pub fn assert_code(v: &Value, code: i64) {
    assert_eq!(v["errorCode"].as_i64(), Some(code), "unexpected reply: {v}");
}

/// Starts another application on `app`'s settings (same data dir, so the same master key and SQLite
/// file, and the same database URL) on a new port: a second node sharing the first one's data.
pub async fn start_second(app: &TestApp) -> TestApp {
    let mut settings = app.settings.clone();
    settings.listen = "127.0.0.1:0".into();
    start(settings, app.clock.clone()).await
}
