//! THE one description of the SOAP operations: every WCF method of the SurePassID service
//! (docs/api.md, "SOAP"), the JSON `type` it calls, how each WCF parameter maps to the
//! canonical JSON field, and the data contract its result is rendered as.
//!
//! The WSDL ([`super::wsdl`]), the request mapping and the result rendering ([`super::xml`]) are
//! all generated from these tables, so they cannot drift apart. No rule of any operation lives
//! here: a method only renames parameters and then calls `Service::handle` with its JSON twin's
//! `type`, exactly as the JSON front door does.
//!
//! Data-contract members are listed in ordinal (byte-wise) alphabetical order, the order in which
//! WCF's DataContractSerializer emits them; a unit test keeps it that way.

use serde_json::Value;

/// The XSD type of a parameter or of a data-contract member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xsd {
    String,
    Short,
    Int,
    Long,
    Boolean,
    /// A string enumeration (a WCF enum), e.g. `FindUserFilterType`.
    Enum(&'static EnumType),
}

impl Xsd {
    /// Value types (numbers, booleans, enums) are never nil in WCF; strings may be.
    pub fn is_value_type(self) -> bool {
        !matches!(self, Xsd::String)
    }
}

/// A WCF enum: its type name and (WCF value, JSON value) pairs.
#[derive(Debug, PartialEq, Eq)]
pub struct EnumType {
    pub name: &'static str,
    pub values: &'static [(&'static str, &'static str)],
}

/// One WCF parameter of an operation.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// The WCF parameter name (the child element's local name).
    pub name: &'static str,
    /// The canonical JSON field it fills.
    pub json: &'static str,
    pub xsd: Xsd,
    /// (WCF value, JSON value) translations; empty = the text is passed on as is. Values not in
    /// the table are passed on as is too, so the service reports them (e.g. 9044).
    pub values: &'static [(&'static str, &'static str)],
}

impl Param {
    /// The JSON value for the text of this parameter's element.
    pub fn json_value(&self, text: &str) -> Value {
        let table = match self.xsd {
            Xsd::Enum(e) => e.values,
            _ => self.values,
        };
        let key = if self.xsd == Xsd::String { text } else { text.trim() };
        match table.iter().find(|(wcf, _)| *wcf == key) {
            Some((_, json)) => Value::String((*json).to_string()),
            None => Value::String(text.to_string()),
        }
    }
}

/// The type of a data-contract member.
#[derive(Debug, Clone, Copy)]
pub enum MemberType {
    Scalar(Xsd),
    /// `ArrayOf<item>`: a JSON array of objects, each rendered as `item`.
    Array(&'static ComplexType),
}

/// One member of a data contract, filled from a field of the JSON reply.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// The member (element) name, PascalCase.
    pub name: &'static str,
    /// The JSON reply field it comes from (`errorCode`/`errorMessage` are the envelope's).
    pub json: &'static str,
    pub ty: MemberType,
}

/// A data contract (XSD complex type in the data-contract namespace).
#[derive(Debug)]
pub struct ComplexType {
    pub name: &'static str,
    pub members: &'static [Member],
}

/// One WCF operation.
#[derive(Debug)]
pub struct Operation {
    /// The WCF method name (wrapper element local name, SOAPAction suffix).
    pub method: &'static str,
    /// The JSON `type` whose service operation it calls.
    pub json_type: &'static str,
    pub params: &'static [Param],
    pub result: &'static ComplexType,
}

impl Operation {
    pub fn param(&self, local_name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == local_name)
    }
}

/// Target namespace of the service (WCF's default).
pub const TNS: &str = "http://tempuri.org/";
/// Default namespace of the data contracts (result types); `[soap] data_contract_namespace`
/// replaces it. WCF's default is `http://schemas.datacontract.org/2004/07/<CLR namespace>`; the
/// vendor's was never published, so Tessera names it after the product.
pub const DC_NS: &str = tessera_core::config::DEFAULT_DATA_CONTRACT_NAMESPACE;
pub const PORT_TYPE: &str = "ISurePassAuthServerWCFService";
pub const SERVICE_NAME: &str = "SurePassAuthServerWCFService";
pub const BINDING_NAME: &str = "BasicHttpBinding_ISurePassAuthServerWCFService";

