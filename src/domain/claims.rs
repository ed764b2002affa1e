//! Claims on sending domains: a tenant sends as a domain only after proving it controls the
//! domain's DNS, and only while the proof stays published. Each claim has its own random
//! token, so several tenants may claim one domain and each gets it only by its own proof.
//!
//! States: `pending → verified → lapsed`, and `failed` for a claim never proven within the
//! claim window. Definite misses (NXDOMAIN, no TXT, wrong value) count towards a lapse;
//! temporary DNS failures are counted apart and never lapse a domain on their own, because a
//! resolver outage says nothing about who controls the domain.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;

use super::{Domain, DomainError};

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClaimState {
    /// Waiting for the TXT record to appear.
    Pending,
    /// Proven: the tenant may send as the domain.
    Verified,
    /// Was proven, but the record went missing on several checks in a row: no sending.
    Lapsed,
    /// Never proven within the claim window; checked again only on demand.
    Failed,
}

impl ClaimState {
    pub const ALL: [ClaimState; 4] = [
        ClaimState::Pending,
        ClaimState::Verified,
        ClaimState::Lapsed,
        ClaimState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::Pending => "pending",
            ClaimState::Verified => "verified",
            ClaimState::Lapsed => "lapsed",
            ClaimState::Failed => "failed",
        }
    }

    /// What the state means for sending, in one sentence.
    pub fn describe(self) -> &'static str {
        match self {
            ClaimState::Pending => "its TXT record has not been found yet; publish it and check",
            ClaimState::Verified => "its TXT record was found; it may be sent as",
            ClaimState::Lapsed => {
                "its TXT record was missing on several checks in a row; publish it again"
            }
            ClaimState::Failed => {
                "its TXT record was not found within the claim's window; publish it and check again"
            }
        }
    }
}

impl FromStr for ClaimState {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ClaimState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                DomainError::new(format!(
                    "unknown domain state `{s}`; use pending, verified, lapsed or failed"
                ))
            })
    }
}

impl fmt::Display for ClaimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The secret-until-published part of a claim: 160 random bits, hex.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 20];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A stored token (already checked when it was made).
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Tokens are published in DNS, but another tenant learning one before it is would let
/// nobody in: still, keep them out of logs.
impl fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimToken(..)")
    }
}

/// The prefix of the TXT value that proves a claim.
pub const TOKEN_PREFIX: &str = "switchboard-domain-verification=";

/// Where the proof is published: a label in front of the domain, or the apex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordPlacement {
    /// `<label>.<domain>`, e.g. `_switchboard.acme.test` (the default).
    Label(String),
    /// The domain itself, next to its SPF record (as Google and Postal do).
    Apex,
}

impl Default for RecordPlacement {
    fn default() -> Self {
        RecordPlacement::Label("_switchboard".into())
    }
}

impl RecordPlacement {
    /// `_switchboard` (or any DNS label, an underscore allowed in front) or `@` for the apex.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let raw = raw.trim();
        if raw == "@" {
            return Ok(RecordPlacement::Apex);
        }
        let body = raw.strip_prefix('_').unwrap_or(raw);
        let valid = !body.is_empty()
            && raw.len() <= 63
            && !body.starts_with('-')
            && !body.ends_with('-')
            && body
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(DomainError::new(format!(
                "`{raw}` is not a DNS label; use e.g. _switchboard, or @ for the domain itself"
            )));
        }
        Ok(RecordPlacement::Label(raw.to_owned()))
    }

    /// The name at which `domain`'s proof is looked up.
    pub fn record_name(&self, domain: &Domain) -> String {
        match self {
            RecordPlacement::Label(label) => format!("{label}.{domain}"),
            RecordPlacement::Apex => domain.to_string(),
        }
    }
}

/// The TXT record a tenant publishes to prove a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofRecord {
    pub name: String,
    pub value: String,
}

impl ProofRecord {
    pub fn new(name: String, token: &ClaimToken) -> Self {
        Self {
            name,
            value: format!("{TOKEN_PREFIX}{}", token.as_str()),
        }
    }

