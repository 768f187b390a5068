//! The JSON front door: `POST` (or `GET` with a body) at `/AuthServer/REST/U2F/U2FServer.aspx`.
//!
//! Turns the body into [`Params`] (lenient: trailing commas, aliases, any scalar form), calls
//! [`Service::handle`], and renders the envelope `{"type","errorCode","errorMessage",...}` in
//! exactly one place ([`envelope`]). Every request that reaches here gets HTTP 200 and the
//! envelope, except a body over 64 KiB (413, still with the envelope), a body that did not arrive
//! within the body time limit (408) or could not be read (400), each still with the envelope.

use crate::lenient::strip_trailing_commas;
use crate::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tessera_core::error::{code, ApiError};
use tessera_core::params::Params;
use tessera_core::{Outcome, RequestCtx};

pub const PATH: &str = "/AuthServer/REST/U2F/U2FServer.aspx";
pub const BODY_LIMIT: usize = crate::body::BODY_LIMIT;

pub async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if method != Method::POST && method != Method::GET {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST, GET")], "").into_response();
    }
    let started = Instant::now();
    let timeout = crate::body::timeout_of(&state.service.settings);
    let bytes = match crate::body::read_limited(&headers, body, timeout).await {
        Ok(b) => b,
        Err(err) => {
            let (status, e) = body_error(err, timeout);
            state.metrics.request("json", "unknown", e.code, started.elapsed());
            return json_response(status, envelope("", &Err(e), ""));
        }
    };
    let (type_name, parsed) = parse(&bytes);
    let outcome = match parsed {
        Ok(params) => state.service.handle(type_name.as_deref(), params, &RequestCtx { source: peer.ip().to_string() }).await,
        Err(e) => Outcome { reply_type: type_name.clone().unwrap_or_default(), result: Err(e), ok_message: "OK", op: None },
    };
    let op_label = outcome.op.map(|o| o.name).unwrap_or("unknown");
    state.metrics.request("json", op_label, outcome.code(), started.elapsed());
    json_response(StatusCode::OK, envelope(&outcome.reply_type, &outcome.result, outcome.ok_message))
}

/// The HTTP status and error of a body that was not read (docs/api.md, "HTTP status").
pub fn body_error(err: crate::body::BodyError, timeout: std::time::Duration) -> (StatusCode, ApiError) {
    use crate::body::BodyError;
    match err {
        BodyError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::new(code::REQUEST_TOO_LARGE, format!("request body larger than {} KiB", BODY_LIMIT / 1024)),
        ),
        BodyError::TimedOut => (
            StatusCode::REQUEST_TIMEOUT,
            ApiError::new(code::REQUEST_TIMEOUT, format!("request body not received within {} s", timeout.as_secs())),
        ),
        BodyError::Unreadable => {
            (StatusCode::BAD_REQUEST, ApiError::new(code::MALFORMED_REQUEST, "request body could not be read (connection failed)"))
        }
    }
}

/// Parses a body into (type, params). Malformed input is a 9101 with a precise message.
/// Public for the fuzz targets (`fuzz/`).
pub fn parse(bytes: &[u8]) -> (Option<String>, Result<Params, ApiError>) {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => return (None, Err(ApiError::new(code::MALFORMED_REQUEST, "request body is not valid UTF-8"))),
    };
    if text.trim().is_empty() {
        return (None, Err(ApiError::new(code::MALFORMED_REQUEST, "request body is empty; expected a JSON object")));
    }
    // Strict JSON first (no copy); trailing commas only make the lenient second attempt.
    let parsed = serde_json::from_str(text).or_else(|_| serde_json::from_str(&strip_trailing_commas(text)));
    let value: Value = match parsed {
        Ok(v) => v,
        Err(e) => {
            return (
                None,
                Err(ApiError::new(code::MALFORMED_REQUEST, format!("malformed JSON at line {} column {}", e.line(), e.column()))),
            );
        }
    };
    let Value::Object(map) = value else {
        return (None, Err(ApiError::new(code::MALFORMED_REQUEST, "request body must be a JSON object")));
    };
    let type_name = match map.get("type") {
        Some(Value::String(s)) => Some(s.trim().to_string()),
        Some(Value::Null) | None => None,
        Some(_) => return (None, Err(ApiError::invalid("type", "expected a string"))),
    };
    (type_name, Ok(Params::from_json(map)))
}

/// The one place a JSON reply is shaped.
pub fn envelope(reply_type: &str, result: &Result<Map<String, Value>, ApiError>, ok_message: &str) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), Value::String(reply_type.to_string()));
    match result {
        Ok(fields) => {
            m.insert("errorCode".into(), Value::from(0));
            m.insert("errorMessage".into(), Value::String(ok_message.to_string()));
            for (k, v) in fields {
                m.insert(k.clone(), v.clone());
            }
        }
        Err(e) => {
            m.insert("errorCode".into(), Value::from(e.code));
            m.insert("errorMessage".into(), Value::String(e.message.clone()));
        }
    }
    Value::Object(m)
}

pub fn json_response(status: StatusCode, v: Value) -> Response {
    let body = serde_json::to_vec(&v).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}
