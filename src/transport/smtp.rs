//! Talking SMTP to a channel's server with lettre, on sockets we open ourselves: every
//! address checked by the outbound policy, TCP_NODELAY set (lettre's own async transport
//! leaves Nagle on: 23 msg/s on one connection instead of about 2,900), TLS through
//! tokio-rustls with the channel's own verifier (implicit, and after lettre's STARTTLS
//! command), and every exchange under our own deadline (lettre's timeout covers only the
//! TCP connect).

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::commands::Starttls;
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::outbound::{OutboundError, OutboundPolicy};
use super::trust::{self, Rejection, TrustError, Verdict};
use crate::domain::{CertificateFingerprint, Security, SmtpSettings};

/// Why opening a session failed, at which step.
#[derive(Debug)]
pub enum OpenError {
    Outbound(OutboundError),
    Connect {
        address: Option<SocketAddr>,
        reason: String,
        timed_out: bool,
    },
    Tls(TlsFailure),
    Smtp(lettre::transport::smtp::Error),
    Timeout(&'static str),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Outbound(e) => e.fmt(f),
            OpenError::Connect {
                address, reason, ..
            } => match address {
                Some(a) => write!(f, "connecting to {a}: {reason}"),
                None => f.write_str(reason),
            },
            OpenError::Tls(reason) => write!(f, "TLS: {reason}"),
            OpenError::Smtp(e) => e.fmt(f),
            OpenError::Timeout(step) => write!(f, "no answer during {step} before the deadline"),
        }
    }
}

/// Why TLS could not be established.
#[derive(Debug)]
pub enum TlsFailure {
    /// The server does not offer STARTTLS.
    NotOffered,
    /// The server's certificate was refused: why, and what it presented.
    Certificate(Rejection),
    /// The handshake failed otherwise (a plain-text port, no common protocol version).
    Handshake(String),
    /// The channel's own trust settings are unusable (an unreadable `ca_pem`).
    Config(TrustError),
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::NotOffered => f.write_str("STARTTLS is not supported on this server"),
            TlsFailure::Certificate(rejection) => rejection.problem.fmt(f),
            TlsFailure::Handshake(reason) => f.write_str(reason),
            TlsFailure::Config(e) => e.fmt(f),
        }
    }
}

/// A failure's sentence, where a send failure keeps only text (the pool's last error).
impl From<TlsFailure> for String {
    fn from(failure: TlsFailure) -> String {
        failure.to_string()
    }
}

/// The name we introduce ourselves with in EHLO.
pub fn hello_name() -> ClientId {
    ClientId::Domain("switchboard.invalid".to_owned())
}

/// Runs `work` under a deadline, naming the step that overran.
pub async fn within<T, E>(
    deadline: Duration,
    step: &'static str,
    work: impl std::future::Future<Output = Result<T, E>>,
    wrap: impl FnOnce(E) -> OpenError,
) -> Result<T, OpenError> {
    match tokio::time::timeout(deadline, work).await {
        Ok(result) => result.map_err(wrap),
        Err(_) => Err(OpenError::Timeout(step)),
    }
}

/// A TCP connection to the first reachable checked address, with Nagle off.
pub async fn connect(
    settings: &SmtpSettings,
    policy: &OutboundPolicy,
) -> Result<TcpStream, OpenError> {
    let deadline = Duration::from_secs(u64::from(settings.connect_timeout_secs));
    let addresses = policy
        .resolve(settings.host.as_str(), settings.port)
        .await
        .map_err(OpenError::Outbound)?;
    let mut last = None;
    for address in addresses {
        match tokio::time::timeout(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => {
                last = Some(OpenError::Connect {
                    address: Some(address),
                    reason: e.to_string(),
                    timed_out: false,
                })
            }
            Err(_) => {
                last = Some(OpenError::Connect {
                    address: Some(address),
                    reason: format!("no answer within {} s", settings.connect_timeout_secs),
                    timed_out: true,
                })
            }
        }
    }
    Err(last.unwrap_or(OpenError::Connect {
        address: None,
        reason: "no address to connect to".into(),
        timed_out: false,
    }))
}