/// The SOAPAction of a method (also its input's `wsaw:Action`).
pub fn soap_action(method: &str) -> String {
    format!("{TNS}{PORT_TYPE}/{method}")
}

/// The action of a method's reply (its output's `wsaw:Action`), as WCF names it.
pub fn reply_action(method: &str) -> String {
    format!("{TNS}{PORT_TYPE}/{method}Response")
}

/// Finds an operation by its WCF method name (exact, as WCF matches it).
pub fn lookup(method: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.method == method)
}

// ---------------------------------------------------------------------------------------------
// parameters

const fn p(name: &'static str, json: &'static str, xsd: Xsd) -> Param {
    Param { name, json, xsd, values: &[] }
}

const ACCOUNT: Param = p("authServerPartnerLoginName", "spAccountLoginName", Xsd::String);
const KEY: Param = p("authServerPartnerLoginPassword", "spAccountLoginKey", Xsd::String);
const USER: Param = p("authServerPartnerUserLoginName", "username", Xsd::String);
const PSN: Param = p("printedSerialNumber", "psn", Xsd::String);
const LOGIN_NAME: Param = p("loginName", "username", Xsd::String);
const LOGIN_PASSWORD: Param = p("loginPassword", "pw", Xsd::String);
const FIRST_NAME: Param = p("firstName", "firstName", Xsd::String);
const LAST_NAME: Param = p("lastName", "lastName", Xsd::String);
const EMAIL: Param = p("email", "email", Xsd::String);
const MOBILE_PHONE: Param = p("mobilePhone", "mobile", Xsd::String);
const ADD_DEVICE_ONLY: Param = p("addDeviceOnly", "addDeviceOnly", Xsd::Boolean);
const NOTIFICATION_METHOD: Param = p("notificationMethod", "notificationMethod", Xsd::Short);
const APP_ID: Param = p("appId", "appId", Xsd::String);
const OTP1: Param = p("otp1", "otp1", Xsd::String);
const OTP2: Param = p("otp2", "otp2", Xsd::String);
const SESSION_TOKEN_ID: Param = p("sessionTokenId", "sessionTokenId", Xsd::String);
const B64_SESSION_ID: Param = p("b64SessionId", "sessionId", Xsd::String);
const B64_CLIENT_DATA: Param = p("b64ClientData", "clientData", Xsd::String);

/// SendOTP's `deliveryMethod` (short): 0 = sms, 1 = email, 2 = voice (docs/api.md).
const DELIVERY_METHOD: Param =
    Param { name: "deliveryMethod", json: "deliveryMethod", xsd: Xsd::Short, values: &[("0", "sms"), ("1", "email"), ("2", "voice")] };

/// FindUsers' `queryType`.
pub static FIND_USER_FILTER_TYPE: EnumType =
    EnumType { name: "FindUserFilterType", values: &[("Username", "username"), ("Email", "email"), ("LoginName", "username")] };

/// Every enum type the WSDL declares.
pub static ENUMS: &[&EnumType] = &[&FIND_USER_FILTER_TYPE];

const USER_FIELDS: [Param; 6] = [
    FIRST_NAME,
    LAST_NAME,
    p("mobile", "mobile", Xsd::String),
    EMAIL,
    p("pw", "pw", Xsd::String),
    p("userStatus", "userStatus", Xsd::Short),
];

// ---------------------------------------------------------------------------------------------
// data contracts

const fn m(name: &'static str, json: &'static str, xsd: Xsd) -> Member {
    Member { name, json, ty: MemberType::Scalar(xsd) }
}

