//! FIDO U2F (docs/api.md): device records, pre_enroll → enroll, pre_sign → sign, clone detection,
//! ceremony scoping and key removal, over HTTP on both backends.
//!
//! The authenticator is simulated here: it attests with the official FIDO example attestation key
//! and certificate (crates/u2f/tests/data) and makes a fresh P-256 key pair per registration, so
//! every response is signed over the server's live challenge.

use crate::helpers::{assert_code, spawn_app, start_second, Backend, TestApp};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tessera_core::store::DeviceRow;
use tessera_u2f::b64_encode;

const APP_ID: &str = "https://rp.example.com";
const ORIGIN: &str = "https://rp.example.com";
const VECTORS: &str = include_str!("../../../u2f/tests/data/fido_u2f_raw_examples.json");

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn hex_field(v: &Value, name: &str) -> Vec<u8> {
    hex::decode(v["registration"][name].as_str().unwrap_or_default()).expect("hex in the vector file")
}

/// One registered credential of the soft authenticator.
struct Key {
    handle: Vec<u8>,
    signing: SigningKey,
}

impl Key {
    fn handle_b64(&self) -> String {
        b64_encode(&self.handle)
    }
}

/// A software U2F authenticator attesting with the FIDO example attestation key.
struct Authenticator {
    attestation: SigningKey,
    cert: Vec<u8>,
}

fn client_data(typ: &str, challenge: &str, origin: &str) -> String {
    json!({"typ": typ, "challenge": challenge, "origin": origin}).to_string()
}

impl Authenticator {
    fn new() -> Self {
        let v: Value = serde_json::from_str(VECTORS).expect("vector file is JSON");
        let attestation = SigningKey::from_slice(&hex_field(&v, "attestation_private_key_hex")).expect("attestation key");
        Authenticator { attestation, cert: hex_field(&v, "attestation_cert_hex") }
    }

    /// registrationData for a new key, attested over `cd` (the exact clientData text) and `app_id`.
    fn registration(&self, app_id: &str, cd: &str, handle: Option<Vec<u8>>) -> (Key, Vec<u8>) {
        let signing = SigningKey::random(&mut rand::rngs::OsRng);
        let pk = signing.verifying_key().to_encoded_point(false).as_bytes().to_vec();
        let handle = handle.unwrap_or_else(|| rand::random::<[u8; 32]>().repeat(2));
        let mut msg = vec![0u8];
        msg.extend(sha256(app_id.as_bytes()));
        msg.extend(sha256(cd.as_bytes()));
        msg.extend(&handle);
        msg.extend(&pk);
        let sig: Signature = self.attestation.sign(&msg);
        let mut data = vec![0x05];
        data.extend(&pk);
        data.push(handle.len() as u8);
        data.extend(&handle);
        data.extend(&self.cert);
        data.extend(sig.to_der().as_bytes());
        (Key { handle, signing }, data)
    }

    /// A registration response for `challenge` with a new key; returns (key, registrationData, clientData).
    fn register_with(&self, app_id: &str, challenge: &str, origin: &str, handle: Option<Vec<u8>>) -> (Key, String, String) {
        let cd = client_data("navigator.id.finishEnrollment", challenge, origin);
        let (key, data) = self.registration(app_id, &cd, handle);
        (key, b64_encode(&data), b64_encode(cd.as_bytes()))
    }

    fn register(&self, challenge: &str) -> (Key, String, String) {
        self.register_with(APP_ID, challenge, ORIGIN, None)
    }
}

/// Raw signatureData bytes over `cd` (the exact clientData text).
fn sign_raw(key: &Key, app_id: &str, cd: &str, counter: u32, presence: u8) -> Vec<u8> {
    let mut msg = sha256(app_id.as_bytes());
    msg.push(presence);
    msg.extend(counter.to_be_bytes());
    msg.extend(sha256(cd.as_bytes()));
    let sig: Signature = key.signing.sign(&msg);
    let mut data = vec![presence];
    data.extend(counter.to_be_bytes());
    data.extend(sig.to_der().as_bytes());
    data
}

/// A sign response for `challenge`; returns (signatureData, clientData).
fn sign_for(key: &Key, challenge: &str, counter: u32) -> (String, String) {
    let cd = client_data("navigator.id.getAssertion", challenge, ORIGIN);
    (b64_encode(&sign_raw(key, APP_ID, &cd, counter, 1)), b64_encode(cd.as_bytes()))
}

/// (challenge, sessionId) of a pre_enroll reply's RegisterRequest.
fn register_request(r: &Value) -> (String, String) {
    let req = &r["RegisterRequest"][0];
    (req["challenge"].as_str().unwrap_or_default().to_string(), req["sessionId"].as_str().unwrap_or_default().to_string())
}

/// (challenge, sessionId) of a pre_sign reply's first SignRequest.
fn sign_request(r: &Value) -> (String, String) {
    let req = &r["SignRequest"][0];
    (req["challenge"].as_str().unwrap_or_default().to_string(), req["sessionId"].as_str().unwrap_or_default().to_string())
}

