//! Start-up, restart, audit trail, ops routes, secrets at rest.

use crate::helpers::{assert_code, spawn_app, Backend};
use serde_json::{json, Value};

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
    let ops: Vec<(&str, i64)> = rows.iter().rev().map(|r| (r.op.as_str(), r.code)).collect();
    assert_eq!(ops, vec![("add_user", 0), ("validate_user", 9001), ("find_user", 9000)]);
    assert!(rows.iter().all(|r| r.username == "aud" && r.source == "127.0.0.1"));
    assert_eq!(rows[2].account_id, Some(account_id));
    assert_eq!(rows[0].account_id, None, "a failed account login is not attributed");
    let dump = format!("{rows:?}");
    assert!(!dump.contains("TopSecretPw1") && !dump.contains("WrongPw2") && !dump.contains("bad-key"));
    let own = store.list_audit(Some(account_id), 100).await.expect("audit");
    assert_eq!(own.len(), 2);
}
api_test!(every_request_is_audited_without_secrets);

async fn delete_with_remove_related_drops_audit(b: Backend) {
    let mut app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "gone"})).await, 0);
    assert_code(&app.call("add_user", json!({"username": "kept"})).await, 0);
    // let the audit writer catch up before deleting
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_code(&app.call("delete_user", json!({"username": "GONE", "removeRelated": true})).await, 0);
    let store = app.state.service.store.clone();
    app.stop().await;
    let rows = store.list_audit(None, 100).await.expect("audit");
    let users: Vec<&str> = rows.iter().map(|r| r.username.as_str()).collect();
    assert_eq!(users.iter().filter(|u| **u == "gone").count(), 0, "{users:?}");
    assert_eq!(users.iter().filter(|u| **u == "GONE").count(), 1, "the delete itself is recorded after the purge");
    assert_eq!(users.iter().filter(|u| **u == "kept").count(), 1);
}
api_test!(delete_with_remove_related_drops_audit);

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
