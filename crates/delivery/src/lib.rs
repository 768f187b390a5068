//! Passcode and notification delivery: the providers (SMTP, Twilio-compatible REST, a generic JSON
//! webhook, and the development-only `log` provider), the per-channel templates, and the outbox
//! worker that sends what `send_oath_otp` queued (docs/api.md).
//!
//! Configuration comes from the `[delivery]` section of the settings (raw, as
//! `Settings::delivery`):
//!
//! ```toml
//! [delivery]
//! timeout_seconds = 10      # bound on every outbound call
//! reply_wait_ms = 3000      # how long send_oath_otp waits for the first attempt
//!
//! [delivery.email]
//! provider = "smtp"
//! smtp_url = "smtp://user:password@mail.example.com:587?tls=starttls"   # or smtps://…, starttls://…
//! from = "Tessera <no-reply@example.com>"
//! subject = "Your {account} code"
//! template = "Your code is {code}. It expires in {minutes} minutes."
//!
//! [delivery.sms]
//! provider = "webhook"
//! url = "https://sms-gateway.example.com/send"
//!
//! [delivery.voice]
//! provider = "twilio"
//! url = "https://api.twilio.com"
//! account_sid = "AC…"
//! auth_token = "…"
//! from = "+15005550006"
//! ```
//!
//! A channel without a section uses the `log` provider, which writes the message (code included)
//! to the server log at WARN: the one place a code may appear in a log. The server says so at
//! start-up.
//!
//! Delivery is at least once: every message is in the outbox before the API replies; an attempt is
//! claimed with a lease, so a process killed in the middle of an attempt leaves the message to be
//! retried by any node once the lease runs out.

pub mod config;
pub mod provider;
pub mod providers;
pub mod worker;

pub use config::{ChannelConfig, DeliveryConfig, ProviderConfig};
pub use provider::{classify_http, Message, Provider, SendError};
pub use providers::Providers;
pub use tessera_core::service::delivery::{normalize_e164, render, Channel, Composed, DeliveryResult, MessageKind, MessageVars};
pub use worker::{attempt_one, backoff_seconds, run_worker, try_execute_once, OutboxDispatcher};

use std::sync::Arc;
use tessera_core::service::delivery::Dispatcher;
use tessera_core::service::Clock;
use tessera_core::store::Store;

/// Delivery as the server wires it: the providers, the dispatcher handed to the service, and the
/// worker loop.
pub struct Delivery {
    store: Arc<dyn Store>,
    providers: Arc<Providers>,
    clock: Arc<dyn Clock>,
}

impl Delivery {
    /// Reads `[delivery]` and creates the providers; a misconfiguration is an error naming the key.
    /// Warns loudly for every channel that uses the `log` provider.
    /// `master_key` opens the message bodies the service sealed in the outbox.
    pub fn from_settings(
        delivery: &serde_json::Value,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master_key: tessera_core::crypto::MasterKey,
    ) -> anyhow::Result<Delivery> {
        let config = DeliveryConfig::from_value(delivery).map_err(|e| anyhow::anyhow!("invalid [delivery] configuration: {e}"))?;
        let providers = Providers::from_config(&config)
            .map_err(|e| anyhow::anyhow!("invalid [delivery] configuration: {e}"))?
            .with_master_key(master_key);
        for channel in Channel::ALL {
            let kind = providers.provider_kind(channel);
            if kind == "log" {
                tracing::warn!(
                    channel = channel.as_str(),
                    "DELIVERY CHANNEL {} USES THE `log` PROVIDER: passcodes are NOT sent, they are written to this log \
                     (development only; configure [delivery.{}] for production)",
                    channel.as_str(),
                    channel.as_str()
                );
            } else {
                tracing::info!(channel = channel.as_str(), provider = kind, "delivery channel configured");
            }
        }
        Ok(Delivery { store, providers: Arc::new(providers), clock })
    }

    /// The dispatcher to hand to `Service::with_dispatcher`.
    pub fn dispatcher(&self) -> Arc<dyn Dispatcher> {
        Arc::new(OutboxDispatcher::new(self.store.clone(), self.providers.clone(), self.clock.clone()))
    }

    /// The outbox worker loop (runs until aborted); any number of nodes may run it.
    pub fn worker(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        run_worker(self.store.clone(), self.providers.clone(), self.clock.clone())
    }

    pub fn providers(&self) -> Arc<Providers> {
        self.providers.clone()
    }
}