async fn pre_enroll(app: &TestApp, user: &str) -> (String, String) {
    let r = app.call("pre_enroll", json!({"username": user, "appId": APP_ID})).await;
    assert_code(&r, 0);
    register_request(&r)
}

async fn pre_sign(app: &TestApp, user: &str) -> (String, String) {
    let r = app.call("pre_sign", json!({"username": user, "appId": APP_ID})).await;
    assert_code(&r, 0);
    sign_request(&r)
}

/// Registers a new key for `user`; returns it and the enroll reply.
async fn enroll_new(app: &TestApp, auth: &Authenticator, user: &str, name: Option<&str>) -> (Key, Value) {
    let (challenge, session) = pre_enroll(app, user).await;
    let (key, reg, cd) = auth.register(&challenge);
    let mut fields = json!({"username": user, "registrationData": reg, "clientData": cd, "sessionId": session, "version": "U2F_V2"});
    if let Some(n) = name {
        fields["securityKeyName"] = json!(n);
    }
    let r = app.call("enroll", fields).await;
    assert_code(&r, 0);
    (key, r)
}

async fn sign_in(app: &TestApp, user: &str, key: &Key, counter: u32) -> Value {
    let (challenge, session) = pre_sign(app, user).await;
    let (sig, cd) = sign_for(key, &challenge, counter);
    app.call("sign", json!({"username": user, "signatureData": sig, "clientData": cd, "sessionId": session, "keyHandle": key.handle_b64()}))
        .await
}

/// The user's device rows, read from the store.
async fn stored_devices(app: &TestApp, user: &str) -> Vec<DeviceRow> {
    let store = &app.state.service.store;
    let account = store.account_by_name(&app.account).await.expect("store").expect("account");
    let user = store.user_by_key(account.id, user).await.expect("store").expect("user");
    store.devices_of_user(account.id, user.id).await.expect("store")
}

async fn add_user(app: &TestApp, user: &str) {
    assert_code(&app.call("add_user", json!({"username": user, "pw": "pw-123456"})).await, 0);
}

