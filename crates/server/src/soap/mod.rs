//! The WCF/SOAP front door (docs/api.md, "SOAP (WCF)"): SOAP 1.1 as WCF's basicHttpBinding speaks it,
//! document/literal wrapped, at `/AuthServerWCFService/SurePassAuthServerWCFService.svc`.
//!
//! * `POST`: the envelope is parsed ([`xml::parse_request`]); the Body's wrapper element names the
//!   WCF method, which the description ([`ops`]) maps to a JSON `type` and whose parameters it
//!   renames to the canonical JSON fields. Then [`tessera_core::Service::handle`] runs, the very
//!   same call the JSON front door makes, and the outcome is rendered as `<Method>Result` in one
//!   place ([`xml::result_envelope`]): HTTP 200, `text/xml; charset=utf-8`.
//! * Errors of the operation (unknown user, missing parameter = 9102, ...) are normal results with
//!   a non-zero `ErrorCode`. Only a message that cannot be dispatched is a SOAP 1.1 Fault
//!   (HTTP 500 with the Fault body, as WCF answers): not UTF-8 / not well-formed XML, a DOCTYPE,
//!   exceeded limits, not a SOAP 1.1 envelope, no Body, an unknown operation, a SOAPAction that
//!   names another operation than the Body (an empty `""` or absent SOAPAction is accepted), a
//!   parameter with child elements or given twice. A body over 64 KiB is HTTP 413 with a Fault
//!   (sent after reading on up to 1 MiB, so that a client still writing can read it); a body not
//!   received within the body time limit is HTTP 408 with a Fault.
//! * `GET ?wsdl` / `?singleWsdl`: the WSDL ([`wsdl::document`]) whose `soap:address` is built from
//!   the request's `Host` (and `X-Forwarded-Proto`); a plain `GET` gets a short help page.
//!
//! Namespaces: target namespace `http://tempuri.org/`, port type `ISurePassAuthServerWCFService`,
//! data contracts in `[soap] data_contract_namespace` (default
//! `http://schemas.datacontract.org/2004/07/SurePassID.AuthServer`, [`ops::DC_NS`]), in the WSDL
//! and in every reply alike.
//!
//! `ErrorMsg` of a successful call is `OK` on every method ([`OK_MESSAGE`]), also for the methods
//! whose JSON twin answers `""` (the FIDO operations): a WCF client sees one convention.

pub mod ops;
pub mod wsdl;
pub mod xml;

use crate::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tessera_core::error::code;
use tessera_core::params::Params;
use tessera_core::RequestCtx;
use xml::{Fault, ParamValue};

pub const PATH: &str = "/AuthServerWCFService/SurePassAuthServerWCFService.svc";
pub const BODY_LIMIT: usize = crate::json_api::BODY_LIMIT;
const XML_CONTENT_TYPE: &str = "text/xml; charset=utf-8";
/// `ErrorMsg` of every successful SOAP call.
pub const OK_MESSAGE: &str = "OK";

pub async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let data_contract_ns = state.service.settings.soap.data_contract_namespace.as_str();
    if method == Method::GET || method == Method::HEAD {
        return get(&uri, &headers, data_contract_ns);
    }
    if method != Method::POST {
        let fault = Fault::client(format!("HTTP method {} is not allowed; POST a SOAP 1.1 envelope", xml::clip(method.as_str())));
        let mut r = xml_response(StatusCode::METHOD_NOT_ALLOWED, xml::fault_envelope(&fault));
        r.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static("GET, POST"));
        return r;
    }
    let started = Instant::now();
    let timeout = crate::body::timeout_of(&state.service.settings);
    let bytes = match crate::body::read_limited(&headers, body, timeout).await {
        Ok(b) => b,
        Err(err) => {
            let (status, e) = crate::json_api::body_error(err, timeout);
            state.metrics.request("soap", "unknown", e.code, started.elapsed());
            return xml_response(status, xml::fault_envelope(&Fault::client(e.message)));
        }
    };
    let (op, params) = match dispatch(&headers, &bytes) {
        Ok(x) => x,
        Err(fault) => {
            state.metrics.request("soap", "unknown", code::MALFORMED_REQUEST, started.elapsed());
            return xml_response(StatusCode::INTERNAL_SERVER_ERROR, xml::fault_envelope(&fault));
        }
    };
    let outcome = state.service.handle(Some(op.json_type), params, &RequestCtx { source: peer.ip().to_string() }).await;
    state.metrics.request("soap", outcome.op.map(|o| o.name).unwrap_or("unknown"), outcome.code(), started.elapsed());
    let reply = crate::json_api::envelope(&outcome.reply_type, &outcome.result, OK_MESSAGE);
    let reply = match reply {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    xml_response(StatusCode::OK, xml::result_envelope(op, &reply, data_contract_ns))
}

