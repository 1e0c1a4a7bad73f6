//! The SOAP envelope EWS uses — <https://learn.microsoft.com/exchange/client-developer/web-service-reference/ews-xml-elements-in-exchange>
//!
//! Requests carry, in `soap:Header`: `t:RequestServerVersion` (always), and optionally
//! `t:ExchangeImpersonation` (act as another mailbox) and `t:TimeZoneContext` (the zone in
//! which the server interprets and writes times without an offset). Responses carry
//! `t:ServerVersionInfo`. Failures the server cannot express as a response message come as
//! a `soap:Fault` with HTTP 500, its `detail` holding `m:ResponseCode` and, for throttling,
//! `t:MessageXml/t:Value[@Name="BackOffMilliseconds"]`.

use super::xml::{attrs, parse_num, Node, NodeExt, WireError, XmlWriter, NS_MESSAGES, NS_SOAP, NS_TYPES};

/// How impersonation names the mailbox to act as (`t:ConnectingSID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectingSid {
    PrimarySmtpAddress(String),
    SmtpAddress(String),
    PrincipalName(String),
    Sid(String),
}

impl ConnectingSid {
    /// The address or name it carries.
    pub fn value(&self) -> &str {
        match self {
            ConnectingSid::PrimarySmtpAddress(v)
            | ConnectingSid::SmtpAddress(v)
            | ConnectingSid::PrincipalName(v)
            | ConnectingSid::Sid(v) => v,
        }
    }
    fn element(&self) -> &'static str {
        match self {
            ConnectingSid::PrimarySmtpAddress(_) => "PrimarySmtpAddress",
            ConnectingSid::SmtpAddress(_) => "SmtpAddress",
            ConnectingSid::PrincipalName(_) => "PrincipalName",
            ConnectingSid::Sid(_) => "SID",
        }
    }
}

/// The request header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// `RequestServerVersion/@Version`: `Exchange2013_SP1`, `Exchange2016`, `Exchange2010_SP2`, …
    pub version: String,
    /// `ExchangeImpersonation/ConnectingSID`.
    pub impersonation: Option<ConnectingSid>,
    /// `TimeZoneContext/TimeZoneDefinition/@Id` (a Windows zone id).
    pub time_zone: Option<String>,
}

impl RequestHeader {
    pub fn new(version: impl Into<String>) -> Self {
        RequestHeader { version: version.into(), impersonation: None, time_zone: None }
    }

    fn write(&self, w: &mut XmlWriter) {
        w.open("soap:Header", &[]);
        w.empty("t:RequestServerVersion", &[("Version", &self.version)]);
        if let Some(sid) = &self.impersonation {
            w.open("t:ExchangeImpersonation", &[]).open("t:ConnectingSID", &[]);
            w.leaf(&format!("t:{}", sid.element()), sid.value());
            w.close("t:ConnectingSID").close("t:ExchangeImpersonation");
        }
        if let Some(tz) = &self.time_zone {
            w.open("t:TimeZoneContext", &[]).empty("t:TimeZoneDefinition", &[("Id", tz)]).close("t:TimeZoneContext");
        }
        w.close("soap:Header");
    }

    /// Reads a request's header (a request without one is read as Exchange2007_SP1, the
    /// schema's default).
    pub fn parse(header: Option<Node<'_, '_>>) -> Result<Self, WireError> {
        let mut h = RequestHeader::new("Exchange2007_SP1");
        let Some(header) = header else { return Ok(h) };
        if let Some(v) = header.t("RequestServerVersion") {
            h.version = v.attribute("Version").unwrap_or("Exchange2007_SP1").trim().to_string();
        }
        if let Some(imp) = header.t("ExchangeImpersonation") {
            let sid =
                imp.t("ConnectingSID").ok_or_else(|| WireError::missing("ExchangeImpersonation/ConnectingSID"))?;
            let el = sid.elements().next().ok_or_else(|| WireError::missing("ConnectingSID's address"))?;
            let v = el.text_or_empty().trim().to_string();
            h.impersonation = Some(match el.local() {
                "PrimarySmtpAddress" => ConnectingSid::PrimarySmtpAddress(v),
                "SmtpAddress" => ConnectingSid::SmtpAddress(v),
                "PrincipalName" => ConnectingSid::PrincipalName(v),
                "SID" => ConnectingSid::Sid(v),
                other => return Err(WireError::invalid("ConnectingSID", other)),
            });
        }
        if let Some(tz) = header.t("TimeZoneContext").and_then(|c| c.t("TimeZoneDefinition")) {
            h.time_zone = tz.attribute("Id").map(str::to_string);
        }
        Ok(h)
    }
}

