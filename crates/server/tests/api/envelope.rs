//! The envelope and lenient parsing (docs/api.md), and bad input of every kind.

use crate::helpers::{assert_code, spawn_app, Backend};
use serde_json::json;

async fn get_with_body_trailing_commas_and_scalars(b: Backend) {
    let app = spawn_app(b).await;
    // trailing commas, as in the vendor samples
    let body = format!(
        r#"{{"type":"add_user","spAccountLoginName":"{}","spAccountLoginKey":"{}","username":"Mandy","userStatus":"0","pw":"x",}}"#,
        app.account, app.key
    );
    let (s, v) = app.post_raw(body).await;
    assert_eq!(s, 200);
    assert_code(&v, 0);
    // GET with a JSON body
    let r = app.client.get(&app.api).body(app.body("find_user", json!({"username": "mandy"}))).send().await.expect("get");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_code(&v, 0);
    assert_eq!(v["type"], "find_user");
    // bool / number / string scalars
    for (form, expect) in [(json!(1), 1), (json!("1"), 1), (json!(true), 1), (json!(0), 0), (json!("false"), 0), (json!(false), 0)] {
        assert_code(&app.call("update_user", json!({"username": "Mandy", "userStatus": form})).await, 0);
        assert_eq!(app.call("find_user", json!({"username": "Mandy"})).await["userStatus"], expect);
    }
    assert_code(&app.call("delete_user", json!({"username": "Mandy", "removeRelated": 0})).await, 0);
    // other verbs are 405
    let r = app.client.put(&app.api).body("{}").send().await.expect("put");
    assert_eq!(r.status(), 405);
    let r = app.client.delete(&app.api).send().await.expect("delete");
    assert_eq!(r.status(), 405);
}
api_test!(get_with_body_trailing_commas_and_scalars);

async fn malformed_bodies_get_precise_codes(b: Backend) {
    let app = spawn_app(b).await;
    let cases: Vec<(Vec<u8>, i64, &str)> = vec![
        (b"{bad json".to_vec(), 9101, "malformed JSON"),
        (b"".to_vec(), 9101, "empty"),
        (b"   ".to_vec(), 9101, "empty"),
        (b"[1,2,3]".to_vec(), 9101, "JSON object"),
        (b"\"str\"".to_vec(), 9101, "JSON object"),
        (vec![0xff, 0xfe, 0x7b], 9101, "UTF-8"),
        (b"{\"type\": 5}".to_vec(), 9103, "type"),
    ];
    for (body, code, needle) in cases {
        let (s, v) = app.post_raw(body).await;
        assert_eq!(s, 200);
        assert_code(&v, code);
        assert!(v["errorMessage"].as_str().unwrap_or("").contains(needle), "{v}");
    }
    // missing / unknown type, with good credentials
    let (_, v) = app.post_raw(app.body("", json!({}))).await;
    assert_code(&v, 9100);
    let (_, v) = app.post_raw(format!(r#"{{"spAccountLoginName":"{}","spAccountLoginKey":"{}"}}"#, app.account, app.key)).await;
    assert_code(&v, 9100);
    let v = app.call("no_such_type", json!({})).await;
    assert_code(&v, 9100);
    assert_eq!(v["type"], "no_such_type");
    // missing and wrongly typed fields name the field
    let v = app.call("add_user", json!({})).await;
    assert_code(&v, 9102);
    assert_eq!(v["errorMessage"], "missing field: username");
    let v = app.call("add_user", json!({"username": {"nested": 1}})).await;
    assert_code(&v, 9103);
    assert!(v["errorMessage"].as_str().unwrap_or("").contains("username"));
    let v = app.call("add_user", json!({"username": "x", "userStatus": "maybe"})).await;
    assert_code(&v, 9103);
    assert!(v["errorMessage"].as_str().unwrap_or("").contains("userStatus"));
    let v = app.call("add_user", json!({"username": "x", "userStatus": 7})).await;
    assert_code(&v, 9103);
    let v = app.call("add_user", json!({"username": ["a"]})).await;
    assert_code(&v, 9103);
    // the server is still serving
    assert_code(&app.call("add_user", json!({"username": "still-here"})).await, 0);
}
api_test!(malformed_bodies_get_precise_codes);

async fn huge_bodies_are_413_with_the_envelope(b: Backend) {
    let app = spawn_app(b).await;
    let big = app.body("add_user", json!({"username": "big", "firstName": "x".repeat(70 * 1024)}));
    let (s, v) = app.post_raw(big).await;
    assert_eq!(s, 413);
    assert_code(&v, 9104);
    // just under the limit is fine (the field itself is over the per-field limit: 9103)
    let near = app.body("add_user", json!({"username": "near", "firstName": "x".repeat(60 * 1024)}));
    let (s, v) = app.post_raw(near).await;
    assert_eq!(s, 200);
    assert_code(&v, 9103);
    assert_code(&app.call("add_user", json!({"username": "after"})).await, 0);
}
api_test!(huge_bodies_are_413_with_the_envelope);

async fn account_authentication_comes_first(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "victim", "pw": "pw"})).await, 0);
    for (name, key) in [(app.account.as_str(), "wrong-key"), ("nobody", app.key.as_str()), ("", ""), (app.account.as_str(), "")] {
        let v = app.call_as(name, key, "find_user", json!({"username": "victim"})).await;
        assert_code(&v, 9000);
        assert!(v.get("Devices").is_none() && v.get("firstName").is_none(), "leaked data: {v}");
        // nothing else is looked at: even a malformed field or unknown type is 9000
        assert_code(&app.call_as(name, key, "no_such_type", json!({})).await, 9000);
        assert_code(&app.call_as(name, key, "add_user", json!({"username": {"x": 1}})).await, 9000);
    }
    // numbers as credentials are read as text and simply fail
    let (_, v) = app.post_raw(r#"{"type":"find_user","spAccountLoginName":1,"spAccountLoginKey":2,"username":"victim"}"#).await;
    assert_code(&v, 9000);
}
api_test!(account_authentication_comes_first);

async fn aliases_are_accepted_and_echoed(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "al", "password": "pw-alias"})).await, 0);
    let v = app.call("validate_u2f_user", json!({"username": "al", "pw": "pw-alias"})).await;
    assert_code(&v, 0);
    assert_eq!(v["type"], "validate_u2f_user");
    let t = app.call("create_session_token", json!({"username": "al"})).await;
    let v = app.call("delete_session_token", json!({"sessionTokenId": t["sessionTokenId"]})).await;
    assert_code(&v, 0);
    assert_eq!(v["type"], "delete_session_token");
}
api_test!(aliases_are_accepted_and_echoed);
