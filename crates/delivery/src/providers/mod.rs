//! The configured providers of the three channels, their templates, and the account-name cache the
//! webhook needs.

pub mod log;
pub mod smtp;
pub mod twilio;
pub mod webhook;

use crate::config::{ChannelConfig, DeliveryConfig, ProviderConfig};
use crate::provider::Provider;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tessera_core::service::delivery::{default_compose, render, Channel, Composed, MessageKind, MessageVars};
use tessera_core::store::Store;

struct ChannelRuntime {
    provider: Arc<dyn Provider>,
    config: ChannelConfig,
}

/// Everything the dispatcher and the worker need besides the store.
pub struct Providers {
    pub config: DeliveryConfig,
    sms: ChannelRuntime,
    voice: ChannelRuntime,
    email: ChannelRuntime,
    accounts: Mutex<HashMap<i64, String>>,
    /// Opens the sealed message bodies of the outbox (None: bodies are read as they are stored).
    master_key: Option<tessera_core::crypto::MasterKey>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers")
            .field("sms", &self.sms.provider.kind())
            .field("voice", &self.voice.provider.kind())
            .field("email", &self.email.provider.kind())
            .finish_non_exhaustive()
    }
}

impl Providers {
    /// Creates the providers (parses URLs and addresses: a mistake is an error here, not at the first send).
    pub fn from_config(config: &DeliveryConfig) -> Result<Providers, String> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(std::time::Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        let make = |ch: Channel| -> Result<ChannelRuntime, String> {
            let cc = config.channel(ch).clone();
            let sec = format!("delivery.{}", ch.as_str());
            let provider: Arc<dyn Provider> = match &cc.provider {
                ProviderConfig::Log => Arc::new(log::LogProvider),
                ProviderConfig::Smtp { url, from } => {
                    Arc::new(smtp::SmtpProvider::new(url, from, config.timeout).map_err(|e| format!("{sec}: {e}"))?)
                }
                ProviderConfig::Twilio { url, account_sid, auth_token, from } => Arc::new(
                    twilio::TwilioProvider::new(http.clone(), url, account_sid, auth_token, from).map_err(|e| format!("{sec}: {e}"))?,
                ),
                ProviderConfig::Webhook { url, bearer_token } => {
                    Arc::new(webhook::WebhookProvider::new(http.clone(), url, bearer_token.clone()).map_err(|e| format!("{sec}: {e}"))?)
                }
            };
            Ok(ChannelRuntime { provider, config: cc })
        };
        Ok(Providers {
            config: config.clone(),
            sms: make(Channel::Sms)?,
            voice: make(Channel::Voice)?,
            email: make(Channel::Email)?,
            accounts: Mutex::new(HashMap::new()),
            master_key: None,
        })
    }

    /// The master key under which the service seals message bodies in the outbox.
    pub fn with_master_key(mut self, key: tessera_core::crypto::MasterKey) -> Self {
        self.master_key = Some(key);
        self
    }

    /// The clear text of a stored message body: a sealed body is opened with the master key; a
    /// body stored in clear (written before bodies were sealed) is used as it is. `None` when a
    /// sealed body cannot be opened (no key, another key, or not sealed for this message).
    pub fn open_body(&self, row: &tessera_core::store::OutboxRow) -> Option<zeroize::Zeroizing<String>> {
        if !row.body.starts_with(tessera_core::crypto::SEALED_MESSAGE_PREFIX) {
            return Some(zeroize::Zeroizing::new(row.body.clone()));
        }
        self.master_key.as_ref()?.open_message(row.account_id, &row.channel, &row.recipient, &row.body)
    }

    /// Replaces a channel's provider (tests).
    pub fn with_provider(mut self, ch: Channel, provider: Arc<dyn Provider>) -> Self {
        match ch {
            Channel::Sms => self.sms.provider = provider,
            Channel::Voice => self.voice.provider = provider,
            Channel::Email => self.email.provider = provider,
        }
        self
    }

    fn runtime(&self, ch: Channel) -> &ChannelRuntime {
        match ch {
            Channel::Sms => &self.sms,
            Channel::Voice => &self.voice,
            Channel::Email => &self.email,
        }
    }

    pub fn provider(&self, ch: Channel) -> Arc<dyn Provider> {
        self.runtime(ch).provider.clone()
    }

    pub fn provider_kind(&self, ch: Channel) -> &'static str {
        self.runtime(ch).provider.kind()
    }

    /// Renders a message with the channel's configured templates (or the built-in ones).
    pub fn compose(&self, ch: Channel, kind: MessageKind, vars: &MessageVars<'_>) -> Composed {
        let cc = &self.runtime(ch).config;
        let default = default_compose(ch, kind, vars);
        let (body_t, subject_t) = match kind {
            MessageKind::Passcode => (cc.template.as_deref(), cc.subject.as_deref()),
            MessageKind::Welcome => (cc.welcome_template.as_deref(), cc.welcome_subject.as_deref()),
        };
        let body = match body_t {
            Some(t) => render(t, ch, vars),
            None => default.body,
        };
        let subject = match (ch, subject_t) {
            (Channel::Email, Some(t)) => render(t, ch, &MessageVars { code: None, ..vars.clone() }),
            (Channel::Email, None) => default.subject,
            _ => String::new(),
        };
        Composed { subject, body }
    }

    /// The name of an account (for the webhook's `account` field); cached, refreshed on a miss.
    pub async fn account_name(&self, store: &dyn Store, account_id: i64) -> String {
        if let Some(n) = self.accounts.lock().ok().and_then(|m| m.get(&account_id).cloned()) {
            return n;
        }
        match store.list_accounts().await {
            Ok(list) => {
                let mut found = String::new();
                if let Ok(mut m) = self.accounts.lock() {
                    for a in list {
                        if a.id == account_id {
                            found = a.name.clone();
                        }
                        m.insert(a.id, a.name);
                    }
                }
                found
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read account names for delivery");
                String::new()
            }
        }
    }
}
