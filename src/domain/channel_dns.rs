//! DNS health of a domain as one channel sends it: whose domain the envelope sender will
//! have, who DKIM-signs with which `d=`, and whether DMARC passes on SPF or DKIM alignment
//! (relaxed: the same organisational domain). Pure: `domains::channel_health` looks the
//! records up and hands the results in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::dns_checks::{CheckKind, CheckStatus, HealthCheck};
use super::providers::{Bounce, Delegation, RelayDkim, RelayDns, relay_dns};
use super::{ChannelKind, ChannelSpec, CredentialScope, Domain, EmailAddress, ReturnPath};

/// The organisational domain of `domain` as far as we know it without the public suffix
/// list: the highest verified domain of the tenant that `domain` is, or is under; else
/// `domain` itself.
pub fn organisational_domain(domain: &str, verified: &[Domain]) -> String {
    verified
        .iter()
        .map(Domain::as_str)
        .filter(|v| domain == *v || domain.ends_with(&format!(".{v}")))
        .min_by_key(|v| v.len())
        .unwrap_or(domain)
        .to_owned()
}

/// Relaxed alignment (RFC 7489 §3.1): `a` and `b` share their organisational domain. One
/// under the other always does (a sending domain is never a public suffix); otherwise the
/// tenant's verified domains stand in for the public suffix list.
pub fn relaxed_aligned(a: &str, b: &str, verified: &[Domain]) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a == b
        || a.ends_with(&format!(".{b}"))
        || b.ends_with(&format!(".{a}"))
        || organisational_domain(&a, verified) == organisational_domain(&b, verified)
}

/// What the checks need to know about a channel, whatever its kind.
#[derive(Debug, Clone)]
pub struct SendingPath {
    /// "SparkPost", "the shared pool", "smtp.example.test", in sentences.
    pub relay_name: String,
    pub relay: Option<RelayDns>,
    /// The SPF include the relay needs: the channel's own, the shared pool's, or the preset's.
    pub spf_include: Option<String>,
    pub return_path: ReturnPath,
    /// The SMTP login when it is an address: what goes in MAIL FROM when the relay decides.
    pub login: Option<EmailAddress>,
    /// Switchboard DKIM-signs this channel's mail (the shared pool; `dkim_sign`).
    pub we_sign: bool,
    pub mailbox: bool,
    /// The platform's shared pool: its include is the operator's to set.
    pub shared_pool: bool,
}

impl SendingPath {
    /// A stored channel's path.
    pub fn of(spec: &ChannelSpec) -> Self {
        let relay = relay_dns(spec.kind, spec.provider.as_deref()).copied();
        let preset_name = spec
            .provider
            .as_deref()
            .and_then(super::providers::preset)
            .map(|p| p.name.to_owned());
        let relay_name = match spec.kind {
            ChannelKind::Gmail => "Gmail".to_owned(),
            ChannelKind::Microsoft => "Microsoft 365".to_owned(),
            _ => preset_name
                .or_else(|| spec.smtp.as_ref().map(|s| s.host.to_string()))
                .unwrap_or_else(|| "the relay".to_owned()),
        };
        Self {
            relay_name,
            spf_include: spec
                .spf_include
                .clone()
                .or_else(|| relay.and_then(|r| r.spf_include).map(str::to_owned)),
            relay,
            return_path: spec.return_path.clone(),
            login: spec
                .smtp
                .as_ref()
                .and_then(|s| s.username.as_deref())
                .and_then(|u| EmailAddress::parse(u).ok()),
            we_sign: spec.signs_dkim(),
            mailbox: spec.scope == CredentialScope::Mailbox,
            shared_pool: false,
        }
    }

    /// The platform's shared pool, as the operator configured it.
    pub fn shared_pool(login: Option<EmailAddress>, spf_include: Option<String>) -> Self {
        Self {
            relay_name: "the shared pool".to_owned(),
            relay: None,
            spf_include,
            return_path: ReturnPath::No,
            login,
            we_sign: true,
            mailbox: false,
            shared_pool: true,
        }
    }

