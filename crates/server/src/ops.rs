//! Operations routes: `/healthz` (process up), `/readyz` (database reachable), `/metrics`
//! (Prometheus text), `/openapi.json` (OpenAPI 3.1 of the JSON API, generated from the catalogue).

use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tessera_core::catalog::{self, Kind};
use tessera_core::error::CODE_TABLE;

pub async fn healthz() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"ok"}"#).into_response()
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match tokio::time::timeout(std::time::Duration::from_secs(3), state.service.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"ready"}"#).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "application/json")], r#"{"status":"database unreachable"}"#)
            .into_response(),
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

pub async fn openapi() -> Response {
    crate::json_api::json_response(StatusCode::OK, openapi_document())
}

fn kind_schema(k: Kind) -> Value {
    match k {
        Kind::Str => json!({"type": "string"}),
        Kind::Int => json!({"oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^-?[0-9]+$"}, {"type": "boolean"}]}),
        Kind::Bool => {
            json!({"oneOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}, {"type": "string", "enum": ["true", "false", "0", "1", "yes", "no"]}]})
        }
        Kind::Json => json!({"oneOf": [{"type": "object"}, {"type": "string", "description": "The same object serialised as JSON text."}]}),
    }
}

/// The OpenAPI 3.1 document: one request schema per `type`, discriminated on `type`.
pub fn openapi_document() -> Value {
    let mut schemas = Map::new();
    let mut one_of = Vec::new();
    let mut mapping = Map::new();
    for op in catalog::operations() {
        let mut props = Map::new();
        let mut type_names = vec![op.name];
        type_names.extend_from_slice(op.aliases);
        props.insert("type".into(), json!({"type": "string", "enum": type_names}));
        props.insert("spAccountLoginName".into(), json!({"type": "string"}));
        props.insert("spAccountLoginKey".into(), json!({"type": "string"}));
        let mut required = vec!["type", "spAccountLoginName", "spAccountLoginKey"];
        for f in op.fields {
            let mut s = kind_schema(f.kind);
            if let Value::Object(m) = &mut s {
                m.insert("description".into(), Value::String(f.doc.to_string()));
            }
            props.insert(f.name.to_string(), s);
            if f.required {
                required.push(f.name);
            }
        }
        let schema_name = format!("Request_{}", op.name);
        schemas
            .insert(schema_name.clone(), json!({"type": "object", "description": op.summary, "properties": props, "required": required}));
        let reference = format!("#/components/schemas/{schema_name}");
        one_of.push(json!({"$ref": reference}));
        for t in type_names {
            mapping.insert(t.to_string(), Value::String(reference.clone()));
        }
    }
    let codes: Vec<Value> = CODE_TABLE.iter().map(|(c, n, d)| json!({"code": c, "name": n, "description": d})).collect();
    schemas.insert(
        "Envelope".into(),
        json!({
            "type": "object",
            "required": ["type", "errorCode", "errorMessage"],
            "properties": {
                "type": {"type": "string", "description": "The type sent (pre_enroll replies u2f_register_request, pre_sign u2f_sign_request)."},
                "errorCode": {"type": "integer", "enum": CODE_TABLE.iter().map(|c| c.0).collect::<Vec<_>>()},
                "errorMessage": {"type": "string"}
            },
            "additionalProperties": true,
            "x-error-codes": codes
        }),
    );
    let request = json!({"oneOf": one_of, "discriminator": {"propertyName": "type", "mapping": mapping}});
    let op_doc = |summary: &str| {
        json!({
            "summary": summary,
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Request"}}}},
            "responses": {
                "200": {"description": "The envelope (errorCode 0 = success).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
                "413": {"description": "Body over 64 KiB (errorCode 9104).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
                "408": {"description": "Body not received within [server] body_timeout_seconds (errorCode 9145).", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}
            }
        })
    };
    schemas.insert("Request".into(), request);
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Tessera (SurePassID-compatible JSON API)", "version": env!("CARGO_PKG_VERSION")},
        "paths": {
            crate::json_api::PATH: {
                "post": op_doc("Every operation: the body's type selects it."),
                "get": op_doc("Same as POST (clients send GET with a JSON body).")
            },
            "/healthz": {"get": {"summary": "Process up", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Database reachable", "responses": {"200": {"description": "ready"}, "503": {"description": "database unreachable"}}}}
        },
        "components": {"schemas": schemas}
    })
}
