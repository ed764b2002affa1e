//! Trusting a server's certificate as a person would: the web PKI, certificates pasted into a
//! channel (a private CA, or the server's own certificate, trusted exactly) and a trusted
//! fingerprint. The verifier keeps what it refused and why, for the test report.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::certificate::{PasteError, PresentedCertificate, pasted_certificates, subject_of};
use crate::domain::{CertificateFingerprint, SmtpSettings};

/// Why the trust settings of a channel cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Paste(#[from] PasteError),
    #[error("the TLS configuration could not be built: {0}")]
    Config(String),
}

/// Why a server's certificate was refused, as the hints tell it apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateProblem {
    /// No authority we trust signed it: self-signed, or a private CA that was not pasted.
    UnknownIssuer,
    /// The server presents a CA certificate as its own (what `openssl req -x509` makes by
    /// default), so the CA pasted cannot vouch for it the usual way.
    CaUsedAsEndEntity,
    Expired,
    NotYetValid,
    /// Valid, but not for the host name the channel connects to.
    WrongName,
    /// The certificate trusted for this channel (by fingerprint, or pasted) was replaced by
    /// another one that nothing we trust vouches for.
    Changed {
        trusted: CertificateFingerprint,
        presented: CertificateFingerprint,
        /// Why the new one is not trusted by itself.
        because: Box<CertificateProblem>,
    },
    /// Anything else rustls refused (bad signature, revoked, wrong purpose…), in its words.
    Other(String),
}

impl CertificateProblem {
    /// A stable name, for programs (`certificate.problem` in the test report).
    pub fn code(&self) -> &'static str {
        match self {
            CertificateProblem::UnknownIssuer => "unknown_issuer",
            CertificateProblem::CaUsedAsEndEntity => "ca_used_as_end_entity",
            CertificateProblem::Expired => "expired",
            CertificateProblem::NotYetValid => "not_yet_valid",
            CertificateProblem::WrongName => "wrong_name",
            CertificateProblem::Changed { .. } => "changed",
            CertificateProblem::Other(_) => "other",
        }
    }

    /// Classifies what rustls (or webpki underneath) said, by variant.
    fn of(error: &rustls::Error) -> Self {
        let rustls::Error::InvalidCertificate(error) = error else {
            return CertificateProblem::Other(error.to_string());
        };
        match error {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                CertificateProblem::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                CertificateProblem::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                CertificateProblem::WrongName
            }
            CertificateError::UnknownIssuer => CertificateProblem::UnknownIssuer,
            CertificateError::Other(other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                CertificateProblem::CaUsedAsEndEntity
            }
            other => CertificateProblem::Other(format!("{other:?}")),
        }
    }
}

impl std::fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificateProblem::UnknownIssuer => {
                f.write_str("the server's certificate is not signed by an authority we trust")
            }
            CertificateProblem::CaUsedAsEndEntity => f.write_str(
                "the server presents a CA certificate (CA:TRUE) as its own, which no authority can vouch for",
            ),
            CertificateProblem::Expired => f.write_str("the server's certificate has expired"),
            CertificateProblem::NotYetValid => {
                f.write_str("the server's certificate is not valid yet")
            }
            CertificateProblem::WrongName => f.write_str(
                "the server's certificate is not valid for the host name the channel connects to",
            ),
            CertificateProblem::Changed {
                trusted,
                presented,
                because,
            } => write!(
                f,
                "the server's certificate changed from {trusted} (trusted for this channel) to {presented}, and {because}"
            ),
            CertificateProblem::Other(text) => {
                write!(f, "the server's certificate was refused: {text}")
            }
        }
    }
}

/// A refused certificate: why, and what the server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub problem: CertificateProblem,
    pub presented: Option<PresentedCertificate>,
}

/// What the verifier of one handshake saw: the server's certificate and, when it refused
/// it, why.
#[derive(Debug, Default)]
struct Seen {
    presented: Option<CertificateDer<'static>>,
    problem: Option<CertificateProblem>,
}

/// Where the verifier of one handshake leaves what it saw, for the caller to read after.
#[derive(Debug, Clone, Default)]
pub struct Verdict(Arc<Mutex<Seen>>);

impl Verdict {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The refusal, if the handshake refused the server's certificate.
    pub fn rejection(&self) -> Option<Rejection> {
        let seen = self.seen();
        let problem = seen.problem.clone()?;
        Some(Rejection {
            problem,
            presented: seen
                .presented
                .as_ref()
                .and_then(|der| PresentedCertificate::describe(der.as_ref())),
        })
    }

