//! OATH devices and OTP validation (docs/api.md): device management, HOTP/TOTP validation with
//! replay protection and lockout, activation / resync, QR provisioning, account isolation, a
//! concurrency race and the at-rest encryption of seeds. Codes are computed with `tessera-otp`.

use crate::helpers::{assert_code, spawn_app, spawn_app_with, start, Backend, TestApp};
use base64::Engine;
use serde_json::{json, Value};
use tessera_core::service::Clock;
use tessera_otp::{hotp_code, totp_code, Algorithm, KeyUri, OtpKind};

/// RFC 4226 Appendix D: the seed "12345678901234567890" and its codes for counters 0..=9.
const RFC_SEED_HEX: &str = "3132333435363738393031323334353637383930";
const RFC_SEED: &[u8] = b"12345678901234567890";
const RFC_CODES: [&str; 10] = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];

fn hotp(seed: &[u8], counter: u64) -> String {
    hotp_code(seed, counter, 6, Algorithm::Sha1)
}

async fn add_user(app: &TestApp, username: &str) {
    assert_code(&app.call("add_user", json!({"username": username})).await, 0);
}

/// add_oath_device that must succeed; returns (deviceId, psn).
async fn add_device(app: &TestApp, fields: Value) -> (String, String) {
    let r = app.call("add_oath_device", fields).await;
    assert_code(&r, 0);
    let id = r["deviceId"].as_str().unwrap_or_else(|| panic!("deviceId must be a string: {r}")).to_string();
    let psn = r["psn"].as_str().unwrap_or_else(|| panic!("psn must be a string: {r}")).to_string();
    (id, psn)
}

async fn validate(app: &TestApp, username: &str, otp: Value, psn: &str) -> Value {
    app.call("validate_oath_otp", json!({"username": username, "otp": otp, "psn": psn})).await
}

/// Moves the test clock to one second past the start of a 60-second (so also 30-second) step,
/// leaving the test most of a step before the server's current step changes under it.
fn settle(app: &TestApp) -> i64 {
    let into = app.clock.now().rem_euclid(60);
    app.clock.advance_secs((61 - into).rem_euclid(60));
    app.clock.now()
}

fn message(v: &Value) -> String {
    v["errorMessage"].as_str().unwrap_or_default().to_string()
}

async fn hotp_rfc_vectors_validate_in_order(b: Backend) {
    let app = spawn_app(b).await;
    add_user(&app, "alice").await;
    let (id, psn) = add_device(&app, json!({"username": "alice", "secretKeyHex": RFC_SEED_HEX, "psn": "HOTP-RFC"})).await;
    assert_eq!(psn, "HOTP-RFC");
    for (i, code) in RFC_CODES.iter().enumerate() {
        // Alternate string codes, JSON numbers and the `code` / `printedSerialNumber` aliases.
        let r = match i % 3 {
            0 => validate(&app, "alice", json!(code), &psn).await,
            1 => validate(&app, "ALICE", json!(code.parse::<u64>().expect("digits")), &psn).await,
            _ => app.call("validate_oath_otp", json!({"username": "alice", "code": code, "printedSerialNumber": psn})).await,
        };
        assert_code(&r, 0);
        assert_eq!(r["type"], "validate_oath_otp");
        assert_eq!(r["errorMessage"], "OK");
    }
    // A code with a leading zero sent as a JSON number (which cannot carry the zero).
    let next = (10u64..200).find(|c| hotp(RFC_SEED, *c).starts_with('0')).expect("a code with a leading zero");
    for c in 10..next {
        assert_code(&validate(&app, "alice", json!(hotp(RFC_SEED, c)), &psn).await, 0);
    }
    let zero = hotp(RFC_SEED, next);
    assert_code(&validate(&app, "alice", json!(zero.parse::<u64>().expect("digits")), "").await, 0);
    // find_user lists it with tokenID == deviceId
    let f = app.call("find_user", json!({"username": "alice"})).await;
    assert_code(&f, 0);
    let devices = f["Devices"].as_array().cloned().unwrap_or_default();
    assert_eq!(devices.len(), 1, "{f}");
    assert_eq!(devices[0]["tokenID"], json!(id));
    assert_eq!(devices[0]["psn"], "HOTP-RFC");
    assert_eq!(devices[0]["deviceType"], 13);
    assert_eq!(devices[0]["otpType"], 1);
    assert_eq!(devices[0]["deviceStatus"], 0);
}
api_test!(hotp_rfc_vectors_validate_in_order);

