//! The DNS health of each verified domain a channel carries, as that channel sends it: SPF
//! for its relay at the envelope domain, the return path, who DKIM-signs, DMARC, and
//! alignment. Run on demand (`POST /v1/channels/{id}/health`) and, for every channel
//! carrying a domain, each time that domain's own health runs (hourly, and on "check
//! now"): the domain pass's lease and schedule, no second scheduler. Results are stored per
//! channel and domain, because they need lookups the domain checks do not make (the
//! relay's include, its bounce domain, its selectors).

use chrono::Utc;

use super::health::{self, DkimSelector, SpfInclude};
use super::proof::Domains;
use super::resolver::LookupError;
use crate::domain::channel_dns::{
    self, ChannelDomainHealth, Delegated, EnvelopePlan, SendingPath, Signer, carried_domains,
};
use crate::domain::dkim::DkimKeyState;
use crate::domain::dns_checks::{CheckKind, CheckStatus, HealthCheck, dkim_public_key};
use crate::domain::providers::Delegation;
use crate::domain::{
    AuditActor, ChannelId, ChannelKind, ClaimState, Domain, EmailAddress, SendChannel, TenantId,
};
use crate::store::domains::{self, DomainClaim};
use crate::store::{DbConnection, StoreError, channel_health, channels, dkim_keys, tenants};

/// What one domain's checks need from the database.
struct Known {
    verified: Vec<Domain>,
    claim: Option<DomainClaim>,
    /// Our active key for the domain: its selector and public key.
    ours: Option<DkimSelector>,
}

fn known(conn: &mut DbConnection, tenant: TenantId, domain: &Domain) -> Result<Known, StoreError> {
    let claims = domains::list(conn, tenant)?;
    let ours = dkim_keys::published(conn, tenant, domain)?
        .into_iter()
        .find(|r| r.state == DkimKeyState::Active)
        .map(|r| DkimSelector {
            selector: r.selector.as_str().to_owned(),
            expected_key: dkim_public_key(&r.value).ok(),
        });
    Ok(Known {
        verified: claims
            .iter()
            .filter(|c| c.state == ClaimState::Verified)
            .map(|c| c.domain.clone())
            .collect(),
        claim: claims.into_iter().find(|c| c.domain == *domain),
        ours,
    })
}

impl Domains {
    /// How a channel sends, the shared pool included.
    pub fn sending_path(&self, channel: &SendChannel) -> SendingPath {
        match channel.spec.kind {
            ChannelKind::SharedPool => self.shared_pool_path(),
            _ => SendingPath::of(&channel.spec),
        }
    }

    /// The verified domains of the tenant the channel carries (nothing is shown about any
    /// other).
    async fn checked_domains(
        &self,
        tenant: TenantId,
        channel: &SendChannel,
    ) -> Result<Vec<Domain>, StoreError> {
        let carried = carried_domains(&channel.spec);
        let states = self.store.run(move |c| domains::states(c, tenant)).await?;
        Ok(carried
            .into_iter()
            .filter(|d| {
                states
                    .iter()
                    .any(|(v, s)| v == d && *s == ClaimState::Verified)
            })
            .collect())
    }

    /// The channel's last results, one per verified domain it carries (`None`: not checked
    /// yet).
    pub async fn channel_health(
        &self,
        tenant: TenantId,
        channel: &SendChannel,
    ) -> Result<Vec<(Domain, Option<ChannelDomainHealth>)>, StoreError> {
        let wanted = self.checked_domains(tenant, channel).await?;
        let id = channel.id;
        let stored = self
            .store
            .run(move |c| channel_health::of_channel(c, tenant, id))
            .await?;
        Ok(wanted
            .into_iter()
            .map(|d| {
                let found = stored.iter().find(|r| r.domain == d.as_str()).cloned();
                (d, found)
            })
            .collect())
    }

