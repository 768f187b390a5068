//! The RADIUS front door (RFC 2865 over UDP), on when `[radius] listen` is set; see
//! docs/operations.md, "RADIUS".
//!
//! One task reads datagrams. For each it: refuses anything over 4096 octets or malformed; looks
//! the source address up in the client table (most specific CIDR wins); checks the
//! Message-Authenticator under that client's secret (BlastRADIUS, CVE-2024-3596: a request
//! without one, or with a wrong one, is dropped); answers a retransmission (same source address,
//! port, identifier and Request Authenticator within 30 s) from the reply cache without
//! evaluating it again; otherwise evaluates it on a task of its own (at most `max_in_flight` at
//! once; beyond that datagrams are dropped and the NAS retransmits). Drops are logged (rate
//! limited) without secrets, passwords or codes.
//!
//! The decision is `tessera_core::service::radius::decide`: the same service operations as the
//! JSON API. Every reply carries a Message-Authenticator as its first attribute and the Response
//! Authenticator of RFC 2865 §3. The client table is re-read from the database every
//! `client_refresh_ms` (default 2 s), so `tessera radius client add|remove` takes effect without a
//! restart.

use crate::AppState;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tessera_core::service::radius::{client_secret_context, decide, Decision, RadiusRequest, MSG_FAILED};
use tessera_core::RequestCtx;
use tessera_radius::{self as wire, attr, code, IpNet, MessageAuth, Packet};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// How long a reply is kept for retransmissions.
pub const RETRANSMIT_WINDOW: Duration = Duration::from_secs(30);
/// Most replies (and requests being evaluated) remembered at once.
pub const CACHE_ENTRIES: usize = 65_536;

/// A NAS as the front door knows it.
struct Client {
    net: IpNet,
    account: String,
    otp_only: bool,
    secret: Zeroizing<Vec<u8>>,
}

/// The clients of every account, re-read from the database periodically.
#[derive(Default)]
struct ClientTable {
    clients: Vec<Arc<Client>>,
    /// (id, address, otp_only, sealed secret) of what was loaded: a reload is skipped when unchanged.
    fingerprint: Vec<(i64, String, bool, Vec<u8>)>,
}

impl ClientTable {
    fn lookup(&self, ip: std::net::IpAddr) -> Option<Arc<Client>> {
        wire::best_match(self.clients.iter().map(|c| &c.net), ip).and_then(|i| self.clients.get(i).cloned())
    }
}

type CacheKey = (SocketAddr, u8);

struct CacheEntry {
    authenticator: [u8; 16],
    at: Instant,
    /// None while the request is being evaluated.
    reply: Option<Arc<Vec<u8>>>,
}

/// Replies by (source, identifier), for retransmissions; bounded in size and age.
#[derive(Default)]
struct ReplyCache {
    map: HashMap<CacheKey, CacheEntry>,
    order: VecDeque<(CacheKey, Instant)>,
}

enum Seen {
    /// Not seen: evaluate it (an entry is now reserved).
    New,
    /// The same request is being evaluated: drop this copy.
    InProgress,
    /// Answered before: send this again.
    Answered(Arc<Vec<u8>>),
}

impl ReplyCache {
    fn evict(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front().cloned() {
            if now.duration_since(at) < RETRANSMIT_WINDOW && self.order.len() <= CACHE_ENTRIES {
                break;
            }
            self.order.pop_front();
            if self.map.get(&key).map(|e| e.at == at).unwrap_or(false) {
                self.map.remove(&key);
            }
        }
    }

    fn check(&mut self, key: CacheKey, authenticator: [u8; 16], now: Instant) -> Seen {
        self.evict(now);
        if let Some(e) = self.map.get(&key) {
            if e.authenticator == authenticator && now.duration_since(e.at) < RETRANSMIT_WINDOW {
                return match &e.reply {
                    Some(r) => Seen::Answered(r.clone()),
                    None => Seen::InProgress,
                };
            }
        }
        self.map.insert(key, CacheEntry { authenticator, at: now, reply: None });
        self.order.push_back((key, now));
        self.evict(now);
        Seen::New
    }

    fn complete(&mut self, key: CacheKey, authenticator: [u8; 16], reply: Arc<Vec<u8>>) {
        if let Some(e) = self.map.get_mut(&key) {
            if e.authenticator == authenticator {
                e.reply = Some(reply);
            }
        }
    }

