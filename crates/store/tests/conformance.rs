//! Storage conformance: the same assertions on the SQLite and the PostgreSQL implementation of `Store`,
//! including the conditional writes that must succeed exactly once under concurrency.

use std::sync::Arc;
use tessera_core::error::StoreError;
use tessera_core::store::*;

struct Db {
    store: Arc<dyn Store>,
    url: String,
    _tmp: Option<tempfile::TempDir>,
}

async fn open(backend: &str) -> Db {
    match backend {
        "sqlite" => {
            let tmp = tempfile::tempdir().expect("tmp");
            let url = format!("sqlite://{}", tmp.path().join("t.db").display());
            Db { store: tessera_store::open(&url, 8, true).await.expect("open sqlite"), url, _tmp: Some(tmp) }
        }
        _ => {
            let admin = std::env::var("TESSERA_TEST_PG_ADMIN_URL")
                .expect("TESSERA_TEST_PG_ADMIN_URL is not set: PostgreSQL tests need a server (scripts/test starts one)");
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect admin");
            let name = format!("tessera_c_{}", hex::encode(rand::random::<[u8; 8]>()));
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create db");
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
            let url = format!("{base}/{name}");
            Db { store: tessera_store::open(&url, 16, true).await.expect("open pg"), url, _tmp: None }
        }
    }
}

macro_rules! conformance {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name(super::open("sqlite").await.store).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name(super::open("postgres").await.store).await
            }
        }
    };
}

/// The same, for tests that also reach the database behind the store's back.
macro_rules! conformance_db {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$name(super::open("sqlite").await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$name(super::open("postgres").await).await
            }
        }
    };
}

/// The audit chain key of these tests.
fn key() -> ChainKey {
    ChainKey::from_bytes([7; 32])
}

/// Runs SQL on the database behind the store's back (an attacker with write access to it).
async fn raw_sql(url: &str, sql: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let c = rusqlite::Connection::open(path).expect("open sqlite");
        c.busy_timeout(std::time::Duration::from_secs(10)).expect("busy timeout");
        c.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    } else {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

async fn setup(s: &Arc<dyn Store>) -> (i64, i64) {
    let a = s.create_account("acct", b"hash", 1).await.expect("account");
    let u = UserRow { account_id: a.id, username: "Alice".into(), created_at: 1, ..Default::default() };
    let uid = s.create_user(&u, "alice").await.expect("user");
    (a.id, uid)
}

fn device(account_id: i64, user_id: Option<i64>, psn: &str) -> DeviceRow {
    DeviceRow {
        account_id,
        user_id,
        psn: psn.into(),
        device_type: 13,
        otp_type: 1,
        algorithm: "SHA1".into(),
        digits: 6,
        time_step: 30,
        u2f_counter: -1,
        seed: Some(vec![1, 2, 3]),
        ..Default::default()
    }
}

async fn accounts_and_users(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    assert!(matches!(s.create_account("acct", b"x", 1).await, Err(StoreError::Conflict)));
    let dup = UserRow { account_id: aid, username: "ALICE".into(), ..Default::default() };
    assert!(matches!(s.create_user(&dup, "alice").await, Err(StoreError::Conflict)));
    assert_eq!(s.user_by_key(aid, "alice").await.expect("q").map(|u| u.id), Some(uid));
    assert!(s.set_account_key("acct", b"new").await.expect("rotate"));
    assert_eq!(s.account_by_name("acct").await.expect("q").map(|a| a.key_hash), Some(b"new".to_vec()));
    assert!(!s.set_account_enabled("nope", false).await.expect("q"));
    let patch = UserPatch { last_name: Some("L".into()), ..Default::default() };
    assert!(s.update_user(aid, uid, &patch).await.expect("update"));
    let u = s.user_by_id(aid, uid).await.expect("q").expect("user");
    assert_eq!((u.username.as_str(), u.last_name.as_str()), ("Alice", "L"));
    assert_eq!(s.find_users(aid, "al%", false, 10).await.expect("find").len(), 1);
    assert_eq!(s.meta_init("k", "v1").await.expect("meta"), "v1");
    assert_eq!(s.meta_init("k", "v2").await.expect("meta"), "v1", "meta_init keeps the first value");
}
conformance!(accounts_and_users);

async fn otp_accept_is_a_compare_and_set(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    let id = s.create_device(&device(aid, Some(uid), "P1")).await.expect("device");
    assert!(matches!(s.create_device(&device(aid, None, "P1")).await, Err(StoreError::Conflict)));
    // 32 concurrent accepts of counter 5: exactly one wins
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.otp_accept(id, 5, 6, 0).await.expect("cas") }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.expect("join"));
    }
    assert_eq!(wins, 1);
    assert_eq!(s.device_by_id(aid, id).await.expect("q").map(|d| d.counter), Some(6));
    assert!(!s.otp_accept(id, 5, 6, 0).await.expect("cas"), "an accepted counter is not accepted again");
    assert!(!s.otp_accept(id, 3, 4, 0).await.expect("cas"), "an older counter is not accepted");
    assert!(s.otp_accept(id, 7, 8, 0).await.expect("cas"));
}
conformance!(otp_accept_is_a_compare_and_set);

async fn failures_lock_and_enable_clears(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    let id = s.create_device(&device(aid, Some(uid), "P2")).await.expect("device");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.otp_fail(id, 10, 9999).await.expect("fail") }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        counts.push(t.await.expect("join"));
    }
    counts.sort();
    assert_eq!(counts, (1..=10).collect::<Vec<_>>(), "every failure counted once");
    let d = s.device_by_id(aid, id).await.expect("q").expect("d");
    assert_eq!((d.fail_count, d.locked_until), (10, 9999));
    assert!(s.set_device_status(aid, id, 0).await.expect("enable"));
    let d = s.device_by_id(aid, id).await.expect("q").expect("d");
    assert_eq!((d.fail_count, d.locked_until), (0, 0));
}
conformance!(failures_lock_and_enable_clears);

