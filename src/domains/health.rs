//! The DNS health checks of a verified domain: SPF (with the relay's include and the
//! 10-lookup limit), DKIM per selector (TXT, or a CNAME to the relay's record), DMARC (at the
//! domain or its organisational domain) and MX. Each lookup failure that is not a definite
//! "none" is `temp_error`, never `missing`.

use std::collections::{HashMap, VecDeque};

use serde_json::json;

use super::resolver::{Dns, LookupError};
use crate::domain::Domain;
use crate::domain::dns_checks::{
    CheckKind, CheckStatus, DmarcRecord, HealthCheck, dkim_public_key,
};
use crate::domain::spf::{self, LOOKUP_LIMIT, SpfLookup, SpfRecord, SpfWalk};

/// Names fetched at most while following SPF includes: past the limit the count is over 10
/// anyway, and a hostile record must not make us query for ever.
const SPF_FETCHES: usize = 24;

/// A DKIM selector to look for, and the public key it must carry when we know it (our own
/// signing key); a relay's key (`expected_key: None`) only has to be there and not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSelector {
    pub selector: String,
    pub expected_key: Option<String>,
}

/// The relay whose SPF include a domain's record must reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfInclude {
    /// `_spf.platform.example`, `sendgrid.net`.
    pub include: String,
    /// Who it authorises, for the sentence: "the shared pool", "SendGrid".
    pub relay: String,
}

/// What to check for one domain.
#[derive(Debug, Clone)]
pub struct HealthTarget {
    pub domain: Domain,
    /// The organisational domain when it is not `domain` (used for DMARC's fallback).
    pub organisational: Option<Domain>,
    pub spf_include: Option<SpfInclude>,
    pub dkim: Vec<DkimSelector>,
}

/// Runs every check of `target`, concurrently.
pub async fn check(dns: &Dns, target: &HealthTarget) -> Vec<HealthCheck> {
    let dkim = async {
        let mut out = Vec::new();
        for selector in &target.dkim {
            out.push(dkim(dns, &target.domain, selector).await);
        }
        if target.dkim.is_empty() {
            out.push(HealthCheck::new(
                CheckKind::Dkim,
                CheckStatus::Missing,
                format!(
                    "No DKIM selector is known for {}: name the selector your relay signs with (dkim_selectors), so that its key can be checked",
                    target.domain
                ),
            ));
        }
        out
    };
    let (spf, dkim, dmarc, mx) = tokio::join!(
        spf(dns, target.domain.as_str(), target.spf_include.as_ref()),
        dkim,
        dmarc(dns, &target.domain, target.organisational.as_ref()),
        mx(dns, &target.domain),
    );
    let mut checks = vec![spf];
    checks.extend(dkim);
    checks.push(dmarc);
    checks.push(mx);
    checks
}

fn temp(check: CheckKind, name: &str, why: &str) -> HealthCheck {
    HealthCheck::new(
        check,
        CheckStatus::TempError,
        format!("The DNS did not answer for {name} ({why}): checked again within the hour"),
    )
}

async fn spf_at(dns: &Dns, name: &str) -> SpfLookup {
    match dns.txt(name).await {
        Ok(all) => {
            let mut found: Vec<String> = all.into_iter().filter(|t| spf::is_spf(t)).collect();
            match found.len() {
                0 => SpfLookup::None,
                1 => SpfLookup::Record(found.remove(0)),
                n => SpfLookup::Several(n),
            }
        }
        Err(LookupError::NxDomain | LookupError::NoRecords) => SpfLookup::None,
        Err(LookupError::Temporary(why)) => SpfLookup::Temporary(why),
    }
}