    fn forget(&mut self, key: CacheKey, authenticator: [u8; 16]) {
        if self.map.get(&key).map(|e| e.authenticator == authenticator && e.reply.is_none()).unwrap_or(false) {
            self.map.remove(&key);
        }
    }
}

/// Logs dropped datagrams at most 20 times a second (a flood must not flood the log).
struct DropLog {
    window: Mutex<(Instant, u32, u64)>,
}

impl DropLog {
    fn new() -> Self {
        DropLog { window: Mutex::new((Instant::now(), 0, 0)) }
    }

    fn drop_packet(&self, peer: SocketAddr, why: &str) {
        let Ok(mut w) = self.window.lock() else { return };
        let now = Instant::now();
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            if w.2 > 0 {
                tracing::warn!(suppressed = w.2, "RADIUS: more datagrams were dropped than logged");
            }
            *w = (now, 0, 0);
        }
        if w.1 < 20 {
            w.1 += 1;
            tracing::warn!(source = %peer, reason = why, "RADIUS: datagram dropped");
        } else {
            w.2 += 1;
        }
    }
}

struct Front {
    state: Arc<AppState>,
    socket: Arc<UdpSocket>,
    clients: RwLock<Arc<ClientTable>>,
    cache: Mutex<ReplyCache>,
    in_flight: Arc<Semaphore>,
    drops: DropLog,
}

/// Binds the UDP socket (at start-up, so that a bad address is a clear error then).
pub async fn bind(listen: &str) -> anyhow::Result<UdpSocket> {
    use anyhow::Context;
    UdpSocket::bind(listen).await.with_context(|| format!("cannot listen for RADIUS on {listen} (udp)"))
}

