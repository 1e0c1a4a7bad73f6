//! XML for EWS: a safe parser (no DTDs, size and node limits, namespace-aware) and a small
//! writer that emits the fixed prefixes calbridge uses (`s:` SOAP, `t:` types, `m:` messages).
//!
//! Parsing uses `roxmltree`: it resolves namespaces (EWS answers use `t:`, `m:`, default
//! namespaces and per-element redeclarations interchangeably), refuses documents with a DTD
//! (so entity expansion bombs never start, and no external entity is ever fetched) and stops
//! at a node limit; [`parse`] adds a nesting-depth limit.

use std::fmt::Write as _;

pub use roxmltree::{Document, Node};

/// SOAP 1.1 envelope namespace.
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS types namespace (`t:`).
pub const NS_TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS messages namespace (`m:`).
pub const NS_MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// XML Schema instance namespace (`xsi:type`).
pub const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// What a document may cost before it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest document in bytes.
    pub max_bytes: usize,
    /// Most nodes (elements, attributes' owners, text) in one document.
    pub max_nodes: u32,
    /// Deepest element nesting (the root element is depth 1).
    pub max_depth: u32,
}

impl Default for Limits {
    /// 32 MiB, 4 million nodes and 128 levels: a full page of 512 calendar items with bodies
    /// fits with room to spare (EWS answers nest about a dozen levels deep); anything larger
    /// is not an EWS answer calbridge asked for.
    fn default() -> Self {
        Limits { max_bytes: 32 * 1024 * 1024, max_nodes: 4_000_000, max_depth: 128 }
    }
}

/// Why a document or an element could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the XML is larger than the {limit}-byte limit ({size} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("the XML contains a document type declaration (DTD), which EWS never sends; refused")]
    Dtd,
    #[error("the XML nests elements more than {limit} levels deep; refused")]
    TooDeep { limit: u32 },
    #[error("the XML is not well-formed: {0}")]
    Malformed(String),
    #[error("the XML is not valid UTF-8")]
    Encoding,
    #[error("{0} is missing")]
    Missing(String),
    #[error("{what} has an invalid value {value:?}")]
    Invalid { what: String, value: String },
    #[error("expected {expected}, found {found}")]
    Unexpected { expected: String, found: String },
}

impl WireError {
    pub fn missing(what: impl Into<String>) -> Self {
        WireError::Missing(what.into())
    }
    pub fn invalid(what: impl Into<String>, value: impl Into<String>) -> Self {
        let mut value: String = value.into();
        if value.len() > 80 {
            let mut cut = 80;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push('…');
        }
        WireError::Invalid { what: what.into(), value }
    }
}

/// Decodes bytes as UTF-8 (with or without a BOM), checking the size limit first.
pub fn decode(bytes: &[u8], limits: Limits) -> Result<&str, WireError> {
    if bytes.len() > limits.max_bytes {
        return Err(WireError::TooLarge { size: bytes.len(), limit: limits.max_bytes });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|_| WireError::Encoding)
}

/// Parses a document: no DTD, at most `limits.max_nodes` nodes, elements at most
/// `limits.max_depth` levels deep.
pub fn parse(text: &str, limits: Limits) -> Result<Document<'_>, WireError> {
    if text.len() > limits.max_bytes {
        return Err(WireError::TooLarge { size: text.len(), limit: limits.max_bytes });
    }
    // Before roxmltree sees the text: its parser recurses once per nesting level, so a
    // document of a few megabytes of `<a>` would overflow the stack (an abort, not an error)
    // long before the node limit stops it.
    if nests_deeper_than(text, limits.max_depth) {
        return Err(WireError::TooDeep { limit: limits.max_depth });
    }
    let opts = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: limits.max_nodes };
    Document::parse_with_options(text, opts).map_err(|e| match e {
        roxmltree::Error::DtdDetected => WireError::Dtd,
        other => WireError::Malformed(other.to_string()),
    })
}

