//! How domains are proven and checked, from `SWITCHBOARD_*` variables.

use std::net::SocketAddr;
use std::time::Duration;

use crate::domain::Domain;
use crate::domain::claims::{ProofSchedule, RecordPlacement};
use crate::outbox::settings::duration_var;

type SettingError = (&'static str, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSettings {
    /// `SWITCHBOARD_DNS_SERVERS`: resolvers to ask (`ip:port`, comma-separated); none means
    /// the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
    /// `SWITCHBOARD_DNS_TIMEOUT`: how long one query may take.
    pub dns_timeout: Duration,
    /// `SWITCHBOARD_DOMAIN_RECORD`: where proofs are published, `_switchboard` (a label in
    /// front of the domain) or `@` (the domain itself).
    pub placement: RecordPlacement,
    /// `SWITCHBOARD_PLATFORM_DOMAIN`: the operator's own domain, which the shared pool sends
    /// for without a tenant's proof (`notifications@platform.example`).
    pub platform_domain: Option<Domain>,
    /// `SWITCHBOARD_SHARED_POOL_SPF_INCLUDE`: the SPF include that authorises the shared
    /// pool's relay (`_spf.platform.example`); the SPF check of a domain asks for it. None:
    /// the check looks only at the record's shape and lookups.
    pub shared_pool_spf_include: Option<String>,
    /// `SWITCHBOARD_DOMAIN_HEALTH_INTERVAL`: how often verified domains' DNS health (SPF,
    /// DKIM, DMARC, MX) is checked again; 1 hour.
    pub health_every: Duration,
    /// `SWITCHBOARD_DOMAIN_PENDING_INTERVAL`, `…_RECHECK_INTERVAL`, `…_RETRY_INTERVAL`,
    /// `…_LAPSE_AFTER`, `…_CLAIM_WINDOW`.
    pub schedule: ProofSchedule,
    /// `SWITCHBOARD_DOMAIN_PURGE_AFTER`: how long a failed claim (never proven within the
    /// claim window) is kept after failing before it is removed; 14 days, as SparkPost does.
    pub purge_after: Duration,
}

impl Default for DomainSettings {
    fn default() -> Self {
        Self {
            dns_servers: Vec::new(),
            dns_timeout: Duration::from_secs(5),
            placement: RecordPlacement::default(),
            platform_domain: None,
            shared_pool_spf_include: None,
            health_every: Duration::from_secs(3600),
            schedule: ProofSchedule::default(),
            purge_after: Duration::from_secs(14 * 86_400),
        }
    }
}