/// SPF at the apex: exactly one record, within 10 lookups, reaching the relay's include.
pub async fn spf(dns: &Dns, domain: &str, include: Option<&SpfInclude>) -> HealthCheck {
    let k = CheckKind::Spf;
    let suggestion = match include {
        Some(i) => format!("v=spf1 include:{} ~all", i.include),
        None => "v=spf1 include:<your relay's SPF domain> ~all".into(),
    };
    let root = spf_at(dns, domain).await;
    let record = match &root {
        SpfLookup::Record(r) => r.clone(),
        SpfLookup::None => {
            return HealthCheck::new(
                k,
                CheckStatus::Missing,
                format!(
                    "{domain} has no SPF record: publish a TXT record `{suggestion}` at {domain}"
                ),
            );
        }
        SpfLookup::Several(n) => {
            return HealthCheck::new(
                k,
                CheckStatus::Invalid,
                format!("{domain} has {n} SPF records; receivers treat that as an error (RFC 7208 §4.5), so SPF fails for every message: merge them into one record"),
            ).with(json!({"records": n}));
        }
        SpfLookup::Temporary(why) => return temp(k, domain, why),
    };
    let parsed = match SpfRecord::parse(&record) {
        Ok(p) => p,
        Err(why) => {
            return HealthCheck::new(
                k,
                CheckStatus::Invalid,
                format!("The SPF record of {domain} is broken: {why}"),
            )
            .with(json!({"record": record}));
        }
    };
    // Fetch everything the record reaches, breadth first, up to a bound.
    let mut found = HashMap::from([(domain.to_owned(), root)]);
    let mut queue: VecDeque<String> = parsed.followed().into_iter().map(str::to_owned).collect();
    while let Some(name) = queue.pop_front() {
        if found.contains_key(&name) || name.contains('%') || found.len() >= SPF_FETCHES {
            continue;
        }
        let at = spf_at(dns, &name).await;
        if let SpfLookup::Record(r) = &at
            && let Ok(p) = SpfRecord::parse(r)
        {
            queue.extend(p.followed().into_iter().map(str::to_owned));
        }
        found.insert(name, at);
    }
    match spf::walk(domain, &found) {
        SpfWalk::Fine { lookups, reached } => {
            let detail = json!({"record": record, "lookups": lookups});
            match include {
                Some(i) if !reached.contains(&i.include) => HealthCheck::new(
                    k,
                    CheckStatus::Invalid,
                    format!("The SPF record of {domain} does not authorise {}: add include:{} to it (`{record}`)", i.relay, i.include),
                )
                .with(detail),
                Some(i) => HealthCheck::new(
                    k,
                    CheckStatus::Ok,
                    format!("SPF authorises {} (include:{}), with {lookups} of {LOOKUP_LIMIT} DNS lookups", i.relay, i.include),
                )
                .with(detail),
                None => HealthCheck::new(
                    k,
                    CheckStatus::Ok,
                    format!("SPF record found, with {lookups} of {LOOKUP_LIMIT} DNS lookups"),
                )
                .with(detail),
            }
        }
        SpfWalk::TooMany { lookups, chain } => HealthCheck::new(
            k,
            CheckStatus::Invalid,
            format!(
                "The SPF record of {domain} needs {lookups} DNS lookups, more than the {LOOKUP_LIMIT} receivers allow (RFC 7208 §4.6.4), so SPF fails: remove includes you no longer use or replace them with ip4:/ip6: ranges (through {})",
                chain.join(" → ")
            ),
        )
        .with(json!({"record": record, "lookups": lookups, "chain": chain})),
        SpfWalk::Loop { chain } => HealthCheck::new(
            k,
            CheckStatus::Invalid,
            format!(
                "The SPF record of {domain} includes itself in a loop ({}), so SPF fails: remove the include that points back",
                chain.join(" → ")
            ),
        )
        .with(json!({"record": record, "chain": chain})),
        SpfWalk::Broken { at, chain, why } => HealthCheck::new(
            k,
            CheckStatus::Invalid,
            format!(
                "The SPF record of {domain} reaches {at}, which {why} ({}), so SPF fails: fix or remove that include",
                chain.join(" → ")
            ),
        )
        .with(json!({"record": record, "chain": chain})),
        SpfWalk::Unknown { at, why } => temp(k, &at, &why),
    }
}

/// One DKIM selector: a TXT key at `<selector>._domainkey.<domain>`, directly or through a
/// CNAME to the relay's record.
pub async fn dkim(dns: &Dns, domain: &Domain, want: &DkimSelector) -> HealthCheck {
    let k = CheckKind::Dkim;
    let name = format!("{}._domainkey.{domain}", want.selector);
    let via = match dns.cname(&name).await {
        Ok(target) => Some(target),
        Err(LookupError::Temporary(why)) => return temp(k, &name, &why),
        Err(_) => None,
    };
    let at = via.clone().unwrap_or_else(|| name.clone());
    let detail = json!({"selector": want.selector, "name": name, "cname": via});
    let through = via
        .as_ref()
        .map(|t| format!(" (through its CNAME to {t})"))
        .unwrap_or_default();
    let records = match dns.txt(&at).await {
        Ok(r) => r,
        Err(LookupError::Temporary(why)) => return temp(k, &at, &why),
        Err(_) => Vec::new(),
    };
    let missing = || {
        let message = match &via {
            Some(t) => format!(
                "{name} points (CNAME) to {t}, which has no DKIM key: finish the domain's setup at the relay"
            ),
            None => format!(
                "No DKIM key at {name}: publish the record for selector {} (a TXT `v=DKIM1; p=…`, or the CNAME your relay gives you)",
                want.selector
            ),
        };
        HealthCheck::new(k, CheckStatus::Missing, message).with(detail.clone())
    };
    let Some(first) = records.first() else {
        return missing();
    };
    let key = records.iter().find_map(|r| dkim_public_key(r).ok());
    let Some(key) = key else {
        let why = dkim_public_key(first).err().unwrap_or_default();
        return HealthCheck::new(
            k,
            CheckStatus::Invalid,
            format!("The DKIM record at {name}{through} is not a key: {why}"),
        )
        .with(detail);
    };
    if key.is_empty() {
        return HealthCheck::new(
            k,
            CheckStatus::Invalid,
            format!("The DKIM key at {name}{through} is revoked (empty p=): mail signed with selector {} fails DKIM", want.selector),
        )
        .with(detail);
    }
    if let Some(expected) = &want.expected_key
        && *expected != key
    {
        return HealthCheck::new(
            k,
            CheckStatus::Invalid,
            format!("The DKIM key at {name}{through} is not the one Switchboard signs with: publish the record shown for selector {}", want.selector),
        )
        .with(detail);
    }
    HealthCheck::new(
        k,
        CheckStatus::Ok,
        format!(
            "DKIM key for selector {} published at {name}{through}",
            want.selector
        ),
    )
    .with(detail)
}

