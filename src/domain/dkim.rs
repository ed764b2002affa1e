//! DKIM rules with no I/O: selector names, the TXT record a tenant publishes, a key's life
//! (pending until its record is seen, then active, retiring, retired), how long a rotated
//! key stays published, and which header fields a signature covers.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;

use super::{Domain, DomainError};

/// How long a rotated key stays published after its successor took over. Mail signed with
/// it may sit in a relay's queue, or be verified again later (forwarding, ARC, a user
/// reporting spam): a week covers a relay's usual 5-day queue lifetime with room to spare.
pub const RETIRING_FOR: Duration = Duration::days(7);

/// Bits of a new RSA key. 2048 is RFC 8301's recommendation and what Gmail expects; 1024
/// is the minimum verifiers accept, and keys over 2048 do not fit a single 255-byte TXT
/// string at many DNS providers.
pub const RSA_BITS: usize = 2048;

/// The header fields a signature covers, in this order, whichever the message has. The
/// unsubscribe pair must be signed for receivers to offer one-click unsubscribe (RFC 8058).
pub const SIGNED_HEADERS: [&str; 14] = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// The signature algorithm of every key we make (`a=` of the signature).
pub const ALGORITHM: &str = "rsa-sha256";

/// The name of a key under a domain (`s=`): `sb-<yyyymmdd>-<8 random letters or digits>`.
/// The date tells people which key is newer; the random part keeps two tenants' keys for one
/// domain (each proves the domain on its own) from ever sharing a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DkimSelector(String);

impl DkimSelector {
    /// A fresh selector for a key made at `now`.
    pub fn generate(now: DateTime<Utc>) -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let suffix: String = (0..8)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Self(format!("sb-{}-{suffix}", now.format("%Y%m%d")))
    }

    /// A stored or typed selector: one DNS label of lowercase letters, digits and hyphens.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let valid = !raw.is_empty()
            && raw.len() <= 63
            && !raw.starts_with('-')
            && !raw.ends_with('-')
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(DomainError::new(
                "a DKIM selector is one DNS label: lowercase letters, digits and inner hyphens",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DkimSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimKeyState {
    /// Made, waiting for its record to show in DNS; signs nothing until then (a receiver
    /// would find no key for its selector and fail the signature). At most one per tenant
    /// and domain.
    Pending,
    /// Signs new mail. One per tenant and domain.
    Active,
    /// Replaced by a newer key; signs nothing, but stays published for `RETIRING_FOR` so
    /// that mail it signed still verifies.
    Retiring,
    /// No longer published; its private half is gone.
    Retired,
}

impl DkimKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimKeyState::Pending => "pending",
            DkimKeyState::Active => "active",
            DkimKeyState::Retiring => "retiring",
            DkimKeyState::Retired => "retired",
        }
    }

    /// Whether the tenant must have the key's record in DNS (a pending key's: to publish).
    pub fn is_published(self) -> bool {
        !matches!(self, DkimKeyState::Retired)
    }

    /// What the state asks of the admin, in one sentence.
    pub fn describe(self) -> &'static str {
        match self {
            DkimKeyState::Pending => {
                "publish this record: the key signs once Switchboard finds it in DNS (until then the previous key, if any, keeps signing)"
            }
            DkimKeyState::Active => "signs new mail: keep this record published",
            DkimKeyState::Retiring => {
                "replaced by a newer key and signs nothing, but keep this record published until the date shown: mail it signed may still be verified"
            }
            DkimKeyState::Retired => "no longer used: remove this record",
        }
    }
}

impl FromStr for DkimKeyState {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s {
            "pending" => Ok(DkimKeyState::Pending),
            "active" => Ok(DkimKeyState::Active),
            "retiring" => Ok(DkimKeyState::Retiring),
            "retired" => Ok(DkimKeyState::Retired),
            other => Err(DomainError::new(format!(
                "unknown DKIM key state `{other}`; use pending, active, retiring or retired"
            ))),
        }
    }
}