    /// Where the envelope sender of mail from `from` goes, as far as configuration says.
    pub fn envelope(&self, from: &Domain) -> EnvelopePlan {
        if self.mailbox || self.relay.is_some_and(|r| r.bounce == Bounce::Mailbox) {
            return EnvelopePlan::Kept {
                domain: from.to_string(),
                why: "the mailbox's own address".into(),
            };
        }
        // What Switchboard hands the relay in MAIL FROM (outbox::render).
        let (domain, why) = match &self.return_path {
            ReturnPath::Specified(a) => (
                a.domain().to_string(),
                format!("the channel's return path {a}"),
            ),
            ReturnPath::Yes => (
                from.to_string(),
                "the From address (return path: yes)".into(),
            ),
            ReturnPath::No => match &self.login {
                Some(login) => (login.domain().to_string(), format!("the login {login}")),
                None => (from.to_string(), "the From address".into()),
            },
        };
        match self.relay.map(|r| r.bounce) {
            Some(Bounce::Own {
                default,
                delegation,
            }) => EnvelopePlan::Rewritten {
                domain,
                default,
                delegation,
            },
            _ => EnvelopePlan::Kept { domain, why },
        }
    }

    /// Who signs, and how the check finds the key.
    pub fn signer(&self) -> Signer {
        if self.we_sign {
            return Signer::Us;
        }
        match self.relay.map(|r| r.dkim) {
            Some(RelayDkim::Customer { selectors }) => Signer::Relay { selectors },
            Some(RelayDkim::Mailbox {
                selectors,
                fallback,
            }) => Signer::Mailbox {
                selectors,
                fallback,
            },
            None => Signer::Unknown,
        }
    }
}

/// Where the envelope sender goes, before the DNS is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopePlan {
    /// The relay keeps the domain it is given (or it is the mailbox's).
    Kept { domain: String, why: String },
    /// The relay replaces it with its own `default` unless `domain` is delegated to it.
    Rewritten {
        domain: String,
        default: &'static str,
        delegation: Delegation,
    },
}

/// Whether `domain`, given in MAIL FROM for mail from `from`, could be a bounce domain
/// delegated to the relay (worth a lookup).
pub fn may_be_delegated(domain: &str, from: &Domain, verified: &[Domain]) -> bool {
    domain != from.as_str() && relaxed_aligned(domain, from.as_str(), verified)
}

/// What the DNS said about a bounce domain's delegation to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delegated {
    Yes,
    No,
    Unknown(String),
}

/// Who DKIM-signs a channel's mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// Switchboard, with the tenant's active key for the From domain.
    Us,
    /// The relay, with the key published at selectors the admin names on the domain.
    Relay { selectors: &'static str },
    /// A mailbox provider: aligned when its DKIM is set up for the domain.
    Mailbox {
        selectors: &'static [&'static str],
        fallback: &'static str,
    },
    /// A relay we know nothing about: only selectors named on the domain can be checked.
    Unknown,
}

/// The envelope domain in the end, with its return-path check and whether SPF (as far as it
/// is known) passes aligned.
#[derive(Debug, Clone)]
pub struct ReturnPathResult {
    pub check: HealthCheck,
    /// The domain whose SPF record is looked at, and the include it needs, when that is a
    /// record of the tenant's (not the relay's own domain, not a CNAME to the relay).
    pub spf_at: Option<String>,
    pub envelope: Option<String>,
    pub aligned: Option<bool>,
    /// The SPF of the envelope domain is the relay's (its own domain, or a CNAME to it).
    pub relay_spf: bool,
}

