//! The storage port: everything services persist goes through [`Store`].
//!
//! Architecture invariant: every method is one transaction (or one statement) and is safe under
//! concurrency, also across several server processes sharing one database. Anything that must not
//! happen twice (an OTP counter advance, a U2F ceremony, a sent code, a session token) is consumed
//! by a conditional write whose success is decided by the database, never by a read-then-write in
//! the service. Times are Unix seconds unless a name says `_ms`.

pub use crate::audit_chain::{ChainHead, ChainKey};
use crate::error::StoreResult;
use async_trait::async_trait;

#[derive(Debug, Clone)]
pub struct AccountRow {
    pub id: i64,
    pub name: String,
    pub key_hash: Vec<u8>,
    pub enabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct UserRow {
    pub id: i64,
    pub account_id: i64,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub mobile: String,
    pub email: String,
    /// argon2id PHC string (possibly `{shaNNN}`-prefixed); never logged.
    pub password_hash: Option<String>,
    pub status: i64,
    pub created_at: i64,
    /// When a code was last sent to the user (0 = never); set by `enqueue_code`.
    pub last_code_at: i64,
}

/// Fields to change on a user; `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub status: Option<i64>,
}

/// A device: an OATH token (soft, hardware, out-of-band) or a FIDO U2F key.
#[derive(Clone, Default)]
pub struct DeviceRow {
    pub id: i64,
    pub account_id: i64,
    pub user_id: Option<i64>,
    pub psn: String,
    pub device_type: i64,
    pub otp_type: i64,
    /// 0 enabled, 1 disabled.
    pub status: i64,
    pub activated: bool,
    /// Sealed seed (nonce ‖ AES-GCM ciphertext), see `crypto::MasterKey::seal_seed`.
    pub seed: Option<Vec<u8>>,
    pub algorithm: String,
    pub digits: i64,
    pub time_step: i64,
    /// HOTP: the next counter that may be accepted. TOTP: the next time step that may be accepted.
    pub counter: i64,
    /// TOTP: learned drift in steps.
    pub drift: i64,
    pub window_size: Option<i64>,
    pub time_drift: Option<i64>,
    pub fail_count: i64,
    pub locked_until: i64,
    pub key_handle: Option<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
    pub app_id: Option<String>,
    pub key_name: Option<String>,
    pub u2f_counter: i64,
    pub attestation: Option<Vec<u8>>,
    /// Set when a U2F counter regression was seen (possible clone).
    pub flagged: bool,
    pub created_at: i64,
}

impl std::fmt::Debug for DeviceRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceRow")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("user_id", &self.user_id)
            .field("psn", &self.psn)
            .field("device_type", &self.device_type)
            .field("otp_type", &self.otp_type)
            .field("status", &self.status)
            .field("counter", &self.counter)
            .field("seed", &self.seed.as_ref().map(|_| "<sealed>"))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct SessionTokenRow {
    pub account_id: i64,
    pub user_id: i64,
    pub token_type: i64,
    pub created_at: i64,
    pub expires_at: i64,
    /// The owner's case-folded username, filled in by `session_token` (read in the same query);
    /// ignored by `create_session_token`.
    pub owner_key: String,
}

/// One audit row. Rows of an account form its hash chain (see [`crate::audit_chain`]); rows without
/// an account (requests that failed account authentication) are aggregate counters, one per source
/// address and minute, outside every chain.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub account_id: Option<i64>,
    pub account_name: String,
    pub op: String,
    pub username: String,
    pub psn: String,
    pub code: i64,
    pub source: String,
    /// For an aggregate row, the total over the requests it counts.
    pub duration_us: i64,
    /// How many requests the row stands for (1, or more in an aggregate row).
    pub count: i64,
    /// Position in the account's chain (1, 2, …), set by the store on append.
    pub seq: Option<i64>,
    /// The id of the row before this one in the account's chain (0 for the first), set by the store.
    pub prev_id: Option<i64>,
    /// The chain hash, set by the store on append.
    pub hash: Option<Vec<u8>>,
}

impl Default for AuditRow {
    fn default() -> Self {
        AuditRow {
            id: 0,
            at_ms: 0,
            account_id: None,
            account_name: String::new(),
            op: String::new(),
            username: String::new(),
            psn: String::new(),
            code: 0,
            source: String::new(),
            duration_us: 0,
            count: 1,
            seq: None,
            prev_id: None,
            hash: None,
        }
    }
}