async fn hotp_replay_and_window(b: Backend) {
    let app = spawn_app(b).await;
    add_user(&app, "bob").await;
    let (_, psn) = add_device(&app, json!({"username": "bob", "secretKeyHex": RFC_SEED_HEX})).await;
    // outside the default look-ahead of 10
    let r = validate(&app, "bob", json!(hotp(RFC_SEED, 11)), &psn).await;
    assert_code(&r, 9003);
    assert_eq!(message(&r), format!("OTP [EVENT] [{psn}] FAILED - outside window [size=10] or invalid."));
    assert!(!message(&r).contains(&hotp(RFC_SEED, 11)), "the message must not echo the code");
    // the edge of the window
    assert_code(&validate(&app, "bob", json!(hotp(RFC_SEED, 10)), &psn).await, 0);
    // replay of the accepted code, and codes behind it, are 9002
    let r = validate(&app, "bob", json!(hotp(RFC_SEED, 10)), &psn).await;
    assert_code(&r, 9002);
    assert!(!message(&r).contains(&hotp(RFC_SEED, 10)));
    assert_code(&validate(&app, "bob", json!(hotp(RFC_SEED, 5)), &psn).await, 9002);
    // the stored counter is 11: replays are recognised as far back as the look-ahead reaches (1),
    // anything older is simply invalid
    assert_code(&validate(&app, "bob", json!(hotp(RFC_SEED, 1)), &psn).await, 9002);
    assert_code(&validate(&app, "bob", json!(hotp(RFC_SEED, 0)), &psn).await, 9003);
    assert_code(&validate(&app, "bob", json!(hotp(RFC_SEED, 11)), &psn).await, 0);
    // a garbage code is simply invalid
    assert_code(&validate(&app, "bob", json!("abcdef"), &psn).await, 9003);
    assert_code(&validate(&app, "bob", json!("1234567"), &psn).await, 9003);
    // a device's own windowSize
    let (_, small) = add_device(&app, json!({"username": "bob", "secretKeyHex": RFC_SEED_HEX, "windowSize": 3})).await;
    let r = validate(&app, "bob", json!(hotp(RFC_SEED, 4)), &small).await;
    assert_code(&r, 9003);
    assert!(message(&r).contains("[size=3]"), "{r}");
    assert_code(&validate(&app, "bob", json!(hotp(RFC_SEED, 3)), &small).await, 0);
    // missing otp / unknown user / another user's device
    assert_code(&app.call("validate_oath_otp", json!({"username": "bob", "psn": psn})).await, 9102);
    assert_code(&validate(&app, "nobody", json!(hotp(RFC_SEED, 12)), &psn).await, 9001);
    add_user(&app, "carol").await;
    assert_code(&validate(&app, "carol", json!(hotp(RFC_SEED, 12)), &psn).await, 9021);
    assert_code(&validate(&app, "carol", json!(hotp(RFC_SEED, 12)), "").await, 9021);
    assert_code(&validate(&app, "bob", json!(hotp(RFC_SEED, 12)), "NO-SUCH-PSN").await, 9021);
    // a disabled user
    assert_code(&app.call("update_user", json!({"username": "bob", "userStatus": 1})).await, 0);
    assert_code(&validate(&app, "bob", json!(hotp(RFC_SEED, 12)), &psn).await, 9007);
    assert_code(&app.call("update_user", json!({"username": "bob", "userStatus": 0})).await, 0);
    assert_code(&validate(&app, "bob", json!(hotp(RFC_SEED, 12)), &psn).await, 0);
}
api_test!(hotp_replay_and_window);

/// A fresh code that happens to equal the code of an already used counter (a 6-digit code repeats
/// about once in a million counters) is accepted, not refused as a replay.
async fn hotp_code_equal_to_a_used_one_is_accepted(b: Backend) {
    // A seed whose codes for two counters c1 < c2 <= c1 + 10 within 0..=30 are equal.
    let (seed, c1, c2) = (0u32..)
        .find_map(|i| {
            let seed = format!("tessera-collision-{i}").into_bytes();
            let codes: Vec<String> = (0..=30u64).map(|c| hotp(&seed, c)).collect();
            (0..codes.len())
                .find_map(|a| ((a + 1)..codes.len().min(a + 11)).find(|&z| codes[a] == codes[z]).map(|z| (a as u64, z as u64)))
                .map(|(a, z)| (seed.clone(), a, z))
        })
        .expect("some seed has a collision");
    let app = spawn_app(b).await;
    add_user(&app, "dora").await;
    let (_, psn) = add_device(&app, json!({"username": "dora", "secretKeyHex": hex::encode(&seed)})).await;
    for c in 0..=c1 {
        assert_code(&validate(&app, "dora", json!(hotp(&seed, c)), &psn).await, 0);
    }
    // counter c1 is used; the code of c2 equals it, and c2 is fresh
    assert_eq!(hotp(&seed, c1), hotp(&seed, c2));
    assert_code(&validate(&app, "dora", json!(hotp(&seed, c2)), &psn).await, 0);
    // now it is used too
    assert_code(&validate(&app, "dora", json!(hotp(&seed, c2)), &psn).await, 9002);
}
api_test!(hotp_code_equal_to_a_used_one_is_accepted);

async fn lockout_after_ten_failures(b: Backend) {
    let app = spawn_app(b).await;
    add_user(&app, "dave").await;
    let (_, psn) = add_device(&app, json!({"username": "dave", "secretKeyHex": RFC_SEED_HEX})).await;
    let wrong = json!("000000");
    assert!((0..40).all(|c| hotp(RFC_SEED, c) != "000000"), "the wrong code must really be wrong");
    // a success resets the count
    for _ in 0..9 {
        assert_code(&validate(&app, "dave", wrong.clone(), &psn).await, 9003);
    }
    assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 0)), &psn).await, 0);
    // replays (9002) do not count toward the lockout
    for _ in 0..15 {
        assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 0)), &psn).await, 9002);
    }
    for _ in 0..9 {
        assert_code(&validate(&app, "dave", wrong.clone(), &psn).await, 9003);
    }
    assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 1)), &psn).await, 0);
    // ten consecutive failures lock the device, even for the right code
    for _ in 0..10 {
        assert_code(&validate(&app, "dave", wrong.clone(), &psn).await, 9003);
    }
    let r = validate(&app, "dave", json!(hotp(RFC_SEED, 2)), &psn).await;
    assert_code(&r, 9015);
    assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 2)), "").await, 9015);
    // enable_device lifts it
    assert_code(&app.call("enable_device", json!({"psn": psn})).await, 0);
    assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 2)), &psn).await, 0);
    // so does time (15 minutes by default)
    for _ in 0..10 {
        assert_code(&validate(&app, "dave", wrong.clone(), &psn).await, 9003);
    }
    assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 3)), &psn).await, 9015);
    app.clock.advance_secs(890);
    assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 3)), &psn).await, 9015);
    app.clock.advance_secs(20);
    assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 3)), &psn).await, 0);
    // and a successful sync
    for _ in 0..10 {
        assert_code(&validate(&app, "dave", wrong.clone(), &psn).await, 9003);
    }
    assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 4)), &psn).await, 9015);
    let s =
        app.call("sync_oath_device", json!({"username": "dave", "psn": psn, "otp1": hotp(RFC_SEED, 6), "otp2": hotp(RFC_SEED, 7)})).await;
    assert_code(&s, 0);
    assert_code(&validate(&app, "dave", json!(hotp(RFC_SEED, 8)), &psn).await, 0);
}
api_test!(lockout_after_ten_failures);

