//! Hardware-token seed files: PSKC (RFC 6030) and CSV, parsed into [`ImportedToken`]s for the
//! operator's `tessera device import` (docs/api.md).
//!
//! Pure: no I/O, no clock, no store. The caller reads the file, calls [`parse`], checks the psns
//! against the account, seals the seeds and inserts everything in one transaction.
//!
//! A file is accepted whole or refused whole: the first fault ends parsing with an [`ImportError`]
//! whose `location` names the CSV line (`line 7`) or the PSKC element / key (`Key "12345678"
//! (KeyPackage 2, line 31)`, `KeyContainer/MACMethod`). A psn that appears twice in one file is
//! such a fault too. No error message ever contains a seed. Nothing here panics, whatever the input.
//!
//! CSV: `serial,seed_hex,type,digits,counter_or_step[,algorithm]`; `type` is `hotp` | `totp`
//! (case-insensitive); `digits` 6 | 8; the fifth field is the next HOTP counter to use (>= 0) or the
//! TOTP step (30 | 60); `algorithm` `SHA1` (default) | `SHA256` | `SHA512`. Blank lines and lines
//! starting with `#` are skipped, and so is a header line first in the file whose first field starts
//! with `serial` (and whose second is not hex).
//!
//! PSKC: elements are matched by namespace URI and local name (prefixes are arbitrary). The psn is
//! `KeyPackage/DeviceInfo/SerialNo`, else `Key@Id`. Secrets are `PlainValue` (base64) or
//! `EncryptedValue` (AES-128/192/256-CBC, IV prepended, PKCS#7 padding) under a pre-shared key;
//! with a `KeyContainer/MACMethod` (HMAC-SHA1 or HMAC-SHA256, its `MACKey` encrypted under the same
//! key) every encrypted value must carry a `ValueMAC` over IV ‖ ciphertext, checked before
//! decrypting. `Data/Counter` is the next HOTP counter, `Data/TimeInterval` the TOTP step (30 when
//! absent). A DOCTYPE is refused (no entity expansion), and so is a file over [`MAX_FILE_BYTES`].

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, KeyIvInit};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, XmlVersion};
use std::collections::HashMap;
use std::fmt;
use tessera_otp::Algorithm;
use zeroize::{Zeroize, Zeroizing};

/// Largest file accepted (10 MB).
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Shortest seed accepted: 128 bits (RFC 4226 §4 requires at least that; hardware tokens use 20 bytes).
pub const MIN_SEED_BYTES: usize = 16;
/// Longest seed accepted.
pub const MAX_SEED_BYTES: usize = 128;
/// Longest psn accepted, in characters.
pub const MAX_PSN_CHARS: usize = 64;
/// Deepest element nesting accepted in a PSKC file.
const MAX_XML_DEPTH: usize = 32;
/// Most elements accepted in a PSKC file.
const MAX_XML_ELEMENTS: usize = 2_000_000;

const PSKC_NS: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
const XENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
const DS_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

const HOTP_URIS: [&str; 2] = ["urn:ietf:params:xml:ns:keyprov:pskc:hotp", "http://www.ietf.org/keyprov/pskc#hotp"];
const TOTP_URIS: [&str; 2] = ["urn:ietf:params:xml:ns:keyprov:pskc:totp", "http://www.ietf.org/keyprov/pskc#totp"];

/// The two file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pskc,
    Csv,
}

impl Format {
    /// XML (first non-blank character `<`, after an optional UTF-8 BOM) is PSKC; anything else CSV.
    pub fn detect(data: &[u8]) -> Format {
        match strip_bom(data).iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => Format::Pskc,
            _ => Format::Csv,
        }
    }
}

/// How a token computes its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Event based; `counter` is the next counter the token will use.
    Hotp { counter: u64 },
    /// Time based, `step` seconds per code.
    Totp { step: u32 },
}

/// One token read from a file.
#[derive(Clone)]
pub struct ImportedToken {
    pub psn: String,
    pub seed: Zeroizing<Vec<u8>>,
    pub kind: TokenKind,
    pub digits: u32,
    pub algorithm: Algorithm,
    /// Where in the file it was (`line 4`, `Key "123" (KeyPackage 1, line 9)`), for later errors.
    pub location: String,
}

impl fmt::Debug for ImportedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedToken")
            .field("psn", &self.psn)
            .field("seed", &"<redacted>")
            .field("kind", &self.kind)
            .field("digits", &self.digits)
            .field("algorithm", &self.algorithm)
            .field("location", &self.location)
            .finish()
    }
}

/// Why a file was refused: where, and what is wrong (one line, never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub location: String,
    pub message: String,
}

impl ImportError {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        ImportError { location: one_line(&location.into()), message: one_line(&message.into()) }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.location, self.message)
        }
    }
}

impl std::error::Error for ImportError {}

/// Parses a seed file; `format` None detects it ([`Format::detect`]). `psk` is the pre-shared key
/// of an encrypted PSKC file (ignored for CSV and for PSKC files without encrypted values).
pub fn parse(data: &[u8], format: Option<Format>, psk: Option<&[u8]>) -> Result<Vec<ImportedToken>, ImportError> {
    match format.unwrap_or_else(|| Format::detect(data)) {
        Format::Pskc => parse_pskc(data, psk),
        Format::Csv => parse_csv(data),
    }
}

// ---------------------------------------------------------------------------------------------
// shared checks

fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A user-supplied value quoted for a message, cut to a sane length.
fn quoted(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    format!("{out:?}")
}

fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data)
}

fn check_size(data: &[u8]) -> Result<(), ImportError> {
    if data.len() > MAX_FILE_BYTES {
        return Err(ImportError::new("file", format!("larger than {} MB", MAX_FILE_BYTES / (1024 * 1024))));
    }
    Ok(())
}

/// The file as UTF-8 (BOM removed), or the line where it stops being UTF-8.
fn utf8(data: &[u8]) -> Result<&str, ImportError> {
    let data = strip_bom(data);
    std::str::from_utf8(data).map_err(|e| {
        let line = data.get(..e.valid_up_to()).map_or(0, |ok| ok.iter().filter(|&&b| b == b'\n').count()) + 1;
        ImportError::new(format!("line {line}"), "the file is not valid UTF-8")
    })
}

