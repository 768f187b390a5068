//! The service layer: one entry point, [`Service::handle`], used by both front doors.
//!
//! Flow of one request: authenticate the account (9000 and stop if that fails) → look the
//! operation up in the catalogue → run its handler (which reads typed values from [`Params`],
//! loads through the [`Store`], calls the pure `otp`/`u2f` code and writes back in one
//! use-case-sized step) → record the audit row → return an [`Outcome`] that each front door
//! renders in exactly one place.

pub mod accounts;
pub mod audit;
pub mod delivery;
pub mod oath;
pub mod radius;
pub mod sent;
pub mod sessions;
pub mod u2f;
pub mod usernames;
pub mod users;
pub mod webauthn;

use crate::catalog::{self, Group, OpSpec};
use crate::config::Settings;
use crate::crypto::{self, MasterKey};
use crate::error::{code, ApiError};
use crate::params::Params;
use crate::store::{AccountRow, AuditRow, Store};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Instant;

/// How long an account read from the database is reused for authentication (milliseconds),
/// measured from before the read on this process's monotonic clock. An operator command that
/// changes an account (`account disable`, `account rotate-key`, ...) returns only once this time
/// (plus [`REVOCATION_MARGIN_MS`]) has passed since its commit ([`accounts::wait_for_caches`]): by
/// then every node's cached copy from before the change has expired, so the change holds for the
/// very next request on every node, with no database read per request.
pub const ACCOUNT_CACHE_MS: i64 = 1000;
/// Added to [`ACCOUNT_CACHE_MS`] by the operator command's wait (clock rate differences, scheduling).
pub const REVOCATION_MARGIN_MS: i64 = 100;

/// Wall-clock time, injectable for tests.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
    }
}

/// Where the request came from (for the audit trail).
#[derive(Debug, Clone, Default)]
pub struct RequestCtx {
    pub source: String,
}

/// The authenticated account a request acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Shared with the account cache: authenticating copies no strings.
    pub account: Arc<AccountRow>,
}

impl Caller {
    pub fn account_id(&self) -> i64 {
        self.account.id
    }
}

/// A handler's success: the operation's fields (besides type / errorCode / errorMessage).
pub type Reply = Map<String, Value>;
pub type OpResult = Result<Reply, ApiError>;

/// What a front door renders.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The reply's `type`.
    pub reply_type: String,
    pub result: OpResult,
    /// `errorMessage` on success.
    pub ok_message: &'static str,
    pub op: Option<&'static OpSpec>,
}

impl Outcome {
    pub fn code(&self) -> i64 {
        match &self.result {
            Ok(_) => code::OK,
            Err(e) => e.code,
        }
    }
    pub fn message(&self) -> &str {
        match &self.result {
            Ok(_) => self.ok_message,
            Err(e) => &e.message,
        }
    }
}