async fn lockout_is_configurable(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.otp.max_failures = 3;
        s.otp.lockout_seconds = 60;
    })
    .await;
    add_user(&app, "erin").await;
    let (_, psn) = add_device(&app, json!({"username": "erin", "secretKeyHex": RFC_SEED_HEX})).await;
    assert!((0..20).all(|c| hotp(RFC_SEED, c) != "111111"));
    for _ in 0..3 {
        assert_code(&validate(&app, "erin", json!("111111"), &psn).await, 9003);
    }
    assert_code(&validate(&app, "erin", json!(hotp(RFC_SEED, 0)), &psn).await, 9015);
    app.clock.advance_secs(61);
    assert_code(&validate(&app, "erin", json!(hotp(RFC_SEED, 0)), &psn).await, 0);
}
api_test!(lockout_is_configurable);

async fn totp_with_clock_and_drift(b: Backend) {
    let app = spawn_app(b).await;
    add_user(&app, "tina").await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(RFC_SEED);
    let (_, on_time) = add_device(&app, json!({"username": "tina", "otpType": 2, "secretKeyHexBase64": b64})).await;
    let (_, drifting) = add_device(&app, json!({"username": "tina", "OtpType": "2", "secretKeyHexBase64": b64, "psn": "TOTP-DRIFT"})).await;
    let (_, wide) = add_device(&app, json!({"username": "tina", "otpType": 2, "secretKeyHex": RFC_SEED_HEX, "timeDrift": 2})).await;
    let now = settle(&app);
    let code_at = |t: i64| totp_code(RFC_SEED, u64::try_from(t).expect("positive"), 30, 6, Algorithm::Sha1);
    // on time: accepted once, then replay and the step before are refused
    assert_code(&validate(&app, "tina", json!(code_at(now)), &on_time).await, 0);
    let r = validate(&app, "tina", json!(code_at(now)), &on_time).await;
    assert_code(&r, 9002);
    assert_code(&validate(&app, "tina", json!(code_at(now - 30)), &on_time).await, 9002);
    // two steps ahead is outside the default ±1
    let r = validate(&app, "tina", json!(code_at(now + 60)), &on_time).await;
    assert_code(&r, 9003);
    assert_eq!(message(&r), format!("OTP [TIME] [{on_time}] FAILED - outside window [size=1] or invalid."));
    // ... but inside a device's own timeDrift of 2
    assert_code(&validate(&app, "tina", json!(code_at(now + 60)), &wide).await, 0);
    // one step ahead is accepted and teaches the device a drift of one step
    assert_code(&validate(&app, "tina", json!(code_at(now + 60)), &drifting).await, 9003);
    assert_code(&validate(&app, "tina", json!(code_at(now + 30)), &drifting).await, 0);
    assert_code(&validate(&app, "tina", json!(code_at(now + 60)), &drifting).await, 0);
    // the clock moves on: the token still runs ahead, and the learned drift follows it
    app.clock.advance_secs(300);
    let later = app.clock.now();
    assert_code(&validate(&app, "tina", json!(code_at(later + 60)), &drifting).await, 0);
    assert_code(&validate(&app, "tina", json!(code_at(later + 90)), &drifting).await, 0);
    // the device without drift still refuses codes two steps ahead, and accepts the current one
    assert_code(&validate(&app, "tina", json!(code_at(later + 60)), &on_time).await, 9003);
    assert_code(&validate(&app, "tina", json!(code_at(later)), &on_time).await, 0);
    // a code from long ago is not "already used" but invalid
    assert_code(&validate(&app, "tina", json!(code_at(later - 3600)), &on_time).await, 9003);
}
api_test!(totp_with_clock_and_drift);

