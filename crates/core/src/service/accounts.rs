//! Operator actions on accounts (tenants), used by the CLI and at first start. Not reachable over
//! the API (docs/api.md).

use crate::crypto;
use crate::error::StoreError;
use crate::store::{AccountRow, Store};

/// A newly created or rotated key, shown once.
#[derive(Clone)]
pub struct IssuedKey {
    pub account: String,
    pub key: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey").field("account", &self.account).field("key", &"<redacted>").finish()
    }
}

impl IssuedKey {
    /// `{"spAccountLoginName":..,"spAccountLoginKey":..}`
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"spAccountLoginName": self.account, "spAccountLoginKey": self.key})
    }
}

/// Account names: 1..=64 characters of `A-Z a-z 0-9 . _ @ -`.
pub fn validate_account_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("account name must be 1 to 64 characters".into());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')) {
        return Err("account name may only contain letters, digits, '.', '_', '@' and '-'".into());
    }
    Ok(())
}

/// Why an account action failed, as one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("account {0} already exists")]
    Exists(String),
    #[error("no account named {0}")]
    NotFound(String),
    #[error("storage error: {0}")]
    Store(String),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Store(e.to_string())
    }
}

pub async fn create(store: &dyn Store, name: &str, now: i64) -> Result<IssuedKey, AccountError> {
    validate_account_name(name).map_err(AccountError::Invalid)?;
    let key = crypto::random_token();
    match store.create_account(name, &crypto::secret_hash(&key), now).await {
        Ok(_) => Ok(IssuedKey { account: name.to_string(), key }),
        Err(StoreError::Conflict) => Err(AccountError::Exists(name.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Waits until every node's cached copy of an account read before a change has expired (see
/// [`super::ACCOUNT_CACHE_MS`]): called after the change is committed, so that when an operator
/// command returns, the change holds for the very next request on every node.
pub async fn wait_for_caches() {
    let ms = super::ACCOUNT_CACHE_MS + super::REVOCATION_MARGIN_MS;
    tokio::time::sleep(std::time::Duration::from_millis(ms.unsigned_abs())).await;
}

/// Gives the account a new key; the old one is refused by every node once this returns.
pub async fn rotate_key(store: &dyn Store, name: &str) -> Result<IssuedKey, AccountError> {
    let key = crypto::random_token();
    if store.set_account_key(name, &crypto::secret_hash(&key)).await? {
        wait_for_caches().await;
        Ok(IssuedKey { account: name.to_string(), key })
    } else {
        Err(AccountError::NotFound(name.to_string()))
    }
}

/// Enables or disables the account; every node answers accordingly once this returns.
pub async fn set_enabled(store: &dyn Store, name: &str, enabled: bool) -> Result<(), AccountError> {
    if store.set_account_enabled(name, enabled).await? {
        wait_for_caches().await;
        Ok(())
    } else {
        Err(AccountError::NotFound(name.to_string()))
    }
}

pub async fn get(store: &dyn Store, name: &str) -> Result<AccountRow, AccountError> {
    store.account_by_name(name).await?.ok_or_else(|| AccountError::NotFound(name.to_string()))
}

/// On an empty database creates the account `default`; returns its key, or None if any account
/// exists already (also when another node created it at the same moment).
pub async fn bootstrap(store: &dyn Store, now: i64) -> Result<Option<IssuedKey>, AccountError> {
    if store.count_accounts().await? > 0 {
        return Ok(None);
    }
    match create(store, "default", now).await {
        Ok(k) => Ok(Some(k)),
        Err(AccountError::Exists(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