/// Everything a handler needs.
pub struct Service {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub master_key: MasterKey,
    pub clock: Arc<dyn Clock>,
    audit: audit::AuditSink,
    /// Hash of a random value, compared against when the account name is unknown so that an
    /// unknown account costs the same as a wrong key.
    dummy_key_hash: Vec<u8>,
    /// argon2id hash of a random password, verified against when the user is unknown.
    pub(crate) dummy_password_hash: String,
    /// Accounts read in the last [`ACCOUNT_CACHE_MS`] (by name), so that most requests authenticate
    /// without a database read. The operator commands that change an account wait that long before
    /// they return, so a rotated key or a disabled account holds for the next request on every node.
    account_cache: std::sync::Mutex<std::collections::HashMap<String, (Arc<AccountRow>, Instant)>>,
    /// Makes the first delivery attempt of a queued message (None: the outbox worker alone sends).
    pub dispatcher: Option<Arc<dyn delivery::Dispatcher>>,
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        settings: Arc<Settings>,
        master_key: MasterKey,
        clock: Arc<dyn Clock>,
        audit: audit::AuditSink,
    ) -> Self {
        let dummy_password_hash = crypto::hash_password(&crypto::random_token()).unwrap_or_default();
        Service {
            store,
            settings,
            master_key,
            clock,
            audit,
            dummy_key_hash: crypto::secret_hash(&crypto::random_token()),
            dummy_password_hash,
            dispatcher: None,
            account_cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Sets the delivery dispatcher (see [`delivery::Dispatcher`]).
    pub fn with_dispatcher(mut self, dispatcher: Arc<dyn delivery::Dispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Authenticates the account of a request: a wrong or missing pair, or a disabled account, is 9000.
    pub async fn authenticate(&self, name: Option<&str>, key: Option<&str>) -> Result<Caller, ApiError> {
        let (Some(name), Some(key)) = (name.filter(|s| !s.is_empty()), key.filter(|s| !s.is_empty())) else {
            return Err(ApiError::partner_login());
        };
        // A NUL cannot be in any account name (and PostgreSQL refuses it in text): 9000, not a database error.
        if name.len() > 256 || key.len() > 1024 || name.contains('\0') {
            return Err(ApiError::partner_login());
        }
        let candidate = crypto::secret_hash(key);
        let account = self.account_by_name_cached(name).await?;
        let expected = account.as_ref().map(|a| a.key_hash.as_slice()).unwrap_or(&self.dummy_key_hash);
        let key_ok = crypto::ct_eq(&candidate, expected);
        match account {
            Some(account) if key_ok && account.enabled => Ok(Caller { account }),
            _ => Err(ApiError::partner_login()),
        }
    }

    async fn account_by_name_cached(&self, name: &str) -> Result<Option<Arc<AccountRow>>, ApiError> {
        // Monotonic time, taken before the read: an entry never outlives the read's snapshot by more
        // than ACCOUNT_CACHE_MS, whatever the wall clock does.
        let before_read = Instant::now();
        let max_age = std::time::Duration::from_millis(ACCOUNT_CACHE_MS.unsigned_abs());
        if let Ok(cache) = self.account_cache.lock() {
            if let Some((row, at)) = cache.get(name) {
                if before_read.saturating_duration_since(*at) < max_age {
                    return Ok(Some(row.clone()));
                }
            }
        }
        let account = self.store.account_by_name(name).await?.map(Arc::new);
        if let (Some(row), Ok(mut cache)) = (&account, self.account_cache.lock()) {
            if cache.len() >= 10_000 {
                cache.clear();
            }
            cache.insert(name.to_string(), (row.clone(), before_read));
        }
        Ok(account)
    }

    /// Handles one request from either front door and records it in the audit trail.
    pub async fn handle(&self, type_name: Option<&str>, params: Params, ctx: &RequestCtx) -> Outcome {
        let started = Instant::now();
        let sent_type = type_name.unwrap_or("").to_string();
        let op = catalog::lookup(&sent_type);
        let account_name = params.opt_str("spAccountLoginName").ok().flatten();
        let account_key = params.opt_str("spAccountLoginKey").ok().flatten();
        let mut account_id = None;
        let result = match self.authenticate(account_name.as_deref(), account_key.as_deref()).await {
            Err(e) => Err(e),
            Ok(caller) => {
                account_id = Some(caller.account_id());
                match op {
                    None if sent_type.is_empty() => Err(ApiError::new(code::UNKNOWN_TYPE, "missing field: type")),
                    None => Err(ApiError::new(code::UNKNOWN_TYPE, format!("unknown type [{}]", crate::error::display_name(&sent_type)))),
                    Some(op) => self.run(op, &caller, &params).await,
                }
            }
        };
        let audited = Audited { account_id, account_name: account_name.as_deref().unwrap_or(""), started };
        self.finish(op, &sent_type, result, &params, ctx, audited).await
    }

    /// The account named `name` as a caller, if it exists and is enabled, for front doors that
    /// identify the account by other means than its key (a RADIUS client belongs to one account).
    /// Uses the same cache as [`Service::authenticate`]: a disabled account stops within a second.
    pub async fn account_caller(&self, name: &str) -> Result<Option<Caller>, ApiError> {
        Ok(self.account_by_name_cached(name).await?.filter(|a| a.enabled).map(|account| Caller { account }))
    }

    /// Runs operation `type_name` for an already identified `caller` through the same handler as
    /// [`Service::handle`], and records it in the audit trail the same way.
    pub async fn handle_as(&self, caller: &Caller, type_name: &str, params: Params, ctx: &RequestCtx) -> Outcome {
        let started = Instant::now();
        let op = catalog::lookup(type_name);
        let result = match op {
            Some(op) => self.run(op, caller, &params).await,
            None => Err(ApiError::new(code::UNKNOWN_TYPE, format!("unknown type [{}]", crate::error::display_name(type_name)))),
        };
        let audited = Audited { account_id: Some(caller.account_id()), account_name: &caller.account.name, started };
        self.finish(op, type_name, result, &params, ctx, audited).await
    }

    /// The end of every request, from any front door: the [`Outcome`], and its audit row.
    async fn finish(
        &self,
        op: Option<&'static OpSpec>,
        sent_type: &str,
        result: OpResult,
        params: &Params,
        ctx: &RequestCtx,
        audited: Audited<'_>,
    ) -> Outcome {
        let reply_type = match op.and_then(|o| o.reply_type) {
            Some(fixed) => fixed.to_string(),
            None => sent_type.to_string(),
        };
        let outcome = Outcome { reply_type, result, ok_message: op.map(|o| o.ok_message).unwrap_or("OK"), op };
        self.audit
            .record(AuditRow {
                at_ms: self.clock.now_ms(),
                account_id: audited.account_id,
                account_name: clip(audited.account_name),
                op: clip(op.map(|o| o.name).unwrap_or(sent_type)),
                username: clip(&params.opt_str("username").ok().flatten().unwrap_or_default()),
                psn: clip(&params.opt_str("psn").ok().flatten().unwrap_or_default()),
                code: outcome.code(),
                source: clip(&ctx.source),
                duration_us: audited.started.elapsed().as_micros() as i64,
                ..AuditRow::default()
            })
            .await;
        outcome
    }

    async fn run(&self, op: &'static OpSpec, caller: &Caller, params: &Params) -> OpResult {
        match op.group {
            Group::Users => users::run(self, op.name, caller, params).await,
            Group::Sessions => sessions::run(self, op.name, caller, params).await,
            Group::Oath => oath::run(self, op.name, caller, params).await,
            Group::Delivery => delivery::run(self, op.name, caller, params).await,
            Group::U2f => u2f::run(self, op.name, caller, params).await,
            Group::WebAuthn => webauthn::run(self, op.name, caller, params).await,
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// Who a request was audited for, and since when.
struct Audited<'a> {
    account_id: Option<i64>,
    account_name: &'a str,
    started: Instant,
}

/// Audit columns keep at most 128 characters of what the caller sent.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}

/// Builds a reply map from pairs.
#[macro_export]
macro_rules! reply {
    ($($k:expr => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = serde_json::Map::new();
        $( m.insert(($k).to_string(), serde_json::json!($v)); )*
        m
    }};
}