async fn register_then_sign(b: Backend) {
    let app = spawn_app(b).await;
    let auth = Authenticator::new();
    add_user(&app, "alice").await;

    // pre_enroll, with the vendor's "appId:" key
    let r = app.call("pre_enroll", json!({"username": "alice", "appId:": APP_ID})).await;
    assert_code(&r, 0);
    assert_eq!(r["type"], "u2f_register_request");
    assert_eq!(r["errorMessage"], "");
    assert_eq!(r["SignRequest"], json!([]));
    let req = &r["RegisterRequest"][0];
    assert_eq!(req["appId"], APP_ID);
    assert_eq!(req["version"], "U2F_V2");
    let (challenge, session) = register_request(&r);
    assert_eq!(tessera_u2f::b64_decode(&challenge).map(|c| c.len()).ok(), Some(32), "32-byte challenge: {challenge}");
    assert!(!challenge.contains(['=', '+', '/']), "URL-safe without padding: {challenge}");
    assert!(tessera_u2f::b64_decode(&session).map(|s| s.len() >= 16).unwrap_or(false), "sessionId of >= 128 bits: {session}");

    let (key, reg, cd) = auth.register(&challenge);
    let r = app.call("enroll", json!({"username": "alice", "registrationData": reg, "clientData": cd, "sessionId": session})).await;
    assert_code(&r, 0);
    assert_eq!(r["type"], "enroll");
    assert_eq!(r["errorMessage"], "");
    assert_eq!(r["keyHandle"], key.handle_b64());
    assert_eq!(r["securityKeyName"], "Security key 1");
    let psn = r["psn"].as_str().unwrap_or_default().to_string();
    assert!(psn.starts_with("TESS-") && psn.len() == "TESS-".len() + 8, "generated psn: {psn}");

    // the key shows in find_user
    let f = app.call("find_user", json!({"username": "alice"})).await;
    assert_code(&f, 0);
    let dev = &f["Devices"][0];
    assert_eq!(dev["psn"], psn);
    assert_eq!(dev["deviceType"], 12);
    assert_eq!(dev["otpType"], 8);
    assert_eq!(dev["deviceStatus"], 0);
    assert_eq!(dev["keyName"], "Security key 1");
    assert_eq!(dev["appId"], APP_ID);

    // a second pre_enroll lists the registered key in SignRequest; the same key cannot register twice
    let r = app.call("pre_enroll", json!({"username": "alice", "appId": APP_ID})).await;
    assert_code(&r, 0);
    let (challenge2, session2) = register_request(&r);
    assert_eq!(r["SignRequest"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["SignRequest"][0]["keyHandle"], key.handle_b64());
    assert_eq!(r["SignRequest"][0]["sessionId"], session2);
    assert_eq!(r["SignRequest"][0]["challenge"], challenge2);
    let (_, reg, cd) = auth.register_with(APP_ID, &challenge2, ORIGIN, Some(key.handle.clone()));
    let dup = app.call("enroll", json!({"username": "alice", "registrationData": reg, "clientData": cd, "sessionId": session2})).await;
    assert_code(&dup, 9111);
    assert!(dup["errorMessage"].as_str().unwrap_or("").contains("already registered"), "{dup}");

    // sign in
    let r = app.call("pre_sign", json!({"username": "alice", "appId": APP_ID})).await;
    assert_code(&r, 0);
    assert_eq!(r["type"], "u2f_sign_request");
    assert_eq!(r["errorMessage"], "");
    assert_eq!(r["RegisterRequest"], json!([]));
    assert_eq!(r["SignRequest"].as_array().map(Vec::len), Some(1));
    let sr = &r["SignRequest"][0];
    assert_eq!(sr["keyHandle"], key.handle_b64());
    assert_eq!(sr["appId"], APP_ID);
    assert_eq!(sr["version"], "U2F_V2");
    let (challenge, session) = sign_request(&r);
    let (sig1, cd1) = sign_for(&key, &challenge, 1);
    let r = app
        .call(
            "sign",
            json!({"username": "alice", "signatureData": sig1, "clientData": cd1, "sessionId": session, "keyHandle": key.handle_b64()}),
        )
        .await;
    assert_code(&r, 0);
    assert_eq!(r["type"], "sign");
    assert_eq!(r["errorMessage"], "");
    assert_eq!(r["keyHandle"], key.handle_b64());
    assert_eq!(r["counter"], 1);
    assert_eq!(r["psn"], psn);

    // the same sessionId again: used
    let again = app.call("sign", json!({"username": "alice", "signatureData": sig1, "clientData": cd1, "sessionId": session})).await;
    assert_code(&again, 9110);

    // a second sign-in, without keyHandle, with standard padded base64
    use base64::Engine;
    let std = base64::engine::general_purpose::STANDARD;
    let (challenge, session) = pre_sign(&app, "alice").await;
    let cd = client_data("navigator.id.getAssertion", &challenge, ORIGIN);
    let sig = sign_raw(&key, APP_ID, &cd, 2, 1);
    let r = app
        .call(
            "sign",
            json!({"username": "alice", "signatureData": std.encode(&sig), "clientData": std.encode(cd.as_bytes()), "sessionId": session}),
        )
        .await;
    assert_code(&r, 0);
    assert_eq!(r["counter"], 2);

    // replaying the first response on a new ceremony: its clientData carries the old challenge
    let (_, session) = pre_sign(&app, "alice").await;
    let r = app.call("sign", json!({"username": "alice", "signatureData": sig1, "clientData": cd1, "sessionId": session})).await;
    assert_code(&r, 9116);
    // ... and the old signature under a clientData with the new challenge does not verify
    let (challenge, session) = pre_sign(&app, "alice").await;
    let (_, cd_new) = sign_for(&key, &challenge, 3);
    let r = app.call("sign", json!({"username": "alice", "signatureData": sig1, "clientData": cd_new, "sessionId": session})).await;
    assert_code(&r, 9112);
    // the genuine key still works afterwards
    assert_code(&sign_in(&app, "alice", &key, 3).await, 0);
}
api_test!(register_then_sign);

async fn counter_must_increase(b: Backend) {
    let app = spawn_app(b).await;
    let auth = Authenticator::new();
    add_user(&app, "alice").await;
    let (key, _) = enroll_new(&app, &auth, "alice", None).await;
    // counter 0 is fine for the first signature
    let r = sign_in(&app, "alice", &key, 0).await;
    assert_code(&r, 0);
    assert_eq!(r["counter"], 0);
    assert_code(&sign_in(&app, "alice", &key, 7).await, 0);
    // equal counter: possible clone, the key is flagged
    let r = sign_in(&app, "alice", &key, 7).await;
    assert_code(&r, 9113);
    assert!(r["errorMessage"].as_str().unwrap_or("").contains("clone"), "{r}");
    // from then on even a higher counter is refused
    assert_code(&sign_in(&app, "alice", &key, 8).await, 9113);
    let devices = stored_devices(&app, "alice").await;
    assert!(devices.iter().any(|d| d.key_handle.as_deref() == Some(key.handle.as_slice()) && d.flagged), "the key is flagged in the store");

    // a lower counter on another (fresh) key also flags it
    let (key2, _) = enroll_new(&app, &auth, "alice", None).await;
    assert_code(&sign_in(&app, "alice", &key2, 100).await, 0);
    assert_code(&sign_in(&app, "alice", &key2, 99).await, 9113);
    assert_code(&sign_in(&app, "alice", &key2, 101).await, 9113);
}
api_test!(counter_must_increase);

async fn enroll_call(app: &TestApp, user: &str, reg: &str, cd: &str, session: &str) -> Value {
    app.call("enroll", json!({"username": user, "registrationData": reg, "clientData": cd, "sessionId": session})).await
}

async fn sign_call(app: &TestApp, user: &str, sig: &str, cd: &str, session: &str) -> Value {
    app.call("sign", json!({"username": user, "signatureData": sig, "clientData": cd, "sessionId": session})).await
}

async fn enrollment_is_checked(b: Backend) {
    let app = spawn_app(b).await;
    let auth = Authenticator::new();
    add_user(&app, "alice").await;

    // malformed requests get precise codes and do not use the ceremony up
    let (challenge, session) = pre_enroll(&app, "alice").await;
    let (_, reg, cd) = auth.register(&challenge);
    assert_code(&enroll_call(&app, "alice", "!!not base64!!", &cd, &session).await, 9111);
    assert_code(&enroll_call(&app, "alice", &reg, "%%%", &session).await, 9115);
    let raw = tessera_u2f::b64_decode(&reg).expect("own registration is base64");
    let r = enroll_call(&app, "alice", &b64_encode(&raw[..70]), &cd, &session).await;
    assert_code(&r, 9111);
    assert!(r["errorMessage"].as_str().unwrap_or("").contains("truncated"), "{r}");
    let mut bad_reserved = raw.clone();
    bad_reserved[0] = 0x04;
    assert_code(&enroll_call(&app, "alice", &b64_encode(&bad_reserved), &cd, &session).await, 9111);
    let r = app.call("enroll", json!({"username": "alice", "registrationData": reg, "clientData": cd})).await;
    assert_code(&r, 9102);
    assert!(r["errorMessage"].as_str().unwrap_or("").contains("sessionId"), "{r}");
    let r = app
        .call("enroll", json!({"username": "alice", "registrationData": reg, "clientData": cd, "sessionId": session, "version": "U2F_V1"}))
        .await;
    assert_code(&r, 9103);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, "no-such-session").await, 9110);
    assert_code(&enroll_call(&app, "ghost", &reg, &cd, &session).await, 9001);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &session).await, 0);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &session).await, 9110);

    // origin neither the appId's nor a trusted facet
    let (challenge, session) = pre_enroll(&app, "alice").await;
    let (_, reg, cd) = auth.register_with(APP_ID, &challenge, "https://evil.example.net", None);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &session).await, 9117);

    // the challenge of another ceremony; that other ceremony stays usable
    let (_, session1) = pre_enroll(&app, "alice").await;
    let (challenge2, session2) = pre_enroll(&app, "alice").await;
    let (_, reg, cd) = auth.register(&challenge2);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &session1).await, 9116);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &session2).await, 0);

    // clientData of the wrong typ, or not JSON
    let (challenge, session) = pre_enroll(&app, "alice").await;
    let cd = client_data("navigator.id.getAssertion", &challenge, ORIGIN);
    let (_, data) = auth.registration(APP_ID, &cd, None);
    assert_code(&enroll_call(&app, "alice", &b64_encode(&data), &b64_encode(cd.as_bytes()), &session).await, 9115);
    let (_, session) = pre_enroll(&app, "alice").await;
    let cd = "this is not json";
    let (_, data) = auth.registration(APP_ID, cd, None);
    assert_code(&enroll_call(&app, "alice", &b64_encode(&data), &b64_encode(cd.as_bytes()), &session).await, 9115);

    // an attestation made for another appId does not verify
    let (challenge, session) = pre_enroll(&app, "alice").await;
    let cd = client_data("navigator.id.finishEnrollment", &challenge, ORIGIN);
    let (_, data) = auth.registration("https://other.example.com", &cd, None);
    let r = enroll_call(&app, "alice", &b64_encode(&data), &b64_encode(cd.as_bytes()), &session).await;
    assert_code(&r, 9111);
    assert!(r["errorMessage"].as_str().unwrap_or("").contains("signature"), "{r}");

    // a trusted facet of the account is an allowed origin
    let facet = "https://login.example.org";
    let (challenge, session) = pre_enroll(&app, "alice").await;
    let (_, reg, cd) = auth.register_with(APP_ID, &challenge, facet, None);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &session).await, 9117);
    let store = &app.state.service.store;
    let account = store.account_by_name(&app.account).await.expect("store").expect("account");
    assert!(store.add_facet(account.id, facet).await.expect("add facet"));
    let (challenge, session) = pre_enroll(&app, "alice").await;
    let (_, reg, cd) = auth.register_with(APP_ID, &challenge, facet, None);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &session).await, 0);

    // ceremonies expire
    let (challenge, session) = pre_enroll(&app, "alice").await;
    let (_, reg, cd) = auth.register(&challenge);
    app.clock.advance_secs(301);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &session).await, 9110);

    // pre_enroll needs an appId and a known user
    assert_code(&app.call("pre_enroll", json!({"username": "alice"})).await, 9102);
    assert_code(&app.call("pre_enroll", json!({"username": "ghost", "appId": APP_ID})).await, 9001);
}
api_test!(enrollment_is_checked);

