//! Talking SMTP to a channel's server with lettre, on sockets we open ourselves: every
//! address checked by the outbound policy, TCP_NODELAY set (lettre's own async transport
//! leaves Nagle on: 23 msg/s on one connection instead of about 2,900), implicit TLS through
//! tokio-rustls, STARTTLS through lettre, and every exchange under our own deadline (lettre's
//! timeout covers only the TCP connect).

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::outbound::{OutboundError, OutboundPolicy};
use crate::domain::{Security, SmtpSettings};

/// Why opening a session failed, at which step.
#[derive(Debug)]
pub enum OpenError {
    Outbound(OutboundError),
    Connect {
        address: Option<SocketAddr>,
        reason: String,
        timed_out: bool,
    },
    Tls(String),
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

/// TLS parameters for STARTTLS, from the channel's settings.
pub fn starttls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, OpenError> {
    let mut builder = TlsParameters::builder(settings.host.to_string());
    if let Some(pem) = &settings.ca_pem {
        let cert = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| OpenError::Tls(format!("ca_pem: {e}")))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .dangerous_accept_invalid_certs(settings.accept_invalid_certs)
        .build_rustls()
        .map_err(|e| OpenError::Tls(e.to_string()))
}

/// A TLS stream lettre can drive (implicit TLS: we wrap the socket before the greeting).
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// Accepts any certificate: only when an admin turned verification off, loudly warned.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls client configuration for implicit TLS: the public web PKI plus the channel's
/// own CA, the same trust STARTTLS gets from lettre.
fn implicit_tls_config(settings: &SmtpSettings) -> Result<Arc<rustls::ClientConfig>, OpenError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| OpenError::Tls(e.to_string()))?;
    let config = if settings.accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = &settings.ca_pem {
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes()) {
                let cert: rustls::pki_types::CertificateDer<'static> =
                    cert.map_err(|e| OpenError::Tls(format!("ca_pem: {e:?}")))?;
                roots
                    .add(cert)
                    .map_err(|e| OpenError::Tls(format!("ca_pem: {e}")))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
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
            let config = implicit_tls_config(settings)?;
            let name = rustls::pki_types::ServerName::try_from(settings.host.to_string())
                .map_err(|e| OpenError::Tls(format!("host name: {e}")))?;
            let tls = within(
                deadline,
                "the TLS handshake",
                tokio_rustls::TlsConnector::from(config).connect(name, tcp),
                |e| OpenError::Tls(e.to_string()),
            )
            .await?;
            within(
                deadline,
                "the greeting",
                AsyncSmtpConnection::connect_with_transport(Box::new(ImplicitTls(tls)), &hello),
                OpenError::Smtp,
            )
            .await
        }
        Security::StartTls => {
            let mut conn = within(
                deadline,
                "the greeting",
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello),
                OpenError::Smtp,
            )
            .await?;
            let parameters = starttls_parameters(settings)?;
            // A reply code means the server answered the STARTTLS command (e.g. 454); anything
            // else happened in the handshake, which lettre reports as a connection error.
            within(
                deadline,
                "STARTTLS",
                conn.starttls(parameters, &hello),
                |e| {
                    if e.status().is_some() {
                        OpenError::Smtp(e)
                    } else {
                        OpenError::Tls(describe_tls(&e))
                    }
                },
            )
            .await?;
            Ok(conn)
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