fn check_psn(psn: &str) -> Result<(), String> {
    if psn.is_empty() {
        return Err("the serial number (psn) is empty".into());
    }
    if psn.chars().count() > MAX_PSN_CHARS {
        return Err(format!("serial number {} is longer than {MAX_PSN_CHARS} characters", quoted(psn)));
    }
    if psn.chars().any(char::is_control) || psn.trim() != psn {
        return Err(format!("serial number {} contains control characters or surrounding spaces", quoted(psn)));
    }
    Ok(())
}

fn check_seed(seed: &[u8]) -> Result<(), String> {
    if seed.len() < MIN_SEED_BYTES {
        return Err(format!("the seed is {} bytes; at least {MIN_SEED_BYTES} bytes (128 bits, RFC 4226) are required", seed.len()));
    }
    if seed.len() > MAX_SEED_BYTES {
        return Err(format!("the seed is {} bytes; at most {MAX_SEED_BYTES} are accepted", seed.len()));
    }
    Ok(())
}

fn parse_digits(s: &str) -> Result<u32, String> {
    match s.trim() {
        "6" => Ok(6),
        "8" => Ok(8),
        other => Err(format!("digits {} must be 6 or 8", quoted(other))),
    }
}

fn parse_counter(s: &str) -> Result<u64, String> {
    let s = s.trim();
    match s.parse::<u64>() {
        Ok(n) if n <= i64::MAX as u64 => Ok(n),
        _ => Err(format!("counter {} must be an integer from 0 to {}", quoted(s), i64::MAX)),
    }
}

fn parse_step(s: &str) -> Result<u32, String> {
    match s.trim() {
        "30" => Ok(30),
        "60" => Ok(60),
        other => Err(format!("time step {} must be 30 or 60", quoted(other))),
    }
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Algorithm::Sha1);
    }
    Algorithm::parse(s).ok_or_else(|| format!("algorithm {} must be SHA1, SHA256 or SHA512", quoted(s)))
}

/// Refuses an empty result and a psn seen twice.
fn finish(tokens: Vec<ImportedToken>) -> Result<Vec<ImportedToken>, ImportError> {
    if tokens.is_empty() {
        return Err(ImportError::new("file", "holds no token"));
    }
    let mut seen: HashMap<&str, &str> = HashMap::with_capacity(tokens.len());
    for t in &tokens {
        if let Some(first) = seen.insert(&t.psn, &t.location) {
            return Err(ImportError::new(&t.location, format!("psn {} appears twice in the file (first at {first})", quoted(&t.psn))));
        }
    }
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Parses the CSV format (see the module docs).
pub fn parse_csv(data: &[u8]) -> Result<Vec<ImportedToken>, ImportError> {
    check_size(data)?;
    let text = utf8(data)?;
    let mut tokens = Vec::new();
    let mut first_content = true;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(|f| unquote(f.trim())).collect();
        if std::mem::take(&mut first_content) && is_header(&fields) {
            continue;
        }
        let location = format!("line {}", i + 1);
        let token = csv_token(&fields, location.clone()).map_err(|m| ImportError::new(location, m))?;
        tokens.push(token);
    }
    finish(tokens)
}

fn unquote(f: &str) -> &str {
    f.strip_prefix('"').and_then(|s| s.strip_suffix('"')).map_or(f, str::trim)
}

fn is_header(fields: &[&str]) -> bool {
    let first = fields.first().map(|f| f.to_ascii_lowercase()).unwrap_or_default();
    first.starts_with("serial") && fields.get(1).is_none_or(|seed| seed.is_empty() || !seed.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn csv_token(f: &[&str], location: String) -> Result<ImportedToken, String> {
    if !(5..=6).contains(&f.len()) {
        return Err(format!(
            "expected 5 or 6 comma-separated fields (serial,seed_hex,type,digits,counter_or_step[,algorithm]), found {}",
            f.len()
        ));
    }
    let psn = f[0];
    check_psn(psn)?;
    let seed_hex = f[1];
    let seed = Zeroizing::new(hex::decode(seed_hex).map_err(|e| match e {
        hex::FromHexError::OddLength => "seed_hex must be an even number of hexadecimal digits".to_string(),
        _ => "seed_hex is not hexadecimal".to_string(),
    })?);
    check_seed(&seed)?;
    let kind = if f[2].eq_ignore_ascii_case("hotp") {
        TokenKind::Hotp { counter: parse_counter(f[4])? }
    } else if f[2].eq_ignore_ascii_case("totp") {
        TokenKind::Totp { step: parse_step(f[4])? }
    } else {
        return Err(format!("type {} must be hotp or totp", quoted(f[2])));
    };
    let digits = parse_digits(f[3])?;
    let algorithm = parse_algorithm(f.get(5).copied().unwrap_or(""))?;
    Ok(ImportedToken { psn: psn.to_string(), seed, kind, digits, algorithm, location })
}

// ---------------------------------------------------------------------------------------------
// XML tree

/// An element of the parsed document (namespace URI, local name, unqualified attributes, text).
struct Node {
    ns: String,
    name: String,
    attrs: Vec<(String, String)>,
    /// Text directly inside (secrets may be here: wiped on drop).
    text: String,
    children: Vec<Node>,
    line: usize,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl Node {
    fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    fn child(&self, ns: &str, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    fn children_named<'a>(&'a self, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    fn path(&self, steps: &[(&str, &str)]) -> Option<&Node> {
        steps.iter().try_fold(self, |n, (ns, name)| n.child(ns, name))
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        self.text.trim()
    }
}

/// Counts lines up to a byte position, moving forward only (linear over the whole file).
struct Lines<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl Lines<'_> {
    fn at(&mut self, pos: u64) -> usize {
        let pos = usize::try_from(pos).unwrap_or(usize::MAX).min(self.text.len());
        if pos >= self.pos {
            self.line += self.text.as_bytes().get(self.pos..pos).map_or(0, |s| s.iter().filter(|&&b| b == b'\n').count());
            self.pos = pos;
            self.line
        } else {
            self.text.as_bytes().get(..pos).map_or(0, |s| s.iter().filter(|&&b| b == b'\n').count()) + 1
        }
    }
}

fn xml_tree(text: &str) -> Result<Node, ImportError> {
    let mut reader = NsReader::from_str(text);
    let mut lines = Lines { text, pos: 0, line: 1 };
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut elements = 0usize;
    loop {
        let start_pos = reader.buffer_position();
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ResolveResult::Bound(ns), ev)) => (ns.0.to_string(), ev),
            Ok((ResolveResult::Unbound, ev)) => (String::new(), ev),
            Ok((ResolveResult::Unknown(prefix), _)) => {
                let line = lines.at(start_pos);
                return Err(ImportError::new(format!("line {line}"), format!("undeclared namespace prefix {}", quoted(&prefix))));
            }
            Err(e) => {
                let line = lines.at(reader.error_position());
                return Err(ImportError::new(format!("line {line}"), format!("malformed XML: {e}")));
            }
        };
        let line = lines.at(start_pos);
        let here = || format!("line {line}");
        match event {
            Event::DocType(_) => return Err(ImportError::new(here(), "a DOCTYPE is not allowed (no entity expansion)")),
            Event::Start(ref e) | Event::Empty(ref e) => {
                elements += 1;
                if elements > MAX_XML_ELEMENTS {
                    return Err(ImportError::new(here(), "too many elements"));
                }
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(ImportError::new(here(), format!("elements nested deeper than {MAX_XML_DEPTH}")));
                }
                if stack.is_empty() && root.is_some() {
                    return Err(ImportError::new(here(), "more than one root element"));
                }
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|err| ImportError::new(here(), format!("malformed attribute: {err}")))?;
                    if a.key.prefix().is_some() || a.key.as_ref() == "xmlns" {
                        continue;
                    }
                    let value = a
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|err| ImportError::new(here(), format!("malformed attribute value: {err}")))?;
                    attrs.push((a.key.local_name().as_ref().to_string(), value.into_owned()));
                }
                let node = Node { ns, name: e.local_name().as_ref().to_string(), attrs, text: String::new(), children: Vec::new(), line };
                if matches!(event, Event::Start(_)) {
                    stack.push(node);
                } else {
                    close(node, &mut stack, &mut root);
                }
            }
            Event::End(_) => match stack.pop() {
                Some(node) => close(node, &mut stack, &mut root),
                None => return Err(ImportError::new(here(), "closing tag without an opening one")),
            },
            Event::Text(t) => append_text(&mut stack, &t.xml10_content(), &here)?,
            Event::CData(t) => append_text(&mut stack, &t.xml10_content(), &here)?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                        Some(s) => s.to_string(),
                        None => return Err(ImportError::new(here(), format!("unknown entity &{};", one_line(&r)))),
                    },
                    Err(e) => return Err(ImportError::new(here(), format!("malformed character reference: {e}"))),
                };
                append_text(&mut stack, &resolved, &here)?;
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(ImportError::new(format!("line {}", open.line), format!("element <{}> is never closed", open.name)));
    }
    root.ok_or_else(|| ImportError::new("file", "no XML element found"))
}