/// Whether elements in `text` nest more than `max` levels deep, from the markup alone, in one
/// pass: comments, CDATA sections, processing instructions and quoted attribute values are
/// skipped; a start tag opens a level unless it ends in `/>`, an end tag closes one. Exact for
/// a well-formed document; on a malformed one it stops where the parser would fail.
fn nests_deeper_than(text: &str, max: u32) -> bool {
    let bytes = text.as_bytes();
    let mut depth: u32 = 0;
    let mut at = 0;
    // The index just past `marker`'s next occurrence from `from`, if any.
    let past = |from: usize, marker: &str| text.get(from..)?.find(marker).map(|i| from + i + marker.len());
    while let Some(i) = bytes.get(at..).and_then(|rest| rest.iter().position(|&b| b == b'<')) {
        let lt = at + i;
        let rest = &bytes[lt..];
        let next = if rest.starts_with(b"<!--") {
            past(lt + 4, "-->")
        } else if rest.starts_with(b"<![CDATA[") {
            past(lt + 9, "]]>")
        } else if rest.starts_with(b"<?") {
            past(lt + 2, "?>")
        } else if rest.starts_with(b"<!") {
            // A DOCTYPE: the parser refuses it.
            Some(lt + 2)
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            Some(lt + 2)
        } else {
            // A start tag: its end is the first `>` outside a quoted attribute value.
            let mut quote = None;
            let end = rest.iter().enumerate().skip(1).find_map(|(j, &b)| {
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => {}
                    None if b == b'"' || b == b'\'' => quote = Some(b),
                    None if b == b'>' => return Some(lt + j),
                    None => {}
                }
                None
            });
            if let Some(end) = end {
                if bytes[end - 1] != b'/' {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
            }
            end.map(|e| e + 1)
        };
        match next {
            Some(n) => at = n,
            // Unterminated markup: not well-formed, and nothing deeper follows.
            None => return false,
        }
    }
    false
}

/// Namespace-aware navigation over `roxmltree` nodes.
pub trait NodeExt<'a, 'input: 'a> {
    /// Is this an element `{ns}name`?
    fn is(&self, ns: &str, name: &str) -> bool;
    /// First child element `{ns}name`.
    fn child(&self, ns: &str, name: &str) -> Option<Node<'a, 'input>>;
    /// Child elements `{ns}name`.
    fn children_named(&self, ns: &'static str, name: &'static str) -> impl Iterator<Item = Node<'a, 'input>>;
    /// All child elements.
    fn elements(&self) -> impl Iterator<Item = Node<'a, 'input>>;
    /// Text of the first child element `{ns}name` (an empty element gives `""`).
    fn child_text(&self, ns: &str, name: &str) -> Option<&'a str>;
    /// The element's own text (`""` when empty).
    fn text_or_empty(&self) -> &'a str;
    /// First child element `t:name`.
    fn t(&self, name: &str) -> Option<Node<'a, 'input>> {
        self.child(NS_TYPES, name)
    }
    /// Text of the first child element `t:name`.
    fn t_text(&self, name: &str) -> Option<&'a str> {
        self.child_text(NS_TYPES, name)
    }
    /// First child element `m:name`.
    fn m(&self, name: &str) -> Option<Node<'a, 'input>> {
        self.child(NS_MESSAGES, name)
    }
    /// Text of the first child element `m:name`.
    fn m_text(&self, name: &str) -> Option<&'a str> {
        self.child_text(NS_MESSAGES, name)
    }
    /// The local name of this element.
    fn local(&self) -> &'a str;
}

impl<'a, 'input: 'a> NodeExt<'a, 'input> for Node<'a, 'input> {
    fn is(&self, ns: &str, name: &str) -> bool {
        self.is_element() && self.tag_name().name() == name && self.tag_name().namespace() == Some(ns)
    }
    fn child(&self, ns: &str, name: &str) -> Option<Node<'a, 'input>> {
        self.children().find(|c| c.is(ns, name))
    }
    fn children_named(&self, ns: &'static str, name: &'static str) -> impl Iterator<Item = Node<'a, 'input>> {
        self.children().filter(move |c| c.is(ns, name))
    }
    fn elements(&self) -> impl Iterator<Item = Node<'a, 'input>> {
        self.children().filter(|c| c.is_element())
    }
    fn child_text(&self, ns: &str, name: &str) -> Option<&'a str> {
        self.child(ns, name).map(|c| c.text_or_empty())
    }
    fn text_or_empty(&self) -> &'a str {
        self.text().unwrap_or("")
    }
    fn local(&self) -> &'a str {
        self.tag_name().name()
    }
}

/// Parses `true`/`false`/`1`/`0` (xs:boolean).
pub fn parse_bool(what: &str, s: &str) -> Result<bool, WireError> {
    match s.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(WireError::invalid(what, other)),
    }
}

/// Parses an integer element or attribute.
pub fn parse_num<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, WireError> {
    s.trim().parse().map_err(|_| WireError::invalid(what, s))
}

/// An optional boolean child `t:name`.
pub fn opt_bool(node: Node<'_, '_>, name: &str) -> Result<Option<bool>, WireError> {
    node.t_text(name).map(|s| parse_bool(name, s)).transpose()
}

