//! Providers against local stubs: the exact requests Twilio-compatible and webhook providers make,
//! SMTP against a scripted SMTP server, and how every kind of failure is classified. Also the
//! templates and E.164 normalisation.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_delivery::providers::smtp::SmtpProvider;
use tessera_delivery::providers::twilio::TwilioProvider;
use tessera_delivery::providers::webhook::WebhookProvider;
use tessera_delivery::{normalize_e164, Channel, DeliveryConfig, Message, MessageKind, MessageVars, Provider, Providers, SendError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the stub saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Seen {
    fn form(&self) -> HashMap<String, String> {
        let url = format!("http://x/?{}", String::from_utf8_lossy(&self.body));
        reqwest::Url::parse(&url).expect("form").query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

#[derive(Clone)]
struct Stub {
    seen: Arc<Mutex<Vec<Seen>>>,
    status: Arc<Mutex<u16>>,
    reply: Arc<Mutex<String>>,
    delay: Arc<Mutex<Duration>>,
}

async fn record(State(s): State<Stub>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let h = headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    s.seen.lock().expect("lock").push(Seen { method: method.to_string(), path: uri.path().to_string(), headers: h, body: body.to_vec() });
    let delay = *s.delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(*s.status.lock().expect("lock")).expect("status");
    (status, [("content-type", "application/json")], s.reply.lock().expect("lock").clone())
}

async fn stub() -> (String, Stub) {
    let s = Stub {
        seen: Arc::default(),
        status: Arc::new(Mutex::new(201)),
        reply: Arc::new(Mutex::new("{\"sid\":\"SM1\"}".into())),
        delay: Arc::new(Mutex::new(Duration::ZERO)),
    };
    let app = Router::new().fallback(record).with_state(s.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), s)
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().expect("client")
}

fn msg<'a>(channel: Channel, to: &'a str, body: &'a str) -> Message<'a> {
    Message { channel, to, subject: "", body, account: "acme" }
}

/// A port on which nobody listens.
async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let p = l.local_addr().expect("addr").port();
    drop(l);
    p
}

#[tokio::test]
async fn twilio_sms_request_shape() {
    let (url, s) = stub().await;
    let p = TwilioProvider::new(client(Duration::from_secs(5)), &format!("{url}/"), "AC123", "tok-secret", "+15550001").expect("provider");
    assert!(!format!("{p:?}").contains("tok-secret"));
    p.send(&msg(Channel::Sms, "+18002008411", "Your code is 123456.")).await.expect("sent");
    let seen = s.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/2010-04-01/Accounts/AC123/Messages.json");
    let auth = base64::engine::general_purpose::STANDARD.encode("AC123:tok-secret");
    assert_eq!(r.headers.get("authorization").map(String::as_str), Some(format!("Basic {auth}").as_str()));
    assert!(r.headers.get("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")));
    let f = r.form();
    assert_eq!(f.get("To").map(String::as_str), Some("+18002008411"));
    assert_eq!(f.get("From").map(String::as_str), Some("+15550001"));
    assert_eq!(f.get("Body").map(String::as_str), Some("Your code is 123456."));
}

#[tokio::test]
async fn twilio_voice_says_the_digits_twice() {
    let (url, s) = stub().await;
    let providers = Providers::from_config(&DeliveryConfig::default()).expect("providers");
    let vars = MessageVars { code: Some("123456"), minutes: 5, account: "acme", username: "u" };
    let body = providers.compose(Channel::Voice, MessageKind::Passcode, &vars).body;
    let p = TwilioProvider::new(client(Duration::from_secs(5)), &url, "AC9", "t", "+15550001").expect("provider");
    p.send(&msg(Channel::Voice, "+442012345678", &body)).await.expect("sent");
    let r = s.seen.lock().expect("lock")[0].clone();
    assert_eq!(r.path, "/2010-04-01/Accounts/AC9/Calls.json");
    let f = r.form();
    assert_eq!(f.get("To").map(String::as_str), Some("+442012345678"));
    let twiml = f.get("Twiml").cloned().unwrap_or_default();
    assert!(twiml.starts_with("<Response><Say>") && twiml.ends_with("</Say></Response>"), "{twiml}");
    assert_eq!(twiml.matches("1, 2, 3, 4, 5, 6").count(), 2, "{twiml}");
    assert!(!twiml.contains("123456"), "{twiml}");
}

