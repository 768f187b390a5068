//! The outbox worker and the dispatcher that makes a message's first attempt at once.
//!
//! An attempt claims its message with a lease (`state = sending`, `lease_until`), sends it with the
//! channel's provider under the delivery timeout, and records the outcome:
//! - `sent`: the provider accepted it (the text, which may carry a code, is then erased);
//! - `pending` with the next attempt 2, 4, 8, 16, 32, 60, 60, … s later (capped by
//!   `max_backoff_seconds`) after a transient failure;
//! - `failed` after a permanent failure;
//! - `expired` when the message outlived its code (or the next attempt would come too late).
//!
//! A message whose worker died mid-attempt is claimed again once its lease runs out, by any node.
//! Delivery is therefore at least once: a process killed after the provider accepted a message but
//! before the outcome was written sends it again after the lease.

use crate::provider::{Message, SendError};
use crate::providers::Providers;
use futures_util::future::join_all;
use std::sync::Arc;
use tessera_core::error::StoreResult;
use tessera_core::service::delivery::{Channel, Composed, DeliveryResult, Dispatcher, MessageKind, MessageVars};
use tessera_core::service::Clock;
use tessera_core::store::{OutboxRow, Store};

/// Messages claimed per round.
pub const BATCH: i64 = 32;

/// Wait before the attempt after attempt number `attempts` (1-based): 2^attempts s, at most `max`.
pub fn backoff_seconds(attempts: i64, max: i64) -> i64 {
    let exp = attempts.clamp(1, 20) as u32;
    (1i64 << exp).min(max.max(1))
}

/// One round: claims the due messages (pending and due, or sending with an expired lease) and
/// attempts them concurrently. Returns each claimed message's id and outcome.
pub async fn try_execute_once(store: &dyn Store, providers: &Providers, now: i64) -> StoreResult<Vec<(i64, DeliveryResult)>> {
    let rows = store.claim_outbox(now, now + providers.config.lease_seconds, BATCH).await?;
    let attempts = rows.into_iter().map(|row| async move {
        let id = row.id;
        (id, process(store, providers, row, now).await)
    });
    Ok(join_all(attempts).await)
}

/// Attempts one message now if it is due and nobody else holds it.
pub async fn attempt_one(store: &dyn Store, providers: &Providers, id: i64, now: i64) -> DeliveryResult {
    match store.claim_outbox_one(id, now, now + providers.config.lease_seconds).await {
        Ok(Some(row)) => process(store, providers, row, now).await,
        Ok(None) => DeliveryResult::NotClaimed,
        Err(e) => {
            tracing::warn!(outbox_id = id, error = %e, "cannot claim an outbox message; the worker will retry");
            DeliveryResult::Retrying(format!("storage: {e}"))
        }
    }
}

async fn finish(store: &dyn Store, row: &OutboxRow, state: &str, next_attempt_at: i64, error: &str) {
    if let Err(e) = store.finish_outbox(row.id, state, next_attempt_at, error).await {
        // The lease runs out and the message is attempted again (possibly sent twice).
        tracing::error!(outbox_id = row.id, state, error = %e, "cannot record the outcome of a delivery attempt");
    }
}