/// The return-path check of `from` for a plan and what the DNS said about delegation.
pub fn return_path(
    path: &SendingPath,
    from: &Domain,
    plan: &EnvelopePlan,
    delegated: Option<&Delegated>,
    verified: &[Domain],
) -> ReturnPathResult {
    let k = CheckKind::ReturnPath;
    let relay = &path.relay_name;
    match plan {
        EnvelopePlan::Kept { domain, why } => {
            let aligned = relaxed_aligned(domain, from.as_str(), verified);
            let detail = json!({"envelope_domain": domain, "aligned": aligned});
            let check = if aligned {
                HealthCheck::new(
                    k,
                    CheckStatus::Ok,
                    format!(
                        "The envelope sender is {why}, at {domain}: it aligns with {from}, so SPF counts for DMARC"
                    ),
                )
            } else {
                HealthCheck::new(
                    k,
                    CheckStatus::Invalid,
                    format!(
                        "The envelope sender is {why}, at {domain}, which does not align with {from}: SPF cannot count for DMARC. Set the channel's return path to `yes` (the From) or to an address under {from}"
                    ),
                )
            };
            ReturnPathResult {
                check: check.with(detail),
                spf_at: Some(domain.clone()),
                envelope: Some(domain.clone()),
                aligned: Some(aligned),
                relay_spf: false,
            }
        }
        EnvelopePlan::Rewritten {
            domain,
            default,
            delegation,
        } => {
            // A bounce domain is a name of its own under the From's (a CNAME cannot sit at a
            // domain's apex, and SES wants a subdomain): the From itself is never delegated.
            let under_from = may_be_delegated(domain, from, verified);
            let bounce = format!("bounce.{from}");
            let how = delegation.record(if under_from { domain } else { &bounce });
            match (under_from, delegated) {
                (true, Some(Delegated::Yes)) => ReturnPathResult {
                    check: HealthCheck::new(
                        k,
                        CheckStatus::Ok,
                        format!("{relay} uses {domain} as the bounce domain (delegated to it: {how}); it aligns with {from}, so SPF counts for DMARC"),
                    )
                    .with(json!({"envelope_domain": domain, "aligned": true, "delegated": true})),
                    // A CNAME hands the relay the whole name, SPF included; an MX needs our SPF.
                    spf_at: matches!(delegation, Delegation::Mx(_)).then(|| domain.clone()),
                    envelope: Some(domain.clone()),
                    aligned: Some(true),
                    relay_spf: matches!(delegation, Delegation::Cname(_)),
                },
                (true, Some(Delegated::Unknown(why))) => ReturnPathResult {
                    check: HealthCheck::new(
                        k,
                        CheckStatus::TempError,
                        format!("The DNS did not answer for {domain} ({why}): checked again within the hour"),
                    ),
                    spf_at: None,
                    envelope: None,
                    aligned: None,
                    relay_spf: false,
                },
                _ => {
                    let fix = if under_from {
                        format!("publish {how} and verify it as a bounce domain at {relay}")
                    } else {
                        format!("publish {how}, verify it as a bounce domain at {relay}, and set the channel's return path to an address at it (e.g. bounces@{bounce})")
                    };
                    ReturnPathResult {
                        check: HealthCheck::new(
                            k,
                            CheckStatus::Invalid,
                            format!("{relay} puts its own domain {default} in the envelope sender, which does not align with {from}: SPF passes there but cannot count for DMARC. To align it, {fix}"),
                        )
                        .with(json!({"envelope_domain": default, "aligned": false, "delegated": false})),
                        spf_at: None,
                        envelope: Some((*default).to_owned()),
                        aligned: Some(false),
                        relay_spf: true,
                    }
                }
            }
        }
    }
}

/// SPF for an envelope domain whose record is the relay's own.
pub fn spf_of_relay(path: &SendingPath, envelope: &str) -> HealthCheck {
    HealthCheck::new(
        CheckKind::Spf,
        CheckStatus::Ok,
        format!(
            "SPF is checked at {envelope}, whose record {} publishes: nothing to add to yours for this channel",
            path.relay_name
        ),
    )
    .with(json!({"at": envelope}))
}

/// An SPF check of a record that is fine in itself, for a relay whose needs we do not know.
pub fn spf_include_unknown(path: &SendingPath, at: &str, found: HealthCheck) -> HealthCheck {
    if found.status != CheckStatus::Ok {
        return found;
    }
    let ask = if path.shared_pool {
        "ask the platform operator which SPF include the shared pool needs (they set it as SWITCHBOARD_SHARED_POOL_SPF_INCLUDE)".to_owned()
    } else {
        format!(
            "ask the relay's admin which SPF include (or ip4:/ip6: ranges) it needs at {at}, and enter it as the channel's spf_include"
        )
    };
    HealthCheck {
        status: CheckStatus::Missing,
        message: format!(
            "{} Switchboard cannot tell whether it authorises {}: {ask}",
            found.message, path.relay_name
        ),
        ..found
    }
}