    /// Whether one of the TXT strings found at the name is this proof. Providers' panels
    /// add quotes or spaces; a TXT value may arrive split into character-strings, which the
    /// caller joins.
    pub fn is_among(&self, found: &[String]) -> bool {
        found
            .iter()
            .any(|txt| txt.trim().trim_matches('"').trim() == self.value)
    }
}

/// Why a proof was not found, when DNS gave a definite answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// The name does not exist.
    NxDomain,
    /// The name exists but has no TXT record.
    NoRecords,
    /// TXT records are there, but none is this claim's.
    WrongValue,
}

impl Miss {
    pub fn code(self) -> &'static str {
        match self {
            Miss::NxDomain => "nxdomain",
            Miss::NoRecords => "no_txt_record",
            Miss::WrongValue => "wrong_value",
        }
    }
}

/// What one lookup of the proof found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofCheck {
    Found,
    Missing(Miss),
    /// SERVFAIL, a timeout, a refused query: nothing is known.
    TempError(String),
}

impl ProofCheck {
    /// `ok | missing | invalid | temp_error`, as every DNS check reports.
    pub fn status(&self) -> &'static str {
        match self {
            ProofCheck::Found => "ok",
            ProofCheck::Missing(Miss::WrongValue) => "invalid",
            ProofCheck::Missing(_) => "missing",
            ProofCheck::TempError(_) => "temp_error",
        }
    }

    /// A sentence a person can act on.
    pub fn message(&self, record: &ProofRecord) -> String {
        match self {
            ProofCheck::Found => format!("the TXT record at {} proves the claim", record.name),
            ProofCheck::Missing(Miss::NxDomain) => format!(
                "{} does not exist in DNS: add a TXT record there with the value {}",
                record.name, record.value
            ),
            ProofCheck::Missing(Miss::NoRecords) => format!(
                "{} has no TXT record: add one with the value {}",
                record.name, record.value
            ),
            ProofCheck::Missing(Miss::WrongValue) => format!(
                "{} has TXT records, but none is {}: add it (other records may stay)",
                record.name, record.value
            ),
            ProofCheck::TempError(reason) => format!(
                "DNS could not answer for {} ({reason}); this is not counted against the domain and is tried again",
                record.name
            ),
        }
    }
}

/// How often claims are checked and when they give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofSchedule {
    /// Pending claims: how often the scheduler looks for their record.
    pub pending_every: Duration,
    /// Verified claims: the routine re-check (about daily).
    pub recheck_every: Duration,
    /// After a miss or a temporary failure, and for lapsed claims: sooner than routine.
    pub retry_every: Duration,
    /// Consecutive definite misses that lapse a verified domain.
    pub lapse_after: u32,
    /// How long a claim may stay pending before it fails.
    pub claim_window: Duration,
}

impl Default for ProofSchedule {
    fn default() -> Self {
        Self {
            pending_every: Duration::from_secs(5 * 60),
            recheck_every: Duration::from_secs(24 * 3600),
            retry_every: Duration::from_secs(3600),
            lapse_after: 3,
            claim_window: Duration::from_secs(72 * 3600),
        }
    }
}

/// A claim's progress, as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimProgress {
    pub state: ClaimState,
    pub created_at: DateTime<Utc>,
    /// Definite misses in a row since the last time the proof was found.
    pub misses: u32,
    /// Temporary failures in a row.
    pub temp_failures: u32,
}

/// What changes after a check: the new progress, when to look again, and what happened
/// that people should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimChange {
    pub progress: ClaimProgress,
    pub next_check_at: Option<DateTime<Utc>>,
    pub transition: Option<Transition>,
}

/// A change of state worth an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Pending, lapsed or failed → verified: mail for the domain may flow.
    Verified { was: ClaimState },
    /// Verified → lapsed: sending as the domain stops.
    Lapsed,
    /// Pending → failed: the claim window passed.
    Failed,
}

fn after(now: DateTime<Utc>, every: Duration) -> Option<DateTime<Utc>> {
    chrono::Duration::from_std(every)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
}