fn close(node: Node, stack: &mut [Node], root: &mut Option<Node>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => *root = Some(node),
    }
}

fn append_text(stack: &mut [Node], text: &str, here: &dyn Fn() -> String) -> Result<(), ImportError> {
    match stack.last_mut() {
        Some(node) => {
            node.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(ImportError::new(here(), "text outside the root element")),
    }
}

// ---------------------------------------------------------------------------------------------
// PSKC

/// Parses a PSKC (RFC 6030) key container (see the module docs).
pub fn parse_pskc(data: &[u8], psk: Option<&[u8]>) -> Result<Vec<ImportedToken>, ImportError> {
    check_size(data)?;
    let text = utf8(data)?;
    let root = xml_tree(text)?;
    if !root.is(PSKC_NS, "KeyContainer") {
        return Err(ImportError::new(
            format!("line {}", root.line),
            format!("the root element is <{}>, not a PSKC KeyContainer (namespace {PSKC_NS})", one_line(&root.name)),
        ));
    }
    let container = Container::read(&root, psk)?;
    let mut tokens = Vec::new();
    for (i, package) in root.children_named(PSKC_NS, "KeyPackage").enumerate() {
        tokens.push(key_package(package, i + 1, &container)?);
    }
    finish(tokens)
}

/// What the KeyContainer says about encryption and MACs.
struct Container<'a> {
    psk: Option<&'a [u8]>,
    /// `EncryptionKey/ds:KeyName`, to name the key a missing `--psk` should be.
    key_name: Option<String>,
    /// MAC algorithm and the decrypted MAC key (when a MACMethod is present and a PSK was given).
    mac: Option<(MacAlg, Option<Zeroizing<Vec<u8>>>)>,
}

#[derive(Clone, Copy)]
enum MacAlg {
    Sha1,
    Sha256,
}

