//! Reading a request body with the 64 KiB limit, shared by the JSON and SOAP front doors.

use axum::body::Body;
use axum::body::HttpBody;

/// Largest body accepted (bytes); beyond it: 413.
pub const BODY_LIMIT: usize = 64 * 1024;
/// How much of an oversized body is still read (and discarded) before answering 413.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// How long reading a body may take.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the body, keeping at most [`BODY_LIMIT`] bytes. A larger body is read on (and discarded)
/// up to [`DRAIN_LIMIT`] within [`DRAIN_TIME`], so that a client still writing it reads the 413
/// Fault instead of a reset connection; beyond that the answer is sent at once. Err = too large
/// (or the body could not be read).
pub async fn read_limited(mut body: Body) -> Result<Vec<u8>, ()> {
    let read = async {
        let mut kept = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
            let Ok(data) = frame.map_err(|_| ())?.into_data() else { continue };
            total = total.saturating_add(data.len());
            if total <= BODY_LIMIT {
                kept.extend_from_slice(&data);
            } else if total > DRAIN_LIMIT {
                return Err(());
            }
        }
        if total > BODY_LIMIT {
            Err(())
        } else {
            Ok(kept)
        }
    };
    tokio::time::timeout(DRAIN_TIME, read).await.unwrap_or(Err(()))
}