/// A plain socket that lettre reads the greeting, EHLO and the STARTTLS reply from, and
/// that we take back for the handshake: lettre's own upgrade takes only its builder's
/// settings, never a rustls configuration with our verifier.
#[derive(Debug, Clone)]
struct PlainUntilStartTls(Arc<Mutex<Option<TcpStream>>>);

impl PlainUntilStartTls {
    fn new(tcp: TcpStream) -> Self {
        Self(Arc::new(Mutex::new(Some(tcp))))
    }

    fn take(&self) -> Option<TcpStream> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(Pin<&mut TcpStream>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            Some(tcp) => f(Pin::new(tcp)),
            None => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the socket was handed over to TLS",
            ))),
        }
    }
}

impl AsyncRead for PlainUntilStartTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.with(|tcp| tcp.poll_read(cx, buf))
    }
}

impl AsyncWrite for PlainUntilStartTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.with(|tcp| tcp.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.with(|tcp| tcp.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.with(|tcp| tcp.poll_shutdown(cx))
    }
}

impl AsyncTokioStream for PlainUntilStartTls {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(tcp) => tcp.peer_addr(),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

/// A TLS stream lettre can drive. After STARTTLS the server sends no new greeting (RFC 3207
/// §4.2: the client starts over with EHLO), but lettre opens a session only by reading one:
/// `replay` hands it a greeting in the server's name, so lettre's own EHLO then learns the
/// extensions offered under TLS (AUTH often appears only there). Empty for implicit TLS.
#[derive(Debug)]
struct TlsSession {
    replay: Vec<u8>,
    replayed: usize,
    tls: tokio_rustls::client::TlsStream<TcpStream>,
}

impl AsyncRead for TlsSession {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.replayed < this.replay.len() {
            let n = buf.remaining().min(this.replay.len() - this.replayed);
            buf.put_slice(&this.replay[this.replayed..this.replayed + n]);
            this.replayed += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSession {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsSession {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.tls.get_ref().0.peer_addr()
    }
}

/// The TLS handshake with the channel's trust (web PKI, pasted certificates, the trusted
/// fingerprint), under the deadline. A refused certificate comes back with what the server
/// presented, as the verifier saw it.
async fn handshake(
    settings: &SmtpSettings,
    tcp: TcpStream,
    deadline: Duration,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Verdict), OpenError> {
    let (config, verdict) =
        trust::client_config(settings).map_err(|e| OpenError::Tls(TlsFailure::Config(e)))?;
    let name = rustls::pki_types::ServerName::try_from(settings.host.to_string())
        .map_err(|e| OpenError::Tls(TlsFailure::Handshake(format!("host name: {e}"))))?;
    let tls = within(
        deadline,
        "the TLS handshake",
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        |e| {
            OpenError::Tls(match verdict.rejection() {
                Some(rejection) => TlsFailure::Certificate(rejection),
                None => TlsFailure::Handshake(e.to_string()),
            })
        },
    )
    .await?;
    Ok((tls, verdict))
}

/// The plain-text part of a STARTTLS session, spoken by lettre: greeting, EHLO, STARTTLS.
/// Returns the socket, ready for the handshake, and the greeting to replay after it.
async fn before_starttls(
    tcp: TcpStream,
    deadline: Duration,
    hello: &ClientId,
) -> Result<(TcpStream, Vec<u8>), OpenError> {
    let plain = PlainUntilStartTls::new(tcp);
    let mut conn = within(
        deadline,
        "the greeting",
        AsyncSmtpConnection::connect_with_transport(Box::new(plain.clone()), hello),
        OpenError::Smtp,
    )
    .await?;
    if !conn.can_starttls() {
        discard(conn).await;
        return Err(OpenError::Tls(TlsFailure::NotOffered));
    }
    // A reply code means the server answered the STARTTLS command (e.g. 454).
    within(deadline, "STARTTLS", conn.command(Starttls), |e| {
        if e.status().is_some() {
            OpenError::Smtp(e)
        } else {
            OpenError::Tls(TlsFailure::Handshake(describe_tls(&e)))
        }
    })
    .await?;
    let greeting = format!("220 {} ESMTP\r\n", conn.server_info().name()).into_bytes();
    // Whatever lettre buffered past the 220 came in plain text and goes with it (RFC 3207
    // §6, the CVE-2011-0411 injection).
    drop(conn);
    let tcp = plain.take().ok_or_else(|| {
        OpenError::Tls(TlsFailure::Handshake(
            "the connection was closed before the TLS handshake".into(),
        ))
    })?;
    Ok((tcp, greeting))
}

/// The certificate the channel's server presents now, and whether the channel's settings
/// trust it: connects and shakes hands (after STARTTLS where the channel uses it), then
/// leaves without logging in. A refused certificate is a result here, not an error.
pub async fn presented_certificate(
    settings: &SmtpSettings,
    policy: &OutboundPolicy,
) -> Result<(CertificateFingerprint, Option<Rejection>), OpenError> {
    let deadline = Duration::from_secs(u64::from(settings.command_timeout_secs));
    let tcp = connect(settings, policy).await?;
    let tcp = match settings.security {
        Security::StartTls => before_starttls(tcp, deadline, &hello_name()).await?.0,
        Security::Tls => tcp,
        Security::None => {
            return Err(OpenError::Tls(TlsFailure::Handshake(
                "the channel does not use TLS (security `none`)".into(),
            )));
        }
    };
    match handshake(settings, tcp, deadline).await {
        Ok((mut tls, verdict)) => {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::io::AsyncWriteExt::shutdown(&mut tls),
            )
            .await;
            let presented = verdict.presented().ok_or_else(|| {
                OpenError::Tls(TlsFailure::Handshake(
                    "the server presented no certificate".into(),
                ))
            })?;
            Ok((presented, None))
        }
        Err(OpenError::Tls(TlsFailure::Certificate(rejection))) => {
            let presented = rejection
                .presented
                .as_ref()
                .and_then(|p| CertificateFingerprint::parse(&p.sha256).ok())
                .ok_or_else(|| {
                    OpenError::Tls(TlsFailure::Handshake(
                        "the server's certificate cannot be read".into(),
                    ))
                })?;
            Ok((presented, Some(rejection)))
        }
        Err(other) => Err(other),
    }
}

/// Opens an SMTP session on a connected socket: TLS as configured, greeting and EHLO read.
pub async fn open_session(
    settings: &SmtpSettings,
    tcp: TcpStream,
) -> Result<AsyncSmtpConnection, OpenError> {
    let deadline = Duration::from_secs(u64::from(settings.command_timeout_secs));
    let hello = hello_name();
    match settings.security {
        Security::Tls => {
            let (tls, _) = handshake(settings, tcp, deadline).await?;
            let session = TlsSession {
                replay: Vec::new(),
                replayed: 0,
                tls,
            };
            within(
                deadline,
                "the greeting",
                AsyncSmtpConnection::connect_with_transport(Box::new(session), &hello),
                OpenError::Smtp,
            )
            .await
        }
        Security::StartTls => {
            let (tcp, greeting) = before_starttls(tcp, deadline, &hello).await?;
            let (tls, _) = handshake(settings, tcp, deadline).await?;
            let session = TlsSession {
                replay: greeting,
                replayed: 0,
                tls,
            };
            within(
                deadline,
                "the encrypted EHLO",
                AsyncSmtpConnection::connect_with_transport(Box::new(session), &hello),
                OpenError::Smtp,
            )
            .await
        }
        Security::None => {
            within(
                deadline,
                "the greeting",
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello),
                OpenError::Smtp,
            )
            .await
        }
    }
}

/// Ends a session that failed. lettre's `abort` sends QUIT and waits for the reply, which a
/// server that went silent never sends; one second is all the courtesy it gets.
pub async fn discard(mut session: AsyncSmtpConnection) {
    let _ = tokio::time::timeout(Duration::from_secs(1), session.abort()).await;
}

fn describe_tls(e: &lettre::transport::smtp::Error) -> String {
    super::classify::describe(e).1
}
