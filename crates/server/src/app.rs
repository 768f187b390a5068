//! Start-up and shutdown: prepares the data directory, the master key and the database, creates
//! the first account on an empty database, loads the TLS pair (if `[tls]` is set), binds the
//! listener (port 0 works, for tests) and serves ([`crate::listener`]) until a shutdown signal,
//! letting in-flight requests finish. SIGHUP reloads the TLS pair.

use crate::metrics::Metrics;
use crate::{json_api, ops};
use anyhow::Context;
use axum::routing::{any, get};
use axum::Router;
use std::fs;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tessera_core::config::Settings;
use tessera_core::crypto::MasterKey;
use tessera_core::service::accounts::{self, IssuedKey};
use tessera_core::service::{audit, Clock, SystemClock};
use tessera_core::store::Store;
use tessera_core::Service;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Shared by every handler.
pub struct AppState {
    pub service: Arc<Service>,
    pub metrics: Metrics,
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    /// The RADIUS socket, when `[radius] listen` is set.
    radius: Option<tokio::net::UdpSocket>,
    tls: Option<crate::tls::Tls>,
    limits: crate::listener::Limits,
    state: Arc<AppState>,
    audit_writer: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    /// The key of the account created on this start (first start only).
    pub initial_account: Option<IssuedKey>,
}

/// The database URL: the configured one, else the SQLite file in the data dir.
pub fn database_url(settings: &Settings) -> String {
    match settings.database_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", settings.data_dir.join("tessera.db").display()),
    }
}

/// Creates the data dir (mode 0700) if needed.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).with_context(|| format!("cannot set permissions of {}", p.display()))
}

#[cfg(not(unix))]
fn set_mode(_p: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}

