//! Reading certificates: what a paste into `ca_pem` holds, and what a server's certificate
//! says (subject, issuer, names, dates, fingerprint) for a person deciding whether to trust it.

use std::net::IpAddr;

use chrono::{DateTime, TimeZone, Utc};
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;

use crate::domain::CertificateFingerprint;

/// Why a paste into `ca_pem` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasteError {
    #[error(
        "ca_pem holds no certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)"
    )]
    NoCertificate,
    #[error("ca_pem: the PEM text cannot be read ({0})")]
    Pem(String),
    #[error("ca_pem: certificate {index} is not a certificate that can be read ({reason})")]
    Unreadable { index: usize, reason: String },
}

/// The certificates pasted into `ca_pem`, each checked to be a readable X.509 certificate,
/// so a bad paste is refused when saved rather than at the first connection.
pub fn pasted_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, PasteError> {
    use rustls::pki_types::pem::PemObject;
    let mut certs = Vec::new();
    for (index, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let cert = cert.map_err(|e| PasteError::Pem(format!("{e:?}")))?;
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| PasteError::Unreadable {
            index: index + 1,
            reason: e.to_string(),
        })?;
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err(PasteError::NoCertificate);
    }
    Ok(certs)
}

/// What a server presented, for a person deciding whether to trust it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresentedCertificate {
    /// The subject's distinguished name, e.g. `CN=mail.example`.
    pub subject: String,
    pub issuer: String,
    /// The DNS names and IP addresses it is for (subjectAltName; the CN when there is none).
    pub names: Vec<String>,
    pub not_before: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the certificate, as colon-separated hex pairs (what browsers show).
    pub sha256: String,
    /// Issued by itself: nobody but the server vouches for it.
    pub self_signed: bool,
}

impl PresentedCertificate {
    /// Describes a certificate in DER; `None` when it cannot be parsed (the fingerprint alone
    /// would still identify it, but a certificate nobody can read is not worth trusting).
    pub fn describe(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_address(bytes) {
                            names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        if names.is_empty() {
            names.extend(
                cert.subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok().map(str::to_owned)),
            );
        }
        let time = |t: x509_parser::time::ASN1Time| {
            Utc.timestamp_opt(t.timestamp(), 0)
                .single()
                .unwrap_or_default()
        };
        Some(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            names,
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
            sha256: CertificateFingerprint::of(der).to_string(),
            self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        })
    }
}

fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The raw subject name of a certificate, to recognise another certificate for the same server.
pub(super) fn subject_of(der: &[u8]) -> Option<Vec<u8>> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.subject().as_raw().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paste_that_is_no_certificate_is_refused_with_a_reason() {
        assert_eq!(
            pasted_certificates("hello").unwrap_err(),
            PasteError::NoCertificate
        );
        let garbage =
            "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            pasted_certificates(garbage).unwrap_err(),
            PasteError::Unreadable { index: 1, .. }
        ));
    }

    #[test]
    fn a_certificate_is_described_as_a_person_reads_it() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["mail.example".into(), "192.0.2.7".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mail.example");
        let cert = params.self_signed(&key).unwrap();
        let described = PresentedCertificate::describe(cert.der()).unwrap();
        assert_eq!(described.subject, "CN=mail.example");
        assert_eq!(described.issuer, "CN=mail.example");
        assert_eq!(described.names, ["mail.example", "192.0.2.7"]);
        assert!(described.self_signed);
        assert_eq!(
            described.sha256,
            CertificateFingerprint::of(cert.der()).to_string()
        );
        assert!(described.not_before < described.not_after);
        assert_eq!(pasted_certificates(&cert.pem()).unwrap().len(), 1);
    }
}
