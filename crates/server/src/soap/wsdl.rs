//! The WSDL 1.1 document, generated from the operation description ([`super::ops`]): one
//! self-contained file (WCF's `?singleWsdl` shape) with the XSD types inline, carrying what a
//! WSDL that WCF emits for a basicHttpBinding endpoint carries, so that WCF's importers
//! (`svcutil`, "Add Service Reference") build a working proxy from it:
//!
//! * `http://tempuri.org/` schema: one wrapper element per operation (`<Method>`, its
//!   parameters in signature order) and one per reply (`<Method>Response` holding
//!   `<Method>Result`), `elementFormDefault="qualified"`, importing the data-contract schema.
//! * data-contract schema (the configured namespace, `[soap] data_contract_namespace`): every
//!   result type and array item type as a complex type whose members are in the order the
//!   replies carry them, `ArrayOf<Item>` types, and the enums (`FindUserFilterType`). When the
//!   data-contract namespace is the target namespace itself, the types share one schema.
//! * messages `<PortType>_<Method>_InputMessage` / `_OutputMessage`, each one part named
//!   `parameters` (document/literal wrapped).
//! * port type `ISurePassAuthServerWCFService` whose inputs and outputs carry `wsaw:Action`
//!   (`http://tempuri.org/ISurePassAuthServerWCFService/<Method>` and `…/<Method>Response`): WCF's
//!   importer takes an operation's actions from these attributes alone, and without them
//!   generates `Action="*"` proxies that send `SOAPAction: *`.
//! * binding `BasicHttpBinding_ISurePassAuthServerWCFService` (SOAP 1.1 over HTTP, document
//!   style, literal bodies, `soap:operation/@soapAction` = the input action), service
//!   `SurePassAuthServerWCFService` with the `soap:address` the caller reached us at.

use super::ops::{self, ComplexType, MemberType, Xsd, BINDING_NAME, ENUMS, ITEM_TYPES, OPERATIONS, PORT_TYPE, SERVICE_NAME, TNS};
use super::xml::escape;
use std::fmt::Write as _;

/// `xs:` type of a parameter or member, with `q:` for the data-contract namespace.
fn xsd_type(x: Xsd) -> String {
    match x {
        Xsd::String => "xs:string".into(),
        Xsd::Short => "xs:short".into(),
        Xsd::Int => "xs:int".into(),
        Xsd::Long => "xs:long".into(),
        Xsd::Boolean => "xs:boolean".into(),
        Xsd::Enum(e) => format!("q:{}", e.name),
    }
}