impl<'a> Container<'a> {
    fn read(root: &Node, psk: Option<&'a [u8]>) -> Result<Container<'a>, ImportError> {
        let mut key_name = None;
        if let Some(ek) = root.child(PSKC_NS, "EncryptionKey") {
            let loc = format!("KeyContainer/EncryptionKey (line {})", ek.line);
            for c in &ek.children {
                if c.is(DS_NS, "KeyName") {
                    key_name = Some(c.text().to_string());
                } else {
                    return Err(ImportError::new(
                        loc,
                        format!("<{}> is not supported: only a pre-shared key named by ds:KeyName is", one_line(&c.name)),
                    ));
                }
            }
        }
        let mut mac = None;
        if let Some(mm) = root.child(PSKC_NS, "MACMethod") {
            let loc = format!("KeyContainer/MACMethod (line {})", mm.line);
            let alg = match mm.attr("Algorithm").unwrap_or("") {
                "http://www.w3.org/2000/09/xmldsig#hmac-sha1" => MacAlg::Sha1,
                "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256" => MacAlg::Sha256,
                other => {
                    return Err(ImportError::new(loc, format!("unsupported MAC algorithm {} (HMAC-SHA1 or HMAC-SHA256)", quoted(other))))
                }
            };
            let mac_key = match (mm.child(PSKC_NS, "MACKey"), psk) {
                (None, _) => return Err(ImportError::new(loc, "no MACKey (MACKeyReference is not supported)")),
                (Some(_), None) => None,
                (Some(mk), Some(psk)) => Some(
                    decrypt_value(mk, psk).map_err(|m| ImportError::new(format!("KeyContainer/MACMethod/MACKey (line {})", mk.line), m))?,
                ),
            };
            mac = Some((alg, mac_key));
        }
        Ok(Container { psk, key_name, mac })
    }
}

fn key_package(package: &Node, index: usize, container: &Container<'_>) -> Result<ImportedToken, ImportError> {
    let mut keys = package.children_named(PSKC_NS, "Key");
    let key = keys.next().ok_or_else(|| ImportError::new(format!("KeyPackage {index} (line {})", package.line), "has no Key"))?;
    let key_id = key.attr("Id").map(str::trim).filter(|s| !s.is_empty());
    let location = match key_id {
        Some(id) => format!("Key {} (KeyPackage {index}, line {})", quoted(id), key.line),
        None => format!("KeyPackage {index} (line {})", package.line),
    };
    let err = |m: String| ImportError::new(location.clone(), m);
    if keys.next().is_some() {
        return Err(err("a KeyPackage may hold only one Key".into()));
    }
    let serial = package.path(&[(PSKC_NS, "DeviceInfo"), (PSKC_NS, "SerialNo")]).map(Node::text).filter(|s| !s.is_empty());
    let psn = serial.or(key_id).ok_or_else(|| err("no DeviceInfo/SerialNo and no Key Id: the device has no serial number".into()))?;
    check_psn(psn).map_err(err)?;

    let alg_uri = key.attr("Algorithm").map(str::trim).unwrap_or("");
    let totp = if HOTP_URIS.contains(&alg_uri) {
        false
    } else if TOTP_URIS.contains(&alg_uri) {
        true
    } else if alg_uri.is_empty() {
        return Err(err("Key has no Algorithm attribute".into()));
    } else {
        return Err(err(format!("unsupported Key Algorithm {} (only HOTP and TOTP)", quoted(alg_uri))));
    };

    let params = key.child(PSKC_NS, "AlgorithmParameters");
    let format = params
        .and_then(|p| p.child(PSKC_NS, "ResponseFormat"))
        .ok_or_else(|| err("missing AlgorithmParameters/ResponseFormat (the number of digits)".into()))?;
    let digits = parse_digits(format.attr("Length").unwrap_or("")).map_err(|m| err(format!("ResponseFormat Length: {m}")))?;
    if let Some(enc) = format.attr("Encoding") {
        if !enc.trim().eq_ignore_ascii_case("DECIMAL") {
            return Err(err(format!("ResponseFormat Encoding {} is not supported (DECIMAL only)", quoted(enc))));
        }
    }
    let algorithm = match params.and_then(|p| p.child(PSKC_NS, "Suite")).map(Node::text).filter(|s| !s.is_empty()) {
        None => Algorithm::Sha1,
        Some(suite) => {
            let name = suite.get(..5).filter(|p| p.eq_ignore_ascii_case("HMAC-")).map_or(suite, |_| &suite[5..]);
            parse_algorithm(name).map_err(|m| err(format!("AlgorithmParameters/Suite: {m}")))?
        }
    };

    let data = key.child(PSKC_NS, "Data").ok_or_else(|| err("Key has no Data (the secret is missing)".into()))?;
    let secret = data.child(PSKC_NS, "Secret").ok_or_else(|| err("missing Data/Secret".into()))?;
    let seed = secret_value(secret, container).map_err(err)?;
    check_seed(&seed).map_err(|m| err(format!("Data/Secret: {m}")))?;

    let kind = if totp {
        let step = match plain_number(data, "TimeInterval").map_err(err)? {
            None => 30,
            Some(v) => parse_step(v).map_err(|m| err(format!("Data/TimeInterval: {m}")))?,
        };
        TokenKind::Totp { step }
    } else {
        let counter = match plain_number(data, "Counter").map_err(err)? {
            None => 0,
            Some(v) => parse_counter(v).map_err(|m| err(format!("Data/Counter: {m}")))?,
        };
        TokenKind::Hotp { counter }
    };
    Ok(ImportedToken { psn: psn.to_string(), seed, kind, digits, algorithm, location })
}

/// `Data/<name>/PlainValue` as text; an encrypted one is refused.
fn plain_number<'n>(data: &'n Node, name: &str) -> Result<Option<&'n str>, String> {
    let Some(el) = data.child(PSKC_NS, name) else { return Ok(None) };
    if let Some(pv) = el.child(PSKC_NS, "PlainValue") {
        return Ok(Some(pv.text()));
    }
    if el.child(PSKC_NS, "EncryptedValue").is_some() {
        return Err(format!("an encrypted Data/{name} is not supported"));
    }
    Err(format!("Data/{name} has no PlainValue"))
}

fn secret_value(secret: &Node, container: &Container<'_>) -> Result<Zeroizing<Vec<u8>>, String> {
    if let Some(pv) = secret.child(PSKC_NS, "PlainValue") {
        return base64_decode(pv.text()).ok_or_else(|| "Data/Secret/PlainValue is not valid base64".to_string());
    }
    let Some(ev) = secret.child(PSKC_NS, "EncryptedValue") else {
        return Err("Data/Secret has neither PlainValue nor EncryptedValue".into());
    };
    let Some(psk) = container.psk else {
        let name = container.key_name.as_deref().map(|n| format!(" {}", quoted(n))).unwrap_or_default();
        return Err(format!("Data/Secret/EncryptedValue: the secret is encrypted; the pre-shared key{name} is needed (--psk HEX)"));
    };
    let cipher_value = cipher_value(ev).map_err(|m| format!("Data/Secret/EncryptedValue: {m}"))?;
    match (&container.mac, secret.child(PSKC_NS, "ValueMAC")) {
        (Some((alg, Some(mac_key))), Some(vm)) => {
            let expected = base64_decode(vm.text()).ok_or_else(|| "Data/Secret/ValueMAC is not valid base64".to_string())?;
            if !mac_ok(*alg, mac_key, &cipher_value, &expected) {
                return Err("Data/Secret/ValueMAC does not match: wrong pre-shared key, or the file was altered".into());
            }
        }
        (Some(_), None) => return Err("Data/Secret has no ValueMAC although the KeyContainer has a MACMethod".into()),
        (None, Some(_)) => return Err("Data/Secret/ValueMAC present but the KeyContainer has no MACMethod".into()),
        // MACMethod present but its key not decrypted happens only without a PSK, handled above.
        (Some((_, None)), Some(_)) | (None, None) => {}
    }
    decrypt(ev, psk, &cipher_value).map_err(|m| format!("Data/Secret/EncryptedValue: {m}"))
}

/// `xenc:CipherData/xenc:CipherValue`, base64-decoded (IV ‖ ciphertext).
fn cipher_value(enc: &Node) -> Result<Vec<u8>, String> {
    let cv = enc
        .path(&[(XENC_NS, "CipherData"), (XENC_NS, "CipherValue")])
        .ok_or_else(|| "missing xenc:CipherData/xenc:CipherValue".to_string())?;
    base64_decode(cv.text()).map(|v| v.to_vec()).ok_or_else(|| "CipherValue is not valid base64".to_string())
}

