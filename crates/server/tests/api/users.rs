//! Users: add, update, delete, find, search, validate (docs/api.md).

use crate::helpers::{assert_code, spawn_app, Backend};
use serde_json::json;

async fn add_find_update_delete(b: Backend) {
    let app = spawn_app(b).await;
    let r = app
        .call("add_user", json!({"username": "Mandy", "firstName": "Mandy", "lastName": "Moore", "mobile": "+1(800)200-8411", "email": "mandy@example.com", "pw": "S3cret!", "userStatus": 0}))
        .await;
    assert_code(&r, 0);
    assert_eq!(r["errorMessage"], "OK");
    assert_eq!(r["type"], "add_user");
    // usernames are unique case-insensitively
    assert_code(&app.call("add_user", json!({"username": "MANDY"})).await, 9105);
    let f = app.call("find_user", json!({"username": "mandy"})).await;
    assert_code(&f, 0);
    assert_eq!(f["firstName"], "Mandy");
    assert_eq!(f["lastName"], "Moore");
    assert_eq!(f["mobile"], "+1(800)200-8411");
    assert_eq!(f["email"], "mandy@example.com");
    assert_eq!(f["userStatus"], 0);
    assert_eq!(f["Devices"], json!([]));
    // omitted and empty fields keep their value
    assert_code(&app.call("update_user", json!({"username": "Mandy", "lastName": "Smith", "email": "", "userStatus": "1"})).await, 0);
    let f = app.call("find_user", json!({"username": "Mandy"})).await;
    assert_eq!(f["lastName"], "Smith");
    assert_eq!(f["firstName"], "Mandy");
    assert_eq!(f["email"], "mandy@example.com");
    assert_eq!(f["userStatus"], 1);
    assert_code(&app.call("update_user", json!({"username": "nobody", "lastName": "x"})).await, 9001);
    assert_code(&app.call("delete_user", json!({"username": "Mandy", "removeRelated": "false"})).await, 0);
    assert_code(&app.call("find_user", json!({"username": "Mandy"})).await, 9001);
    assert_code(&app.call("delete_user", json!({"username": "Mandy"})).await, 9001);
}
api_test!(add_find_update_delete);

async fn validate_user_checks_password_and_status(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "bob", "pw": "right-pw"})).await, 0);
    assert_code(&app.call("validate_user", json!({"username": "bob", "pw": "right-pw"})).await, 0);
    let alias = app.call("validate_u2f_user", json!({"username": "BOB", "password": "right-pw"})).await;
    assert_code(&alias, 0);
    assert_eq!(alias["type"], "validate_u2f_user");
    let wrong = app.call("validate_user", json!({"username": "bob", "pw": "wrong"})).await;
    assert_code(&wrong, 9001);
    assert!(!wrong["errorMessage"].as_str().unwrap_or("").contains("wrong"), "message must not echo the password");
    assert_code(&app.call("validate_user", json!({"username": "ghost", "pw": "x"})).await, 9001);
    assert_code(&app.call("update_user", json!({"username": "bob", "userStatus": 1})).await, 0);
    assert_code(&app.call("validate_user", json!({"username": "bob", "pw": "right-pw"})).await, 9007);
    // a disabled user with a wrong password learns nothing more than 9001
    assert_code(&app.call("validate_user", json!({"username": "bob", "pw": "nope"})).await, 9001);
    let status = app.call("validate_user", json!({"username": "bob", "noAuth": "1"})).await;
    assert_code(&status, 0);
    assert_eq!(status["userStatus"], 1);
    assert_eq!(status["Devices"], json!([]));
    // a user without a password cannot pass validation
    assert_code(&app.call("add_user", json!({"username": "nopw"})).await, 0);
    assert_code(&app.call("validate_user", json!({"username": "nopw", "pw": ""})).await, 9001);
}
api_test!(validate_user_checks_password_and_status);

async fn imported_sha_hashes_validate(b: Backend) {
    use base64::Engine;
    use sha2::Digest;
    let app = spawn_app(b).await;
    for (alg, digest) in [
        ("sha256", sha2::Sha256::digest(b"imported-1").to_vec()),
        ("sha384", sha2::Sha384::digest(b"imported-1").to_vec()),
        ("sha512", sha2::Sha512::digest(b"imported-1").to_vec()),
    ] {
        let user = format!("imp-{alg}");
        let pw = format!("{{{alg}}}{}", base64::engine::general_purpose::STANDARD.encode(digest));
        assert_code(&app.call("add_user", json!({"username": user, "pw": pw})).await, 0);
        assert_code(&app.call("validate_user", json!({"username": user, "pw": "imported-1"})).await, 0);
        assert_code(&app.call("validate_user", json!({"username": user, "pw": "imported-2"})).await, 9001);
    }
    assert_code(&app.call("add_user", json!({"username": "bad", "pw": "{sha256}!!notbase64"})).await, 9103);
}
api_test!(imported_sha_hashes_validate);