async fn algorithms_and_lengths(b: Backend) {
    let app = spawn_app(b).await;
    add_user(&app, "sam").await;
    let now = settle(&app);
    // RFC 6238 seeds for each hash
    let seeds: [(&str, Algorithm, &[u8]); 3] = [
        ("sha1", Algorithm::Sha1, b"12345678901234567890"),
        ("SHA256", Algorithm::Sha256, b"12345678901234567890123456789012"),
        ("Sha512", Algorithm::Sha512, b"1234567890123456789012345678901234567890123456789012345678901234"),
    ];
    for (name, alg, seed) in seeds {
        for digits in [6u32, 8] {
            let hex = hex::encode(seed);
            let (_, h) = add_device(&app, json!({"username": "sam", "secretKeyHex": hex, "algorithm": name, "OtpLength": digits})).await;
            assert_code(&validate(&app, "sam", json!(hotp_code(seed, 0, digits, alg)), &h).await, 0);
            assert_code(&validate(&app, "sam", json!(hotp_code(seed, 1, digits, alg)), &h).await, 0);
            // the code of another algorithm, or of the other length, does not validate
            let other = if alg == Algorithm::Sha1 { Algorithm::Sha256 } else { Algorithm::Sha1 };
            assert_code(&validate(&app, "sam", json!(hotp_code(seed, 2, digits, other)), &h).await, 9003);
            assert_code(&validate(&app, "sam", json!(hotp_code(seed, 2, 14 - digits, alg)), &h).await, 9003);
            assert_code(&validate(&app, "sam", json!(hotp_code(seed, 2, digits, alg)), &h).await, 0);
            for step in [30u64, 60] {
                let (_, t) = add_device(
                    &app,
                    json!({"username": "sam", "otpType": 2, "secretKeyHex": hex, "algorithm": name, "OtpLength": digits, "timeStep": step}),
                )
                .await;
                let code = totp_code(seed, u64::try_from(now).expect("positive"), step, digits, alg);
                assert_code(&validate(&app, "sam", json!(code), &t).await, 0);
            }
        }
    }
    // RFC 6238 Appendix B, SHA-512, 8 digits, T = 59: the reference value itself
    assert_eq!(totp_code(seeds[2].2, 59, 30, 8, Algorithm::Sha512), "90693936");
}
api_test!(algorithms_and_lengths);

async fn add_device_validation_and_generation(b: Backend) {
    let app = spawn_app(b).await;
    add_user(&app, "gen").await;
    // generated psn and seed, per algorithm
    for (alg, len) in [("SHA1", 20usize), ("SHA256", 32), ("SHA512", 64)] {
        let (id, psn) = add_device(&app, json!({"username": "gen", "algorithm": alg})).await;
        let digits = psn.strip_prefix("TESS-").unwrap_or_else(|| panic!("generated psn {psn}"));
        assert!(digits.len() == 8 && digits.bytes().all(|c| c.is_ascii_digit()), "{psn}");
        let q = app.call("get_oath_device_qrcode", json!({"deviceId": id})).await;
        assert_code(&q, 0);
        let key = KeyUri::parse(q["otpauthUri"].as_str().unwrap_or_default()).expect("otpauth URI");
        assert_eq!(key.secret.len(), len, "{alg}");
        assert_eq!(key.algorithm.as_str(), alg);
        let code = hotp_code(&key.secret, 0, 6, key.algorithm);
        assert_code(&validate(&app, "gen", json!(code), &psn).await, 0);
    }
    // errors name the field and never echo the secret
    let r = app.call("add_oath_device", json!({"secretKeyHex": "zz11"})).await;
    assert_code(&r, 9103);
    assert!(message(&r).contains("secretKeyHex") && !message(&r).contains("zz11"), "{r}");
    let r = app.call("add_oath_device", json!({"secretKeyHex": "313"})).await;
    assert_code(&r, 9103);
    let r = app.call("add_oath_device", json!({"secretKeyHexBase64": "***"})).await;
    assert_code(&r, 9103);
    assert!(message(&r).contains("secretKeyHexBase64"), "{r}");
    assert_code(&app.call("add_oath_device", json!({"secretKeyHex": "0011"})).await, 9103);
    assert_code(&app.call("add_oath_device", json!({"otpType": 3})).await, 9011);
    assert_code(&app.call("add_oath_device", json!({"otpType": 8})).await, 9011);
    assert_code(&app.call("add_oath_device", json!({"deviceType": 12})).await, 9008);
    assert_code(&app.call("add_oath_device", json!({"OtpLength": 7})).await, 9103);
    assert_code(&app.call("add_oath_device", json!({"timeStep": 45})).await, 9103);
    assert_code(&app.call("add_oath_device", json!({"algorithm": "MD5"})).await, 9103);
    assert_code(&app.call("add_oath_device", json!({"windowSize": 5000})).await, 9103);
    assert_code(&app.call("add_oath_device", json!({"username": "ghost"})).await, 9001);
    // a psn exists once per account
    add_device(&app, json!({"psn": "DUP-1"})).await;
    let r = app.call("add_oath_device", json!({"psn": "DUP-1"})).await;
    assert_code(&r, 9108);
    // a hardware token without a user goes to the inventory
    let (_, hw) = add_device(&app, json!({"deviceType": 14, "secretKeyHex": RFC_SEED_HEX})).await;
    let f = app.call("find_device", json!({"psn": hw})).await;
    assert_code(&f, 0);
    assert_eq!((f["deviceType"].clone(), f["otpType"].clone(), f["assigned"].clone()), (json!(14), json!(1), json!(0)));
}
api_test!(add_device_validation_and_generation);