/// An optional string child `t:name`, owned.
pub fn opt_string(node: Node<'_, '_>, name: &str) -> Option<String> {
    node.t_text(name).map(str::to_string)
}

/// Escapes text for element content and attribute values.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['<', '>', '&', '"', '\'', '\r']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for ch in s.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Drops characters XML 1.0 cannot carry (control characters other than tab, LF, CR).
fn xml_chars(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().all(|c| !(c < ' ' && c != '\t' && c != '\n' && c != '\r') && c != '\u{FFFE}' && c != '\u{FFFF}') {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .filter(|&c| !(c < ' ' && c != '\t' && c != '\n' && c != '\r') && c != '\u{FFFE}' && c != '\u{FFFF}')
            .collect(),
    )
}

/// Builds XML text. Element names are written as given (`t:Subject`); the envelope
/// declares the prefixes.
#[derive(Debug, Default)]
pub struct XmlWriter {
    buf: String,
}

impl XmlWriter {
    pub fn new() -> Self {
        XmlWriter { buf: String::with_capacity(4096) }
    }

    /// `<name a="v" ...>`
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(name);
        self.attrs(attrs);
        self.buf.push('>');
        self
    }

    /// `</name>`
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// `<name a="v" ... />`
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(name);
        self.attrs(attrs);
        self.buf.push_str(" />");
        self
    }

    /// `<name>text</name>`
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        self.leaf_with(name, &[], text)
    }

    /// `<name a="v">text</name>`
    pub fn leaf_with(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> &mut Self {
        self.open(name, attrs);
        self.buf.push_str(&escape(&xml_chars(text)));
        self.close(name)
    }

    /// `<name>text</name>` when there is a text.
    pub fn leaf_opt(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(name, t);
        }
        self
    }

    /// `<name>true|false</name>` when there is a value.
    pub fn bool_opt(&mut self, name: &str, v: Option<bool>) -> &mut Self {
        if let Some(v) = v {
            self.leaf(name, if v { "true" } else { "false" });
        }
        self
    }

    /// `<name>n</name>` when there is a value.
    pub fn num_opt<N: std::fmt::Display>(&mut self, name: &str, v: Option<N>) -> &mut Self {
        if let Some(v) = v {
            self.open(name, &[]);
            let _ = write!(self.buf, "{v}");
            self.close(name);
        }
        self
    }

    /// Appends already-built XML.
    pub fn raw(&mut self, xml: &str) -> &mut Self {
        self.buf.push_str(xml);
        self
    }

    fn attrs(&mut self, attrs: &[(&str, &str)]) {
        for (k, v) in attrs {
            self.buf.push(' ');
            self.buf.push_str(k);
            self.buf.push_str("=\"");
            self.buf.push_str(&escape(&xml_chars(v)));
            self.buf.push('"');
        }
    }

    pub fn finish(self) -> String {
        self.buf
    }

    pub fn as_str(&self) -> &str {
        &self.buf
    }
}

/// Attribute list with optional entries: `attrs(&[("Id", Some(id)), ("ChangeKey", ck)])`.
pub fn attrs<'a>(list: &[(&'a str, Option<&'a str>)]) -> Vec<(&'a str, &'a str)> {
    list.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic billion laughs: ten levels of ten references, 10^9 `lol`s if expanded.
    const BILLION_LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol9;</s:Body></s:Envelope>"#;

    /// An external entity (XXE) naming a local file.
    const XXE: &str = r#"<?xml version="1.0"?>
<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&xxe;</s:Body></s:Envelope>"#;

    /// A DOCTYPE with an internal subset and no entity at all.
    const INTERNAL_SUBSET: &str = r#"<?xml version="1.0"?>
