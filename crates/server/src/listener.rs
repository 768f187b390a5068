//! The HTTP listener (docs/operations.md, "Connections" and "TLS"): accepts TCP connections, runs
//! the TLS handshake when `[tls]` is configured, and serves HTTP/1.1 and HTTP/2 on each connection
//! (by ALPN under TLS, by the connection preface in clear) with hyper.
//!
//! Connection limits are kept here, per connection, by [`TimedIo`] (which wraps the socket) and
//! the request counter it shares with the service:
//! * a request's headers must arrive within `header_timeout` of its first byte (of the connection
//!   opening, for the first request; the TLS handshake is held to the same limit): otherwise the
//!   client gets `408` (HTTP/1.1, when part of a request had arrived) and the connection is closed;
//! * a connection with no request in progress is closed after `idle_timeout`;
//! * the body's own limit (`body_timeout`) is kept where the body is read ([`crate::body`]).
//!
//! Each request carries `ConnectInfo<SocketAddr>` (the peer) and [`Transport`] (whether it came
//! over TLS). On shutdown the listener stops accepting, asks every connection to finish its
//! requests in progress and close, and waits for them (at most [`DRAIN_TIME`]).

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// How long shutdown waits for open connections to finish their requests.
pub const DRAIN_TIME: Duration = Duration::from_secs(8);

/// Request extension: how the request reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transport {
    /// The connection is HTTPS.
    pub tls: bool,
}

/// The per-connection time limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    pub fn from_settings(s: &tessera_core::config::ServerSettings) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(s.header_timeout_seconds.max(1)),
            idle_timeout: Duration::from_secs(s.idle_timeout_seconds.max(1)),
        }
    }
}

/// Accepts and serves connections until `shutdown` completes, then drains them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<crate::tls::Tls>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().keep_alive(true);
    let builder = Arc::new(builder);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `open_tx`; `open_rx` ends when the last one is done.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn =
            Connection { peer, router: router.clone(), builder: builder.clone(), limits, stop: stop_rx.clone(), _open: open_tx.clone() };
        tokio::spawn(conn.run(stream, tls.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_tx);
    if tokio::time::timeout(DRAIN_TIME, open_rx.recv()).await.is_err() {
        tracing::warn!("connections still open {} s after shutdown began; closing them", DRAIN_TIME.as_secs());
    }
}

struct Connection {
    peer: SocketAddr,
    router: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
    stop: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, tls: Option<crate::tls::Tls>) {
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls else {
            let io = TimedIo::new(stream, self.limits, None);
            return self.serve(io, false).await;
        };
        let handshake = tokio::time::timeout(self.limits.header_timeout, tls.acceptor.accept(stream));
        let stream = tokio::select! {
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "TLS handshake not completed within the header timeout; closed");
                    return;
                }
            },
            _ = self.stop.changed() => return,
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TimedIo::new(stream, self.limits, Some(h2));
        self.serve(io, true).await
    }

    async fn serve<T>(mut self, io: TimedIo<T>, tls: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let requests = io.requests.clone();
        let peer = self.peer;
        let router = self.router.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(Transport { tls });
            let in_flight = requests.begin();
            let reply = router.clone().oneshot(req);
            async move {
                let r = reply.await;
                drop(in_flight);
                r
            }
        });
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = self.stop.changed() => conn.as_mut().graceful_shutdown(),
        }
        if let Err(e) = conn.await {
            tracing::debug!(peer = %peer, error = %e, "connection ended with an error during shutdown");
        }
    }
}

/// Where a connection stands, for its time limits.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request's headers since `since` (connection opened, or first byte of a
    /// request after an idle period); `partial`: some of it has arrived.
    Head { since: Instant, partial: bool },
    /// This many requests are being answered.
    Busy(u32),
    /// No request in progress since `since`.
    Idle { since: Instant },
}

/// The request counter shared by a connection's socket wrapper and its service.
#[derive(Debug)]
struct Requests {
    phase: Mutex<Phase>,
    /// The reader that last found no bytes while a request was in progress: hyper does not read
    /// again until woken, so the end of the last request wakes it to start the idle clock.
    parked_reader: Mutex<Option<Waker>>,
}