/// `t:ServerVersionInfo`, the response header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerVersionInfo {
    pub major_version: u32,
    pub minor_version: u32,
    pub major_build_number: u32,
    pub minor_build_number: u32,
    /// `V2_23`, `Exchange2013_SP1`, …
    pub version: Option<String>,
}

impl ServerVersionInfo {
    /// Exchange Server 2019 CU12 (15.2.1118.7), what the simulator reports.
    pub fn exchange2019() -> Self {
        ServerVersionInfo {
            major_version: 15,
            minor_version: 2,
            major_build_number: 1118,
            minor_build_number: 7,
            version: Some("V2017_07_11".into()),
        }
    }

    fn write(&self, w: &mut XmlWriter) {
        let (a, b, c, d) = (
            self.major_version.to_string(),
            self.minor_version.to_string(),
            self.major_build_number.to_string(),
            self.minor_build_number.to_string(),
        );
        let list = attrs(&[
            ("MajorVersion", Some(&a)),
            ("MinorVersion", Some(&b)),
            ("MajorBuildNumber", Some(&c)),
            ("MinorBuildNumber", Some(&d)),
            ("Version", self.version.as_deref()),
        ]);
        w.open("soap:Header", &[]).empty("t:ServerVersionInfo", &list).close("soap:Header");
    }

    pub fn parse(node: Node<'_, '_>) -> Result<Self, WireError> {
        let num = |name: &str| -> Result<u32, WireError> {
            node.attribute(name).map(|v| parse_num(name, v)).transpose().map(|v| v.unwrap_or(0))
        };
        Ok(ServerVersionInfo {
            major_version: num("MajorVersion")?,
            minor_version: num("MinorVersion")?,
            major_build_number: num("MajorBuildNumber")?,
            minor_build_number: num("MinorBuildNumber")?,
            version: node.attribute("Version").map(str::to_string),
        })
    }
}

const ENVELOPE_OPEN: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/""#,
    r#" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types""#,
    r#" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages""#,
    r#" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#
);

/// A whole request envelope around `body` (the operation element, e.g. `<m:GetItem>…`).
pub fn request(header: &RequestHeader, body: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::new();
    w.raw(ENVELOPE_OPEN);
    header.write(&mut w);
    w.open("soap:Body", &[]);
    body(&mut w);
    w.close("soap:Body").close("soap:Envelope");
    w.finish()
}

/// A whole response envelope.
pub fn response(info: &ServerVersionInfo, body: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::new();
    w.raw(ENVELOPE_OPEN);
    info.write(&mut w);
    w.open("soap:Body", &[]);
    body(&mut w);
    w.close("soap:Body").close("soap:Envelope");
    w.finish()
}

/// The parts of a parsed envelope.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a, 'input> {
    pub header: Option<Node<'a, 'input>>,
    /// The first element of `soap:Body` (the operation, its response, or `soap:Fault`).
    pub body: Node<'a, 'input>,
}

/// Finds the header and the body's first element. The SOAP 1.1 namespace is required.
pub fn split<'a, 'input>(doc: &'a roxmltree::Document<'input>) -> Result<Envelope<'a, 'input>, WireError> {
    let root = doc.root_element();
    if !root.is(NS_SOAP, "Envelope") {
        return Err(WireError::Unexpected {
            expected: format!("a SOAP 1.1 {{{NS_SOAP}}}Envelope"),
            found: format!("{{{}}}{}", root.tag_name().namespace().unwrap_or(""), root.local()),
        });
    }
    let header = root.child(NS_SOAP, "Header");
    let body = root.child(NS_SOAP, "Body").ok_or_else(|| WireError::missing("soap:Body"))?;
    let first = body.elements().next().ok_or_else(|| WireError::missing("the operation element in soap:Body"))?;
    Ok(Envelope { header, body: first })
}

/// A `soap:Fault`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `faultcode`, e.g. `a:ErrorServerBusy` or `soap:Client`.
    pub fault_code: String,
    pub fault_string: String,
    /// `detail/e:ResponseCode` (`ErrorServerBusy`, `ErrorSchemaValidation`, …).
    pub response_code: Option<String>,
    /// `detail/e:Message`.
    pub message: Option<String>,
    /// `detail/t:MessageXml/t:Value[@Name="BackOffMilliseconds"]`.
    pub back_off_ms: Option<u64>,
}