async fn otp_resync_is_a_compare_and_set(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    let id = s.create_device(&DeviceRow { activated: false, ..device(aid, Some(uid), "P-RESYNC") }).await.expect("device");
    assert_eq!(s.otp_fail(id, 1, 9999).await.expect("fail"), 1);
    // 16 concurrent resyncs with the pair at counters 500/501: exactly one wins
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.otp_resync(id, 500, 502, 3).await.expect("resync") }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.expect("join"));
    }
    assert_eq!(wins, 1);
    let d = s.device_by_id(aid, id).await.expect("q").expect("d");
    assert_eq!((d.counter, d.drift, d.activated, d.fail_count, d.locked_until), (502, 3, true, 0, 0));
    assert!(!s.otp_resync(id, 400, 402, 0).await.expect("resync"), "a resync never moves the counter back");
    assert!(s.otp_resync(id, 502, 504, 0).await.expect("resync"));
}
conformance!(otp_resync_is_a_compare_and_set);

async fn assignment_cannot_be_stolen_concurrently(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    let u2 = s.create_user(&UserRow { account_id: aid, username: "bob".into(), ..Default::default() }, "bob").await.expect("u2");
    let id = s.create_device(&device(aid, None, "HW1")).await.expect("device");
    let (x, y) = tokio::join!(s.assign_device(aid, id, Some(uid), true), s.assign_device(aid, id, Some(u2), true));
    assert_eq!(usize::from(x.expect("a")) + usize::from(y.expect("b")), 1);
    assert_eq!(s.unassigned_devices(aid, 10).await.expect("q").len(), 0);
}
conformance!(assignment_cannot_be_stolen_concurrently);

async fn ceremonies_tokens_and_codes_are_consumed_once(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    let row = U2fSessionRow {
        account_id: aid,
        user_id: uid,
        kind: "sign".into(),
        app_id: "https://a".into(),
        challenge: "c".into(),
        device_ids: vec![3, 4],
        target_device: None,
        expires_at: 100,
    };
    s.create_u2f_session(b"sid", &row).await.expect("session");
    assert!(s.consume_u2f_session(aid + 1, uid, "sign", b"sid", 50).await.expect("q").is_none(), "other account");
    assert!(s.consume_u2f_session(aid, uid + 1, "sign", b"sid", 50).await.expect("q").is_none(), "other user");
    assert!(s.consume_u2f_session(aid, uid, "register", b"sid", 50).await.expect("q").is_none(), "other kind");
    let (x, y) = tokio::join!(s.consume_u2f_session(aid, uid, "sign", b"sid", 50), s.consume_u2f_session(aid, uid, "sign", b"sid", 50));
    let got: Vec<U2fSessionRow> = [x.expect("x"), y.expect("y")].into_iter().flatten().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].device_ids, vec![3, 4]);
    s.create_u2f_session(b"old", &U2fSessionRow { expires_at: 10, ..row.clone() }).await.expect("old");
    assert!(s.consume_u2f_session(aid, uid, "sign", b"old", 50).await.expect("q").is_none(), "expired");

    let tok = SessionTokenRow { account_id: aid, user_id: uid, token_type: 0, created_at: 1, expires_at: 100, owner_key: String::new() };
    s.create_session_token(b"th", &tok).await.expect("token");
    let found = s.session_token(aid, b"th", 50).await.expect("q").expect("the token is valid at 50");
    assert_eq!((found.user_id, found.expires_at), (uid, 100));
    let owner = s.user_by_id(aid, uid).await.expect("q").expect("user");
    assert_eq!(found.owner_key, owner.username.to_lowercase(), "session_token names its owner");
    assert!(s.session_token(aid, b"th", 100).await.expect("q").is_none(), "expired at expires_at");
    assert!(s.session_token(aid + 1, b"th", 50).await.expect("q").is_none());
    assert!(s.delete_session_token(aid, b"th", 50).await.expect("del"));
    assert!(!s.delete_session_token(aid, b"th", 50).await.expect("del"));

    let code = SentCodeRow { id: 0, account_id: aid, user_id: uid, device_id: None, code_hash: vec![9], expires_at: 400, used: false };
    let msg = OutboxRow {
        id: 0,
        account_id: aid,
        channel: "sms".into(),
        recipient: "+1".into(),
        body: "b".into(),
        subject: String::new(),
        attempts: 0,
        next_attempt_at: 100,
        expires_at: 400,
        state: "pending".into(),
        last_error: String::new(),
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(s.enqueue_code(&code, &msg, 0, 3).await.expect("enqueue").expect("under limit"));
    }
    assert!(s.enqueue_code(&code, &msg, 0, 3).await.expect("enqueue").is_none(), "send limit");
    assert_eq!(s.user_by_id(aid, uid).await.expect("q").map(|u| u.last_code_at), Some(100), "last_code_at set by enqueue_code");
    let (cid, _) = ids[0];
    let (x, y) = tokio::join!(s.consume_sent_code(cid), s.consume_sent_code(cid));
    assert_eq!(usize::from(x.expect("x")) + usize::from(y.expect("y")), 1);
    assert_eq!(s.sent_codes(aid, uid, 0).await.expect("q").iter().filter(|c| !c.used).count(), 2);
}
conformance!(ceremonies_tokens_and_codes_are_consumed_once);

