//! Sending one webhook: an HTTP POST to a tenant's URL, confined to the outbound policy.
//!
//! A tenant chooses the URL, so the client must never become a way into the platform's own
//! network. Every name is resolved by [`OutboundPolicy::resolve`] (a custom reqwest resolver)
//! and the connection goes to exactly the addresses it checked, so a name that passed
//! `destination::check_destination` and later resolves to 10.0.0.1 (DNS rebinding) gets
//! nowhere. reqwest skips the resolver for IP-literal hosts, so those are checked here before
//! sending. Redirects are not followed (a 3xx could point anywhere; it is reported as a
//! status), and proxies from the environment are ignored.
//!
//! The client only reports what happened; whether to retry is the worker's decision.

use std::error::Error as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::transport::outbound::{OutboundError, OutboundPolicy};

/// How long one delivery may take, connection and response body included, unless the
/// caller chose otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `User-Agent` of every webhook request; receivers may filter on it.
pub const USER_AGENT: &str = "Switchboard-Webhooks/1";

/// How much of the response body the delivery log keeps, in characters.
pub const EXCERPT_CHARS: usize = 512;
/// The most bytes read for the excerpt (four per character at worst); the rest is not read.
const EXCERPT_BYTES: usize = EXCERPT_CHARS * 4;

/// What the receiver answered. Any status is a response, 3xx and 5xx included: the worker
/// judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    /// The first [`EXCERPT_CHARS`] characters of the body, invalid UTF-8 replaced.
    pub body_excerpt: String,
}

/// Why no response was had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The URL's host is (or resolves to) an address the outbound policy forbids. Always
    /// [`OutboundError::Forbidden`]; a name that does not resolve is a `Network` error.
    #[error("refused: {0}")]
    Refused(OutboundError),
    #[error("the receiver did not answer in time")]
    Timeout,
    /// Connection refused, TLS failure, DNS failure, connection reset… The text names the
    /// scheme, host and port but never the path or query, which may carry a token.
    #[error("{0}")]
    Network(String),
}

/// Posts webhooks. Cheap to clone; connections are pooled.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    timeout: Duration,
}

