//! The DKIM keys of claims, as the Domains service handles them: a key made with each claim,
//! rotation, and a pending key promoted to active once DNS shows its record (on every proof
//! check, "check now" included, and on the hourly health pass).

use super::health;
use super::proof::Domains;
use crate::domain::dkim::DkimKeyState;
use crate::domain::dns_checks::{CheckStatus, dkim_public_key};
use crate::domain::{AuditActor, ClaimState, Domain, DomainClaimId, TenantId};
use crate::store::StoreError;
use crate::store::dkim_keys::{self, Activated, Rotated};
use crate::store::domains::{self, DomainClaim};
use crate::vault::dkim::DkimKeyPair;

impl Domains {
    /// A new key pair, made on the blocking pool: RSA-2048 generation takes about 0.5 s of
    /// CPU (a random prime search: 0.2 to 3 s), too long for an async worker thread. One at a
    /// time: a burst of claims or rotations then takes one core, never every core the
    /// sending needs.
    pub(super) async fn new_dkim_pair(&self) -> Result<DkimKeyPair, StoreError> {
        let _turn = self
            .keygen
            .acquire()
            .await
            .map_err(|e| StoreError::Internal(format!("making a DKIM key: {e}")))?;
        tokio::task::spawn_blocking(dkim_keys::new_pair)
            .await
            .map_err(|e| StoreError::Internal(format!("making a DKIM key: {e}")))?
    }

    /// Gives the tenant a pending key for `domain` when it has none (claims made by
    /// `PATCH /v1/tenant`, or before claims came with keys).
    pub async fn ensure_dkim_key(
        &self,
        tenant: TenantId,
        domain: Domain,
        actor: AuditActor,
    ) -> Result<(), StoreError> {
        let looked = domain.clone();
        if self
            .store
            .run(move |c| dkim_keys::has_key(c, tenant, &looked))
            .await?
        {
            return Ok(());
        }
        let pair = self.new_dkim_pair().await?;
        let vault = self.vault.clone();
        self.store
            .run(move |c| dkim_keys::ensure_key(c, &vault, tenant, &domain, &pair, actor))
            .await
    }

    /// A new pending key for a verified claim; the active key keeps signing until DNS shows
    /// the new record. A pending key made before is replaced. A claim that is not verified
    /// is refused (`domain_not_verified`): its mail is not sent at all.
    pub async fn rotate_dkim(
        &self,
        tenant: TenantId,
        id: DomainClaimId,
        actor: AuditActor,
    ) -> Result<(Rotated, DomainClaim), StoreError> {
        let claim = self.store.run(move |c| domains::get(c, tenant, id)).await?;
        if claim.state != ClaimState::Verified {
            return Err(StoreError::Conflict {
                code: "domain_not_verified",
                detail: format!(
                    "{} is {}: prove it first (publish its TXT record, then check it); its first DKIM key is already listed with the claim",
                    claim.domain,
                    claim.state.as_str()
                ),
            });
        }
        let pair = self.new_dkim_pair().await?;
        let vault = self.vault.clone();
        self.store
            .run(move |c| {
                let rotated = dkim_keys::rotate(c, &vault, tenant, &claim.domain, &pair, actor)?;
                Ok((rotated, domains::get(c, tenant, id)?))
            })
            .await
    }

    /// Looks for the claim's pending DKIM record; when DNS shows it with our public key, the
    /// key starts signing and the one it replaces retires. `None`: nothing pending, or its
    /// record is not (yet, or not rightly) published.
    pub async fn activate_published_dkim(
        &self,
        tenant: TenantId,
        id: DomainClaimId,
        actor: AuditActor,
    ) -> Result<Option<Activated>, StoreError> {
        let claim = self.store.run(move |c| domains::get(c, tenant, id)).await?;
        let Some(pending) = claim.dkim.iter().find(|r| r.state == DkimKeyState::Pending) else {
            return Ok(None);
        };
        let want = health::DkimSelector {
            selector: pending.selector.as_str().to_owned(),
            expected_key: dkim_public_key(&pending.value).ok(),
        };
        let check = health::dkim(&self.dns, &claim.domain, &want).await;
        if check.status != CheckStatus::Ok {
            return Ok(None);
        }
        let selector = pending.selector.clone();
        let domain = claim.domain.clone();
        let activated = self
            .store
            .run(move |c| dkim_keys::activate(c, tenant, &domain, &selector, actor))
            .await?;
        if let Some(done) = &activated {
            tracing::info!(
                tenant_id = %tenant,
                domain = %claim.domain,
                selector = %done.selector,
                retiring = ?done.retired.as_ref().map(|(s, _)| s.as_str()),
                "DKIM record found: the key signs from now on"
            );
        }
        Ok(activated)
    }
}
