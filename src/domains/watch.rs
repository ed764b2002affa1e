//! Running a verified domain's DNS health checks and keeping the result: after each proof
//! check of a verified claim (so "Check now" shows a fix at once), and hourly for every
//! verified claim (`SWITCHBOARD_DOMAIN_HEALTH_INTERVAL`).

use std::sync::Arc;

use chrono::Utc;

use super::health::{self, DkimSelector, HealthTarget, SpfInclude};
use super::proof::{CHECK_LEASE, CHECKS_PER_PASS, Domains};
use crate::domain::channel_dns::organisational_domain;
use crate::domain::dns_checks::DomainHealth;
use crate::domain::dns_checks::dkim_public_key;
use crate::domain::{AuditActor, ClaimState, Domain, DomainClaimId, TenantId};
use crate::store::domains::{self, DomainClaim};
use crate::store::{DbConnection, StoreError, dkim_keys, domain_health};

/// The DKIM selectors to check for a claim: every key Switchboard signs with, waits to sign
/// with (pending), or still keeps published after a rotation, which must be exactly our
/// public key, and those an
/// admin named (a relay's, whose key we do not hold).
fn selectors_to_check(
    conn: &mut DbConnection,
    claim: &DomainClaim,
) -> Result<Vec<DkimSelector>, StoreError> {
    let ours = dkim_keys::published(conn, claim.tenant, &claim.domain)?
        .into_iter()
        .map(|record| DkimSelector {
            selector: record.selector.as_str().to_owned(),
            expected_key: dkim_public_key(&record.value).ok(),
        });
    let named = claim.dkim_selectors.iter().map(|s| DkimSelector {
        selector: s.clone(),
        expected_key: None,
    });
    Ok(ours.chain(named).collect())
}

/// The organisational domain of `domain` as far as we know it without the public suffix
/// list: the highest verified domain the tenant claimed that `domain` is a subdomain of.
pub fn organisational(domain: &Domain, claims: &[DomainClaim]) -> Option<Domain> {
    let verified: Vec<Domain> = claims
        .iter()
        .filter(|c| c.state == ClaimState::Verified)
        .map(|c| c.domain.clone())
        .collect();
    let org = organisational_domain(domain.as_str(), &verified);
    (org != domain.as_str())
        .then(|| Domain::parse(&org).ok())
        .flatten()
}

impl Domains {
    /// What to check for a claim, looked up in one go.
    async fn target(
        &self,
        tenant: TenantId,
        id: DomainClaimId,
    ) -> Result<HealthTarget, StoreError> {
        let include = self
            .settings
            .shared_pool_spf_include
            .clone()
            .map(|include| SpfInclude {
                include,
                relay: "the shared pool".into(),
            });
        self.store
            .run(move |c| {
                let claim = domains::get(c, tenant, id)?;
                let all = domains::list(c, tenant)?;
                Ok(HealthTarget {
                    organisational: organisational(&claim.domain, &all),
                    spf_include: include,
                    dkim: selectors_to_check(c, &claim)?,
                    domain: claim.domain,
                })
            })
            .await
    }

    /// Runs the claim's health checks now and records them (emitting `domain.dns_error`
    /// when a check that was `ok` fails).
    pub async fn refresh_health(
        &self,
        tenant: TenantId,
        id: DomainClaimId,
    ) -> Result<DomainClaim, StoreError> {
        let target = self.target(tenant, id).await?;
        let health = DomainHealth {
            checks: health::check(&self.dns, &target).await,
            checked_at: Utc::now(),
        };
        let next =
            Utc::now() + chrono::Duration::from_std(self.settings.health_every).unwrap_or_default();
        let claim = self
            .store
            .run(move |c| domain_health::record(c, tenant, id, &health, next))
            .await?;
        // The channels sending as the domain are checked with it: on the same schedule and
        // lease, and a fix shows up on their pages at the same "check now".
        if let Err(e) = self.refresh_channels_for(tenant, &claim.domain).await {
            tracing::warn!(domain_claim = %id, error = %e, "checking the channels of a domain failed");
        }
        Ok(claim)
    }

    /// Re-runs the checks of verified claims that are due.
    pub(super) async fn health_pass(self: &Arc<Self>) {
        let due = match self
            .store
            .run(|c| domain_health::claim_due(c, CHECK_LEASE, CHECKS_PER_PASS))
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "looking for domains to health-check failed");
                return;
            }
        };
        let mut running = tokio::task::JoinSet::new();
        for claim in due {
            let this = self.clone();
            running.spawn(async move {
                // A pending DKIM key whose record went up since starts signing.
                if let Err(e) = this
                    .activate_published_dkim(claim.tenant, claim.id, AuditActor::System)
                    .await
                {
                    tracing::debug!(domain_claim = %claim.id, error = %e, "DKIM record check failed");
                }
                if let Err(e) = this.refresh_health(claim.tenant, claim.id).await {
                    tracing::debug!(domain_claim = %claim.id, error = %e, "scheduled domain health check failed");
                }
            });
        }
        while running.join_next().await.is_some() {}
    }
}
