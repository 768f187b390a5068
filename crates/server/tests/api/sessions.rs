//! Session tokens (docs/api.md).

use crate::helpers::{assert_code, spawn_app, Backend};
use serde_json::json;

async fn create_check_expire(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "mark", "pw": "pw1"})).await, 0);
    let c = app
        .call(
            "create_session_token",
            json!({"username": "mark", "pw": "pw1", "sessionTokenDurationMinutes": "30", "sessionTokenType": "0"}),
        )
        .await;
    assert_code(&c, 0);
    let token = c["sessionTokenId"].as_str().unwrap_or("").to_string();
    assert!(token.len() >= 43, "token too short: {token}");
    assert!(token.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
    let exp = c["expiresAt"].as_str().unwrap_or("");
    assert!(exp.ends_with('Z') && exp.contains('T'), "expiresAt {exp}");
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token})).await, 0);
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token, "username": "MARK"})).await, 0);
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": format!("{token}x")})).await, 9107);
    // wrong password: no token
    assert_code(&app.call("create_session_token", json!({"username": "mark", "pw": "bad"})).await, 9001);
    // out-of-range durations
    assert_code(&app.call("create_session_token", json!({"username": "mark", "sessionTokenDurationMinutes": 0})).await, 9103);
    assert_code(&app.call("create_session_token", json!({"username": "mark", "sessionTokenDurationMinutes": "43201"})).await, 9103);
    assert_code(&app.call("create_session_token", json!({"username": "mark", "sessionTokenDurationMinutes": "abc"})).await, 9103);
    // another user's name does not validate the token
    assert_code(&app.call("add_user", json!({"username": "eve"})).await, 0);
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token, "username": "eve"})).await, 9107);
    assert_code(&app.call("expire_session_token", json!({"sessionTokenId": token, "username": "eve"})).await, 9107);
    let d = app.call("delete_session_token", json!({"sessionTokenId": token, "username": "mark"})).await;
    assert_code(&d, 0);
    assert_eq!(d["type"], "delete_session_token");
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token})).await, 9107);
    assert_code(&app.call("expire_session_token", json!({"sessionTokenId": token})).await, 9107);
}
api_test!(create_check_expire);

async fn tokens_expire_with_time(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "t"})).await, 0);
    let c = app.call("create_session_token", json!({"username": "t", "sessionTokenDurationMinutes": 1})).await;
    let token = c["sessionTokenId"].as_str().unwrap_or("").to_string();
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token})).await, 0);
    app.clock.advance_secs(61);
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token})).await, 9107);
}
api_test!(tokens_expire_with_time);

async fn tokens_are_per_account_and_die_with_the_user(b: Backend) {
    let app = spawn_app(b).await;
    let (other, key) = app.other_account("acct2").await;
    assert_code(&app.call("add_user", json!({"username": "u"})).await, 0);
    let token = app.call("create_session_token", json!({"username": "u"})).await["sessionTokenId"].as_str().unwrap_or("").to_string();
    assert_code(&app.call_as(&other, &key, "is_session_token_valid", json!({"sessionTokenId": token})).await, 9107);
    assert_code(&app.call_as(&other, &key, "expire_session_token", json!({"sessionTokenId": token})).await, 9107);
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token})).await, 0);
    assert_code(&app.call("delete_user", json!({"username": "u"})).await, 0);
    assert_code(&app.call("is_session_token_valid", json!({"sessionTokenId": token})).await, 9107);
}
api_test!(tokens_are_per_account_and_die_with_the_user);