async fn signing_is_checked(b: Backend) {
    let app = spawn_app(b).await;
    let auth = Authenticator::new();
    add_user(&app, "alice").await;
    // no key yet
    assert_code(&app.call("pre_sign", json!({"username": "alice", "appId": APP_ID})).await, 9114);
    let (key, _) = enroll_new(&app, &auth, "alice", None).await;
    let (key2, _) = enroll_new(&app, &auth, "alice", None).await;
    assert_code(&app.call("pre_sign", json!({"username": "alice", "appId": "https://elsewhere.example.com"})).await, 9114);
    let r = app.call("pre_sign", json!({"username": "alice", "appId": APP_ID})).await;
    assert_code(&r, 0);
    assert_eq!(r["SignRequest"].as_array().map(Vec::len), Some(2), "one SignRequest per key: {r}");
    assert_eq!(r["SignRequest"][0]["sessionId"], r["SignRequest"][1]["sessionId"]);
    assert_eq!(r["SignRequest"][0]["challenge"], r["SignRequest"][1]["challenge"]);

    // malformed requests get precise codes and do not use the ceremony up
    let (challenge, session) = pre_sign(&app, "alice").await;
    let (sig, cd) = sign_for(&key, &challenge, 1);
    assert_code(&sign_call(&app, "alice", "*not*base64*", &cd, &session).await, 9112);
    let r = sign_call(&app, "alice", &b64_encode(&[1, 0, 0]), &cd, &session).await;
    assert_code(&r, 9112);
    assert!(r["errorMessage"].as_str().unwrap_or("").contains("truncated"), "{r}");
    assert_code(&sign_call(&app, "alice", &b64_encode(&[1, 0, 0, 0, 1, 0x30, 0x03, 0x02]), &cd, &session).await, 9112);
    assert_code(&sign_call(&app, "alice", &sig, "@@@", &session).await, 9115);
    let r = app
        .call("sign", json!({"username": "alice", "signatureData": sig, "clientData": cd, "sessionId": session, "keyHandle": "#"}))
        .await;
    assert_code(&r, 9103);
    assert_code(&sign_call(&app, "alice", &sig, &cd, "no-such-session").await, 9110);
    // a keyHandle that is not one of the ceremony's keys
    let r = app
        .call(
            "sign",
            json!({"username": "alice", "signatureData": sig, "clientData": cd, "sessionId": session, "keyHandle": b64_encode(&[7u8; 64])}),
        )
        .await;
    assert_code(&r, 9114);

    // key2 signing while claiming key's handle
    let (challenge, session) = pre_sign(&app, "alice").await;
    let (sig, cd) = sign_for(&key2, &challenge, 1);
    let r = app
        .call(
            "sign",
            json!({"username": "alice", "signatureData": sig, "clientData": cd, "sessionId": session, "keyHandle": key.handle_b64()}),
        )
        .await;
    assert_code(&r, 9112);

    // wrong origin, another ceremony's challenge, wrong typ
    let (challenge, session) = pre_sign(&app, "alice").await;
    let cd = client_data("navigator.id.getAssertion", &challenge, "https://evil.example.net");
    assert_code(
        &sign_call(&app, "alice", &b64_encode(&sign_raw(&key, APP_ID, &cd, 1, 1)), &b64_encode(cd.as_bytes()), &session).await,
        9117,
    );
    let (_, session1) = pre_sign(&app, "alice").await;
    let (challenge2, session2) = pre_sign(&app, "alice").await;
    let (sig, cd) = sign_for(&key, &challenge2, 1);
    assert_code(&sign_call(&app, "alice", &sig, &cd, &session1).await, 9116);
    // that other ceremony stays usable
    assert_code(&sign_call(&app, "alice", &sig, &cd, &session2).await, 0);
    let (challenge, session) = pre_sign(&app, "alice").await;
    let cd = client_data("navigator.id.finishEnrollment", &challenge, ORIGIN);
    assert_code(
        &sign_call(&app, "alice", &b64_encode(&sign_raw(&key, APP_ID, &cd, 1, 1)), &b64_encode(cd.as_bytes()), &session).await,
        9115,
    );

    // no user presence: refused, and the counter does not move
    let (challenge, session) = pre_sign(&app, "alice").await;
    let cd = client_data("navigator.id.getAssertion", &challenge, ORIGIN);
    assert_code(
        &sign_call(&app, "alice", &b64_encode(&sign_raw(&key, APP_ID, &cd, 5, 0)), &b64_encode(cd.as_bytes()), &session).await,
        9118,
    );
    assert_code(&sign_in(&app, "alice", &key, 5).await, 0);

    // a registration ceremony cannot finish a sign-in, nor the other way round
    let (challenge, reg_session) = pre_enroll(&app, "alice").await;
    let (sig, cd) = sign_for(&key, &challenge, 6);
    assert_code(&sign_call(&app, "alice", &sig, &cd, &reg_session).await, 9110);
    let (challenge, sign_session) = pre_sign(&app, "alice").await;
    let (_, reg, cd) = auth.register(&challenge);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &sign_session).await, 9110);

    // pre_sign with psn picks that key
    let f = app.call("find_user", json!({"username": "alice"})).await;
    let psn2 = f["Devices"][1]["psn"].as_str().unwrap_or_default().to_string();
    let r = app.call("pre_sign", json!({"username": "alice", "appId": APP_ID, "psn": psn2})).await;
    assert_code(&r, 0);
    assert_eq!(r["SignRequest"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["SignRequest"][0]["keyHandle"], key2.handle_b64());
    assert_code(&app.call("pre_sign", json!({"username": "alice", "appId": APP_ID, "psn": "TESS-NOPE"})).await, 9114);
    // that ceremony accepts only key2
    let (challenge, session) = sign_request(&r);
    let (sig, cd) = sign_for(&key, &challenge, 9);
    assert_code(&sign_call(&app, "alice", &sig, &cd, &session).await, 9112);
}
api_test!(signing_is_checked);

