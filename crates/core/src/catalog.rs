//! The one description of every operation: its `type` name and aliases, its fields, and the name
//! the reply's `type` carries. The JSON dispatcher, the OpenAPI document and the WSDL are all
//! generated from this table, so they cannot drift apart.

/// JSON scalar kind of a field (lenient parsing accepts all three forms for every kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    /// A JSON object, or a string holding one (WebAuthn credentials).
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub doc: &'static str,
}

pub const fn f(name: &'static str, kind: Kind, required: bool, doc: &'static str) -> FieldSpec {
    FieldSpec { name, kind, required, doc }
}

#[derive(Debug, Clone, Copy)]
pub struct OpSpec {
    /// Canonical `type`.
    pub name: &'static str,
    /// Other `type` names accepted for it; the reply echoes the name sent.
    pub aliases: &'static [&'static str],
    /// Fixed reply `type` (pre_enroll -> u2f_register_request), else the echo.
    pub reply_type: Option<&'static str>,
    pub summary: &'static str,
    /// Fields besides spAccountLoginName / spAccountLoginKey / type.
    pub fields: &'static [FieldSpec],
    /// `errorMessage` on success ("OK", or "" for the FIDO operations).
    pub ok_message: &'static str,
    pub group: Group,
}

/// The service module that implements an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Users,
    Sessions,
    Oath,
    Delivery,
    U2f,
    WebAuthn,
}

/// The operation tables of every service module.
pub const GROUPS: &[&[OpSpec]] = &[
    crate::service::users::OPS,
    crate::service::sessions::OPS,
    crate::service::oath::OPS,
    crate::service::delivery::OPS,
    crate::service::u2f::OPS,
    crate::service::webauthn::OPS,
];

/// Every operation Tessera implements.
pub fn operations() -> impl Iterator<Item = &'static OpSpec> {
    GROUPS.iter().flat_map(|g| g.iter())
}

/// Finds an operation by its `type` or an alias.
pub fn lookup(type_name: &str) -> Option<&'static OpSpec> {
    operations().find(|op| op.name == type_name || op.aliases.contains(&type_name))
}