async fn dmarc_at(dns: &Dns, domain: &str) -> Result<Option<Vec<String>>, String> {
    match dns.txt(&format!("_dmarc.{domain}")).await {
        Ok(all) => {
            let found: Vec<String> = all
                .into_iter()
                .filter(|t| DmarcRecord::is_dmarc(t))
                .collect();
            Ok((!found.is_empty()).then_some(found))
        }
        Err(LookupError::NxDomain | LookupError::NoRecords) => Ok(None),
        Err(LookupError::Temporary(why)) => Err(why),
    }
}

/// DMARC at `_dmarc.<domain>`, else at the organisational domain's (RFC 7489 §6.6.3).
pub async fn dmarc(dns: &Dns, domain: &Domain, organisational: Option<&Domain>) -> HealthCheck {
    let k = CheckKind::Dmarc;
    let mut at = domain.as_str();
    let mut found = match dmarc_at(dns, at).await {
        Ok(f) => f,
        Err(why) => return temp(k, &format!("_dmarc.{at}"), &why),
    };
    if found.is_none()
        && let Some(org) = organisational.filter(|o| *o != domain)
    {
        at = org.as_str();
        found = match dmarc_at(dns, at).await {
            Ok(f) => f,
            Err(why) => return temp(k, &format!("_dmarc.{at}"), &why),
        };
    }
    let Some(records) = found else {
        return HealthCheck::new(
            k,
            CheckStatus::Missing,
            format!(
                "No DMARC record at _dmarc.{domain}. Gmail and Yahoo require one (p=none is enough) from domains sending 5,000 or more messages a day to their users, reps' mailboxes included, and Outlook.com rejects such mail without it since 2025-05-05: publish a TXT record `v=DMARC1; p=none; rua=mailto:dmarc@{domain}` at _dmarc.{domain}"
            ),
        );
    };
    if records.len() > 1 {
        return HealthCheck::new(
            k,
            CheckStatus::Invalid,
            format!(
                "_dmarc.{at} has {} DMARC records; receivers then apply none (RFC 7489 §6.6.3): keep one",
                records.len()
            ),
        );
    }
    match DmarcRecord::parse(&records[0]) {
        Err(why) => HealthCheck::new(
            k,
            CheckStatus::Invalid,
            format!("The DMARC record at _dmarc.{at} is broken: {why}"),
        )
        .with(json!({"record": records[0]})),
        Ok(d) => {
            let inherited = if at == domain.as_str() {
                String::new()
            } else {
                format!(" (from the organisational domain {at})")
            };
            let pct = if d.pct == 100 {
                String::new()
            } else {
                format!(" on {}% of failing mail", d.pct)
            };
            let reports = if d.rua.is_empty() {
                "; no aggregate reports are requested (add rua=mailto:… to see who sends as the domain)".to_owned()
            } else {
                format!("; reports go to {}", d.rua.join(", "))
            };
            HealthCheck::new(
                k,
                CheckStatus::Ok,
                format!("DMARC policy p={}{pct}{inherited}{reports}", d.policy),
            )
            .with(json!({
                "at": format!("_dmarc.{at}"),
                "policy": d.policy,
                "subdomain_policy": d.subdomain_policy,
                "pct": d.pct,
                "rua": d.rua,
            }))
        }
    }
}

/// MX at the From domain: replies go there.
pub async fn mx(dns: &Dns, domain: &Domain) -> HealthCheck {
    let k = CheckKind::Mx;
    match dns.mx(domain.as_str()).await {
        Ok(hosts) if hosts.iter().all(|(_, h)| h == "." || h.is_empty()) => HealthCheck::new(
            k,
            CheckStatus::Invalid,
            format!(
                "{domain} declares that it receives no mail (null MX): replies to this domain bounce"
            ),
        ),
        Ok(hosts) => {
            let names: Vec<String> = hosts
                .iter()
                .map(|(_, h)| h.trim_end_matches('.').to_owned())
                .collect();
            HealthCheck::new(
                k,
                CheckStatus::Ok,
                format!("Replies to {domain} are received by {}", names.join(", ")),
            )
            .with(json!({"hosts": names}))
        }
        Err(LookupError::Temporary(why)) => temp(k, domain.as_str(), &why),
        Err(_) => HealthCheck::new(
            k,
            CheckStatus::Missing,
            format!(
                "{domain} has no MX record: replies to this domain bounce. Publish the MX records of the service that receives its mail"
            ),
        ),
    }
}
