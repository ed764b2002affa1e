//! The SHA-256 fingerprint of a certificate, as a person compares it: 32 bytes written as
//! colon-separated hex pairs, the way browsers and `openssl x509 -fingerprint` show it.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::DomainError;

/// The SHA-256 of a certificate's DER bytes: what an admin trusts when they trust "this
/// certificate" of a server (a security exception, as a mail client keeps one).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificateFingerprint([u8; 32]);

impl CertificateFingerprint {
    /// The fingerprint of a certificate in DER.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Reads 64 hex digits, with or without `:` (or spaces) between pairs, any case: what a
    /// person copies from a browser, from `openssl x509 -fingerprint -sha256`, or from us.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        let raw = raw
            .strip_prefix("sha256 Fingerprint=")
            .or_else(|| raw.strip_prefix("SHA256 Fingerprint="))
            .unwrap_or(raw);
        let digits: Vec<u8> = raw.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
        let invalid = || {
            DomainError::new(
                "a SHA-256 fingerprint is 64 hex digits, in pairs separated by colons (AB:CD:…), as the test report shows it",
            )
        };
        if digits.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| invalid())?;
            bytes[i] = u8::from_str_radix(text, 16).map_err(|_| invalid())?;
        }
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for CertificateFingerprint {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::parse(s)
    }
}

impl fmt::Display for CertificateFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertificateFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateFingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_colon_pairs_and_read_back_in_every_common_form() {
        let fp = CertificateFingerprint::of(b"certificate");
        let shown = fp.to_string();
        assert_eq!(shown.len(), 32 * 3 - 1);
        assert!(shown.split(':').all(|p| p.len() == 2), "{shown}");
        assert_eq!(CertificateFingerprint::parse(&shown).unwrap(), fp);
        let bare = shown.replace(':', "").to_ascii_lowercase();
        assert_eq!(CertificateFingerprint::parse(&bare).unwrap(), fp);
        let openssl = format!("sha256 Fingerprint={shown}");
        assert_eq!(CertificateFingerprint::parse(&openssl).unwrap(), fp);
    }

    #[test]
    fn anything_else_is_refused() {
        let fp = CertificateFingerprint::of(b"x").to_string();
        let not_hex = format!("G{}", &fp[1..]);
        let too_long = format!("{fp}:00");
        for bad in ["", "AB:CD", &fp[..fp.len() - 1], &not_hex, &too_long] {
            assert!(CertificateFingerprint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
