//! Migration of stored username keys to the normalised form of [`super::users::username_key`]
//! (NFKC and case mapping; see docs/operations.md, "Username normalisation").
//!
//! Rows stored before normalisation carry a key that was only lower-cased, so `jose\u{301}` and
//! `jos\u{e9}` could be two users. The migration gives every row the key of its username. Two rows of
//! one account whose names now mean the same user are never merged: the row that already answers to
//! that key (else the oldest) keeps it, and the other is set aside under a key no request can produce
//! (it answers as an unknown user) and reported, for the operator to rename or delete.

use super::users::username_key;
use crate::error::{StoreError, StoreResult};
use crate::store::Store;

/// `meta` key set once every row carries a normalised key (the server runs the migration at
/// start-up until it is set; `tessera migrate` runs it every time and reports collisions).
pub const DONE_MARK: &str = "username_keys_nfkc";
/// Key prefix of a row set aside by a collision (a control character: no username can hold it).
pub const SET_ASIDE: &str = "\u{1}collision:";
/// Key prefix of a row being moved (between the two steps of the migration).
const MOVING: &str = "\u{1}moving:";
const PAGE: i64 = 1000;

/// A user set aside because another user of the account has the same normalised name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub account_id: i64,
    pub user_id: i64,
    pub username: String,
    /// The user that keeps the name (None if it could not be read).
    pub holder_id: Option<i64>,
    pub holder_username: Option<String>,
}

impl std::fmt::Display for Collision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "account id {}: user id {} {:?} is set aside: its normalised name is held by ",
            self.account_id, self.user_id, self.username
        )?;
        match (self.holder_id, &self.holder_username) {
            (Some(id), Some(name)) => write!(f, "user id {id} {name:?}"),
            _ => write!(f, "another user"),
        }
    }
}

/// Gives every user the normalised key of its username; returns the users set aside (also those
/// set aside by an earlier run whose name is still taken). Safe to run again at any time.
pub async fn migrate_username_keys(store: &dyn Store) -> StoreResult<Vec<Collision>> {
    struct Change {
        account_id: i64,
        id: i64,
        username: String,
        old: String,
        new: String,
    }
    let mut changes = Vec::new();
    let mut after = 0;
    loop {
        let page = store.user_keys_page(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for r in page {
            let new = username_key(&r.username);
            if r.username_key != new {
                changes.push(Change { account_id: r.account_id, id: r.id, username: r.username, old: r.username_key, new });
            }
        }
    }
    // First every changing row out of the way (a new key may be another changing row's old one),
    // then each takes its new key in id order; a key already held means a collision.
    for c in &changes {
        if !c.old.starts_with(SET_ASIDE) {
            store.set_username_key(c.account_id, c.id, &format!("{MOVING}{}", c.id)).await?;
        }
    }
    let mut collisions = Vec::new();
    for c in &changes {
        match store.set_username_key(c.account_id, c.id, &c.new).await {
            Ok(_) => {}
            Err(StoreError::Conflict) => {
                store.set_username_key(c.account_id, c.id, &format!("{SET_ASIDE}{}", c.id)).await?;
                let holder = store.user_by_key(c.account_id, &c.new).await?;
                let collision = Collision {
                    account_id: c.account_id,
                    user_id: c.id,
                    username: c.username.clone(),
                    holder_id: holder.as_ref().map(|h| h.id),
                    holder_username: holder.map(|h| h.username),
                };
                tracing::error!(%collision, "username collision after normalisation: the user is set aside (answers as unknown) until an operator renames or deletes one of them");
                collisions.push(collision);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(collisions)
}

/// Runs the migration once per database (until [`DONE_MARK`] is set); used at start-up.
pub async fn migrate_once(store: &dyn Store) -> StoreResult<Vec<Collision>> {
    if store.meta_get(DONE_MARK).await?.is_some() {
        return Ok(Vec::new());
    }
    let collisions = migrate_username_keys(store).await?;
    store.meta_init(DONE_MARK, "1").await?;
    Ok(collisions)
}