/// Applies one check to a claim. A check on demand (`POST …/verify`) follows the same rules
/// as a scheduled one, so a user's click cannot lapse a domain faster than time would.
pub fn observe(
    claim: ClaimProgress,
    check: &ProofCheck,
    now: DateTime<Utc>,
    schedule: &ProofSchedule,
) -> ClaimChange {
    let mut progress = claim;
    let window_passed = chrono::Duration::from_std(schedule.claim_window)
        .ok()
        .and_then(|w| claim.created_at.checked_add_signed(w))
        .is_some_and(|deadline| now >= deadline);
    let (transition, next) = match check {
        ProofCheck::Found => {
            progress.misses = 0;
            progress.temp_failures = 0;
            progress.state = ClaimState::Verified;
            let transition = (claim.state != ClaimState::Verified)
                .then_some(Transition::Verified { was: claim.state });
            (transition, after(now, schedule.recheck_every))
        }
        ProofCheck::Missing(_) => {
            progress.temp_failures = 0;
            match claim.state {
                ClaimState::Verified => {
                    progress.misses = claim.misses.saturating_add(1);
                    if progress.misses >= schedule.lapse_after {
                        progress.state = ClaimState::Lapsed;
                        (Some(Transition::Lapsed), after(now, schedule.retry_every))
                    } else {
                        (None, after(now, schedule.retry_every))
                    }
                }
                ClaimState::Pending if window_passed => {
                    progress.misses = claim.misses.saturating_add(1);
                    progress.state = ClaimState::Failed;
                    (Some(Transition::Failed), None)
                }
                ClaimState::Pending => {
                    progress.misses = claim.misses.saturating_add(1);
                    (None, after(now, schedule.pending_every))
                }
                ClaimState::Lapsed => {
                    progress.misses = claim.misses.saturating_add(1);
                    (None, after(now, schedule.retry_every))
                }
                ClaimState::Failed => (None, None),
            }
        }
        ProofCheck::TempError(_) => {
            progress.temp_failures = claim.temp_failures.saturating_add(1);
            match claim.state {
                ClaimState::Pending if window_passed => {
                    progress.state = ClaimState::Failed;
                    (Some(Transition::Failed), None)
                }
                ClaimState::Pending => (None, after(now, schedule.pending_every)),
                ClaimState::Failed => (None, None),
                ClaimState::Verified | ClaimState::Lapsed => {
                    (None, after(now, schedule.retry_every))
                }
            }
        }
    };
    ClaimChange {
        progress,
        next_check_at: next,
        transition,
    }
}

/// Mailbox providers' own domains: nobody proves them, and their users send through
/// Connect Gmail or Connect Microsoft instead. Claiming one is refused with a pointer there.
pub const MAILBOX_PROVIDER_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "ymail.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "gmx.com",
    "gmx.de",
    "web.de",
    "mail.com",
    "yandex.ru",
    "zoho.com",
];

