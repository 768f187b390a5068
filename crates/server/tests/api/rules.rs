//! The hardening rules of docs/api.md: an unknown user is 9001 on every type (and costs what a
//! wrong password costs), password throttling shared by every password check, usernames matched
//! after NFKC and case mapping, failed resyncs counting toward the device lockout, the documented
//! field ranges, and account changes holding for the very next request on every node.

use crate::helpers::{assert_code, spawn_app, start_second, Backend, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tessera_core::store::UserRow;
use tessera_otp::{hotp_code, Algorithm};

const SEED_HEX: &str = "3132333435363738393031323334353637383930";

fn hotp(counter: u64) -> String {
    hotp_code(b"12345678901234567890", counter, 6, Algorithm::Sha1)
}

/// A 6-digit code that is none of the first 1100 codes of the RFC seed.
fn wrong_code() -> String {
    let used: std::collections::HashSet<String> = (0..1100).map(hotp).collect();
    (0..1_000_000).map(|n| format!("{n:06}")).find(|c| !used.contains(c)).unwrap_or_default()
}

async fn add_hotp_user(app: &TestApp, user: &str) -> String {
    assert_code(&app.call("add_user", json!({"username": user, "pw": "right-pw"})).await, 0);
    let r = app.call("add_oath_device", json!({"username": user, "secretKeyHex": SEED_HEX})).await;
    assert_code(&r, 0);
    r["psn"].as_str().unwrap_or_default().to_string()
}

async fn unknown_user_is_9001_on_every_type(b: Backend) {
    let app = spawn_app(b).await;
    let psn = add_hotp_user(&app, "known").await;
    // Types where the username only filters another lookup (a session token's owner) answer for
    // that lookup, the same for any user; the creating types take a new name.
    let skip = ["add_user", "find_users", "is_session_token_valid", "expire_session_token"];
    let mut checked = 0;
    for op in tessera_core::catalog::operations() {
        if skip.contains(&op.name) || !op.fields.iter().any(|f| f.name == "username") {
            continue;
        }
        let fields = json!({
            "username": "ghost", "addDeviceOnly": true, "appId": "https://example.com", "deliveryMethod": "email",
            "otp": "123456", "otp1": "123456", "otp2": "654321", "pw": "some-pw", "sessionId": "abc", "version": "U2F_V2",
            "registrationData": "AAAA", "clientData": "AAAA", "signatureData": "AAAA", "securityKeyName": "k",
            "securityKeyType": 1, "psn": psn,
        });
        let r = app.call(op.name, fields).await;
        assert_code(&r, 9001);
        assert!(r["errorMessage"].as_str().unwrap_or_default().contains("ghost"), "{}: {r}", op.name);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} types take a username");
    // send_oath_otp: the user before the delivery method
    assert_code(&app.call("send_oath_otp", json!({"username": "ghost"})).await, 9001);
    assert_code(&app.call("send_oath_otp", json!({"username": "ghost", "deliveryMethod": "fax"})).await, 9001);
}
api_test!(unknown_user_is_9001_on_every_type);

/// Duration of one call that must answer 9001.
async fn timed_9001(app: &TestApp, ty: &str, fields: Value) -> f64 {
    let started = Instant::now();
    let r = app.call(ty, fields).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    assert_code(&r, 9001);
    ms
}

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}

async fn unknown_user_costs_a_password_check(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "timed", "pw": "right-pw"})).await, 0);
    for ty in ["create_session_token", "validate_user"] {
        // interleaved, so that both see the same load on a shared machine
        let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            wrong.push(timed_9001(&app, ty, json!({"username": "timed", "pw": "wrong-pw"})).await);
            unknown.push(timed_9001(&app, ty, json!({"username": "nobody-here", "pw": "wrong-pw"})).await);
        }
        assert_code(&app.call("validate_user", json!({"username": "timed", "pw": "right-pw"})).await, 0);
        let (wrong, unknown) = (median(wrong), median(unknown));
        // argon2 dominates both (tens of milliseconds); before, an unknown user cost under 1 ms (1/40).
        assert!(wrong > 3.0, "{ty}: a wrong password took only {wrong:.2} ms");
        assert!(unknown > wrong * 0.3, "{ty}: unknown user {unknown:.2} ms, wrong password {wrong:.2} ms");
    }
}
api_test!(unknown_user_costs_a_password_check);