async fn ceremonies_belong_to_their_account_and_user(b: Backend) {
    let app = spawn_app(b).await;
    let auth = Authenticator::new();
    add_user(&app, "alice").await;
    add_user(&app, "bob").await;
    let (b_name, b_key) = app.other_account("partner-b").await;
    assert_code(&app.call_as(&b_name, &b_key, "add_user", json!({"username": "alice"})).await, 0);

    let (challenge, session) = pre_enroll(&app, "alice").await;
    let (key, reg, cd) = auth.register(&challenge);
    let fields = json!({"username": "alice", "registrationData": reg, "clientData": cd, "sessionId": session});
    // another account's user of the same name, and another user of this account: 9110, ceremony kept
    assert_code(&app.call_as(&b_name, &b_key, "enroll", fields.clone()).await, 9110);
    assert_code(&enroll_call(&app, "bob", &reg, &cd, &session).await, 9110);
    assert_code(&app.call("enroll", fields).await, 0);

    let (challenge, session) = pre_sign(&app, "alice").await;
    let (sig, cd) = sign_for(&key, &challenge, 1);
    let fields = json!({"username": "alice", "signatureData": sig, "clientData": cd, "sessionId": session});
    assert_code(&app.call_as(&b_name, &b_key, "sign", fields.clone()).await, 9110);
    assert_code(&sign_call(&app, "bob", &sig, &cd, &session).await, 9110);
    assert_code(&app.call("sign", fields).await, 0);

    // the other account sees none of it
    assert_code(&app.call_as(&b_name, &b_key, "pre_sign", json!({"username": "alice", "appId": APP_ID})).await, 9114);
    let f = app.call_as(&b_name, &b_key, "find_user", json!({"username": "alice"})).await;
    assert_eq!(f["Devices"], json!([]));
    let r = app.call_as(&b_name, &b_key, "delete_key", json!({"username": "alice", "securityKeyName": key.handle_b64()})).await;
    assert_code(&r, 9114);
    assert_code(&sign_in(&app, "alice", &key, 2).await, 0);
}
api_test!(ceremonies_belong_to_their_account_and_user);