    /// Checks every verified domain the channel carries now, and keeps the results.
    pub async fn check_channel(
        &self,
        tenant: TenantId,
        channel: &SendChannel,
    ) -> Result<Vec<(Domain, Option<ChannelDomainHealth>)>, StoreError> {
        let path = self.sending_path(channel);
        let mut results = Vec::new();
        let domains = self.checked_domains(tenant, channel).await?;
        let claims = self.store.run(move |c| domains::list(c, tenant)).await?;
        for domain in domains {
            // A DKIM record published since the last check counts here too: the admin who
            // publishes it and checks the channel expects the key to sign from now on.
            if let Some(claim) = claims.iter().find(|c| c.domain == domain) {
                self.activate_published_dkim(tenant, claim.id, AuditActor::System)
                    .await?;
            }
            results.push(self.check_domain(tenant, &path, &domain).await?);
        }
        let id = channel.id;
        let stored = results.clone();
        self.store
            .run(move |c| channel_health::replace(c, tenant, id, &stored))
            .await?;
        Ok(results
            .into_iter()
            .map(|r| (Domain::parse(&r.domain).expect("a checked domain"), Some(r)))
            .collect())
    }

    /// Re-checks `domain` for every channel of the tenant that carries it (after the
    /// domain's own checks ran).
    pub(super) async fn refresh_channels_for(
        &self,
        tenant: TenantId,
        domain: &Domain,
    ) -> Result<(), StoreError> {
        let pool = self.shared_pool;
        let carrying = {
            let domain = domain.clone();
            self.store
                .run(move |c| {
                    let mut found: Vec<(ChannelId, Option<SendingPath>)> =
                        channels::list(c, tenant)?
                            .into_iter()
                            .filter(|ch| carried_domains(&ch.spec).contains(&domain))
                            .map(|ch| (ch.id, Some(SendingPath::of(&ch.spec))))
                            .collect();
                    if pool && tenants::get(c, tenant)?.policy.shared_pool_allowed {
                        found.push((ChannelId::shared_pool(), None));
                    }
                    Ok(found)
                })
                .await?
        };
        // The channels at once: "check now" on a domain waits for the slowest, not the sum.
        let mut running = tokio::task::JoinSet::new();
        for (id, path) in carrying {
            let (this, domain) = (self.clone(), domain.clone());
            let path = path.unwrap_or_else(|| self.shared_pool_path());
            running.spawn(async move {
                let result = this.check_domain(tenant, &path, &domain).await?;
                this.store
                    .run(move |c| channel_health::record(c, tenant, id, &result))
                    .await
            });
        }
        // One channel's failure (a database hiccup) does not keep the others unchecked.
        let mut first_error = None;
        while let Some(done) = running.join_next().await {
            let outcome = done
                .map_err(|e| StoreError::Internal(format!("a channel check stopped: {e}")))
                .and_then(|r| r);
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn shared_pool_path(&self) -> SendingPath {
        SendingPath::shared_pool(
            self.shared_pool_login.clone(),
            self.settings.shared_pool_spf_include.clone(),
        )
    }

    /// Every check of one domain as the channel on `path` sends it.
    async fn check_domain(
        &self,
        tenant: TenantId,
        path: &SendingPath,
        from: &Domain,
    ) -> Result<ChannelDomainHealth, StoreError> {
        let known = {
            let from = from.clone();
            self.store.run(move |c| known(c, tenant, &from)).await?
        };
        let plan = path.envelope(from);
        let delegated = match &plan {
            EnvelopePlan::Rewritten {
                domain, delegation, ..
            } if channel_dns::may_be_delegated(domain, from, &known.verified) => {
                Some(self.delegated(domain, *delegation).await)
            }
            _ => None,
        };
        let rp = channel_dns::return_path(path, from, &plan, delegated.as_ref(), &known.verified);
        let spf = async {
            match (&rp.envelope, &rp.spf_at) {
                (Some(envelope), _) if rp.relay_spf => channel_dns::spf_of_relay(path, envelope),
                (_, Some(at)) => {
                    let include = path.spf_include.clone().map(|include| SpfInclude {
                        include,
                        relay: path.relay_name.clone(),
                    });
                    let found = health::spf(&self.dns, at, include.as_ref()).await;
                    if include.is_some() {
                        found
                    } else {
                        channel_dns::spf_include_unknown(path, at, found)
                    }
                }
                _ => HealthCheck::new(
                    CheckKind::Spf,
                    CheckStatus::TempError,
                    "The envelope domain is not known while the DNS does not answer (see return_path): checked again within the hour",
                ),
            }
        };
        let selectors = self.selectors(path, &known);
        let dkim = async {
            let mut found = Vec::new();
            for selector in &selectors {
                found.push(health::dkim(&self.dns, from, selector).await);
            }
            found
        };
        let org = Domain::parse(&channel_dns::organisational_domain(
            from.as_str(),
            &known.verified,
        ))
        .ok()
        .filter(|o| o != from);
        // Independent lookups at once: a DNS that times out costs one timeout, not three.
        let (spf, found, dmarc) =
            tokio::join!(spf, dkim, health::dmarc(&self.dns, from, org.as_ref()));
        let spf_aligned = match rp.aligned {
            Some(true) if rp.relay_spf => Some(true),
            Some(true) => match spf.status {
                CheckStatus::Ok => Some(true),
                CheckStatus::TempError => None,
                _ => Some(false),
            },
            other => other,
        };
        let (dkim, dkim_aligned) = channel_dns::dkim(path, from, &found);
        let alignment = channel_dns::alignment(
            from,
            spf_aligned,
            dkim_aligned,
            &dmarc,
            &[&dkim, &rp.check, &spf],
        );
        Ok(ChannelDomainHealth {
            domain: from.to_string(),
            checked_at: Utc::now(),
            checks: vec![spf, rp.check, dkim, dmarc, alignment],
        })
    }

    /// The selectors whose keys show who signs: ours, or those named on the domain (and a
    /// mailbox provider's usual ones).
    fn selectors(&self, path: &SendingPath, known: &Known) -> Vec<DkimSelector> {
        let named = known
            .claim
            .iter()
            .flat_map(|c| c.dkim_selectors.iter().cloned());
        let relay = |extra: &[&str]| {
            let mut all: Vec<String> = named.clone().collect();
            all.extend(extra.iter().map(|s| (*s).to_owned()));
            all.dedup();
            all.into_iter()
                .map(|selector| DkimSelector {
                    selector,
                    expected_key: None,
                })
                .collect()
        };
        match path.signer() {
            Signer::Us => known.ours.clone().into_iter().collect(),
            Signer::Relay { .. } | Signer::Unknown => relay(&[]),
            Signer::Mailbox { selectors, .. } => relay(selectors),
        }
    }

    /// Whether `name` is handed to the relay as a bounce domain.
    async fn delegated(&self, name: &str, how: Delegation) -> Delegated {
        let ends = |host: &str, suffix: &str| {
            let host = host.trim_end_matches('.').to_ascii_lowercase();
            host == suffix || host.ends_with(&format!(".{suffix}"))
        };
        let answer = match how {
            Delegation::Cname(target) => self.dns.cname(name).await.map(|t| ends(&t, target)),
            Delegation::Mx(suffix) => self
                .dns
                .mx(name)
                .await
                .map(|hosts| hosts.iter().any(|(_, h)| ends(h, suffix))),
        };
        match answer {
            Ok(true) => Delegated::Yes,
            Ok(false) | Err(LookupError::NxDomain | LookupError::NoRecords) => Delegated::No,
            Err(LookupError::Temporary(why)) => Delegated::Unknown(why),
        }
    }

    /// Tells the checks what the shared pool's relay logs in as (an address goes in MAIL
    /// FROM when the relay decides).
    pub fn with_shared_pool(mut self, configured: bool, login: Option<&str>) -> Self {
        self.shared_pool = configured;
        self.shared_pool_login = login.and_then(|l| EmailAddress::parse(l).ok());
        self
    }
}
