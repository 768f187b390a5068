//! The audit trail: every request is recorded (account, type, user, psn, outcome, source, time,
//! duration), never with a password, OTP, seed or key.
//!
//! Rows of an authenticated request are appended to the account's hash chain
//! ([`crate::audit_chain`]). Requests that fail account authentication are counted instead: the
//! writer merges them into one row per source address and minute (and the store adds that to the
//! row already stored for the same address and minute), so that unauthenticated traffic cannot
//! grow the database by more than a row per address and minute.
//!
//! Handlers hand their row to an [`AuditSink`]; one writer task writes what gathered in the last
//! 50 ms (up to 8,192 rows) in one call, so auditing adds no database round trip, and no wake-up of
//! the writer, to each request.
//! On shutdown the writer drains the channel before the process exits.

use crate::audit_chain::{Break, ChainHead, ChainKey, Verifier};
use crate::error::StoreResult;
use crate::store::{AuditRow, Store};
use std::collections::HashMap;
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
pub fn channel(store: Arc<dyn Store>, key: ChainKey) -> (AuditSink, impl std::future::Future<Output = ()> + Send) {
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
            write(&*store, &key, &mut batch).await;
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

/// Merges the rows without an account (failed account authentication) into one row per source
/// address and minute: the first row's fields, the summed count and duration.
pub fn aggregate_unauthenticated(batch: &mut Vec<AuditRow>) {
    let mut merged: HashMap<(String, i64), usize> = HashMap::new();
    let mut out: Vec<AuditRow> = Vec::with_capacity(batch.len());
    for row in batch.drain(..) {
        if row.account_id.is_some() {
            out.push(row);
            continue;
        }
        match merged.get(&(row.source.clone(), row.at_ms.div_euclid(60_000))) {
            Some(&i) => {
                out[i].count += row.count;
                out[i].duration_us += row.duration_us;
            }
            None => {
                merged.insert((row.source.clone(), row.at_ms.div_euclid(60_000)), out.len());
                out.push(row);
            }
        }
    }
    *batch = out;
}

async fn write(store: &dyn Store, key: &ChainKey, batch: &mut Vec<AuditRow>) {
    if batch.is_empty() {
        return;
    }
    aggregate_unauthenticated(batch);
    for attempt in 0..5 {
        match store.append_audit(batch, key).await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = %e, attempt, rows = batch.len(), "writing audit rows failed");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    batch.clear();
}

/// What `audit verify` found in one chain.
#[derive(Debug, Clone)]
pub struct ChainReport {
    pub account_id: i64,
    /// Rows checked.
    pub rows: u64,
    pub head: ChainHead,
    /// The first fault, if any.
    pub fault: Option<Break>,
}

/// Rows read per page while verifying.
const VERIFY_PAGE: i64 = 10_000;

/// Verifies the chain of one account, or of every account (and every chain head stored).
pub async fn verify(store: &dyn Store, key: &ChainKey, account_id: Option<i64>) -> StoreResult<Vec<ChainReport>> {
    // Rows written before the chain existed (ids up to this one) are outside it.
    let from: i64 = store.meta_get(CHAIN_FROM_META).await?.and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let mut heads = store.audit_chain_heads(account_id).await?;
    let accounts: Vec<i64> = match account_id {
        Some(a) => vec![a],
        None => store.list_accounts().await?.iter().map(|a| a.id).collect(),
    };
    for a in accounts {
        if !heads.iter().any(|h| h.account_id == a) {
            // No row was ever appended: any chained-looking row of this account was inserted.
            heads.push(ChainHead::empty(a));
        }
    }
    heads.sort_by_key(|h| h.account_id);
    let mut reports = Vec::with_capacity(heads.len());
    for head in heads {
        let mut v = Verifier::new(key, head.clone());
        let mut after = from;
        loop {
            let page = store.audit_rows_after(head.account_id, after, VERIFY_PAGE).await?;
            for r in &page {
                v.push(r);
            }
            match page.last() {
                Some(last) if page.len() as i64 == VERIFY_PAGE && !v.broken() => after = last.id,
                _ => break,
            }
        }
        let rows = v.rows;
        reports.push(ChainReport { account_id: head.account_id, rows, head, fault: v.finish() });
    }
    Ok(reports)
}

/// The `meta` key holding the last audit row id written before the chain existed.
pub const CHAIN_FROM_META: &str = "audit_chain_from";

/// A retention cut-off: `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time, in Unix milliseconds.
pub fn parse_cutoff(s: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let date = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))?;
    Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cutoffs_parse() {
        assert_eq!(super::parse_cutoff("1970-01-02"), Ok(86_400_000));
        assert_eq!(super::parse_cutoff("1970-01-01T00:00:01.5Z"), Ok(1_500));
        assert!(super::parse_cutoff("yesterday").is_err());
    }

    use super::*;

    #[test]
    fn unauthenticated_rows_merge_per_source_and_minute() {
        let unauth = |source: &str, at_ms: i64| AuditRow { at_ms, source: source.into(), code: 9000, duration_us: 5, ..Default::default() };
        let mut batch = vec![
            unauth("10.0.0.1", 60_000),
            AuditRow { account_id: Some(1), at_ms: 60_001, ..Default::default() },
            unauth("10.0.0.1", 119_999),
            unauth("10.0.0.2", 60_002),
            unauth("10.0.0.1", 120_000),
            unauth("10.0.0.1", 60_003),
        ];
        aggregate_unauthenticated(&mut batch);
        let got: Vec<(Option<i64>, String, i64, i64, i64)> =
            batch.iter().map(|r| (r.account_id, r.source.clone(), r.at_ms, r.count, r.duration_us)).collect();
        assert_eq!(
            got,
            vec![
                (None, "10.0.0.1".to_string(), 60_000, 3, 15),
                (Some(1), String::new(), 60_001, 1, 0),
                (None, "10.0.0.2".to_string(), 60_002, 1, 5),
                (None, "10.0.0.1".to_string(), 120_000, 1, 5),
            ]
        );
    }
}
