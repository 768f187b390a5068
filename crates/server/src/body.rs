//! Reading a request body with the 64 KiB limit and the body time limit (`[server]
//! body_timeout_seconds`), shared by the JSON and SOAP front doors (docs/api.md, "HTTP status").

use axum::body::Body;
use axum::body::HttpBody;
use axum::http::{header, HeaderMap};
use std::time::Duration;

/// Largest body accepted (bytes); beyond it: 413.
pub const BODY_LIMIT: usize = 64 * 1024;
/// How much of an oversized body is still read (and discarded) before answering 413.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// How long an oversized body is read on (and discarded) at most.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over [`BODY_LIMIT`] (announced by `Content-Length`, or counted): 413.
    TooLarge,
    /// Not complete within the body time limit: 408.
    TimedOut,
    /// The connection failed while the body was being read: 400.
    Unreadable,
}

/// `Expect: 100-continue` asked for.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers.get(header::EXPECT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// The announced `Content-Length`, if there is one that parses.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// Reads the body, keeping at most [`BODY_LIMIT`] bytes, within `timeout`.
///
/// * A request with `Expect: 100-continue` whose `Content-Length` is over the limit is refused
///   before the body is asked for, so the client gets 413 and never `100 Continue`.
/// * A larger body is otherwise read on (and discarded) up to [`DRAIN_LIMIT`] within
///   [`DRAIN_TIME`], so that a client still writing it reads the 413 instead of a reset connection.
/// * A body that has not fully arrived within `timeout` (a stalled or trickling client) is
///   [`BodyError::TimedOut`].
pub async fn read_limited(headers: &HeaderMap, mut body: Body, timeout: Duration) -> Result<Vec<u8>, BodyError> {
    let announced = content_length(headers);
    if announced.is_some_and(|n| n > BODY_LIMIT as u64) && expects_continue(headers) {
        return Err(BodyError::TooLarge);
    }
    let started = tokio::time::Instant::now();
    let mut kept = Vec::new();
    let mut total = 0usize;
    loop {
        // Once the body is known to be too large only the drain time counts.
        let limit = if total > BODY_LIMIT { DRAIN_TIME } else { timeout };
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx));
        let frame = match tokio::time::timeout_at(started + limit, next).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) if total > BODY_LIMIT => return Err(BodyError::TooLarge),
            Err(_) => return Err(BodyError::TimedOut),
        };
        let Ok(data) = frame.map_err(|_| BodyError::Unreadable)?.into_data() else { continue };
        total = total.saturating_add(data.len());
        if total <= BODY_LIMIT {
            kept.extend_from_slice(&data);
        } else if total > DRAIN_LIMIT {
            return Err(BodyError::TooLarge);
        }
    }
    if total > BODY_LIMIT {
        Err(BodyError::TooLarge)
    } else {
        Ok(kept)
    }
}

/// The body time limit configured for a service.
pub fn timeout_of(settings: &tessera_core::config::Settings) -> Duration {
    Duration::from_secs(settings.server.body_timeout_seconds.max(1))
}
