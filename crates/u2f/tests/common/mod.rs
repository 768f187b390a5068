//! Shared access to the official FIDO U2F raw-message example vectors.
#![allow(dead_code)]

use serde_json::Value;

pub const VECTORS_JSON: &str = include_str!("../data/fido_u2f_raw_examples.json");

pub struct RegVector {
    pub app_id: String,
    pub origin: String,
    pub challenge: String,
    pub client_data: Vec<u8>,
    pub client_data_b64: String,
    pub registration_data: Vec<u8>,
    pub registration_data_b64: String,
    pub user_public_key: Vec<u8>,
    pub user_private_key: Vec<u8>,
    pub key_handle: Vec<u8>,
    pub key_handle_b64: String,
    pub attestation_cert: Vec<u8>,
    pub attestation_private_key: Vec<u8>,
    pub signature: Vec<u8>,
}

pub struct AuthVector {
    pub app_id: String,
    pub origin: String,
    pub challenge: String,
    pub client_data: Vec<u8>,
    pub client_data_b64: String,
    pub signature_data: Vec<u8>,
    pub signature_data_b64: String,
    pub user_presence: u8,
    pub counter: u32,
    pub public_key: Vec<u8>,
    pub private_key: Vec<u8>,
    pub key_handle: Vec<u8>,
}

fn root() -> Value {
    serde_json::from_str(VECTORS_JSON).expect("vector file is JSON")
}

fn s(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("vector field {key} missing")).to_owned()
}

fn h(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(s(v, key)).unwrap_or_else(|_| panic!("vector field {key} not hex"))
}

fn n(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or_else(|| panic!("vector field {key} missing"))
}

pub fn registration() -> RegVector {
    let root = root();
    let r = root.get("registration").expect("registration section");
    RegVector {
        app_id: s(r, "appId"),
        origin: s(r, "origin"),
        challenge: s(r, "challenge"),
        client_data: s(r, "clientData_json").into_bytes(),
        client_data_b64: s(r, "clientData_b64url"),
        registration_data: h(r, "registrationData_hex"),
        registration_data_b64: s(r, "registrationData_b64url"),
        user_public_key: h(r, "user_public_key_hex"),
        user_private_key: h(r, "user_private_key_hex"),
        key_handle: h(r, "key_handle_hex"),
        key_handle_b64: s(r, "key_handle_b64url"),
        attestation_cert: h(r, "attestation_cert_hex"),
        attestation_private_key: h(r, "attestation_private_key_hex"),
        signature: h(r, "signature_hex"),
    }
}

pub fn authentication() -> AuthVector {
    let root = root();
    let a = root.get("authentication").expect("authentication section");
    AuthVector {
        app_id: s(a, "appId"),
        origin: s(a, "origin"),
        challenge: s(a, "challenge"),
        client_data: s(a, "clientData_json").into_bytes(),
        client_data_b64: s(a, "clientData_b64url"),
        signature_data: h(a, "signatureData_hex"),
        signature_data_b64: s(a, "signatureData_b64url"),
        user_presence: u8::try_from(n(a, "user_presence")).expect("presence fits u8"),
        counter: u32::try_from(n(a, "counter")).expect("counter fits u32"),
        public_key: h(a, "public_key_hex"),
        private_key: h(a, "private_key_hex"),
        key_handle: h(a, "key_handle_hex"),
    }
}
