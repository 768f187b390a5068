//! RADIUS (RFC 2865) packets: parsing, the User-Password hiding of RFC 2865 §5.2, the
//! Message-Authenticator of RFC 3579 §3.2 (HMAC-MD5) and the Response Authenticator of
//! RFC 2865 §3, plus the NAS address ranges (CIDR) that identify a client.
//!
//! Pure: no I/O, no clock, no randomness (request authenticators and states are passed in).
//! Nothing here panics on input: every length is checked before it is used.
//!
//! Security rules the front door builds on:
//! * [`Packet::parse`] accepts at most [`MAX_PACKET`] octets and checks every attribute's length.
//! * [`check_message_authenticator`] demands exactly one Message-Authenticator of 16 octets and
//!   compares it in constant time (BlastRADIUS, CVE-2024-3596: a request without one is refused).
//! * [`encode_response`] always puts the Message-Authenticator first in a response.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use std::net::IpAddr;
use std::ops::Range;
use subtle::ConstantTimeEq;

pub use ipnet::IpNet;

/// Largest packet (RFC 2865 §3).
pub const MAX_PACKET: usize = 4096;
/// Header: code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;
/// Longest attribute value.
pub const MAX_ATTR_VALUE: usize = 253;
/// Longest User-Password value (RFC 2865 §5.2).
pub const MAX_PASSWORD: usize = 128;

/// Packet codes (RFC 2865 §4, RFC 5997).
pub mod code {
    pub const ACCESS_REQUEST: u8 = 1;
    pub const ACCESS_ACCEPT: u8 = 2;
    pub const ACCESS_REJECT: u8 = 3;
    pub const ACCOUNTING_REQUEST: u8 = 4;
    pub const ACCESS_CHALLENGE: u8 = 11;
    pub const STATUS_SERVER: u8 = 12;
}

/// Attribute types used by Tessera (RFC 2865 §5, RFC 3579).
pub mod attr {
    pub const USER_NAME: u8 = 1;
    pub const USER_PASSWORD: u8 = 2;
    pub const CHAP_PASSWORD: u8 = 3;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const NAS_PORT: u8 = 5;
    pub const REPLY_MESSAGE: u8 = 18;
    pub const STATE: u8 = 24;
    pub const NAS_IDENTIFIER: u8 = 32;
    pub const PROXY_STATE: u8 = 33;
    pub const EAP_MESSAGE: u8 = 79;
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
}

/// Why a packet or value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Fewer octets than the header, or than the Length field says.
    Truncated,
    /// The Length field is below 20 or above 4096, or more than 4096 octets arrived.
    BadLength,
    /// An attribute's length is below 2 or runs past the packet.
    BadAttribute,
    /// A User-Password value that is not 16..=128 octets in blocks of 16.
    BadPassword,
    /// An attribute value over 253 octets, or a packet over 4096 octets, to encode.
    TooLong,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::BadLength => "length field out of range",
            Error::BadAttribute => "malformed attribute",
            Error::BadPassword => "malformed User-Password",
            Error::TooLong => "value or packet too long",
        })
    }
}

impl std::error::Error for Error {}

/// A parsed packet borrowing the received octets.
#[derive(Debug, Clone)]
pub struct Packet<'a> {
    pub code: u8,
    pub identifier: u8,
    pub authenticator: [u8; 16],
    /// Exactly the octets the Length field covers (padding beyond it is ignored, RFC 2865 §3).
    raw: &'a [u8],
    /// (type, value range within `raw`) in order.
    attrs: Vec<(u8, Range<usize>)>,
}

