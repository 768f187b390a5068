//! SOAP 1.1 envelopes: reading a request, writing a result or a Fault.
//!
//! Reading uses quick-xml's namespace-aware reader: prefixes are arbitrary, elements are matched
//! on namespace URI + local name. The envelope is `{soap-env}Envelope`, an optional
//! `{soap-env}Header`, then `{soap-env}Body` whose first element is the operation wrapper; the
//! wrapper's children are the parameters, matched by local name. Whatever is not a
//! well-formed, UTF-8, DTD-free SOAP 1.1 envelope within the limits below is a [`Fault`]:
//! a DOCTYPE (entity-expansion bombs) or any entity other than the five predefined ones is
//! refused before anything is expanded, nesting deeper than [`MAX_DEPTH`], more than
//! [`MAX_ELEMENTS`] elements or [`MAX_ATTRIBUTES`] attributes on one element are refused too.
//! Parsing is one linear pass over at most 64 KiB, so it cannot hang.
//!
//! Writing produces WCF's shape byte for byte: no XML declaration, `s:` for the envelope, the
//! response wrapper in the default namespace `http://tempuri.org/`, data-contract members
//! prefixed `a:` and nils as `i:nil="true"`.

use super::ops::{ComplexType, Member, MemberType, Operation, Xsd, TNS};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use quick_xml::XmlVersion;
use serde_json::{Map, Value};
use std::fmt::Write as _;

pub const SOAP11_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12_ENV: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Deepest element nesting accepted (WCF's default reader quota is 32 as well).
pub const MAX_DEPTH: usize = 32;
/// Most elements in one envelope.
pub const MAX_ELEMENTS: usize = 4096;
/// Most attributes (namespace declarations included) on one element.
pub const MAX_ATTRIBUTES: usize = 64;
/// Most namespace bindings in scope at once.
const MAX_NAMESPACE_BINDINGS: usize = 256;

/// SOAP 1.1 fault codes used by Tessera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// The request is at fault (malformed, unknown operation, ...).
    Client,
    /// The envelope is not SOAP 1.1.
    VersionMismatch,
    /// A header marked mustUnderstand="1" that Tessera does not understand.
    MustUnderstand,
}

impl FaultCode {
    fn qname(self) -> &'static str {
        match self {
            FaultCode::Client => "s:Client",
            FaultCode::VersionMismatch => "s:VersionMismatch",
            FaultCode::MustUnderstand => "s:MustUnderstand",
        }
    }
}

/// A SOAP Fault: a code and a message safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub code: FaultCode,
    pub message: String,
}

impl Fault {
    pub fn client(message: impl Into<String>) -> Self {
        Fault { code: FaultCode::Client, message: message.into() }
    }
}

/// The content of one parameter element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamValue {
    /// Text content (entities and character references resolved, EOLs normalised).
    Text(String),
    /// `xsi:nil="true"`: the parameter is null (treated as absent).
    Nil,
    /// The element has child elements, which no parameter of this service may have.
    Complex,
}

/// A parsed request: the operation wrapper and its parameters in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Namespace URI of the wrapper element ("" if unqualified).
    pub namespace: String,
    /// Local name of the wrapper element (the WCF method).
    pub operation: String,
    /// (local name, value) of each child of the wrapper.
    pub params: Vec<(String, ParamValue)>,
}

/// Shortens a caller-supplied name for a fault message.
pub fn clip(s: &str) -> String {
    tessera_core::error::display_name(s)
}

/// Where the reader is, by element depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Envelope,
    Header,
    /// Inside a header block or anything that is skipped.
    Skipped,
    Body,
    Operation,
    /// A parameter (index into `params`).
    Param(usize),
    /// Inside a parameter's child element.
    ParamChild,
}

struct Parser {
    stack: Vec<Frame>,
    elements: usize,
    seen_root: bool,
    seen_header: bool,
    seen_body: bool,
    request: Option<Request>,
    /// Text collected for the parameter being read.
    text: String,
}