async fn passwords_are_throttled_per_user_across_nodes(b: Backend) {
    let a = spawn_app(b).await;
    let n2 = start_second(&a).await;
    let psn = add_hotp_user(&a, "pat").await;
    for i in 0..10 {
        let (node, ty) = match i % 3 {
            0 => (&a, "validate_user"),
            1 => (&n2, "create_session_token"),
            _ => (&a, "validate_u2f_user"),
        };
        assert_code(&node.call(ty, json!({"username": "pat", "pw": format!("guess-{i}")})).await, 9001);
    }
    // locked: the right password too, on every node and for both types
    let r = n2.call("validate_user", json!({"username": "pat", "pw": "right-pw"})).await;
    assert_code(&r, 9015);
    assert!(!r["errorMessage"].as_str().unwrap_or_default().contains("right-pw"), "{r}");
    assert_code(&a.call("create_session_token", json!({"username": "pat", "pw": "right-pw"})).await, 9015);
    // password failures are not the device's: its OTPs still validate
    assert_code(&a.call("validate_oath_otp", json!({"username": "pat", "otp": hotp(0), "psn": psn})).await, 0);
    // a token without a password is not a password check
    assert_code(&a.call("create_session_token", json!({"username": "pat"})).await, 0);
    // after lockout_seconds the right password works and resets the count
    a.clock.advance_secs(a.settings.otp.lockout_seconds + 1);
    assert_code(&n2.call("validate_user", json!({"username": "pat", "pw": "right-pw"})).await, 0);
    for i in 0..9 {
        assert_code(&a.call("validate_user", json!({"username": "pat", "pw": format!("again-{i}")})).await, 9001);
    }
    assert_code(&a.call("create_session_token", json!({"username": "pat", "pw": "right-pw"})).await, 0);
    for i in 0..9 {
        assert_code(&n2.call("validate_user", json!({"username": "pat", "pw": format!("more-{i}")})).await, 9001);
    }
    assert_code(&a.call("validate_user", json!({"username": "pat", "pw": "right-pw"})).await, 0);
    // and a device's OTP failures do not lock the password
    let wrong = wrong_code();
    for _ in 0..10 {
        assert_code(&a.call("validate_oath_otp", json!({"username": "pat", "otp": wrong, "psn": psn})).await, 9003);
    }
    assert_code(&a.call("validate_oath_otp", json!({"username": "pat", "otp": hotp(1), "psn": psn})).await, 9015);
    assert_code(&a.call("validate_user", json!({"username": "pat", "pw": "right-pw"})).await, 0);
}
api_test!(passwords_are_throttled_per_user_across_nodes);

async fn a_burst_of_wrong_passwords_gets_max_failures_checks(b: Backend) {
    let a = spawn_app(b).await;
    let n2 = start_second(&a).await;
    assert_code(&a.call("add_user", json!({"username": "burst", "pw": "right-pw"})).await, 0);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let node = if i % 2 == 0 { &a } else { &n2 };
        let ty = if i % 4 < 2 { "validate_user" } else { "create_session_token" };
        let (url, body) = (node.api.clone(), node.body(ty, json!({"username": "burst", "pw": format!("guess-{i}")})));
        let client = a.client.clone();
        tasks.push(tokio::spawn(async move {
            let v: Value = client.post(url).body(body).send().await.expect("send").json().await.expect("json");
            v["errorCode"].as_i64().unwrap_or(-1)
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.expect("join"));
    }
    let checked = codes.iter().filter(|c| **c == 9001).count();
    assert_eq!(checked, a.settings.otp.max_failures as usize, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 9015).count(), 40 - checked, "{codes:?}");
    assert_code(&n2.call("validate_user", json!({"username": "burst", "pw": "right-pw"})).await, 9015);
}
api_test!(a_burst_of_wrong_passwords_gets_max_failures_checks);

