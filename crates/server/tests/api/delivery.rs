//! Sending passcodes (docs/api.md): every channel through a webhook provider pointed at a listener
//! started by the test, the received code validating once and only for its user, expiry, the send
//! limit, permanent refusals, and a provider that is down, failing or slow.

use crate::helpers::{assert_code, spawn_app_with, Backend, TestApp};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_core::service::Clock;
use tokio::net::TcpListener;

/// How the fake provider answers.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Accept,
    Status(u16),
    /// Accept, but only after this long.
    Slow(Duration),
}

/// A webhook receiver: records every request, and separately the ones it accepted (2xx).
#[derive(Clone)]
struct Hook {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    attempts: Arc<Mutex<Vec<Value>>>,
    delivered: Arc<Mutex<Vec<Value>>>,
}

async fn receive(State(h): State<Hook>, Json(body): Json<Value>) -> StatusCode {
    h.attempts.lock().expect("lock").push(body.clone());
    let mode = *h.mode.lock().expect("lock");
    match mode {
        Mode::Accept => {
            h.delivered.lock().expect("lock").push(body);
            StatusCode::OK
        }
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            h.delivered.lock().expect("lock").push(body);
            StatusCode::OK
        }
        Mode::Status(s) => StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

impl Hook {
    /// A port on which nothing listens yet (connections are refused until [`Hook::serve`]).
    async fn reserve() -> Hook {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        Hook { addr, mode: Arc::new(Mutex::new(Mode::Accept)), attempts: Arc::default(), delivered: Arc::default() }
    }

    async fn start() -> Hook {
        let h = Hook::reserve().await;
        h.serve().await;
        h
    }

    async fn serve(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("bind the reserved port");
        let app = axum::Router::new().fallback(receive).with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set(&self, m: Mode) {
        *self.mode.lock().expect("lock") = m;
    }

    fn delivered(&self) -> Vec<Value> {
        self.delivered.lock().expect("lock").clone()
    }

    fn attempts(&self) -> usize {
        self.attempts.lock().expect("lock").len()
    }

    /// Waits until `n` messages were accepted (at most `secs`), returns them.
    async fn wait_delivered(&self, n: usize, secs: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let d = self.delivered();
            if d.len() >= n || Instant::now() > deadline {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn app_with_hook(b: Backend, hook: &Hook) -> TestApp {
    let url = hook.url();
    spawn_app_with(b, move |s| {
        s.delivery = json!({
            "sms": {"provider": "webhook", "url": url},
            "voice": {"provider": "webhook", "url": url},
            "email": {"provider": "webhook", "url": url, "subject": "Code for {account}"},
        });
    })
    .await
}

/// The code in a message: the first run of digits (voice spells them "1, 2, 3, ...").
fn code_in(message: &str) -> String {
    let mut run = String::new();
    for c in message.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else if c == ',' || c == ' ' {
            continue;
        } else if run.len() >= 4 {
            break;
        } else {
            run.clear();
        }
    }
    run
}

async fn add_user(app: &TestApp, name: &str) {
    let r = app.call("add_user", json!({"username": name, "mobile": "+1(800)200-8411", "email": format!("{name}@example.com")})).await;
    assert_code(&r, 0);
}

async fn send(app: &TestApp, user: &str, method: Value) -> Value {
    app.call("send_oath_otp", json!({"username": user, "deliveryMethod": method})).await
}

async fn validate(app: &TestApp, user: &str, otp: &str) -> Value {
    app.call("validate_oath_otp", json!({"username": user, "otp": otp})).await
}

/// Sends by `method`, waits for the message, returns it.
async fn send_and_receive(app: &TestApp, hook: &Hook, user: &str, method: Value) -> Value {
    let before = hook.delivered().len();
    let r = send(app, user, method).await;
    assert_code(&r, 0);
    assert_eq!(r["errorMessage"], "OK");
    assert_eq!(r["type"], "send_oath_otp");
    let got = hook.wait_delivered(before + 1, 10).await;
    assert_eq!(got.len(), before + 1, "exactly one new message expected: {got:?}");
    got[before].clone()
}

async fn codes_arrive_and_validate_once(b: Backend) {
    let hook = Hook::start().await;
    let app = app_with_hook(b, &hook).await;
    add_user(&app, "mandy").await;
    add_user(&app, "eve").await;

    let m = send_and_receive(&app, &hook, "mandy", json!("sms")).await;
    assert_eq!(m["channel"], "sms");
    assert_eq!(m["to"], "+18002008411");
    assert_eq!(m["account"], app.account.as_str());
    let msg = m["message"].as_str().unwrap_or_default();
    let code = code_in(msg);
    assert_eq!(code.len(), 6, "{msg}");
    assert!(msg.contains("expires in 5 minutes"), "{msg}");
    // another user cannot use it, and trying does not burn it
    assert_ne!(validate(&app, "eve", &code).await["errorCode"], 0);
    assert_code(&validate(&app, "mandy", &code).await, 0);
    assert_code(&validate(&app, "mandy", &code).await, 9002);

    let m = send_and_receive(&app, &hook, "MANDY", json!("Voice")).await;
    assert_eq!(m["channel"], "voice");
    let msg = m["message"].as_str().unwrap_or_default();
    assert!(msg.contains(", "), "voice spells the digits: {msg}");
    let code = code_in(msg);
    assert_eq!(code.len(), 6, "{msg}");
    assert_code(&validate(&app, "mandy", &code).await, 0);
    assert_code(&validate(&app, "mandy", &code).await, 9002);

    let m = send_and_receive(&app, &hook, "mandy", json!("EMAIL")).await;
    assert_eq!(m["channel"], "email");
    assert_eq!(m["to"], "mandy@example.com");
    assert_eq!(m["subject"], format!("Code for {}", app.account));
    let code = code_in(m["message"].as_str().unwrap_or_default());
    assert_code(&validate(&app, "mandy", &code).await, 0);

    // The SOAP numbering 0 = sms, 1 = email, 2 = voice, as numbers or strings.
    assert_eq!(send_and_receive(&app, &hook, "eve", json!(0)).await["channel"], "sms");
    assert_eq!(send_and_receive(&app, &hook, "eve", json!("1")).await["channel"], "email");
    let m = send_and_receive(&app, &hook, "eve", json!(2)).await;
    assert_eq!(m["channel"], "voice");
    // every one of eve's three codes is good (newest or not), once
    let voice_code = code_in(m["message"].as_str().unwrap_or_default());
    assert_code(&validate(&app, "eve", &voice_code).await, 0);

    // The user got an out-of-band device; codes can be sent for it by psn and validated with it.
    let u = app.call("find_user", json!({"username": "mandy"})).await;
    let devices = u["Devices"].as_array().cloned().unwrap_or_default();
    assert_eq!(devices.len(), 1, "{u}");
    assert_eq!(devices[0]["deviceType"], 15);
    let psn = devices[0]["psn"].as_str().unwrap_or_default().to_string();
    assert!(psn.starts_with("TESS-") && psn.len() == 13, "{psn}");
    let before = hook.delivered().len();
    assert_code(&app.call("send_oath_otp", json!({"username": "mandy", "deliveryMethod": "sms", "printedSerialNumber": psn})).await, 0);
    let got = hook.wait_delivered(before + 1, 10).await;
    let code = code_in(got[before]["message"].as_str().unwrap_or_default());
    assert_code(&app.call("validate_oath_otp", json!({"username": "mandy", "otp": code, "psn": psn})).await, 0);
    assert_code(&app.call("send_oath_otp", json!({"username": "mandy", "deliveryMethod": "sms", "psn": "NOPE-1"})).await, 9021);
    // another user's device is not this user's
    assert_code(&app.call("send_oath_otp", json!({"username": "eve", "deliveryMethod": "sms", "psn": psn})).await, 9021);

    // nothing was sent twice
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hook.attempts(), hook.delivered().len());
    assert_eq!(hook.delivered().len(), 7);
}
api_test!(codes_arrive_and_validate_once);

async fn sent_codes_expire(b: Backend) {
    let hook = Hook::start().await;
    let app = app_with_hook(b, &hook).await;
    add_user(&app, "u").await;
    let m = send_and_receive(&app, &hook, "u", json!("sms")).await;
    let code = code_in(m["message"].as_str().unwrap_or_default());
    app.clock.advance_secs(301);
    assert_code(&validate(&app, "u", &code).await, 9043);
    // A fresh code works.
    let m = send_and_receive(&app, &hook, "u", json!("sms")).await;
    assert_code(&validate(&app, "u", &code_in(m["message"].as_str().unwrap_or_default())).await, 0);
}
api_test!(sent_codes_expire);

async fn refusals(b: Backend) {
    let hook = Hook::start().await;
    let app = app_with_hook(b, &hook).await;
    add_user(&app, "u").await;
    for bad in [json!("fax"), json!("3"), json!(-1), json!("sms,email")] {
        let r = send(&app, "u", bad.clone()).await;
        assert_code(&r, 9044);
    }
    assert_code(&app.call("send_oath_otp", json!({"username": "u"})).await, 9044);
    assert_code(&send(&app, "nobody", json!("sms")).await, 9001);
    assert_code(&app.call("add_user", json!({"username": "nomobile", "email": "x@example.com"})).await, 0);
    let r = send(&app, "nomobile", json!("sms")).await;
    assert_code(&r, 9103);
    assert!(r["errorMessage"].as_str().unwrap_or_default().contains("mobile"), "{r}");
    assert_code(&send(&app, "nomobile", json!("voice")).await, 9103);
    let r = send(&app, "nomobile", json!("email")).await;
    assert_code(&r, 0);
    assert_code(&app.call("add_user", json!({"username": "noemail", "mobile": "+44(0)20 1234 5678"})).await, 0);
    let r = send(&app, "noemail", json!("email")).await;
    assert_code(&r, 9103);
    assert!(r["errorMessage"].as_str().unwrap_or_default().contains("email"), "{r}");
    let m = send_and_receive(&app, &hook, "noemail", json!("sms")).await;
    assert_eq!(m["to"], "+442012345678");
    // a number without its country code is refused when stored
    assert_code(&app.call("add_user", json!({"username": "local", "mobile": "(800)200-8411"})).await, 9103);
    assert_code(&app.call("update_user", json!({"username": "u", "userStatus": 1})).await, 0);
    assert_code(&send(&app, "u", json!("sms")).await, 9007);

    // The provider refuses for good: 9012 for sms / voice, 9031 for email.
    hook.set(Mode::Status(400));
    assert_code(&send(&app, "noemail", json!("sms")).await, 9012);
    assert_code(&send(&app, "noemail", json!("voice")).await, 9012);
    assert_code(&send(&app, "nomobile", json!("email")).await, 9031);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(hook.attempts(), 5, "a permanent failure is not retried");
}
api_test!(refusals);

async fn send_limit(b: Backend) {
    let hook = Hook::start().await;
    let app = app_with_hook(b, &hook).await;
    add_user(&app, "u").await;
    add_user(&app, "other").await;
    for _ in 0..5 {
        assert_code(&send(&app, "u", json!("sms")).await, 0);
    }
    let r = send(&app, "u", json!("email")).await;
    assert_code(&r, 9015);
    // per user
    assert_code(&send(&app, "other", json!("sms")).await, 0);
    assert_eq!(hook.wait_delivered(6, 10).await.len(), 6);
    app.clock.advance_secs(901);
    assert_code(&send(&app, "u", json!("sms")).await, 0);
}
api_test!(send_limit);

async fn provider_down_then_back(b: Backend) {
    // Nothing listens yet: connections are refused.
    let hook = Hook::reserve().await;
    let app = app_with_hook(b, &hook).await;
    add_user(&app, "u").await;
    let started = Instant::now();
    let r = send(&app, "u", json!("sms")).await;
    assert_code(&r, 0);
    assert!(started.elapsed() < Duration::from_millis(3500), "reply took {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    hook.serve().await;
    // The first retry is 2 s after the failed attempt.
    let got = hook.wait_delivered(1, 15).await;
    assert_eq!(got.len(), 1, "delivered once the provider is back");
    let code = code_in(got[0]["message"].as_str().unwrap_or_default());
    assert_code(&validate(&app, "u", &code).await, 0);

    // The provider answers 500 for a while.
    hook.set(Mode::Status(500));
    assert_code(&send(&app, "u", json!("sms")).await, 0);
    // the first attempt and a retry (2 s back-off, plus the worker's poll interval and any load)
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.attempts() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(hook.attempts() >= 3, "first attempt and a retry: {}", hook.attempts());
    assert_eq!(hook.delivered().len(), 1);
    hook.set(Mode::Accept);
    let got = hook.wait_delivered(2, 15).await;
    assert_eq!(got.len(), 2);
    let code = code_in(got[1]["message"].as_str().unwrap_or_default());
    assert_code(&validate(&app, "u", &code).await, 0);

    // A slow provider: the reply does not wait for it, and the message is still sent once.
    hook.set(Mode::Slow(Duration::from_secs(5)));
    let started = Instant::now();
    assert_code(&send(&app, "u", json!("sms")).await, 0);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2500) && took < Duration::from_millis(6000), "reply took {took:?}");
    let got = hook.wait_delivered(3, 15).await;
    assert_eq!(got.len(), 3);
    let code = code_in(got[2]["message"].as_str().unwrap_or_default());
    assert_code(&validate(&app, "u", &code).await, 0);
    hook.set(Mode::Accept);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.delivered().len(), 3, "nothing sent twice");
}
api_test!(provider_down_then_back);

async fn undelivered_messages_stop_when_the_code_expires(b: Backend) {
    let hook = Hook::start().await;
    hook.set(Mode::Status(503));
    let app = app_with_hook(b, &hook).await;
    add_user(&app, "u").await;
    assert_code(&send(&app, "u", json!("sms")).await, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.attempts() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tried = hook.attempts();
    assert!(tried >= 2, "{tried}");
    app.clock.advance_secs(301);
    hook.set(Mode::Accept);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(hook.delivered().is_empty(), "an expired code is never delivered");
    assert!(hook.attempts() <= tried + 1, "no attempts after expiry: {} then {}", tried, hook.attempts());
}
api_test!(undelivered_messages_stop_when_the_code_expires);

/// A passcode waiting in the outbox for a retry is stored sealed under the master key (the code is
/// not in the stored text), and the text is erased once delivered, or once expired.
async fn outbox_passcodes_are_sealed_and_erased(b: Backend) {
    let hook = Hook::start().await;
    hook.set(Mode::Status(503));
    let app = app_with_hook(b, &hook).await;
    add_user(&app, "u").await;
    let store = app.state.service.store.clone();
    // Delivered after a retry.
    assert_code(&send(&app, "u", json!("sms")).await, 0);
    let first = hook.attempts.lock().expect("lock").first().cloned().expect("a first attempt");
    let code = code_in(first["message"].as_str().unwrap_or_default());
    assert_eq!(code.len(), 6);
    let waiting = store.outbox_by_id(1).await.expect("q").expect("the message waits in the outbox");
    assert_eq!(waiting.state, "pending");
    assert!(!waiting.body.contains(&code), "the code is in the outbox in clear: {:?}", waiting.body);
    assert!(waiting.body.starts_with(tessera_core::crypto::SEALED_MESSAGE_PREFIX), "{:?}", waiting.body);
    assert!(!waiting.body.contains("Your code"), "the message text is sealed too");
    hook.set(Mode::Accept);
    let got = hook.wait_delivered(1, 15).await;
    assert_eq!(code_in(got[0]["message"].as_str().unwrap_or_default()), code, "the sealed message is delivered intact");
    let sent = store.outbox_by_id(1).await.expect("q").expect("row");
    assert_eq!((sent.state.as_str(), sent.body.as_str()), ("sent", ""));

    // Never delivered: once the code expires the text is erased, by the worker or by the purge.
    hook.set(Mode::Status(503));
    assert_code(&send(&app, "u", json!("email")).await, 0);
    let waiting = store.outbox_by_id(2).await.expect("q").expect("second message");
    assert!(waiting.body.starts_with(tessera_core::crypto::SEALED_MESSAGE_PREFIX));
    assert!(store.purge_expired(app.clock.now()).await.is_ok());
    assert!(!store.outbox_by_id(2).await.expect("q").expect("row").body.is_empty(), "an unexpired message keeps its text");
    app.clock.advance_secs(301);
    assert!(store.purge_expired(app.clock.now()).await.is_ok());
    let expired = store.outbox_by_id(2).await.expect("q").expect("row");
    assert_eq!(expired.body, "", "an expired message keeps no text");
}
api_test!(outbox_passcodes_are_sealed_and_erased);

async fn welcome_notifications(b: Backend) {
    let hook = Hook::start().await;
    let app = app_with_hook(b, &hook).await;
    // notificationMethod 1 = email, on add_oath_account
    let r = app
        .call("add_oath_account", json!({"username": "welcomed", "email": "welcomed@example.com", "notificationMethod": 1, "OtpType": 1}))
        .await;
    assert_code(&r, 0);
    let got = hook.wait_delivered(1, 10).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["channel"], "email");
    assert_eq!(got[0]["to"], "welcomed@example.com");
    assert!(code_in(got[0]["message"].as_str().unwrap_or_default()).is_empty(), "a welcome carries no code: {}", got[0]);
    // 2 = sms, on add_u2f_account
    let r = app.call("add_u2f_account", json!({"username": "welcomed2", "mobile": "+1(800)200-8411", "notificationMethod": "2"})).await;
    assert_code(&r, 0);
    let got = hook.wait_delivered(2, 10).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[1]["channel"].as_str(), got[1]["to"].as_str()), (Some("sms"), Some("+18002008411")));
    // 0 = none sends nothing; a method without the address is refused before anything is created
    assert_code(&app.call("add_oath_account", json!({"username": "quiet", "notificationMethod": 0})).await, 0);
    let r = app.call("add_u2f_account", json!({"username": "nomobile", "notificationMethod": 2})).await;
    assert_code(&r, 9103);
    assert_code(&app.call("find_user", json!({"username": "nomobile"})).await, 9001);
    assert_code(&app.call("add_oath_account", json!({"username": "badmethod", "notificationMethod": 5})).await, 9103);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.delivered().len(), 2);
}
api_test!(welcome_notifications);
