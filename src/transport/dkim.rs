//! DKIM signing (RFC 6376) of the exact bytes a transport sends: `rsa-sha256`, relaxed
//! header and relaxed body canonicalisation, `d=` the From domain. The signature comes back
//! as a `DKIM-Signature` field to put in front of the message; nothing may change the
//! message after it is signed.
//!
//! Written here rather than taken from mail-auth: mail-auth 0.15, the first release whose
//! relaxed body canonicalisation is right, needs rustc 1.98 (through mail-parser 1.0), and
//! signing needs none of its parsing. The tests check the canonicalisation against RFC 6376's
//! own example; tests/api/dkim.rs verifies our signatures with mail-auth's verifier and the
//! interop leg with Python's dkimpy.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};

use crate::domain::dkim::{ALGORITHM, DkimSelector, headers_to_sign};
use crate::domain::{Domain, EmailAddress};
use crate::vault::VaultError;
use crate::vault::dkim::DkimSigningKey;

/// Signs for one domain with one key. Cheap to clone (the key is shared).
#[derive(Clone)]
pub struct DkimSigner {
    pub domain: Domain,
    pub selector: DkimSelector,
    key: Arc<DkimSigningKey>,
}

impl fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DkimSigner(d={}, s={})", self.domain, self.selector)
    }
}

/// The part of a message a signature covers: (name, the whole field as written, folding and
/// all, without its final CRLF), and the body.
struct Parsed<'a> {
    fields: Vec<(&'a str, &'a [u8])>,
    body: &'a [u8],
}

fn parse(message: &[u8]) -> Parsed<'_> {
    let (header, body) = match find(message, b"\r\n\r\n") {
        Some(at) => (&message[..at + 2], &message[at + 4..]),
        None => (message, &b""[..]),
    };
    let mut fields = Vec::new();
    let mut start = 0;
    // A field runs to the CRLF that is not followed by a space or tab (a fold).
    let mut i = 0;
    while i + 1 < header.len() {
        if &header[i..i + 2] == b"\r\n" && !matches!(header.get(i + 2), Some(b' ' | b'\t')) {
            let field = &header[start..i];
            if let Some(colon) = field.iter().position(|&b| b == b':')
                && let Ok(name) = std::str::from_utf8(&field[..colon])
            {
                fields.push((name.trim_end(), field));
            }
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    Parsed { fields, body }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Relaxed header canonicalisation (§3.4.2) of one field, without the final CRLF: name in
/// lower case, folds removed, whitespace runs as one space, none around the colon or at the
/// end.
fn relaxed_header(field: &[u8], out: &mut Vec<u8>) {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(field.len());
    let name = &field[..colon];
    let end = name.iter().rposition(|&b| !is_wsp(b)).map_or(0, |p| p + 1);
    out.extend(name[..end].iter().map(u8::to_ascii_lowercase));
    out.push(b':');
    let value = field.get(colon + 1..).unwrap_or_default();
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => pending_space = started,
            _ => {
                if pending_space {
                    out.push(b' ');
                    pending_space = false;
                }
                out.push(b);
                started = true;
            }
        }
    }
}

/// Relaxed body canonicalisation (§3.4.4): whitespace runs as one space, none at line ends,
/// no empty lines at the end (whitespace-only lines count as empty once trimmed), and a
/// non-empty body ends with CRLF. An empty body canonicalises to nothing.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut empty_lines = 0;
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if last && line.is_empty() {
            break; // what follows the final CRLF: nothing
        }
        let mut canonical = Vec::with_capacity(line.len());
        let mut pending_space = false;
        for &b in line {
            if is_wsp(b) {
                pending_space = true;
            } else {
                if pending_space {
                    canonical.push(b' ');
                    pending_space = false;
                }
                canonical.push(b);
            }
        }
        if canonical.is_empty() {
            empty_lines += 1;
            continue;
        }
        for _ in 0..empty_lines {
            out.extend_from_slice(b"\r\n");
        }
        empty_lines = 0;
        out.extend_from_slice(&canonical);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Why a message was not signed. The message can still be sent unsigned.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("the message has no From field to sign")]
    NoFrom,
    #[error("{0}")]
    Key(#[from] VaultError),
}

impl DkimSigner {
    pub fn new(domain: Domain, selector: DkimSelector, key: Arc<DkimSigningKey>) -> Self {
        Self {
            domain,
            selector,
            key,
        }
    }