pub fn is_mailbox_provider(domain: &Domain) -> bool {
    MAILBOX_PROVIDER_DOMAINS.contains(&domain.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::hours(hours)
    }

    fn progress(state: ClaimState) -> ClaimProgress {
        ClaimProgress {
            state,
            created_at: at(0),
            misses: 0,
            temp_failures: 0,
        }
    }

    fn run(mut p: ClaimProgress, checks: &[(i64, ProofCheck)]) -> Vec<ClaimChange> {
        let schedule = ProofSchedule::default();
        checks
            .iter()
            .map(|(hour, check)| {
                let change = observe(p, check, at(*hour), &schedule);
                p = change.progress;
                change
            })
            .collect()
    }

    #[test]
    fn a_pending_claim_is_verified_when_its_record_appears() {
        let changes = run(
            progress(ClaimState::Pending),
            &[
                (1, ProofCheck::Missing(Miss::NxDomain)),
                (2, ProofCheck::Found),
            ],
        );
        assert_eq!(changes[0].progress.state, ClaimState::Pending);
        assert_eq!(
            changes[0].next_check_at,
            Some(at(1) + chrono::Duration::minutes(5))
        );
        assert_eq!(
            changes[1].transition,
            Some(Transition::Verified {
                was: ClaimState::Pending
            })
        );
        assert_eq!(changes[1].next_check_at, Some(at(26)));
    }

    #[test]
    fn a_claim_not_proven_in_72_hours_fails_and_is_not_scheduled_again() {
        let changes = run(
            progress(ClaimState::Pending),
            &[
                (71, ProofCheck::Missing(Miss::NoRecords)),
                (72, ProofCheck::Missing(Miss::NoRecords)),
            ],
        );
        assert_eq!(changes[0].progress.state, ClaimState::Pending);
        assert_eq!(changes[1].transition, Some(Transition::Failed));
        assert_eq!(changes[1].next_check_at, None);
        // A check on demand can still prove it.
        let later = observe(
            changes[1].progress,
            &ProofCheck::Found,
            at(100),
            &ProofSchedule::default(),
        );
        assert_eq!(
            later.transition,
            Some(Transition::Verified {
                was: ClaimState::Failed
            })
        );
    }

    #[test]
    fn a_verified_domain_lapses_after_three_misses_in_a_row_only() {
        let missing = || ProofCheck::Missing(Miss::NoRecords);
        let changes = run(
            progress(ClaimState::Verified),
            &[
                (1, missing()),
                (2, missing()),
                (3, ProofCheck::Found),
                (4, missing()),
                (5, missing()),
                (6, missing()),
            ],
        );
        let states: Vec<_> = changes.iter().map(|c| c.progress.state).collect();
        assert_eq!(
            states,
            [
                ClaimState::Verified,
                ClaimState::Verified,
                ClaimState::Verified,
                ClaimState::Verified,
                ClaimState::Verified,
                ClaimState::Lapsed
            ]
        );
        assert_eq!(changes[5].transition, Some(Transition::Lapsed));
        // A miss is looked at again within the hour, not the next day.
        assert_eq!(changes[0].next_check_at, Some(at(2)));
    }

    #[test]
    fn temporary_dns_failures_never_lapse_a_domain_nor_reset_its_misses() {
        let temp = || ProofCheck::TempError("SERVFAIL".into());
        let changes = run(
            progress(ClaimState::Verified),
            &[
                (1, ProofCheck::Missing(Miss::NxDomain)),
                (2, temp()),
                (3, temp()),
                (4, temp()),
                (5, temp()),
                (6, ProofCheck::Missing(Miss::NxDomain)),
            ],
        );
        assert!(
            changes[..5]
                .iter()
                .all(|c| c.progress.state == ClaimState::Verified)
        );
        assert_eq!(changes[4].progress.temp_failures, 4);
        assert_eq!(changes[4].progress.misses, 1);
        assert_eq!(changes[5].progress.misses, 2);
        assert_eq!(changes[5].progress.temp_failures, 0);
    }

    #[test]
    fn a_lapsed_domain_comes_back_when_its_record_does() {
        let changes = run(
            progress(ClaimState::Lapsed),
            &[
                (1, ProofCheck::Missing(Miss::WrongValue)),
                (2, ProofCheck::Found),
            ],
        );
        assert_eq!(changes[0].next_check_at, Some(at(2)));
        assert_eq!(
            changes[1].transition,
            Some(Transition::Verified {
                was: ClaimState::Lapsed
            })
        );
        assert_eq!(changes[1].progress.misses, 0);
    }

    #[test]
    fn the_proof_matches_its_own_token_only() {
        let token = ClaimToken::generate();
        assert_eq!(token.as_str().len(), 40);
        let record = ProofRecord::new("_switchboard.acme.test".into(), &token);
        assert!(record.is_among(&["v=spf1 -all".into(), format!("\"{}\"", record.value)]));
        let other = ProofRecord::new(record.name.clone(), &ClaimToken::generate());
        assert!(!other.is_among(std::slice::from_ref(&record.value)));
        assert!(!format!("{token:?}").contains(token.as_str()));
    }

    #[test]
    fn the_record_goes_under_a_label_or_at_the_apex() {
        let acme = Domain::parse("acme.test").unwrap();
        assert_eq!(
            RecordPlacement::default().record_name(&acme),
            "_switchboard.acme.test"
        );
        assert_eq!(
            RecordPlacement::parse("@").unwrap().record_name(&acme),
            "acme.test"
        );
        assert_eq!(
            RecordPlacement::parse("_verify-sb")
                .unwrap()
                .record_name(&acme),
            "_verify-sb.acme.test"
        );
        assert!(RecordPlacement::parse("a.b").is_err());
        assert!(RecordPlacement::parse("").is_err());
    }
}