async fn add_oath_account_creates_user_and_device(b: Backend) {
    let app = spawn_app(b).await;
    let r = app
        .call(
            "add_oath_account",
            json!({"username": "olga", "firstName": "Olga", "email": "olga@example.com", "pw": "pw-1", "secretKeyHex": RFC_SEED_HEX, "notificationMethod": 0}),
        )
        .await;
    assert_code(&r, 0);
    let id = r["deviceId"].as_str().expect("deviceId").to_string();
    let psn = r["psn"].as_str().expect("psn").to_string();
    assert!(r.get("otpauthUri").is_none() && r.get("secretKeyHex").is_none(), "no secret in the reply: {r}");
    let f = app.call("find_user", json!({"username": "olga"})).await;
    assert_eq!(f["firstName"], "Olga");
    assert_eq!(f["Devices"][0]["tokenID"], json!(id));
    assert_eq!(f["Devices"][0]["psn"], json!(psn));
    assert_code(&app.call("validate_user", json!({"username": "olga", "pw": "pw-1"})).await, 0);
    assert_code(&validate(&app, "olga", json!(RFC_CODES[0]), "").await, 0);
    // the user exists now
    assert_code(&app.call("add_oath_account", json!({"username": "olga"})).await, 9105);
    // addDeviceOnly adds a second device to the existing user
    let r = app.call("add_oath_user", json!({"username": "olga", "addDeviceOnly": "true", "otpType": 2})).await;
    assert_code(&r, 0);
    assert_eq!(r["type"], "add_oath_user");
    let f = app.call("find_user", json!({"username": "olga"})).await;
    assert_eq!(f["Devices"].as_array().map(Vec::len), Some(2));
    assert_code(&app.call("add_oath_account", json!({"username": "nobody", "addDeviceOnly": true})).await, 9001);
    // an invalid device field creates nothing
    assert_code(&app.call("add_oath_account", json!({"username": "half", "secretKeyHex": "xyz"})).await, 9103);
    assert_code(&app.call("find_user", json!({"username": "half"})).await, 9001);
    // a psn conflict creates no user either
    assert_code(&app.call("add_oath_account", json!({"username": "half", "psn": psn})).await, 9108);
    assert_code(&app.call("find_user", json!({"username": "half"})).await, 9001);
    assert_code(&app.call("add_oath_account", json!({"username": "half"})).await, 0);
}
api_test!(add_oath_account_creates_user_and_device);

async fn activate_and_sync(b: Backend) {
    let app = spawn_app(b).await;
    add_user(&app, "ivy").await;
    let (_, psn) = add_device(&app, json!({"username": "ivy", "secretKeyHex": RFC_SEED_HEX})).await;
    // the token ran far ahead: validation fails, sync with two consecutive codes catches up
    assert_code(&validate(&app, "ivy", json!(hotp(RFC_SEED, 500)), &psn).await, 9003);
    let r = app
        .call(
            "activate",
            json!({"username": "ivy", "otp1": hotp(RFC_SEED, 500).parse::<u64>().expect("n"), "otp2": hotp(RFC_SEED, 501), "psn": psn}),
        )
        .await;
    assert_code(&r, 0);
    assert_eq!(r["type"], "activate");
    assert_code(&validate(&app, "ivy", json!(hotp(RFC_SEED, 501)), &psn).await, 9002);
    assert_code(&validate(&app, "ivy", json!(hotp(RFC_SEED, 502)), &psn).await, 0);
    // not consecutive, already used, out of reach, or missing: 9035 / 9102
    let sync = |o1: u64, o2: u64| json!({"username": "ivy", "otp1": hotp(RFC_SEED, o1), "otp2": hotp(RFC_SEED, o2)});
    let r = app.call("sync_oath_device", sync(600, 602)).await;
    assert_code(&r, 9035);
    assert_code(&app.call("sync_oath_device", sync(501, 502)).await, 9035);
    assert_code(&app.call("sync_oath_device", sync(1600, 1601)).await, 9035);
    assert_code(&app.call("sync_oath_device", json!({"username": "ivy", "otp1": hotp(RFC_SEED, 600)})).await, 9102);
    // otp1 and otp2 through the other aliases, by psn alone (no username)
    for alias in ["active_oath_device", "activate_device", "sync_oath_device"] {
        let r = app.call(alias, json!({"psn": psn, "otp1": hotp(RFC_SEED, 700), "otp2": hotp(RFC_SEED, 701)})).await;
        assert_eq!(r["type"], alias);
        if alias == "active_oath_device" {
            assert_code(&r, 0);
        } else {
            assert_code(&r, 9035); // the same pair twice is not a resync
        }
    }
    assert_code(&validate(&app, "ivy", json!(hotp(RFC_SEED, 702)), &psn).await, 0);
    // TOTP: a token an hour ahead
    let now = settle(&app);
    let (_, t) = add_device(&app, json!({"username": "ivy", "otpType": 2, "secretKeyHex": RFC_SEED_HEX})).await;
    let code_at = |t: i64| totp_code(RFC_SEED, u64::try_from(t).expect("positive"), 30, 6, Algorithm::Sha1);
    let ahead = now + 3600;
    assert_code(&validate(&app, "ivy", json!(code_at(ahead)), &t).await, 9003);
    let r = app.call("sync_oath_device", json!({"username": "ivy", "psn": t, "otp1": code_at(ahead), "otp2": code_at(ahead + 30)})).await;
    assert_code(&r, 0);
    assert_code(&validate(&app, "ivy", json!(code_at(ahead + 30)), &t).await, 9002);
    assert_code(&validate(&app, "ivy", json!(code_at(ahead + 60)), &t).await, 0);
    // more than a day away is out of reach
    let far = now + 2 * 86400;
    assert_code(&app.call("sync_oath_device", json!({"psn": t, "otp1": code_at(far), "otp2": code_at(far + 30)})).await, 9035);
}
api_test!(activate_and_sync);