/// Writes a file readable only by its owner (0600), atomically (temp file + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    set_mode(&tmp, 0o600)?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The master key: `TESSERA_MASTER_KEY` / `master_key`, else `<data dir>/master.key`, created
/// (0600) on first start.
pub fn load_master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    if let Some(k) = settings.master_key.as_deref().filter(|k| !k.trim().is_empty()) {
        return MasterKey::from_hex(k).map_err(|e| anyhow::anyhow!("TESSERA_MASTER_KEY: {e}"));
    }
    let path = settings.data_dir.join("master.key");
    if path.exists() {
        let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return MasterKey::from_hex(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let key = MasterKey::generate();
    write_private(&path, format!("{}\n", key.to_hex()).as_bytes())?;
    tracing::warn!(path = %path.display(), "created a new master key; back it up: without it no OTP seed can be read");
    Ok(key)
}

/// Opens the database (migrating it) and checks that the master key is the one it was used with.
pub async fn open_store(settings: &Settings, key: &MasterKey) -> anyhow::Result<Arc<dyn Store>> {
    let url = database_url(settings);
    let store = tessera_store::open(&url, settings.db_max_connections, true)
        .await
        .with_context(|| format!("cannot open database {}", tessera_core::config::redact_url(&url)))?;
    let stored = store.meta_init("master_key_check", &key.check_value()).await?;
    if stored != key.check_value() {
        anyhow::bail!(
            "the master key does not match the one this database was created with (set the same TESSERA_MASTER_KEY on every node)"
        );
    }
    // Usernames stored before NFKC normalisation get their normalised key (once per database);
    // collisions are logged as errors by the migration and listed by `tessera migrate`.
    tessera_core::service::usernames::migrate_once(&*store).await.context("cannot normalise stored usernames")?;
    Ok(store)
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self::build_with_clock(settings, clock).await
    }

    pub async fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        // A bad TLS pair stops the start before anything else is touched.
        let tls = crate::tls::from_settings(&settings.tls)?;
        let limits = crate::listener::Limits::from_settings(&settings.server);
        ensure_data_dir(&settings.data_dir)?;
        let key = load_master_key(&settings)?;
        let store = open_store(&settings, &key).await?;
        let delivery = tessera_delivery::Delivery::from_settings(&settings.delivery, store.clone(), clock.clone(), key.clone())?;
        let initial_account = accounts::bootstrap(&*store, clock.now()).await?;
        if let Some(k) = &initial_account {
            let path: PathBuf = settings.data_dir.join("initial-account.json");
            let body = serde_json::to_vec_pretty(&k.to_json())?;
            write_private(&path, &body)?;
            // Shown once, on purpose: the operator needs it to make the first call.
            println!("Created account {:?}; its key is shown once and was written to {} (mode 0600):", k.account, path.display());
            println!("{}", serde_json::to_string(&k.to_json())?);
        }
        let listener = TcpListener::bind(&settings.listen).await.with_context(|| format!("cannot listen on {}", settings.listen))?;
        let radius = match settings.radius.listen.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            Some(addr) => Some(crate::radius::bind(addr).await?),
            None => None,
        };
        let (sink, writer) = audit::channel(store.clone(), key.audit_chain_key());
        let audit_writer = tokio::spawn(writer);
        let settings = Arc::new(settings);
        let service =
            Arc::new(Service::new(store.clone(), settings.clone(), key, clock.clone(), sink).with_dispatcher(delivery.dispatcher()));
        let state = Arc::new(AppState { service, metrics: Metrics::new() });
        let mut background = vec![tokio::spawn(purge_loop(store, clock)), tokio::spawn(delivery.worker())];
        #[cfg(unix)]
        background.push(reload_on_sighup(tls.as_ref().map(|t| t.certs.clone()))?);
        Ok(Application { listener, radius, tls, limits, state, audit_writer, background, initial_account })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The RADIUS socket's address, when RADIUS is on.
    pub fn radius_addr(&self) -> Option<SocketAddr> {
        self.radius.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The listener speaks HTTPS only.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    pub fn router(state: Arc<AppState>) -> Router {
        Router::new()
            .route(json_api::PATH, any(json_api::handle))
            .route(crate::soap::PATH, any(crate::soap::handle))
            .route("/healthz", get(ops::healthz))
            .route("/readyz", get(ops::readyz))
            .route("/metrics", get(ops::metrics))
            .route("/openapi.json", get(ops::openapi))
            .with_state(state)
    }

    /// Serves until `shutdown` completes; then lets in-flight requests finish and flushes the
    /// audit trail.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, radius, tls, limits, state, audit_writer, mut background, .. } = self;
        tracing::info!(addr = %listener.local_addr()?, tls = tls.is_some(), "listening");
        if let Some(socket) = radius {
            tracing::info!(addr = %socket.local_addr()?, "RADIUS listening (udp)");
            background.push(tokio::spawn(crate::radius::serve(socket, state.clone())));
        }
        let router = Self::router(state.clone());
        crate::listener::serve(listener, router, tls, limits, shutdown).await;
        for task in background {
            task.abort();
        }
        drop(state);
        if tokio::time::timeout(Duration::from_secs(10), audit_writer).await.is_err() {
            tracing::error!("audit writer did not finish within 10 s");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

async fn purge_loop(store: Arc<dyn Store>, clock: Arc<dyn Clock>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(e) = store.purge_expired(clock.now()).await {
            tracing::warn!(error = %e, "purging expired rows failed");
        }
    }
}

/// Listens for SIGHUP (from start-up on, so that the signal never ends the process) and reloads
/// the TLS pair on each; a pair that fails to load is logged and the one in use stays.
#[cfg(unix)]
fn reload_on_sighup(certs: Option<Arc<crate::tls::CertStore>>) -> anyhow::Result<JoinHandle<()>> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match &certs {
                None => tracing::info!("SIGHUP received; no [tls] configured, nothing to reload"),
                Some(certs) => match certs.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded; new connections use them"),
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: TLS reload failed; the certificate in use stays"),
                },
            }
        }
    }))
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
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
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
