//! The outbox worker on a real store (a SQLite temp file): back-off after transient failures,
//! permanent failures, expiry, leases, and that a delivered message is never sent again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tessera_core::store::{OutboxRow, Store};
use tessera_delivery::{attempt_one, try_execute_once, Channel, DeliveryConfig, DeliveryResult, Message, Provider, Providers, SendError};

/// A provider that answers from a script (then succeeds), counting calls.
#[derive(Default)]
struct Scripted {
    script: Mutex<VecDeque<Result<(), SendError>>>,
    calls: AtomicUsize,
    bodies: Mutex<Vec<String>>,
    delay_ms: u64,
}

impl Scripted {
    fn new(script: Vec<Result<(), SendError>>) -> Arc<Self> {
        Arc::new(Scripted { script: Mutex::new(script.into()), ..Default::default() })
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Provider for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.bodies.lock().expect("lock").push(msg.body.to_string());
        if self.delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(self.delay_ms)).await;
        }
        self.script.lock().expect("lock").pop_front().unwrap_or(Ok(()))
    }
}

fn transient() -> Result<(), SendError> {
    Err(SendError::Transient("HTTP 503".into()))
}

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = tessera_store::open(&url, 4, true).await.expect("open store");
    (dir, s)
}

fn providers(p: Arc<Scripted>) -> Providers {
    Providers::from_config(&DeliveryConfig::default()).expect("providers").with_provider(Channel::Sms, p)
}

async fn enqueue(store: &dyn Store, now: i64, expires_at: i64) -> i64 {
    let row = OutboxRow {
        id: 0,
        account_id: 1,
        channel: "sms".into(),
        recipient: "+18002008411".into(),
        body: "Your code is 123456.".into(),
        subject: String::new(),
        attempts: 0,
        next_attempt_at: now,
        expires_at,
        state: "pending".into(),
        last_error: String::new(),
    };
    store.enqueue_message(&row).await.expect("enqueue")
}

async fn row(store: &dyn Store, id: i64) -> OutboxRow {
    store.outbox_by_id(id).await.expect("read").expect("row exists")
}

#[tokio::test]
async fn transient_failures_back_off_then_deliver_once() {
    let (_d, s) = store().await;
    let p = Scripted::new(vec![transient(), transient(), transient()]);
    let pr = providers(p.clone());
    let id = enqueue(&*s, 1000, 1300).await;

    let r = try_execute_once(&*s, &pr, 1000).await.expect("round");
    assert!(matches!(r.as_slice(), [(i, DeliveryResult::Retrying(_))] if *i == id), "{r:?}");
    let o = row(&*s, id).await;
    assert_eq!((o.state.as_str(), o.attempts, o.next_attempt_at), ("pending", 1, 1002));
    assert!(o.last_error.contains("503"));

    assert!(try_execute_once(&*s, &pr, 1001).await.expect("round").is_empty(), "not due yet");
    assert_eq!(try_execute_once(&*s, &pr, 1002).await.expect("round").len(), 1);
    assert_eq!(row(&*s, id).await.next_attempt_at, 1006);
    assert!(try_execute_once(&*s, &pr, 1005).await.expect("round").is_empty());
    assert_eq!(try_execute_once(&*s, &pr, 1006).await.expect("round").len(), 1);
    assert_eq!(row(&*s, id).await.next_attempt_at, 1014);
    let r = try_execute_once(&*s, &pr, 1014).await.expect("round");
    assert!(matches!(r.as_slice(), [(_, DeliveryResult::Sent)]), "{r:?}");
    let o = row(&*s, id).await;
    assert_eq!((o.state.as_str(), o.attempts), ("sent", 4));
    assert_eq!(o.body, "", "a delivered message's text (with its code) is erased");
    assert_eq!(p.calls(), 4);

    // never again
    for t in [1015, 1100, 1299, 5000] {
        assert!(try_execute_once(&*s, &pr, t).await.expect("round").is_empty());
    }
    assert_eq!(attempt_one(&*s, &pr, id, 5000).await, DeliveryResult::NotClaimed);
    assert_eq!(p.calls(), 4);
}

