//! [`Transport`]: HTTP/1.1 to one EWS server, with connections calbridge holds itself.
//!
//! NTLM authenticates a TCP connection, not a request: the negotiate / challenge /
//! authenticate exchange runs once on a connection, and every later request on that
//! connection is signed in. So the transport keeps its own pool of hyper HTTP/1.1
//! connections (a pooling HTTP client may hand each request to any connection) and marks
//! each as authenticated. Basic and Bearer send their `Authorization` header on every
//! request over the same pool.
//!
//! Concurrency: requests in flight to one server (scheme, host and port) are bounded by a
//! semaphore shared by every connection calbridge has to that server — Exchange's
//! `EWSMaxConcurrency` (27 by default) counts a caller's concurrent requests per server. A
//! streaming answer ([`Transport::open_stream`], GetStreamingEvents) holds its permit for as
//! long as it is read, so long-lived streams are budgeted separately (see
//! [`streaming_budget`]) to leave the other permits to syncs. Within that, a transport has at
//! most `max_in_flight` requests of its own in flight (its connection's `max_threads`), each
//! from sending it to the last byte of the answer; streams take none of these.
//!
//! TLS with rustls: the public (webpki) roots plus, optionally, a PEM file of the
//! organisation's CA certificates. Plain HTTP is accepted for loopback only, where the
//! simulator runs; anything else must be HTTPS, because Basic and NTLM would otherwise leave
//! the password (or its hash) on the network.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::prelude::{Engine as _, BASE64_STANDARD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, USER_AGENT, WWW_AUTHENTICATE,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use calbridge_core::model::EwsAuth;
use calbridge_core::Secret;

use crate::error::EwsError;

/// How requests are signed in.
pub enum Credentials {
    Basic {
        username: String,
        password: Secret,
    },
    Ntlm {
        username: String,
        domain: String,
        password: Secret,
    },
    /// A bearer token, asked for before each request (the provider caches it).
    Bearer(Arc<dyn TokenSource>),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Ntlm { username, domain, .. } => write!(f, "Ntlm({domain}\\{username}, <redacted>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    /// `user`, `DOMAIN\user` or `user@domain` as NTLM wants it: the domain part of
    /// `DOMAIN\user` goes into the domain field; a UPN stays whole with an empty domain, which
    /// Windows accepts.
    pub fn ntlm(account: &str, password: Secret) -> Credentials {
        match account.split_once('\\') {
            Some((domain, user)) => {
                Credentials::Ntlm { username: user.to_string(), domain: domain.to_string(), password }
            }
            None => Credentials::Ntlm { username: account.to_string(), domain: String::new(), password },
        }
    }

    pub fn auth(&self) -> EwsAuth {
        match self {
            Credentials::Basic { .. } => EwsAuth::Basic,
            Credentials::Ntlm { .. } => EwsAuth::Ntlm,
            Credentials::Bearer(_) => EwsAuth::Oauth2,
        }
    }
}

/// Where bearer tokens come from (the identity platform's client credentials flow).
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self) -> Result<String, EwsError>;
    /// The token was refused: forget it.
    async fn invalidate(&self, token: &str);
}

/// One answer: status, headers, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// NTLM has signed this connection in.
    authenticated: bool,
}

/// Settings of a [`Transport`].
#[derive(Clone, Debug)]
pub struct TransportOptions {
    pub max_connections: u32,
    /// Requests this transport has in flight at once (the connection's `max_threads`; see
    /// [`crate::client::EwsOptions::max_in_flight`]).
    pub max_in_flight: usize,
    pub request_timeout: Duration,
    /// The largest answer accepted.
    pub max_body_bytes: usize,
    pub user_agent: String,
    pub ca_file: Option<String>,
}