impl<'a> Packet<'a> {
    /// Parses a datagram. Octets beyond the Length field are ignored; fewer are an error.
    pub fn parse(buf: &'a [u8]) -> Result<Packet<'a>, Error> {
        if buf.len() > MAX_PACKET {
            return Err(Error::BadLength);
        }
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if !(HEADER_LEN..=MAX_PACKET).contains(&len) {
            return Err(Error::BadLength);
        }
        let raw = buf.get(..len).ok_or(Error::Truncated)?;
        let mut authenticator = [0u8; 16];
        authenticator.copy_from_slice(&raw[4..HEADER_LEN]);
        let mut attrs = Vec::new();
        let mut at = HEADER_LEN;
        while at < len {
            let header = raw.get(at..at + 2).ok_or(Error::BadAttribute)?;
            let (t, l) = (header[0], usize::from(header[1]));
            if l < 2 || at + l > len {
                return Err(Error::BadAttribute);
            }
            attrs.push((t, at + 2..at + l));
            at += l;
        }
        Ok(Packet { code: buf[0], identifier: buf[1], authenticator, raw, attrs })
    }

    /// The packet's octets (as far as its Length field reaches).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The first value of attribute `t`.
    pub fn attr(&self, t: u8) -> Option<&'a [u8]> {
        let raw = self.raw;
        self.attrs.iter().find(|(k, _)| *k == t).and_then(|(_, r)| raw.get(r.clone()))
    }

    /// Every value of attribute `t`, in order.
    pub fn attrs(&self, t: u8) -> impl Iterator<Item = &'a [u8]> + '_ {
        let raw = self.raw;
        self.attrs.iter().filter(move |(k, _)| *k == t).filter_map(move |(_, r)| raw.get(r.clone()))
    }

    /// How many attributes of type `t` the packet carries.
    pub fn count(&self, t: u8) -> usize {
        self.attrs.iter().filter(|(k, _)| *k == t).count()
    }

    /// Every attribute as (type, value), in order.
    pub fn all_attrs(&self) -> impl Iterator<Item = (u8, &'a [u8])> + '_ {
        let raw = self.raw;
        self.attrs.iter().filter_map(move |(t, r)| raw.get(r.clone()).map(|v| (*t, v)))
    }
}

/// What the Message-Authenticator check of a request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageAuth {
    Valid,
    /// No Message-Authenticator attribute.
    Missing,
    /// Wrong value, wrong length, or more than one.
    Invalid,
}

type HmacMd5 = Hmac<Md5>;