<!DOCTYPE s:Envelope [<!ELEMENT s:Envelope ANY><!ATTLIST s:Envelope xmlns:s CDATA #FIXED "http://schemas.xmlsoap.org/soap/envelope/">]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>"#;

    /// `depth` nested elements inside a SOAP body.
    fn nested(depth: usize) -> String {
        format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{}{}</s:Body></s:Envelope>"#,
            "<a>".repeat(depth),
            "</a>".repeat(depth)
        )
    }

    #[test]
    fn a_dtd_is_refused_before_any_entity_is_expanded() {
        let started = std::time::Instant::now();
        for (name, doc) in [("billion laughs", BILLION_LAUGHS), ("XXE", XXE), ("internal subset", INTERNAL_SUBSET)] {
            let e = parse(doc, Limits::default()).unwrap_err();
            assert_eq!(e, WireError::Dtd, "{name}");
            assert_eq!(
                e.to_string(),
                "the XML contains a document type declaration (DTD), which EWS never sends; refused"
            );
        }
        // An external DTD, with no internal subset, is refused the same way (never fetched).
        let external = r#"<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>"#;
        assert_eq!(parse(external, Limits::default()).unwrap_err(), WireError::Dtd);
        // Refused at the declaration: nothing was expanded, so this took no time.
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn size_and_node_limits_hold() {
        let big = format!("<a>{}</a>", "<b/>".repeat(1000));
        let small = Limits { max_bytes: 100, ..Limits::default() };
        assert!(matches!(parse(&big, small), Err(WireError::TooLarge { .. })));
        assert_eq!(
            decode(big.as_bytes(), small).unwrap_err().to_string(),
            "the XML is larger than the 100-byte limit (4007 bytes)"
        );
        let few = Limits { max_nodes: 100, ..Limits::default() };
        assert!(matches!(parse(&big, few), Err(WireError::Malformed(_))));
        assert!(parse(&big, Limits::default()).is_ok());
        assert!(matches!(decode(&[0xff, 0xfe, 0x00], Limits::default()), Err(WireError::Encoding)));
        // The default size limit: one byte over 32 MiB is refused before it is decoded.
        let over = vec![b' '; Limits::default().max_bytes + 1];
        assert!(matches!(decode(&over, Limits::default()), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn deep_nesting_is_refused_by_the_depth_limit() {
        // The envelope and body are two levels: 126 more fit the default 128, 127 do not.
        assert!(parse(&nested(126), Limits::default()).is_ok());
        let e = parse(&nested(127), Limits::default()).unwrap_err();
        assert_eq!(e, WireError::TooDeep { limit: 128 });
        assert_eq!(e.to_string(), "the XML nests elements more than 128 levels deep; refused");
        // Far deeper (100,000 levels, 700 KB) fails the same way, and quickly.
        assert_eq!(parse(&nested(100_000), Limits::default()).unwrap_err(), WireError::TooDeep { limit: 128 });
        // Siblings are not depth: a wide document is fine.
        let wide = format!("<a>{}</a>", "<b><c/></b>".repeat(10_000));
        assert!(parse(&wide, Limits::default()).is_ok());
        // Markup that only looks like nesting does not count: comments, CDATA, processing
        // instructions, `>` and `/>` in attribute values, empty elements.
        let two = Limits { max_depth: 2, ..Limits::default() };
        let looks_deep = r#"<a><?pi <b><b>?><!-- <b><b> --><![CDATA[<b><b>]]><b x="/>" y='>'/><b z="<"></b><c/></a>"#;
        assert!(nests_deeper_than(looks_deep, 1));
        assert!(!nests_deeper_than(looks_deep, 2));
        assert!(matches!(parse(looks_deep, two), Err(WireError::Malformed(_))), "`<` in a value is not well-formed");
        assert!(parse(&looks_deep.replace(r#"z="<""#, r#"z="&lt;""#), two).is_ok());
        assert!(!nests_deeper_than("<a><b", 1), "unterminated markup ends the scan");
    }

    #[test]
    fn a_document_deeper_than_the_stack_is_an_error_not_an_abort() {
        // Regression: roxmltree's parser recurses once per level, and a few megabytes of
        // `<a>` overflowed a thread's stack (an abort of the whole process) before the node
        // limit was reached. The depth is now checked before the parser runs.
        let deep = "<a>".repeat(3_000_000);
        let e = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse(&deep, Limits::default()).unwrap_err())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(e, WireError::TooDeep { limit: 128 });
    }

    #[test]
    fn the_writer_escapes_text_and_attributes_and_drops_control_characters() {
        let mut w = XmlWriter::new();
        w.leaf_with("t:Subject", &[("A", "x\"<y>&'")], "R&D <review>\u{1}\tok");
        assert_eq!(w.finish(), "<t:Subject A=\"x&quot;&lt;y&gt;&amp;&apos;\">R&amp;D &lt;review&gt;\tok</t:Subject>");
    }

    #[test]
    fn navigation_resolves_namespaces_not_prefixes() {
        let xml = format!(
            r#"<x:Root xmlns:x="{NS_MESSAGES}"><Subject xmlns="{NS_TYPES}">a</Subject><q:Subject xmlns:q="{NS_MESSAGES}">b</q:Subject></x:Root>"#
        );
        let doc = parse(&xml, Limits::default()).unwrap();
        let root = doc.root_element();
        assert_eq!(root.t_text("Subject"), Some("a"));
        assert_eq!(root.m_text("Subject"), Some("b"));
        assert!(root.is(NS_MESSAGES, "Root"));
    }
}