const ERROR_CODE: Member = m("ErrorCode", "errorCode", Xsd::Int);
const ERROR_MSG: Member = m("ErrorMsg", "errorMessage", Xsd::String);

pub static DEVICE_INFO: ComplexType = ComplexType {
    name: "DeviceInfo",
    members: &[
        m("AppId", "appId", Xsd::String),
        m("DeviceId", "deviceId", Xsd::String),
        m("DeviceStatus", "deviceStatus", Xsd::Int),
        m("DeviceType", "deviceType", Xsd::Int),
        m("KeyName", "keyName", Xsd::String),
        m("OtpType", "otpType", Xsd::Int),
        m("Psn", "psn", Xsd::String),
        m("TokenID", "tokenID", Xsd::String),
    ],
};

pub static USER_SUMMARY: ComplexType =
    ComplexType { name: "UserSummary", members: &[m("Email", "email", Xsd::String), m("Username", "username", Xsd::String)] };

pub static U2F_REGISTER_REQUEST: ComplexType = ComplexType {
    name: "U2FRegisterRequest",
    members: &[
        m("AppId", "appId", Xsd::String),
        m("Challenge", "challenge", Xsd::String),
        m("SessionId", "sessionId", Xsd::String),
        m("Version", "version", Xsd::String),
    ],
};

pub static U2F_SIGN_REQUEST: ComplexType = ComplexType {
    name: "U2FSignRequest",
    members: &[
        m("AppId", "appId", Xsd::String),
        m("Challenge", "challenge", Xsd::String),
        m("KeyHandle", "keyHandle", Xsd::String),
        m("SessionId", "sessionId", Xsd::String),
        m("Version", "version", Xsd::String),
    ],
};

pub static AUTH_SERVER_RESPONSE: ComplexType = ComplexType { name: "AuthServerResponse", members: &[ERROR_CODE, ERROR_MSG] };

pub static AUTH_SERVER_U2F_RESPONSE: ComplexType = ComplexType { name: "AuthServerU2FResponse", members: &[ERROR_CODE, ERROR_MSG] };

const USER_INFO_MEMBERS: &[Member] = &[
    Member { name: "Devices", json: "Devices", ty: MemberType::Array(&DEVICE_INFO) },
    m("Email", "email", Xsd::String),
    ERROR_CODE,
    ERROR_MSG,
    m("FirstName", "firstName", Xsd::String),
    m("LastName", "lastName", Xsd::String),
    m("Mobile", "mobile", Xsd::String),
    m("UserStatus", "userStatus", Xsd::Int),
    m("Username", "username", Xsd::String),
];

pub static AUTH_SERVER_RESPONSE_USER_INFO: ComplexType = ComplexType { name: "AuthServerResponseUserInfo", members: USER_INFO_MEMBERS };

pub static AUTH_SERVER_RESPONSE_VALIDATE_USER: ComplexType =
    ComplexType { name: "AuthServerResponseValidateUser", members: USER_INFO_MEMBERS };

pub static AUTH_SERVER_FIND_USERS_RESPONSE: ComplexType = ComplexType {
    name: "AuthServerFindUsersResponse",
    members: &[ERROR_CODE, ERROR_MSG, Member { name: "Users", json: "Users", ty: MemberType::Array(&USER_SUMMARY) }],
};

const NEW_DEVICE_MEMBERS: &[Member] = &[m("DeviceId", "deviceId", Xsd::String), ERROR_CODE, ERROR_MSG, m("Psn", "psn", Xsd::String)];

pub static AUTH_SERVER_U2F_RESPONSE_ADD_USER: ComplexType =
    ComplexType { name: "AuthServerU2FResponseAddUser", members: NEW_DEVICE_MEMBERS };

pub static AUTH_SERVER_RESPONSE_ENROLL_USER: ComplexType =
    ComplexType { name: "AuthServerResponseEnrollUser", members: NEW_DEVICE_MEMBERS };

