//! Request parameters, read leniently as real SurePassID clients send them.
//!
//! Both front doors (JSON and SOAP) fill a [`Params`] with canonical field names; services read
//! typed values through its getters. Scalars may arrive as string, number or bool
//! (`"30"`, `30`; `"false"`, `false`, `0`); an empty string counts as absent.

use crate::error::ApiError;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Field aliases (alias, canonical name), docs/api.md.
pub const FIELD_ALIASES: &[(&str, &str)] =
    &[("code", "otp"), ("printedSerialNumber", "psn"), ("appId:", "appId"), ("password", "pw"), ("OtpType", "otpType")];

/// Longest string accepted in any field (bytes); longer values are an invalid-field error.
pub const MAX_FIELD_LEN: usize = 16 * 1024;

/// Canonicalised request fields.
#[derive(Debug, Clone, Default)]
pub struct Params {
    fields: BTreeMap<String, Value>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from a JSON object, resolving aliases (a canonical name present wins over its alias).
    pub fn from_json(map: Map<String, Value>) -> Self {
        let mut fields = BTreeMap::new();
        let mut aliased = Vec::new();
        for (k, v) in map {
            match FIELD_ALIASES.iter().find(|(a, _)| *a == k) {
                Some((_, canon)) => aliased.push((canon.to_string(), v)),
                None => {
                    fields.insert(k, v);
                }
            }
        }
        for (canon, v) in aliased {
            let absent = match fields.get(&canon) {
                None => true,
                Some(existing) => is_empty(existing),
            };
            if absent {
                fields.insert(canon, v);
            }
        }
        Params { fields }
    }

    pub fn set(&mut self, name: &str, value: Value) {
        self.fields.insert(name.to_string(), value);
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.fields.get(name).filter(|v| !is_empty(v))
    }

    /// An optional string; numbers and bools are accepted and shown as text.
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        let s = match self.raw(name) {
            None => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => return Err(ApiError::invalid(name, "expected a string")),
        };
        if s.len() > MAX_FIELD_LEN {
            return Err(ApiError::invalid(name, "too long"));
        }
        Ok(Some(s))
    }

    /// A required, non-empty string.
    pub fn str(&self, name: &str) -> Result<String, ApiError> {
        self.opt_str(name)?.ok_or_else(|| ApiError::missing(name))
    }

    /// An optional string, present but possibly empty ("" is kept as Some("")).
    pub fn opt_str_keep_empty(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.fields.get(name) {
            Some(Value::String(s)) if s.is_empty() => Ok(Some(String::new())),
            _ => self.opt_str(name),
        }
    }

    /// An optional integer from a number, a numeric string or a bool.
    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    Ok(Some(i))
                } else if let Some(f) = n.as_f64() {
                    if f.fract() == 0.0 && f.abs() < 9.0e15 {
                        Ok(Some(f as i64))
                    } else {
                        Err(ApiError::invalid(name, "expected an integer"))
                    }
                } else {
                    Err(ApiError::invalid(name, "expected an integer"))
                }
            }
            Some(Value::String(s)) => {
                let t = s.trim();
                if t.is_empty() {
                    return Ok(None);
                }
                match t.to_ascii_lowercase().as_str() {
                    "true" => return Ok(Some(1)),
                    "false" => return Ok(Some(0)),
                    _ => {}
                }
                t.parse::<i64>().map(Some).map_err(|_| ApiError::invalid(name, "expected an integer"))
            }
            Some(Value::Bool(b)) => Ok(Some(i64::from(*b))),
            Some(_) => Err(ApiError::invalid(name, "expected an integer")),
        }
    }

    /// An optional integer that must lie in `lo..=hi`.
    pub fn opt_i64_in(&self, name: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
        match self.opt_i64(name)? {
            Some(v) if v < lo || v > hi => Err(ApiError::invalid(name, format!("must be between {lo} and {hi}"))),
            other => Ok(other),
        }
    }

    /// An optional boolean from a bool, 0/1 or "true"/"false"/"yes"/"no"/"0"/"1".
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => match n.as_f64().map(|f| (f == 0.0, f == 1.0)) {
                Some((true, _)) => Ok(Some(false)),
                Some((_, true)) => Ok(Some(true)),
                _ => Err(ApiError::invalid(name, "expected a boolean (true/false or 0/1)")),
            },
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(ApiError::invalid(name, "expected a boolean (true/false or 0/1)")),
            },
            Some(_) => Err(ApiError::invalid(name, "expected a boolean (true/false or 0/1)")),
        }
    }

    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        Ok(self.opt_bool(name)?.unwrap_or(default))
    }

    /// An optional JSON object, sent as an object or as a string holding one (WebAuthn
    /// credentials). Anything else is an invalid-field error naming the field.
    pub fn opt_json_object(&self, name: &str) -> Result<Option<Map<String, Value>>, ApiError> {
        let invalid = || ApiError::invalid(name, "expected a JSON object (or a string holding one)");
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m.clone())),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => Ok(Some(m)),
                _ => Err(invalid()),
            },
            Some(_) => Err(invalid()),
        }
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Params {
        match v {
            Value::Object(m) => Params::from_json(m),
            _ => Params::new(),
        }
    }

    #[test]
    fn scalars_are_interchangeable() {
        let x = p(json!({"a": "30", "b": 30, "c": "false", "d": 0, "e": true, "f": "", "g": 1.0}));
        assert_eq!(x.opt_i64("a").ok().flatten(), Some(30));
        assert_eq!(x.opt_i64("b").ok().flatten(), Some(30));
        assert_eq!(x.opt_bool("c").ok().flatten(), Some(false));
        assert_eq!(x.opt_bool("d").ok().flatten(), Some(false));
        assert_eq!(x.opt_bool("e").ok().flatten(), Some(true));
        assert_eq!(x.opt_i64("f").ok().flatten(), None);
        assert_eq!(x.opt_i64("g").ok().flatten(), Some(1));
        assert_eq!(x.opt_str("b").ok().flatten().as_deref(), Some("30"));
        assert_eq!(x.opt_i64("e").ok().flatten(), Some(1));
    }

    #[test]
    fn wrong_types_name_the_field() {
        let x = p(json!({"n": "abc", "o": {"x": 1}, "b": "maybe", "f": 1.5}));
        let e = x.opt_i64("n").err().map(|e| e.message).unwrap_or_default();
        assert!(e.contains("field n"), "{e}");
        assert!(x.opt_str("o").is_err());
        assert!(x.opt_bool("b").is_err());
        assert!(x.opt_i64("f").is_err());
        let m = x.str("missing").err().map(|e| (e.code, e.message));
        assert_eq!(m, Some((crate::error::code::MISSING_FIELD, "missing field: missing".to_string())));
    }

    #[test]
    fn aliases_resolve_and_canonical_wins() {
        let x = p(json!({"code": "111", "printedSerialNumber": "P1", "appId:": "https://a", "password": "x"}));
        assert_eq!(x.opt_str("otp").ok().flatten().as_deref(), Some("111"));
        assert_eq!(x.opt_str("psn").ok().flatten().as_deref(), Some("P1"));
        assert_eq!(x.opt_str("appId").ok().flatten().as_deref(), Some("https://a"));
        assert_eq!(x.opt_str("pw").ok().flatten().as_deref(), Some("x"));
        let y = p(json!({"otp": "222", "code": "111", "psn": "", "printedSerialNumber": "P2"}));
        assert_eq!(y.opt_str("otp").ok().flatten().as_deref(), Some("222"));
        assert_eq!(y.opt_str("psn").ok().flatten().as_deref(), Some("P2"));
    }
}
