//! Two application instances on one database (two nodes behind a load balancer): every guarantee holds across
//! them. On PostgreSQL this is the multi-node deployment; on SQLite, two processes sharing one file.

use crate::helpers::{assert_code, spawn_app, start, Backend, TestApp};
use serde_json::json;
use tessera_otp::{hotp_code, Algorithm};

const SEED_HEX: &str = "3132333435363738393031323334353637383930";

async fn second_node(a: &TestApp) -> TestApp {
    let mut settings = a.settings.clone();
    settings.listen = "127.0.0.1:0".into();
    start(settings, a.clock.clone()).await
}

fn code(counter: u64) -> String {
    hotp_code(b"12345678901234567890", counter, 6, Algorithm::Sha1)
}

async fn add_hotp_user(a: &TestApp, user: &str) -> String {
    assert_code(&a.call("add_user", json!({"username": user})).await, 0);
    let r = a.call("add_oath_device", json!({"username": user, "secretKeyHex": SEED_HEX, "OtpType": 1, "OtpLength": 6})).await;
    assert_code(&r, 0);
    r["psn"].as_str().unwrap_or("").to_string()
}

async fn one_code_once_across_nodes(b: Backend) {
    let a = spawn_app(b).await;
    let b2 = second_node(&a).await;
    let psn = add_hotp_user(&a, "racer").await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (url, body) = if i % 2 == 0 {
            (a.api.clone(), a.body("validate_oath_otp", json!({"username": "racer", "otp": code(0), "psn": psn})))
        } else {
            (b2.api.clone(), b2.body("validate_oath_otp", json!({"username": "racer", "otp": code(0), "psn": psn})))
        };
        let client = a.client.clone();
        tasks.push(tokio::spawn(async move {
            let v: serde_json::Value = client.post(url).body(body).send().await.expect("send").json().await.expect("json");
            v["errorCode"].as_i64().unwrap_or(-1)
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.expect("join"));
    }
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 9002).count(), 49, "{codes:?}");
    assert_code(&b2.call("validate_oath_otp", json!({"username": "racer", "otp": code(1)})).await, 0);
    assert_code(&a.call("validate_oath_otp", json!({"username": "racer", "otp": code(1)})).await, 9002);
}
api_test!(one_code_once_across_nodes);

async fn lockout_counts_across_nodes(b: Backend) {
    let a = spawn_app(b).await;
    let b2 = second_node(&a).await;
    add_hotp_user(&a, "locked").await;
    let wrong = if code(0) == "000000" { "111111" } else { "000000" };
    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b2 };
        assert_code(&node.call("validate_oath_otp", json!({"username": "locked", "otp": wrong})).await, 9003);
    }
    assert_code(&a.call("validate_oath_otp", json!({"username": "locked", "otp": code(0)})).await, 9015);
    assert_code(&b2.call("validate_oath_otp", json!({"username": "locked", "otp": code(0)})).await, 9015);
}
api_test!(lockout_counts_across_nodes);

async fn session_token_expired_on_one_node_is_invalid_on_the_other(b: Backend) {
    let a = spawn_app(b).await;
    let b2 = second_node(&a).await;
    assert_code(&a.call("add_user", json!({"username": "s"})).await, 0);
    let t = a.call("create_session_token", json!({"username": "s"})).await["sessionTokenId"].as_str().unwrap_or("").to_string();
    assert_code(&b2.call("is_session_token_valid", json!({"sessionTokenId": t})).await, 0);
    assert_code(&a.call("expire_session_token", json!({"sessionTokenId": t})).await, 0);
    assert_code(&b2.call("is_session_token_valid", json!({"sessionTokenId": t})).await, 9107);
}
api_test!(session_token_expired_on_one_node_is_invalid_on_the_other);