pub static AUTH_SERVER_RESPONSE_DEVICE_INFO: ComplexType = ComplexType {
    name: "AuthServerResponseDeviceInfo",
    members: &[
        m("Assigned", "assigned", Xsd::Int),
        m("DeviceId", "deviceId", Xsd::String),
        m("DeviceStatus", "deviceStatus", Xsd::Int),
        m("DeviceType", "deviceType", Xsd::Int),
        ERROR_CODE,
        ERROR_MSG,
        m("OtpType", "otpType", Xsd::Int),
        m("Psn", "psn", Xsd::String),
        m("Username", "username", Xsd::String),
    ],
};

pub static AUTH_SERVER_RESPONSE_PROVISION_QR_CODE: ComplexType = ComplexType {
    name: "AuthServerResponseProvisionQRCode",
    members: &[
        m("DeviceId", "deviceId", Xsd::String),
        ERROR_CODE,
        ERROR_MSG,
        m("OtpauthUri", "otpauthUri", Xsd::String),
        m("Psn", "psn", Xsd::String),
        m("QRCodeURL", "QRCodeURL", Xsd::String),
    ],
};

const U2F_INIT_MEMBERS: &[Member] = &[
    ERROR_CODE,
    ERROR_MSG,
    Member { name: "RegisterRequest", json: "RegisterRequest", ty: MemberType::Array(&U2F_REGISTER_REQUEST) },
    Member { name: "SignRequest", json: "SignRequest", ty: MemberType::Array(&U2F_SIGN_REQUEST) },
];

pub static AUTH_SERVER_U2F_RESPONSE_ENROLL_APP_U2F_INIT: ComplexType =
    ComplexType { name: "AuthServerU2FResponseEnrollAppU2FInit", members: U2F_INIT_MEMBERS };

pub static AUTH_SERVER_U2F_RESPONSE_SIGN_APP_U2F_INIT: ComplexType =
    ComplexType { name: "AuthServerU2FResponseSignAppU2FInit", members: U2F_INIT_MEMBERS };

pub static AUTH_SERVER_U2F_RESPONSE_ENROLL_APP_U2F: ComplexType = ComplexType {
    name: "AuthServerU2FResponseEnrollAppU2F",
    members: &[
        m("DeviceId", "deviceId", Xsd::String),
        ERROR_CODE,
        ERROR_MSG,
        m("KeyHandle", "keyHandle", Xsd::String),
        m("Psn", "psn", Xsd::String),
        m("SecurityKeyName", "securityKeyName", Xsd::String),
    ],
};

pub static AUTH_SERVER_U2F_RESPONSE_SIGN_APP_U2F: ComplexType = ComplexType {
    name: "AuthServerU2FResponseSignAppU2F",
    members: &[
        m("Counter", "counter", Xsd::Long),
        ERROR_CODE,
        ERROR_MSG,
        m("KeyHandle", "keyHandle", Xsd::String),
        m("Psn", "psn", Xsd::String),
    ],
};

pub static AUTH_SERVER_SESSION_TOKENS_RESPONSE: ComplexType = ComplexType {
    name: "AuthServerSessionTokensResponse",
    members: &[ERROR_CODE, ERROR_MSG, m("ExpiresAt", "expiresAt", Xsd::String), m("SessionTokenType", "sessionTokenType", Xsd::Int)],
};

pub static AUTH_SERVER_SESSION_TOKENS_RESPONSE_CREATE: ComplexType = ComplexType {
    name: "AuthServerSessionTokensResponseCreate",
    members: &[
        ERROR_CODE,
        ERROR_MSG,
        m("ExpiresAt", "expiresAt", Xsd::String),
        m("SessionTokenId", "sessionTokenId", Xsd::String),
        m("SessionTokenType", "sessionTokenType", Xsd::Int),
    ],
};