impl Fault {
    /// Reads a `soap:Fault` element; `None` when `node` is not one.
    pub fn parse(node: Node<'_, '_>) -> Option<Fault> {
        if !node.is(NS_SOAP, "Fault") {
            return None;
        }
        // faultcode/faultstring/detail are unqualified in SOAP 1.1.
        let plain = |name: &str| node.children().find(|c| c.is_element() && c.local() == name);
        let detail = plain("detail");
        let in_detail = |name: &str| {
            detail
                .and_then(|d| d.descendants().find(|c| c.is_element() && c.local() == name))
                .map(|n| n.text_or_empty())
        };
        let back_off_ms = detail
            .and_then(|d| {
                d.descendants().find(|c| c.is(NS_TYPES, "Value") && c.attribute("Name") == Some("BackOffMilliseconds"))
            })
            .and_then(|v| v.text_or_empty().trim().parse().ok());
        Some(Fault {
            fault_code: plain("faultcode").map(|n| n.text_or_empty().trim().to_string()).unwrap_or_default(),
            fault_string: plain("faultstring").map(|n| n.text_or_empty().trim().to_string()).unwrap_or_default(),
            response_code: in_detail("ResponseCode").map(|s| s.trim().to_string()),
            message: in_detail("Message").map(|s| s.trim().to_string()),
            back_off_ms,
        })
    }

    /// The whole fault envelope, as Exchange writes it (HTTP 500).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        w.raw(r#"<?xml version="1.0" encoding="utf-8"?>"#);
        w.open("s:Envelope", &[("xmlns:s", NS_SOAP)]).open("s:Body", &[]).open("s:Fault", &[]);
        let code = self.response_code.as_deref().unwrap_or("ErrorInternalServerError");
        let qualified = if self.fault_code.is_empty() { format!("a:{code}") } else { self.fault_code.clone() };
        w.open("faultcode", &[("xmlns:a", "http://schemas.microsoft.com/exchange/services/2006/types")]);
        w.raw(&super::xml::escape(&qualified));
        w.close("faultcode");
        w.leaf_with("faultstring", &[("xml:lang", "en-US")], &self.fault_string);
        w.open("detail", &[]);
        w.leaf_with(
            "e:ResponseCode",
            &[("xmlns:e", "http://schemas.microsoft.com/exchange/services/2006/errors")],
            code,
        );
        if let Some(m) = &self.message {
            w.leaf_with("e:Message", &[("xmlns:e", "http://schemas.microsoft.com/exchange/services/2006/errors")], m);
        }
        if let Some(ms) = self.back_off_ms {
            w.open("t:MessageXml", &[("xmlns:t", NS_TYPES)]);
            w.leaf_with("t:Value", &[("Name", "BackOffMilliseconds")], &ms.to_string());
            w.close("t:MessageXml");
        }
        w.close("detail").close("s:Fault").close("s:Body").close("s:Envelope");
        w.finish()
    }
}

/// `ResponseClass` of a response message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseClass {
    Success,
    Warning,
    Error,
}

impl ResponseClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseClass::Success => "Success",
            ResponseClass::Warning => "Warning",
            ResponseClass::Error => "Error",
        }
    }
}

/// The status part every `*ResponseMessage` has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub class: ResponseClass,
    /// `NoError`, `ErrorItemNotFound`, `ErrorInvalidSyncStateData`, …
    pub code: String,
    pub text: Option<String>,
    /// `MessageXml/Value[@Name]` pairs (e.g. `BackOffMilliseconds`).
    pub values: Vec<(String, String)>,
}

impl Status {
    pub fn ok() -> Self {
        Status { class: ResponseClass::Success, code: "NoError".into(), text: None, values: vec![] }
    }

    pub fn error(code: &str, text: impl Into<String>) -> Self {
        Status { class: ResponseClass::Error, code: code.into(), text: Some(text.into()), values: vec![] }
    }

    pub fn is_success(&self) -> bool {
        self.class != ResponseClass::Error
    }

    /// `BackOffMilliseconds`, when the server sent it.
    pub fn back_off_ms(&self) -> Option<u64> {
        self.values.iter().find(|(k, _)| k == "BackOffMilliseconds").and_then(|(_, v)| v.trim().parse().ok())
    }