/// One DKIM check for the channel: who signs, and what the selector checks found.
/// `found` holds the per-selector checks of the keys looked up (empty when none is known).
pub fn dkim(
    path: &SendingPath,
    from: &Domain,
    found: &[HealthCheck],
) -> (HealthCheck, Option<bool>) {
    let k = CheckKind::Dkim;
    let signer = path.signer();
    let who = match signer {
        Signer::Us => "Switchboard signs this channel's mail".to_owned(),
        Signer::Relay { .. } | Signer::Mailbox { .. } => {
            format!("{} signs this channel's mail", path.relay_name)
        }
        Signer::Unknown => format!(
            "Switchboard does not sign this channel's mail, and does not know whether {} does",
            path.relay_name
        ),
    };
    if let Some(ok) = found.iter().find(|c| c.status == CheckStatus::Ok) {
        let check = HealthCheck::new(
            k,
            CheckStatus::Ok,
            format!("{who} with d={from}, which aligns: {}", ok.message),
        );
        return (with_detail(check, ok, true), Some(true));
    }
    if let Some(temp) = found.iter().find(|c| c.status == CheckStatus::TempError) {
        return (temp.clone(), None);
    }
    let first = found.first();
    let (status, message) = match (signer, first) {
        (Signer::Us, None) => (
            CheckStatus::Missing,
            format!(
                "{who}, but the tenant has no active DKIM key for {from} yet: publish the pending key's record shown on the Domains page (or rotate to make one); it signs once the record is found"
            ),
        ),
        (Signer::Us, Some(c)) => (c.status, format!("{who} with d={from}, but: {}", c.message)),
        (Signer::Relay { selectors }, None) => (
            CheckStatus::Missing,
            format!(
                "{who} with d={from} once its key is published, but no selector is named for {from}: name {selectors} on the Domains page (dkim_selectors) so that the key can be checked"
            ),
        ),
        (Signer::Relay { .. }, Some(c)) => (
            c.status,
            format!(
                "{who} with d={from} once its key is published, but: {}",
                c.message
            ),
        ),
        (Signer::Mailbox { fallback, .. }, _) => (
            CheckStatus::Missing,
            format!(
                "{who}, but no DKIM key of {from} is published for it, so it signs with d={fallback}: DKIM passes but does not align, and DMARC rests on SPF alone. Turn DKIM on for {from} at the provider and publish its record"
            ),
        ),
        (Signer::Unknown, None) => (
            CheckStatus::Missing,
            format!(
                "{who}: turn on the channel's dkim_sign (Switchboard signs with the tenant's key) or name the selector the relay signs with on the Domains page (dkim_selectors)"
            ),
        ),
        (Signer::Unknown, Some(c)) => (
            c.status,
            format!("{who}: the selector named for {from} fails: {}", c.message),
        ),
    };
    let check = HealthCheck::new(k, status, message);
    let check = match first {
        Some(c) => with_detail(check, c, false),
        None => check.with(json!({"aligned": false})),
    };
    (check, Some(false))
}

fn with_detail(check: HealthCheck, from: &HealthCheck, aligned: bool) -> HealthCheck {
    let mut detail = from.detail.clone().unwrap_or_else(|| json!({}));
    if let Some(map) = detail.as_object_mut() {
        map.insert("aligned".into(), json!(aligned));
    }
    check.with(detail)
}

/// Whether DMARC passes for mail from `from` through the channel, and on what.
pub fn alignment(
    from: &Domain,
    spf: Option<bool>,
    dkim: Option<bool>,
    dmarc: &HealthCheck,
    fixes: &[&HealthCheck],
) -> HealthCheck {
    let k = CheckKind::Alignment;
    let detail = json!({"spf_aligned": spf, "dkim_aligned": dkim});
    let no_dmarc = if dmarc.status == CheckStatus::Missing {
        format!(
            " But {from} publishes no DMARC record, which Gmail, Yahoo and Outlook.com require from bulk senders: publish `v=DMARC1; p=none` at _dmarc.{from}"
        )
    } else {
        String::new()
    };
    let on = match (spf, dkim) {
        (Some(true), Some(true)) => Some("both SPF and DKIM"),
        (Some(true), _) => Some("SPF alone (DKIM does not align: see the dkim check)"),
        (_, Some(true)) => {
            Some("DKIM alone (the envelope sender does not align: see the return_path check)")
        }
        _ => None,
    };
    if let Some(on) = on {
        return HealthCheck::new(
            k,
            CheckStatus::Ok,
            format!("DMARC passes for {from} through this channel on {on}.{no_dmarc}"),
        )
        .with(detail);
    }
    if spf.is_none() || dkim.is_none() {
        return HealthCheck::new(
            k,
            CheckStatus::TempError,
            "The DNS did not answer for part of the checks: alignment is computed again within the hour",
        )
        .with(detail);
    }
    let todo: Vec<&str> = fixes
        .iter()
        .filter(|c| c.status.is_failure())
        .map(|c| c.message.as_str())
        .collect();
    HealthCheck::new(
        k,
        CheckStatus::Invalid,
        format!(
            "DMARC fails for {from} through this channel: neither SPF nor DKIM aligns with it, and receivers that enforce DMARC (Gmail, Yahoo and Outlook.com for bulk senders) reject or junk such mail. Fix either: {}.{no_dmarc}",
            todo.join(" — or: ")
        ),
    )
    .with(detail)
}

