//! XML for EWS: a safe parser (no DTDs, size and node limits, namespace-aware) and a small
//! writer that emits the fixed prefixes calbridge uses (`s:` SOAP, `t:` types, `m:` messages).
//!
//! Parsing uses `roxmltree`: it resolves namespaces (EWS answers use `t:`, `m:`, default
//! namespaces and per-element redeclarations interchangeably), refuses documents with a DTD
//! (so entity expansion bombs never start) and stops at a node limit.

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
}

impl Default for Limits {
    /// 32 MiB and 4 million nodes: a full page of 512 calendar items with bodies fits with
    /// room to spare; anything larger is not an EWS answer calbridge asked for.
    fn default() -> Self {
        Limits { max_bytes: 32 * 1024 * 1024, max_nodes: 4_000_000 }
    }
}

/// Why a document or an element could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the XML is larger than the {limit}-byte limit ({size} bytes)")]
    TooLarge { size: usize, limit: usize },
    #[error("the XML contains a document type declaration (DTD), which EWS never sends; refused")]
    Dtd,
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

/// Parses a document: no DTD, at most `limits.max_nodes` nodes.
pub fn parse(text: &str, limits: Limits) -> Result<Document<'_>, WireError> {
    if text.len() > limits.max_bytes {
        return Err(WireError::TooLarge { size: text.len(), limit: limits.max_bytes });
    }
    let opts = roxmltree::ParsingOptions { allow_dtd: false, nodes_limit: limits.max_nodes };
    Document::parse_with_options(text, opts).map_err(|e| match e {
        roxmltree::Error::DtdDetected => WireError::Dtd,
        other => WireError::Malformed(other.to_string()),
    })
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

    #[test]
    fn a_dtd_is_refused_before_any_entity_is_expanded() {
        let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"#;
        assert_eq!(parse(bomb, Limits::default()).unwrap_err(), WireError::Dtd);
    }

    #[test]
    fn size_and_node_limits_hold() {
        let big = format!("<a>{}</a>", "<b/>".repeat(1000));
        let small = Limits { max_bytes: 100, max_nodes: 10_000 };
        assert!(matches!(parse(&big, small), Err(WireError::TooLarge { .. })));
        let few = Limits { max_bytes: 1 << 20, max_nodes: 100 };
        assert!(matches!(parse(&big, few), Err(WireError::Malformed(_))));
        assert!(parse(&big, Limits::default()).is_ok());
        assert!(matches!(decode(&[0xff, 0xfe, 0x00], Limits::default()), Err(WireError::Encoding)));
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
