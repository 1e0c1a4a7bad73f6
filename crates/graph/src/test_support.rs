//! Test helpers: Microsoft's documented examples under `$CALBRIDGE_PROTOCOL_DIR`
//! (default: `shared/protocol` beside the workspace), read at run time.

use std::path::PathBuf;

/// Where the protocol reference files are.
pub fn protocol_dir() -> PathBuf {
    match std::env::var_os("CALBRIDGE_PROTOCOL_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/protocol")),
    }
}

/// One documented HTTP example: its first line, headers and body.
#[derive(Debug, Clone)]
pub struct HttpExample {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpExample {
    pub fn parse(text: &str) -> HttpExample {
        let text = text.replace("\r\n", "\n");
        let text = text.trim_start();
        let (head, body) = match text.find("\n\n") {
            Some(i) => (&text[..i], text[i + 2..].to_string()),
            None => (text, String::new()),
        };
        let mut lines = head.lines();
        let start_line = lines.next().unwrap_or("").trim().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        HttpExample { start_line, headers, body: body.trim().to_string() }
    }

    /// Request method.
    pub fn method(&self) -> &str {
        self.start_line.split_whitespace().next().unwrap_or("")
    }

    /// Request URL, without a trailing ` HTTP/1.1`.
    pub fn url(&self) -> &str {
        self.start_line.split_whitespace().nth(1).unwrap_or("")
    }

    /// The path of the request URL, without the query.
    pub fn path(&self) -> &str {
        let u = self.url();
        let u = u.split_once("://").map(|(_, r)| r).unwrap_or(u);
        let u = match u.find('/') {
            Some(i) if !self.url().starts_with('/') => &u[i..],
            _ => u,
        };
        u.split('?').next().unwrap_or(u)
    }

    /// Response status.
    pub fn status(&self) -> u16 {
        self.start_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads `{rel}` below the protocol folder; `None` (after printing why) when the protocol
/// files are not there, so the test can return early. Under CI they must be there.
pub fn protocol_file(rel: &str) -> Option<String> {
    let dir = protocol_dir();
    if !dir.exists() {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "protocol files not found at {}: in CI the protocol tests must run; set CALBRIDGE_PROTOCOL_DIR",
            dir.display()
        );
        println!("skipped: protocol files not found at {}", dir.display());
        return None;
    }
    let path = dir.join(rel);
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())))
}

/// Reads the documented HTTP example `graph/examples/{rel}` (see [`protocol_file`]).
pub fn example(rel: &str) -> Option<HttpExample> {
    protocol_file(&format!("graph/examples/{rel}")).map(|t| HttpExample::parse(&t))
}

/// The graph base URL the examples use.
pub fn graph_base() -> url::Url {
    url::Url::parse("https://graph.microsoft.com").unwrap()
}

/// Our request's path with `/v1.0/users/{email}` written as the docs' `/v1.0/me`.
pub fn as_me_path(url: &url::Url, email: &str) -> String {
    url.path().replacen(&format!("/v1.0/users/{email}"), "/v1.0/me", 1)
}

/// Microsoft Graph's v1.0 metadata (`graph/v1.0-Prod.csdl`, see [`protocol_file`]).
pub fn csdl() -> Option<String> {
    protocol_file("graph/v1.0-Prod.csdl")
}