    /// Reads `@ResponseClass`, `m:MessageText`, `m:ResponseCode`, `m:MessageXml`.
    pub fn parse(msg: Node<'_, '_>) -> Result<Self, WireError> {
        let class = match msg.attribute("ResponseClass").unwrap_or("Success") {
            "Success" => ResponseClass::Success,
            "Warning" => ResponseClass::Warning,
            "Error" => ResponseClass::Error,
            other => return Err(WireError::invalid("ResponseClass", other)),
        };
        let code = msg.m_text("ResponseCode").map(|s| s.trim().to_string()).unwrap_or_else(|| match class {
            ResponseClass::Error => "ErrorInternalServerError".into(),
            _ => "NoError".into(),
        });
        let values = msg
            .m("MessageXml")
            .map(|x| {
                x.descendants()
                    .filter(|v| v.is(NS_TYPES, "Value"))
                    .map(|v| (v.attribute("Name").unwrap_or_default().to_string(), v.text_or_empty().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Status { class, code, text: msg.m_text("MessageText").map(str::to_string), values })
    }

    /// Opens `<m:{element} ResponseClass="…">` and writes the status children; the caller
    /// adds the payload and closes the element.
    pub fn open(&self, w: &mut XmlWriter, element: &str) {
        w.open(element, &[("ResponseClass", self.class.as_str())]);
        if let Some(t) = &self.text {
            w.leaf("m:MessageText", t);
        }
        w.leaf("m:ResponseCode", &self.code);
        if self.class != ResponseClass::Success {
            w.num_opt("m:DescriptiveLinkKey", Some(0));
        }
        if !self.values.is_empty() {
            w.open("m:MessageXml", &[]);
            for (k, v) in &self.values {
                w.leaf_with("t:Value", &[("Name", k)], v);
            }
            w.close("m:MessageXml");
        }
    }
}

/// The response messages of an operation's answer: `…Response/m:ResponseMessages/*`.
pub fn response_messages<'a, 'input>(
    body: Node<'a, 'input>,
    operation: &str,
) -> Result<Vec<Node<'a, 'input>>, WireError> {
    let expected = format!("{operation}Response");
    if !body.is(NS_MESSAGES, &expected) {
        return Err(WireError::Unexpected { expected: format!("m:{expected}"), found: body.local().to_string() });
    }
    let msgs = body.m("ResponseMessages").ok_or_else(|| WireError::missing(format!("{expected}/ResponseMessages")))?;
    Ok(msgs.elements().collect())
}

/// Checks that `body` is the operation element `m:{operation}`.
pub fn expect_operation(body: Node<'_, '_>, operation: &str) -> Result<(), WireError> {
    if body.is(NS_MESSAGES, operation) {
        Ok(())
    } else {
        Err(WireError::Unexpected { expected: format!("m:{operation}"), found: body.local().to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::super::xml::{parse, Limits};
    use super::*;

    #[test]
    fn a_request_header_round_trips() {
        let mut h = RequestHeader::new("Exchange2016");
        h.impersonation = Some(ConnectingSid::PrimarySmtpAddress("room-1@contoso.com".into()));
        h.time_zone = Some("W. Europe Standard Time".into());
        let xml = request(&h, |w| {
            w.empty("m:GetFolder", &[]);
        });
        let doc = parse(&xml, Limits::default()).unwrap();
        let env = split(&doc).unwrap();
        assert_eq!(RequestHeader::parse(env.header).unwrap(), h);
        assert!(env.body.is(NS_MESSAGES, "GetFolder"));
    }

    #[test]
    fn a_fault_round_trips_with_its_back_off() {
        let f = Fault {
            fault_code: String::new(),
            fault_string: "The server cannot service this request right now. Try again later.".into(),
            response_code: Some("ErrorServerBusy".into()),
            message: Some("The server cannot service this request right now. Try again later.".into()),
            back_off_ms: Some(1500),
        };
        let xml = f.to_xml();
        let doc = parse(&xml, Limits::default()).unwrap();
        let env = split(&doc).unwrap();
        let back = Fault::parse(env.body).unwrap();
        assert_eq!(back.response_code.as_deref(), Some("ErrorServerBusy"));
        assert_eq!(back.back_off_ms, Some(1500));
        assert_eq!(back.fault_code, "a:ErrorServerBusy");
    }
}