/// Decrypts an element holding `xenc:EncryptionMethod` and `xenc:CipherData` (an EncryptedValue or a MACKey).
fn decrypt_value(enc: &Node, psk: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let cv = cipher_value(enc)?;
    decrypt(enc, psk, &cv)
}

fn decrypt(enc: &Node, psk: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let uri = enc.child(XENC_NS, "EncryptionMethod").and_then(|m| m.attr("Algorithm")).map(str::trim).unwrap_or("");
    let key_len = match uri {
        "http://www.w3.org/2001/04/xmlenc#aes128-cbc" => 16,
        "http://www.w3.org/2001/04/xmlenc#aes192-cbc" => 24,
        "http://www.w3.org/2001/04/xmlenc#aes256-cbc" => 32,
        "" => return Err("missing xenc:EncryptionMethod Algorithm".into()),
        other => return Err(format!("unsupported encryption algorithm {} (AES-CBC only)", quoted(other))),
    };
    if psk.len() != key_len {
        return Err(format!("the pre-shared key is {} bytes but {uri} needs {key_len}", psk.len()));
    }
    if data.len() < 32 || !data.chunks_exact(16).remainder().is_empty() {
        return Err("CipherValue is not a 16-byte IV followed by whole AES blocks".into());
    }
    let (iv, ct) = data.split_at(16);
    let plain = match key_len {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(psk, iv).ok().map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(ct)),
        24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(psk, iv).ok().map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(ct)),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(psk, iv).ok().map(|d| d.decrypt_padded_vec_mut::<Pkcs7>(ct)),
    };
    match plain {
        Some(Ok(p)) => Ok(Zeroizing::new(p)),
        Some(Err(_)) => Err("cannot decrypt (bad padding): wrong pre-shared key?".into()),
        None => Err("cannot set up the cipher".into()),
    }
}

fn mac_ok(alg: MacAlg, key: &[u8], data: &[u8], expected: &[u8]) -> bool {
    match alg {
        MacAlg::Sha1 => <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).map(|m| m.chain_update(data).verify_slice(expected).is_ok()),
        MacAlg::Sha256 => <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).map(|m| m.chain_update(data).verify_slice(expected).is_ok()),
    }
    .unwrap_or(false)
}

