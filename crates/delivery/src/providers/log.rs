//! The `log` provider: writes the message, code included, to the server log at WARN instead of
//! sending it. For development only; the server warns at start-up for every channel that uses it.
//! This is the one place where a passcode may appear in a log.

use crate::provider::{Message, Provider, SendError};

/// Writes messages to the log (target `tessera_delivery::log`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogProvider;

#[async_trait::async_trait]
impl Provider for LogProvider {
    fn kind(&self) -> &'static str {
        "log"
    }

    async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        tracing::warn!(
            target: "tessera_delivery::log",
            channel = msg.channel.as_str(),
            to = msg.to,
            subject = msg.subject,
            account = msg.account,
            "NOT SENT (log delivery provider, development only): {}",
            msg.body
        );
        Ok(())
    }
}