async fn assign_unassign_delete_enable(b: Backend) {
    let app = spawn_app(b).await;
    add_user(&app, "alice").await;
    add_user(&app, "bob").await;
    let (id, psn) = add_device(&app, json!({"deviceType": 14, "secretKeyHex": RFC_SEED_HEX, "psn": "HW-0001"})).await;
    let f = app.call("find_device", json!({"psn": psn})).await;
    assert_code(&f, 0);
    assert_eq!(f["assigned"], 0);
    assert_eq!(f["deviceId"], json!(id));
    assert_eq!(f["deviceStatus"], 0);
    assert!(f.get("username").is_none(), "{f}");
    // an unassigned device validates for nobody
    assert_code(&validate(&app, "alice", json!(RFC_CODES[0]), &psn).await, 9021);
    assert_code(&app.call("assign_device", json!({"username": "alice", "psn": psn, "force": 0})).await, 0);
    let f = app.call("find_device", json!({"printedSerialNumber": psn})).await;
    assert_eq!((f["assigned"].clone(), f["username"].clone()), (json!(1), json!("alice")));
    // assigning again to the same user is fine; to another user needs force
    assert_code(&app.call("assign_device", json!({"username": "alice", "psn": psn})).await, 0);
    let r = app.call("assign_device", json!({"username": "bob", "psn": psn, "force": "0"})).await;
    assert_code(&r, 9019);
    assert_code(&validate(&app, "alice", json!(RFC_CODES[0]), &psn).await, 0);
    assert_code(&validate(&app, "bob", json!(RFC_CODES[1]), &psn).await, 9021);
    assert_code(&app.call("assign_device", json!({"username": "bob", "psn": psn, "force": 1})).await, 0);
    assert_eq!(app.call("find_device", json!({"psn": psn})).await["username"], "bob");
    assert_code(&validate(&app, "bob", json!(RFC_CODES[1]), &psn).await, 0);
    assert_code(&validate(&app, "alice", json!(RFC_CODES[2]), &psn).await, 9021);
    let bob = app.call("find_user", json!({"username": "bob"})).await;
    assert_eq!(bob["Devices"][0]["tokenID"], json!(id));
    assert_eq!(app.call("find_user", json!({"username": "alice"})).await["Devices"], json!([]));
    // not found
    assert_code(&app.call("assign_device", json!({"username": "bob", "psn": "NOPE"})).await, 9021);
    assert_code(&app.call("assign_device", json!({"username": "ghost", "psn": psn})).await, 9001);
    assert_code(&app.call("find_device", json!({"psn": "NOPE"})).await, 9021);
    assert_code(&app.call("find_device", json!({})).await, 9102);
    // disable / enable
    assert_code(&app.call("disable_device", json!({"psn": psn})).await, 0);
    assert_eq!(app.call("find_device", json!({"psn": psn})).await["deviceStatus"], 1);
    assert_eq!(app.call("find_user", json!({"username": "bob"})).await["Devices"][0]["deviceStatus"], 1);
    assert_code(&validate(&app, "bob", json!(RFC_CODES[2]), &psn).await, 9028);
    assert_code(&validate(&app, "bob", json!(RFC_CODES[2]), "").await, 9028);
    assert_code(&app.call("enable_device", json!({"psn": psn, "username": "alice"})).await, 9021);
    assert_code(&app.call("enable_device", json!({"psn": psn})).await, 0);
    assert_code(&validate(&app, "bob", json!(RFC_CODES[2]), &psn).await, 0);
    // unassign: back to the inventory
    assert_code(&app.call("unassign_device", json!({"psn": psn, "username": "alice"})).await, 9021);
    assert_code(&app.call("unassign_device", json!({"psn": psn})).await, 0);
    assert_eq!(app.call("find_device", json!({"psn": psn})).await["assigned"], 0);
    assert_code(&validate(&app, "bob", json!(RFC_CODES[3]), &psn).await, 9021);
    // delete: only as its user's when a username is given
    assert_code(&app.call("assign_device", json!({"username": "alice", "psn": psn})).await, 0);
    assert_code(&app.call("delete_device", json!({"psn": psn, "username": "bob"})).await, 9021);
    assert_code(&app.call("delete_device", json!({"psn": psn, "username": "alice"})).await, 0);
    assert_code(&app.call("find_device", json!({"psn": psn})).await, 9021);
    assert_code(&app.call("delete_device", json!({"psn": psn})).await, 9021);
    assert_code(&validate(&app, "alice", json!(RFC_CODES[3]), &psn).await, 9021);
    assert_code(&validate(&app, "alice", json!(RFC_CODES[3]), "").await, 9021);
    // the counter survives reassignment: a device keeps its replay state
    let (_, p2) = add_device(&app, json!({"username": "alice", "secretKeyHex": RFC_SEED_HEX})).await;
    assert_code(&validate(&app, "alice", json!(RFC_CODES[0]), &p2).await, 0);
    assert_code(&app.call("assign_device", json!({"username": "bob", "psn": p2, "force": true})).await, 0);
    assert_code(&validate(&app, "bob", json!(RFC_CODES[0]), &p2).await, 9002);
}
api_test!(assign_unassign_delete_enable);