/// The checks of one domain a channel carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelDomainHealth {
    pub domain: String,
    pub checked_at: DateTime<Utc>,
    pub checks: Vec<HealthCheck>,
}

/// The domains a channel sends for: a domain channel's list, a mailbox's own domain.
pub fn carried_domains(spec: &ChannelSpec) -> Vec<Domain> {
    match (&spec.from_address, spec.scope) {
        (Some(a), CredentialScope::Mailbox) => vec![a.domain().clone()],
        _ => spec.domains.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::parse(s).unwrap()
    }

    fn sparkpost(return_path: ReturnPath) -> SendingPath {
        SendingPath {
            relay_name: "SparkPost".into(),
            relay: Some(super::super::providers::preset("sparkpost").unwrap().dns),
            spf_include: Some("_spf.sparkpostmail.com".into()),
            return_path,
            login: None,
            we_sign: false,
            mailbox: false,
            shared_pool: false,
        }
    }

    fn ok(kind: CheckKind) -> HealthCheck {
        HealthCheck::new(kind, CheckStatus::Ok, "fine")
    }

    #[test]
    fn organisational_domains_come_from_verified_claims() {
        let verified = [d("acme.test"), d("eu.acme.test")];
        assert_eq!(
            organisational_domain("mail.eu.acme.test", &verified),
            "acme.test"
        );
        assert_eq!(organisational_domain("other.test", &verified), "other.test");
        assert!(relaxed_aligned("bounce.acme.test", "acme.test", &[]));
        assert!(relaxed_aligned(
            "bounce.acme.test",
            "news.acme.test",
            &verified
        ));
        assert!(!relaxed_aligned("bounce.acme.test", "news.acme.test", &[]));
        assert!(!relaxed_aligned(
            "sparkpostmail.com",
            "acme.test",
            &verified
        ));
        assert!(!relaxed_aligned("evilacme.test", "acme.test", &verified));
    }

    #[test]
    fn a_relay_bounce_domain_aligns_only_when_delegated() {
        let from = d("acme.test");
        let path = sparkpost(ReturnPath::Specified(
            EmailAddress::parse("bounces@bounce.acme.test").unwrap(),
        ));
        let plan = path.envelope(&from);
        assert!(
            matches!(&plan, EnvelopePlan::Rewritten { domain, .. } if domain == "bounce.acme.test")
        );
        let yes = return_path(&path, &from, &plan, Some(&Delegated::Yes), &[]);
        assert_eq!(yes.check.status, CheckStatus::Ok, "{}", yes.check.message);
        assert_eq!(yes.aligned, Some(true));
        assert!(yes.relay_spf && yes.spf_at.is_none());
        let no = return_path(&path, &from, &plan, Some(&Delegated::No), &[]);
        assert_eq!(no.check.status, CheckStatus::Invalid);
        assert_eq!(no.envelope.as_deref(), Some("sparkpostmail.com"));
        assert!(
            no.check
                .message
                .contains("CNAME bounce.acme.test → sparkpostmail.com"),
            "{}",
            no.check.message
        );
        let temp = return_path(
            &path,
            &from,
            &plan,
            Some(&Delegated::Unknown("SERVFAIL".into())),
            &[],
        );
        assert_eq!(temp.check.status, CheckStatus::TempError);
        assert_eq!(temp.aligned, None);

        // Without a return path of ours, the advice names a bounce domain to create.
        let path = sparkpost(ReturnPath::No);
        let plan = path.envelope(&from);
        let no = return_path(&path, &from, &plan, Some(&Delegated::No), &[]);
        assert!(
            no.check.message.contains("bounces@bounce.acme.test"),
            "{}",
            no.check.message
        );
    }

    #[test]
    fn mailboxes_and_custom_relays_keep_the_envelope() {
        let from = d("acme.test");
        let mut path = sparkpost(ReturnPath::No);
        path.relay = None;
        path.relay_name = "smtp.relay.test".into();
        path.login = Some(EmailAddress::parse("relay@other.test").unwrap());
        let r = return_path(&path, &from, &path.envelope(&from), None, &[]);
        assert_eq!(r.check.status, CheckStatus::Invalid, "{}", r.check.message);
        assert!(r.check.message.contains("relay@other.test"));
        path.return_path = ReturnPath::Yes;
        let r = return_path(&path, &from, &path.envelope(&from), None, &[]);
        assert_eq!(r.check.status, CheckStatus::Ok);
        assert_eq!(r.spf_at.as_deref(), Some("acme.test"));
        path.mailbox = true;
        path.return_path = ReturnPath::Specified(EmailAddress::parse("x@other.test").unwrap());
        assert!(
            matches!(path.envelope(&from), EnvelopePlan::Kept { domain, .. } if domain == "acme.test")
        );
    }

    #[test]
    fn an_unknown_include_says_whom_to_ask() {
        let found = HealthCheck::new(CheckKind::Spf, CheckStatus::Ok, "SPF record found.");
        let mut relay = sparkpost(ReturnPath::No);
        relay.relay = None;
        let c = spf_include_unknown(&relay, "acme.test", found.clone());
        assert_eq!(c.status, CheckStatus::Missing);
        assert!(c.message.contains("spf_include"), "{}", c.message);
        let pool = SendingPath::shared_pool(None, None);
        let c = spf_include_unknown(&pool, "acme.test", found);
        assert!(
            c.message.contains("SWITCHBOARD_SHARED_POOL_SPF_INCLUDE"),
            "{}",
            c.message
        );
        let broken = HealthCheck::new(CheckKind::Spf, CheckStatus::Invalid, "two records");
        assert_eq!(
            spf_include_unknown(&pool, "acme.test", broken).status,
            CheckStatus::Invalid
        );
    }

    #[test]
    fn dkim_says_who_signs_and_what_is_missing() {
        let from = d("acme.test");
        let relay = sparkpost(ReturnPath::No);
        let (c, aligned) = dkim(&relay, &from, &[]);
        assert_eq!((c.status, aligned), (CheckStatus::Missing, Some(false)));
        assert!(c.message.contains("dkim_selectors"), "{}", c.message);
        let (c, aligned) = dkim(&relay, &from, &[ok(CheckKind::Dkim)]);
        assert_eq!((c.status, aligned), (CheckStatus::Ok, Some(true)));
        assert!(c.message.contains("SparkPost signs"));

        let mut ours = relay.clone();
        ours.we_sign = true;
        let (c, _) = dkim(&ours, &from, &[]);
        assert!(c.message.contains("no active DKIM key"), "{}", c.message);

        let mut google = relay.clone();
        google.relay = Some(*super::super::providers::relay_dns(ChannelKind::Gmail, None).unwrap());
        google.relay_name = "Gmail".into();
        let missing = HealthCheck::new(CheckKind::Dkim, CheckStatus::Missing, "no key");
        let (c, aligned) = dkim(&google, &from, &[missing]);
        assert_eq!(aligned, Some(false));
        assert!(
            c.message.contains("gappssmtp.com") && c.message.contains("rests on SPF"),
            "{}",
            c.message
        );
    }

    #[test]
    fn alignment_passes_on_either_and_says_what_to_fix_otherwise() {
        let from = d("acme.test");
        let dmarc = ok(CheckKind::Dmarc);
        let c = alignment(&from, Some(false), Some(true), &dmarc, &[]);
        assert_eq!(c.status, CheckStatus::Ok);
        assert!(c.message.contains("DKIM alone"), "{}", c.message);
        let rp = HealthCheck::new(
            CheckKind::ReturnPath,
            CheckStatus::Invalid,
            "publish a CNAME",
        );
        let dk = HealthCheck::new(CheckKind::Dkim, CheckStatus::Missing, "name the selector");
        let c = alignment(&from, Some(false), Some(false), &dmarc, &[&dk, &rp]);
        assert_eq!(c.status, CheckStatus::Invalid);
        assert!(
            c.message.contains("name the selector") && c.message.contains("publish a CNAME"),
            "{}",
            c.message
        );
        let none = HealthCheck::new(CheckKind::Dmarc, CheckStatus::Missing, "");
        let c = alignment(&from, Some(true), Some(true), &none, &[]);
        assert_eq!(c.status, CheckStatus::Ok);
        assert!(c.message.contains("no DMARC record"), "{}", c.message);
        assert_eq!(
            alignment(&from, None, Some(false), &dmarc, &[]).status,
            CheckStatus::TempError
        );
    }
}