async fn find_users_with_wildcards(b: Backend) {
    let app = spawn_app(b).await;
    for (u, e) in [("marty", "marty@a.com"), ("Mark", "mark@b.com"), ("larry", "larry@a.com")] {
        assert_code(&app.call("add_user", json!({"username": u, "email": e})).await, 0);
    }
    let r = app.call("find_users", json!({"queryFilter": "mar%"})).await;
    assert_code(&r, 0);
    let names: Vec<&str> = r["Users"].as_array().map(|a| a.iter().filter_map(|u| u["username"].as_str()).collect()).unwrap_or_default();
    assert_eq!(names, vec!["Mark", "marty"]);
    let r = app.call("find_users", json!({"queryFilter": "%@a.com", "queryFilterType": "email"})).await;
    assert_eq!(r["Users"].as_array().map(|a| a.len()), Some(2));
    let r = app.call("find_users", json!({"queryFilter": "l_rry", "queryType": "username"})).await;
    assert_eq!(r["Users"][0]["username"], "larry");
    let all = app.call("find_users", json!({})).await;
    assert_eq!(all["Users"].as_array().map(|a| a.len()), Some(3));
    assert_code(&app.call("find_users", json!({"queryFilterType": "phone"})).await, 9103);
}
api_test!(find_users_with_wildcards);

async fn unicode_and_long_usernames(b: Backend) {
    let app = spawn_app(b).await;
    let name = "Ünïcødé-用户-👩‍💻";
    assert_code(&app.call("add_user", json!({"username": name, "pw": "pässwörd"})).await, 0);
    assert_code(&app.call("validate_user", json!({"username": "ünïcødé-用户-👩‍💻", "pw": "pässwörd"})).await, 0);
    assert_eq!(app.call("find_user", json!({"username": name})).await["username"], name);
    let long = "a".repeat(257);
    let r = app.call("add_user", json!({"username": long})).await;
    assert_code(&r, 9103);
    assert!(r["errorMessage"].as_str().unwrap_or("").contains("username"));
    assert_code(&app.call("add_user", json!({"username": "a".repeat(256)})).await, 0);
    assert_code(&app.call("add_user", json!({"username": "tab\there"})).await, 9103);
    assert_code(&app.call("add_user", json!({"username": "   "})).await, 9102);
}
api_test!(unicode_and_long_usernames);

async fn accounts_are_isolated(b: Backend) {
    let app = spawn_app(b).await;
    let (other, other_key) = app.other_account("other").await;
    assert_code(&app.call("add_user", json!({"username": "alice", "pw": "pw-a", "email": "alice@x"})).await, 0);
    // the other account sees nothing of alice
    assert_code(&app.call_as(&other, &other_key, "find_user", json!({"username": "alice"})).await, 9001);
    assert_code(&app.call_as(&other, &other_key, "validate_user", json!({"username": "alice", "pw": "pw-a"})).await, 9001);
    assert_code(&app.call_as(&other, &other_key, "delete_user", json!({"username": "alice"})).await, 9001);
    assert_code(&app.call_as(&other, &other_key, "update_user", json!({"username": "alice", "pw": "x"})).await, 9001);
    let list = app.call_as(&other, &other_key, "find_users", json!({"queryFilter": "%"})).await;
    assert_eq!(list["Users"], json!([]));
    // the same username may exist in both accounts
    assert_code(&app.call_as(&other, &other_key, "add_user", json!({"username": "alice", "pw": "pw-b"})).await, 0);
    assert_code(&app.call("validate_user", json!({"username": "alice", "pw": "pw-b"})).await, 9001);
    assert_code(&app.call("validate_user", json!({"username": "alice", "pw": "pw-a"})).await, 0);
    // one account's key does not open the other
    assert_code(&app.call_as(&other, &app.key, "find_user", json!({"username": "alice"})).await, 9000);
}
api_test!(accounts_are_isolated);