async fn accounts_cannot_see_each_others_devices(b: Backend) {
    let app = spawn_app(b).await;
    let (other, other_key) = app.other_account("other").await;
    add_user(&app, "alice").await;
    let (id, psn) = add_device(&app, json!({"username": "alice", "secretKeyHex": RFC_SEED_HEX, "psn": "SHARED-NAME"})).await;
    // the other account has its own "alice"
    assert_code(&app.call_as(&other, &other_key, "add_user", json!({"username": "alice"})).await, 0);
    let as_other = |ty: &'static str, fields: Value| {
        let (o, k) = (other.clone(), other_key.clone());
        let app = &app;
        async move { app.call_as(&o, &k, ty, fields).await }
    };
    assert_code(&as_other("find_device", json!({"psn": psn})).await, 9021);
    assert_code(&as_other("validate_oath_otp", json!({"username": "alice", "otp": RFC_CODES[0], "psn": psn})).await, 9021);
    assert_code(&as_other("validate_oath_otp", json!({"username": "alice", "otp": RFC_CODES[0]})).await, 9021);
    assert_code(&as_other("assign_device", json!({"username": "alice", "psn": psn, "force": 1})).await, 9021);
    assert_code(&as_other("unassign_device", json!({"psn": psn})).await, 9021);
    assert_code(&as_other("disable_device", json!({"psn": psn})).await, 9021);
    assert_code(&as_other("delete_device", json!({"psn": psn})).await, 9021);
    assert_code(&as_other("get_oath_device_qrcode", json!({"deviceId": id})).await, 9021);
    assert_code(&as_other("get_oath_device_qrcode", json!({"psn": psn})).await, 9021);
    assert_code(&as_other("sync_oath_device", json!({"psn": psn, "otp1": RFC_CODES[0], "otp2": RFC_CODES[1]})).await, 9021);
    // a psn is unique per account only
    let r = as_other("add_oath_device", json!({"psn": "SHARED-NAME", "username": "alice", "secretKeyHex": RFC_SEED_HEX})).await;
    assert_code(&r, 0);
    assert_ne!(r["deviceId"], json!(id));
    assert_code(&as_other("validate_oath_otp", json!({"username": "alice", "otp": RFC_CODES[0], "psn": psn})).await, 0);
    // nothing the other account did touched ours: its counter is still at 0 and it is enabled
    assert_code(&validate(&app, "alice", json!(RFC_CODES[0]), &psn).await, 0);
    let f = app.call("find_device", json!({"psn": psn})).await;
    assert_eq!((f["assigned"].clone(), f["deviceStatus"].clone()), (json!(1), json!(0)));
}
api_test!(accounts_cannot_see_each_others_devices);

async fn qrcode_provisions_authenticator_apps(b: Backend) {
    let app = spawn_app(b).await;
    add_user(&app, "quinn").await;
    let (id, psn) = add_device(&app, json!({"username": "quinn", "otpType": 2, "algorithm": "sha256", "OtpLength": 8})).await;
    for fields in [json!({"deviceId": id}), json!({"psn": psn}), json!({"deviceId": id.parse::<i64>().expect("numeric id")})] {
        let q = app.call("get_oath_device_qrcode", fields).await;
        assert_code(&q, 0);
        let url = q["QRCodeURL"].as_str().unwrap_or_default();
        let b64 = url.strip_prefix("data:image/png;base64,").unwrap_or_else(|| panic!("not a PNG data URL: {url:.60}"));
        let png = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() > 100);
        let key = KeyUri::parse(q["otpauthUri"].as_str().unwrap_or_default()).expect("otpauth URI");
        assert_eq!(key.issuer.as_deref(), Some("Tessera"));
        assert_eq!(key.account, "quinn");
        assert_eq!(key.kind, OtpKind::Totp { period: 30 });
        assert_eq!((key.algorithm, key.digits), (Algorithm::Sha256, 8));
    }
    let q = app.call("get_oath_device_qrcode", json!({"deviceId": id, "accountName": "quinn@example.com"})).await;
    let key = KeyUri::parse(q["otpauthUri"].as_str().unwrap_or_default()).expect("otpauth URI");
    assert_eq!(key.account, "quinn@example.com");
    let now = settle(&app);
    let code = totp_code(&key.secret, u64::try_from(now).expect("positive"), 30, 8, Algorithm::Sha256);
    assert_code(&validate(&app, "quinn", json!(code), &psn).await, 0);
    // HOTP URIs carry the device's next counter; an unassigned device is labelled with its psn
    let (hid, hpsn) = add_device(&app, json!({"secretKeyHex": RFC_SEED_HEX})).await;
    assert_code(&app.call("assign_device", json!({"username": "quinn", "psn": hpsn})).await, 0);
    assert_code(&validate(&app, "quinn", json!(RFC_CODES[0]), &hpsn).await, 0);
    assert_code(&app.call("unassign_device", json!({"psn": hpsn})).await, 0);
    let q = app.call("get_oath_device_qrcode", json!({"deviceId": hid})).await;
    let key = KeyUri::parse(q["otpauthUri"].as_str().unwrap_or_default()).expect("otpauth URI");
    assert_eq!(key.kind, OtpKind::Hotp { counter: 1 });
    assert_eq!(key.account, hpsn);
    assert_eq!(key.secret, RFC_SEED);
    // a hardware token's seed is never provisioned by QR
    let (_, hw) = add_device(&app, json!({"secretKeyHex": RFC_SEED_HEX, "deviceType": 14})).await;
    let q = app.call("get_oath_device_qrcode", json!({"psn": hw})).await;
    assert_code(&q, 9008);
    assert!(q.get("otpauthUri").is_none() && q.get("QRCodeURL").is_none(), "{q}");
    // unknown ids
    assert_code(&app.call("get_oath_device_qrcode", json!({"deviceId": "abc"})).await, 9021);
    assert_code(&app.call("get_oath_device_qrcode", json!({"deviceId": "987654321"})).await, 9021);
    assert_code(&app.call("get_oath_device_qrcode", json!({})).await, 9102);
}
api_test!(qrcode_provisions_authenticator_apps);