#[tokio::test]
async fn permanent_failure_is_final() {
    let (_d, s) = store().await;
    let p = Scripted::new(vec![Err(SendError::Permanent("HTTP 400: bad number".into()))]);
    let pr = providers(p.clone());
    let id = enqueue(&*s, 1000, 1300).await;
    assert_eq!(attempt_one(&*s, &pr, id, 1000).await, DeliveryResult::Failed("HTTP 400: bad number".into()));
    let o = row(&*s, id).await;
    assert_eq!(o.state, "failed");
    assert_eq!(o.body, "");
    assert!(o.last_error.contains("bad number"));
    for t in [1000, 1010, 1100] {
        assert!(try_execute_once(&*s, &pr, t).await.expect("round").is_empty());
    }
    assert_eq!(p.calls(), 1);
}

#[tokio::test]
async fn messages_expire_with_their_code() {
    let (_d, s) = store().await;
    let p = Scripted::new(vec![transient(); 10]);
    let pr = providers(p.clone());
    let id = enqueue(&*s, 1000, 1010).await;
    try_execute_once(&*s, &pr, 1000).await.expect("round"); // next at 1002
    try_execute_once(&*s, &pr, 1002).await.expect("round"); // next at 1006
    let r = try_execute_once(&*s, &pr, 1006).await.expect("round"); // next would be 1014 >= 1010
    assert!(matches!(r.as_slice(), [(_, DeliveryResult::Expired)]), "{r:?}");
    let o = row(&*s, id).await;
    assert_eq!(o.state, "expired");
    assert_eq!(o.body, "");
    assert_eq!(p.calls(), 3);
    assert!(try_execute_once(&*s, &pr, 2000).await.expect("round").is_empty());

    // A message found past its expiry is not sent at all.
    let late = enqueue(&*s, 1000, 1100).await;
    let r = try_execute_once(&*s, &pr, 1100).await.expect("round");
    assert!(matches!(r.as_slice(), [(i, DeliveryResult::Expired)] if *i == late), "{r:?}");
    assert_eq!(p.calls(), 3);
}

#[tokio::test]
async fn a_dead_workers_lease_runs_out_then_another_sends() {
    let (_d, s) = store().await;
    let p = Scripted::new(vec![]);
    let pr = providers(p.clone());
    let id = enqueue(&*s, 1000, 1300).await;
    // A worker claims the message and dies before recording anything.
    let claimed = s.claim_outbox(1000, 1000 + pr.config.lease_seconds, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(try_execute_once(&*s, &pr, 1030).await.expect("round").is_empty(), "leased to the dead worker");
    assert_eq!(attempt_one(&*s, &pr, id, 1030).await, DeliveryResult::NotClaimed);
    let r = try_execute_once(&*s, &pr, 1000 + pr.config.lease_seconds).await.expect("round");
    assert!(matches!(r.as_slice(), [(_, DeliveryResult::Sent)]), "{r:?}");
    assert_eq!(p.calls(), 1);
}

#[tokio::test]
async fn concurrent_workers_send_each_message_once() {
    let (_d, s) = store().await;
    let p = Arc::new(Scripted { delay_ms: 50, ..Default::default() });
    let pr = Arc::new(providers(p.clone()));
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(enqueue(&*s, 1000, 1300).await);
    }
    let mut tasks = Vec::new();
    for &first in ids.iter().take(4) {
        let (s, pr) = (s.clone(), pr.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            // the dispatcher's first attempt on one message and a worker round race each other
            if attempt_one(&*s, &pr, first, 1000).await == DeliveryResult::Sent {
                n += 1;
            }
            for r in try_execute_once(&*s, &pr, 1000).await.expect("round") {
                if r.1 == DeliveryResult::Sent {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut sent = 0;
    for t in tasks {
        sent += t.await.expect("task");
    }
    assert_eq!(sent, 12);
    assert_eq!(p.calls(), 12, "every message sent exactly once");
    for id in ids {
        assert_eq!(row(&*s, id).await.state, "sent");
    }
}

#[tokio::test]
async fn slow_provider_is_cut_off_by_the_timeout_and_retried() {
    let (_d, s) = store().await;
    let p = Arc::new(Scripted { delay_ms: 3000, ..Default::default() });
    let cfg = DeliveryConfig::from_value(&serde_json::json!({"timeout_seconds": 1})).expect("config");
    let pr = Providers::from_config(&cfg).expect("providers").with_provider(Channel::Sms, p.clone());
    let id = enqueue(&*s, 1000, 1300).await;
    let started = std::time::Instant::now();
    let r = attempt_one(&*s, &pr, id, 1000).await;
    assert!(matches!(&r, DeliveryResult::Retrying(t) if t.contains("timeout")), "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
    assert_eq!(row(&*s, id).await.state, "pending");
}
