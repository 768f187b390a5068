//! Start-up, restart, audit trail, ops routes, secrets at rest.

use crate::helpers::{assert_code, spawn_app, Backend};
use serde_json::{json, Value};
use tessera_core::service::Clock;

async fn data_survives_a_restart(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "persist", "pw": "pw-persist"})).await, 0);
    let token = app.call("create_session_token", json!({"username": "persist"})).await["sessionTokenId"].as_str().unwrap_or("").to_string();
    let app = app.restart().await;
    assert_code(&app.call("validate_user", json!({"username": "persist", "pw": "pw-persist"})).await, 0);
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token})).await, 0);
    // the first account is created once: the restart did not make another
    let accounts = app.state.service.store.list_accounts().await.expect("list");
    assert_eq!(accounts.len(), 1);
}
api_test!(data_survives_a_restart);

async fn every_request_is_audited_without_secrets(b: Backend) {
    let mut app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "aud", "pw": "TopSecretPw1"})).await, 0);
    assert_code(&app.call("validate_user", json!({"username": "aud", "pw": "WrongPw2"})).await, 9001);
    assert_code(&app.call_as(&app.account.clone(), "bad-key", "find_user", json!({"username": "aud"})).await, 9000);
    let store = app.state.service.store.clone();
    let account_id = store.account_by_name(&app.account).await.expect("q").expect("account").id;
    app.stop().await; // flushes the audit writer
    let rows = store.list_audit(None, 100).await.expect("audit");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let own = store.list_audit(Some(account_id), 100).await.expect("audit");
    let ops: Vec<(&str, i64)> = own.iter().rev().map(|r| (r.op.as_str(), r.code)).collect();
    assert_eq!(ops, vec![("add_user", 0), ("validate_user", 9001)]);
    assert!(rows.iter().all(|r| r.username == "aud" && r.source == "127.0.0.1"));
    let failed: Vec<_> = rows.iter().filter(|r| r.account_id.is_none()).collect();
    assert_eq!(failed.len(), 1, "a failed account login is not attributed");
    assert_eq!((failed[0].op.as_str(), failed[0].code, failed[0].count), ("find_user", 9000, 1));
    let dump = format!("{rows:?}");
    assert!(!dump.contains("TopSecretPw1") && !dump.contains("WrongPw2") && !dump.contains("bad-key"));
}
api_test!(every_request_is_audited_without_secrets);

/// Requests with a wrong account key are counted in one row per source address and minute, not
/// one row each; fields copied into audit rows are capped.
async fn unauthenticated_requests_are_audited_in_aggregate(b: Backend) {
    let mut app = spawn_app(b).await;
    let long = "x".repeat(10_000);
    let started_minute = app.clock.now_ms() / 60_000;
    let mut sent = 0;
    for i in 0..60 {
        let r = app.call_as(&format!("{long}{i}"), &format!("wrong-{i}"), "find_user", json!({"username": long})).await;
        assert_code(&r, 9000);
        sent += 1;
        if i % 20 == 0 {
            // let some rows reach the database before the next ones (several writes add up)
            tokio::time::sleep(std::time::Duration::from_millis(120)).await;
        }
    }
    // an authenticated request with an over-long username (refused, and audited with the name cut)
    assert_code(&app.call("find_user", json!({"username": long})).await, 9103);
    let store = app.state.service.store.clone();
    let ended_minute = app.clock.now_ms() / 60_000;
    app.stop().await;
    let rows = store.list_audit(None, 1000).await.expect("audit");
    let unauth: Vec<_> = rows.iter().filter(|r| r.account_id.is_none()).collect();
    let minutes = (ended_minute - started_minute + 1) as usize;
    assert!(!unauth.is_empty() && unauth.len() <= minutes, "one row per source and minute, not one per request: {}", unauth.len());
    assert_eq!(unauth.iter().map(|r| r.count).sum::<i64>(), sent);
    assert!(unauth.iter().all(|r| r.source == "127.0.0.1" && r.code == 9000));
    assert_eq!(rows.len(), unauth.len() + 1);
    for r in &rows {
        for field in [&r.account_name, &r.op, &r.username, &r.psn, &r.source] {
            assert!(field.chars().count() <= 128, "an audit field of {} characters", field.chars().count());
        }
    }
    assert_eq!(rows.iter().find(|r| r.account_id.is_some()).map(|r| r.username.len()), Some(128));
}
api_test!(unauthenticated_requests_are_audited_in_aggregate);