/// An element declaration as WCF writes it: optional, strings (and arrays) nillable.
fn element(out: &mut String, indent: &str, name: &str, ty: &str, nillable: bool) {
    let nil = if nillable { r#" nillable="true""# } else { "" };
    let _ = writeln!(out, r#"{indent}<xs:element minOccurs="0" name="{name}"{nil} type="{ty}"/>"#);
}

fn complex_type(out: &mut String, t: &ComplexType) {
    let _ = writeln!(out, r#"      <xs:complexType name="{}">"#, t.name);
    let _ = writeln!(out, "        <xs:sequence>");
    for m in t.members {
        match m.ty {
            MemberType::Scalar(x) => element(out, "          ", m.name, &xsd_type(x).replace("q:", "tns:"), !x.is_value_type()),
            MemberType::Array(item) => element(out, "          ", m.name, &format!("tns:ArrayOf{}", item.name), true),
        }
    }
    let _ = writeln!(out, "        </xs:sequence>");
    let _ = writeln!(out, "      </xs:complexType>");
    let _ = writeln!(out, r#"      <xs:element name="{0}" nillable="true" type="tns:{0}"/>"#, t.name);
}

fn array_type(out: &mut String, item: &ComplexType) {
    let _ = writeln!(out, r#"      <xs:complexType name="ArrayOf{}">"#, item.name);
    let _ = writeln!(out, "        <xs:sequence>");
    let _ = writeln!(
        out,
        r#"          <xs:element minOccurs="0" maxOccurs="unbounded" name="{0}" nillable="true" type="tns:{0}"/>"#,
        item.name
    );
    let _ = writeln!(out, "        </xs:sequence>");
    let _ = writeln!(out, "      </xs:complexType>");
    let _ = writeln!(out, r#"      <xs:element name="ArrayOf{0}" nillable="true" type="tns:ArrayOf{0}"/>"#, item.name);
}

/// WS-Addressing metadata namespace of the `wsaw:Action` attributes, as WCF writes them.
pub const WSAW: &str = "http://www.w3.org/2006/05/addressing/wsdl";

/// The data-contract types, enums and their global elements (the body of the data-contract schema).
fn data_contract_types(out: &mut String) {
    for t in ops::result_types() {
        complex_type(out, t);
    }
    for item in ITEM_TYPES {
        complex_type(out, item);
        array_type(out, item);
    }
    for e in ENUMS {
        let _ = writeln!(out, r#"      <xs:simpleType name="{}">"#, e.name);
        out.push_str("        <xs:restriction base=\"xs:string\">\n");
        for (wcf, _) in e.values {
            let _ = writeln!(out, r#"          <xs:enumeration value="{wcf}"/>"#);
        }
        out.push_str("        </xs:restriction>\n      </xs:simpleType>\n");
        let _ = writeln!(out, r#"      <xs:element name="{0}" nillable="true" type="tns:{0}"/>"#, e.name);
    }
}

/// The WSDL, with `location` (the endpoint URL) as the service port's `soap:address` and
/// `data_contract_ns` as the namespace of the data contracts.
pub fn document(location: &str, data_contract_ns: &str) -> String {
    let dc = escape(data_contract_ns);
    let shared_schema = data_contract_ns == TNS;
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let _ = writeln!(
        out,
        r#"<wsdl:definitions name="{SERVICE_NAME}" targetNamespace="{TNS}" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="{TNS}" xmlns:wsaw="{WSAW}">"#
    );
    let _ = writeln!(
        out,
        "  <wsdl:documentation>Tessera: SurePassID-compatible MFA server. SOAP 1.1 (WCF basicHttpBinding), document/literal wrapped. \
         Every operation calls the same service operation as its JSON twin at /AuthServer/REST/U2F/U2FServer.aspx. \
         Result members: ErrorCode (0 = success), ErrorMsg and the reply's fields in PascalCase; data contracts in {dc}.</wsdl:documentation>"
    );

    // types
    out.push_str("  <wsdl:types>\n");
    let _ = writeln!(out, r#"    <xs:schema elementFormDefault="qualified" targetNamespace="{TNS}" xmlns:q="{dc}">"#);
    if !shared_schema {
        let _ = writeln!(out, r#"      <xs:import namespace="{dc}"/>"#);
    }
    for op in OPERATIONS {
        let _ = writeln!(out, r#"      <xs:element name="{}">"#, op.method);
        out.push_str("        <xs:complexType>\n          <xs:sequence>\n");
        for p in op.params {
            element(&mut out, "            ", p.name, &xsd_type(p.xsd), !p.xsd.is_value_type());
        }
        out.push_str("          </xs:sequence>\n        </xs:complexType>\n      </xs:element>\n");
        let _ = writeln!(out, r#"      <xs:element name="{}Response">"#, op.method);
        out.push_str("        <xs:complexType>\n          <xs:sequence>\n");
        element(&mut out, "            ", &format!("{}Result", op.method), &format!("q:{}", op.result.name), true);
        out.push_str("          </xs:sequence>\n        </xs:complexType>\n      </xs:element>\n");
    }
    if shared_schema {
        data_contract_types(&mut out);
    } else {
        out.push_str("    </xs:schema>\n");
        let _ = writeln!(out, r#"    <xs:schema elementFormDefault="qualified" targetNamespace="{dc}" xmlns:tns="{dc}">"#);
        data_contract_types(&mut out);
    }
    out.push_str("    </xs:schema>\n  </wsdl:types>\n");

    // messages
    for op in OPERATIONS {
        let m = op.method;
        let _ = writeln!(out, r#"  <wsdl:message name="{PORT_TYPE}_{m}_InputMessage">"#);
        let _ = writeln!(out, r#"    <wsdl:part name="parameters" element="tns:{m}"/>"#);
        out.push_str("  </wsdl:message>\n");
        let _ = writeln!(out, r#"  <wsdl:message name="{PORT_TYPE}_{m}_OutputMessage">"#);
        let _ = writeln!(out, r#"    <wsdl:part name="parameters" element="tns:{m}Response"/>"#);
        out.push_str("  </wsdl:message>\n");
    }

    // port type
    let _ = writeln!(out, r#"  <wsdl:portType name="{PORT_TYPE}">"#);
    for op in OPERATIONS {
        let m = op.method;
        let _ = writeln!(out, r#"    <wsdl:operation name="{m}">"#);
        let (input, output) = (ops::soap_action(m), ops::reply_action(m));
        let _ = writeln!(out, r#"      <wsdl:input wsaw:Action="{input}" message="tns:{PORT_TYPE}_{m}_InputMessage"/>"#);
        let _ = writeln!(out, r#"      <wsdl:output wsaw:Action="{output}" message="tns:{PORT_TYPE}_{m}_OutputMessage"/>"#);
        out.push_str("    </wsdl:operation>\n");
    }
    out.push_str("  </wsdl:portType>\n");

    // binding
    let _ = writeln!(out, r#"  <wsdl:binding name="{BINDING_NAME}" type="tns:{PORT_TYPE}">"#);
    out.push_str("    <soap:binding transport=\"http://schemas.xmlsoap.org/soap/http\"/>\n");
    for op in OPERATIONS {
        let _ = writeln!(out, r#"    <wsdl:operation name="{}">"#, op.method);
        let _ = writeln!(out, r#"      <soap:operation soapAction="{}" style="document"/>"#, ops::soap_action(op.method));
        out.push_str("      <wsdl:input>\n        <soap:body use=\"literal\"/>\n      </wsdl:input>\n");
        out.push_str("      <wsdl:output>\n        <soap:body use=\"literal\"/>\n      </wsdl:output>\n");
        out.push_str("    </wsdl:operation>\n");
    }
    out.push_str("  </wsdl:binding>\n");

    // service
    let _ = writeln!(out, r#"  <wsdl:service name="{SERVICE_NAME}">"#);
    let _ = writeln!(out, r#"    <wsdl:port name="{BINDING_NAME}" binding="tns:{BINDING_NAME}">"#);
    let _ = writeln!(out, r#"      <soap:address location="{}"/>"#, escape(location));
    out.push_str("    </wsdl:port>\n  </wsdl:service>\n</wsdl:definitions>\n");
    out
}
