//! DNS lookups for domain proof and health, through hickory's resolver with its cache off:
//! an admin who just published a record and clicks "check now" must see it, not a cached
//! NXDOMAIN. Answers are sorted into the three cases the rules tell apart: records, a
//! definite "none" (NXDOMAIN, or the name without records of the type), and "unknown".

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use super::settings::DomainSettings;

/// Why a lookup returned no records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The name does not exist.
    NxDomain,
    /// The name exists, without records of this type.
    NoRecords,
    /// SERVFAIL, a timeout, a refusal, no resolver: nothing is known.
    Temporary(String),
}

/// The resolver every domain check uses.
#[derive(Clone)]
pub struct Dns {
    resolver: Result<TokioResolver, String>,
    deadline: Duration,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dns")
    }
}

impl Dns {
    /// The configured servers, or the system's. A machine without a usable resolver
    /// configuration still starts: every lookup then reports a temporary failure that says
    /// what to set.
    pub fn new(settings: &DomainSettings) -> Self {
        let provider = TokioRuntimeProvider::default();
        let builder = if settings.dns_servers.is_empty() {
            Resolver::builder(provider).map_err(|e| {
                format!(
                    "no DNS resolver: the system configuration could not be read ({e}); set SWITCHBOARD_DNS_SERVERS"
                )
            })
        } else {
            let servers = settings.dns_servers.iter().map(name_server).collect();
            Ok(Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                provider,
            ))
        };
        let resolver = builder.and_then(|mut builder| {
            let options = builder.options_mut();
            options.cache_size = 0;
            options.timeout = settings.dns_timeout;
            options.attempts = 2;
            options.use_hosts_file = ResolveHosts::Never;
            // Names are looked up as given, never with the machine's search domains.
            options.ndots = 0;
            builder
                .build()
                .map_err(|e| format!("the DNS resolver could not be built: {e}"))
        });
        if let Err(e) = &resolver {
            tracing::warn!(error = %e, "domain checks cannot resolve names");
        }
        Self {
            resolver,
            // Every attempt with its timeout, and a margin: the lookup can never hang.
            deadline: settings.dns_timeout * 3 + Duration::from_secs(1),
        }
    }

    /// The TXT strings at `name`, each record's character-strings joined (as SPF and DKIM
    /// read them).
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, LookupError> {
        let records = self.lookup(name, RecordType::TXT).await?;
        Ok(records
            .into_iter()
            .filter_map(|data| match data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The mail exchangers at `name`, by preference.
    pub async fn mx(&self, name: &str) -> Result<Vec<(u16, String)>, LookupError> {
        let records = self.lookup(name, RecordType::MX).await?;
        let mut found: Vec<(u16, String)> = records
            .into_iter()
            .filter_map(|data| match data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                _ => None,
            })
            .collect();
        found.sort();
        Ok(found)
    }

    /// The target of a CNAME at `name` (without the trailing dot).
    pub async fn cname(&self, name: &str) -> Result<String, LookupError> {
        let records = self.lookup(name, RecordType::CNAME).await?;
        records
            .into_iter()
            .find_map(|data| match data {
                RData::CNAME(target) => Some(
                    target
                        .0
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                ),
                _ => None,
            })
            .ok_or(LookupError::NoRecords)
    }

    async fn lookup(&self, name: &str, kind: RecordType) -> Result<Vec<RData>, LookupError> {
        let resolver = self
            .resolver
            .as_ref()
            .map_err(|e| LookupError::Temporary(e.clone()))?;
        let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
            .map_err(|e| LookupError::Temporary(format!("`{name}` is not a DNS name: {e}")))?;
        let answer = tokio::time::timeout(self.deadline, resolver.lookup(fqdn, kind)).await;
        match answer {
            Err(_) => Err(LookupError::Temporary("the DNS query timed out".into())),
            Ok(Ok(lookup)) => {
                let found: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == kind)
                    .map(|r| r.data.clone())
                    .collect();
                if found.is_empty() {
                    Err(LookupError::NoRecords)
                } else {
                    Ok(found)
                }
            }
            Ok(Err(e)) if e.is_nx_domain() => Err(LookupError::NxDomain),
            Ok(Err(e)) if e.is_no_records_found() => Err(LookupError::NoRecords),
            Ok(Err(e)) => Err(LookupError::Temporary(e.to_string())),
        }
    }
}

fn name_server(address: &SocketAddr) -> NameServerConfig {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut c| {
            c.port = address.port();
            c
        })
        .collect();
    NameServerConfig::new(address.ip(), true, connections)
}
