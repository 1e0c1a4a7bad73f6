//! Input rules shared by the resources. Each pushes a field error that says how to fix it.

use crate::extract::Check;
use crate::ApiState;

/// A display or unique name: 1-100 characters, not only spaces, no control characters.
pub fn name(check: &mut Check, field: &str, value: &str) {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        check.fail(field, "must not be empty; give it a name people recognise");
    } else if trimmed.chars().count() > 100 {
        check.fail(field, "is longer than 100 characters; shorten it");
    } else if trimmed.chars().any(char::is_control) {
        check.fail(field, "contains control characters; use plain text");
    }
}

/// Free text of at most `max` characters.
pub fn text(check: &mut Check, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        check.fail(field, format!("is longer than {max} characters; shorten it"));
    }
}

/// An SMTP address: local@domain, no spaces, at most 254 characters.
pub fn email(check: &mut Check, field: &str, value: &str) {
    let v = value.trim();
    let ok = v.len() <= 254
        && !v.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"' | ',' | ';'))
        && match v.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@') && !domain.starts_with('.')
            }
            None => false,
        };
    if !ok {
        check.fail(
            field,
            format!("{value:?} is not an e-mail address; use the mailbox's primary SMTP address (name@domain)"),
        );
    }
}

/// An http(s) URL whose host calbridge may send requests to.
pub fn http_url(check: &mut Check, state: &ApiState, field: &str, value: &str) {
    match url::Url::parse(value.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => {
            let host = u.host_str().unwrap_or_default();
            if !u.username().is_empty() || u.password().is_some() {
                check.fail(field, "must not carry a user name or password; credentials go in their own fields");
            } else if !state.host_allowed(host) {
                check.fail(
                    field,
                    format!("the host {host} is not among this server's allowed outbound hosts; use one of them"),
                );
            }
        }
        _ => check.fail(field, format!("{value:?} is not an http(s) URL; use e.g. https://example.com/path")),
    }
}

/// An id chosen by the caller: 1-128 characters of `A-Za-z0-9._-`.
pub fn client_id(check: &mut Check, field: &str, value: &str) {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        check.fail(field, "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
    }
}
