//! The audit trail: every request is recorded (account, type, user, psn, outcome, source, time,
//! duration), never with a password, OTP, seed or key.
//!
//! Handlers hand their row to an [`AuditSink`]; one writer task batches rows into one insert per
//! batch (up to 512 rows or 50 ms), so auditing does not add a database round trip to each request.
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
    let (tx, mut rx) = mpsc::channel::<AuditRow>(8192);
    let writer = async move {
        let mut batch = Vec::with_capacity(512);
        loop {
            let Some(first) = rx.recv().await else { break };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + Duration::from_millis(50);
            while batch.len() < 512 {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(row)) => batch.push(row),
                    Ok(None) | Err(_) => break,
                }
            }
            write(&*store, &mut batch).await;
        }
        write(&*store, &mut batch).await;
    };
    (AuditSink { tx: Some(tx) }, writer)
}

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