async fn usernames_match_after_nfkc_and_case_mapping(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "jos\u{e9}", "pw": "pw-1"})).await, 0);
    assert_code(&app.call("add_user", json!({"username": "jose\u{301}"})).await, 9105);
    assert_code(&app.call("add_user", json!({"username": "JOSE\u{301}"})).await, 9105);
    let r = app.call("find_user", json!({"username": "JOS\u{c9}"})).await;
    assert_code(&r, 0);
    assert_eq!(r["username"], "jos\u{e9}");
    assert_code(&app.call("validate_user", json!({"username": "Jose\u{301}", "pw": "pw-1"})).await, 0);
    assert_code(&app.call("add_user", json!({"username": "\u{ff43}\u{ff41}\u{ff52}\u{ff4f}\u{ff4c}"})).await, 0);
    assert_code(&app.call("add_user", json!({"username": "carol"})).await, 9105);
    assert_code(&app.call("find_user", json!({"username": "Carol"})).await, 0);
    let r = app.call("find_users", json!({"queryFilter": "CAR%"})).await;
    assert_eq!(r["Users"].as_array().map(|a| a.len()), Some(1), "{r}");
    for bad in
        ["car\u{200b}ol", "car\u{ad}ol", "\u{feff}carol", "car\u{2060}ol", "car\u{202e}ol", "car\u{2066}ol", "car\u{200d}ol", "car\u{7}ol"]
    {
        for ty in ["add_user", "find_user", "validate_user"] {
            let r = app.call(ty, json!({"username": bad, "pw": "x"})).await;
            assert_code(&r, 9103);
            assert!(r["errorMessage"].as_str().unwrap_or_default().contains("username"), "{r}");
        }
    }
}
api_test!(usernames_match_after_nfkc_and_case_mapping);

async fn stored_usernames_are_migrated_and_collisions_set_aside(b: Backend) {
    let app = spawn_app(b).await;
    let store = app.state.service.store.clone();
    let account = store.account_by_name(&app.account).await.expect("read").expect("account");
    assert_code(&app.call("add_user", json!({"username": "jos\u{e9}"})).await, 0);
    // rows as an earlier version stored them: only lower-cased
    let old = |name: &str| UserRow { account_id: account.id, username: name.to_string(), created_at: 1, ..Default::default() };
    let decomposed = store.create_user(&old("jose\u{301}"), "jose\u{301}").await.expect("old-style row");
    store
        .create_user(&old("\u{ff23}\u{ff21}\u{ff32}\u{ff2f}\u{ff2c}"), "\u{ff43}\u{ff41}\u{ff52}\u{ff4f}\u{ff4c}")
        .await
        .expect("old-style row");
    assert_code(&app.call("find_user", json!({"username": "carol"})).await, 9001);

    let collisions = tessera_core::service::usernames::migrate_username_keys(&*store).await.expect("migrate");
    assert_eq!(collisions.len(), 1, "{collisions:?}");
    assert_eq!(collisions[0].user_id, decomposed);
    assert_eq!(collisions[0].holder_username.as_deref(), Some("jos\u{e9}"));
    // the fullwidth row answers to carol now; the set-aside row is kept but answers as unknown
    let r = app.call("find_user", json!({"username": "carol"})).await;
    assert_code(&r, 0);
    assert_eq!(r["username"], "\u{ff23}\u{ff21}\u{ff32}\u{ff2f}\u{ff2c}");
    let r = app.call("find_user", json!({"username": "jose\u{301}"})).await;
    assert_eq!(r["username"], "jos\u{e9}", "{r}");
    assert!(store.user_by_id(account.id, decomposed).await.expect("read").is_some(), "the collided row was removed");
    // a second run reports it again, changes nothing else
    let again = tessera_core::service::usernames::migrate_username_keys(&*store).await.expect("migrate");
    assert_eq!(again, collisions);
    // once the holder is gone, the set-aside row gets its name back
    assert_code(&app.call("delete_user", json!({"username": "jos\u{e9}"})).await, 0);
    assert!(tessera_core::service::usernames::migrate_username_keys(&*store).await.expect("migrate").is_empty());
    let r = app.call("find_user", json!({"username": "jos\u{e9}"})).await;
    assert_code(&r, 0);
    assert_eq!(r["username"], "jose\u{301}");
}
api_test!(stored_usernames_are_migrated_and_collisions_set_aside);