/// Array item types (each gets an `ArrayOf<name>` type in the WSDL).
pub static ITEM_TYPES: &[&ComplexType] = &[&DEVICE_INFO, &USER_SUMMARY, &U2F_REGISTER_REQUEST, &U2F_SIGN_REQUEST];

// ---------------------------------------------------------------------------------------------
// operations

/// Every SOAP operation, in the order of the reference (§3–§6).
pub static OPERATIONS: &[Operation] = &[
    // §3 OATH OTP and delivery
    Operation {
        method: "SendOTP",
        json_type: "send_oath_otp",
        params: &[ACCOUNT, KEY, USER, PSN, DELIVERY_METHOD],
        result: &AUTH_SERVER_U2F_RESPONSE,
    },
    Operation {
        method: "ValidateOTP",
        json_type: "validate_oath_otp",
        params: &[ACCOUNT, KEY, USER, p("authOtp", "otp", Xsd::String), PSN],
        result: &AUTH_SERVER_RESPONSE,
    },
    Operation {
        method: "ActiveDevice",
        json_type: "active_oath_device",
        params: &[ACCOUNT, KEY, USER, OTP1, OTP2, PSN],
        result: &AUTH_SERVER_RESPONSE,
    },
    Operation {
        method: "SynchronizeDevice",
        json_type: "sync_oath_device",
        params: &[ACCOUNT, KEY, USER, OTP1, OTP2, PSN],
        result: &AUTH_SERVER_RESPONSE,
    },
    // §4 users and devices
    Operation {
        method: "AddUser",
        json_type: "add_user",
        params: &[ACCOUNT, KEY, USER, USER_FIELDS[0], USER_FIELDS[1], USER_FIELDS[2], USER_FIELDS[3], USER_FIELDS[4], USER_FIELDS[5]],
        result: &AUTH_SERVER_RESPONSE,
    },
    Operation {
        method: "UpdateUser",
        json_type: "update_user",
        params: &[ACCOUNT, KEY, USER, USER_FIELDS[0], USER_FIELDS[1], USER_FIELDS[2], USER_FIELDS[3], USER_FIELDS[4], USER_FIELDS[5]],
        result: &AUTH_SERVER_RESPONSE,
    },
    Operation {
        method: "DeleteUser",
        json_type: "delete_user",
        params: &[ACCOUNT, KEY, USER, p("removeRelated", "removeRelated", Xsd::Boolean)],
        result: &AUTH_SERVER_RESPONSE,
    },
    Operation { method: "FindUser", json_type: "find_user", params: &[ACCOUNT, KEY, USER], result: &AUTH_SERVER_RESPONSE_USER_INFO },
    Operation {
        method: "FindUsers",
        json_type: "find_users",
        params: &[
            ACCOUNT,
            KEY,
            USER,
            p("queryFilter", "queryFilter", Xsd::String),
            p("queryType", "queryFilterType", Xsd::Enum(&FIND_USER_FILTER_TYPE)),
        ],
        result: &AUTH_SERVER_FIND_USERS_RESPONSE,
    },
    Operation {
        method: "ValidateUser",
        json_type: "validate_user",
        params: &[ACCOUNT, KEY, USER, p("authServerPartnerUserPassword", "pw", Xsd::String), p("noAuth", "noAuth", Xsd::Boolean)],
        result: &AUTH_SERVER_RESPONSE_VALIDATE_USER,
    },
    Operation {
        method: "AddU2FUser",
        json_type: "add_u2f_account",
        params: &[
            ACCOUNT,
            KEY,
            FIRST_NAME,
            LAST_NAME,
            LOGIN_NAME,
            LOGIN_PASSWORD,
            EMAIL,
            MOBILE_PHONE,
            ADD_DEVICE_ONLY,
            NOTIFICATION_METHOD,
        ],
        result: &AUTH_SERVER_U2F_RESPONSE_ADD_USER,
    },
    Operation {
        method: "EnrollUser",
        json_type: "add_u2f_device",
        params: &[
            ACCOUNT,
            KEY,
            FIRST_NAME,
            LAST_NAME,
            LOGIN_NAME,
            LOGIN_PASSWORD,
            EMAIL,
            MOBILE_PHONE,
            p("deviceType", "deviceType", Xsd::Short),
            p("otpType", "otpType", Xsd::Short),
            p("otpLength", "OtpLength", Xsd::Short),
            p("otpWindow", "windowSize", Xsd::Short),
            p("otpPin", "OtpPin", Xsd::String),
            p("deviceId", "deviceId", Xsd::String),
            ADD_DEVICE_ONLY,
            NOTIFICATION_METHOD,
        ],
        result: &AUTH_SERVER_RESPONSE_ENROLL_USER,
    },
    Operation {
        method: "FindDevice",
        json_type: "find_device",
        params: &[ACCOUNT, KEY, USER, PSN],
        result: &AUTH_SERVER_RESPONSE_DEVICE_INFO,
    },
    Operation {
        method: "AssginDevice",
        json_type: "assign_device",
        params: &[ACCOUNT, KEY, USER, PSN, p("force", "force", Xsd::Boolean)],
        result: &AUTH_SERVER_RESPONSE,
    },
    Operation { method: "UnassignDevice", json_type: "unassign_device", params: &[ACCOUNT, KEY, USER, PSN], result: &AUTH_SERVER_RESPONSE },
    Operation {
        method: "ProvisionQRCode",
        json_type: "get_oath_device_qrcode",
        params: &[ACCOUNT, KEY, USER, p("deviceID", "deviceId", Xsd::String), p("accountName", "accountName", Xsd::String)],
        result: &AUTH_SERVER_RESPONSE_PROVISION_QR_CODE,
    },
    // §5 FIDO U2F
    Operation {
        method: "EnrollAppU2FInit",
        json_type: "pre_enroll",
        params: &[ACCOUNT, KEY, USER, APP_ID],
        result: &AUTH_SERVER_U2F_RESPONSE_ENROLL_APP_U2F_INIT,
    },
    Operation {
        method: "EnrollAppU2F",
        json_type: "enroll",
        params: &[
            ACCOUNT,
            KEY,
            USER,
            PSN,
            p("securityKeyName", "securityKeyName", Xsd::String),
            p("b64RegistrationData", "registrationData", Xsd::String),
            B64_SESSION_ID,
            B64_CLIENT_DATA,
            p("version", "version", Xsd::String),
        ],
        result: &AUTH_SERVER_U2F_RESPONSE_ENROLL_APP_U2F,
    },
    Operation {
        method: "SignAppU2FInit",
        json_type: "pre_sign",
        params: &[ACCOUNT, KEY, APP_ID, USER, PSN],
        result: &AUTH_SERVER_U2F_RESPONSE_SIGN_APP_U2F_INIT,
    },
    Operation {
        method: "SignAppU2F",
        json_type: "sign",
        params: &[ACCOUNT, KEY, USER, PSN, B64_SESSION_ID, B64_CLIENT_DATA, p("b64SignData", "signatureData", Xsd::String)],
        result: &AUTH_SERVER_U2F_RESPONSE_SIGN_APP_U2F,
    },
    Operation {
        method: "DeleteSecurityKey",
        json_type: "delete_key",
        params: &[
            ACCOUNT,
            KEY,
            USER,
            APP_ID,
            p("keyIdentifier", "securityKeyName", Xsd::String),
            p("keyIdentifierType", "securityKeyType", Xsd::String),
        ],
        result: &AUTH_SERVER_U2F_RESPONSE,
    },
    // §6 session tokens
    Operation {
        method: "CreateSessionToken",
        json_type: "create_session_token",
        params: &[
            ACCOUNT,
            KEY,
            USER,
            p("authServerPartnerUserLoginPassword", "pw", Xsd::String),
            p("durationMinutes", "sessionTokenDurationMinutes", Xsd::Short),
            p("tokenType", "sessionTokenType", Xsd::Int),
        ],
        result: &AUTH_SERVER_SESSION_TOKENS_RESPONSE_CREATE,
    },
    Operation {
        method: "ExpireSessionToken",
        json_type: "expire_session_token",
        params: &[ACCOUNT, KEY, USER, SESSION_TOKEN_ID],
        result: &AUTH_SERVER_SESSION_TOKENS_RESPONSE,
    },
    Operation {
        method: "IsSessionTokenValid",
        json_type: "is_session_token_valid",
        params: &[ACCOUNT, KEY, USER, SESSION_TOKEN_ID],
        result: &AUTH_SERVER_SESSION_TOKENS_RESPONSE,
    },
];

