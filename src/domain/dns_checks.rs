//! DNS health checks of a verified sending domain: what each check found, in a status and
//! a sentence a person can act on, and the DMARC and DKIM record parsers they use. Pure:
//! the lookups are made in `domains::health`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Missing,
    Invalid,
    /// The DNS did not answer: nothing is known, nothing is concluded.
    TempError,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Missing => "missing",
            CheckStatus::Invalid => "invalid",
            CheckStatus::TempError => "temp_error",
        }
    }

    /// A definite problem (a DNS outage is not one).
    pub fn is_failure(self) -> bool {
        matches!(self, CheckStatus::Missing | CheckStatus::Invalid)
    }
}

/// Which record a check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Spf,
    Dkim,
    Dmarc,
    ReturnPath,
    Mx,
    Alignment,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub check: CheckKind,
    pub status: CheckStatus,
    /// A sentence a person can act on.
    pub message: String,
    /// What was found, for machines (the DMARC policy, the SPF lookup count, the selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl HealthCheck {
    pub fn new(check: CheckKind, status: CheckStatus, message: impl Into<String>) -> Self {
        Self {
            check,
            status,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Tells two checks of one kind apart (a DKIM check per selector).
    fn key(&self) -> (CheckKind, Option<&str>) {
        let selector = self
            .detail
            .as_ref()
            .and_then(|d| d.get("selector"))
            .and_then(Value::as_str);
        (self.check, selector)
    }
}

/// The last run of a domain's checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainHealth {
    pub checked_at: DateTime<Utc>,
    pub checks: Vec<HealthCheck>,
}

impl DomainHealth {
    /// Whether `self` shows a failure that `before` did not: a check that was `ok` is now
    /// missing or invalid. A failure seen again an hour later is no news.
    pub fn newly_failing(&self, before: Option<&DomainHealth>) -> bool {
        let Some(before) = before else {
            return false;
        };
        self.checks.iter().any(|now| {
            now.status.is_failure()
                && before
                    .checks
                    .iter()
                    .any(|was| was.key() == now.key() && was.status == CheckStatus::Ok)
        })
    }
}

/// A DMARC policy (RFC 7489 §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcRecord {
    /// `none`, `quarantine` or `reject`.
    pub policy: String,
    pub subdomain_policy: Option<String>,
    pub pct: u8,
    pub rua: Vec<String>,
}

/// Tags of a `k=v; k=v` record (DMARC, DKIM), names lower-cased, values trimmed.
fn tags(txt: &str) -> Vec<(String, String)> {
    txt.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_owned()),
            None => (t.to_ascii_lowercase(), String::new()),
        })
        .collect()
}

impl DmarcRecord {
    /// Whether a TXT string at `_dmarc` is meant as DMARC (receivers ignore the others).
    pub fn is_dmarc(txt: &str) -> bool {
        tags(txt)
            .first()
            .is_some_and(|(k, v)| k == "v" && v == "DMARC1")
    }

    pub fn parse(txt: &str) -> Result<Self, String> {
        let tags = tags(txt);
        match tags.first() {
            Some((k, v)) if k == "v" && v == "DMARC1" => {}
            _ => return Err("the record must start with v=DMARC1".into()),
        }
        let get = |name: &str| {
            tags.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let policy_of = |tag: &str, v: &str| {
            let v = v.to_ascii_lowercase();
            if ["none", "quarantine", "reject"].contains(&v.as_str()) {
                Ok(v)
            } else {
                Err(format!("{tag}={v} is not none, quarantine or reject"))
            }
        };
        let policy = policy_of("p", get("p").ok_or("the record has no p= policy")?)?;
        let subdomain_policy = get("sp").map(|v| policy_of("sp", v)).transpose()?;
        let pct = match get("pct") {
            None => 100,
            Some(v) => v
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 100)
                .ok_or_else(|| format!("pct={v} is not a number from 0 to 100"))?,
        };
        let rua = get("rua")
            .map(|v| {
                v.split(',')
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            policy,
            subdomain_policy,
            pct,
            rua,
        })
    }
}

/// The public key of a DKIM key record (RFC 6376 §3.6.1), base64 with spaces removed;
/// empty when the key was revoked.
pub fn dkim_public_key(txt: &str) -> Result<String, String> {
    let tags = tags(txt);
    if let Some((k, v)) = tags.first()
        && k == "v"
        && v != "DKIM1"
    {
        return Err(format!("v={v} is not DKIM1"));
    }
    if tags.iter().skip(1).any(|(k, _)| k == "v") {
        return Err("v=DKIM1 must come first".into());
    }
    let p = tags
        .iter()
        .find(|(k, _)| k == "p")
        .map(|(_, v)| v)
        .ok_or("the record has no p= public key")?;
    Ok(p.chars().filter(|c| !c.is_whitespace()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmarc_shows_its_policy_pct_and_reports() {
        let d = DmarcRecord::parse(
            "v=DMARC1; p=Quarantine; sp=reject; pct=50; rua=mailto:d@acme.test, mailto:x@y.test",
        )
        .unwrap();
        assert_eq!(d.policy, "quarantine");
        assert_eq!(d.subdomain_policy.as_deref(), Some("reject"));
        assert_eq!(d.pct, 50);
        assert_eq!(d.rua, ["mailto:d@acme.test", "mailto:x@y.test"]);
        assert_eq!(DmarcRecord::parse("v=DMARC1;p=none").unwrap().pct, 100);
    }

    #[test]
    fn dmarc_errors_name_the_tag() {
        assert!(DmarcRecord::parse("p=none; v=DMARC1").is_err());
        assert!(!DmarcRecord::is_dmarc("p=none; v=DMARC1"));
        assert!(
            DmarcRecord::parse("v=DMARC1; rua=mailto:a@b.test")
                .unwrap_err()
                .contains("p=")
        );
        assert!(
            DmarcRecord::parse("v=DMARC1; p=block")
                .unwrap_err()
                .contains("p=block")
        );
        assert!(
            DmarcRecord::parse("v=DMARC1; p=none; pct=150")
                .unwrap_err()
                .contains("pct")
        );
    }

    #[test]
    fn dkim_keys_are_read_and_revoked_ones_are_empty() {
        assert_eq!(
            dkim_public_key("v=DKIM1; k=rsa; p=MIIB Ag==").unwrap(),
            "MIIBAg=="
        );
        assert_eq!(dkim_public_key("k=rsa; p=").unwrap(), "");
        assert!(dkim_public_key("v=DKIM1; k=rsa").is_err());
        assert!(dkim_public_key("k=rsa; v=DKIM1; p=x").is_err());
    }

    #[test]
    fn a_failure_is_news_only_after_ok() {
        let at = Utc::now();
        let run = |s| DomainHealth {
            checked_at: at,
            checks: vec![HealthCheck::new(CheckKind::Spf, s, "")],
        };
        let ok = run(CheckStatus::Ok);
        let missing = run(CheckStatus::Missing);
        assert!(missing.newly_failing(Some(&ok)));
        assert!(!missing.newly_failing(Some(&missing)));
        assert!(!missing.newly_failing(None));
        assert!(!run(CheckStatus::TempError).newly_failing(Some(&ok)));
    }
}