/// Parses a SOAP 1.1 request envelope.
pub fn parse_request(bytes: &[u8]) -> Result<Request, Fault> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| Fault::client("the request is not UTF-8 encoded XML"))?;
    if text.trim().is_empty() {
        return Err(Fault::client("the request body is empty; expected a SOAP 1.1 envelope"));
    }
    let mut reader = NsReader::from_str(text);
    {
        let cfg = reader.config_mut();
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        cfg.allow_unmatched_ends = false;
        cfg.allow_dangling_amp = false;
        cfg.check_comments = true;
    }
    reader.resolver_mut().set_max_namespace_bindings(MAX_NAMESPACE_BINDINGS);
    let mut p = Parser {
        stack: Vec::new(),
        elements: 0,
        seen_root: false,
        seen_header: false,
        seen_body: false,
        request: None,
        text: String::new(),
    };
    loop {
        let position = reader.buffer_position();
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (namespace_of(&ns)?, event),
            Err(e) => {
                return Err(Fault::client(format!("the request is not well-formed XML (near byte {position}): {}", clip(&e.to_string()))))
            }
        };
        match event {
            Event::Start(start) => {
                check_attributes(&reader, &start)?;
                let local = start.local_name().into_inner().to_string();
                let nil = has_nil(&reader, &start);
                let must_understand = must_understand(&reader, &start);
                p.start(ns, local, nil, must_understand)?;
            }
            Event::End(_) => p.end()?,
            Event::Empty(_) => return Err(Fault::client("unexpected empty element")),
            Event::Text(t) => p.text(&t.xml10_content())?,
            Event::CData(c) => p.text(&c.xml10_content())?,
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match predefined_entity(&r) {
                        Some(s) => s.to_string(),
                        None => {
                            return Err(Fault::client(format!(
                                "undefined entity &{}; (only the five predefined XML entities are allowed)",
                                clip(&r)
                            )))
                        }
                    },
                    Err(_) => return Err(Fault::client(format!("invalid character reference &{};", clip(&r)))),
                };
                p.text(&resolved)?;
            }
            Event::DocType(_) => return Err(Fault::client("a DOCTYPE / DTD is not allowed in a SOAP message")),
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(|_| Fault::client("malformed XML declaration"))?;
                    let enc = enc.to_ascii_lowercase();
                    if enc != "utf-8" && enc != "utf8" {
                        return Err(Fault::client(format!("unsupported encoding {}; use UTF-8", clip(&enc))));
                    }
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => return p.finish(),
        }
    }
}

fn namespace_of(ns: &ResolveResult<'_>) -> Result<String, Fault> {
    match ns {
        ResolveResult::Bound(n) => Ok(n.into_inner().to_string()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(prefix) => Err(Fault::client(format!("undeclared namespace prefix {}", clip(prefix)))),
    }
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    match name {
        "lt" => Some("<"),
        "gt" => Some(">"),
        "amp" => Some("&"),
        "apos" => Some("'"),
        "quot" => Some("\""),
        _ => None,
    }
}

/// Every attribute must be well-formed; their number is limited.
fn check_attributes(reader: &NsReader<&[u8]>, start: &BytesStart<'_>) -> Result<(), Fault> {
    let mut count = 0;
    for attr in start.attributes() {
        let attr = attr.map_err(|e| Fault::client(format!("malformed attribute: {}", clip(&e.to_string()))))?;
        count += 1;
        if count > MAX_ATTRIBUTES {
            return Err(Fault::client(format!("more than {MAX_ATTRIBUTES} attributes on one element")));
        }
        if let (ResolveResult::Unknown(prefix), _) = reader.resolver().resolve_attribute(attr.key) {
            return Err(Fault::client(format!("undeclared namespace prefix {}", clip(&prefix))));
        }
        attr.normalized_value(XmlVersion::Implicit1_0).map_err(|_| Fault::client("malformed attribute value (undefined entity?)"))?;
    }
    Ok(())
}

/// The value of the attribute `{ns}local`, if present.
fn attribute(reader: &NsReader<&[u8]>, start: &BytesStart<'_>, ns: &str, local: &str) -> Option<String> {
    start.attributes().flatten().find_map(|a| match reader.resolver().resolve_attribute(a.key) {
        (ResolveResult::Bound(n), l) if n.into_inner() == ns && l.into_inner() == local => {
            a.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned())
        }
        _ => None,
    })
}

fn is_true(v: Option<String>) -> bool {
    matches!(v.as_deref().map(str::trim), Some("true") | Some("1"))
}

fn has_nil(reader: &NsReader<&[u8]>, start: &BytesStart<'_>) -> bool {
    is_true(attribute(reader, start, XSI, "nil"))
}

fn must_understand(reader: &NsReader<&[u8]>, start: &BytesStart<'_>) -> bool {
    is_true(attribute(reader, start, SOAP11_ENV, "mustUnderstand"))
}

