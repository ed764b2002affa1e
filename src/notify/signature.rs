//! The webhook signature: the contract every receiver relies on, so it never changes shape.
//!
//! ```text
//! Switchboard-Signature: t=<unix seconds>,v1=<lowercase hex HMAC-SHA256>[,v1=<…>]
//! ```
//!
//! The HMAC key is the whole secret string's UTF-8 bytes (`whsec_…`, prefix included) and the
//! signed message is the decimal timestamp, a `.`, then the raw request body bytes. Signing the
//! timestamp with the body lets a receiver refuse a replayed request older than [`TOLERANCE`].
//! We send one `v1=` entry today; receivers accept the request if any entry matches, so a
//! later overlap of two secrets during a rotation needs no change on their side. Entries with another scheme name are
//! ignored, so a later `v2=` can be added beside `v1=` without breaking receivers.
//!
//! [`verify`] is the reference implementation; `docs/examples/verify_webhook.{py,mjs}` are the
//! copies receivers paste, and the interop test holds the three to the same answers.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The request header that carries the signature.
pub const SIGNATURE_HEADER: &str = "Switchboard-Signature";

/// How far a signature's timestamp may be from the receiver's clock, either way. Past it the
/// request is refused as a replay (or the clock is wrong).
pub const TOLERANCE: Duration = Duration::from_secs(300);

/// The prefix of every webhook secret, so that one found in a log or a repository is
/// recognisable for what it is.
pub const SECRET_PREFIX: &str = "whsec_";

/// An HMAC-SHA256 tag is 32 bytes, 64 hex digits.
const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    #[error(
        "timestamp {timestamp} is {skew_secs} s away from now ({now}); at most {} s is accepted",
        TOLERANCE.as_secs()
    )]
    OutsideTolerance {
        timestamp: i64,
        now: i64,
        skew_secs: u64,
    },
    #[error("no v1 signature matches the body and timestamp")]
    Mismatch,
}

/// A new webhook secret: `whsec_` and 32 random bytes in unpadded base64url (43 characters).
pub fn generate_secret() -> SecretString {
    // `rand::rng()` is the thread-local CSPRNG (ChaCha, seeded from the OS).
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The full `Switchboard-Signature` header value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &SecretString, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let mut header = format!("t={timestamp},v1=");
    for byte in tag {
        let _ = write!(header, "{byte:02x}");
    }
    header
}

/// Checks a `Switchboard-Signature` header against the raw body, as a receiver does, with
/// `now` in unix seconds. The signature is checked before the timestamp so that
/// `OutsideTolerance` only ever describes a genuine request (a clock problem or a replay),
/// never a forgery.
pub fn verify(
    secret: &SecretString,
    header: &str,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let parsed = parse(header)?;
    let expected = mac(secret, parsed.timestamp, body).finalize().into_bytes();
    // Every candidate is compared, in constant time, whatever the earlier ones gave.
    let matched = parsed
        .v1
        .iter()
        .fold(subtle::Choice::from(0), |any, candidate| {
            any | expected.as_slice().ct_eq(candidate)
        });
    if !bool::from(matched) {
        return Err(SignatureError::Mismatch);
    }
    let skew_secs = now.abs_diff(parsed.timestamp);
    if skew_secs > TOLERANCE.as_secs() {
        return Err(SignatureError::OutsideTolerance {
            timestamp: parsed.timestamp,
            now,
            skew_secs,
        });
    }
    Ok(())
}

fn mac(secret: &SecretString, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC accepts a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

struct Parsed {
    timestamp: i64,
    v1: Vec<[u8; TAG_LEN]>,
}

fn parse(header: &str) -> Result<Parsed, SignatureError> {
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed("expected key=value pairs"))?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("more than one t="));
                }
                // Digits only: no sign, no spaces, nothing `i64::from_str` would also accept.
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed("t= is not a unix timestamp"));
                }
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed("t= is not a unix timestamp"))?,
                );
            }
            "v1" => v1.push(
                decode_hex(value).ok_or(SignatureError::Malformed("v1= is not 64 hex digits"))?,
            ),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t="))?;
    if v1.is_empty() {
        return Err(SignatureError::Malformed("no v1="));
    }
    Ok(Parsed { timestamp, v1 })
}