fn hmac_md5(secret: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <HmacMd5 as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return [0u8; 16],
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Checks a request's Message-Authenticator (RFC 3579 §3.2): HMAC-MD5 under the shared secret
/// over the packet with the attribute's value zeroed; the Request Authenticator is used as is
/// (Access-Request, Status-Server). Compared in constant time.
pub fn check_message_authenticator(p: &Packet<'_>, secret: &[u8]) -> MessageAuth {
    let found: Vec<&Range<usize>> = p.attrs.iter().filter(|(t, _)| *t == attr::MESSAGE_AUTHENTICATOR).map(|(_, r)| r).collect();
    let range = match found.as_slice() {
        [] => return MessageAuth::Missing,
        [one] if one.len() == 16 => (*one).clone(),
        _ => return MessageAuth::Invalid,
    };
    let Some(given) = p.raw.get(range.clone()) else { return MessageAuth::Invalid };
    let zeros = [0u8; 16];
    let expected = hmac_md5(secret, &[&p.raw[..range.start], &zeros, &p.raw[range.end..]]);
    if bool::from(expected.ct_eq(given)) {
        MessageAuth::Valid
    } else {
        MessageAuth::Invalid
    }
}

/// Reveals a User-Password (RFC 2865 §5.2); trailing NUL padding is removed.
pub fn decrypt_user_password(value: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Result<Vec<u8>, Error> {
    if value.is_empty() || value.len() > MAX_PASSWORD || value.len() & 15 != 0 {
        return Err(Error::BadPassword);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut prev: &[u8] = authenticator;
    for block in value.chunks(16) {
        let b = Md5::new().chain_update(secret).chain_update(prev).finalize();
        out.extend(block.iter().zip(b.iter()).map(|(c, k)| c ^ k));
        prev = block;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    Ok(out)
}

/// Hides a User-Password (RFC 2865 §5.2): padded with NULs to a multiple of 16, at most 128 octets.
pub fn encrypt_user_password(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Result<Vec<u8>, Error> {
    if password.len() > MAX_PASSWORD {
        return Err(Error::BadPassword);
    }
    let padded_len = password.len().div_ceil(16).max(1) * 16;
    let mut out = Vec::with_capacity(padded_len);
    let mut prev = authenticator.to_vec();
    for i in 0..padded_len / 16 {
        let b = Md5::new().chain_update(secret).chain_update(&prev).finalize();
        let block: Vec<u8> = (0..16).map(|j| password.get(i * 16 + j).copied().unwrap_or(0) ^ b[j]).collect();
        out.extend_from_slice(&block);
        prev = block;
    }
    Ok(out)
}

fn push_attr(buf: &mut Vec<u8>, t: u8, value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_ATTR_VALUE {
        return Err(Error::TooLong);
    }
    buf.push(t);
    buf.push(u8::try_from(value.len() + 2).map_err(|_| Error::TooLong)?);
    buf.extend_from_slice(value);
    Ok(())
}

/// Header + Message-Authenticator (zeroed) + `attrs` (which must not hold one); returns the buffer and the offset of the
/// Message-Authenticator's value.
fn assemble(code: u8, identifier: u8, authenticator: &[u8; 16], attrs: &[(u8, &[u8])]) -> Result<(Vec<u8>, usize), Error> {
    let mut buf = Vec::with_capacity(64 + attrs.iter().map(|(_, v)| v.len() + 2).sum::<usize>());
    buf.extend_from_slice(&[code, identifier, 0, 0]);
    buf.extend_from_slice(authenticator);
    push_attr(&mut buf, attr::MESSAGE_AUTHENTICATOR, &[0u8; 16])?;
    for (t, v) in attrs {
        if *t == attr::MESSAGE_AUTHENTICATOR {
            // There is exactly one, computed here.
            return Err(Error::BadAttribute);
        }
        push_attr(&mut buf, *t, v)?;
    }
    if buf.len() > MAX_PACKET {
        return Err(Error::TooLong);
    }
    let len = u16::try_from(buf.len()).map_err(|_| Error::TooLong)?;
    buf[2..4].copy_from_slice(&len.to_be_bytes());
    Ok((buf, HEADER_LEN + 2))
}

/// Encodes a response (Access-Accept / -Reject / -Challenge) to the request with
/// `request_authenticator`: Message-Authenticator first (RFC 3579 §3.2, computed with the Request
/// Authenticator in place), then `attrs`, then the Response Authenticator
/// MD5(Code+Identifier+Length+RequestAuth+Attributes+Secret) (RFC 2865 §3).
pub fn encode_response(
    code: u8,
    identifier: u8,
    request_authenticator: &[u8; 16],
    attrs: &[(u8, &[u8])],
    secret: &[u8],
) -> Result<Vec<u8>, Error> {
    let (mut buf, ma) = assemble(code, identifier, request_authenticator, attrs)?;
    let mac = hmac_md5(secret, &[&buf]);
    buf[ma..ma + 16].copy_from_slice(&mac);
    let resp = Md5::new().chain_update(&buf).chain_update(secret).finalize();
    buf[4..HEADER_LEN].copy_from_slice(&resp);
    Ok(buf)
}

/// Encodes an Access-Request (for clients and tests) with a Message-Authenticator first.
pub fn encode_request(identifier: u8, authenticator: &[u8; 16], attrs: &[(u8, &[u8])], secret: &[u8]) -> Result<Vec<u8>, Error> {
    let (mut buf, ma) = assemble(code::ACCESS_REQUEST, identifier, authenticator, attrs)?;
    let mac = hmac_md5(secret, &[&buf]);
    buf[ma..ma + 16].copy_from_slice(&mac);
    Ok(buf)
}

/// Checks a response against the request it answers (for clients and tests): the Response
/// Authenticator and, when present, the Message-Authenticator (`require_ma`: it must be present).
pub fn verify_response(response: &[u8], request_authenticator: &[u8; 16], secret: &[u8], require_ma: bool) -> bool {
    let Ok(p) = Packet::parse(response) else { return false };
    let raw = p.raw();
    let expected: [u8; 16] = Md5::new()
        .chain_update(&raw[..4])
        .chain_update(request_authenticator)
        .chain_update(&raw[HEADER_LEN..])
        .chain_update(secret)
        .finalize()
        .into();
    if !bool::from(expected.ct_eq(&raw[4..HEADER_LEN])) {
        return false;
    }
    let mut with_request_auth = raw.to_vec();
    with_request_auth[4..HEADER_LEN].copy_from_slice(request_authenticator);
    let Ok(q) = Packet::parse(&with_request_auth) else { return false };
    match check_message_authenticator(&q, secret) {
        MessageAuth::Valid => true,
        MessageAuth::Missing => !require_ma,
        MessageAuth::Invalid => false,
    }
}

/// Parses a NAS address or range: an IP address (a /32 or /128) or a CIDR whose host bits are
/// zero; IPv4-mapped IPv6 addresses are taken as IPv4. The canonical text is `IpNet`'s `Display`.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty address".into());
    }
    let net = if text.contains('/') {
        text.parse::<IpNet>().map_err(|_| format!("{text:?} is not an IP address or CIDR range (e.g. 10.0.0.1 or 10.0.0.0/24)"))?
    } else {
        let ip =
            text.parse::<IpAddr>().map_err(|_| format!("{text:?} is not an IP address or CIDR range (e.g. 10.0.0.1 or 10.0.0.0/24)"))?;
        IpNet::from(canonical_ip(ip))
    };
    if net.trunc() != net {
        return Err(format!("{text} has host bits set (did you mean {}?)", net.trunc()));
    }
    Ok(net)
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 peers) as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The most specific of `nets` containing `ip` (longest prefix): its index.
pub fn best_match<'n>(nets: impl IntoIterator<Item = &'n IpNet>, ip: IpAddr) -> Option<usize> {
    let ip = canonical_ip(ip);
    nets.into_iter().enumerate().filter(|(_, n)| n.contains(&ip)).max_by_key(|(_, n)| n.prefix_len()).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_round_trip_at_every_length() {
        let auth = [7u8; 16];
        for n in 0..=128usize {
            let pw: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let hidden = encrypt_user_password(&pw, b"s3cret", &auth).expect("encrypt");
            assert_eq!(hidden.len() % 16, 0);
            assert!(hidden.len() >= 16 && hidden.len() <= 128);
            assert_eq!(decrypt_user_password(&hidden, b"s3cret", &auth).expect("decrypt"), pw);
        }
        assert_eq!(encrypt_user_password(&[b'x'; 129], b"s", &auth), Err(Error::BadPassword));
        assert_eq!(decrypt_user_password(&[0u8; 15], b"s", &auth), Err(Error::BadPassword));
        assert_eq!(decrypt_user_password(&[0u8; 144], b"s", &auth), Err(Error::BadPassword));
        assert_eq!(decrypt_user_password(&[], b"s", &auth), Err(Error::BadPassword));
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.0.0.1").map(|n| n.to_string()), Ok("10.0.0.1/32".into()));
        assert_eq!(parse_cidr(" 10.0.0.0/24 ").map(|n| n.to_string()), Ok("10.0.0.0/24".into()));
        assert_eq!(parse_cidr("::1").map(|n| n.to_string()), Ok("::1/128".into()));
        assert_eq!(parse_cidr("::ffff:10.1.2.3").map(|n| n.to_string()), Ok("10.1.2.3/32".into()));
        assert!(parse_cidr("10.0.0.5/24").err().unwrap_or_default().contains("10.0.0.0/24"));
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
        assert!(parse_cidr("").is_err());
        let nets = [parse_cidr("10.0.0.0/8").unwrap(), parse_cidr("10.1.0.0/16").unwrap(), parse_cidr("192.168.0.1").unwrap()];
        assert_eq!(best_match(&nets, "10.1.2.3".parse().unwrap()), Some(1));
        assert_eq!(best_match(&nets, "10.2.2.3".parse().unwrap()), Some(0));
        assert_eq!(best_match(&nets, "::ffff:192.168.0.1".parse().unwrap()), Some(2));
        assert_eq!(best_match(&nets, "192.168.0.2".parse().unwrap()), None);
    }
}