impl Parser {
    fn start(&mut self, ns: String, local: String, nil: bool, must_understand: bool) -> Result<(), Fault> {
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(Fault::client(format!("more than {MAX_ELEMENTS} elements in the message")));
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(Fault::client(format!("elements nested deeper than {MAX_DEPTH} levels")));
        }
        let frame = match self.stack.last().copied() {
            None => {
                if self.seen_root {
                    return Err(Fault::client("more than one root element"));
                }
                self.seen_root = true;
                if local != "Envelope" {
                    return Err(Fault::client(format!("the root element is {}, not a SOAP Envelope", clip(&local))));
                }
                if ns == SOAP12_ENV {
                    return Err(Fault {
                        code: FaultCode::VersionMismatch,
                        message: "SOAP 1.2 is not supported; this endpoint speaks SOAP 1.1 (basicHttpBinding)".into(),
                    });
                }
                if ns != SOAP11_ENV {
                    return Err(Fault {
                        code: FaultCode::VersionMismatch,
                        message: format!("the Envelope is in namespace {:?}, expected {SOAP11_ENV}", clip(&ns)),
                    });
                }
                Frame::Envelope
            }
            Some(Frame::Envelope) => {
                let soap = ns == SOAP11_ENV;
                match local.as_str() {
                    "Header" if soap => {
                        if self.seen_header || self.seen_body {
                            return Err(Fault::client("the Header must come once, before the Body"));
                        }
                        self.seen_header = true;
                        Frame::Header
                    }
                    "Body" if soap => {
                        if self.seen_body {
                            return Err(Fault::client("more than one Body"));
                        }
                        self.seen_body = true;
                        Frame::Body
                    }
                    _ if !self.seen_body => {
                        return Err(Fault::client(format!("unexpected element {} in the Envelope before the Body", clip(&local))))
                    }
                    _ => Frame::Skipped,
                }
            }
            Some(Frame::Header) => {
                if must_understand {
                    return Err(Fault {
                        code: FaultCode::MustUnderstand,
                        message: format!("header {} is marked mustUnderstand but is not understood", clip(&local)),
                    });
                }
                Frame::Skipped
            }
            Some(Frame::Skipped) => Frame::Skipped,
            Some(Frame::Body) => {
                if self.request.is_some() {
                    return Err(Fault::client("the Body must hold exactly one operation element"));
                }
                self.request = Some(Request { namespace: ns, operation: local, params: Vec::new() });
                Frame::Operation
            }
            Some(Frame::Operation) => {
                let Some(req) = self.request.as_mut() else {
                    return Err(Fault::client("internal parser state"));
                };
                req.params.push((local, if nil { ParamValue::Nil } else { ParamValue::Text(String::new()) }));
                self.text.clear();
                Frame::Param(req.params.len() - 1)
            }
            Some(Frame::Param(i)) => {
                if let Some(param) = self.request.as_mut().and_then(|r| r.params.get_mut(i)) {
                    param.1 = ParamValue::Complex;
                }
                Frame::ParamChild
            }
            Some(Frame::ParamChild) => Frame::ParamChild,
        };
        self.stack.push(frame);
        Ok(())
    }

    fn end(&mut self) -> Result<(), Fault> {
        match self.stack.pop() {
            Some(Frame::Param(i)) => {
                if let Some(param) = self.request.as_mut().and_then(|r| r.params.get_mut(i)) {
                    if let ParamValue::Text(t) = &mut param.1 {
                        *t = std::mem::take(&mut self.text);
                    }
                }
                self.text.clear();
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(Fault::client("unexpected end tag")),
        }
    }

    fn text(&mut self, t: &str) -> Result<(), Fault> {
        match self.stack.last() {
            Some(Frame::Param(_)) => {
                self.text.push_str(t);
                Ok(())
            }
            Some(Frame::Skipped) | Some(Frame::Header) | Some(Frame::ParamChild) | Some(Frame::Operation) => Ok(()),
            _ if t.trim().is_empty() => Ok(()),
            None => Err(Fault::client("text outside the root element")),
            Some(_) => Err(Fault::client("unexpected text in the Envelope or Body")),
        }
    }

    fn finish(self) -> Result<Request, Fault> {
        if !self.seen_root {
            return Err(Fault::client("the request holds no XML element; expected a SOAP 1.1 envelope"));
        }
        if !self.stack.is_empty() {
            return Err(Fault::client("the request ends before its elements are closed"));
        }
        if !self.seen_body {
            return Err(Fault::client("the Envelope has no Body"));
        }
        self.request.ok_or_else(|| Fault::client("the Body holds no operation element"))
    }
}

// ---------------------------------------------------------------------------------------------
// writing