/// A pending U2F ceremony (pre_enroll / pre_sign), stored under the hash of its sessionId.
#[derive(Debug, Clone)]
pub struct U2fSessionRow {
    pub account_id: i64,
    pub user_id: i64,
    /// "register" or "sign".
    pub kind: String,
    pub app_id: String,
    pub challenge: String,
    /// Device ids the sign ceremony may use (empty for register).
    pub device_ids: Vec<i64>,
    /// Device chosen by psn for register (bind the key to it), if any.
    pub target_device: Option<i64>,
    pub expires_at: i64,
}

/// A pending WebAuthn ceremony, stored under the hash of its sessionId.
#[derive(Debug, Clone)]
pub struct WebAuthnSessionRow {
    pub account_id: i64,
    /// None for a usernameless (discoverable) sign-in.
    pub user_id: Option<i64>,
    /// "register" or "sign".
    pub kind: String,
    pub rp_id: String,
    /// base64url of the challenge bytes.
    pub challenge: String,
    /// The ceremony's policy as JSON (user verification, allowed credentials, appid...), written
    /// and read by the WebAuthn service only.
    pub state: String,
    pub expires_at: i64,
}

/// A code sent by SMS / voice / email (only its hash is stored).
#[derive(Debug, Clone)]
pub struct SentCodeRow {
    pub id: i64,
    pub account_id: i64,
    pub user_id: i64,
    pub device_id: Option<i64>,
    pub code_hash: Vec<u8>,
    pub expires_at: i64,
    pub used: bool,
}

/// A message waiting to be delivered.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub account_id: i64,
    pub channel: String,
    pub recipient: String,
    /// The message body (may carry a code: this row lives only until delivered or expired).
    pub body: String,
    pub subject: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub expires_at: i64,
    /// pending | sending | sent | failed | expired
    pub state: String,
    pub last_error: String,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an account; `Conflict` if the name exists.
    async fn create_account(&self, name: &str, key_hash: &[u8], now: i64) -> StoreResult<AccountRow>;
    async fn account_by_name(&self, name: &str) -> StoreResult<Option<AccountRow>>;
    async fn list_accounts(&self) -> StoreResult<Vec<AccountRow>>;
    /// Returns false if no such account.
    async fn set_account_key(&self, name: &str, key_hash: &[u8]) -> StoreResult<bool>;
    async fn set_account_enabled(&self, name: &str, enabled: bool) -> StoreResult<bool>;
    async fn count_accounts(&self) -> StoreResult<i64>;
    async fn add_facet(&self, account_id: i64, origin: &str) -> StoreResult<bool>;
    async fn remove_facet(&self, account_id: i64, origin: &str) -> StoreResult<bool>;
    async fn list_facets(&self, account_id: i64) -> StoreResult<Vec<String>>;
    /// Reads a value of the `meta` table.
    async fn meta_get(&self, key: &str) -> StoreResult<Option<String>>;
    /// Sets a value only if absent; returns the value now stored.
    async fn meta_init(&self, key: &str, value: &str) -> StoreResult<String>;
    /// Liveness of the database (for /readyz).
    async fn ping(&self) -> StoreResult<()>;
}