impl WebhookClient {
    /// A client confined to `policy`, with [`DEFAULT_TIMEOUT`].
    pub fn new(policy: OutboundPolicy) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PolicyResolver(policy.clone())))
            .no_proxy()
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self {
            http,
            policy,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with another deadline for each delivery.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// POSTs `body` with `headers` (e.g. `Content-Type` and the signature) to `url`, and
    /// returns the status and the start of the body, all within the client's deadline.
    pub async fn post(
        &self,
        url: &Url,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<WebhookResponse, WebhookError> {
        self.check_literal(url)?;
        let mut request = self.http.post(url.clone()).body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let exchange = async {
            let mut response = request.send().await.map_err(|e| classify(e, url))?;
            let status = response.status().as_u16();
            let mut bytes = Vec::new();
            while bytes.len() < EXCERPT_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                    Ok(None) => break,
                    // The status is what counts; a body cut short still makes a response.
                    Err(_) => break,
                }
            }
            bytes.truncate(EXCERPT_BYTES);
            let body_excerpt = String::from_utf8_lossy(&bytes)
                .chars()
                .take(EXCERPT_CHARS)
                .collect();
            Ok(WebhookResponse {
                status,
                body_excerpt,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(WebhookError::Timeout))
    }

    /// reqwest connects to an IP-literal host without asking the resolver.
    fn check_literal(&self, url: &Url) -> Result<(), WebhookError> {
        let ip: IpAddr = match url.host() {
            Some(Host::Ipv4(ip)) => ip.into(),
            Some(Host::Ipv6(ip)) => ip.into(),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(WebhookError::Network("the URL has no host".into())),
        };
        self.policy
            .check(&ip.to_string(), ip)
            .map_err(WebhookError::Refused)
    }
}

/// Resolves names through the outbound policy, so reqwest only ever sees checked addresses.
struct PolicyResolver(Arc<OutboundPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's) in its place.
            let addresses = policy.resolve(&host, 0).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

fn classify(error: reqwest::Error, url: &Url) -> WebhookError {
    // The resolver's refusal comes back boxed somewhere in the source chain.
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<OutboundError>() {
            return match refusal {
                OutboundError::Forbidden { .. } => WebhookError::Refused(refusal.clone()),
                OutboundError::Unresolvable { .. } => {
                    WebhookError::Network(format!("{}: {refusal}", origin(url)))
                }
            };
        }
        source = e.source();
    }
    if error.is_timeout() {
        return WebhookError::Timeout;
    }
    WebhookError::Network(format!("{}: {}", origin(url), describe(error)))
}

/// The error and its causes on one line ("error sending request: client error (Connect):
/// tcp connect error: Connection refused (os error 111)"), without the URL reqwest puts in.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        // Some errors repeat their source's text in their own.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}

/// `scheme://host:port`: where the request went, without the path and query, which may
/// carry a token.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A one-answer HTTP server: counts connections, records each request's head and body,
    /// and answers every request with `response` (or never, if it is `None`).
    struct Server {
        addr: SocketAddr,
        connections: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl Server {
        async fn start(response: Option<String>) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(AtomicUsize::new(0));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let (count, seen) = (connections.clone(), requests.clone());
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    let (response, seen) = (response.clone(), seen.clone());
                    tokio::spawn(async move {
                        let Some(response) = response else {
                            // Hold the connection open and say nothing.
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            drop(stream);
                            return;
                        };
                        let mut data = Vec::new();
                        let mut buf = [0u8; 4096];
                        loop {
                            let n = stream.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            data.extend_from_slice(&buf[..n]);
                            let text = String::from_utf8_lossy(&data).into_owned();
                            if let Some(end) = text.find("\r\n\r\n") {
                                let length = text[..end]
                                    .lines()
                                    .find_map(|l| {
                                        let (k, v) = l.split_once(':')?;
                                        k.eq_ignore_ascii_case("content-length")
                                            .then(|| v.trim().parse::<usize>().ok())?
                                    })
                                    .unwrap_or(0);
                                if data.len() >= end + 4 + length {
                                    seen.lock().unwrap().push(text);
                                    break;
                                }
                            }
                        }
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    });
                }
            });
            Self {
                addr,
                connections,
                requests,
            }
        }

        fn url(&self, path: &str) -> Url {
            Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
        }

        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }
    }

    fn answer(status_line: &str, extra_headers: &str, body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 {status_line}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    fn loopback_allowed() -> WebhookClient {
        WebhookClient::new(OutboundPolicy::parse("127.0.0.0/8,::1").unwrap()).unwrap()
    }

    fn headers() -> Vec<(&'static str, String)> {
        vec![
            ("Content-Type", "application/json".into()),
            ("Switchboard-Signature", "t=1,v1=00".into()),
        ]
    }

    #[tokio::test]
    async fn a_200_is_returned_with_the_body_and_the_request_carries_headers_and_body() {
        let server = Server::start(answer("200 OK", "", "thanks")).await;
        let response = loopback_allowed()
            .post(&server.url("/hook?x=1"), &headers(), b"{\"a\":1}".to_vec())
            .await
            .unwrap();
        assert_eq!(
            response,
            WebhookResponse {
                status: 200,
                body_excerpt: "thanks".into()
            }
        );
        let requests = server.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 1);
        let request = requests[0].to_ascii_lowercase();
        assert!(
            request.starts_with("post /hook?x=1 http/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("user-agent: switchboard-webhooks/1\r\n"));
        assert!(request.contains("switchboard-signature: t=1,v1=00\r\n"));
        assert!(request.contains("content-type: application/json\r\n"));
        assert!(request.ends_with("\r\n\r\n{\"a\":1}"));
    }

    #[tokio::test]
    async fn a_500_is_a_status_and_its_body_is_cut_to_the_excerpt() {
        let long = "é".repeat(2000);
        let server = Server::start(answer("500 Internal Server Error", "", &long)).await;
        let response = loopback_allowed()
            .post(&server.url("/"), &headers(), Vec::new())
            .await
            .unwrap();
        assert_eq!(response.status, 500);
        assert_eq!(response.body_excerpt, "é".repeat(EXCERPT_CHARS));
    }

    #[tokio::test]
    async fn a_302_is_returned_not_followed() {
        let elsewhere = Server::start(answer("200 OK", "", "")).await;
        let location = format!("Location: {}\r\n", elsewhere.url("/stolen"));
        let server = Server::start(answer("302 Found", &location, "")).await;
        let response = loopback_allowed()
            .post(&server.url("/"), &headers(), b"x".to_vec())
            .await
            .unwrap();
        assert_eq!(response.status, 302);
        assert_eq!(server.connections(), 1);
        assert_eq!(elsewhere.connections(), 0);
    }

    #[tokio::test]
    async fn a_private_literal_address_is_refused_without_connecting_unless_allowed() {
        let server = Server::start(answer("200 OK", "", "")).await;
        let refused = WebhookClient::new(OutboundPolicy::default())
            .unwrap()
            .post(&server.url("/"), &headers(), Vec::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                WebhookError::Refused(OutboundError::Forbidden {
                    kind: "loopback",
                    ..
                })
            ),
            "{refused}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(server.connections(), 0);

        let allowed = WebhookClient::new(OutboundPolicy::parse("127.0.0.0/8").unwrap()).unwrap();
        let response = allowed
            .post(&server.url("/"), &headers(), Vec::new())
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(server.connections(), 1);

        let v6 = Url::parse("http://[::1]:9/").unwrap();
        let refused = WebhookClient::new(OutboundPolicy::default())
            .unwrap()
            .post(&v6, &headers(), Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(refused, WebhookError::Refused(_)), "{refused}");
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_by_the_resolver() {
        let server = Server::start(answer("200 OK", "", "")).await;
        let url = Url::parse(&format!("http://localhost:{}/hook", server.addr.port())).unwrap();
        let refused = WebhookClient::new(OutboundPolicy::default())
            .unwrap()
            .post(&url, &headers(), Vec::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                &refused,
                WebhookError::Refused(OutboundError::Forbidden { host, .. }) if host == "localhost"
            ),
            "{refused:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(server.connections(), 0);

        // The same name, allowed by the operator, goes through the same resolver.
        let response = loopback_allowed()
            .post(&url, &headers(), Vec::new())
            .await
            .unwrap();
        assert_eq!(response.status, 200);
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout() {
        let server = Server::start(None).await;
        let started = Instant::now();
        let error = loopback_allowed()
            .with_timeout(Duration::from_millis(300))
            .post(&server.url("/"), &headers(), Vec::new())
            .await
            .unwrap_err();
        assert_eq!(error, WebhookError::Timeout);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn a_network_error_is_readable_and_keeps_the_path_and_query_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = Url::parse(&format!("http://127.0.0.1:{port}/secret-path?token=s3cret")).unwrap();
        let error = loopback_allowed()
            .post(&url, &headers(), Vec::new())
            .await
            .unwrap_err();
        let WebhookError::Network(text) = &error else {
            panic!("{error:?}");
        };
        assert!(
            text.starts_with(&format!("http://127.0.0.1:{port}: ")),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
        assert!(
            !text.contains("s3cret") && !text.contains("secret-path"),
            "{text}"
        );
    }
}
