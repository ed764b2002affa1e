//! What the router needs, loaded from the store, and its decisions as the API shows them.
//! The same code serves acceptance, `POST /v1/route/explain` and the workers, so an
//! explanation always describes what a worker would do.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::domain::pacing::{PaceLimit, Pacing, SendingDefaults};
use crate::domain::routing::{
    Outcome, QuotaState, RouteCandidate, RouteDecision, RouteRequest, SkipReason, route,
};
use crate::domain::{
    ChannelId, ChannelKind, ChannelOwner, ChannelStatus, ClaimState, CredentialScope, Domain,
    EmailAddress, SendChannel, Team, TeamId, Tenant, TenantId, User, UserId,
};
use crate::store::{
    DbConnection, StoreError, channels, domains, pacing, quotas, teams, tenants, users,
};
use crate::transport::shared_pool::SharedPool;

/// A tenant's policy and channels, as one routing pass sees them.
#[derive(Debug, Clone)]
pub struct TenantRoutes {
    pub tenant: Tenant,
    /// The tenant's claimed domains and their states: only verified ones are sent as
    /// through domain channels and the shared pool.
    domain_states: HashMap<Domain, ClaimState>,
    pub channels: HashMap<ChannelId, SendChannel>,
    candidates: Vec<RouteCandidate>,
    shared_pool: Option<RouteCandidate>,
    teams: HashMap<TeamId, Team>,
    /// The tenant's windows and daily cap for channels that set none.
    pub defaults: SendingDefaults,
}

/// Who sends, as the router needs to know them.
#[derive(Debug, Clone)]
pub struct Sender {
    pub user: User,
    pub team_sending_enabled: bool,
}

fn candidate(channel: &SendChannel, quota: QuotaState) -> RouteCandidate {
    RouteCandidate {
        channel_id: channel.id,
        kind: channel.spec.kind,
        owner: channel.spec.owner,
        scope: channel.spec.scope,
        from_address: channel.spec.from_address.clone(),
        login_proves_sender: channel.spec.login_proves_sender(),
        domains: channel.spec.domains.clone(),
        status: channel.status,
        recipients_per_message: channel.spec.limits.recipients_per_message,
        quota,
    }
}

fn shared_pool_candidate(pool: &SharedPool) -> RouteCandidate {
    RouteCandidate {
        channel_id: ChannelId::shared_pool(),
        kind: ChannelKind::SharedPool,
        owner: ChannelOwner::Platform,
        scope: CredentialScope::Domain,
        from_address: None,
        login_proves_sender: false,
        domains: pool.platform_domain.iter().cloned().collect(),
        status: ChannelStatus::Active,
        recipients_per_message: None,
        quota: QuotaState::Available,
    }
}

impl TenantRoutes {
    /// Loads a tenant's policy, channels, teams and the quota state of its limited channels,
    /// for answers given now (acceptance, explain).
    pub fn load(
        conn: &mut DbConnection,
        tenant: TenantId,
        shared_pool: Option<&SharedPool>,
        now: i64,
    ) -> Result<Self, StoreError> {
        Self::load_with(conn, tenant, shared_pool, Some(now))
    }

    /// The same without reading quota state: for a worker, which takes the quota of the
    /// channels it routes to anyway (and learns there which are full).
    pub fn load_for_delivery(
        conn: &mut DbConnection,
        tenant: TenantId,
        shared_pool: Option<&SharedPool>,
    ) -> Result<Self, StoreError> {
        Self::load_with(conn, tenant, shared_pool, None)
    }

    fn load_with(
        conn: &mut DbConnection,
        tenant: TenantId,
        shared_pool: Option<&SharedPool>,
        quota_at: Option<i64>,
    ) -> Result<Self, StoreError> {
        let tenant = tenants::get(conn, tenant)?;
        let list = channels::list(conn, tenant.id)?;
        let defaults = pacing::tenant_defaults(conn, tenant.id)?;
        let candidates = list
            .iter()
            .map(|c| {
                let blocked = if let Some(now) = quota_at {
                    quotas::blocked_until(conn, c.id, &c.spec.limits, &defaults, 1, now)?
                } else {
                    None
                };
                let quota = match blocked {
                    Some((until, limit)) => QuotaState::Exhausted {
                        until: chrono::DateTime::from_timestamp_micros(until).unwrap_or_default(),
                        limit,
                    },
                    None => QuotaState::Available,
                };
                Ok(candidate(c, quota))
            })
            .collect::<Result<_, StoreError>>()?;
        let teams = teams::list(conn, tenant.id)?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        let domain_states = domains::states(conn, tenant.id)?;
        Ok(Self {
            tenant,
            domain_states,
            channels: list.into_iter().map(|c| (c.id, c)).collect(),
            candidates,
            shared_pool: shared_pool.map(shared_pool_candidate),
            teams,
            defaults,
        })
    }

    /// The sender, with their team's kill switch.
    pub fn sender(&self, conn: &mut DbConnection, user: UserId) -> Result<Sender, StoreError> {
        let user = users::get(conn, self.tenant.id, user)?;
        let team_sending_enabled = user
            .team_id
            .and_then(|t| self.teams.get(&t))
            .is_none_or(|t| t.sending_enabled);
        Ok(Sender {
            user,
            team_sending_enabled,
        })
    }