async fn disabled_users_and_keys_are_refused(b: Backend) {
    let app = spawn_app(b).await;
    let auth = Authenticator::new();
    add_user(&app, "alice").await;
    let (key, enrolled) = enroll_new(&app, &auth, "alice", None).await;
    let psn = enrolled["psn"].as_str().unwrap_or_default().to_string();

    let (challenge, session) = pre_sign(&app, "alice").await;
    assert_code(&app.call("update_user", json!({"username": "alice", "userStatus": 1})).await, 0);
    let (sig, cd) = sign_for(&key, &challenge, 1);
    assert_code(&sign_call(&app, "alice", &sig, &cd, &session).await, 9007);
    assert_code(&app.call("pre_sign", json!({"username": "alice", "appId": APP_ID})).await, 9007);
    assert_code(&app.call("pre_enroll", json!({"username": "alice", "appId": APP_ID})).await, 9007);
    assert_code(&app.call("update_user", json!({"username": "alice", "userStatus": 0})).await, 0);
    assert_code(&sign_in(&app, "alice", &key, 2).await, 0);

    // a disabled key
    let (challenge, session) = pre_sign(&app, "alice").await;
    let store = &app.state.service.store;
    let device = stored_devices(&app, "alice").await.into_iter().find(|d| d.psn == psn).expect("the key's device row");
    assert!(store.set_device_status(device.account_id, device.id, 1).await.expect("disable"));
    let (sig, cd) = sign_for(&key, &challenge, 3);
    assert_code(&sign_call(&app, "alice", &sig, &cd, &session).await, 9119);
    assert_code(&app.call("pre_sign", json!({"username": "alice", "appId": APP_ID})).await, 9119);
    assert_code(&app.call("pre_sign", json!({"username": "alice", "appId": APP_ID, "psn": psn})).await, 9119);
    // another, enabled key is offered alone
    let (key2, _) = enroll_new(&app, &auth, "alice", None).await;
    let r = app.call("pre_sign", json!({"username": "alice", "appId": APP_ID})).await;
    assert_code(&r, 0);
    assert_eq!(r["SignRequest"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["SignRequest"][0]["keyHandle"], key2.handle_b64());
    assert!(store.set_device_status(device.account_id, device.id, 0).await.expect("enable"));
    assert_code(&sign_in(&app, "alice", &key, 4).await, 0);
}
api_test!(disabled_users_and_keys_are_refused);

async fn device_records(b: Backend) {
    let app = spawn_app(b).await;
    let auth = Authenticator::new();
    add_user(&app, "alice").await;
    let r = app.call("add_u2f_device", json!({"username": "alice", "deviceType": 12, "OtpType": 8, "notificationMethod": 0})).await;
    assert_code(&r, 0);
    assert_eq!(r["errorMessage"], "");
    let device_id = r["deviceId"].as_str().unwrap_or_default().to_string();
    let psn = r["psn"].as_str().unwrap_or_default().to_string();
    assert!(!device_id.is_empty() && psn.starts_with("TESS-"), "{r}");
    let f = app.call("find_user", json!({"username": "alice"})).await;
    assert_eq!(f["Devices"].as_array().map(Vec::len), Some(1));
    assert_eq!(f["Devices"][0]["tokenID"], device_id);
    assert_eq!(f["Devices"][0]["psn"], psn);
    assert_eq!(f["Devices"][0]["deviceType"], 12);
    assert_eq!(f["Devices"][0]["otpType"], 8);
    // no key yet: nothing to sign with
    assert_code(&app.call("pre_sign", json!({"username": "alice", "appId": APP_ID})).await, 9114);
    // enroll binds the key to that record
    let (key, r) = enroll_new(&app, &auth, "alice", Some("Desk key")).await;
    assert_eq!(r["psn"], psn);
    assert_eq!(r["deviceId"], device_id);
    assert_eq!(r["securityKeyName"], "Desk key");
    let f = app.call("find_user", json!({"username": "alice"})).await;
    assert_eq!(f["Devices"].as_array().map(Vec::len), Some(1));
    assert_eq!(f["Devices"][0]["keyName"], "Desk key");
    assert_code(&sign_in(&app, "alice", &key, 1).await, 0);
    // the next key gets a record of its own
    let (_, r) = enroll_new(&app, &auth, "alice", None).await;
    assert_ne!(r["psn"], psn);
    assert_eq!(r["securityKeyName"], "Security key 2");

    // user + device in one call; device only for an existing user
    let r = app
        .call("add_u2f_account", json!({"username": "carol", "firstName": "Carol", "email": "carol@example.com", "notificationMethod": 1}))
        .await;
    assert_code(&r, 0);
    let carol1 = r["psn"].as_str().unwrap_or_default().to_string();
    let r = app.call("add_u2f_user", json!({"username": "carol", "addDeviceOnly": "true"})).await;
    assert_code(&r, 0);
    assert_eq!(r["type"], "add_u2f_user");
    let carol2 = r["psn"].as_str().unwrap_or_default().to_string();
    assert_ne!(carol1, carol2);
    let f = app.call("find_user", json!({"username": "carol"})).await;
    assert_eq!(f["firstName"], "Carol");
    assert_eq!(f["Devices"].as_array().map(Vec::len), Some(2));
    assert_code(&app.call("add_u2f_account", json!({"username": "CAROL"})).await, 9105);
    assert_code(&app.call("add_u2f_account", json!({"username": "nobody", "addDeviceOnly": true})).await, 9001);
    assert_code(&app.call("add_u2f_device", json!({"username": "nobody"})).await, 9001);
    assert_code(&app.call("add_u2f_device", json!({"username": "carol", "notificationMethod": 7})).await, 9103);

    // pre_enroll with psn binds to that record
    let r = app.call("pre_enroll", json!({"username": "carol", "appId": APP_ID, "psn": carol2})).await;
    assert_code(&r, 0);
    let (challenge, session) = register_request(&r);
    let (_, reg, cd) = auth.register(&challenge);
    let r = enroll_call(&app, "carol", &reg, &cd, &session).await;
    assert_code(&r, 0);
    assert_eq!(r["psn"], carol2);
    // ... and enroll's psn overrides pre_enroll's choice
    let carol3 = app.call("add_u2f_device", json!({"username": "carol"})).await["psn"].as_str().unwrap_or_default().to_string();
    let (challenge, session) = pre_enroll(&app, "carol").await;
    let (_, reg, cd) = auth.register(&challenge);
    let r = app
        .call("enroll", json!({"username": "carol", "registrationData": reg, "clientData": cd, "sessionId": session, "psn": carol3}))
        .await;
    assert_code(&r, 0);
    assert_eq!(r["psn"], carol3);

    // records that cannot take a key
    let pre = |user: &'static str, psn: String| app.call("pre_enroll", json!({"username": user, "appId": APP_ID, "psn": psn}));
    assert_code(&pre("carol", carol2.clone()).await, 9019); // already holds a key
    assert_code(&pre("alice", carol1.clone()).await, 9019); // another user's
    assert_code(&pre("carol", "TESS-NOPE".into()).await, 9021);
    let store = &app.state.service.store;
    let account = store.account_by_name(&app.account).await.expect("store").expect("account");
    let oath = DeviceRow {
        account_id: account.id,
        psn: "OATH-1".into(),
        device_type: 13,
        otp_type: 1,
        algorithm: "SHA1".into(),
        digits: 6,
        time_step: 30,
        ..Default::default()
    };
    store.create_device(&oath).await.expect("create oath device");
    assert_code(&pre("carol", "OATH-1".into()).await, 9008);
}
api_test!(device_records);

async fn deleting_keys(b: Backend) {
    const APP_B: &str = "https://other.example.com";
    let app = spawn_app(b).await;
    let auth = Authenticator::new();
    add_user(&app, "alice").await;
    let (k1, _) = enroll_new(&app, &auth, "alice", Some("Desk key")).await;
    let (k2, r2) = enroll_new(&app, &auth, "alice", None).await;
    assert_eq!(r2["securityKeyName"], "Security key 2");
    let r = app.call("pre_enroll", json!({"username": "alice", "appId": APP_B})).await;
    let (challenge, session) = register_request(&r);
    let (k3, reg, cd) = auth.register_with(APP_B, &challenge, APP_B, None);
    assert_code(&enroll_call(&app, "alice", &reg, &cd, &session).await, 0);

    // by friendly name
    let r =
        app.call("delete_key", json!({"username": "alice", "appId:": APP_ID, "securityKeyName": "Desk key", "securityKeyType": 1})).await;
    assert_code(&r, 0);
    assert_eq!(r["errorMessage"], "");
    assert_eq!(r["deleted"], 1);
    assert_code(&app.call("delete_key", json!({"username": "alice", "securityKeyName": "Desk key", "securityKeyType": "1"})).await, 9114);
    assert_code(&sign_in(&app, "alice", &k1, 1).await, 9114);
    // by keyHandle (the default type), which must be base64
    let r = app.call("delete_key", json!({"username": "alice", "securityKeyName": "not base64!"})).await;
    assert_code(&r, 9103);
    // k3 is not a key of APP_ID
    use base64::Engine;
    let k3_std = base64::engine::general_purpose::STANDARD.encode(&k3.handle);
    assert_code(
        &app.call("delete_key", json!({"username": "alice", "securityKeyName": k3_std, "securityKeyType": 0, "appId": APP_ID})).await,
        9114,
    );
    assert_code(&app.call("delete_key", json!({"username": "alice", "securityKeyName": k2.handle_b64()})).await, 0);
    assert_code(&app.call("pre_sign", json!({"username": "alice", "appId": APP_ID})).await, 9114);
    assert_code(&app.call("delete_key", json!({"username": "ghost", "securityKeyName": "x", "securityKeyType": 1})).await, 9001);

    // delete_all_keys: one appId, then everything (key-less records too)
    assert_code(&app.call("add_u2f_device", json!({"username": "alice"})).await, 0);
    let r = app.call("delete_all_keys", json!({"username": "alice", "appId": APP_B})).await;
    assert_code(&r, 0);
    assert_eq!(r["deleted"], 1);
    assert_code(&app.call("pre_sign", json!({"username": "alice", "appId": APP_B})).await, 9114);
    let r = app.call("delete_all_keys", json!({"username": "alice"})).await;
    assert_code(&r, 0);
    assert_eq!(r["deleted"], 1);
    assert_eq!(app.call("find_user", json!({"username": "alice"})).await["Devices"], json!([]));
    let r = app.call("delete_all_keys", json!({"username": "alice"})).await;
    assert_code(&r, 0);
    assert_eq!(r["deleted"], 0);
}
api_test!(deleting_keys);

async fn ceremony_finishes_on_another_node(b: Backend) {
    let app1 = spawn_app(b).await;
    let app2 = start_second(&app1).await;
    assert_eq!(app1.account, app2.account);
    let auth = Authenticator::new();
    add_user(&app1, "alice").await;

    let (challenge, session) = pre_enroll(&app1, "alice").await;
    let (key, reg, cd) = auth.register(&challenge);
    assert_code(&enroll_call(&app2, "alice", &reg, &cd, &session).await, 0);
    assert_code(&enroll_call(&app1, "alice", &reg, &cd, &session).await, 9110);

    let (challenge, session) = pre_sign(&app2, "alice").await;
    let (sig, cd) = sign_for(&key, &challenge, 1);
    assert_code(&sign_call(&app1, "alice", &sig, &cd, &session).await, 0);
    assert_code(&sign_call(&app2, "alice", &sig, &cd, &session).await, 9110);

    // the counter is shared too: a lower one on the other node is a regression
    assert_code(&sign_in(&app1, "alice", &key, 10).await, 0);
    assert_code(&sign_in(&app2, "alice", &key, 9).await, 9113);
}
api_test!(ceremony_finishes_on_another_node);
