//! The WCF/SOAP front door (docs/api.md, "SOAP (WCF)"): recorded WCF envelopes and their exact
//! replies, the WSDL, the configurable data-contract namespace, bad input of every kind, and one
//! implementation behind both front doors.

use crate::helpers::{assert_code, spawn_app, spawn_app_with, Backend, TestApp};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;
use tessera_server::soap::ops::{self, OPERATIONS};

const PATH: &str = "/AuthServerWCFService/SurePassAuthServerWCFService.svc";
const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const DC: &str = "http://schemas.datacontract.org/2004/07/SurePassID.AuthServer";
const ACTION: &str = "http://tempuri.org/ISurePassAuthServerWCFService/";

fn url(app: &TestApp) -> String {
    format!("{}{PATH}", app.base)
}

/// Escapes text for an envelope built by a test.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A request as a WCF (DataContractSerializer) proxy writes it: `s:` envelope, the wrapper with a
/// default namespace, parameters unprefixed.
fn wcf_request(app: &TestApp, method: &str, params: &[(&str, &str)]) -> String {
    let mut body = format!(
        "<authServerPartnerLoginName>{}</authServerPartnerLoginName><authServerPartnerLoginPassword>{}</authServerPartnerLoginPassword>",
        esc(&app.account),
        esc(&app.key)
    );
    for (k, v) in params {
        body.push_str(&format!("<{k}>{}</{k}>", esc(v)));
    }
    format!(r#"<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><{method} xmlns="http://tempuri.org/">{body}</{method}></s:Body></s:Envelope>"#)
}

/// The exact reply envelope WCF writes for `method` with the result members `inner`.
fn wcf_reply(method: &str, inner: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><{method}Response xmlns="http://tempuri.org/"><{method}Result xmlns:a="http://schemas.datacontract.org/2004/07/SurePassID.AuthServer" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">{inner}</{method}Result></{method}Response></s:Body></s:Envelope>"#
    )
}

/// Parses a whole document with quick-xml (namespace-aware); Err names the problem.
fn well_formed(xml: &str) -> Result<(), String> {
    let mut r = NsReader::from_str(xml);
    let mut depth = 0usize;
    let mut roots = 0;
    loop {
        match r.read_resolved_event() {
            Ok((ResolveResult::Unknown(p), _)) => return Err(format!("unbound prefix {p}")),
            Ok((_, Event::Start(_))) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            Ok((_, Event::Empty(_))) if depth == 0 => roots += 1,
            Ok((_, Event::End(_))) => depth = depth.checked_sub(1).ok_or("unbalanced end")?,
            Ok((_, Event::DocType(_))) => return Err("DOCTYPE in output".into()),
            Ok((_, Event::Eof)) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("{e} at {}", r.buffer_position())),
        }
    }
    if depth != 0 || roots != 1 {
        return Err(format!("depth {depth}, {roots} root elements"));
    }
    Ok(())
}

/// The text of the first data-contract member `name` (None if absent or nil).
fn member(xml: &str, name: &str) -> Option<String> {
    let mut r = NsReader::from_str(xml);
    r.config_mut().expand_empty_elements = true;
    let mut inside = false;
    let mut text = String::new();
    loop {
        match r.read_resolved_event() {
            Ok((ResolveResult::Bound(ns), Event::Start(e))) if ns.into_inner() == DC && e.local_name().into_inner() == name => {
                if e.attributes().flatten().any(|a| a.key.local_name().into_inner() == "nil" && &*a.value == "true") {
                    return None;
                }
                inside = true
            }
            Ok((_, Event::Text(t))) if inside => text.push_str(&t.xml10_content()),
            Ok((_, Event::GeneralRef(g))) if inside => text.push_str(match &*g {
                "amp" => "&",
                "lt" => "<",
                "gt" => ">",
                "quot" => "\"",
                "apos" => "'",
                _ => "?",
            }),
            Ok((_, Event::End(_))) if inside => return Some(text),
            Ok((_, Event::Eof)) | Err(_) => return None,
            _ => {}
        }
    }
}

fn error_code(xml: &str) -> i64 {
    member(xml, "ErrorCode").and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no ErrorCode in {xml}"))
}

/// POSTs `body` with the given SOAPAction header; returns (status, body). Every answer must be
/// XML with a body, and well-formed.
async fn post(app: &TestApp, action: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, String) {
    let mut req = app.client.post(url(app)).header("content-type", "text/xml; charset=utf-8");
    if let Some(a) = action {
        req = req.header("SOAPAction", a);
    }
    let r = tokio::time::timeout(Duration::from_secs(30), req.body(body).send()).await.expect("no answer within 30 s").expect("request");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let text = r.text().await.expect("body");
    assert_eq!(ct, "text/xml; charset=utf-8", "status {status}, body {text}");
    assert!(!text.is_empty(), "status {status} without a body");
    if let Err(e) = well_formed(&text) {
        panic!("reply is not well-formed XML ({e}): {text}");
    }
    (status, text)
}

/// Calls `method` as a WCF client does (quoted SOAPAction); asserts HTTP 200, returns the reply.
async fn call(app: &TestApp, method: &str, params: &[(&str, &str)]) -> String {
    let (status, text) = post(app, Some(&format!("\"{ACTION}{method}\"")), wcf_request(app, method, params)).await;
    assert_eq!(status, 200, "{method}: {text}");
    text
}