    /// The fingerprint of the certificate the server presented, trusted or not.
    pub fn presented(&self) -> Option<CertificateFingerprint> {
        self.seen()
            .presented
            .as_ref()
            .map(|der| CertificateFingerprint::of(der.as_ref()))
    }

    fn saw(&self, der: &CertificateDer<'_>) {
        self.seen().presented = Some(der.clone().into_owned());
    }

    fn refused(&self, problem: CertificateProblem) {
        self.seen().problem = Some(problem);
    }
}

/// A certificate the channel trusts exactly, and the subject it names (to recognise a
/// replacement of the server's own certificate).
#[derive(Debug)]
struct Pinned {
    fingerprint: CertificateFingerprint,
    subject: Option<Vec<u8>>,
}

/// The verifier of one channel's handshake: an exact match with a pinned or pasted
/// certificate is trusted whatever its issuer and CA flag (the channel's admin vouched for
/// these bytes); everything else goes through the web PKI, with the pasted certificates as
/// extra roots.
#[derive(Debug)]
struct ChannelVerifier {
    /// The fingerprint trusted explicitly (`pinned_sha256`).
    pinned: Option<CertificateFingerprint>,
    pasted: Vec<Pinned>,
    webpki: Arc<WebPkiServerVerifier>,
    verdict: Verdict,
}

impl ChannelVerifier {
    fn new(settings: &SmtpSettings, provider: Arc<CryptoProvider>) -> Result<Self, TrustError> {
        let pasted = match &settings.ca_pem {
            Some(pem) => pasted_certificates(pem)?,
            None => Vec::new(),
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // A pasted certificate that webpki cannot take as a root (it is still trusted
        // exactly) must not stop the others from working.
        let _ = roots.add_parsable_certificates(pasted.iter().cloned());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TrustError::Config(e.to_string()))?;
        Ok(Self {
            pinned: settings.pinned_sha256,
            pasted: pasted
                .iter()
                .map(|c| Pinned {
                    fingerprint: CertificateFingerprint::of(c.as_ref()),
                    subject: subject_of(c.as_ref()),
                })
                .collect(),
            webpki,
            verdict: Verdict::default(),
        })
    }

    /// Whether `der` is trusted exactly, by fingerprint or because it was pasted.
    fn trusts_exactly(&self, fingerprint: &CertificateFingerprint) -> bool {
        self.pinned.as_ref() == Some(fingerprint)
            || self.pasted.iter().any(|p| &p.fingerprint == fingerprint)
    }

    /// The certificate this one replaces, when the channel trusted one exactly: the pinned
    /// fingerprint, else a pasted certificate with the same subject (the server made itself
    /// a new self-signed certificate).
    fn replaced(&self, subject: Option<&[u8]>) -> Option<CertificateFingerprint> {
        self.pinned.or_else(|| {
            self.pasted
                .iter()
                .find(|p| p.subject.is_some() && p.subject.as_deref() == subject)
                .map(|p| p.fingerprint)
        })
    }
}

/// The validity period of a certificate trusted exactly: the fingerprint says who the server
/// is, the dates still say whether the certificate is meant to be used.
fn check_dates(der: &[u8], now: UnixTime) -> Result<(), CertificateError> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Err(CertificateError::BadEncoding);
    };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < cert.validity().not_before.timestamp() {
        return Err(CertificateError::NotValidYet);
    }
    if now > cert.validity().not_after.timestamp() {
        return Err(CertificateError::Expired);
    }
    Ok(())
}