async fn outbox_rows_are_claimed_by_one_worker(s: Arc<dyn Store>) {
    let (aid, _) = setup(&s).await;
    for i in 0..40 {
        let msg = OutboxRow {
            id: 0,
            account_id: aid,
            channel: "email".into(),
            recipient: format!("u{i}@x"),
            body: "b".into(),
            subject: "s".into(),
            attempts: 0,
            next_attempt_at: 10,
            expires_at: 1000,
            state: "pending".into(),
            last_error: String::new(),
        };
        s.enqueue_message(&msg).await.expect("enqueue");
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s.claim_outbox(20, 80, 3).await.expect("claim");
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|r| r.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (40, 40), "every row claimed exactly once");
    // a lease that runs out makes the row claimable again; a finished row is not
    s.finish_outbox(all[0], "sent", 0, "").await.expect("finish");
    let again = s.claim_outbox(81, 200, 100).await.expect("claim");
    assert_eq!(again.len(), 39);
    assert!(again.iter().all(|r| r.attempts == 2));
    let sent = s.outbox_by_id(all[0]).await.expect("q").expect("row");
    assert_eq!((sent.state.as_str(), sent.body.as_str()), ("sent", ""), "a delivered message's text is dropped");
}
conformance!(outbox_rows_are_claimed_by_one_worker);

async fn delete_user_cascades(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    s.create_device(&device(aid, Some(uid), "SOFT")).await.expect("soft");
    let hw = s.create_device(&DeviceRow { device_type: 14, ..device(aid, Some(uid), "HARD") }).await.expect("hw");
    let tok = SessionTokenRow { account_id: aid, user_id: uid, token_type: 0, created_at: 1, expires_at: 100, owner_key: String::new() };
    s.create_session_token(b"t", &tok).await.expect("token");
    assert!(s.delete_user(aid, uid, "alice", true).await.expect("delete"));
    assert!(s.device_by_psn(aid, "SOFT").await.expect("q").is_none());
    let hw = s.device_by_id(aid, hw).await.expect("q").expect("hardware token kept");
    assert_eq!(hw.user_id, None);
    assert!(s.session_token(aid, b"t", 50).await.expect("q").is_none());
    assert!(!s.delete_user(aid, uid, "alice", true).await.expect("delete again"));
}
conformance!(delete_user_cascades);

/// The audit trail is append-only: deleting a user, even with `remove_related`, keeps their history.
async fn delete_user_keeps_audit_history(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    let row = AuditRow {
        account_id: Some(aid),
        account_name: "acct".into(),
        op: "validate_user".into(),
        username: "Alice".into(),
        ..Default::default()
    };
    s.append_audit(&[row.clone(), row], &key()).await.expect("audit");
    assert!(s.delete_user(aid, uid, "alice", true).await.expect("delete"));
    let rows = s.list_audit(Some(aid), 10).await.expect("list");
    assert_eq!(rows.len(), 2, "the user's audit rows stay");
    let reports = tessera_core::service::audit::verify(&*s, &key(), Some(aid)).await.expect("verify");
    assert_eq!((reports[0].rows, reports[0].fault.clone()), (2, None));
}
conformance!(delete_user_keeps_audit_history);

/// Requests without an account are counted: one row per source address and minute, summed over
/// calls (and so over nodes), outside the chains.
async fn unauthenticated_rows_are_aggregated(s: Arc<dyn Store>) {
    let (aid, _) = setup(&s).await;
    let unauth = |source: &str, at_ms: i64, count: i64| AuditRow {
        at_ms,
        account_name: "nobody".into(),
        op: "validate_user".into(),
        code: 9000,
        source: source.into(),
        duration_us: 10 * count,
        count,
        ..Default::default()
    };
    s.append_audit(&[unauth("10.0.0.1", 120_000, 5), unauth("10.0.0.2", 120_001, 1)], &key()).await.expect("audit");
    s.append_audit(&[unauth("10.0.0.1", 179_999, 7)], &key()).await.expect("audit");
    s.append_audit(&[unauth("10.0.0.1", 180_000, 1)], &key()).await.expect("audit");
    let mut rows: Vec<(String, i64, i64, i64, i64)> = s
        .list_audit(None, 100)
        .await
        .expect("list")
        .into_iter()
        .map(|r| {
            assert_eq!((r.account_id, r.seq, r.hash), (None, None, None), "aggregate rows stand outside the chains");
            (r.source, r.at_ms, r.count, r.duration_us, r.code)
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("10.0.0.1".to_string(), 120_000, 12, 120, 9000),
            ("10.0.0.1".to_string(), 180_000, 1, 10, 9000),
            ("10.0.0.2".to_string(), 120_001, 1, 10, 9000)
        ]
    );
    let reports = tessera_core::service::audit::verify(&*s, &key(), None).await.expect("verify");
    assert!(reports.iter().all(|r| r.fault.is_none()), "{reports:?}");
    // Retention takes old aggregate rows too.
    assert_eq!(s.prune_audit(None, 180_000).await.expect("prune"), 2);
    assert_eq!(s.list_audit(None, 100).await.expect("list").len(), 1);
    let _ = aid;
}
conformance!(unauthenticated_rows_are_aggregated);

fn chained_row(aid: i64, i: i64) -> AuditRow {
    AuditRow {
        at_ms: 1_000 * i,
        account_id: Some(aid),
        account_name: "acct".into(),
        op: "validate_oath_otp".into(),
        username: format!("user{i}"),
        psn: "P1".into(),
        code: 9003,
        source: "10.1.1.1".into(),
        duration_us: i,
        ..Default::default()
    }
}

async fn verify_of(s: &Arc<dyn Store>, aid: i64) -> Option<tessera_core::audit_chain::Break> {
    let reports = tessera_core::service::audit::verify(&**s, &key(), Some(aid)).await.expect("verify");
    assert_eq!(reports.len(), 1);
    reports[0].fault.clone()
}