/// The HTTP side of an EWS client. Cheap to share (`Arc`).
pub struct Transport {
    url: Url,
    host_header: HeaderValue,
    addr: String,
    tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
    credentials: Credentials,
    idle: Mutex<Vec<Conn>>,
    limit: Arc<Semaphore>,
    /// The connection's own limit, [`TransportOptions::max_in_flight`].
    in_flight: Semaphore,
    options: TransportOptions,
    requests: AtomicU64,
    handshakes: AtomicU64,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("url", &self.url.as_str())
            .field("credentials", &self.credentials)
            .field("requests", &self.requests())
            .finish()
    }
}

/// The semaphore of every server calbridge talks to, by origin.
fn server_limit(origin: &str, max: u32) -> Arc<Semaphore> {
    static SERVERS: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let mut map = SERVERS.get_or_init(Default::default).lock().expect("server limits");
    map.entry(origin.to_string()).or_insert_with(|| Arc::new(Semaphore::new(max.max(1) as usize))).clone()
}

/// The streaming connections calbridge may hold to a server, by origin: at most `wanted`, and
/// never more than a quarter of the server's connection limit (at least one), so that
/// streams cannot starve sync requests.
pub fn streaming_budget(origin: &str, wanted: usize, max_connections: u32) -> Arc<Semaphore> {
    static SERVERS: OnceLock<Mutex<HashMap<String, Arc<Semaphore>>>> = OnceLock::new();
    let cap = wanted.min((max_connections as usize / 4).max(1));
    let mut map = SERVERS.get_or_init(Default::default).lock().expect("streaming budgets");
    map.entry(origin.to_string()).or_insert_with(|| Arc::new(Semaphore::new(cap))).clone()
}

/// A streamed answer being read: its body arrives in pieces for as long as the server keeps
/// it open. Holds a permit of the server's connection limit until dropped.
pub struct Streamed {
    body: hyper::body::Incoming,
    _permit: OwnedSemaphorePermit,
    _conn: Conn,
}