/// The trail is append-only: `delete_user` with `removeRelated` removes the user's devices and
/// sessions, never their audit rows, and the chain still verifies.
async fn delete_with_remove_related_keeps_audit(b: Backend) {
    let mut app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "gone", "pw": "pw-gone-1"})).await, 0);
    assert_code(&app.call("add_oath_device", json!({"username": "gone"})).await, 0);
    assert_code(&app.call("validate_user", json!({"username": "gone", "pw": "pw-gone-1"})).await, 0);
    let token = app.call("create_session_token", json!({"username": "gone"})).await["sessionTokenId"].as_str().unwrap_or("").to_string();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_code(&app.call("delete_user", json!({"username": "GONE", "removeRelated": true})).await, 0);
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token})).await, 9107);
    let store = app.state.service.store.clone();
    let account_id = store.account_by_name(&app.account).await.expect("q").expect("account").id;
    assert!(store.account_devices(account_id, 10).await.expect("devices").is_empty(), "the user's device went");
    let key = app.state.service.master_key.audit_chain_key();
    app.stop().await;
    let rows = store.list_audit(None, 100).await.expect("audit");
    let users: Vec<&str> = rows.iter().map(|r| r.username.as_str()).collect();
    assert_eq!(users.iter().filter(|u| **u == "gone").count(), 4, "the user's history stays: {users:?}");
    assert_eq!(users.iter().filter(|u| **u == "GONE").count(), 1);
    let reports = tessera_core::service::audit::verify(&*store, &key, Some(account_id)).await.expect("verify");
    assert_eq!((reports[0].rows, reports[0].fault.clone()), (rows.len() as u64, None));
}
api_test!(delete_with_remove_related_keeps_audit);

async fn ops_routes(b: Backend) {
    let app = spawn_app(b).await;
    let h = app.client.get(format!("{}/healthz", app.base)).send().await.expect("healthz");
    assert_eq!(h.status(), 200);
    let r = app.client.get(format!("{}/readyz", app.base)).send().await.expect("readyz");
    assert_eq!(r.status(), 200);
    assert_code(&app.call("add_user", json!({"username": "m"})).await, 0);
    assert_code(&app.call("find_user", json!({"username": "zz"})).await, 9001);
    let m = app.client.get(format!("{}/metrics", app.base)).send().await.expect("metrics").text().await.expect("text");
    assert!(m.contains(r#"tessera_requests_total{front="json",type="add_user",code="0"} 1"#), "{m}");
    assert!(m.contains(r#"type="find_user",code="9001"} 1"#), "{m}");
    assert!(m.contains("tessera_request_duration_seconds_bucket"), "{m}");
    let doc: Value = app.client.get(format!("{}/openapi.json", app.base)).send().await.expect("openapi").json().await.expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let mapping = doc["components"]["schemas"]["Request"]["discriminator"]["mapping"].as_object().cloned().unwrap_or_default();
    for op in tessera_core::catalog::operations() {
        assert!(mapping.contains_key(op.name), "openapi lacks {}", op.name);
        for a in op.aliases {
            assert!(mapping.contains_key(*a), "openapi lacks alias {a}");
        }
    }
}
api_test!(ops_routes);

#[tokio::test]
async fn secrets_are_not_stored_in_plain_text() {
    let mut app = spawn_app(Backend::Sqlite).await;
    assert_code(&app.call("add_user", json!({"username": "plain", "pw": "PlainTextPassword123"})).await, 0);
    let token = app.call("create_session_token", json!({"username": "plain"})).await["sessionTokenId"].as_str().unwrap_or("").to_string();
    app.stop().await;
    let mut raw = Vec::new();
    for f in ["tessera.db", "tessera.db-wal"] {
        if let Ok(b) = std::fs::read(app.data_dir.join(f)) {
            raw.extend(b);
        }
    }
    assert!(!raw.is_empty());
    let hay = String::from_utf8_lossy(&raw);
    assert!(!hay.contains("PlainTextPassword123"));
    assert!(!hay.contains(&token), "session token stored in plain text");
    assert!(!hay.contains(&app.key), "account key stored in plain text");
    assert!(hay.contains("$argon2id$"), "password not stored as argon2id");
    let initial = std::fs::metadata(app.data_dir.join("initial-account.json")).expect("initial-account.json");
    let master = std::fs::metadata(app.data_dir.join("master.key")).expect("master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(initial.permissions().mode() & 0o777, 0o600);
    assert_eq!(master.permissions().mode() & 0o777, 0o600);
}

/// docs/api.md documents every error code and every operation the catalogue implements.
#[test]
fn api_docs_cover_every_code_and_type() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let doc = std::fs::read_to_string(&path).expect("docs/api.md");
    for (code, name, _) in tessera_core::error::CODE_TABLE {
        assert!(doc.contains(&format!("| {code} | {name} |")), "docs/api.md lacks error code {code} ({name})");
    }
    for op in tessera_core::catalog::operations() {
        assert!(doc.contains(&format!("`{}`", op.name)), "docs/api.md lacks operation {}", op.name);
    }
}
