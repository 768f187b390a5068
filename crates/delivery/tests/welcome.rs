//! Welcome notifications (`notificationMethod` of add_u2f_account / add_oath_account) through the
//! real service, store and dispatcher: queued without a code and delivered at once.

use std::sync::{Arc, Mutex};
use tessera_core::config::Settings;
use tessera_core::crypto::MasterKey;
use tessera_core::service::audit::AuditSink;
use tessera_core::service::delivery::send_welcome;
use tessera_core::service::{Caller, SystemClock};
use tessera_core::store::UserRow;
use tessera_core::Service;
use tessera_delivery::{Channel, DeliveryConfig, Message, OutboxDispatcher, Provider, Providers, SendError};

#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<(Channel, String, String, String)>>,
}

#[async_trait::async_trait]
impl Provider for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        self.sent.lock().expect("lock").push((msg.channel, msg.to.to_string(), msg.subject.to_string(), msg.body.to_string()));
        Ok(())
    }
}

#[tokio::test]
async fn welcome_messages_are_queued_and_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = tessera_store::open(&format!("sqlite://{}", dir.path().join("t.db").display()), 4, true).await.expect("store");
    let account = store.create_account("acme", &[0u8; 32], 0).await.expect("account");
    let rec = Arc::new(Recorder::default());
    // The service seals message bodies under the master key; the worker opens them with the same key.
    let key = MasterKey::generate();
    let providers = Arc::new(
        Providers::from_config(&DeliveryConfig::default())
            .expect("providers")
            .with_provider(Channel::Email, rec.clone())
            .with_provider(Channel::Sms, rec.clone())
            .with_master_key(key.clone()),
    );
    let clock = Arc::new(SystemClock);
    let dispatcher = Arc::new(OutboxDispatcher::new(store.clone(), providers, clock.clone()));
    let svc = Service::new(store.clone(), Arc::new(Settings::default()), key, clock, AuditSink::disabled()).with_dispatcher(dispatcher);
    let caller = Caller { account: Arc::new(account) };
    let mut user = UserRow {
        account_id: caller.account.id,
        username: "carol".into(),
        email: "carol@example.com".into(),
        mobile: "+44(0)20 1234 5678".into(),
        ..Default::default()
    };
    user.id = store.create_user(&user, "carol").await.expect("user");

    send_welcome(&svc, &caller, &user, 0).await.expect("none");
    send_welcome(&svc, &caller, &user, 1).await.expect("email");
    send_welcome(&svc, &caller, &user, 2).await.expect("sms");
    assert_eq!(send_welcome(&svc, &caller, &user, 7).await.map_err(|e| e.code), Err(9103));
    let no_email = UserRow { email: String::new(), ..user.clone() };
    let e = send_welcome(&svc, &caller, &no_email, 1).await.expect_err("no email");
    assert_eq!(e.code, 9103);
    assert!(e.message.contains("email"), "{}", e.message);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while rec.sent.lock().expect("lock").len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut sent = rec.sent.lock().expect("lock").clone();
    sent.sort_by_key(|s| s.0.as_str());
    assert_eq!(sent.len(), 2, "{sent:?}");
    let (ch, to, subject, body) = &sent[0];
    assert_eq!((*ch, to.as_str(), subject.as_str()), (Channel::Email, "carol@example.com", "Welcome to acme"));
    assert!(body.contains("Welcome to acme, carol"), "{body}");
    assert!(!body.chars().any(|c| c.is_ascii_digit()), "a welcome message carries no code: {body}");
    let (ch, to, subject, _) = &sent[1];
    assert_eq!((*ch, to.as_str(), subject.as_str()), (Channel::Sms, "+442012345678", ""));
}