/// Escapes text content / attribute values (`&`, `<`, `>`, `"`, and CR so it survives), and
/// replaces characters XML 1.0 cannot carry with U+FFFD, so the reply is always well-formed.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#xD;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const ENVELOPE_OPEN: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>"#;
const ENVELOPE_CLOSE: &str = "</s:Body></s:Envelope>";

/// A SOAP 1.1 Fault envelope.
pub fn fault_envelope(fault: &Fault) -> String {
    format!(
        r#"{ENVELOPE_OPEN}<s:Fault><faultcode>{}</faultcode><faultstring xml:lang="en-US">{}</faultstring></s:Fault>{ENVELOPE_CLOSE}"#,
        fault.code.qname(),
        escape(&fault.message)
    )
}

/// The result envelope of `op` for the flat JSON reply `reply` (errorCode, errorMessage and the
/// operation's fields), rendered as `op.result` in the data-contract namespace `data_contract_ns`
/// with its members in WCF order.
pub fn result_envelope(op: &Operation, reply: &Map<String, Value>, data_contract_ns: &str) -> String {
    let mut out = String::with_capacity(512);
    let m = op.method;
    let dc = escape(data_contract_ns);
    let _ = write!(out, r#"{ENVELOPE_OPEN}<{m}Response xmlns="{TNS}"><{m}Result xmlns:a="{dc}" xmlns:i="{XSI}">"#);
    write_members(&mut out, op.result, reply);
    let _ = write!(out, "</{m}Result></{m}Response>{ENVELOPE_CLOSE}");
    out
}

fn write_members(out: &mut String, ty: &ComplexType, obj: &Map<String, Value>) {
    for member in ty.members {
        write_member(out, member, obj.get(member.json));
    }
}

fn write_nil(out: &mut String, name: &str) {
    let _ = write!(out, r#"<a:{name} i:nil="true"/>"#);
}

fn write_text(out: &mut String, name: &str, text: &str) {
    if text.is_empty() {
        let _ = write!(out, "<a:{name}/>");
    } else {
        let _ = write!(out, "<a:{name}>{}</a:{name}>", escape(text));
    }
}

fn write_member(out: &mut String, member: &Member, value: Option<&Value>) {
    let name = member.name;
    match member.ty {
        MemberType::Scalar(xsd) => match scalar_text(xsd, value) {
            Some(text) => write_text(out, name, &text),
            None => write_nil(out, name),
        },
        MemberType::Array(item) => match value {
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    let _ = write!(out, "<a:{name}/>");
                    return;
                }
                let _ = write!(out, "<a:{name}>");
                for v in items {
                    match v {
                        Value::Object(o) => {
                            let _ = write!(out, "<a:{}>", item.name);
                            write_members(out, item, o);
                            let _ = write!(out, "</a:{}>", item.name);
                        }
                        _ => write_nil(out, item.name),
                    }
                }
                let _ = write!(out, "</a:{name}>");
            }
            _ => write_nil(out, name),
        },
    }
}

/// The text of a scalar member; None = nil. Value types are never nil (WCF writes their
/// default): a missing number is 0, a missing boolean false.
fn scalar_text(xsd: Xsd, value: Option<&Value>) -> Option<String> {
    match xsd {
        Xsd::String => match value? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        },
        Xsd::Short | Xsd::Int | Xsd::Long => Some(integer(value).unwrap_or(0).to_string()),
        Xsd::Boolean => Some(
            match value {
                Some(Value::Bool(b)) => *b,
                Some(v) => integer(Some(v)).unwrap_or(0) != 0,
                None => false,
            }
            .to_string(),
        ),
        Xsd::Enum(e) => {
            let json = match value {
                Some(Value::String(s)) => s.as_str(),
                _ => "",
            };
            e.values.iter().find(|(_, j)| *j == json).or_else(|| e.values.first()).map(|(w, _)| (*w).to_string())
        }
    }
}

fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(body: &str) -> String {
        format!(r#"<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body>{body}</s:Body></s:Envelope>"#)
    }

    #[test]
    fn reads_wrapper_and_params_by_namespace_not_prefix() {
        let xml = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soapenv:Envelope xmlns:soapenv="{SOAP11_ENV}" xmlns:t="http://tempuri.org/" xmlns:xsi="{XSI}">
            <soapenv:Header><x:Trace xmlns:x="urn:x">1</x:Trace></soapenv:Header>
            <soapenv:Body><t:AddUser><t:firstName>A &amp; B &#x41;<![CDATA[<c>]]></t:firstName><lastName/><t:pw xsi:nil="true"/>
            <t:email>a@b</t:email></t:AddUser></soapenv:Body></soapenv:Envelope>"#
        );
        let r = parse_request(xml.as_bytes()).expect("parse");
        assert_eq!(r.namespace, "http://tempuri.org/");
        assert_eq!(r.operation, "AddUser");
        assert_eq!(
            r.params,
            vec![
                ("firstName".into(), ParamValue::Text("A & B A<c>".into())),
                ("lastName".into(), ParamValue::Text(String::new())),
                ("pw".into(), ParamValue::Nil),
                ("email".into(), ParamValue::Text("a@b".into())),
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_a_plain_soap11_envelope() {
        let cases: Vec<(String, FaultCode, &str)> = vec![
            ("not xml at all".into(), FaultCode::Client, "element"),
            (String::new(), FaultCode::Client, "empty"),
            (r#"<!DOCTYPE lolz [<!ENTITY lol "lol">]><lolz>&lol;</lolz>"#.into(), FaultCode::Client, "DOCTYPE"),
            (env("<AddUser xmlns=\"http://tempuri.org/\"><pw>&lol;</pw></AddUser>"), FaultCode::Client, "undefined entity"),
            (env("<a><b></a>"), FaultCode::Client, "well-formed"),
            (env("<a x='1' x='2'/>"), FaultCode::Client, "attribute"),
            (env("<a>&#0;</a>"), FaultCode::Client, "character reference"),
            (format!(r#"<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Body><x/>"#), FaultCode::Client, "ends before"),
            (format!(r#"<s:Envelope xmlns:s="{SOAP11_ENV}"></s:Envelope>"#), FaultCode::Client, "no Body"),
            (env(""), FaultCode::Client, "no operation"),
            (env("<a/><b/>"), FaultCode::Client, "exactly one"),
            (
                r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>"#.into(),
                FaultCode::VersionMismatch,
                "1.2",
            ),
            ("<Envelope><Body><x/></Body></Envelope>".into(), FaultCode::VersionMismatch, "namespace"),
            (env("<p:x/>"), FaultCode::Client, "undeclared"),
            (
                format!(
                    r#"<s:Envelope xmlns:s="{SOAP11_ENV}"><s:Header><h s:mustUnderstand="1"/></s:Header><s:Body><x/></s:Body></s:Envelope>"#
                ),
                FaultCode::MustUnderstand,
                "mustUnderstand",
            ),
            (format!("{}<x/>", env("<a/>")), FaultCode::Client, "root"),
            (env("<a/>").replace("<s:Body>", "<s:Body>junk"), FaultCode::Client, "unexpected text"),
            (format!(r#"<?xml version="1.0" encoding="utf-16"?>{}"#, env("<a/>")), FaultCode::Client, "encoding"),
        ];
        for (xml, code, needle) in cases {
            let f = parse_request(xml.as_bytes()).expect_err(&xml);
            assert_eq!(f.code, code, "{xml}: {f:?}");
            assert!(f.message.contains(needle), "{xml}: {f:?}");
        }
        assert!(parse_request(&[0xff, 0xfe, b'<']).is_err());
    }

    #[test]
    fn limits_depth_and_size() {
        let deep = env(&format!("<op><p>{}{}</p></op>", "<x>".repeat(40), "</x>".repeat(40)));
        assert!(parse_request(deep.as_bytes()).expect_err("deep").message.contains("deeper"));
        let many = env(&format!("<op>{}</op>", "<p/>".repeat(MAX_ELEMENTS + 1)));
        assert!(parse_request(many.as_bytes()).expect_err("many").message.contains("elements"));
        let attrs: String = (0..MAX_ATTRIBUTES + 1).map(|i| format!(" a{i}=\"1\"")).collect();
        let wide = env(&format!("<op><p{attrs}/></op>"));
        assert!(parse_request(wide.as_bytes()).expect_err("attrs").message.contains("attributes"));
        // a parameter with child elements is reported as complex, not as its text
        let r = parse_request(env("<op><p>a<q>b</q></p></op>").as_bytes()).expect("complex");
        assert_eq!(r.params, vec![("p".into(), ParamValue::Complex)]);
    }

    #[test]
    fn escapes_and_never_writes_invalid_characters() {
        assert_eq!(escape("a<b>&\"c\"\r\n\t\u{1}"), "a&lt;b&gt;&amp;&quot;c&quot;&#xD;\n\t\u{FFFD}");
        let f = fault_envelope(&Fault::client("bad <x>"));
        assert!(f.contains("<faultcode>s:Client</faultcode>") && f.contains("bad &lt;x&gt;"), "{f}");
    }
}