impl Streamed {
    /// The next piece of the body; `None` when the server ended the answer.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

/// What [`Transport::open_stream`] got: a stream, or a whole answer (a fault, an error).
pub enum StreamAnswer {
    Streaming(Streamed),
    Complete(Answer),
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn tls_config(ca_file: Option<&str>) -> Result<rustls::ClientConfig, EwsError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| EwsError::Config {
                message: format!("cannot read the CA certificates in ca_file {path:?}: {e}; it must be a PEM file"),
            })?;
        if certs.is_empty() {
            return Err(EwsError::Config { message: format!("ca_file {path:?} holds no PEM certificate") });
        }
        for c in certs {
            roots.add(c).map_err(|e| EwsError::Config {
                message: format!("a certificate in ca_file {path:?} is not usable as a CA: {e}"),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EwsError::Config { message: format!("cannot set up TLS: {e}") })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

impl Transport {
    pub fn new(url: &str, credentials: Credentials, options: TransportOptions) -> Result<Transport, EwsError> {
        let bad = |m: String| EwsError::Config { message: m };
        let url = Url::parse(url.trim()).map_err(|e| {
            bad(format!(
                "the EWS url {url:?} is not a URL ({e}); it looks like https://mail.example.com/EWS/Exchange.asmx"
            ))
        })?;
        let host = url.host().ok_or_else(|| bad(format!("the EWS url {url} has no host")))?;
        let tls = match url.scheme() {
            "https" => true,
            "http" if is_loopback(&host) => false,
            "http" => {
                return Err(bad(format!(
                    "the EWS url {url} is plain http; use https (only loopback addresses may use http)"
                )))
            }
            s => return Err(bad(format!("the EWS url {url} has scheme {s:?}; use https"))),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("the EWS url must not carry credentials; set username and the secret instead".into()));
        }
        let port = url.port_or_known_default().unwrap_or(if tls { 443 } else { 80 });
        let host_str = host.to_string();
        let addr = format!("{}:{port}", host_str.trim_start_matches('[').trim_end_matches(']'));
        let addr = if matches!(host, url::Host::Ipv6(_)) {
            format!("[{}]:{port}", host_str.trim_matches(['[', ']']))
        } else {
            addr
        };
        let host_header = HeaderValue::from_str(&match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.clone(),
        })
        .map_err(|_| bad(format!("the EWS url's host {host_str:?} cannot be sent")))?;
        let tls = if tls {
            let config = tls_config(options.ca_file.as_deref())?;
            let name = rustls::pki_types::ServerName::try_from(host_str.trim_matches(['[', ']']).to_string())
                .map_err(|e| bad(format!("the EWS url's host {host_str:?} is not a TLS server name: {e}")))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let origin = url.origin().ascii_serialization();
        Ok(Transport {
            limit: server_limit(&origin, options.max_connections),
            url,
            host_header,
            addr,
            tls,
            credentials,
            idle: Mutex::new(Vec::new()),
            in_flight: Semaphore::new(options.max_in_flight.max(1)),
            options,
            requests: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
        })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    pub fn auth(&self) -> EwsAuth {
        self.credentials.auth()
    }

    /// HTTP requests sent (NTLM handshake legs included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// NTLM handshakes run (one per connection signed in).
    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }

    fn transport_error(&self, message: impl Into<String>, sent: bool) -> EwsError {
        EwsError::Transport { url: self.url.to_string(), message: message.into(), sent }
    }

    async fn connect(&self) -> Result<Conn, EwsError> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| self.transport_error(format!("cannot connect to {}: {e}", self.addr), false))?;
        let _ = tcp.set_nodelay(true);
        let sender = match &self.tls {
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| self.transport_error(format!("HTTP handshake failed: {e}"), false))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| self.transport_error(format!("TLS handshake failed: {e}"), false))?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| self.transport_error(format!("HTTP handshake failed: {e}"), false))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
        };
        Ok(Conn { sender, authenticated: false })
    }

    /// An idle connection that is still open, or a new one.
    async fn checkout(&self) -> Result<Conn, EwsError> {
        loop {
            let candidate = self.idle.lock().expect("idle connections").pop();
            match candidate {
                Some(mut c) => {
                    if c.sender.is_closed() {
                        continue;
                    }
                    if c.sender.ready().await.is_ok() {
                        return Ok(c);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    fn checkin(&self, conn: Conn) {
        let mut idle = self.idle.lock().expect("idle connections");
        if !conn.sender.is_closed() && idle.len() < self.options.max_connections as usize {
            idle.push(conn);
        }
    }

    fn request(&self, body: &Bytes, anchor: Option<&str>, authorization: Option<&str>) -> hyper::Request<Full<Bytes>> {
        let mut b = hyper::Request::post(
            self.url.path().to_string() + self.url.query().map(|q| format!("?{q}")).unwrap_or_default().as_str(),
        )
        .header(HOST, self.host_header.clone())
        .header(CONTENT_TYPE, "text/xml; charset=utf-8")
        .header(USER_AGENT, self.options.user_agent.as_str());
        if let Some(a) = anchor.and_then(|a| HeaderValue::from_str(a).ok()) {
            b = b.header("X-AnchorMailbox", a.clone()).header("X-PreferServerAffinity", "true");
        }
        if let Some(v) = authorization.and_then(|v| HeaderValue::from_str(v).ok()) {
            let mut v = v;
            v.set_sensitive(true);
            b = b.header(AUTHORIZATION, v);
        }
        b.body(Full::new(body.clone())).expect("a valid request")
    }

    /// Sends one request on `conn` and reads the whole answer.
    async fn exchange(&self, conn: &mut Conn, req: hyper::Request<Full<Bytes>>) -> Result<(Answer, bool), EwsError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = conn.sender.send_request(req).await.map_err(|e| {
            // hyper tells whether the request left: a canceled request never did.
            let sent = !e.is_canceled();
            self.transport_error(format!("the request failed: {e}"), sent)
        })?;
        let keep = !resp
            .headers()
            .get(CONNECTION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = Limited::new(resp.into_body(), self.options.max_body_bytes)
            .collect()
            .await
            .map_err(|e| {
                self.transport_error(
                    format!("the answer broke off or exceeded {} bytes: {e}", self.options.max_body_bytes),
                    true,
                )
            })?
            .to_bytes();
        Ok((Answer { status, headers, body }, keep))
    }

    /// The `Authorization` header every request carries with Basic or Bearer credentials; NTLM
    /// signs a connection in instead (none).
    async fn header_authorization(&self) -> Result<Option<String>, EwsError> {
        Ok(match &self.credentials {
            Credentials::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                Some(format!("Basic {}", BASE64_STANDARD.encode(raw)))
            }
            Credentials::Bearer(source) => Some(format!("Bearer {}", source.token().await?)),
            Credentials::Ntlm { .. } => None,
        })
    }

    /// One of the server's request slots (`max_connections`), held until the answer is read.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, EwsError> {
        self.limit.clone().acquire_owned().await.map_err(|_| self.transport_error("the client is shutting down", false))
    }

    /// Sends `body` (a SOAP envelope) and returns the answer, signed in as the credentials say.
    /// `anchor`: the mailbox the request is about (`X-AnchorMailbox`, so Exchange routes it
    /// to the server that holds the mailbox).
    pub async fn send(&self, body: String, anchor: Option<&str>) -> Result<Answer, EwsError> {
        // The connection's slot first: a request waiting for it holds none of the server's.
        let _slot =
            self.in_flight.acquire().await.map_err(|_| self.transport_error("the client is shutting down", false))?;
        let _permit = self.permit().await?;
        let body = Bytes::from(body);
        let work = async {
            let mut conn = self.checkout().await?;
            let authorization = self.header_authorization().await?;
            if let Credentials::Ntlm { .. } = &self.credentials {
                if !conn.authenticated {
                    return self.ntlm_handshake(conn, &body, anchor).await;
                }
            }
            let (answer, keep) =
                self.exchange(&mut conn, self.request(&body, anchor, authorization.as_deref())).await?;
            if answer.status == 401 {
                if let (Credentials::Bearer(source), Some(a)) = (&self.credentials, authorization.as_deref()) {
                    source.invalidate(a.trim_start_matches("Bearer ")).await;
                }
                if let Credentials::Ntlm { .. } = &self.credentials {
                    // The server forgot the connection's sign-in: run the handshake again.
                    return self.ntlm_handshake(self.connect().await?, &body, anchor).await;
                }
                return Err(self.unauthorized(&answer.headers));
            }
            if keep {
                self.checkin(conn);
            }
            Ok(answer)
        };
        match tokio::time::timeout(self.options.request_timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(self.transport_error(
                format!("no complete answer within {} s", self.options.request_timeout.as_secs()),
                true,
            )),
        }
    }

    /// Sends `body` and returns as soon as the answer's headers arrived: a 200 is read as a
    /// stream (GetStreamingEvents), anything else whole. The connection serves only this
    /// answer; NTLM signs it in first when needed.
    pub async fn open_stream(&self, body: String, anchor: Option<&str>) -> Result<StreamAnswer, EwsError> {
        let permit = self.permit().await?;
        let body = Bytes::from(body);
        let opened = async {
            let mut conn = self.checkout().await?;
            let authorization = match &self.credentials {
                Credentials::Ntlm { username, domain, password } if !conn.authenticated => {
                    self.handshakes.fetch_add(1, Ordering::Relaxed);
                    let negotiate = crate::ntlm::negotiate();
                    let (answer, keep) = self
                        .exchange(&mut conn, self.request(&body, anchor, Some(&format!("NTLM {negotiate}"))))
                        .await?;
                    if answer.status != 401 {
                        return Ok(Err(answer));
                    }
                    let challenge = answer
                        .headers
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(|v| v.strip_prefix("NTLM ").map(|c| c.trim().to_string()))
                        .ok_or_else(|| self.unauthorized(&answer.headers))?;
                    if !keep {
                        return Err(
                            self.transport_error("the server closed the connection during the NTLM handshake", false)
                        );
                    }
                    let authenticate =
                        crate::ntlm::authenticate(&challenge, username, domain, password).map_err(|m| {
                            EwsError::Unauthorized {
                                auth: "ntlm",
                                offered: vec![format!("NTLM (its challenge was unusable: {m})")],
                            }
                        })?;
                    Some(format!("NTLM {authenticate}"))
                }
                _ => self.header_authorization().await?,
            };
            self.requests.fetch_add(1, Ordering::Relaxed);
            let resp = conn
                .sender
                .send_request(self.request(&body, anchor, authorization.as_deref()))
                .await
                .map_err(|e| self.transport_error(format!("the request failed: {e}"), !e.is_canceled()))?;
            Ok(Ok((conn, resp)))
        };
        let (mut conn, resp) = match tokio::time::timeout(self.options.request_timeout, opened).await {
            Ok(Ok(Ok(x))) => x,
            Ok(Ok(Err(answer))) => return Ok(StreamAnswer::Complete(answer)),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(self
                    .transport_error(format!("no answer within {} s", self.options.request_timeout.as_secs()), true))
            }
        };
        let status = resp.status().as_u16();
        if status == 200 {
            conn.authenticated = true;
            return Ok(StreamAnswer::Streaming(Streamed { body: resp.into_body(), _permit: permit, _conn: conn }));
        }
        let headers = resp.headers().clone();
        let body = Limited::new(resp.into_body(), self.options.max_body_bytes)
            .collect()
            .await
            .map_err(|e| self.transport_error(format!("the answer broke off: {e}"), true))?
            .to_bytes();
        if status == 401 {
            return Err(self.unauthorized(&headers));
        }
        Ok(StreamAnswer::Complete(Answer { status, headers, body }))
    }

    /// The origin (scheme, host, port) requests go to.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// The connection limit to this server.
    pub fn max_connections(&self) -> u32 {
        self.options.max_connections
    }

    fn unauthorized(&self, headers: &HeaderMap) -> EwsError {
        let offered = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
            .filter(|s| !s.is_empty())
            .collect();
        EwsError::Unauthorized { auth: self.credentials.auth().as_str(), offered }
    }

    /// Negotiate → challenge → authenticate on `conn`; the authenticate leg carries `body`,
    /// so the sign-in costs one extra round trip per connection.
    async fn ntlm_handshake(&self, mut conn: Conn, body: &Bytes, anchor: Option<&str>) -> Result<Answer, EwsError> {
        let Credentials::Ntlm { username, domain, password } = &self.credentials else {
            unreachable!("NTLM handshake without NTLM credentials")
        };
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        let negotiate = crate::ntlm::negotiate();
        let (answer, keep) =
            self.exchange(&mut conn, self.request(body, anchor, Some(&format!("NTLM {negotiate}")))).await?;
        if answer.status != 401 {
            // The server did not ask to authenticate: it answered the request itself.
            if keep {
                self.checkin(conn);
            }
            return Ok(answer);
        }
        let Some(challenge) = answer
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("NTLM ").map(|c| c.trim().to_string()))
        else {
            return Err(self.unauthorized(&answer.headers));
        };
        if !keep {
            return Err(self.transport_error("the server closed the connection during the NTLM handshake", false));
        }
        let authenticate = crate::ntlm::authenticate(&challenge, username, domain, password).map_err(|m| {
            EwsError::Unauthorized { auth: "ntlm", offered: vec![format!("NTLM (its challenge was unusable: {m})")] }
        })?;
        let (answer, keep) =
            self.exchange(&mut conn, self.request(body, anchor, Some(&format!("NTLM {authenticate}")))).await?;
        if answer.status == 401 {
            return Err(self.unauthorized(&answer.headers));
        }
        conn.authenticated = true;
        if keep {
            self.checkin(conn);
        }
        Ok(answer)
    }
}