/// The chain detects a row altered, removed or inserted through SQL, naming its id; retention
/// keeps the rest verifiable and tampering after it is still detected.
async fn audit_chain_detects_tampering(db: Db) {
    use tessera_core::audit_chain::Break;
    let s = db.store.clone();
    let (aid, _) = setup(&s).await;
    let other = s.create_account("other", b"h", 1).await.expect("account").id;
    // Batches of both accounts and an aggregate row in between (it leaves a gap in the ids).
    s.append_audit(&[chained_row(aid, 1), chained_row(other, 1), chained_row(aid, 2), chained_row(aid, 3)], &key()).await.expect("audit");
    s.append_audit(&[AuditRow { at_ms: 3_500, source: "10.9.9.9".into(), code: 9000, ..Default::default() }], &key()).await.expect("audit");
    s.append_audit(&(4..=8).map(|i| chained_row(aid, i)).collect::<Vec<_>>(), &key()).await.expect("audit");
    s.append_audit(&[chained_row(other, 2)], &key()).await.expect("audit");
    let rows = s.audit_rows_after(aid, 0, 100).await.expect("rows");
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=8).map(Some).collect::<Vec<_>>());
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(verify_of(&s, aid).await, None);
    assert_eq!(verify_of(&s, other).await, None);

    // Altered (then put back).
    raw_sql(&db.url, &format!("UPDATE audit SET code = 0 WHERE id = {}", ids[3])).await;
    assert_eq!(verify_of(&s, aid).await, Some(Break::Altered { id: ids[3] }));
    raw_sql(&db.url, &format!("UPDATE audit SET code = 9003 WHERE id = {}", ids[3])).await;
    assert_eq!(verify_of(&s, aid).await, None);
    raw_sql(&db.url, &format!("UPDATE audit SET username = 'someone' WHERE id = {}", ids[7])).await;
    assert_eq!(verify_of(&s, aid).await, Some(Break::Altered { id: ids[7] }));
    raw_sql(&db.url, &format!("UPDATE audit SET username = 'user8' WHERE id = {}", ids[7])).await;

    // Removed: in the middle, and the last row (then put back).
    for victim in [ids[4], ids[7]] {
        raw_sql(&db.url, &format!("CREATE TABLE kept AS SELECT * FROM audit WHERE id = {victim}; DELETE FROM audit WHERE id = {victim}"))
            .await;
        assert_eq!(verify_of(&s, aid).await.map(|b| b.id()), Some(victim), "removed row {victim}");
        raw_sql(&db.url, "INSERT INTO audit SELECT * FROM kept; DROP TABLE kept").await;
        assert_eq!(verify_of(&s, aid).await, None);
    }

    // Inserted: in the gap left by the aggregate row, as a copy of a genuine row; and at the end.
    let gap = s.list_audit(None, 100).await.expect("list").into_iter().find(|r| r.account_id.is_none()).expect("aggregate row").id;
    assert!(ids[2] < gap && gap < ids[3]);
    raw_sql(&db.url, &format!("DELETE FROM audit WHERE id = {gap}")).await;
    let copy = |id: i64, from: i64| {
        format!(
            "INSERT INTO audit (id, at_ms, account_id, account_name, op, username, psn, code, source, duration_us, req_count, seq, prev_id, hash) \
             SELECT {id}, at_ms, account_id, account_name, op, 'mallory', psn, 0, source, duration_us, req_count, seq, prev_id, hash FROM audit WHERE id = {from}"
        )
    };
    raw_sql(&db.url, &copy(gap, ids[3])).await;
    assert_eq!(verify_of(&s, aid).await, Some(Break::Inserted { id: gap }));
    raw_sql(&db.url, &format!("DELETE FROM audit WHERE id = {gap}")).await;
    assert_eq!(verify_of(&s, aid).await, None);
    raw_sql(&db.url, &copy(1_000_000, ids[7])).await;
    assert_eq!(verify_of(&s, aid).await, Some(Break::Inserted { id: 1_000_000 }));
    raw_sql(&db.url, "DELETE FROM audit WHERE id = 1000000").await;
    assert_eq!(verify_of(&s, aid).await, None);

    // Retention: rows older than 4.5 s go (seq 1..4); the rest verifies, the other chain is untouched.
    assert_eq!(s.prune_audit(Some(aid), 4_500).await.expect("prune"), 4);
    let left = s.audit_rows_after(aid, 0, 100).await.expect("rows");
    assert_eq!(left.iter().map(|r| r.id).collect::<Vec<_>>(), ids[4..].to_vec());
    assert_eq!(verify_of(&s, aid).await, None);
    assert_eq!(verify_of(&s, other).await, None);
    let head = s.audit_chain_heads(Some(aid)).await.expect("heads").pop().expect("head");
    assert_eq!((head.anchor_id, head.anchor_seq), (ids[3], 4));
    // Appending after a prune continues the chain.
    s.append_audit(&[chained_row(aid, 9)], &key()).await.expect("audit");
    assert_eq!(verify_of(&s, aid).await, None);
    // Tampering after the prune is still detected: the first remaining row removed, or altered.
    raw_sql(&db.url, &format!("CREATE TABLE kept AS SELECT * FROM audit WHERE id = {0}; DELETE FROM audit WHERE id = {0}", ids[4])).await;
    assert_eq!(verify_of(&s, aid).await.map(|b| b.id()), Some(ids[4]));
    raw_sql(&db.url, "INSERT INTO audit SELECT * FROM kept; DROP TABLE kept").await;
    raw_sql(&db.url, &format!("UPDATE audit SET at_ms = 1 WHERE id = {}", ids[5])).await;
    assert_eq!(verify_of(&s, aid).await, Some(Break::Altered { id: ids[5] }));
    // A pruned row put back is an inserted row.
    raw_sql(&db.url, &format!("UPDATE audit SET at_ms = 6000 WHERE id = {}", ids[5])).await;
    raw_sql(&db.url, &copy(ids[0], ids[4])).await;
    assert_eq!(verify_of(&s, aid).await, Some(Break::Inserted { id: ids[0] }));
    // Pruning everything leaves an empty, verifiable chain.
    raw_sql(&db.url, &format!("DELETE FROM audit WHERE id = {}", ids[0])).await;
    s.prune_audit(None, i64::MAX).await.expect("prune all");
    assert_eq!(verify_of(&s, aid).await, None);
    s.append_audit(&[chained_row(aid, 10)], &key()).await.expect("audit");
    assert_eq!(verify_of(&s, aid).await, None);
}
conformance_db!(audit_chain_detects_tampering);