impl ServerCertVerifier for ChannelVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verdict.saw(end_entity);
        let presented = CertificateFingerprint::of(end_entity.as_ref());
        let refuse = |error: rustls::Error, problem: CertificateProblem| {
            self.verdict.refused(problem);
            Err(error)
        };
        if self.trusts_exactly(&presented) {
            return match check_dates(end_entity.as_ref(), now) {
                Ok(()) => Ok(ServerCertVerified::assertion()),
                Err(e) => {
                    let error = rustls::Error::InvalidCertificate(e);
                    let problem = CertificateProblem::of(&error);
                    refuse(error, problem)
                }
            };
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            Err(error) => {
                let problem = CertificateProblem::of(&error);
                let problem = match self.replaced(subject_of(end_entity.as_ref()).as_deref()) {
                    Some(trusted) => CertificateProblem::Changed {
                        trusted,
                        presented,
                        because: Box::new(problem),
                    },
                    None => problem,
                };
                refuse(error, problem)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The signature proves the server holds the key of the certificate it presented,
        // pinned or not: the same check as the web PKI's.
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// Accepts any certificate: only when an admin turned verification off, loudly warned.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls client configuration of one handshake with a channel's server (implicit TLS
/// and STARTTLS alike), and the verdict its verifier will leave.
pub fn client_config(
    settings: &SmtpSettings,
) -> Result<(Arc<rustls::ClientConfig>, Verdict), TrustError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Config(e.to_string()))?;
    let (verifier, verdict): (Arc<dyn ServerCertVerifier>, Verdict) =
        if settings.accept_invalid_certs {
            (Arc::new(AcceptAnyCertificate(provider)), Verdict::default())
        } else {
            let verifier = ChannelVerifier::new(settings, provider)?;
            let verdict = verifier.verdict.clone();
            (Arc::new(verifier), verdict)
        };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok((Arc::new(config), verdict))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `mail.example` (CA:TRUE, as `openssl req -x509` makes
    /// it), valid from `from` to `until` (years).
    fn self_signed(from: i32, until: i32) -> rcgen::Certificate {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mail.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mail.example");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        params.self_signed(&key).unwrap()
    }

    fn verifier(ca_pem: Option<String>, pinned: Option<&rcgen::Certificate>) -> ChannelVerifier {
        let settings = SmtpSettings {
            host: crate::domain::Hostname::parse("mail.example").unwrap(),
            port: 465,
            security: crate::domain::Security::Tls,
            auth: crate::domain::SmtpAuth::None,
            username: None,
            accept_invalid_certs: false,
            ca_pem,
            pinned_sha256: pinned.map(|c| CertificateFingerprint::of(c.der())),
            connect_timeout_secs: 5,
            command_timeout_secs: 5,
            pool_size: 1,
        };
        ChannelVerifier::new(
            &settings,
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap()
    }

    fn verify(v: &ChannelVerifier, cert: &rcgen::Certificate, name: &str) -> bool {
        let name = ServerName::try_from(name.to_owned()).unwrap();
        v.verify_server_cert(cert.der(), &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn a_pasted_or_pinned_certificate_is_trusted_exactly_and_its_replacement_is_named() {
        let own = self_signed(2020, 2090);
        let pasted = verifier(Some(own.pem()), None);
        assert!(verify(&pasted, &own, "mail.example"), "CA:TRUE, pasted");
        let renewed = self_signed(2020, 2090);
        assert!(!verify(&pasted, &renewed, "mail.example"));
        match pasted.verdict.rejection().unwrap().problem {
            CertificateProblem::Changed {
                trusted, presented, ..
            } => {
                assert_eq!(trusted, CertificateFingerprint::of(own.der()));
                assert_eq!(presented, CertificateFingerprint::of(renewed.der()));
            }
            other => panic!("{other:?}"),
        }

        // Pinned: whatever the name, while its dates are valid.
        let pinned = verifier(None, Some(&renewed));
        assert!(verify(&pinned, &renewed, "other.example"));
        assert!(!verify(&pinned, &own, "mail.example"));
        let old = self_signed(2000, 2001);
        let expired = verifier(None, Some(&old));
        assert!(!verify(&expired, &old, "mail.example"));
        assert_eq!(
            expired.verdict.rejection().unwrap().problem,
            CertificateProblem::Expired
        );

        // Nothing pasted or pinned: the web PKI alone refuses it.
        let none = verifier(None, None);
        assert!(!verify(&none, &own, "mail.example"));
        assert_eq!(
            none.verdict.presented(),
            Some(CertificateFingerprint::of(own.der()))
        );
    }

    #[test]
    fn refusals_are_told_apart_by_variant() {
        let of =
            |e: CertificateError| CertificateProblem::of(&rustls::Error::InvalidCertificate(e));
        assert_eq!(of(CertificateError::Expired), CertificateProblem::Expired);
        assert_eq!(
            of(CertificateError::NotValidYet),
            CertificateProblem::NotYetValid
        );
        assert_eq!(
            of(CertificateError::NotValidForName),
            CertificateProblem::WrongName
        );
        assert_eq!(
            of(CertificateError::UnknownIssuer),
            CertificateProblem::UnknownIssuer
        );
        let ca = CertificateError::Other(rustls::OtherError(Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        )));
        assert_eq!(of(ca), CertificateProblem::CaUsedAsEndEntity);
        assert_eq!(of(CertificateError::BadSignature).code(), "other");
    }
}