/// 50 concurrent requests with one valid code: exactly one wins (on two server processes sharing
/// the database for HOTP, on one for TOTP).
async fn concurrent_validations_accept_a_code_once(b: Backend) {
    let app = spawn_app(b).await;
    let mut second_settings = app.settings.clone();
    second_settings.listen = "127.0.0.1:0".into();
    let second = start(second_settings, app.clock.clone()).await;
    add_user(&app, "race").await;
    let (_, psn) = add_device(&app, json!({"username": "race", "secretKeyHex": RFC_SEED_HEX})).await;
    let (_, tpsn) = add_device(&app, json!({"username": "race", "otpType": 2, "secretKeyHex": RFC_SEED_HEX})).await;
    let now = settle(&app);
    let totp = totp_code(RFC_SEED, u64::try_from(now).expect("positive"), 30, 6, Algorithm::Sha1);
    for (code, psn, nodes) in [(RFC_CODES[0].to_string(), psn, 2usize), (totp, tpsn, 1)] {
        let body = app.body("validate_oath_otp", json!({"username": "race", "otp": code, "psn": psn}));
        let urls = [app.api.clone(), second.api.clone()];
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let (client, url, body, barrier) = (reqwest::Client::new(), urls[i % nodes].clone(), body.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let r = client.post(url).header("content-type", "application/json").body(body).send().await.expect("request");
                let v: Value = r.json().await.expect("json");
                v["errorCode"].as_i64().unwrap_or(-1)
            }));
        }
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.expect("task"));
        }
        let ok = codes.iter().filter(|c| **c == 0).count();
        let used = codes.iter().filter(|c| **c == 9002).count();
        assert_eq!((ok, used), (1, 49), "codes: {codes:?}");
    }
}
api_test!(concurrent_validations_accept_a_code_once);

/// Every encoding of a seed an attacker might grep for.
fn seed_encodings(seed: &[u8]) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let b32 = tessera_otp::base32_encode(seed);
    vec![
        seed.to_vec(),
        hex::encode(seed).into_bytes(),
        hex::encode_upper(seed).into_bytes(),
        b32.clone().into_bytes(),
        b32.to_lowercase().into_bytes(),
        STANDARD.encode(seed).into_bytes(),
        STANDARD_NO_PAD.encode(seed).into_bytes(),
        URL_SAFE.encode(seed).into_bytes(),
        URL_SAFE_NO_PAD.encode(seed).into_bytes(),
    ]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Seeds are encrypted at rest: neither the SQLite file (with its WAL) nor PostgreSQL's rows hold
/// the seed in any usual encoding.
async fn seeds_are_not_stored_in_clear(b: Backend) {
    let mut app = spawn_app(b).await;
    let seed: [u8; 20] = rand::random();
    let seed2: [u8; 32] = rand::random();
    add_user(&app, "sec").await;
    let (_, psn) = add_device(&app, json!({"username": "sec", "secretKeyHex": hex::encode(seed), "psn": "SEC-1"})).await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(seed2);
    add_device(&app, json!({"username": "sec", "secretKeyHexBase64": b64, "algorithm": "SHA256", "psn": "SEC-2"})).await;
    assert_code(&validate(&app, "sec", json!(hotp(&seed, 0)), &psn).await, 0);
    assert_code(&app.call("get_oath_device_qrcode", json!({"psn": psn})).await, 0);
    match b {
        Backend::Sqlite => {
            app.stop().await;
            let mut bytes = Vec::new();
            for name in ["tessera.db", "tessera.db-wal"] {
                if let Ok(mut b) = std::fs::read(app.data_dir.join(name)) {
                    bytes.append(&mut b);
                }
            }
            assert!(bytes.len() > 4096, "the database file was not found in {:?}", app.data_dir);
            assert!(contains(&bytes, b"SEC-1"), "the device row is not in the file: the check would prove nothing");
            for s in [&seed[..], &seed2[..]] {
                for enc in seed_encodings(s) {
                    assert!(!contains(&bytes, &enc), "the SQLite file holds a seed as {:?}", String::from_utf8_lossy(&enc));
                }
            }
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let url = app.settings.database_url.clone().expect("postgres url");
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            let mut dump = Vec::new();
            for table in ["devices", "audit"] {
                let rows: Vec<(String,)> =
                    sqlx::query_as(&format!("SELECT t::text FROM {table} t")).fetch_all(&mut conn).await.expect("select");
                for (r,) in rows {
                    dump.extend_from_slice(r.as_bytes());
                }
            }
            let raw: Vec<(Option<Vec<u8>>,)> = sqlx::query_as("SELECT seed FROM devices").fetch_all(&mut conn).await.expect("seeds");
            for (r,) in raw {
                dump.extend_from_slice(&r.unwrap_or_default());
            }
            assert!(contains(&dump, b"SEC-1"), "the device rows were not read");
            for s in [&seed[..], &seed2[..]] {
                for enc in seed_encodings(s) {
                    assert!(!contains(&dump, &enc), "PostgreSQL holds a seed as {:?}", String::from_utf8_lossy(&enc));
                }
            }
            app.stop().await;
        }
    }
}
api_test!(seeds_are_not_stored_in_clear);