async fn failed_resyncs_count_toward_the_lockout(b: Backend) {
    let app = spawn_app(b).await;
    let psn = add_hotp_user(&app, "syncer").await;
    let wrong = wrong_code();
    for i in 0..10 {
        let ty = if i % 2 == 0 { "sync_oath_device" } else { "active_oath_device" };
        assert_code(&app.call(ty, json!({"psn": psn, "otp1": wrong, "otp2": hotp(1)})).await, 9035);
    }
    assert_code(&app.call("validate_oath_otp", json!({"username": "syncer", "otp": hotp(0)})).await, 9015);
    // a successful sync still lifts the lockout
    assert_code(&app.call("sync_oath_device", json!({"psn": psn, "otp1": hotp(5), "otp2": hotp(6)})).await, 0);
    assert_code(&app.call("validate_oath_otp", json!({"username": "syncer", "otp": hotp(7)})).await, 0);
    // failed syncs and failed validations add up
    for i in 0..10 {
        let r = if i % 2 == 0 {
            app.call("sync_oath_device", json!({"username": "syncer", "otp1": wrong, "otp2": wrong})).await
        } else {
            app.call("validate_oath_otp", json!({"username": "syncer", "otp": wrong})).await
        };
        assert!(matches!(r["errorCode"].as_i64(), Some(9035) | Some(9003)), "{r}");
    }
    assert_code(&app.call("validate_oath_otp", json!({"username": "syncer", "otp": hotp(8)})).await, 9015);
}
api_test!(failed_resyncs_count_toward_the_lockout);

async fn documented_ranges_are_enforced(b: Backend) {
    let app = spawn_app(b).await;
    for (field, bad, good) in [("windowSize", [0, 101, -1], [1, 100]), ("timeDrift", [0, 11, -1], [1, 10])] {
        for v in bad {
            let r = app.call("add_oath_device", json!({field: v})).await;
            assert_code(&r, 9103);
            assert!(r["errorMessage"].as_str().unwrap_or_default().contains(field), "{r}");
            let r = app.call("add_oath_account", json!({"username": format!("r-{field}-{v}"), field: v})).await;
            assert_code(&r, 9103);
            assert_code(&app.call("find_user", json!({"username": format!("r-{field}-{v}")})).await, 9001);
        }
        for v in good {
            assert_code(&app.call("add_oath_device", json!({field: v})).await, 0);
        }
    }
    for bad in ["not-an-address", "a@", "@b.com", "a b@c.com", "a@b..com", "a@-b.com", "a@b c.com"] {
        for ty in ["add_user", "add_oath_account", "add_u2f_account"] {
            let r = app.call(ty, json!({"username": "emailer", "email": bad})).await;
            assert_code(&r, 9103);
            assert!(r["errorMessage"].as_str().unwrap_or_default().contains("email"), "{ty} {bad}: {r}");
        }
    }
    for bad in ["12345", "+12", "555-1234", "+1 800 CALL NOW", "0044", "+0123456789"] {
        for ty in ["add_user", "add_oath_account", "add_u2f_account"] {
            let r = app.call(ty, json!({"username": "mobiler", "mobile": bad})).await;
            assert_code(&r, 9103);
            assert!(r["errorMessage"].as_str().unwrap_or_default().contains("mobile"), "{ty} {bad}: {r}");
        }
    }
    assert_code(&app.call("find_user", json!({"username": "emailer"})).await, 9001);
    assert_code(&app.call("find_user", json!({"username": "mobiler"})).await, 9001);
    let ok = json!({"username": "fine", "email": "Fine.User+tag@mail.example.com", "mobile": "+1(800)200-8411"});
    assert_code(&app.call("add_user", ok).await, 0);
    assert_code(&app.call("update_user", json!({"username": "fine", "email": "nope"})).await, 9103);
    assert_code(&app.call("update_user", json!({"username": "fine", "mobile": "nope"})).await, 9103);
    assert_code(&app.call("update_user", json!({"username": "fine", "email": "new@example.org", "mobile": "+44(0)20 1234 5678"})).await, 0);
    let r = app.call("find_user", json!({"username": "fine"})).await;
    assert_eq!(r["email"], "new@example.org");
}
api_test!(documented_ranges_are_enforced);