/// A user's id, names and lookup key (for the username-key migration).
#[derive(Debug, Clone)]
pub struct UserKeyRow {
    pub id: i64,
    pub account_id: i64,
    pub username: String,
    pub username_key: String,
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// `Conflict` if the (case-folded) username exists in the account.
    async fn create_user(&self, user: &UserRow, username_key: &str) -> StoreResult<i64>;
    async fn user_by_key(&self, account_id: i64, username_key: &str) -> StoreResult<Option<UserRow>>;
    async fn user_by_id(&self, account_id: i64, user_id: i64) -> StoreResult<Option<UserRow>>;
    async fn update_user(&self, account_id: i64, user_id: i64, patch: &UserPatch) -> StoreResult<bool>;
    /// Deletes the user, their session tokens, U2F keys, sent codes and software devices;
    /// hardware tokens (deviceType 14) return to the account's unassigned inventory. The audit
    /// trail is never touched (it is append-only; `remove_related` changes nothing here).
    async fn delete_user(&self, account_id: i64, user_id: i64, username_key: &str, remove_related: bool) -> StoreResult<bool>;
    /// `pattern` is a SQL LIKE pattern (`%`, `_`) matched case-insensitively against the username
    /// (or the email when `by_email`). At most `limit` rows, ordered by username.
    async fn find_users(&self, account_id: i64, pattern: &str, by_email: bool, limit: i64) -> StoreResult<Vec<UserRow>>;
    /// The user's WebAuthn user handle: sets `candidate` if the user has none yet, and returns the
    /// handle now stored (the first one wins a race). None if there is no such user.
    async fn webauthn_user_handle(&self, account_id: i64, user_id: i64, candidate: &[u8]) -> StoreResult<Option<Vec<u8>>>;
    async fn user_by_webauthn_handle(&self, account_id: i64, handle: &[u8]) -> StoreResult<Option<UserRow>>;
    /// Reserves one password check of the user: counts it as a failure (locking the user until
    /// `lock_until` when the count reaches `max_failures`), but only if the user is not locked at
    /// `now`. Returns whether the check may go ahead (false: locked, or no such user). One
    /// conditional update, so concurrent checks on any number of nodes get at most `max_failures`.
    async fn password_attempt(&self, account_id: i64, user_id: i64, now: i64, max_failures: i64, lock_until: i64) -> StoreResult<bool>;
    /// A right password: clears the user's password failure count and lockout.
    async fn password_reset(&self, account_id: i64, user_id: i64) -> StoreResult<()>;
    /// Users ordered by id, after `after_id`, at most `limit` (the username-key migration).
    async fn user_keys_page(&self, after_id: i64, limit: i64) -> StoreResult<Vec<UserKeyRow>>;
    /// Sets a user's lookup key; `Conflict` if another user of the account holds it.
    async fn set_username_key(&self, account_id: i64, user_id: i64, username_key: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// `Conflict` if the psn exists in the account. Returns the new id.
    async fn create_device(&self, device: &DeviceRow) -> StoreResult<i64>;
    async fn device_by_psn(&self, account_id: i64, psn: &str) -> StoreResult<Option<DeviceRow>>;
    async fn device_by_id(&self, account_id: i64, id: i64) -> StoreResult<Option<DeviceRow>>;
    async fn devices_of_user(&self, account_id: i64, user_id: i64) -> StoreResult<Vec<DeviceRow>>;
    /// Assigns to `user_id` (or unassigns with None). With `only_if_unassigned`, succeeds only if the
    /// device is unassigned or already this user's. Returns whether a row changed.
    async fn assign_device(&self, account_id: i64, device_id: i64, user_id: Option<i64>, only_if_unassigned: bool) -> StoreResult<bool>;
    async fn delete_device(&self, account_id: i64, device_id: i64) -> StoreResult<bool>;
    /// Sets status; enabling also clears the failure count and lockout.
    async fn set_device_status(&self, account_id: i64, device_id: i64, status: i64) -> StoreResult<bool>;
    /// Compare-and-set of an OTP success: sets counter = `new_counter`, drift, resets failures,
    /// but only if the stored counter is still <= `matched` (so one code is accepted once).
    /// Returns false when another request already consumed it.
    async fn otp_accept(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> StoreResult<bool>;
    /// Resync (activation / sync): sets counter = `new_counter`, drift, activated and clears failures
    /// and lockout, but only if the stored counter is still <= `matched` (the first of the two codes),
    /// so a pair of codes resyncs once and never moves the counter back over codes accepted meanwhile.
    async fn otp_resync(&self, device_id: i64, matched: i64, new_counter: i64, drift: i64) -> StoreResult<bool>;
    /// Counts one failure atomically; when the count reaches `max_failures` the device is locked
    /// until `lock_until`. Returns the new failure count.
    async fn otp_fail(&self, device_id: i64, max_failures: i64, lock_until: i64) -> StoreResult<i64>;
    /// Binds a U2F key (key_handle, public_key, app_id, key_name, u2f_counter, attestation) to the
    /// device record `device.id`, assigning it to `device.user_id`, but only if the record holds no
    /// key yet and is unassigned or already that user's. Returns whether it was bound.
    async fn u2f_bind(&self, device: &DeviceRow) -> StoreResult<bool>;
    /// Compare-and-set of a U2F counter: succeeds only if the stored counter is < `counter`.
    async fn u2f_counter_advance(&self, device_id: i64, counter: i64) -> StoreResult<bool>;
    async fn u2f_flag(&self, device_id: i64) -> StoreResult<()>;
    /// Unassigned devices of the account (inventory), at most `limit`.
    async fn unassigned_devices(&self, account_id: i64, limit: i64) -> StoreResult<Vec<DeviceRow>>;
    /// Every device of the account, assigned or not, ordered by id, at most `limit` (operator listing).
    async fn account_devices(&self, account_id: i64, limit: i64) -> StoreResult<Vec<DeviceRow>>;
    /// Inserts many devices in one transaction; all or nothing (`Conflict` names nothing: the caller
    /// checks first, the constraint is the last line of defence).
    async fn import_devices(&self, devices: &[DeviceRow]) -> StoreResult<usize>;
    /// Devices of the account holding this key handle / credential id (U2F keys and WebAuthn
    /// credentials), ordered by id.
    async fn devices_by_key_handle(&self, account_id: i64, key_handle: &[u8]) -> StoreResult<Vec<DeviceRow>>;
    /// The FIDO counter compare-and-set of a WebAuthn assertion (the same counter as
    /// `u2f_counter_advance`): succeeds only if the key is not flagged and the stored counter is
    /// < `counter`, or `counter` is 0 and the stored counter is still 0 or unused (-1).
    async fn fido_counter_advance(&self, device_id: i64, counter: i64) -> StoreResult<bool>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session_token(&self, token_hash: &[u8], row: &SessionTokenRow) -> StoreResult<()>;
    /// The token if it exists and `expires_at > now`.
    async fn session_token(&self, account_id: i64, token_hash: &[u8], now: i64) -> StoreResult<Option<SessionTokenRow>>;
    /// Deletes; returns whether it existed (and was unexpired).
    async fn delete_session_token(&self, account_id: i64, token_hash: &[u8], now: i64) -> StoreResult<bool>;
    async fn create_u2f_session(&self, id_hash: &[u8], row: &U2fSessionRow) -> StoreResult<()>;
    /// Consumes (deletes) the ceremony if it belongs to this account and user, has this kind and is
    /// unexpired; returns it. A request from another account or user does not consume it.
    async fn consume_u2f_session(
        &self,
        account_id: i64,
        user_id: i64,
        kind: &str,
        id_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<U2fSessionRow>>;
    /// Removes expired tokens, ceremonies and sent codes; returns how many rows went.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;
    async fn create_webauthn_session(&self, id_hash: &[u8], row: &WebAuthnSessionRow) -> StoreResult<()>;
    /// Consumes (deletes) the WebAuthn ceremony if it belongs to this account, has this kind, is
    /// unexpired and, when `user_id` is given, was begun for that user or for no user; returns it.
    /// A request from another account or naming another user does not consume it.
    async fn consume_webauthn_session(
        &self,
        account_id: i64,
        kind: &str,
        id_hash: &[u8],
        user_id: Option<i64>,
        now: i64,
    ) -> StoreResult<Option<WebAuthnSessionRow>>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends rows in one transaction. A row with an account is appended to that account's chain
    /// (its `seq`, `prev_id` and `hash` are computed here under `key`, while the chain's head is
    /// held, so several processes may append to one chain). A row without an account is an
    /// aggregate: it is added to the row of its source address and minute (`at_ms / 60000`),
    /// summing `count` and `duration_us`, or starts that row.
    async fn append_audit(&self, rows: &[AuditRow], key: &ChainKey) -> StoreResult<()>;
    /// Newest first; `account_id` None = all accounts.
    async fn list_audit(&self, account_id: Option<i64>, limit: i64) -> StoreResult<Vec<AuditRow>>;
    /// The chain heads (of one account, or all), by account id.
    async fn audit_chain_heads(&self, account_id: Option<i64>) -> StoreResult<Vec<ChainHead>>;
    /// At most `limit` rows of the account with an id above `after_id`, in id order, with their
    /// chain columns.
    async fn audit_rows_after(&self, account_id: i64, after_id: i64, limit: i64) -> StoreResult<Vec<AuditRow>>;
    /// Retention: deletes the rows older than `before_ms` (of one account, or all, and then also
    /// the aggregate rows) in one transaction. For each chain, the rows up to the newest one older
    /// than `before_ms` go, and that row becomes the chain's anchor, so the rest stays verifiable.
    /// Returns how many rows went.
    async fn prune_audit(&self, account_id: Option<i64>, before_ms: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Counts the user's sends in the window and, if under `limit`, records a new sent code and its
    /// outbox message in one transaction. Returns (sent code id, outbox id), or None if over the limit.
    async fn enqueue_code(&self, code: &SentCodeRow, msg: &OutboxRow, window_start: i64, limit: i64) -> StoreResult<Option<(i64, i64)>>;
    /// Enqueues a message that carries no code (welcome notifications).
    async fn enqueue_message(&self, msg: &OutboxRow) -> StoreResult<i64>;
    /// Unused, unexpired... codes of a user newest first (for hash comparison in the service).
    async fn sent_codes(&self, account_id: i64, user_id: i64, since: i64) -> StoreResult<Vec<SentCodeRow>>;
    /// Marks a code used if it is still unused: true exactly once.
    async fn consume_sent_code(&self, id: i64) -> StoreResult<bool>;
    /// Claims up to `limit` due messages (pending, next_attempt_at <= now, or `sending` whose lease
    /// ran out) for this worker with a lease until `lease_until`.
    async fn claim_outbox(&self, now: i64, lease_until: i64, limit: i64) -> StoreResult<Vec<OutboxRow>>;
    async fn claim_outbox_one(&self, id: i64, now: i64, lease_until: i64) -> StoreResult<Option<OutboxRow>>;
    /// Records the outcome of an attempt: state sent | failed | pending (with next attempt) | expired.
    async fn finish_outbox(&self, id: i64, state: &str, next_attempt_at: i64, error: &str) -> StoreResult<()>;
    async fn outbox_by_id(&self, id: i64) -> StoreResult<Option<OutboxRow>>;
}

/// A RADIUS client (NAS) of an account: the addresses it sends from and its shared secret.
#[derive(Clone, Default)]
pub struct RadiusClientRow {
    pub id: i64,
    pub account_id: i64,
    /// Filled in by `list_radius_clients` (read in the same query); ignored by `add_radius_client`.
    pub account_name: String,
    /// Canonical CIDR text (`10.0.0.0/24`, `192.0.2.7/32`, `2001:db8::/64`); unique over all accounts.
    pub address: String,
    /// The shared secret sealed under the master key (`MasterKey::seal_bound`, bound to account and address).
    pub secret: Vec<u8>,
    /// User-Password carries the OTP alone (no password check).
    pub otp_only: bool,
    pub created_at: i64,
}

impl std::fmt::Debug for RadiusClientRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RadiusClientRow")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("account_name", &self.account_name)
            .field("address", &self.address)
            .field("secret", &"<sealed>")
            .field("otp_only", &self.otp_only)
            .finish_non_exhaustive()
    }
}

/// A pending RADIUS Access-Challenge, stored under the hash of its State.
#[derive(Debug, Clone)]
pub struct RadiusChallengeRow {
    pub account_id: i64,
    /// The case-folded username the password was checked for.
    pub user_key: String,
    pub expires_at: i64,
}

#[async_trait]
pub trait RadiusStore: Send + Sync {
    /// Adds a client; `Conflict` if any account already has a client with this address.
    async fn add_radius_client(&self, client: &RadiusClientRow) -> StoreResult<i64>;
    /// Removes the account's client with this address; returns whether it existed.
    async fn remove_radius_client(&self, account_id: i64, address: &str) -> StoreResult<bool>;
    /// Clients of one account (or of all), ordered by account name and address, with `account_name` set.
    async fn list_radius_clients(&self, account_id: Option<i64>) -> StoreResult<Vec<RadiusClientRow>>;
    async fn create_radius_challenge(&self, state_hash: &[u8], row: &RadiusChallengeRow) -> StoreResult<()>;
    /// Consumes (deletes) the challenge if it belongs to this account and user and is unexpired;
    /// returns it. A request for another account or user does not consume it.
    async fn consume_radius_challenge(
        &self,
        account_id: i64,
        state_hash: &[u8],
        user_key: &str,
        now: i64,
    ) -> StoreResult<Option<RadiusChallengeRow>>;
    /// Removes expired challenges; returns how many went.
    async fn purge_radius_challenges(&self, now: i64) -> StoreResult<u64>;
}

/// Everything the services persist.
pub trait Store: AccountStore + UserStore + DeviceStore + SessionStore + AuditStore + DeliveryStore + RadiusStore + Send + Sync {}
impl<T: AccountStore + UserStore + DeviceStore + SessionStore + AuditStore + DeliveryStore + RadiusStore + Send + Sync> Store for T {}