/// Every result type (for the WSDL), each once, in the order operations first use them.
pub fn result_types() -> Vec<&'static ComplexType> {
    let mut out: Vec<&'static ComplexType> = Vec::new();
    for op in OPERATIONS {
        if !out.iter().any(|t| t.name == op.result.name) {
            out.push(op.result);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn all_types() -> Vec<&'static ComplexType> {
        let mut v = result_types();
        v.extend(ITEM_TYPES.iter().copied());
        v
    }

    #[test]
    fn members_are_in_wcf_order_and_unique() {
        for t in all_types() {
            let names: Vec<&str> = t.members.iter().map(|m| m.name).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(names, sorted, "members of {} must be in ordinal order, without duplicates", t.name);
        }
    }

    #[test]
    fn every_result_carries_the_envelope() {
        for t in result_types() {
            assert!(t.members.iter().any(|m| m.name == "ErrorCode" && m.json == "errorCode"), "{}", t.name);
            assert!(t.members.iter().any(|m| m.name == "ErrorMsg" && m.json == "errorMessage"), "{}", t.name);
        }
    }

    #[test]
    fn methods_and_params_are_unique_and_carry_the_account() {
        let mut seen = HashSet::new();
        for op in OPERATIONS {
            assert!(seen.insert(op.method), "duplicate method {}", op.method);
            let mut params = HashSet::new();
            for p in op.params {
                assert!(params.insert(p.name), "{}: duplicate parameter {}", op.method, p.name);
            }
            assert_eq!(op.params.first().map(|p| p.json), Some("spAccountLoginName"), "{}", op.method);
            assert_eq!(op.params.get(1).map(|p| p.json), Some("spAccountLoginKey"), "{}", op.method);
            assert!(op.params.iter().any(|p| p.json == "username") || op.method == "FindUsers", "{}", op.method);
        }
        assert_eq!(OPERATIONS.len(), 24);
        // result type names are unique per shape
        let names: HashSet<&str> = all_types().iter().map(|t| t.name).collect();
        assert_eq!(names.len(), all_types().len());
    }

    #[test]
    fn value_maps() {
        let send = lookup("SendOTP").and_then(|o| o.param("deliveryMethod")).expect("deliveryMethod");
        assert_eq!(send.json_value("0"), Value::from("sms"));
        assert_eq!(send.json_value(" 1 "), Value::from("email"));
        assert_eq!(send.json_value("2"), Value::from("voice"));
        assert_eq!(send.json_value("7"), Value::from("7"));
        let q = lookup("FindUsers").and_then(|o| o.param("queryType")).expect("queryType");
        assert_eq!(q.json, "queryFilterType");
        assert_eq!(q.json_value("Email"), Value::from("email"));
        assert_eq!(q.json_value("LoginName"), Value::from("username"));
        assert_eq!(q.json_value("Username"), Value::from("username"));
        assert_eq!(q.json_value("Other"), Value::from("Other"));
        let pw = lookup("AddUser").and_then(|o| o.param("pw")).expect("pw");
        assert_eq!(pw.json_value(" spaced "), Value::from(" spaced "));
    }
}