/// Asserts a SOAP 1.1 Fault with `code` whose faultstring contains `needle`.
#[track_caller]
fn assert_fault(status: u16, xml: &str, expected_status: u16, code: &str, needle: &str) {
    assert_eq!(status, expected_status, "{xml}");
    let head = format!(r#"<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><s:Fault><faultcode>{code}</faultcode><faultstring xml:lang="en-US">"#);
    assert!(xml.starts_with(&head), "not a {code} Fault: {xml}");
    assert!(xml.ends_with("</faultstring></s:Fault></s:Body></s:Envelope>"), "{xml}");
    assert!(xml.contains(needle), "fault without {needle:?}: {xml}");
}

const NIL_USER: &str = r#"<a:Devices i:nil="true"/><a:Email i:nil="true"/>"#;
const NIL_USER_TAIL: &str = r#"<a:FirstName i:nil="true"/><a:LastName i:nil="true"/><a:Mobile i:nil="true"/><a:UserStatus>0</a:UserStatus><a:Username i:nil="true"/>"#;

async fn recorded_wcf_envelopes_get_stable_replies(b: Backend) {
    let app = spawn_app(b).await;
    // AddUser as an XmlSerializer proxy writes it: namespaces declared on the Body, xsi:nil for null
    let add = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><AddUser xmlns="http://tempuri.org/"><authServerPartnerLoginName>{}</authServerPartnerLoginName><authServerPartnerLoginPassword>{}</authServerPartnerLoginPassword><authServerPartnerUserLoginName>Mandy</authServerPartnerUserLoginName><firstName>Mandy</firstName><lastName>O'Neil &amp; Co</lastName><mobile>+1(800)200-8411</mobile><email>mandy@example.com</email><pw>S3cret!pw</pw><userStatus>0</userStatus><unknownExtra>ignored</unknownExtra></AddUser></s:Body></s:Envelope>"#,
        app.account, app.key
    );
    let (s, r) = post(&app, Some(&format!("\"{ACTION}AddUser\"")), add).await;
    assert_eq!(s, 200);
    assert_eq!(r, wcf_reply("AddUser", "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg>"));

    let find = wcf_reply(
        "FindUser",
        "<a:Devices/><a:Email>mandy@example.com</a:Email><a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg><a:FirstName>Mandy</a:FirstName>\
         <a:LastName>O'Neil &amp; Co</a:LastName><a:Mobile>+1(800)200-8411</a:Mobile><a:UserStatus>0</a:UserStatus><a:Username>Mandy</a:Username>",
    );
    let r1 = call(&app, "FindUser", &[("authServerPartnerUserLoginName", "mandy")]).await;
    assert_eq!(r1, find);
    // byte-for-byte stable
    assert_eq!(call(&app, "FindUser", &[("authServerPartnerUserLoginName", "MANDY")]).await, find);

    let r = call(&app, "FindUser", &[("authServerPartnerUserLoginName", "nobody")]).await;
    assert_eq!(
        r,
        wcf_reply(
            "FindUser",
            &format!("{NIL_USER}<a:ErrorCode>9001</a:ErrorCode><a:ErrorMsg>User login failure [nobody]</a:ErrorMsg>{NIL_USER_TAIL}")
        )
    );

    // ValidateUser: wrong password, right password, noAuth
    let r = call(
        &app,
        "ValidateUser",
        &[("authServerPartnerUserLoginName", "Mandy"), ("authServerPartnerUserPassword", "nope"), ("noAuth", "false")],
    )
    .await;
    assert_eq!(
        r,
        wcf_reply(
            "ValidateUser",
            &format!("{NIL_USER}<a:ErrorCode>9001</a:ErrorCode><a:ErrorMsg>User login failure [Mandy]</a:ErrorMsg>{NIL_USER_TAIL}")
        )
    );
    let ok = call(
        &app,
        "ValidateUser",
        &[("authServerPartnerUserLoginName", "Mandy"), ("authServerPartnerUserPassword", "S3cret!pw"), ("noAuth", "false")],
    )
    .await;
    assert_eq!(ok, find.replace("FindUser", "ValidateUser"));
    let r = call(&app, "ValidateUser", &[("authServerPartnerUserLoginName", "Mandy"), ("noAuth", "true")]).await;
    assert_eq!(r, ok);

    // FindUsers with the enum
    let r = call(&app, "FindUsers", &[("queryFilter", "%@example.com"), ("queryType", "Email")]).await;
    assert_eq!(
        r,
        wcf_reply(
            "FindUsers",
            "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg><a:Users><a:UserSummary><a:Email>mandy@example.com</a:Email><a:Username>Mandy</a:Username></a:UserSummary></a:Users>"
        )
    );
    let r = call(&app, "FindUsers", &[("queryFilter", "%@example.com"), ("queryType", "Username")]).await;
    assert_eq!(r, wcf_reply("FindUsers", "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg><a:Users/>"));

    // session tokens: volatile values replaced
    let r = call(
        &app,
        "CreateSessionToken",
        &[
            ("authServerPartnerUserLoginName", "Mandy"),
            ("authServerPartnerUserLoginPassword", "S3cret!pw"),
            ("durationMinutes", "30"),
            ("tokenType", "1"),
        ],
    )
    .await;
    let token = member(&r, "SessionTokenId").expect("SessionTokenId");
    let expires = member(&r, "ExpiresAt").expect("ExpiresAt");
    assert!(token.len() >= 43 && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{token}");
    assert!(expires.ends_with('Z') && expires.contains('T'), "{expires}");
    assert_eq!(
        r.replace(&token, "{TOKEN}").replace(&expires, "{EXPIRES}"),
        wcf_reply(
            "CreateSessionToken",
            "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg><a:ExpiresAt>{EXPIRES}</a:ExpiresAt><a:SessionTokenId>{TOKEN}</a:SessionTokenId><a:SessionTokenType>1</a:SessionTokenType>"
        )
    );
    let valid = wcf_reply(
        "IsSessionTokenValid",
        &format!("<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg><a:ExpiresAt>{expires}</a:ExpiresAt><a:SessionTokenType>1</a:SessionTokenType>"),
    );
    assert_eq!(call(&app, "IsSessionTokenValid", &[("sessionTokenId", &token)]).await, valid);
    assert_eq!(call(&app, "IsSessionTokenValid", &[("authServerPartnerUserLoginName", "Mandy"), ("sessionTokenId", &token)]).await, valid);
    assert_eq!(
        call(&app, "ExpireSessionToken", &[("authServerPartnerUserLoginName", ""), ("sessionTokenId", &token)]).await,
        wcf_reply(
            "ExpireSessionToken",
            r#"<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg><a:ExpiresAt i:nil="true"/><a:SessionTokenType>0</a:SessionTokenType>"#
        )
    );
    assert_eq!(
        call(&app, "IsSessionTokenValid", &[("sessionTokenId", &token)]).await,
        wcf_reply(
            "IsSessionTokenValid",
            r#"<a:ErrorCode>9107</a:ErrorCode><a:ErrorMsg>Session token invalid or expired</a:ErrorMsg><a:ExpiresAt i:nil="true"/><a:SessionTokenType>0</a:SessionTokenType>"#
        )
    );
    // duration outside 1..43200 is the service's own invalid-field error
    let r = call(&app, "CreateSessionToken", &[("authServerPartnerUserLoginName", "Mandy"), ("durationMinutes", "0")]).await;
    assert_eq!(error_code(&r), 9103);

    // UpdateUser: an empty element keeps the value, a nil one too; DeleteUser
    let upd = format!(
        r#"<s:Envelope xmlns:s="{SOAP_ENV}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><s:Body><UpdateUser xmlns="http://tempuri.org/"><authServerPartnerLoginName>{}</authServerPartnerLoginName><authServerPartnerLoginPassword>{}</authServerPartnerLoginPassword><authServerPartnerUserLoginName>Mandy</authServerPartnerUserLoginName><firstName i:nil="true"/><lastName>Smith</lastName><mobile></mobile><email/><pw i:nil="true"/><userStatus>1</userStatus></UpdateUser></s:Body></s:Envelope>"#,
        app.account, app.key
    );
    let (s, r) = post(&app, Some(&format!("{ACTION}UpdateUser")), upd).await;
    assert_eq!(s, 200);
    assert_eq!(r, wcf_reply("UpdateUser", "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg>"));
    let j = app.call("find_user", json!({"username": "Mandy"})).await;
    assert_eq!(
        (j["firstName"].as_str(), j["lastName"].as_str(), j["mobile"].as_str()),
        (Some("Mandy"), Some("Smith"), Some("+1(800)200-8411"))
    );
    assert_eq!(j["userStatus"], 1);
    let r = call(&app, "DeleteUser", &[("authServerPartnerUserLoginName", "Mandy"), ("removeRelated", "false")]).await;
    assert_eq!(r, wcf_reply("DeleteUser", "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg>"));
    assert_code(&app.call("find_user", json!({"username": "Mandy"})).await, 9001);
}
api_test!(recorded_wcf_envelopes_get_stable_replies);

async fn soap_and_json_are_one_implementation(b: Backend) {
    let app = spawn_app(b).await;
    // added over JSON, seen over SOAP
    assert_code(&app.call("add_user", json!({"username": "jack", "pw": "pw-jack", "email": "jack@example.com"})).await, 0);
    let r = call(&app, "ValidateUser", &[("authServerPartnerUserLoginName", "jack"), ("authServerPartnerUserPassword", "pw-jack")]).await;
    assert_eq!(error_code(&r), 0, "{r}");
    assert_eq!(member(&r, "Email").as_deref(), Some("jack@example.com"));
    // added over SOAP, seen over JSON
    let r = call(
        &app,
        "AddUser",
        &[("authServerPartnerUserLoginName", "jill"), ("pw", "pw-jill"), ("mobile", "+44(0)20 1234 5678"), ("userStatus", "0")],
    )
    .await;
    assert_eq!(error_code(&r), 0, "{r}");
    let j = app.call("validate_user", json!({"username": "JILL", "pw": "pw-jill"})).await;
    assert_code(&j, 0);
    assert_eq!(j["mobile"], "+44(0)20 1234 5678");
    // the same rules: duplicate user, unknown account, missing field (a result, not a fault)
    let r = call(&app, "AddUser", &[("authServerPartnerUserLoginName", "JACK")]).await;
    assert_eq!(error_code(&r), 9105, "{r}");
    let r = call(&app, "AddUser", &[]).await;
    assert_eq!(error_code(&r), 9102, "{r}");
    assert_eq!(member(&r, "ErrorMsg").as_deref(), Some("missing field: username"));
    let r = call(&app, "FindUser", &[]).await;
    assert_eq!(error_code(&r), 9102, "{r}");
    let r = call(&app, "AddUser", &[("authServerPartnerUserLoginName", "x"), ("userStatus", "maybe")]).await;
    assert_eq!(error_code(&r), 9103, "{r}");
    let bad_key = wcf_request(&app, "FindUser", &[("authServerPartnerUserLoginName", "jack")]).replace(&app.key, "wrong-key");
    let (s, r) = post(&app, Some(""), bad_key).await;
    assert_eq!(s, 200);
    assert_eq!(error_code(&r), 9000);
    assert_eq!(member(&r, "Email"), None, "no data before the account is authenticated: {r}");
    // deleted over JSON, gone over SOAP
    assert_code(&app.call("delete_user", json!({"username": "jill"})).await, 0);
    assert_eq!(error_code(&call(&app, "FindUser", &[("authServerPartnerUserLoginName", "jill")]).await), 9001);
    // SOAP requests are counted and audited like JSON ones
    let m = app.client.get(format!("{}/metrics", app.base)).send().await.expect("metrics").text().await.expect("text");
    assert!(
        m.lines().any(|l| l.contains("tessera_requests_total") && l.contains("front=\"soap\"") && l.contains("type=\"add_user\"")),
        "{m}"
    );
    assert!(m.lines().any(|l| l.contains("front=\"soap\"") && l.contains("code=\"9000\"")), "{m}");
}
api_test!(soap_and_json_are_one_implementation);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_fault_never_a_hang() {
    let app = spawn_app(Backend::Sqlite).await;
    let find = wcf_request(&app, "FindUser", &[("authServerPartnerUserLoginName", "x")]);

    let (s, r) = post(&app, None, "this is not XML").await;
    assert_fault(s, &r, 500, "s:Client", "element");
    let (s, r) = post(&app, None, "").await;
    assert_fault(s, &r, 500, "s:Client", "empty");
    let (s, r) = post(&app, None, vec![0xff_u8, 0xfe, b'<', 0, b'a']).await;
    assert_fault(s, &r, 500, "s:Client", "UTF-8");
    let (s, r) = post(&app, None, "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><FindUser").await;
    assert_fault(s, &r, 500, "s:Client", "well-formed");

    // billion laughs: refused at the DOCTYPE, nothing expanded
    let mut bomb = String::from("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 { "lol".to_string() } else { format!("lol{}", i - 1) };
        bomb.push_str(&format!("<!ENTITY lol{i} \"{}\">", format!("&{prev};").repeat(10)));
    }
    bomb.push_str(&format!(
        "]><s:Envelope xmlns:s=\"{SOAP_ENV}\"><s:Body><FindUser xmlns=\"http://tempuri.org/\"><authServerPartnerUserLoginName>&lol9;</authServerPartnerUserLoginName></FindUser></s:Body></s:Envelope>"
    ));
    let (s, r) = post(&app, Some(""), bomb).await;
    assert_fault(s, &r, 500, "s:Client", "DOCTYPE");
    // an entity used without a DTD
    let (s, r) = post(&app, None, find.replace(">x<", ">&lol9;<")).await;
    assert_fault(s, &r, 500, "s:Client", "undefined entity");

    // too large: 413 with a Fault, also for a body far over the limit
    let huge = find.replace(">x<", &format!(">{}<", "x".repeat(70 * 1024)));
    let (s, r) = post(&app, None, huge).await;
    assert_fault(s, &r, 413, "s:Client", "64 KiB");
    let (s, r) = post(&app, None, vec![b'<'; 1024 * 1024]).await;
    assert_fault(s, &r, 413, "s:Client", "64 KiB");
    // far beyond what is drained: a 413 Fault, or the connection closed at once; never a hang
    let sent = app.client.post(url(&app)).header("content-type", "text/xml").body(vec![b'<'; 16 * 1024 * 1024]).send();
    match tokio::time::timeout(Duration::from_secs(30), sent).await.expect("no answer within 30 s") {
        Ok(r) => {
            assert_eq!(r.status(), 413);
            assert!(r.text().await.unwrap_or_default().contains("<faultcode>s:Client</faultcode>"));
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
    // deep nesting and element floods
    let deep = find.replace(">x<", &format!(">{}{}<", "<d>".repeat(5000), "</d>".repeat(5000)));
    let (s, r) = post(&app, None, deep).await;
    assert_fault(s, &r, 500, "s:Client", "deeper");
    let flood = find.replace(">x<", &format!("><e/>{}<", "<e/>".repeat(10_000)));
    let (s, r) = post(&app, None, flood).await;
    assert_fault(s, &r, 500, "s:Client", "elements");

    // SOAPAction: must match the Body; quoted, unquoted, "" and absent are fine
    let (s, r) = post(&app, Some(&format!("\"{ACTION}AddUser\"")), find.clone()).await;
    assert_fault(s, &r, 500, "s:Client", "does not match");
    let (s, r) = post(&app, Some("urn:something-else"), find.clone()).await;
    assert_fault(s, &r, 500, "s:Client", "does not match");
    for action in [Some(format!("\"{ACTION}FindUser\"")), Some(format!("{ACTION}FindUser")), Some("\"\"".into()), Some(String::new()), None]
    {
        let (s, r) = post(&app, action.as_deref(), find.clone()).await;
        assert_eq!((s, error_code(&r)), (200, 9001), "{action:?}: {r}");
    }

    // unknown operation, wrong namespace, SOAP 1.2, no Body, empty Body, mustUnderstand header
    let (s, r) = post(&app, None, find.replace("FindUser", "StealUser")).await;
    assert_fault(s, &r, 500, "s:Client", "unknown operation {http://tempuri.org/}StealUser");
    let (s, r) = post(&app, None, find.replace("http://tempuri.org/", "urn:other")).await;
    assert_fault(s, &r, 500, "s:Client", "unknown operation");
    let (s, r) = post(&app, None, find.replace(SOAP_ENV, "http://www.w3.org/2003/05/soap-envelope")).await;
    assert_fault(s, &r, 500, "s:VersionMismatch", "SOAP 1.2");
    let (s, r) = post(&app, None, format!(r#"<s:Envelope xmlns:s="{SOAP_ENV}"><s:Header/></s:Envelope>"#)).await;
    assert_fault(s, &r, 500, "s:Client", "no Body");
    let (s, r) = post(&app, None, format!(r#"<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>  </s:Body></s:Envelope>"#)).await;
    assert_fault(s, &r, 500, "s:Client", "no operation");
    let (s, r) =
        post(&app, None, find.replace("<s:Body>", r#"<s:Header><x:Sec xmlns:x="urn:sec" s:mustUnderstand="1"/></s:Header><s:Body>"#)).await;
    assert_fault(s, &r, 500, "s:MustUnderstand", "Sec");
    // a parameter given twice, or holding elements
    let (s, r) =
        post(&app, None, find.replace("</FindUser>", "<authServerPartnerUserLoginName>y</authServerPartnerUserLoginName></FindUser>"))
            .await;
    assert_fault(s, &r, 500, "s:Client", "more than once");
    let (s, r) = post(&app, None, find.replace(">x<", "><b>x</b><")).await;
    assert_fault(s, &r, 500, "s:Client", "must hold text");
    // other verbs
    let r = app.client.put(url(&app)).body(find.clone()).send().await.expect("put");
    assert_eq!(r.status(), 405);
    assert!(r.text().await.expect("body").contains("<faultcode>s:Client</faultcode>"));

    // still serving, and the SOAPAction-less request worked
    let r = call(&app, "AddUser", &[("authServerPartnerUserLoginName", "after")]).await;
    assert_eq!(error_code(&r), 0, "{r}");
}

/// One element of the WSDL: (namespace, local name, attributes, ancestors as (ns, local)).
type WsdlElement = (String, String, Vec<(String, String)>, Vec<(String, String)>);

/// Parses the whole WSDL with quick-xml (namespace-aware) into its elements.
fn wsdl_elements(xml: &str) -> Vec<WsdlElement> {
    let mut r = NsReader::from_str(xml);
    r.config_mut().expand_empty_elements = true;
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    loop {
        let (ns, ev) = r.read_resolved_event().expect("the WSDL parses");
        let ns = match ns {
            ResolveResult::Bound(n) => n.into_inner().to_string(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => panic!("unbound prefix {p}"),
        };
        match ev {
            Event::Start(e) => {
                let name = e.local_name().into_inner().to_string();
                let attrs = e
                    .attributes()
                    .map(|a| {
                        let a = a.expect("attribute");
                        (a.key.into_inner().to_string(), a.value.into_owned())
                    })
                    .collect();
                out.push((ns.clone(), name.clone(), attrs, stack.clone()));
                stack.push((ns, name));
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::DocType(_) => panic!("DOCTYPE in the WSDL"),
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements in the WSDL");
    out
}

fn attr<'a>(e: &'a WsdlElement, name: &str) -> Option<&'a str> {
    e.2.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
const WSAW: &str = "http://www.w3.org/2006/05/addressing/wsdl";
const WSDL_SOAP: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
const XS: &str = "http://www.w3.org/2001/XMLSchema";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsdl_is_complete_and_well_formed() {
    let app = spawn_app(Backend::Sqlite).await;
    let methods: BTreeSet<String> = OPERATIONS.iter().map(|o| o.method.to_string()).collect();
    assert_eq!(methods.len(), 24);
    for q in ["wsdl", "singleWsdl", "WSDL"] {
        let r = app.client.get(format!("{}?{q}", url(&app))).send().await.expect("get");
        assert_eq!(r.status(), 200, "?{q}");
        assert_eq!(r.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/xml; charset=utf-8"));
        let text = r.text().await.expect("text");
        well_formed(&text).unwrap_or_else(|e| panic!("WSDL not well-formed: {e}"));
        let els = wsdl_elements(&text);
        let root = &els[0];
        assert_eq!(
            (root.0.as_str(), root.1.as_str(), attr(root, "targetNamespace")),
            (WSDL_NS, "definitions", Some("http://tempuri.org/"))
        );
        let under = |parent: &str, local: &str| -> BTreeSet<String> {
            els.iter()
                .filter(|e| e.0 == WSDL_NS && e.1 == local && e.3.last().is_some_and(|(n, l)| n == WSDL_NS && l == parent))
                .filter_map(|e| attr(e, "name").map(str::to_string))
                .collect()
        };
        // port type and binding name every operation of the description, and nothing else
        let port_types: Vec<&WsdlElement> = els.iter().filter(|e| e.0 == WSDL_NS && e.1 == "portType").collect();
        assert_eq!(port_types.len(), 1);
        assert_eq!(attr(port_types[0], "name"), Some("ISurePassAuthServerWCFService"));
        assert_eq!(under("portType", "operation"), methods);
        assert_eq!(under("binding", "operation"), methods);
        // every port-type input and output carries its wsaw:Action (WCF's importer reads the
        // actions from these alone), wsaw declared on the root, one part named parameters
        assert!(text.contains(&format!(r#"xmlns:wsaw="{WSAW}""#)), "wsaw not declared");
        for (dir, suffix) in [("input", ""), ("output", "Response")] {
            let actions: BTreeSet<String> = els
                .iter()
                .filter(|e| e.0 == WSDL_NS && e.1 == dir && e.3.last().is_some_and(|(n, l)| n == WSDL_NS && l == "operation"))
                .filter(|e| e.3.iter().any(|(n, l)| n == WSDL_NS && l == "portType"))
                .map(|e| attr(e, "wsaw:Action").unwrap_or_else(|| panic!("{dir} without wsaw:Action")).to_string())
                .collect();
            assert_eq!(actions, methods.iter().map(|m| format!("{ACTION}{m}{suffix}")).collect(), "{dir}");
        }
        for op in OPERATIONS {
            let m = op.method;
            let input = format!(r#"<wsdl:input wsaw:Action="{ACTION}{m}" message="tns:ISurePassAuthServerWCFService_{m}_InputMessage"/>"#);
            let output = format!(
                r#"<wsdl:output wsaw:Action="{ACTION}{m}Response" message="tns:ISurePassAuthServerWCFService_{m}_OutputMessage"/>"#
            );
            assert!(text.contains(&input) && text.contains(&output), "{m}");
        }
        let parts: Vec<&WsdlElement> = els.iter().filter(|e| e.0 == WSDL_NS && e.1 == "part").collect();
        assert_eq!(parts.len(), 48);
        assert!(parts.iter().all(|p| attr(p, "name") == Some("parameters")));
        // SOAPAction per operation, document style, literal bodies, SOAP over HTTP
        let actions: BTreeSet<String> = els
            .iter()
            .filter(|e| e.0 == WSDL_SOAP && e.1 == "operation")
            .filter_map(|e| attr(e, "soapAction").map(str::to_string))
            .collect();
        assert_eq!(actions, methods.iter().map(|m| format!("{ACTION}{m}")).collect());
        assert!(els.iter().filter(|e| e.0 == WSDL_SOAP && e.1 == "operation").all(|e| attr(e, "style") == Some("document")));
        assert!(els.iter().filter(|e| e.0 == WSDL_SOAP && e.1 == "body").all(|e| attr(e, "use") == Some("literal")));
        let binding = els.iter().find(|e| e.0 == WSDL_SOAP && e.1 == "binding").expect("soap:binding");
        assert_eq!(attr(binding, "transport"), Some("http://schemas.xmlsoap.org/soap/http"));
        // the address is where we reached the server
        let address = els.iter().find(|e| e.0 == WSDL_SOAP && e.1 == "address").expect("soap:address");
        assert_eq!(attr(address, "location"), Some(format!("http://{}{PATH}", app.addr).as_str()));
        // types: a wrapper and a response element per operation; every referenced type is defined
        let schema_elements: BTreeSet<String> = els
            .iter()
            .filter(|e| e.0 == XS && e.1 == "element" && e.3.last().is_some_and(|(n, l)| n == XS && l == "schema"))
            .filter_map(|e| attr(e, "name").map(str::to_string))
            .collect();
        for m in &methods {
            assert!(schema_elements.contains(m) && schema_elements.contains(&format!("{m}Response")), "{m}");
        }
        let defined: BTreeSet<String> = els
            .iter()
            .filter(|e| e.0 == XS && (e.1 == "complexType" || e.1 == "simpleType"))
            .filter_map(|e| attr(e, "name").map(str::to_string))
            .collect();
        for e in els.iter().filter(|e| e.0 == XS && e.1 == "element") {
            let ty = attr(e, "type").unwrap_or("");
            if let Some(local) = ty.split_once(':').filter(|(p, _)| *p != "xs").map(|(_, l)| l) {
                assert!(defined.contains(local), "type {ty} is not defined");
            }
        }
        for op in OPERATIONS {
            assert!(defined.contains(op.result.name), "{}", op.result.name);
            let result_el = els.iter().find(|e| e.0 == XS && e.1 == "element" && attr(e, "name") == Some(&format!("{}Result", op.method)));
            assert_eq!(result_el.and_then(|e| attr(e, "type")), Some(format!("q:{}", op.result.name).as_str()));
        }
        // the data-contract schema, FindUserFilterType's values
        assert!(els.iter().any(|e| e.0 == XS && e.1 == "schema" && attr(e, "targetNamespace") == Some(DC)));
        let enums: Vec<&str> = els.iter().filter(|e| e.0 == XS && e.1 == "enumeration").filter_map(|e| attr(e, "value")).collect();
        assert_eq!(enums, vec!["Username", "Email", "LoginName"]);
    }
    // soap:address from the Host header (and X-Forwarded-Proto behind a proxy)
    let r = app
        .client
        .get(format!("{}?wsdl", url(&app)))
        .header("Host", "mfa.example.com:8443")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .expect("get");
    let text = r.text().await.expect("text");
    assert!(text.contains(&format!(r#"<soap:address location="https://mfa.example.com:8443{PATH}"/>"#)), "{text}");
    // a hostile Host cannot inject markup
    let r = app.client.get(format!("{}?wsdl", url(&app))).header("Host", "a\"><x").send().await.expect("get");
    let text = r.text().await.expect("text");
    well_formed(&text).expect("well-formed");
    assert!(text.contains(&format!(r#"<soap:address location="http://localhost{PATH}"/>"#)));
    // the help page and unknown queries
    let r = app.client.get(url(&app)).send().await.expect("get");
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("text").contains("?wsdl"));
    let r = app.client.get(format!("{}?xsd=xsd0", url(&app))).send().await.expect("get");
    assert_eq!(r.status(), 404);
}

/// Every operation of the description calls a `type` the catalogue knows, and every parameter
/// fills a field that operation declares (username is every WCF method's common parameter).
/// Fails until every JSON operation behind a WCF method is implemented.
#[test]
fn every_operation_maps_to_a_catalogue_type_and_its_fields() {
    let mut missing_types = Vec::new();
    let mut unknown_fields = Vec::new();
    for op in OPERATIONS {
        let Some(spec) = tessera_core::catalog::lookup(op.json_type) else {
            missing_types.push(format!("{} -> {}", op.method, op.json_type));
            continue;
        };
        for p in op.params {
            let known =
                matches!(p.json, "spAccountLoginName" | "spAccountLoginKey" | "username") || spec.fields.iter().any(|f| f.name == p.json);
            // EnrollUser's extra parameters are documented as ignored by the reference (§4.8)
            let ignored = op.method == "EnrollUser" && !matches!(p.json, "deviceType" | "otpType" | "notificationMethod");
            if !known && !ignored {
                unknown_fields.push(format!("{}.{} -> {}.{}", op.method, p.name, op.json_type, p.json));
            }
        }
    }
    assert!(missing_types.is_empty(), "WCF methods whose JSON type is not implemented: {missing_types:?}");
    assert!(unknown_fields.is_empty(), "WCF parameters mapped to fields the JSON operation does not read: {unknown_fields:?}");
    assert!(ops::lookup("AssginDevice").is_some(), "the vendor's spelling");
}

/// RFC 4226 Appendix D: seed "12345678901234567890", counters 0..9.
const RFC4226_SEED_HEX: &str = "3132333435363738393031323334353637383930";
const RFC4226: [&str; 10] = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];

/// The OATH, delivery and U2F methods reach their JSON twins with the parameters renamed.
async fn oath_delivery_and_u2f_methods(b: Backend) {
    let app = spawn_app(b).await;
    assert_code(&app.call("add_user", json!({"username": "otp", "email": "otp@example.com"})).await, 0);
    let dev =
        app.call("add_oath_device", json!({"username": "otp", "secretKeyHex": RFC4226_SEED_HEX, "otpType": 1, "psn": "TESS-SOAP-1"})).await;
    assert_code(&dev, 0);
    let device_id = dev["deviceId"].as_str().expect("deviceId").to_string();
    let user = ("authServerPartnerUserLoginName", "otp");
    let psn = ("printedSerialNumber", "TESS-SOAP-1");

    let r = call(&app, "ActiveDevice", &[user, ("otp1", RFC4226[0]), ("otp2", RFC4226[1]), psn]).await;
    assert_eq!(r, wcf_reply("ActiveDevice", "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg>"));
    let r = call(&app, "ValidateOTP", &[user, ("authOtp", RFC4226[2]), psn]).await;
    assert_eq!(r, wcf_reply("ValidateOTP", "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg>"));
    assert_eq!(error_code(&call(&app, "ValidateOTP", &[user, ("authOtp", RFC4226[2]), psn]).await), 9002);
    assert_eq!(error_code(&call(&app, "SynchronizeDevice", &[user, ("otp1", RFC4226[5]), ("otp2", RFC4226[6]), psn]).await), 0);
    assert_eq!(error_code(&call(&app, "ValidateOTP", &[user, ("authOtp", RFC4226[7]), ("printedSerialNumber", "")]).await), 0);

    let found = wcf_reply(
        "FindDevice",
        &format!(
            "<a:Assigned>1</a:Assigned><a:DeviceId>{device_id}</a:DeviceId><a:DeviceStatus>0</a:DeviceStatus><a:DeviceType>13</a:DeviceType>\
             <a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg><a:OtpType>1</a:OtpType><a:Psn>TESS-SOAP-1</a:Psn><a:Username>otp</a:Username>"
        ),
    );
    assert_eq!(call(&app, "FindDevice", &[user, psn]).await, found);
    let r = call(&app, "FindUser", &[user]).await;
    assert_eq!(member(&r, "TokenID").as_deref(), Some(device_id.as_str()), "{r}");
    assert_eq!(member(&r, "Psn").as_deref(), Some("TESS-SOAP-1"), "{r}");

    let r = call(&app, "ProvisionQRCode", &[user, ("deviceID", &device_id), ("accountName", "otp@example.com")]).await;
    assert_eq!(error_code(&r), 0, "{r}");
    assert!(member(&r, "QRCodeURL").unwrap_or_default().starts_with("data:image/"), "{r}");
    assert!(member(&r, "OtpauthUri").unwrap_or_default().starts_with("otpauth://hotp/"), "{r}");

    assert_eq!(error_code(&call(&app, "UnassignDevice", &[user, psn]).await), 0);
    assert_eq!(member(&call(&app, "FindDevice", &[psn]).await, "Assigned").as_deref(), Some("0"));
    assert_eq!(error_code(&call(&app, "AssginDevice", &[user, psn, ("force", "true")]).await), 0);
    assert_eq!(call(&app, "FindDevice", &[user, psn]).await, found);

    // SendOTP: deliveryMethod 0/1/2 are sms/email/voice; anything else is the service's 9044
    assert_eq!(error_code(&call(&app, "SendOTP", &[user, ("printedSerialNumber", ""), ("deliveryMethod", "7")]).await), 9044);
    let r = call(&app, "SendOTP", &[user, ("printedSerialNumber", ""), ("deliveryMethod", "1")]).await;
    assert_eq!(r, wcf_reply("SendOTP", "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg>"));

    // U2F
    let r = call(
        &app,
        "AddU2FUser",
        &[
            ("firstName", "Una"),
            ("lastName", "Key"),
            ("loginName", "u2f"),
            ("loginPassword", "pw-u2f"),
            ("email", "u2f@example.com"),
            ("mobilePhone", "+1(800)200-8411"),
            ("addDeviceOnly", "false"),
            ("notificationMethod", "0"),
        ],
    )
    .await;
    assert_eq!(error_code(&r), 0, "{r}");
    assert!(!member(&r, "DeviceId").unwrap_or_default().is_empty() && !member(&r, "Psn").unwrap_or_default().is_empty(), "{r}");
    let j = app.call("validate_user", json!({"username": "u2f", "pw": "pw-u2f"})).await;
    assert_code(&j, 0);
    assert_eq!(j["mobile"], "+1(800)200-8411");
    let r = call(
        &app,
        "EnrollUser",
        &[("loginName", "u2f"), ("deviceType", "12"), ("otpType", "8"), ("addDeviceOnly", "true"), ("notificationMethod", "0")],
    )
    .await;
    assert_eq!(error_code(&r), 0, "{r}");
    assert!(!member(&r, "Psn").unwrap_or_default().is_empty(), "{r}");
    // JSON's add_u2f_device answers errorMessage "", SOAP answers "OK" on every method
    assert_eq!(member(&r, "ErrorMsg").as_deref(), Some("OK"), "{r}");

    let u = ("authServerPartnerUserLoginName", "u2f");
    let app_id = ("appId", "https://rp.example.com");
    let r = call(&app, "EnrollAppU2FInit", &[u, app_id]).await;
    assert_eq!(error_code(&r), 0, "{r}");
    assert_eq!(member(&r, "ErrorMsg").as_deref(), Some("OK"));
    assert_eq!(app.call("pre_enroll", json!({"username": "u2f", "appId": "https://rp.example.com"})).await["errorMessage"], "");
    assert!(r.contains("<a:RegisterRequest><a:U2FRegisterRequest><a:AppId>https://rp.example.com</a:AppId><a:Challenge>"), "{r}");
    assert!(r.contains("<a:Version>U2F_V2</a:Version></a:U2FRegisterRequest></a:RegisterRequest><a:SignRequest/>"), "{r}");
    let session = member(&r, "SessionId").expect("SessionId");
    // a registration that does not verify is the service's U2F error, as a result
    let r = call(
        &app,
        "EnrollAppU2F",
        &[
            u,
            ("securityKeyName", "k1"),
            ("b64RegistrationData", "AAAA"),
            ("b64SessionId", &session),
            ("b64ClientData", "e30"),
            ("version", "U2F_V2"),
        ],
    )
    .await;
    assert!((9110..=9119).contains(&error_code(&r)), "{r}");
    // no key registered: nothing to sign, nothing to delete
    let r = call(&app, "SignAppU2FInit", &[app_id, u, ("printedSerialNumber", "")]).await;
    assert_ne!(error_code(&r), 0, "{r}");
    let r = call(&app, "SignAppU2F", &[u, ("b64SessionId", "bm9uZQ"), ("b64ClientData", "e30"), ("b64SignData", "AQAAAAE")]).await;
    assert!((9110..=9119).contains(&error_code(&r)), "{r}");
    let r = call(&app, "DeleteSecurityKey", &[u, app_id, ("keyIdentifier", "no such key"), ("keyIdentifierType", "1")]).await;
    assert_eq!(error_code(&r), 9114, "{r}");
}
api_test!(oath_delivery_and_u2f_methods);

/// `[soap] data_contract_namespace` moves the data contracts, in the WSDL and in every reply; the
/// rest of the contract (target namespace, actions, member order) stays as it is.
async fn data_contract_namespace_is_configurable(b: Backend) {
    const ACME: &str = "http://schemas.datacontract.org/2004/07/Acme.Auth";
    let app = spawn_app_with(b, |s| s.soap.data_contract_namespace = ACME.into()).await;
    let wsdl = app.client.get(format!("{}?wsdl", url(&app))).send().await.expect("get").text().await.expect("text");
    well_formed(&wsdl).expect("well-formed");
    assert!(!wsdl.contains(DC), "the default namespace is gone from the WSDL");
    let els = wsdl_elements(&wsdl);
    assert!(els.iter().any(|e| e.0 == XS && e.1 == "schema" && attr(e, "targetNamespace") == Some(ACME)));
    assert!(els.iter().any(|e| e.0 == XS && e.1 == "import" && attr(e, "namespace") == Some(ACME)));
    assert!(wsdl.contains(&format!(r#"<xs:schema elementFormDefault="qualified" targetNamespace="http://tempuri.org/" xmlns:q="{ACME}">"#)));

    let r = call(&app, "AddUser", &[("authServerPartnerUserLoginName", "ann"), ("email", "ann@example.com"), ("userStatus", "0")]).await;
    assert_eq!(r, wcf_reply("AddUser", "<a:ErrorCode>0</a:ErrorCode><a:ErrorMsg>OK</a:ErrorMsg>").replace(DC, ACME));
    let r = call(&app, "FindUser", &[("authServerPartnerUserLoginName", "nobody")]).await;
    assert_eq!(
        r,
        wcf_reply(
            "FindUser",
            &format!("{NIL_USER}<a:ErrorCode>9001</a:ErrorCode><a:ErrorMsg>User login failure [nobody]</a:ErrorMsg>{NIL_USER_TAIL}")
        )
        .replace(DC, ACME)
    );
    drop(app);

    // the target namespace itself: one schema holds the wrappers and the data contracts
    let app = spawn_app_with(b, |s| s.soap.data_contract_namespace = "http://tempuri.org/".into()).await;
    let wsdl = app.client.get(format!("{}?wsdl", url(&app))).send().await.expect("get").text().await.expect("text");
    let els = wsdl_elements(&wsdl);
    let schemas: Vec<&WsdlElement> = els.iter().filter(|e| e.0 == XS && e.1 == "schema").collect();
    assert_eq!(schemas.len(), 1, "one schema");
    assert!(!els.iter().any(|e| e.0 == XS && e.1 == "import"), "no self-import");
    assert!(els.iter().any(|e| e.0 == XS && e.1 == "complexType" && attr(e, "name") == Some("AuthServerResponseUserInfo")));
    let r = call(&app, "FindUser", &[("authServerPartnerUserLoginName", "nobody")]).await;
    assert!(r.contains(r#"<FindUserResult xmlns:a="http://tempuri.org/" "#), "{r}");
}
api_test!(data_contract_namespace_is_configurable);
