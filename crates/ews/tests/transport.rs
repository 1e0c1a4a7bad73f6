//! The transport against small HTTP/1.1 servers on 127.0.0.1 that count what they see:
//! the per-server concurrency limit, connection reuse, and NTLM signing in each connection
//! once (negotiate → challenge → authenticate), then carrying on without re-authenticating.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use calbridge_core::Secret;
use calbridge_ews::transport::{Credentials, Transport, TransportOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    requests: AtomicUsize,
    challenges: AtomicUsize,
    unauthenticated_refusals: AtomicUsize,
}

/// One request: its headers (lower-cased names) and body.
async fn read_request(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    loop {
        line.clear();
        r.read_line(&mut line).await.ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).await.ok()?;
    Some(headers)
}

fn challenge() -> String {
    let msg = ntlmclient::Message::Challenge(ntlmclient::ChallengeMessage {
        target_name: "FABRIKAM".into(),
        flags: ntlmclient::Flags::NEGOTIATE_UNICODE
            | ntlmclient::Flags::NEGOTIATE_NTLM
            | ntlmclient::Flags::NEGOTIATE_TARGET_INFO,
        challenge: [1, 2, 3, 4, 5, 6, 7, 8],
        context: (0, 0),
        target_information: vec![
            ntlmclient::TargetInfoEntry::from_string(ntlmclient::TargetInfoType::NtDomain, "FABRIKAM"),
            ntlmclient::TargetInfoEntry { entry_type: ntlmclient::TargetInfoType::Terminator, data: vec![] },
        ],
        os_version: Default::default(),
    });
    BASE64_STANDARD.encode(msg.to_bytes().unwrap())
}

/// A server answering every request with 200 after `delay`; with `ntlm`, a connection must
/// sign in first, and an authenticate message must name `FABRIKAM\svc`.
async fn server(delay: Duration, ntlm: bool) -> (String, Arc<Counters>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/EWS/Exchange.asmx", listener.local_addr().unwrap());
    let c = Arc::new(Counters::default());
    let counters = c.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            counters.connections.fetch_add(1, Ordering::SeqCst);
            let c = counters.clone();
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut read = BufReader::new(read);
                let mut signed_in = false;
                while let Some(headers) = read_request(&mut read).await {
                    c.requests.fetch_add(1, Ordering::SeqCst);
                    let auth = headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone());
                    let mut status = "200 OK";
                    let mut extra = String::new();
                    if ntlm && !signed_in {
                        match auth.as_deref().and_then(|a| a.strip_prefix("NTLM ")) {
                            Some(token) => {
                                let raw = BASE64_STANDARD.decode(token).unwrap();
                                match ntlmclient::Message::try_from(raw.as_slice()).unwrap() {
                                    ntlmclient::Message::Negotiate(_) => {
                                        c.challenges.fetch_add(1, Ordering::SeqCst);
                                        status = "401 Unauthorized";
                                        extra = format!("WWW-Authenticate: NTLM {}\r\n", challenge());
                                    }
                                    ntlmclient::Message::Authenticate(a) => {
                                        assert_eq!((a.domain_name.as_str(), a.user_name.as_str()), ("FABRIKAM", "svc"));
                                        assert!(a.ntlm_response.len() > 16, "an NTLMv2 response");
                                        signed_in = true;
                                    }
                                    other => panic!("unexpected NTLM message {other:?}"),
                                }
                            }
                            None => {
                                c.unauthenticated_refusals.fetch_add(1, Ordering::SeqCst);
                                status = "401 Unauthorized";
                                extra = "WWW-Authenticate: NTLM\r\n".into();
                            }
                        }
                    }
                    if status.starts_with("200") {
                        let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        c.peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        c.in_flight.fetch_sub(1, Ordering::SeqCst);
                    }
                    let body = "<ok/>";
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/xml; charset=utf-8\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if write.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, c)
}

fn options(max: u32) -> TransportOptions {
    TransportOptions {
        max_connections: max,
        max_in_flight: 64,
        request_timeout: Duration::from_secs(10),
        max_body_bytes: 1 << 20,
        user_agent: "calbridge-test".into(),
        ca_file: None,
    }
}

#[tokio::test]
async fn at_most_max_connections_requests_are_in_flight_per_server_and_connections_are_reused() {
    let (url, c) = server(Duration::from_millis(40), false).await;
    let creds = Credentials::Basic { username: "svc".into(), password: Secret::new("pw") };
    let t = Arc::new(Transport::new(&url, creds, options(3)).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move { t.send("<x/>".into(), Some("ann@fabrikam.example")).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().status, 200);
    }
    assert_eq!(c.peak.load(Ordering::SeqCst), 3, "three in flight at most, and three were");
    assert_eq!(c.requests.load(Ordering::SeqCst), 12);
    assert!(
        c.connections.load(Ordering::SeqCst) <= 3,
        "connections are kept and reused: {}",
        c.connections.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn ntlm_signs_in_each_connection_once_and_keeps_it() {
    let (url, c) = server(Duration::from_millis(5), true).await;
    let t = Arc::new(Transport::new(&url, Credentials::ntlm("FABRIKAM\\svc", Secret::new("pw")), options(2)).unwrap());
    for _ in 0..5 {
        assert_eq!(t.send("<x/>".into(), None).await.unwrap().status, 200);
    }
    assert_eq!(t.handshakes(), 1, "one connection, one sign-in");
    assert_eq!(c.connections.load(Ordering::SeqCst), 1);
    // Negotiate, authenticate (carrying the first request), then four plain requests.
    assert_eq!(c.requests.load(Ordering::SeqCst), 6);
    assert_eq!(c.unauthenticated_refusals.load(Ordering::SeqCst), 0, "no request went out unsigned");

    let mut tasks = Vec::new();
    for _ in 0..6 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move { t.send("<x/>".into(), None).await.map(|a| a.status) }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 200);
    }
    assert!(c.connections.load(Ordering::SeqCst) <= 2, "at most two connections");
    assert_eq!(t.handshakes() as usize, c.connections.load(Ordering::SeqCst), "each connection signed in once");
    assert_eq!(c.challenges.load(Ordering::SeqCst), c.connections.load(Ordering::SeqCst));
}

#[tokio::test]
async fn plain_http_is_refused_except_on_loopback() {
    let creds = || Credentials::Basic { username: "svc".into(), password: Secret::new("pw") };
    let e = Transport::new("http://mail.fabrikam.example/EWS/Exchange.asmx", creds(), options(2)).unwrap_err();
    assert!(e.to_string().contains("use https"), "{e}");
    let e = Transport::new("not a url", creds(), options(2)).unwrap_err();
    assert!(e.to_string().contains("/EWS/Exchange.asmx"), "{e}");
    let e = Transport::new(
        "https://mail.fabrikam.example/EWS/Exchange.asmx",
        creds(),
        TransportOptions { ca_file: Some("/nonexistent/ca.pem".into()), ..options(2) },
    )
    .unwrap_err();
    assert!(e.to_string().contains("ca_file"), "{e}");
    assert!(Transport::new("https://mail.fabrikam.example/EWS/Exchange.asmx", creds(), options(2)).is_ok());
}