/// Serves RADIUS on `socket` until the task is aborted.
pub async fn serve(socket: UdpSocket, state: Arc<AppState>) {
    let settings = state.service.settings.radius.clone();
    let front = Arc::new(Front {
        state,
        socket: Arc::new(socket),
        clients: RwLock::new(Arc::new(ClientTable::default())),
        cache: Mutex::new(ReplyCache::default()),
        in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
        drops: DropLog::new(),
    });
    front.reload_clients().await;
    // Aborted with this task: it holds the service (and with it the audit sink, whose writer must end on shutdown).
    let refresher =
        AbortOnDrop(tokio::spawn(refresh_loop(front.clone(), Duration::from_millis(settings.client_refresh_ms.clamp(100, 60_000)))));
    let mut buf = vec![0u8; wire::MAX_PACKET + 1];
    loop {
        let (n, peer) = match front.socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP port-unreachable from an earlier reply and the like: not fatal.
                tracing::debug!(error = %e, "RADIUS: receive failed");
                continue;
            }
        };
        front.datagram(&buf[..n], peer);
        if refresher.0.is_finished() {
            break;
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn refresh_loop(front: Arc<Front>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut purged = Instant::now();
    loop {
        tick.tick().await;
        front.reload_clients().await;
        if purged.elapsed() >= Duration::from_secs(60) {
            purged = Instant::now();
            let svc = &front.state.service;
            if let Err(e) = svc.store.purge_radius_challenges(svc.now()).await {
                tracing::warn!(error = %e, "RADIUS: purging expired challenges failed");
            }
        }
    }
}

impl Front {
    async fn reload_clients(&self) {
        let svc = &self.state.service;
        let rows = match svc.store.list_radius_clients(None).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "RADIUS: reading the client table failed; the previous one stays in use");
                return;
            }
        };
        let fingerprint: Vec<(i64, String, bool, Vec<u8>)> =
            rows.iter().map(|r| (r.id, r.address.clone(), r.otp_only, r.secret.clone())).collect();
        if self.clients.read().map(|t| t.fingerprint == fingerprint).unwrap_or(false) {
            return;
        }
        let mut clients = Vec::with_capacity(rows.len());
        for r in &rows {
            let Ok(net) = wire::parse_cidr(&r.address) else {
                tracing::error!(address = %r.address, "RADIUS: a client address in the database is not a CIDR; ignored");
                continue;
            };
            let Some(secret) = svc.master_key.open_bound(&client_secret_context(r.account_id, &r.address), &r.secret) else {
                tracing::error!(address = %r.address, account = %r.account_name, "RADIUS: a client secret cannot be opened with this master key; ignored");
                continue;
            };
            clients.push(Arc::new(Client { net, account: r.account_name.clone(), otp_only: r.otp_only, secret }));
        }
        tracing::info!(clients = clients.len(), "RADIUS: client table loaded");
        if let Ok(mut t) = self.clients.write() {
            *t = Arc::new(ClientTable { clients, fingerprint });
        }
    }

    fn dropped(&self, peer: SocketAddr, outcome: &'static str, why: &str) {
        self.state.metrics.radius(outcome, None);
        self.drops.drop_packet(peer, why);
    }

    /// Everything up to the evaluation runs here, on the receiving task: it is cheap.
    fn datagram(self: &Arc<Self>, data: &[u8], peer: SocketAddr) {
        if data.len() > wire::MAX_PACKET {
            return self.dropped(peer, "dropped_malformed", "larger than 4096 octets");
        }
        let packet = match Packet::parse(data) {
            Ok(p) => p,
            Err(e) => return self.dropped(peer, "dropped_malformed", &e.to_string()),
        };
        if packet.code != code::ACCESS_REQUEST {
            return self.dropped(peer, "dropped_unsupported", "not an Access-Request");
        }
        let table = match self.clients.read() {
            Ok(t) => t.clone(),
            Err(_) => return,
        };
        let Some(client) = table.lookup(peer.ip()) else {
            return self.dropped(peer, "dropped_unknown_client", "unknown client address");
        };
        match wire::check_message_authenticator(&packet, &client.secret) {
            MessageAuth::Valid => {}
            MessageAuth::Missing => return self.dropped(peer, "dropped_bad_authenticator", "no Message-Authenticator"),
            MessageAuth::Invalid => {
                return self.dropped(peer, "dropped_bad_authenticator", "wrong Message-Authenticator (or wrong shared secret)")
            }
        }
        let key = (peer, packet.identifier);
        let seen = match self.cache.lock() {
            Ok(mut c) => c.check(key, packet.authenticator, Instant::now()),
            Err(_) => return,
        };
        match seen {
            Seen::Answered(reply) => {
                self.state.metrics.radius("retransmit", None);
                let socket = self.socket.clone();
                tokio::spawn(async move {
                    let _ = socket.send_to(&reply, peer).await;
                });
                return;
            }
            Seen::InProgress => return self.state.metrics.radius("retransmit_in_progress", None),
            Seen::New => {}
        }
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            if let Ok(mut c) = self.cache.lock() {
                c.forget(key, packet.authenticator);
            }
            return self.dropped(peer, "dropped_busy", "too many requests in flight");
        };
        let front = self.clone();
        let raw = packet.raw().to_vec();
        tokio::spawn(async move {
            let started = Instant::now();
            let (reply, outcome) = front.evaluate(&raw, &client, peer).await;
            drop(permit);
            match reply {
                Some(reply) => {
                    let reply = Arc::new(reply);
                    if let Ok(mut c) = front.cache.lock() {
                        c.complete(key, authenticator_of(&raw), reply.clone());
                    }
                    if let Err(e) = front.socket.send_to(&reply, peer).await {
                        tracing::debug!(error = %e, "RADIUS: sending a reply failed");
                    }
                }
                None => {
                    if let Ok(mut c) = front.cache.lock() {
                        c.forget(key, authenticator_of(&raw));
                    }
                }
            }
            front.state.metrics.radius(outcome, Some(started.elapsed()));
        });
    }

    /// Decides an authenticated Access-Request and encodes the reply.
    async fn evaluate(&self, raw: &[u8], client: &Client, peer: SocketAddr) -> (Option<Vec<u8>>, &'static str) {
        let Ok(p) = Packet::parse(raw) else { return (None, "dropped_malformed") };
        let secret: &[u8] = &client.secret;
        let proxy_states: Vec<&[u8]> = p.attrs(attr::PROXY_STATE).collect();
        let reject = |msg: &str| {
            let mut attrs: Vec<(u8, &[u8])> = vec![(attr::REPLY_MESSAGE, msg.as_bytes())];
            attrs.extend(proxy_states.iter().map(|v| (attr::PROXY_STATE, *v)));
            (wire::encode_response(code::ACCESS_REJECT, p.identifier, &p.authenticator, &attrs, secret).ok(), "reject")
        };
        let username = match p.attr(attr::USER_NAME).map(std::str::from_utf8) {
            Some(Ok(u)) if !u.trim().is_empty() => u,
            _ => return reject(MSG_FAILED),
        };
        let Some(hidden) = p.attr(attr::USER_PASSWORD) else {
            // CHAP, EAP and the rest cannot carry what the checks need.
            return reject("Only PAP (User-Password) is supported");
        };
        let Ok(password) = wire::decrypt_user_password(hidden, secret, &p.authenticator).map(Zeroizing::new) else {
            return reject(MSG_FAILED);
        };
        let Ok(password) = std::str::from_utf8(&password) else { return reject(MSG_FAILED) };
        let req = RadiusRequest { account: &client.account, otp_only: client.otp_only, username, password, state: p.attr(attr::STATE) };
        let ctx = RequestCtx { source: format!("radius/{}", wire::canonical_ip(peer.ip())) };
        let started = Instant::now();
        let mut calls = Vec::new();
        let decision = decide(&self.state.service, &req, &ctx, &mut calls).await;
        let elapsed = started.elapsed();
        for &(op, c) in &calls {
            self.state.metrics.request("radius", op, c, elapsed);
        }
        let mut attrs: Vec<(u8, &[u8])> = Vec::new();
        let (code_out, outcome) = match &decision {
            Decision::Accept => (code::ACCESS_ACCEPT, "accept"),
            Decision::Reject(msg) => {
                attrs.push((attr::REPLY_MESSAGE, msg.as_bytes()));
                (code::ACCESS_REJECT, "reject")
            }
            Decision::Challenge { state, message } => {
                attrs.push((attr::STATE, state.as_bytes()));
                attrs.push((attr::REPLY_MESSAGE, message.as_bytes()));
                (code::ACCESS_CHALLENGE, "challenge")
            }
        };
        attrs.extend(proxy_states.iter().map(|v| (attr::PROXY_STATE, *v)));
        match wire::encode_response(code_out, p.identifier, &p.authenticator, &attrs, secret) {
            Ok(reply) => (Some(reply), outcome),
            Err(e) => {
                tracing::error!(error = %e, "RADIUS: a reply could not be encoded");
                (None, "dropped_malformed")
            }
        }
    }
}