impl fmt::Display for DkimKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DNS record the tenant publishes for one key: a TXT record `value` at `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimRecord {
    pub selector: DkimSelector,
    /// `<selector>._domainkey.<domain>`.
    pub name: String,
    /// `v=DKIM1; k=rsa; p=<base64 of the public key's SubjectPublicKeyInfo DER>`.
    pub value: String,
    pub state: DkimKeyState,
    pub created_at: DateTime<Utc>,
    /// When it started signing (none while pending).
    pub activated_at: Option<DateTime<Utc>>,
    /// For a retiring key: when it may leave DNS (it is then retired).
    pub retire_after: Option<DateTime<Utc>>,
}

impl DkimRecord {
    /// The record of a key, from what is stored about it.
    pub fn of(
        domain: &Domain,
        selector: DkimSelector,
        public_key_spki: &[u8],
        state: DkimKeyState,
        created_at: DateTime<Utc>,
        activated_at: Option<DateTime<Utc>>,
        retiring_since: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            name: record_name(&selector, domain),
            value: txt_value(public_key_spki),
            selector,
            state,
            created_at,
            activated_at,
            retire_after: match state {
                DkimKeyState::Retiring => retiring_since.map(|since| since + RETIRING_FOR),
                _ => None,
            },
        }
    }
}

/// Why a tenant's mail from a domain leaves unsigned through a channel that signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsigned {
    /// The domain's only key waits for its record to show in DNS.
    AwaitingRecord { selector: DkimSelector },
    /// The tenant has no key for the domain (a claim made before keys came with claims,
    /// or a key nobody made yet).
    NoKey,
    /// The key's private half does not open (a broken vault): logged as an error.
    KeyDoesNotOpen,
}

impl Unsigned {
    /// Stable code, for the message log and the route explanation.
    pub fn code(&self) -> &'static str {
        match self {
            Unsigned::AwaitingRecord { .. } => "dkim_record_not_published",
            Unsigned::NoKey => "dkim_no_key",
            Unsigned::KeyDoesNotOpen => "dkim_key_unusable",
        }
    }

    /// A sentence a person can act on.
    pub fn describe(&self, domain: &Domain) -> String {
        match self {
            Unsigned::AwaitingRecord { selector } => format!(
                "not DKIM-signed: the record for selector {selector} is not published yet (publish the TXT record shown for {domain} at {}, then check the domain)",
                record_name(selector, domain)
            ),
            Unsigned::NoKey => format!(
                "not DKIM-signed: there is no DKIM key for {domain} (rotate the DKIM key of {domain} on the Domains page to make one)"
            ),
            Unsigned::KeyDoesNotOpen => format!(
                "not DKIM-signed: the DKIM key of {domain} could not be opened (the service's log says why; rotating the key mends it)"
            ),
        }
    }
}

/// The DNS name a key is published at.
pub fn record_name(selector: &DkimSelector, domain: &Domain) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// The TXT record text of an RSA public key given as SubjectPublicKeyInfo DER. It is longer
/// than one 255-byte TXT string: DNS providers split it into several strings of one record,
/// which verifiers join again (RFC 6376 §3.6.2.2).
pub fn txt_value(public_key_spki: &[u8]) -> String {
    format!(
        "v=DKIM1; k=rsa; p={}",
        base64::engine::general_purpose::STANDARD.encode(public_key_spki)
    )
}

/// The names of the header fields of a message (its bytes up to the first empty line), in
/// order, as written.
pub fn header_names(message: &[u8]) -> Vec<&str> {
    let mut names = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue; // the folded continuation of the field before
        }
        if let Some(colon) = line.iter().position(|&b| b == b':')
            && let Ok(name) = std::str::from_utf8(&line[..colon])
        {
            names.push(name.trim_end());
        }
    }
    names
}