/// Sends one claimed message and records the outcome.
async fn process(store: &dyn Store, providers: &Providers, row: OutboxRow, now: i64) -> DeliveryResult {
    if row.expires_at <= now {
        finish(store, &row, "expired", now, "expired before it could be delivered").await;
        tracing::warn!(outbox_id = row.id, channel = %row.channel, attempts = row.attempts - 1, "message expired undelivered");
        return DeliveryResult::Expired;
    }
    let Some(channel) = Channel::from_name(&row.channel) else {
        finish(store, &row, "failed", now, "unknown channel").await;
        return DeliveryResult::Failed(format!("unknown channel {:?}", row.channel));
    };
    let Some(body) = providers.open_body(&row) else {
        finish(store, &row, "failed", now, "the message cannot be decrypted (another master key?)").await;
        tracing::error!(outbox_id = row.id, "an outbox message cannot be decrypted with this node's master key");
        return DeliveryResult::Failed("the message cannot be decrypted".into());
    };
    let provider = providers.provider(channel);
    let account = providers.account_name(store, row.account_id).await;
    let msg = Message { channel, to: &row.recipient, subject: &row.subject, body: body.as_str(), account: &account };
    let outcome = match tokio::time::timeout(providers.config.timeout, provider.send(&msg)).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Transient(format!("timeout after {} s", providers.config.timeout.as_secs()))),
    };
    match outcome {
        Ok(()) => {
            finish(store, &row, "sent", now, "").await;
            tracing::info!(
                outbox_id = row.id,
                channel = channel.as_str(),
                provider = provider.kind(),
                attempt = row.attempts,
                "message delivered"
            );
            DeliveryResult::Sent
        }
        Err(SendError::Permanent(why)) => {
            finish(store, &row, "failed", now, &why).await;
            tracing::warn!(outbox_id = row.id, channel = channel.as_str(), provider = provider.kind(), error = %why, "provider refused the message for good");
            DeliveryResult::Failed(why)
        }
        Err(SendError::Transient(why)) => {
            let next = now + backoff_seconds(row.attempts, providers.config.max_backoff_seconds);
            if next >= row.expires_at {
                finish(store, &row, "expired", next, &why).await;
                tracing::warn!(outbox_id = row.id, channel = channel.as_str(), error = %why, "delivery failed and the message expires before another attempt");
                return DeliveryResult::Expired;
            }
            finish(store, &row, "pending", next, &why).await;
            tracing::warn!(
                outbox_id = row.id,
                channel = channel.as_str(),
                provider = provider.kind(),
                attempt = row.attempts,
                retry_in_s = next - now,
                error = %why,
                "delivery failed; will retry"
            );
            DeliveryResult::Retrying(why)
        }
    }
}

/// The worker loop: one round every `poll_interval` (at once again after a full batch). Any number
/// of nodes may run it on one database.
pub async fn run_worker(store: Arc<dyn Store>, providers: Arc<Providers>, clock: Arc<dyn Clock>) {
    loop {
        let full = match try_execute_once(&*store, &providers, clock.now()).await {
            Ok(done) => done.len() as i64 >= BATCH,
            Err(e) => {
                tracing::warn!(error = %e, "outbox worker cannot claim messages");
                false
            }
        };
        if !full {
            tokio::time::sleep(providers.config.poll_interval).await;
        }
    }
}

/// The [`Dispatcher`] the service uses: templates from the configuration, first attempt on its
/// own task (it finishes and records its outcome even when the request stops waiting).
pub struct OutboxDispatcher {
    store: Arc<dyn Store>,
    providers: Arc<Providers>,
    clock: Arc<dyn Clock>,
}

impl OutboxDispatcher {
    pub fn new(store: Arc<dyn Store>, providers: Arc<Providers>, clock: Arc<dyn Clock>) -> Self {
        OutboxDispatcher { store, providers, clock }
    }
}

#[async_trait::async_trait]
impl Dispatcher for OutboxDispatcher {
    fn compose(&self, channel: Channel, kind: MessageKind, vars: &MessageVars<'_>) -> Composed {
        self.providers.compose(channel, kind, vars)
    }

    fn reply_wait(&self) -> std::time::Duration {
        self.providers.config.reply_wait
    }

    async fn deliver_now(&self, outbox_id: i64) -> DeliveryResult {
        let store = self.store.clone();
        let providers = self.providers.clone();
        let now = self.clock.now();
        let task = tokio::spawn(async move { attempt_one(&*store, &providers, outbox_id, now).await });
        match task.await {
            Ok(r) => r,
            Err(e) => DeliveryResult::Retrying(format!("attempt task ended: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let seq: Vec<i64> = (1..=8).map(|a| backoff_seconds(a, 60)).collect();
        assert_eq!(seq, vec![2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff_seconds(0, 60), 2);
        assert_eq!(backoff_seconds(1000, 60), 60);
        assert_eq!(backoff_seconds(3, 5), 5);
    }
}