    /// Marks a channel over quota (or paced) until `until`, for the rest of this routing pass.
    pub fn exhaust(
        &mut self,
        channel: ChannelId,
        until: chrono::DateTime<chrono::Utc>,
        limit: PaceLimit,
    ) {
        if let Some(c) = self.candidates.iter_mut().find(|c| c.channel_id == channel) {
            c.quota = QuotaState::Exhausted { until, limit };
        }
    }

    /// The sentence for a channel's block, naming its window in the rep's zone.
    pub fn describe_block(
        &self,
        channel: ChannelId,
        limit: PaceLimit,
        until: chrono::DateTime<chrono::Utc>,
    ) -> String {
        match self.channels.get(&channel) {
            Some(c) => {
                pacing::describe_block(&Pacing::of(&c.spec.limits, &self.defaults), limit, until)
            }
            None => limit.describe(until),
        }
    }

    /// Puts the channel-specific sentences (the window, in the rep's zone) into a decision
    /// shown by `decision_json`.
    pub fn annotate(&self, decision: &RouteDecision, shown: &mut Value) {
        if let Outcome::Defer {
            channel,
            until,
            limit,
        } = decision.outcome
        {
            shown["detail"] = json!(self.describe_block(channel, limit, until));
        }
        for (i, c) in decision.considered.iter().enumerate() {
            if let Err(SkipReason::QuotaExhausted { until, limit }) = c.verdict {
                shown["candidates"][i]["detail"] =
                    json!(self.describe_block(c.channel_id, limit, until));
            }
        }
    }

    /// Whether mail through `channel` is DKIM-signed by us (the shared pool always; domain
    /// relays with `dkim_sign`), as the delivery loop decides it.
    pub fn signs_dkim(&self, channel: ChannelId) -> bool {
        if channel == ChannelId::shared_pool() {
            return self.shared_pool.is_some();
        }
        self.channels
            .get(&channel)
            .is_some_and(|c| c.spec.signs_dkim())
    }

    pub fn route(&self, sender: &Sender, from: &EmailAddress, recipients: usize) -> RouteDecision {
        route(
            &RouteRequest {
                policy: &self.tenant.policy,
                team_sending_enabled: sender.team_sending_enabled,
                sender: sender.user.id,
                sender_team: sender.user.team_id,
                from,
                recipients: u32::try_from(recipients).unwrap_or(u32::MAX),
                from_domain: self.domain_states.get(from.domain()).copied(),
            },
            &self.candidates,
            self.shared_pool.as_ref(),
        )
    }
}

/// The decision as the API shows it and the outbox stores it. Ids and kinds only: never a
/// channel's settings, and nothing about channels the sender could not use anyway.
pub fn decision_json(decision: &RouteDecision) -> Value {
    let candidates: Vec<Value> = decision
        .considered
        .iter()
        .map(|c| {
            let (accepted, reason, detail) = match &c.verdict {
                Ok(()) => (
                    true,
                    "selected",
                    "this channel carries the message".to_owned(),
                ),
                Err(skip) => (false, skip.code(), skip.describe()),
            };
            let mut shown = json!({
                "channel_id": c.channel_id,
                "kind": c.kind.as_str(),
                "tier": c.tier.as_str(),
                "accepted": accepted,
                "reason": reason,
                "detail": detail,
            });
            if let Err(SkipReason::QuotaExhausted { until, limit }) = c.verdict {
                shown["limit"] = json!(limit.code());
                shown["until"] = json!(until);
            }
            shown
        })
        .collect();
    let reasons: Vec<String> = decision
        .considered
        .iter()
        .map(|c| match &c.verdict {
            Ok(()) => format!("{} channel {}: selected", c.tier.as_str(), c.channel_id),
            Err(skip) => format!(
                "{} channel {}: skipped, {} ({})",
                c.tier.as_str(),
                c.channel_id,
                skip.describe(),
                skip.code()
            ),
        })
        .collect();
    let (outcome, reason, detail, until, fell_back) = match &decision.outcome {
        Outcome::Send { fell_back, .. } => ("send", None, None, None, *fell_back),
        Outcome::Hold { reason, .. } => (
            "hold",
            Some(reason.code()),
            Some(reason.describe()),
            None,
            false,
        ),
        Outcome::Defer { until, limit, .. } => (
            "defer",
            Some("quota_exhausted"),
            Some(limit.describe(*until)),
            Some(*until),
            false,
        ),
        Outcome::Reject(r) => ("reject", Some(r.code()), Some(r.describe()), None, false),
    };
    let limit = match &decision.outcome {
        Outcome::Defer { limit, .. } => Some(limit.code()),
        _ => None,
    };
    json!({
        "outcome": outcome,
        "limit": limit,
        "channel_id": decision.channel(),
        "fell_back": fell_back,
        "reason": reason,
        "detail": detail,
        "until": until,
        "candidates": candidates,
        "reasons": reasons,
    })
}