/// The `h=` list to ask a signer for: each of `SIGNED_HEADERS` the message has, then `From`
/// once more. A signer lists every name it is given even when absent (RFC 6376 §5.4), so the
/// second `From` signs "no further From": nobody can add one later without breaking the
/// signature (over-signing, §8.15).
pub fn headers_to_sign<'a>(present: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let present: Vec<&str> = present.into_iter().collect();
    let mut signed: Vec<&'static str> = SIGNED_HEADERS
        .iter()
        .copied()
        .filter(|wanted| present.iter().any(|p| p.eq_ignore_ascii_case(wanted)))
        .collect();
    if signed.contains(&"From") {
        signed.push("From");
    }
    signed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_dns_labels_that_differ_each_time() {
        let now = "2026-12-02T10:00:00Z".parse().unwrap();
        let a = DkimSelector::generate(now);
        let b = DkimSelector::generate(now);
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("sb-20261202-"), "{a}");
        assert_eq!(DkimSelector::parse(a.as_str()).unwrap(), a);
        for bad in ["", "-x", "x-", "Sb", "a.b", "a_b", &"x".repeat(64)] {
            assert!(DkimSelector::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_record_is_named_by_selector_and_domain_and_carries_the_key() {
        let domain = Domain::parse("Mail.Acme.test").unwrap();
        let selector = DkimSelector::parse("sb-20261202-abcd1234").unwrap();
        let created: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().unwrap();
        let record = DkimRecord::of(
            &domain,
            selector.clone(),
            &[0x30, 0x82, 0x01],
            DkimKeyState::Active,
            created,
            Some(created),
            None,
        );
        assert_eq!(
            record.name,
            "sb-20261202-abcd1234._domainkey.mail.acme.test"
        );
        assert_eq!(record.value, "v=DKIM1; k=rsa; p=MIIB");
        assert_eq!(record.retire_after, None);
        let since: DateTime<Utc> = "2026-12-05T10:00:00Z".parse().unwrap();
        let retiring = DkimRecord::of(
            &domain,
            selector,
            &[0x30],
            DkimKeyState::Retiring,
            created,
            Some(created),
            Some(since),
        );
        assert_eq!(
            retiring.retire_after,
            Some("2026-12-12T10:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn only_the_listed_fields_present_are_signed_and_from_twice() {
        let message = b"From: a@acme.test\r\nX-Campaign: q4\r\nSubject: folded\r\n over two lines\r\nlist-unsubscribe: <https://u.test/x>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nTo: b@example.com\r\n\r\nBody-Header: not a header\r\n";
        let names = header_names(message);
        assert_eq!(
            names,
            [
                "From",
                "X-Campaign",
                "Subject",
                "list-unsubscribe",
                "List-Unsubscribe-Post",
                "To"
            ]
        );
        assert_eq!(
            headers_to_sign(names),
            [
                "From",
                "To",
                "Subject",
                "List-Unsubscribe",
                "List-Unsubscribe-Post",
                "From"
            ]
        );
    }

    #[test]
    fn states_round_trip_and_only_active_and_retiring_are_published() {
        for state in [
            DkimKeyState::Pending,
            DkimKeyState::Active,
            DkimKeyState::Retiring,
            DkimKeyState::Retired,
        ] {
            assert_eq!(state.as_str().parse::<DkimKeyState>().unwrap(), state);
        }
        assert!(DkimKeyState::Retiring.is_published());
        assert!(DkimKeyState::Pending.is_published());
        assert!(!DkimKeyState::Retired.is_published());
        assert!("gone".parse::<DkimKeyState>().is_err());
    }

    #[test]
    fn an_unsigned_message_says_which_record_to_publish() {
        let domain = Domain::parse("acme.test").unwrap();
        let selector = DkimSelector::parse("sb-20261202-abcd1234").unwrap();
        let why = Unsigned::AwaitingRecord { selector }.describe(&domain);
        assert!(
            why.starts_with(
                "not DKIM-signed: the record for selector sb-20261202-abcd1234 is not published yet"
            ),
            "{why}"
        );
        assert!(
            why.contains("sb-20261202-abcd1234._domainkey.acme.test"),
            "{why}"
        );
        assert!(
            Unsigned::NoKey
                .describe(&domain)
                .contains("no DKIM key for acme.test")
        );
    }
}