impl DomainSettings {
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let d = Self::default();
        let duration = |name, default| duration_var(get, name, default);
        let dns_servers = match get("SWITCHBOARD_DNS_SERVERS") {
            None => Vec::new(),
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<SocketAddr>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                        .map_err(|_| {
                            (
                                "SWITCHBOARD_DNS_SERVERS",
                                format!("`{s}` is not an IP address with an optional port, such as 10.0.0.2:53"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let placement = match get("SWITCHBOARD_DOMAIN_RECORD") {
            None => d.placement,
            Some(raw) => {
                RecordPlacement::parse(&raw).map_err(|e| ("SWITCHBOARD_DOMAIN_RECORD", e.reason))?
            }
        };
        let platform_domain = get("SWITCHBOARD_PLATFORM_DOMAIN")
            .map(|raw| Domain::parse(&raw))
            .transpose()
            .map_err(|e| ("SWITCHBOARD_PLATFORM_DOMAIN", e.reason))?;
        let shared_pool_spf_include = match get("SWITCHBOARD_SHARED_POOL_SPF_INCLUDE") {
            None => None,
            Some(raw) => Some(spf_include(&raw).ok_or_else(|| {
                (
                    "SWITCHBOARD_SHARED_POOL_SPF_INCLUDE",
                    format!("`{raw}` is not a domain name such as _spf.platform.example"),
                )
            })?),
        };
        let lapse_after = match get("SWITCHBOARD_DOMAIN_LAPSE_AFTER") {
            None => d.schedule.lapse_after,
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    (
                        "SWITCHBOARD_DOMAIN_LAPSE_AFTER",
                        format!("`{raw}` is not a positive whole number of checks"),
                    )
                })?,
        };
        let s = d.schedule;
        let settings = Self {
            dns_servers,
            dns_timeout: duration("SWITCHBOARD_DNS_TIMEOUT", d.dns_timeout)?,
            placement,
            platform_domain,
            shared_pool_spf_include,
            health_every: duration("SWITCHBOARD_DOMAIN_HEALTH_INTERVAL", d.health_every)?,
            schedule: ProofSchedule {
                pending_every: duration("SWITCHBOARD_DOMAIN_PENDING_INTERVAL", s.pending_every)?,
                recheck_every: duration("SWITCHBOARD_DOMAIN_RECHECK_INTERVAL", s.recheck_every)?,
                retry_every: duration("SWITCHBOARD_DOMAIN_RETRY_INTERVAL", s.retry_every)?,
                lapse_after,
                claim_window: duration("SWITCHBOARD_DOMAIN_CLAIM_WINDOW", s.claim_window)?,
            },
            purge_after: duration("SWITCHBOARD_DOMAIN_PURGE_AFTER", d.purge_after)?,
        };
        if settings.dns_timeout.is_zero() {
            return Err(("SWITCHBOARD_DNS_TIMEOUT", "must be more than 0".into()));
        }
        let s = &settings.schedule;
        if [
            s.pending_every,
            s.recheck_every,
            s.retry_every,
            settings.health_every,
        ]
        .iter()
        .any(|d| *d < Duration::from_millis(100))
        {
            return Err((
                "SWITCHBOARD_DOMAIN_PENDING_INTERVAL",
                "domain check intervals must be at least 100ms".into(),
            ));
        }
        Ok(settings)
    }
}

/// An SPF include's domain: labels of letters, digits, '-' and '_' (as `_spf.` has), lower
/// case, without the `include:` some people paste.
pub fn spf_include(raw: &str) -> Option<String> {
    let name = raw
        .trim()
        .trim_start_matches("include:")
        .trim_end_matches('.');
    let fine = !name.is_empty()
        && name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    fine.then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<DomainSettings, SettingError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        DomainSettings::from_lookup(&|name: &str| map.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn servers_take_an_optional_port_and_bad_values_name_the_variable() {
        let s = parse(&[("SWITCHBOARD_DNS_SERVERS", "127.0.0.1:5353, 10.0.0.2")]).unwrap();
        assert_eq!(
            s.dns_servers,
            [
                "127.0.0.1:5353".parse().unwrap(),
                "10.0.0.2:53".parse().unwrap()
            ]
        );
        assert_eq!(parse(&[]).unwrap(), DomainSettings::default());
        let err = parse(&[("SWITCHBOARD_DNS_SERVERS", "dns.example")]).unwrap_err();
        assert_eq!(err.0, "SWITCHBOARD_DNS_SERVERS");
        let err = parse(&[("SWITCHBOARD_DOMAIN_RECORD", "a.b")]).unwrap_err();
        assert_eq!(err.0, "SWITCHBOARD_DOMAIN_RECORD");
        let err = parse(&[("SWITCHBOARD_DOMAIN_LAPSE_AFTER", "0")]).unwrap_err();
        assert_eq!(err.0, "SWITCHBOARD_DOMAIN_LAPSE_AFTER");
        let spf = parse(&[(
            "SWITCHBOARD_SHARED_POOL_SPF_INCLUDE",
            "include:_SPF.Platform.example",
        )])
        .unwrap();
        assert_eq!(
            spf.shared_pool_spf_include.as_deref(),
            Some("_spf.platform.example")
        );
        let err = parse(&[("SWITCHBOARD_SHARED_POOL_SPF_INCLUDE", "not a name")]).unwrap_err();
        assert_eq!(err.0, "SWITCHBOARD_SHARED_POOL_SPF_INCLUDE");
        let apex = parse(&[("SWITCHBOARD_DOMAIN_RECORD", "@")]).unwrap();
        assert_eq!(apex.placement, RecordPlacement::Apex);
    }
}