/// Two nodes (two stores on one database) and many concurrent batches append to one account's
/// chain: every row is chained once, in order, and the chain verifies.
async fn audit_chain_under_concurrency(db: Db) {
    let s = db.store.clone();
    let (aid, _) = setup(&s).await;
    let second = tessera_store::open(&db.url, 8, false).await.expect("second node");
    let mut tasks = Vec::new();
    for t in 0..16i64 {
        let node = if t % 2 == 0 { s.clone() } else { second.clone() };
        tasks.push(tokio::spawn(async move {
            for b in 0..5i64 {
                let rows: Vec<AuditRow> = (0..7).map(|i| chained_row(aid, t * 1000 + b * 10 + i)).collect();
                node.append_audit(&rows, &key()).await.expect("audit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let reports = tessera_core::service::audit::verify(&*s, &key(), Some(aid)).await.expect("verify");
    assert_eq!((reports[0].rows, reports[0].head.head_seq, reports[0].fault.clone()), (16 * 5 * 7, 16 * 5 * 7, None));
}
conformance_db!(audit_chain_under_concurrency);

/// Every column of every row type comes back as written, through each read that returns it.
async fn every_field_round_trips(s: Arc<dyn Store>) {
    let a = s.create_account("full", b"key-hash", 11).await.expect("account");
    assert_eq!((a.name.as_str(), a.key_hash.as_slice(), a.enabled, a.created_at), ("full", &b"key-hash"[..], true, 11));
    let got = s.account_by_name("full").await.expect("q").expect("account");
    assert_eq!((got.id, got.name, got.key_hash, got.enabled, got.created_at), (a.id, a.name.clone(), a.key_hash.clone(), true, 11));
    let u = UserRow {
        id: 0,
        account_id: a.id,
        username: "Zed".into(),
        first_name: "F".into(),
        last_name: "L".into(),
        mobile: "+15550100".into(),
        email: "Zed@Example.org".into(),
        password_hash: Some("$argon2id$x".into()),
        status: 1,
        created_at: 12,
        last_code_at: 0,
    };
    let uid = s.create_user(&u, "zed").await.expect("user");
    let user_fields = |x: &UserRow| {
        (x.id, x.account_id, x.username.clone(), x.first_name.clone(), x.last_name.clone(), x.mobile.clone(), x.email.clone())
    };
    let want = UserRow { id: uid, ..u.clone() };
    for got in [
        s.user_by_key(a.id, "zed").await.expect("q").expect("user"),
        s.user_by_id(a.id, uid).await.expect("q").expect("user"),
        s.find_users(a.id, "%exam%", true, 5).await.expect("q").pop().expect("by email"),
    ] {
        assert_eq!(user_fields(&got), user_fields(&want));
        assert_eq!((got.password_hash.clone(), got.status, got.created_at, got.last_code_at), (want.password_hash.clone(), 1, 12, 0));
    }
    let d = DeviceRow {
        id: 0,
        account_id: a.id,
        user_id: Some(uid),
        psn: "FULL-1".into(),
        device_type: 13,
        otp_type: 2,
        status: 1,
        activated: true,
        seed: Some(vec![9, 8, 7]),
        algorithm: "SHA256".into(),
        digits: 8,
        time_step: 60,
        counter: 41,
        drift: -2,
        window_size: Some(7),
        time_drift: Some(3),
        fail_count: 0,
        locked_until: 0,
        key_handle: Some(vec![1, 1]),
        public_key: Some(vec![2, 2]),
        app_id: Some("https://app".into()),
        key_name: Some("key".into()),
        u2f_counter: 5,
        attestation: Some(vec![3, 3]),
        flagged: false,
        created_at: 13,
    };
    let did = s.create_device(&d).await.expect("device");
    let device_fields = |x: &DeviceRow| {
        (
            (x.id, x.account_id, x.user_id, x.psn.clone(), x.device_type, x.otp_type, x.status, x.activated),
            (x.seed.clone(), x.algorithm.clone(), x.digits, x.time_step, x.counter, x.drift, x.window_size, x.time_drift),
            (x.fail_count, x.locked_until, x.key_handle.clone(), x.public_key.clone(), x.app_id.clone(), x.key_name.clone()),
            (x.u2f_counter, x.attestation.clone(), x.flagged, x.created_at),
        )
    };
    let want = DeviceRow { id: did, ..d.clone() };
    for got in [
        s.device_by_id(a.id, did).await.expect("q").expect("device"),
        s.device_by_psn(a.id, "FULL-1").await.expect("q").expect("device"),
        s.devices_of_user(a.id, uid).await.expect("q").pop().expect("device"),
        s.account_devices(a.id, 5).await.expect("q").pop().expect("device"),
    ] {
        assert_eq!(device_fields(&got), device_fields(&want));
    }
    s.otp_fail(did, 1, 99).await.expect("fail");
    s.u2f_flag(did).await.expect("flag");
    let got = s.device_by_id(a.id, did).await.expect("q").expect("device");
    assert_eq!((got.fail_count, got.locked_until, got.flagged), (1, 99, true));
    let row = AuditRow {
        id: 0,
        at_ms: 14,
        account_id: Some(a.id),
        account_name: "full".into(),
        op: "validate_oath_otp".into(),
        username: "Zed".into(),
        psn: "FULL-1".into(),
        code: 9003,
        source: "10.0.0.1".into(),
        duration_us: 15,
        ..Default::default()
    };
    s.append_audit(std::slice::from_ref(&row), &key()).await.expect("audit");
    let got = s.list_audit(Some(a.id), 1).await.expect("q").pop().expect("audit row");
    assert_eq!(
        (got.at_ms, got.account_id, got.account_name, got.op, got.username, got.psn, got.code, got.source, got.duration_us, got.count),
        (14, Some(a.id), row.account_name.clone(), row.op.clone(), row.username.clone(), row.psn.clone(), 9003, row.source.clone(), 15, 1)
    );
    let mut chained = row.clone();
    (chained.seq, chained.prev_id) = (Some(1), Some(0));
    assert_eq!((got.seq, got.prev_id), (Some(1), Some(0)));
    assert_eq!(got.hash, Some(key().link(&tessera_core::audit_chain::GENESIS, &chained)));
    let heads = s.audit_chain_heads(Some(a.id)).await.expect("heads");
    assert_eq!(heads.len(), 1);
    assert_eq!((heads[0].head_id, heads[0].head_seq, Some(heads[0].head_hash.clone())), (got.id, 1, got.hash.clone()));
    let m = OutboxRow {
        id: 0,
        account_id: a.id,
        channel: "email".into(),
        recipient: "zed@example.org".into(),
        body: "body".into(),
        subject: "subject".into(),
        attempts: 0,
        next_attempt_at: 16,
        expires_at: 17,
        state: String::new(),
        last_error: String::new(),
    };
    let mid = s.enqueue_message(&m).await.expect("outbox");
    let got = s.outbox_by_id(mid).await.expect("q").expect("message");
    assert_eq!(
        (
            got.id,
            got.account_id,
            got.channel,
            got.recipient,
            got.body,
            got.subject,
            got.attempts,
            got.next_attempt_at,
            got.expires_at,
            got.state,
            got.last_error
        ),
        (mid, a.id, m.channel, m.recipient, m.body, m.subject, 0, 16, 17, "pending".to_string(), String::new())
    );
}
conformance!(every_field_round_trips);

/// Many audit rows in one call (multi-row INSERTs and a remainder) all arrive, in order, intact.
async fn audit_rows_in_bulk(s: Arc<dyn Store>) {
    let (aid, _) = setup(&s).await;
    let rows: Vec<AuditRow> = (0..150)
        .map(|i| AuditRow {
            at_ms: 1000 + i,
            account_id: Some(aid),
            account_name: "acct".into(),
            op: "validate_oath_otp".into(),
            username: format!("user{i}"),
            psn: format!("PSN{i}"),
            code: i,
            source: "127.0.0.1".into(),
            duration_us: 2 * i,
            ..Default::default()
        })
        .collect();
    s.append_audit(&rows, &key()).await.expect("audit");
    let listed = s.list_audit(Some(aid), 1000).await.expect("list");
    assert_eq!(listed.len(), 150);
    for (got, i) in listed.iter().zip((0..150).rev()) {
        assert_eq!(
            (got.at_ms, got.username.as_str(), got.psn.as_str(), got.code, got.duration_us),
            (1000 + i, format!("user{i}").as_str(), format!("PSN{i}").as_str(), i, 2 * i)
        );
    }
}
conformance!(audit_rows_in_bulk);

async fn webauthn_handles_credentials_counters_and_ceremonies(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    // the user handle: the first candidate wins, later ones return it; looked up by handle
    assert_eq!(s.webauthn_user_handle(aid, uid, b"handle-1").await.expect("h"), Some(b"handle-1".to_vec()));
    assert_eq!(s.webauthn_user_handle(aid, uid, b"handle-2").await.expect("h"), Some(b"handle-1".to_vec()));
    assert_eq!(s.webauthn_user_handle(aid, uid + 99, b"x").await.expect("h"), None);
    assert_eq!(s.user_by_webauthn_handle(aid, b"handle-1").await.expect("u").map(|u| u.id), Some(uid));
    assert!(s.user_by_webauthn_handle(aid + 1, b"handle-1").await.expect("u").is_none(), "other account");
    assert!(s.user_by_webauthn_handle(aid, b"handle-2").await.expect("u").is_none());

    // a credential found by its id; the FIDO counter compare-and-set
    let mut d = device(aid, Some(uid), "WA-1");
    d.device_type = 16;
    d.otp_type = 8;
    d.key_handle = Some(b"cred-id".to_vec());
    d.public_key = Some(vec![0xa5, 1, 2]);
    d.app_id = Some("example.com".into());
    d.u2f_counter = 0;
    let id = s.create_device(&d).await.expect("device");
    let found = s.devices_by_key_handle(aid, b"cred-id").await.expect("by id");
    assert_eq!(found.iter().map(|d| d.id).collect::<Vec<_>>(), vec![id]);
    assert!(s.devices_by_key_handle(aid + 1, b"cred-id").await.expect("q").is_empty(), "other account");
    assert!(s.devices_by_key_handle(aid, b"other").await.expect("q").is_empty());
    assert!(s.fido_counter_advance(id, 0).await.expect("cas"), "0 while the stored counter is 0");
    assert!(s.fido_counter_advance(id, 0).await.expect("cas"), "0 again");
    assert!(s.fido_counter_advance(id, 7).await.expect("cas"));
    assert!(!s.fido_counter_advance(id, 7).await.expect("cas"), "the same counter twice");
    assert!(!s.fido_counter_advance(id, 0).await.expect("cas"), "0 after a counter was seen");
    let (x, y) = tokio::join!(s.fido_counter_advance(id, 9), s.fido_counter_advance(id, 9));
    assert_eq!([x.expect("x"), y.expect("y")].iter().filter(|b| **b).count(), 1, "one of two racing advances");
    assert!(s.u2f_counter_advance(id, 10).await.expect("u2f path"), "one counter for both paths");
    assert!(!s.fido_counter_advance(id, 10).await.expect("cas"));
    s.u2f_flag(id).await.expect("flag");
    assert!(!s.fido_counter_advance(id, 100).await.expect("cas"), "a flagged key is refused");

    // ceremonies: account, kind, user (when named) and expiry decide; consumed once
    let row = WebAuthnSessionRow {
        account_id: aid,
        user_id: Some(uid),
        kind: "sign".into(),
        rp_id: "example.com".into(),
        challenge: "c".into(),
        state: "{}".into(),
        expires_at: 100,
    };
    s.create_webauthn_session(b"wsid", &row).await.expect("session");
    assert!(s.consume_webauthn_session(aid + 1, "sign", b"wsid", None, 50).await.expect("q").is_none(), "other account");
    assert!(s.consume_webauthn_session(aid, "sign", b"wsid", Some(uid + 1), 50).await.expect("q").is_none(), "other user");
    assert!(s.consume_webauthn_session(aid, "register", b"wsid", None, 50).await.expect("q").is_none(), "other kind");
    assert!(s.consume_webauthn_session(aid, "sign", b"wsid", None, 100).await.expect("q").is_none(), "expired");
    let (x, y) = tokio::join!(
        s.consume_webauthn_session(aid, "sign", b"wsid", Some(uid), 50),
        s.consume_webauthn_session(aid, "sign", b"wsid", None, 50)
    );
    let got: Vec<WebAuthnSessionRow> = [x.expect("x"), y.expect("y")].into_iter().flatten().collect();
    assert_eq!(got.len(), 1, "consumed once");
    assert_eq!(
        (got[0].user_id, got[0].rp_id.as_str(), got[0].challenge.as_str(), got[0].state.as_str()),
        (Some(uid), "example.com", "c", "{}")
    );
    // a usernameless ceremony: any user named may consume it
    s.create_webauthn_session(b"free", &WebAuthnSessionRow { user_id: None, ..row.clone() }).await.expect("session");
    let got = s.consume_webauthn_session(aid, "sign", b"free", Some(uid + 5), 50).await.expect("q").expect("consumed");
    assert_eq!(got.user_id, None);
    s.create_webauthn_session(b"old", &row).await.expect("session");
    assert_eq!(s.purge_expired(1000).await.expect("purge"), 1);
    assert!(s.consume_webauthn_session(aid, "sign", b"old", None, 50).await.expect("q").is_none(), "purged");
}
conformance!(webauthn_handles_credentials_counters_and_ceremonies);

/// SQLite only: under a steady stream of commits and reads the WAL keeps being checkpointed and
/// started over (the lock holder's read transaction must not pin it), so the file stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_stays_bounded_under_load() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("t.db");
    let s = tessera_store::open(&format!("sqlite://{}", path.display()), 4, true).await.expect("open sqlite");
    let (aid, _) = setup(&s).await;
    let row = AuditRow { account_id: Some(aid), account_name: "acct".into(), op: "x".repeat(100), ..Default::default() };
    let rows = vec![row; 200];
    let (mut written, mut max_wal) = (0u64, 0u64);
    let started = std::time::Instant::now();
    // At least 3 s, and on a loaded machine up to 8 s until 16 MB were written (the WAL's high-water mark
    // comes from the slowest checkpoint interval, what was written from the whole run).
    let secs = |n| std::time::Duration::from_secs(n);
    while started.elapsed() < secs(3) || (written < 16 << 20 && started.elapsed() < secs(8)) {
        s.append_audit(&rows, &key()).await.expect("audit");
        assert!(s.account_by_name("acct").await.expect("read").is_some());
        // about 190 bytes per row: the texts, the integers and the 32-byte chain hash
        written += rows.len() as u64 * 190;
        max_wal = max_wal.max(std::fs::metadata(format!("{}-wal", path.display())).map(|m| m.len()).unwrap_or(0));
    }
    eprintln!("wrote ~{} MB of audit rows; largest WAL {} MB", written >> 20, max_wal >> 20);
    assert!(written > 4 * max_wal, "the WAL ({max_wal} bytes) grew with what was written ({written} bytes): it is not starting over");
}

async fn radius_clients_and_challenges(s: Arc<dyn Store>) {
    let (aid, _) = setup(&s).await;
    let other = s.create_account("other", b"h", 1).await.expect("account").id;
    let client = |account_id: i64, address: &str, otp_only: bool| RadiusClientRow {
        account_id,
        address: address.into(),
        secret: vec![9, 8, 7],
        otp_only,
        created_at: 5,
        ..Default::default()
    };
    let id = s.add_radius_client(&client(aid, "10.0.0.0/24", false)).await.expect("add");
    assert!(id > 0);
    s.add_radius_client(&client(aid, "192.0.2.7/32", true)).await.expect("add");
    s.add_radius_client(&client(other, "2001:db8::/64", false)).await.expect("add");
    // An address belongs to one account only.
    assert!(matches!(s.add_radius_client(&client(other, "10.0.0.0/24", false)).await, Err(StoreError::Conflict)));
    let mine = s.list_radius_clients(Some(aid)).await.expect("list");
    assert_eq!(mine.iter().map(|c| c.address.as_str()).collect::<Vec<_>>(), ["10.0.0.0/24", "192.0.2.7/32"]);
    let c = &mine[1];
    assert_eq!(
        (c.id > 0, c.account_id, c.account_name.as_str(), c.secret.as_slice(), c.otp_only, c.created_at),
        (true, aid, "acct", &[9u8, 8, 7][..], true, 5)
    );
    assert!(!mine[0].otp_only);
    let all = s.list_radius_clients(None).await.expect("list");
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].account_name, "other");
    // Removing needs the right account.
    assert!(!s.remove_radius_client(other, "192.0.2.7/32").await.expect("remove"));
    assert!(s.remove_radius_client(aid, "192.0.2.7/32").await.expect("remove"));
    assert!(!s.remove_radius_client(aid, "192.0.2.7/32").await.expect("remove"));
    assert_eq!(s.list_radius_clients(Some(aid)).await.expect("list").len(), 1);

    // Challenges: single use, bound to account and user, unexpired; consumed once under concurrency.
    let row = RadiusChallengeRow { account_id: aid, user_key: "alice".into(), expires_at: 100 };
    s.create_radius_challenge(b"state-1", &row).await.expect("create");
    assert!(s.consume_radius_challenge(other, b"state-1", "alice", 50).await.expect("q").is_none());
    assert!(s.consume_radius_challenge(aid, b"state-1", "bob", 50).await.expect("q").is_none());
    assert!(s.consume_radius_challenge(aid, b"state-1", "alice", 100).await.expect("q").is_none(), "expired");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.consume_radius_challenge(aid, b"state-1", "alice", 50).await.expect("q") }));
    }
    let mut won = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.expect("join") {
            won.push(r);
        }
    }
    assert_eq!(won.len(), 1);
    assert_eq!((won[0].account_id, won[0].user_key.as_str(), won[0].expires_at), (aid, "alice", 100));
    assert!(matches!(s.create_radius_challenge(b"state-2", &row).await, Ok(())));
    assert!(matches!(s.create_radius_challenge(b"state-2", &row).await, Err(StoreError::Conflict)));
    s.create_radius_challenge(b"state-3", &RadiusChallengeRow { expires_at: 300, ..row.clone() }).await.expect("create");
    assert_eq!(s.purge_radius_challenges(100).await.expect("purge"), 1);
    assert!(s.consume_radius_challenge(aid, b"state-2", "alice", 50).await.expect("q").is_none());
    assert!(s.consume_radius_challenge(aid, b"state-3", "alice", 200).await.expect("q").is_some());
}
conformance!(radius_clients_and_challenges);
async fn password_attempts_are_reserved_once_each(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    // 40 concurrent reservations with max 10: exactly 10 go ahead, and the user is locked until 1000
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.password_attempt(aid, uid, 100, 10, 1000).await.expect("attempt") }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.expect("join"));
    }
    assert_eq!(allowed, 10);
    assert!(!s.password_attempt(aid, uid, 999, 10, 2000).await.expect("attempt"), "locked until 1000");
    // the lockout runs out: one more attempt goes ahead (and locks again)
    assert!(s.password_attempt(aid, uid, 1000, 10, 3000).await.expect("attempt"));
    assert!(!s.password_attempt(aid, uid, 1001, 10, 3000).await.expect("attempt"));
    // a right password resets
    s.password_reset(aid, uid).await.expect("reset");
    for _ in 0..9 {
        assert!(s.password_attempt(aid, uid, 1002, 10, 4000).await.expect("attempt"));
    }
    // another account's id or an unknown user: nothing goes ahead
    assert!(!s.password_attempt(aid + 1, uid, 1002, 10, 4000).await.expect("attempt"));
    assert!(!s.password_attempt(aid, -1, 1002, 10, 4000).await.expect("attempt"));
    // password failures are not the device's
    let did = s.create_device(&device(aid, Some(uid), "PW-1")).await.expect("device");
    assert_eq!(s.device_by_id(aid, did).await.expect("read").expect("device").fail_count, 0);
}
conformance!(password_attempts_are_reserved_once_each);

