//! The audit trail: every request is recorded (account, type, user, psn, outcome, source, time,
//! duration), never with a password, OTP, seed or key.
//!
//! Handlers hand their row to an [`AuditSink`]; one writer task writes what gathered in the last
//! 50 ms (up to 8,192 rows) in one call, so auditing adds no database round trip, and no wake-up of
//! the writer, to each request.
//! On shutdown the writer drains the channel before the process exits.

use crate::store::{AuditRow, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Sends audit rows to the writer task.
#[derive(Clone)]
pub struct AuditSink {
    tx: Option<mpsc::Sender<AuditRow>>,
}

impl AuditSink {
    /// A sink whose rows are dropped (CLI commands that do not serve requests).
    pub fn disabled() -> Self {
        AuditSink { tx: None }
    }

    pub async fn record(&self, row: AuditRow) {
        if let Some(tx) = &self.tx {
            if tx.send(row).await.is_err() {
                tracing::error!("audit writer is gone; an audit row was not recorded");
            }
        }
    }
}

/// Creates a sink and the writer future; run the future on the runtime. It ends (after writing
/// everything queued) when every sink clone has been dropped.
pub fn channel(store: Arc<dyn Store>) -> (AuditSink, impl std::future::Future<Output = ()> + Send) {
    let (tx, mut rx) = mpsc::channel::<AuditRow>(QUEUE);
    let writer = async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        // Wait for a first row, let the rows of the next 50 ms gather in the queue (the task is not
        // woken per row), then write them all in one call.
        while let Some(first) = rx.recv().await {
            batch.push(first);
            tokio::time::sleep(GATHER).await;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(row) => batch.push(row),
                    Err(_) => break,
                }
            }
            write(&*store, &mut batch).await;
        }
    };
    (AuditSink { tx: Some(tx) }, writer)
}

/// Rows waiting to be written; a full queue holds requests back rather than dropping rows.
const QUEUE: usize = 32_768;
/// Most rows per write.
const MAX_BATCH: usize = 8_192;
/// How long rows gather before a write.
const GATHER: Duration = Duration::from_millis(50);

async fn write(store: &dyn Store, batch: &mut Vec<AuditRow>) {
    if batch.is_empty() {
        return;
    }
    for attempt in 0..5 {
        match store.append_audit(batch).await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %e, attempt, rows = batch.len(), "writing audit rows failed");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    batch.clear();
}