/// xs:base64Binary: whitespace anywhere, padding optional.
fn base64_decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    const LENIENT: GeneralPurpose =
        GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent));
    let compact: Zeroizing<String> = Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    LENIENT.decode(compact.as_bytes()).ok().map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::BlockEncryptMut;

    const FIG2: &str = include_str!("../tests/data/rfc6030_figure2_hotp.xml");
    const RFC_PSK_XML: &str = include_str!("../tests/data/rfc6030_psk_aes128_hmac_sha1.xml");
    const TOTP_XML: &str = include_str!("../tests/data/totp_plain.xml");
    const PY_XML: &str = include_str!("../tests/data/pskc_aes256_python.xml");
    const CSV: &str = include_str!("../tests/data/tokens.csv");
    const RFC_PSK: [u8; 16] = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12];
    const PY_PSK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const RFC4226_SEED: &[u8] = b"12345678901234567890";

    fn pskc(xml: &str, psk: Option<&[u8]>) -> Result<Vec<ImportedToken>, ImportError> {
        parse(xml.as_bytes(), None, psk)
    }

    fn pskc_err(xml: &str, psk: Option<&[u8]>) -> ImportError {
        match pskc(xml, psk) {
            Ok(t) => panic!("accepted: {t:?}"),
            Err(e) => e,
        }
    }

    fn csv_err(text: &str) -> ImportError {
        match parse(text.as_bytes(), None, None) {
            Ok(t) => panic!("accepted: {t:?}"),
            Err(e) => e,
        }
    }

    /// A one-key PSKC container around `key` (the inside of `<Key>`), default namespace.
    fn one_key(alg: &str, inner: &str) -> String {
        format!(
            r#"<KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">
<KeyPackage><DeviceInfo><SerialNo>SN-1</SerialNo></DeviceInfo>
<Key Id="K1" Algorithm="{alg}">{inner}</Key></KeyPackage></KeyContainer>"#
        )
    }

    const HOTP: &str = "urn:ietf:params:xml:ns:keyprov:pskc:hotp";
    const FMT6: &str = r#"<AlgorithmParameters><ResponseFormat Length="6" Encoding="DECIMAL"/></AlgorithmParameters>"#;
    const SECRET: &str = "<Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue></Secret>";

    fn encrypt_cbc(key: &[u8], iv: &[u8; 16], plain: &[u8]) -> Vec<u8> {
        let ct = match key.len() {
            16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv).expect("key").encrypt_padded_vec_mut::<Pkcs7>(plain),
            24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(key, iv).expect("key").encrypt_padded_vec_mut::<Pkcs7>(plain),
            _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv).expect("key").encrypt_padded_vec_mut::<Pkcs7>(plain),
        };
        [iv.as_slice(), &ct].concat()
    }

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(b)
    }

    /// An encrypted container made here with the RustCrypto crates (fixed IVs), `bits` AES key size.
    fn encrypted_container(psk: &[u8], seed: &[u8], mac_override: Option<&str>) -> String {
        let bits = psk.len() * 8;
        let mac_key = [0x5au8; 20];
        let enc_mac_key = encrypt_cbc(psk, &[7u8; 16], &mac_key);
        let cv = encrypt_cbc(psk, &[9u8; 16], seed);
        let mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(&mac_key).expect("hmac").chain_update(&cv).finalize().into_bytes();
        let mac = mac_override.map_or_else(|| b64(&mac), str::to_string);
        format!(
            r#"<?xml version="1.0"?>
<x:KeyContainer xmlns:x="urn:ietf:params:xml:ns:keyprov:pskc" xmlns:enc="http://www.w3.org/2001/04/xmlenc#" xmlns:sig="http://www.w3.org/2000/09/xmldsig#" Version="1.0">
 <x:EncryptionKey><sig:KeyName>k</sig:KeyName></x:EncryptionKey>
 <x:MACMethod Algorithm="http://www.w3.org/2000/09/xmldsig#hmac-sha1"><x:MACKey>
  <enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes{bits}-cbc"/>
  <enc:CipherData><enc:CipherValue>{}</enc:CipherValue></enc:CipherData></x:MACKey></x:MACMethod>
 <x:KeyPackage><x:Key Id="RS-1" Algorithm="urn:ietf:params:xml:ns:keyprov:pskc:hotp">
  <x:AlgorithmParameters><x:ResponseFormat Length="6" Encoding="DECIMAL"/></x:AlgorithmParameters>
  <x:Data><x:Secret><x:EncryptedValue>
   <enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes{bits}-cbc"/>
   <enc:CipherData><enc:CipherValue>{}</enc:CipherValue></enc:CipherData></x:EncryptedValue>
   <x:ValueMAC>{mac}</x:ValueMAC></x:Secret>
   <x:Counter><x:PlainValue>17</x:PlainValue></x:Counter></x:Data></x:Key></x:KeyPackage>
</x:KeyContainer>"#,
            b64(&enc_mac_key),
            b64(&cv)
        )
    }

    #[test]
    fn import_detects_the_format() {
        assert_eq!(Format::detect(FIG2.as_bytes()), Format::Pskc);
        assert_eq!(Format::detect(b"\xEF\xBB\xBF \n <x/>"), Format::Pskc);
        assert_eq!(Format::detect(CSV.as_bytes()), Format::Csv);
        assert_eq!(Format::detect(b""), Format::Csv);
    }

    #[test]
    fn import_pskc_rfc6030_figure2_plain_hotp() {
        let t = pskc(FIG2, None).expect("parse");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].psn, "987654321");
        assert_eq!(&t[0].seed[..], RFC4226_SEED);
        assert_eq!(t[0].kind, TokenKind::Hotp { counter: 0 });
        assert_eq!(t[0].digits, 8);
        assert_eq!(t[0].algorithm, Algorithm::Sha1);
        assert!(t[0].location.contains("12345678"), "{}", t[0].location);
        assert!(!format!("{:?}", t[0]).contains("1234567890123"), "Debug must not print the seed");
    }

    #[test]
    fn import_pskc_rfc6030_aes128_hmac_sha1_example() {
        let t = pskc(RFC_PSK_XML, Some(&RFC_PSK)).expect("parse");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].psn, "987654321");
        assert_eq!(&t[0].seed[..], RFC4226_SEED);
        assert_eq!((t[0].kind, t[0].digits), (TokenKind::Hotp { counter: 0 }, 8));
    }

    #[test]
    fn import_pskc_encrypted_needs_the_psk() {
        let e = pskc_err(RFC_PSK_XML, None);
        assert!(e.location.contains("Key \"12345678\""), "{e}");
        assert!(e.message.contains("Pre-shared-key") && e.message.contains("--psk"), "{e}");
    }

    #[test]
    fn import_pskc_wrong_psk_is_refused() {
        let mut wrong = RFC_PSK;
        wrong[15] ^= 1;
        let e = pskc_err(RFC_PSK_XML, Some(&wrong));
        // The MAC key no longer decrypts (bad padding), or if it happens to, the MAC fails.
        assert!(e.location.contains("MACKey") || e.message.contains("ValueMAC does not match"), "{e}");
        let e = pskc_err(RFC_PSK_XML, Some(&[0x12; 32]));
        assert!(e.message.contains("needs 16"), "{e}");
    }

    #[test]
    fn import_pskc_altered_value_mac_is_refused() {
        let xml = RFC_PSK_XML.replace("Su+NvtQfmvfJzF6bmQiJqoLRExc=", "Tu+NvtQfmvfJzF6bmQiJqoLRExc=");
        let e = pskc_err(&xml, Some(&RFC_PSK));
        assert!(e.location.contains("Key \"12345678\""), "{e}");
        assert!(e.message.contains("ValueMAC does not match"), "{e}");
        // Altered ciphertext with the original MAC: refused before decrypting.
        let xml = RFC_PSK_XML.replace("AAECAwQFBgcICQoLDA0OD+cI", "AAECAwQFBgcICQoLDA0OD+cJ");
        assert!(pskc_err(&xml, Some(&RFC_PSK)).message.contains("ValueMAC does not match"));
        // A stripped ValueMAC is no way around the MAC.
        let start = RFC_PSK_XML.find("<pskc:ValueMAC>").expect("ValueMAC");
        let end = RFC_PSK_XML.find("</pskc:ValueMAC>").expect("ValueMAC") + "</pskc:ValueMAC>".len();
        let xml = format!("{}{}", &RFC_PSK_XML[..start], &RFC_PSK_XML[end..]);
        assert!(pskc_err(&xml, Some(&RFC_PSK)).message.contains("no ValueMAC"));
    }

    #[test]
    fn import_pskc_python_generated_aes256_file() {
        let psk = hex::decode(PY_PSK).expect("hex");
        let t = pskc(PY_XML, Some(&psk)).expect("parse");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].psn, "PY-HOTP-1");
        assert_eq!(&t[0].seed[..], RFC4226_SEED);
        assert_eq!((t[0].kind, t[0].digits, t[0].algorithm), (TokenKind::Hotp { counter: 5 }, 6, Algorithm::Sha1));
        assert_eq!(t[1].psn, "PY-TOTP-2");
        assert_eq!(&t[1].seed[..], b"12345678901234567890123456789012");
        assert_eq!((t[1].kind, t[1].digits, t[1].algorithm), (TokenKind::Totp { step: 60 }, 8, Algorithm::Sha256));
        let e = pskc_err(PY_XML, Some(&RFC_PSK));
        assert!(e.message.contains("needs 32") && e.location.contains("MACKey"), "{e}");
        let e = pskc_err(PY_XML, None);
        assert!(e.message.contains("transport-key-7"), "{e}");
    }

    #[test]
    fn import_pskc_rust_encrypted_round_trip() {
        for psk in [vec![0x11u8; 16], vec![0x22u8; 24], vec![0x33u8; 32]] {
            let seed = [0xa5u8; 20];
            let t = pskc(&encrypted_container(&psk, &seed, None), Some(&psk)).expect("parse");
            assert_eq!((t[0].psn.as_str(), &t[0].seed[..], t[0].kind), ("RS-1", &seed[..], TokenKind::Hotp { counter: 17 }));
            let e = pskc_err(&encrypted_container(&psk, &seed, Some("AAAA")), Some(&psk));
            assert!(e.location.starts_with("Key \"RS-1\"") && e.message.contains("ValueMAC does not match"), "{e}");
        }
        // A short decrypted seed is refused like a short plain one.
        let psk = [0x44u8; 16];
        let e = pskc_err(&encrypted_container(&psk, &[1u8; 10], None), Some(&psk));
        assert!(e.message.contains("at least 16 bytes"), "{e}");
    }

    #[test]
    fn import_pskc_totp_and_key_id_as_psn() {
        let t = pskc(TOTP_XML, None).expect("parse");
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].psn.as_str(), t[0].kind, t[0].digits), ("TOTP-0001", TokenKind::Totp { step: 30 }, 6));
        assert_eq!((t[1].psn.as_str(), t[1].kind, t[1].digits), ("TOTP-0002", TokenKind::Totp { step: 60 }, 8));
        assert_eq!(t[1].algorithm, Algorithm::Sha256);
        // TimeInterval absent: 30.
        let xml = one_key("urn:ietf:params:xml:ns:keyprov:pskc:totp", &format!("{FMT6}<Data>{SECRET}</Data>"));
        assert_eq!(pskc(&xml, None).expect("parse")[0].kind, TokenKind::Totp { step: 30 });
    }

    #[test]
    fn import_pskc_malformed_files_name_the_fault() {
        let cases: Vec<(String, &str, &str)> = vec![
            // (document, expected in location, expected in message)
            (FIG2.replace("</Counter>", "</Countr>"), "line 27", "malformed XML"),
            (FIG2.replace("</KeyContainer>", ""), "line", "never closed"),
            ("<KeyContainer xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"".into(), "line 1", "malformed XML"),
            (one_key(HOTP, &format!("{FMT6}<Data><Counter><PlainValue>0</PlainValue></Counter></Data>")), "Key \"K1\"", "missing Data/Secret"),
            (one_key(HOTP, FMT6), "Key \"K1\"", "no Data"),
            (one_key(HOTP, &format!("{FMT6}<Data><Secret/></Data>")), "Key \"K1\"", "neither PlainValue nor EncryptedValue"),
            (one_key(HOTP, &format!("{FMT6}<Data><Secret><PlainValue>MTIz!NDU2</PlainValue></Secret></Data>")), "Key \"K1\"", "not valid base64"),
            (one_key(HOTP, &format!("{FMT6}<Data><Secret><PlainValue>MTIzNDU2Nzg5MA==</PlainValue></Secret></Data>")), "Key \"K1\"", "at least 16 bytes"),
            (one_key("urn:ietf:params:xml:ns:keyprov:pskc:ocra", &format!("{FMT6}<Data>{SECRET}</Data>")), "Key \"K1\"", "unsupported Key Algorithm"),
            (one_key("", &format!("{FMT6}<Data>{SECRET}</Data>")), "Key \"K1\"", "no Algorithm"),
            (one_key(HOTP, &format!("<Data>{SECRET}</Data>")), "Key \"K1\"", "ResponseFormat"),
            (one_key(HOTP, &format!("<AlgorithmParameters><ResponseFormat Length=\"7\"/></AlgorithmParameters><Data>{SECRET}</Data>")), "Key \"K1\"", "6 or 8"),
            (one_key(HOTP, &format!("<AlgorithmParameters><ResponseFormat Length=\"6\" Encoding=\"HEXADECIMAL\"/></AlgorithmParameters><Data>{SECRET}</Data>")), "Key \"K1\"", "DECIMAL only"),
            (one_key(HOTP, &format!("<AlgorithmParameters><Suite>HMAC-MD5</Suite><ResponseFormat Length=\"6\"/></AlgorithmParameters><Data>{SECRET}</Data>")), "Key \"K1\"", "Suite"),
            (one_key(HOTP, &format!("{FMT6}<Data>{SECRET}<Counter><PlainValue>-1</PlainValue></Counter></Data>")), "Key \"K1\"", "Data/Counter"),
            (one_key("urn:ietf:params:xml:ns:keyprov:pskc:totp", &format!("{FMT6}<Data>{SECRET}<TimeInterval><PlainValue>45</PlainValue></TimeInterval></Data>")), "Key \"K1\"", "30 or 60"),
            (one_key(HOTP, &format!("{FMT6}<Data><Secret><PlainValue>MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=</PlainValue><ValueMAC>AAAA</ValueMAC></Secret></Data>")), "", ""),
            ("<KeyContainer xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"><KeyPackage/></KeyContainer>".into(), "KeyPackage 1", "no Key"),
            ("<KeyContainer xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\"/>".into(), "file", "no token"),
            ("<KeyContainer xmlns=\"urn:example\"/>".into(), "line 1", "not a PSKC KeyContainer"),
            ("<p:KeyContainer/>".into(), "line 1", "undeclared namespace prefix"),
            (FIG2.replace("<SerialNo>987654321</SerialNo>", "").replace("Id=\"12345678\"", ""), "KeyPackage 1", "no DeviceInfo/SerialNo and no Key Id"),
            (FIG2.replace("987654321", "&unknown;"), "line", "unknown entity"),
            (FIG2.replace("<KeyPackage>", "<KeyPackage><Key/>"), "", "only one Key"),
        ];
        for (doc, loc, msg) in cases {
            match pskc(&doc, None) {
                Ok(t) if msg.is_empty() => assert_eq!(t.len(), 1, "plain value with a stray ValueMAC is accepted"),
                Ok(t) => panic!("accepted ({msg}): {t:?}"),
                Err(e) => {
                    assert!(e.location.contains(loc) && e.message.contains(msg), "want {loc:?}/{msg:?}, got {e}");
                    assert!(!e.to_string().contains('\n'), "{e}");
                }
            }
        }
    }

    #[test]
    fn import_pskc_refuses_doctype_and_entity_bombs() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<KeyContainer xmlns="urn:ietf:params:xml:ns:keyprov:pskc"><KeyPackage><Key Id="&lol2;"/></KeyPackage></KeyContainer>"#;
        let e = pskc_err(bomb, None);
        assert_eq!(e.location, "line 2");
        assert!(e.message.contains("DOCTYPE"), "{e}");
        let ext = "<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><KeyContainer/>";
        assert!(pskc_err(ext, None).message.contains("DOCTYPE"));
    }

    #[test]
    fn import_refuses_huge_and_deep_files() {
        let big = vec![b' '; MAX_FILE_BYTES + 1];
        assert!(parse(&big, Some(Format::Pskc), None).expect_err("big").message.contains("larger than 10 MB"));
        assert!(parse(&big, Some(Format::Csv), None).expect_err("big").message.contains("larger than 10 MB"));
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(pskc_err(&deep, None).message.contains("nested deeper"));
    }

    #[test]
    fn import_pskc_duplicate_serial_is_refused() {
        let pkg = |id: &str| {
            format!("<KeyPackage><DeviceInfo><SerialNo>DUP</SerialNo></DeviceInfo><Key Id=\"{id}\" Algorithm=\"{HOTP}\">{FMT6}<Data>{SECRET}</Data></Key></KeyPackage>")
        };
        let xml = format!("<KeyContainer xmlns=\"urn:ietf:params:xml:ns:keyprov:pskc\">{}{}</KeyContainer>", pkg("a"), pkg("b"));
        let e = pskc_err(&xml, None);
        assert!(e.location.contains("Key \"b\"") && e.message.contains("\"DUP\" appears twice"), "{e}");
    }

    #[test]
    fn import_pskc_entities_and_whitespace_in_values() {
        let xml =
            FIG2.replace("987654321", "98&#55;65&amp;4321").replace("MTIzNDU2Nzg5MDEyMzQ1Njc4OTA=", "MTIzNDU2\n  Nzg5MDEy\tMzQ1Njc4OTA");
        let t = pskc(&xml, None).expect("parse");
        assert_eq!(t[0].psn, "98765&4321");
        assert_eq!(&t[0].seed[..], RFC4226_SEED);
    }

    #[test]
    fn import_csv_good_file() {
        let t = parse(CSV.as_bytes(), None, None).expect("parse");
        assert_eq!(t.len(), 4);
        assert_eq!(
            (t[0].psn.as_str(), &t[0].seed[..], t[0].kind, t[0].digits),
            ("CSV-HOTP-1", RFC4226_SEED, TokenKind::Hotp { counter: 0 }, 6)
        );
        assert_eq!(t[0].location, "line 4");
        assert_eq!((t[1].kind, t[1].digits, t[1].algorithm), (TokenKind::Hotp { counter: 42 }, 8, Algorithm::Sha1));
        assert_eq!((t[2].kind, t[2].digits, t[2].algorithm), (TokenKind::Totp { step: 30 }, 8, Algorithm::Sha256));
        assert_eq!(t[2].seed.len(), 32);
        assert_eq!((t[3].kind, t[3].algorithm, t[3].seed.len()), (TokenKind::Totp { step: 60 }, Algorithm::Sha512, 64));
        // CRLF, BOM, quotes, no header.
        let t = parse(b"\xEF\xBB\xBF\"A1\",\"3132333435363738393031323334353637383930\",totp,6,30\r\n", None, None).expect("parse");
        assert_eq!((t[0].psn.as_str(), t[0].kind), ("A1", TokenKind::Totp { step: 30 }));
        // A first line starting with "serial" but holding a hex seed is a token, not a header.
        let t = parse(b"serial-9,3132333435363738393031323334353637383930,hotp,6,3\n", None, None).expect("parse");
        assert_eq!(t[0].psn, "serial-9");
    }

    #[test]
    fn import_csv_bad_lines_name_the_line() {
        let good = "A,3132333435363738393031323334353637383930,hotp,6,0";
        let cases = [
            ("A,313233343536373839303132333435363738393,hotp,6,0", "even number"),
            ("A,zz323334353637383930313233343536373839zz,hotp,6,0", "hexadecimal"),
            ("A,31323334353637383930,hotp,6,0", "at least 16 bytes"),
            ("A,3132333435363738393031323334353637383930,motp,6,0", "hotp or totp"),
            ("A,3132333435363738393031323334353637383930,hotp,7,0", "6 or 8"),
            ("A,3132333435363738393031323334353637383930,hotp,6,-1", "counter"),
            ("A,3132333435363738393031323334353637383930,hotp,6,9223372036854775808", "counter"),
            ("A,3132333435363738393031323334353637383930,totp,6,45", "30 or 60"),
            ("A,3132333435363738393031323334353637383930,totp,6,30,MD5", "SHA1, SHA256 or SHA512"),
            ("A,3132333435363738393031323334353637383930,hotp,6", "5 or 6"),
            ("A,3132333435363738393031323334353637383930,hotp,6,0,SHA1,x", "5 or 6"),
            (",3132333435363738393031323334353637383930,hotp,6,0", "empty"),
        ];
        for (bad, msg) in cases {
            let text = format!(
                "# tokens\nserial,seed,type,digits,counter\nB,3132333435363738393031323334353637383930,totp,6,30\n\n{bad}\n{good}\n"
            );
            let e = csv_err(&text);
            assert_eq!(e.location, "line 5", "{bad}: {e}");
            assert!(e.message.contains(msg), "{bad}: want {msg:?}, got {e}");
            assert!(!e.message.contains("3132333435"), "a seed leaked into {e}");
        }
        let e = csv_err(&format!("{good}\n#x\n{good}\n"));
        assert_eq!(e.location, "line 3");
        assert!(e.message.contains("\"A\" appears twice (first at line 1)") || e.message.contains("appears twice"), "{e}");
        assert_eq!(csv_err("# only comments\n\n").to_string(), "file: holds no token");
        assert_eq!(csv_err("serial,seed_hex,type,digits,counter_or_step\n").location, "file");
        assert_eq!(csv_err("# x\nA,\u{0}\n\u{ff}").location, "line 2");
        assert_eq!(parse(b"#\n#\nA,\xff\n", None, None).expect_err("utf8").to_string(), "line 3: the file is not valid UTF-8");
        // A header later in the file is just a bad line.
        assert_eq!(csv_err(&format!("{good}\nserial,seed_hex,type,digits,counter_or_step\n")).location, "line 2");
    }

    /// No input makes the parsers panic: every prefix of every sample, and deterministic mutations.
    #[test]
    fn import_never_panics() {
        let rfc_psk = RFC_PSK.to_vec();
        let py_psk = hex::decode(PY_PSK).expect("hex");
        let samples: [(&str, Option<&[u8]>); 5] =
            [(FIG2, None), (RFC_PSK_XML, Some(&rfc_psk)), (TOTP_XML, None), (PY_XML, Some(&py_psk)), (CSV, None)];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (sample, psk) in samples {
            let bytes = sample.as_bytes();
            for cut in 0..bytes.len() {
                let _ = parse(&bytes[..cut], None, psk);
            }
            for _ in 0..2000 {
                let mut m = bytes.to_vec();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() as usize) % m.len();
                    m[i] = (next() & 0xff) as u8;
                }
                let _ = parse(&m, None, psk);
                let _ = parse(&m, Some(Format::Pskc), psk);
                let _ = parse(&m, Some(Format::Csv), psk);
            }
        }
    }
}