fn decode_hex(text: &str) -> Option<[u8; TAG_LEN]> {
    let text = text.as_bytes();
    if text.len() != TAG_LEN * 2 {
        return None;
    }
    let mut out = [0u8; TAG_LEN];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS1rbm93bi12ZWN0b3I";
    const BODY: &[u8] = br#"{"event":"channel.needs_reauth","channel_id":"7f0c"}"#;
    const T: i64 = 1_700_000_000;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn known_vector() {
        // Computed once, independently, with
        // python3 -c "import hmac,hashlib; print(hmac.new(SECRET.encode(), b'1700000000.' + BODY, hashlib.sha256).hexdigest())"
        let header = sign(&secret(SECRET), T, BODY);
        assert_eq!(
            header,
            "t=1700000000,v1=63c2c83e635bbb869af505b4ad07e00d6046d365acdaa9bcda4280ce9dd0649f"
        );
        assert_eq!(verify(&secret(SECRET), &header, BODY, T), Ok(()));
        let upper = format!("t={T},v1={}", header[16..].to_ascii_uppercase());
        assert_eq!(
            verify(&secret(SECRET), &upper, BODY, T),
            Ok(()),
            "hex digits are read in either case"
        );
    }

    #[test]
    fn generated_secrets_have_the_documented_shape_and_differ() {
        let a = generate_secret();
        let b = generate_secret();
        let a = a.expose_secret();
        assert!(a.starts_with("whsec_"));
        assert_eq!(a.len(), 6 + 43);
        assert!(
            a[6..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b.expose_secret());
    }

    #[test]
    fn tampering_with_body_timestamp_or_secret_fails() {
        let header = sign(&secret(SECRET), T, BODY);
        let mut body = BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            verify(&secret(SECRET), &header, &body, T),
            Err(SignatureError::Mismatch)
        );
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify(&secret(SECRET), &moved, BODY, T),
            Err(SignatureError::Mismatch)
        );
        let other = format!("{SECRET}x");
        assert_eq!(
            verify(&secret(&other), &header, BODY, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_fail() {
        let s = secret(SECRET);
        let header = sign(&s, T, BODY);
        assert_eq!(verify(&s, &header, BODY, T + 300), Ok(()));
        assert_eq!(verify(&s, &header, BODY, T - 300), Ok(()));
        assert!(matches!(
            verify(&s, &header, BODY, T + 301),
            Err(SignatureError::OutsideTolerance { skew_secs: 301, .. })
        ));
        assert!(matches!(
            verify(&s, &header, BODY, T - 301),
            Err(SignatureError::OutsideTolerance { skew_secs: 301, .. })
        ));
        assert!(matches!(
            verify(&s, &header, BODY, i64::MIN),
            Err(SignatureError::OutsideTolerance { .. })
        ));
    }

    #[test]
    fn any_of_several_v1_entries_may_match_as_during_a_rotation() {
        let old = secret(SECRET);
        let new = generate_secret();
        let tag = |s: &SecretString| sign(s, T, BODY).split_once(",v1=").unwrap().1.to_owned();
        let both = format!("t={T},v1={},v1={}", tag(&new), tag(&old));
        assert_eq!(verify(&old, &both, BODY, T), Ok(()));
        assert_eq!(verify(&new, &both, BODY, T), Ok(()));
        assert_eq!(
            verify(&secret("whsec_neither"), &both, BODY, T),
            Err(SignatureError::Mismatch)
        );
        // Unknown schemes and spaces after commas are tolerated.
        let spaced = format!("t={T}, v0=whatever, v1={}", tag(&old));
        assert_eq!(verify(&old, &spaced, BODY, T), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let s = secret(SECRET);
        let good = sign(&s, T, BODY);
        let tag = good.split_once(",v1=").unwrap().1;
        for bad in [
            String::new(),
            "garbage".into(),
            format!("v1={tag}"),
            format!("t={T}"),
            format!("t=+{T},v1={tag}"),
            format!("t=-{T},v1={tag}"),
            format!("t={T},t={T},v1={tag}"),
            format!("t={T},v1={}", &tag[..63]),
            format!("t={T},v1={}g", &tag[..63]),
            format!("t=99999999999999999999,v1={tag}"),
        ] {
            assert!(
                matches!(verify(&s, &bad, BODY, T), Err(SignatureError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