impl Requests {
    fn new(phase: Phase) -> Self {
        Requests { phase: Mutex::new(phase), parked_reader: Mutex::new(None) }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn park_reader(&self, waker: &Waker) {
        let mut parked = self.parked_reader.lock().unwrap_or_else(|e| e.into_inner());
        if !parked.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *parked = Some(waker.clone());
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        let mut p = self.phase();
        *p = match *p {
            Phase::Busy(n) => Phase::Busy(n.saturating_add(1)),
            _ => Phase::Busy(1),
        };
        InFlight(self.clone())
    }
}

/// One request being answered; dropping it ends it.
struct InFlight(Arc<Requests>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let idle = {
            let mut p = self.0.phase();
            *p = match *p {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle { since: Instant::now() },
            };
            matches!(*p, Phase::Idle { .. })
        };
        if idle {
            if let Some(reader) = self.0.parked_reader.lock().unwrap_or_else(|e| e.into_inner()).take() {
                reader.wake();
            }
        }
    }
}

/// The reply written before closing a connection whose request headers did not arrive in time.
const HEADER_TIMEOUT_REPLY: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\nContent-Length: 82\r\n\r\n{\"type\":\"\",\"errorCode\":9145,\"errorMessage\":\"request headers not received in time\"}";

/// A connection's socket with the header and idle time limits: when hyper waits for bytes and the
/// limit of the connection's phase has passed, reading ends (EOF), which makes hyper close the
/// connection.
struct TimedIo<T> {
    inner: T,
    limits: Limits,
    requests: Arc<Requests>,
    timer: Pin<Box<Sleep>>,
    /// Known from ALPN under TLS, from the first bytes in clear.
    h2: Option<bool>,
    expired: bool,
}

impl<T> TimedIo<T> {
    fn new(inner: T, limits: Limits, h2: Option<bool>) -> Self {
        let now = Instant::now();
        TimedIo {
            inner,
            limits,
            requests: Arc::new(Requests::new(Phase::Head { since: now, partial: false })),
            timer: Box::pin(tokio::time::sleep_until(now + limits.header_timeout)),
            h2,
            expired: false,
        }
    }

    fn saw_bytes(&mut self, bytes: &[u8]) {
        if self.h2.is_none() {
            self.h2 = Some(bytes.starts_with(b"PRI * HTTP/2"));
        }
        let h2 = self.h2 == Some(true);
        let mut p = self.requests.phase();
        match *p {
            // HTTP/2 sends frames (pings, window updates) between requests: only a request ends idleness.
            Phase::Idle { .. } if !h2 => *p = Phase::Head { since: Instant::now(), partial: true },
            Phase::Head { since, partial: false } => *p = Phase::Head { since, partial: true },
            _ => {}
        }
    }

    /// The deadline of the current phase, and whether a 408 is owed when it passes.
    fn deadline(&self) -> Option<(Instant, bool)> {
        match *self.requests.phase() {
            Phase::Head { since, partial } => Some((since + self.limits.header_timeout, partial && self.h2 != Some(true))),
            Phase::Idle { since } => Some((since + self.limits.idle_timeout, false)),
            Phase::Busy(_) => None,
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.expired {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.saw_bytes(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((deadline, owe_408)) = this.deadline() else {
                    this.requests.park_reader(cx.waker());
                    // The request may have ended between the two looks: then read again at once.
                    if this.deadline().is_some() {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                };
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                if Instant::now() < deadline && this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.expired = true;
                if owe_408 {
                    tracing::debug!("request headers not received within the header timeout; answering 408 and closing");
                    // Best effort: the socket buffer is empty at this point, so the reply fits.
                    let _ = Pin::new(&mut this.inner).poll_write(cx, HEADER_TIMEOUT_REPLY);
                    let _ = Pin::new(&mut this.inner).poll_flush(cx);
                } else {
                    tracing::debug!("connection idle beyond its time limit; closing");
                }
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::HEADER_TIMEOUT_REPLY;

    #[test]
    fn header_timeout_reply_has_the_right_length() {
        let text = std::str::from_utf8(HEADER_TIMEOUT_REPLY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
        assert_eq!(len, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["errorCode"], 9145);
    }
}