/// Parses the envelope, finds the operation, checks the SOAPAction and maps the parameters.
/// Public for the fuzz targets (`fuzz/`).
pub fn dispatch(headers: &HeaderMap, bytes: &[u8]) -> Result<(&'static ops::Operation, Params), Fault> {
    let request = xml::parse_request(bytes)?;
    let op = match ops::lookup(&request.operation) {
        Some(op) if request.namespace == ops::TNS => op,
        _ => {
            return Err(Fault::client(format!(
                "unknown operation {{{}}}{}; the operations are in namespace {}",
                xml::clip(&request.namespace),
                xml::clip(&request.operation),
                ops::TNS
            )))
        }
    };
    check_action(headers, op)?;
    let mut params = Params::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &request.params {
        let Some(param) = op.param(name) else { continue };
        if seen.contains(&param.name) {
            return Err(Fault::client(format!("parameter {} is given more than once", param.name)));
        }
        seen.push(param.name);
        match value {
            ParamValue::Text(text) => params.set(param.json, param.json_value(text)),
            ParamValue::Nil => {}
            ParamValue::Complex => return Err(Fault::client(format!("parameter {} must hold text, not elements", param.name))),
        }
    }
    Ok((op, params))
}

/// The SOAPAction header, if present and not empty, must name the Body's operation.
fn check_action(headers: &HeaderMap, op: &ops::Operation) -> Result<(), Fault> {
    let Some(raw) = headers.get("soapaction") else { return Ok(()) };
    let raw = raw.to_str().map_err(|_| Fault::client("the SOAPAction header is not ASCII"))?.trim();
    let action = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw).trim();
    if action.is_empty() || action == ops::soap_action(op.method) {
        return Ok(());
    }
    Err(Fault::client(format!(
        "SOAPAction {} does not match the operation {} in the Body (expected {})",
        xml::clip(action),
        op.method,
        ops::soap_action(op.method)
    )))
}

fn get(uri: &Uri, headers: &HeaderMap, data_contract_ns: &str) -> Response {
    let key = uri.query().map(|q| q.split('&').next().unwrap_or("").split('=').next().unwrap_or("").to_ascii_lowercase());
    match key.as_deref() {
        Some("wsdl") | Some("singlewsdl") => xml_response(StatusCode::OK, wsdl::document(&endpoint_url(headers), data_contract_ns)),
        None | Some("") => {
            let url = xml::escape(&endpoint_url(headers));
            let page = format!(
                "<!DOCTYPE html>\n<html><head><title>{0}</title></head><body><h1>{0}</h1>\
                 <p>SOAP 1.1 endpoint (basicHttpBinding). The service description: <a href=\"{1}?wsdl\">{1}?wsdl</a> \
                 (also <a href=\"{1}?singleWsdl\">?singleWsdl</a>).</p></body></html>\n",
                ops::SERVICE_NAME,
                url
            );
            (StatusCode::OK, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
        }
        Some(_) => {
            (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "unknown query; use ?wsdl or ?singleWsdl\n")
                .into_response()
        }
    }
}

/// The endpoint URL as the caller reached it: `X-Forwarded-Proto` (http/https) + `Host`.
/// A Host with anything but host-name characters is replaced by `localhost`.
pub fn endpoint_url(headers: &HeaderMap) -> String {
    let scheme = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).map(|s| s.trim().to_ascii_lowercase()) {
        Some(s) if s == "https" => "https",
        _ => "http",
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|h| !h.is_empty() && h.len() <= 255 && h.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c)))
        .unwrap_or("localhost");
    format!("{scheme}://{host}{PATH}")
}

fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, XML_CONTENT_TYPE)], body).into_response()
}