    /// Whether this signer's domain is the From address's: `d=` must be the From domain for
    /// DMARC alignment, so a signer is chosen by it.
    pub fn signs_for(&self, from: &EmailAddress) -> bool {
        from.domain() == &self.domain
    }

    /// The `DKIM-Signature` field (with its final CRLF) for `message`, to put in front of it.
    pub fn sign(&self, message: &[u8], now: DateTime<Utc>) -> Result<Vec<u8>, DkimError> {
        let parsed = parse(message);
        let signed = headers_to_sign(parsed.fields.iter().map(|(name, _)| *name));
        if !signed.contains(&"From") {
            return Err(DkimError::NoFrom);
        }
        let body_hash = BASE64.encode(sha256(&relaxed_body(parsed.body)));

        // The header hash input: each name in h= takes the last instance of that field not
        // taken yet (§5.4.2); a name with none left (the second From) adds nothing.
        let mut input = Vec::with_capacity(1024);
        let mut used = vec![false; parsed.fields.len()];
        for name in &signed {
            let found = parsed
                .fields
                .iter()
                .enumerate()
                .rev()
                .find(|(i, (n, _))| !used[*i] && n.eq_ignore_ascii_case(name));
            if let Some((i, (_, field))) = found {
                used[i] = true;
                relaxed_header(field, &mut input);
                input.extend_from_slice(b"\r\n");
            }
        }
        // Folded before the signature is computed: relaxed canonicalisation of the field as
        // it will be written, with b= empty, is what the verifier hashes.
        let mut field = format!(
            "DKIM-Signature: v=1; a={ALGORITHM}; c=relaxed/relaxed; d={}; s={};\r\n\tt={}; h={};\r\n\tbh={};\r\n\tb=",
            self.domain,
            self.selector,
            now.timestamp(),
            signed.join(":"),
            body_hash,
        )
        .into_bytes();
        relaxed_header(&field, &mut input);
        let signature = BASE64.encode(self.key.sign_rsa_sha256(&input)?);
        // Lines of at most 78 characters (RFC 5322 §2.1.1); the verifier removes b='s
        // whitespace with its value.
        for (i, chunk) in signature.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                field.extend_from_slice(b"\r\n\t ");
            }
            field.extend_from_slice(chunk);
        }
        field.extend_from_slice(b"\r\n");
        Ok(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6376 §3.4.6's example, relaxed/relaxed.
    #[test]
    fn canonicalisation_matches_the_rfc_example() {
        let message = b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n";
        let parsed = parse(message);
        let mut headers = Vec::new();
        for (_, field) in &parsed.fields {
            relaxed_header(field, &mut headers);
            headers.extend_from_slice(b"\r\n");
        }
        assert_eq!(
            String::from_utf8(headers).unwrap(),
            "a:X\r\nb:Y Z\r\n",
            "headers"
        );
        assert_eq!(
            String::from_utf8(relaxed_body(parsed.body)).unwrap(),
            " C\r\nD E\r\n",
            "body"
        );
    }

    #[test]
    fn relaxed_body_edge_cases() {
        for (body, canonical) in [
            (&b""[..], &b""[..]),
            (b"\r\n\r\n", b""),
            (b"  \r\n\t\r\n", b""),
            (b"text", b"text\r\n"),
            (b"a\r\n \r\n\t \r\n", b"a\r\n"),
            (b"a\r\n\r\nb  \r\n\r\n", b"a\r\n\r\nb\r\n"),
            (b"a\r\n \r\nb\r\n", b"a\r\n\r\nb\r\n"),
        ] {
            assert_eq!(
                relaxed_body(body),
                canonical,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn header_fields_keep_their_folds_and_the_body_starts_after_the_first_empty_line() {
        let message =
            b"From: a@acme.test\r\nSubject: one\r\n two\r\nX-A: 1\r\n\r\nNot-A: header\r\n";
        let parsed = parse(message);
        let fields: Vec<(&str, String)> = parsed
            .fields
            .iter()
            .map(|(n, f)| (*n, String::from_utf8_lossy(f).into_owned()))
            .collect();
        assert_eq!(
            fields,
            [
                ("From", "From: a@acme.test".to_owned()),
                ("Subject", "Subject: one\r\n two".to_owned()),
                ("X-A", "X-A: 1".to_owned()),
            ]
        );
        assert_eq!(parsed.body, b"Not-A: header\r\n");
    }
}