async fn username_keys_page_and_set(s: Arc<dyn Store>) {
    let (aid, uid) = setup(&s).await;
    let u2 = UserRow { account_id: aid, username: "Bob".into(), created_at: 1, ..Default::default() };
    let bob = s.create_user(&u2, "bob").await.expect("user");
    let page = s.user_keys_page(0, 10).await.expect("page");
    assert_eq!(
        page.iter().map(|r| (r.id, r.account_id, r.username.as_str(), r.username_key.as_str())).collect::<Vec<_>>(),
        vec![(uid, aid, "Alice", "alice"), (bob, aid, "Bob", "bob")]
    );
    assert_eq!(s.user_keys_page(uid, 10).await.expect("page").len(), 1);
    assert!(s.user_keys_page(bob, 10).await.expect("page").is_empty());
    assert_eq!(s.user_keys_page(0, 1).await.expect("page").len(), 1);
    assert!(matches!(s.set_username_key(aid, bob, "alice").await, Err(StoreError::Conflict)));
    assert!(s.set_username_key(aid, bob, "robert").await.expect("set"));
    assert!(!s.set_username_key(aid + 1, bob, "x").await.expect("set"));
    assert_eq!(s.user_by_key(aid, "robert").await.expect("read").map(|u| u.id), Some(bob));
    assert!(s.user_by_key(aid, "bob").await.expect("read").is_none());
}
conformance!(username_keys_page_and_set);