fn authenticator_of(raw: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    if let Some(src) = raw.get(4..20) {
        a.copy_from_slice(src);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16, id: u8) -> CacheKey {
        (SocketAddr::from(([127, 0, 0, 1], port)), id)
    }

    #[test]
    fn retransmissions_are_recognised_and_the_cache_is_bounded() {
        let mut c = ReplyCache::default();
        let t0 = Instant::now();
        assert!(matches!(c.check(key(1, 7), [1; 16], t0), Seen::New));
        assert!(matches!(c.check(key(1, 7), [1; 16], t0), Seen::InProgress));
        c.complete(key(1, 7), [1; 16], Arc::new(vec![42]));
        assert!(matches!(c.check(key(1, 7), [1; 16], t0 + Duration::from_secs(29)), Seen::Answered(r) if *r == vec![42]));
        // Another authenticator with the same identifier is a new request.
        assert!(matches!(c.check(key(1, 7), [2; 16], t0 + Duration::from_secs(1)), Seen::New));
        // Another port is another client.
        assert!(matches!(c.check(key(2, 7), [1; 16], t0), Seen::New));
        // After 30 s it is forgotten.
        c.complete(key(2, 7), [1; 16], Arc::new(vec![1]));
        assert!(matches!(c.check(key(2, 7), [1; 16], t0 + RETRANSMIT_WINDOW), Seen::New));
        // Bounded: never more than CACHE_ENTRIES entries.
        let mut c = ReplyCache::default();
        for i in 0..(CACHE_ENTRIES + 500) {
            let k = (SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], (i >> 16) as u16 + 1)), 0);
            c.check(k, [0; 16], t0);
        }
        assert!(c.map.len() <= CACHE_ENTRIES);
        assert!(c.order.len() <= CACHE_ENTRIES);
    }
}