async fn account_changes_hold_for_the_next_request_on_every_node(b: Backend) {
    let a = spawn_app(b).await;
    let n2 = start_second(&a).await;
    let (name, key) = a.other_account("revoked").await;
    let warm = |node: &TestApp, key: String| {
        let (api, body) = (node.api.clone(), json!({"type": "find_users", "spAccountLoginName": name, "spAccountLoginKey": key}));
        let client = node.client.clone();
        async move {
            let v: Value = client.post(api).json(&body).send().await.expect("send").json().await.expect("json");
            v["errorCode"].as_i64().unwrap_or(-1)
        }
    };
    for _ in 0..3 {
        assert_eq!(warm(&a, key.clone()).await, 0);
        assert_eq!(warm(&n2, key.clone()).await, 0);
    }
    // the operator's action through the store, like the CLI (another process) does
    let store = a.state.service.store.clone();
    let started = Instant::now();
    tessera_core::service::accounts::set_enabled(&*store, &name, false).await.expect("disable");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(warm(&a, key.clone()).await, 9000);
    assert_eq!(warm(&n2, key.clone()).await, 9000);
    tessera_core::service::accounts::set_enabled(&*store, &name, true).await.expect("enable");
    assert_eq!(warm(&n2, key.clone()).await, 0);
    assert_eq!(warm(&a, key.clone()).await, 0);
    let rotated = tessera_core::service::accounts::rotate_key(&*store, &name).await.expect("rotate");
    assert_eq!(warm(&a, key.clone()).await, 9000);
    assert_eq!(warm(&n2, key.clone()).await, 9000);
    assert_eq!(warm(&a, rotated.key.clone()).await, 0);
    assert_eq!(warm(&n2, rotated.key.clone()).await, 0);
}
api_test!(account_changes_hold_for_the_next_request_on_every_node);

async fn emoji_sequences_stay_usable_in_usernames(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "dev-\u{1F469}\u{200D}\u{1F4BB}"})).await, 0);
    assert_code(&app.call("add_user", json!({"username": "love-\u{2764}\u{FE0F}"})).await, 0);
    assert_code(&app.call("find_user", json!({"username": "DEV-\u{1F469}\u{200D}\u{1F4BB}"})).await, 0);
    // a joiner or selector anywhere else is invisible
    assert_code(&app.call("add_user", json!({"username": "dev\u{200D}\u{1F4BB}"})).await, 9103);
    assert_code(&app.call("add_user", json!({"username": "a\u{FE0F}b"})).await, 9103);
}
api_test!(emoji_sequences_stay_usable_in_usernames);
