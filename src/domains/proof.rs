//! Proving claims: a lookup of the claim's TXT record, now (`POST /v1/domains/{id}/verify`)
//! or when the scheduler finds the claim due. Both record the check the same way, so the
//! state a user sees is the state the rules give.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use super::resolver::{Dns, LookupError};
use super::settings::DomainSettings;
use crate::domain::ClaimState;
use crate::domain::claims::{Miss, ProofCheck, ProofRecord, observe};
use crate::domain::{AuditActor, Domain, DomainClaimId, TenantId};
use crate::store::domains::{self, DomainClaim, Recorded};
use crate::store::{Store, StoreError, dkim_keys, write_transaction};
use crate::vault::Vault;

/// Claims checked per scheduler pass at most.
pub(super) const CHECKS_PER_PASS: i64 = 32;
/// How long a claim taken by the scheduler is kept from other processes.
pub(super) const CHECK_LEASE: Duration = Duration::from_secs(300);

pub type VerifyError = StoreError;

/// Domain claims and their checks.
#[derive(Clone)]
pub struct Domains {
    pub(super) store: Store,
    /// Seals the DKIM keys made with claims and rotations.
    pub(super) vault: Arc<Vault>,
    pub(super) dns: Dns,
    pub(super) settings: DomainSettings,
    /// Whether the operator configured a shared pool (its channel health is checked too).
    pub(super) shared_pool: bool,
    /// The shared pool's login when it is an address.
    pub(super) shared_pool_login: Option<crate::domain::EmailAddress>,
    /// One DKIM key generation at a time in this process (see `dkim::new_pair`).
    pub(super) keygen: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Domains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domains")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Domains {
    pub fn new(store: Store, vault: Arc<Vault>, settings: DomainSettings) -> Self {
        Self {
            dns: Dns::new(&settings),
            store,
            vault,
            settings,
            shared_pool: false,
            shared_pool_login: None,
            keygen: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    pub fn settings(&self) -> &DomainSettings {
        &self.settings
    }

    pub fn dns(&self) -> &Dns {
        &self.dns
    }

    /// Claims a domain for the tenant: pending, with its record to publish, and a pending
    /// DKIM key whose record is published in the same visit to the DNS. First looked for by
    /// the scheduler after one pending interval (a claim is seldom published before it
    /// exists; "check now" is there for the impatient).
    pub async fn claim(
        &self,
        tenant: TenantId,
        domain: Domain,
        actor: AuditActor,
    ) -> Result<DomainClaim, StoreError> {
        let record_name = self.settings.placement.record_name(&domain);
        let first = Utc::now()
            + chrono::Duration::from_std(self.settings.schedule.pending_every).unwrap_or_default();
        let pair = self.new_dkim_pair().await?;
        let vault = self.vault.clone();
        self.store
            .run(move |c| {
                write_transaction(c, |c| {
                    let claim =
                        domains::claim(c, tenant, &domain, record_name, first, actor.clone())?;
                    dkim_keys::ensure_key(c, &vault, tenant, &domain, &pair, actor)?;
                    domains::get(c, tenant, claim.id)
                })
            })
            .await
    }

    /// Looks for the claim's record now and records what was found.
    pub async fn verify(
        &self,
        tenant: TenantId,
        id: DomainClaimId,
        actor: AuditActor,
    ) -> Result<Recorded, StoreError> {
        let claim = self.store.run(move |c| domains::get(c, tenant, id)).await?;
        let check = self.look_for(&claim.record()).await;
        let schedule = self.settings.schedule;
        let mut recorded = self
            .store
            .run({
                let actor = actor.clone();
                move |c| {
                    domains::record_check(c, tenant, id, &check, actor, |progress| {
                        observe(progress, &check, Utc::now(), &schedule)
                    })
                }
            })
            .await?;
        if let Some(transition) = recorded.transition {
            tracing::info!(
                tenant_id = %tenant,
                domain = %recorded.claim.domain,
                state = recorded.claim.state.as_str(),
                ?transition,
                released = recorded.released,
                "domain claim changed state"
            );
        }
        // The DKIM key's record is published in the same visit as the proof: look for it on
        // every check. A claim without a key (made before claims came with keys) gets one.
        let domain = recorded.claim.domain.clone();
        let dkim = async {
            self.ensure_dkim_key(tenant, domain, actor.clone()).await?;
            self.activate_published_dkim(tenant, id, actor).await
        };
        match dkim.await {
            Ok(_) => recorded.claim = self.store.run(move |c| domains::get(c, tenant, id)).await?,
            Err(e) => tracing::warn!(domain_claim = %id, error = %e, "DKIM key upkeep failed"),
        }
        if recorded.claim.state == ClaimState::Verified {
            // On demand and on every proof check: a fix shows up at once.
            match self.refresh_health(tenant, id).await {
                Ok(claim) => recorded.claim = claim,
                Err(e) => {
                    tracing::warn!(domain_claim = %id, error = %e, "recording domain health failed")
                }
            }
        }
        Ok(recorded)
    }

    /// One lookup of a proof record.
    pub async fn look_for(&self, record: &ProofRecord) -> ProofCheck {
        match self.dns.txt(&record.name).await {
            Ok(found) if record.is_among(&found) => ProofCheck::Found,
            Ok(_) => ProofCheck::Missing(Miss::WrongValue),
            Err(LookupError::NxDomain) => ProofCheck::Missing(Miss::NxDomain),
            Err(LookupError::NoRecords) => ProofCheck::Missing(Miss::NoRecords),
            Err(LookupError::Temporary(reason)) => ProofCheck::TempError(reason),
        }
    }

    /// How often to look for due claims: often enough for the shortest interval, never busy.
    fn tick(&self) -> Duration {
        let s = &self.settings.schedule;
        (s.pending_every
            .min(s.retry_every)
            .min(s.recheck_every)
            .min(self.settings.health_every)
            / 2)
        .clamp(Duration::from_millis(50), Duration::from_secs(30))
    }

    /// Checks due claims until stopped: pending ones until proven or failed, verified ones
    /// about daily, lapsed ones hourly until their record is back.
    pub async fn run(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*stopped.borrow() {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped.changed() => continue,
            }
            // A pass cut short by a stop leaves its claims leased: another process (or this
            // one after a restart) checks them when the lease ends.
            tokio::select! {
                () = async {
                    self.pass().await;
                    self.health_pass().await;
                    self.purge_pass().await;
                } => {}
                _ = stopped.changed() => {}
            }
        }
    }

    /// Removes claims that failed longer ago than `SWITCHBOARD_DOMAIN_PURGE_AFTER`: a claim
    /// fails at the end of its window, so its age tells.
    async fn purge_pass(&self) {
        let age = self.settings.schedule.claim_window + self.settings.purge_after;
        let cutoff = Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let cutoff = cutoff.timestamp_micros();
        match self
            .store
            .run(move |c| domains::purge_failed(c, cutoff))
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "abandoned domain claims removed"),
            Err(e) => tracing::warn!(error = %e, "removing abandoned domain claims failed"),
        }
    }

    async fn pass(self: &Arc<Self>) {
        let due = match self
            .store
            .run(|c| domains::claim_due(c, CHECK_LEASE, CHECKS_PER_PASS))
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "looking for domain claims to check failed");
                return;
            }
        };
        let mut running = tokio::task::JoinSet::new();
        for claim in due {
            let this = self.clone();
            running.spawn(async move {
                if let Err(e) = this.verify(claim.tenant, claim.id, AuditActor::System).await {
                    tracing::debug!(domain_claim = %claim.id, error = %e, "scheduled domain check failed");
                }
            });
        }
        while running.join_next().await.is_some() {}
    }
}