#[tokio::test]
async fn twilio_failures_are_classified() {
    let (url, s) = stub().await;
    let p = TwilioProvider::new(client(Duration::from_secs(1)), &url, "AC1", "t", "+15550001").expect("provider");
    *s.status.lock().expect("lock") = 400;
    *s.reply.lock().expect("lock") = json!({"code": 21211, "message": "The 'To' number is not valid.", "status": 400}).to_string();
    match p.send(&msg(Channel::Sms, "+1555", "x")).await {
        Err(SendError::Permanent(t)) => assert!(t.contains("21211") && t.contains("HTTP 400"), "{t}"),
        other => panic!("expected permanent, got {other:?}"),
    }
    *s.status.lock().expect("lock") = 503;
    assert!(matches!(p.send(&msg(Channel::Sms, "+1555", "x")).await, Err(SendError::Transient(_))));
    *s.status.lock().expect("lock") = 401;
    assert!(matches!(p.send(&msg(Channel::Sms, "+1555", "x")).await, Err(SendError::Permanent(_))));
    // slower than the timeout: transient
    *s.status.lock().expect("lock") = 201;
    *s.delay.lock().expect("lock") = Duration::from_millis(1500);
    match p.send(&msg(Channel::Sms, "+1555", "x")).await {
        Err(SendError::Transient(t)) => assert!(t.contains("timeout"), "{t}"),
        other => panic!("expected a transient timeout, got {other:?}"),
    }
    // nobody listening: transient
    let dead = TwilioProvider::new(client(Duration::from_secs(1)), &format!("http://127.0.0.1:{}", dead_port().await), "AC1", "t", "+1")
        .expect("provider");
    match dead.send(&msg(Channel::Sms, "+1555", "x")).await {
        Err(SendError::Transient(t)) => assert!(t.contains("connection"), "{t}"),
        other => panic!("expected a transient connection failure, got {other:?}"),
    }
}

#[tokio::test]
async fn webhook_request_shape_and_failures() {
    let (url, s) = stub().await;
    *s.status.lock().expect("lock") = 200;
    let p = WebhookProvider::new(client(Duration::from_secs(1)), &format!("{url}/hook"), Some("bearer-secret".into())).expect("provider");
    assert!(!format!("{p:?}").contains("bearer-secret"));
    p.send(&msg(Channel::Sms, "+18002008411", "Your code is 654321.")).await.expect("sent");
    let mut email = msg(Channel::Email, "a@example.com", "Your code is 111222.");
    email.subject = "Your code";
    p.send(&email).await.expect("sent");
    let seen = s.seen.lock().expect("lock").clone();
    assert_eq!(seen[0].path, "/hook");
    assert_eq!(seen[0].headers.get("authorization").map(String::as_str), Some("Bearer bearer-secret"));
    assert_eq!(seen[0].json(), json!({"channel": "sms", "to": "+18002008411", "message": "Your code is 654321.", "account": "acme"}));
    assert_eq!(seen[1].json()["subject"], "Your code");
    assert_eq!(seen[1].json()["channel"], "email");
    *s.status.lock().expect("lock") = 500;
    assert!(matches!(p.send(&email).await, Err(SendError::Transient(_))));
    *s.status.lock().expect("lock") = 404;
    assert!(matches!(p.send(&email).await, Err(SendError::Permanent(_))));
    assert!(WebhookProvider::new(client(Duration::from_secs(1)), "ftp://x", None).is_err());
}

/// A scripted SMTP server: answers RCPT with `rcpt_reply`, records each message's DATA.
async fn smtp_stub(rcpt_reply: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let m = mails.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else { return };
            let m = m.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 stub ESMTP\r\n").await;
                let mut in_data = false;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            m.lock().expect("lock").push(std::mem::take(&mut data));
                            let _ = w.write_all(b"250 queued\r\n").await;
                        } else {
                            data.push_str(&line);
                            data.push('\n');
                        }
                        continue;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &str = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        "250 stub\r\n"
                    } else if cmd.starts_with("RCPT") {
                        rcpt_reply
                    } else if cmd.starts_with("DATA") {
                        in_data = true;
                        "354 go ahead\r\n"
                    } else if cmd.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        "250 ok\r\n"
                    };
                    let _ = w.write_all(reply.as_bytes()).await;
                }
            });
        }
    });
    (port, mails)
}

#[tokio::test]
async fn smtp_sends_and_classifies_replies() {
    let (port, mails) = smtp_stub("250 ok\r\n").await;
    let p = SmtpProvider::new(&format!("smtp://127.0.0.1:{port}"), "Tessera <no-reply@example.com>", Duration::from_secs(5)).expect("smtp");
    let mut m = msg(Channel::Email, "user@example.com", "Your code is 424242. It expires in 5 minutes.");
    m.subject = "Your acme code";
    p.send(&m).await.expect("sent");
    let got = mails.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("Subject: Your acme code"), "{}", got[0]);
    assert!(got[0].contains("424242"), "{}", got[0]);
    assert!(got[0].contains("To: user@example.com"), "{}", got[0]);

    let (port, _) = smtp_stub("451 4.3.0 try again later\r\n").await;
    let p = SmtpProvider::new(&format!("smtp://127.0.0.1:{port}"), "a@example.com", Duration::from_secs(5)).expect("smtp");
    assert!(matches!(p.send(&m).await, Err(SendError::Transient(_))), "4xx reply must be transient");

    let (port, _) = smtp_stub("550 5.1.1 no such user\r\n").await;
    let p = SmtpProvider::new(&format!("smtp://127.0.0.1:{port}"), "a@example.com", Duration::from_secs(5)).expect("smtp");
    assert!(matches!(p.send(&m).await, Err(SendError::Permanent(_))), "5xx reply must be permanent");

    let p = SmtpProvider::new(&format!("smtp://127.0.0.1:{}", dead_port().await), "a@example.com", Duration::from_secs(2)).expect("smtp");
    assert!(matches!(p.send(&m).await, Err(SendError::Transient(_))), "refused connection must be transient");

    // STARTTLS required but not offered (the stub does not offer it): refused, nothing sent in clear.
    let (port, mails) = smtp_stub("250 ok\r\n").await;
    let p2 = SmtpProvider::new(&format!("smtp://127.0.0.1:{port}?tls=starttls"), "a@example.com", Duration::from_secs(5)).expect("smtp");
    match p2.send(&m).await {
        Err(SendError::Permanent(t)) => assert!(t.contains("STARTTLS"), "{t}"),
        other => panic!("expected a permanent STARTTLS failure, got {other:?}"),
    }
    assert!(mails.lock().expect("lock").is_empty());
    // Opportunistic: sent in clear when the server has no STARTTLS.
    let p3 =
        SmtpProvider::new(&format!("smtp://127.0.0.1:{port}?tls=opportunistic"), "a@example.com", Duration::from_secs(5)).expect("smtp");
    p3.send(&m).await.expect("sent");
    assert_eq!(mails.lock().expect("lock").len(), 1);

    let bad = msg(Channel::Email, "not an address", "x");
    assert!(matches!(p.send(&bad).await, Err(SendError::Permanent(_))), "a bad recipient is permanent");
}

#[tokio::test]
async fn smtp_silent_server_times_out_transiently() {
    // Accepts the connection but never greets.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let p = SmtpProvider::new(&format!("smtp://127.0.0.1:{port}"), "a@example.com", Duration::from_secs(1)).expect("smtp");
    let started = std::time::Instant::now();
    let r = p.send(&msg(Channel::Email, "u@example.com", "x")).await;
    assert!(matches!(r, Err(SendError::Transient(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn templates_render_per_channel() {
    let cfg = DeliveryConfig::from_value(&json!({
        "email": {"provider": "log", "template": "Hi {username}, {code} for {account} ({minutes} min) {unknown}", "subject": "{account}: code {code}"},
        "sms": {"provider": "log", "template": "{account} says: no placeholder"},
        "voice": {"provider": "log", "welcome_template": "Welcome {username}"}
    }))
    .expect("config");
    let p = Providers::from_config(&cfg).expect("providers");
    let vars = MessageVars { code: Some("987654"), minutes: 5, account: "acme", username: "mandy" };
    let e = p.compose(Channel::Email, MessageKind::Passcode, &vars);
    assert_eq!(e.body, "Hi mandy, 987654 for acme (5 min) {unknown}");
    // the subject never carries the code
    assert_eq!(e.subject, "acme: code ");
    // a template without {code} still gets the code
    assert_eq!(p.compose(Channel::Sms, MessageKind::Passcode, &vars).body, "acme says: no placeholder 987654");
    // defaults: sms plain, voice spelled out
    assert_eq!(p.compose(Channel::Voice, MessageKind::Passcode, &vars).body, "Your code is 9, 8, 7, 6, 5, 4.");
    let d = Providers::from_config(&DeliveryConfig::default()).expect("providers");
    assert_eq!(d.compose(Channel::Sms, MessageKind::Passcode, &vars).body, "Your code is 987654. It expires in 5 minutes.");
    assert_eq!(d.compose(Channel::Sms, MessageKind::Passcode, &vars).subject, "");
    assert_eq!(d.compose(Channel::Email, MessageKind::Passcode, &vars).subject, "Your acme verification code");
    let w = MessageVars { code: None, minutes: 0, account: "acme", username: "mandy" };
    assert_eq!(p.compose(Channel::Voice, MessageKind::Welcome, &w).body, "Welcome mandy");
    let dw = d.compose(Channel::Email, MessageKind::Welcome, &w);
    assert!(dw.body.contains("Welcome to acme, mandy") && dw.subject == "Welcome to acme", "{dw:?}");
    assert!(!format!("{:?}", d.compose(Channel::Sms, MessageKind::Passcode, &vars)).contains("987654"));
}

#[test]
fn e164_examples_from_the_reference() {
    assert_eq!(normalize_e164("+1(800)200-8411").as_deref(), Ok("+18002008411"));
    assert_eq!(normalize_e164("+44(0)20 1234 5678").as_deref(), Ok("+442012345678"));
    assert!(normalize_e164("(800)200-8411").is_err());
}

#[test]
fn misconfigured_providers_are_refused_at_start() {
    let bad = |v: Value| DeliveryConfig::from_value(&v).and_then(|c| Providers::from_config(&c).map(|_| ())).err().unwrap_or_default();
    assert!(bad(json!({"email": {"provider": "smtp", "smtp_url": "http://x", "from": "a@b.c"}})).contains("delivery.email"));
    assert!(bad(json!({"email": {"provider": "smtp", "smtp_url": "smtp://x", "from": "nope"}})).contains("from"));
    assert!(bad(json!({"sms": {"provider": "webhook", "url": "not a url"}})).contains("delivery.sms"));
    assert!(bad(json!({"voice": {"provider": "twilio", "url": "http://x", "account_sid": "A/../B", "auth_token": "t", "from": "+1"}}))
        .contains("account_sid"));
}
