//! The router: picks the one channel that carries a message, or says why none may, with a
//! verdict for every candidate it looked at so that "why did this go via the shared pool?"
//! always has an answer.
//!
//! The rules, in order:
//! 1. Kill switches win: tenant sending off holds (`sending_disabled`), then the sender's team
//!    switch (`team_sending_disabled`). No candidate is considered.
//! 2. Candidates come in tiers, input order kept within a tier: the sender's own mailbox
//!    channels, the sender's team's domain channels, the tenant's domain channels, the shared
//!    pool.
//! 3. Coverage of the From: a mailbox channel covers only its own address (case-insensitive:
//!    its login proved the address); a domain channel exactly its domains (no subdomains), and
//!    only while the From's domain is verified for the tenant; the shared pool, when the
//!    tenant allows it, the tenant's verified domains (each subdomain is verified on its own)
//!    and the platform's own domain.
//! 4. A mailbox credential sends only for its owner and only as its own address: another
//!    user's mailbox with the From's address is listed (`not_senders_channel`) and never used;
//!    another team's channel covering the From is listed (`other_team`) and never used.
//!    Other users' mailboxes with other addresses are not listed at all.
//! 5. A covering candidate is usable when active, within its recipients-per-message limit and
//!    under quota. One whose limit is too small could never carry the message, so it does not
//!    make its tier the primary one.
//! 6. The primary tier is the first holding a covering candidate that fits the recipients;
//!    its first usable candidate is chosen. Other usable candidates are `lower_priority`.
//! 7. When the primary tier has nothing usable: policy `hold` defers through its over-quota
//!    channel (earliest `until`) or holds for its first channel; policy `fallback` sends
//!    through the first usable later candidate, else defers (earliest `until` anywhere) or
//!    holds for the primary channel.
//! 8. Nothing covers: reject `too_many_recipients` (smallest limit) when only the limit stood
//!    in the way; hold `domain_not_verified` when the From's domain is not verified for the
//!    tenant (acceptance refuses it; queued mail waits for the domain to be verified again);
//!    else `no_route`.
//!
//! Exactly one considered candidate has `Ok(())`, iff the outcome is `Send`, and it is the
//! outcome's channel.

use chrono::{DateTime, Utc};

use super::pacing::PaceLimit;

use super::{
    ChannelId, ChannelKind, ChannelOwner, ChannelStatus, ClaimState, CredentialScope, Domain,
    EmailAddress, FallbackPolicy, TeamId, TenantPolicy, UserId,
};

/// Quota state of a channel at routing time (computed by the caller from usage counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaState {
    Available,
    /// Paced or over quota: `limit` says which rule holds it, `until` when it lets go.
    Exhausted {
        until: DateTime<Utc>,
        limit: PaceLimit,
    },
}

/// A channel as the router sees it.
#[derive(Debug, Clone)]
pub struct RouteCandidate {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    pub owner: ChannelOwner,
    pub scope: CredentialScope,
    /// Mailbox channels: the one address they send as.
    pub from_address: Option<EmailAddress>,
    /// Mailbox channels: whether their login proves `from_address` (an OAuth mailbox, or a
    /// provider that checks the sender). Otherwise they too need the From's domain verified.
    pub login_proves_sender: bool,
    /// Domain channels: the From domains they send for. The shared pool: the platform's own
    /// domain, which needs no tenant's proof.
    pub domains: Vec<Domain>,
    pub status: ChannelStatus,
    pub recipients_per_message: Option<u32>,
    pub quota: QuotaState,
}

pub struct RouteRequest<'a> {
    pub policy: &'a TenantPolicy,
    /// The sender's team kill switch (true when the sender has no team).
    pub team_sending_enabled: bool,
    pub sender: UserId,
    pub sender_team: Option<TeamId>,
    pub from: &'a EmailAddress,
    pub recipients: u32,
    /// The tenant's claim on the From's domain (`None`: never claimed).
    pub from_domain: Option<ClaimState>,
}

impl RouteRequest<'_> {
    fn domain_verified(&self) -> bool {
        self.from_domain == Some(ClaimState::Verified)
    }
}

/// The routing order; earlier tiers win (and compare smaller).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Mailbox,
    Team,
    Tenant,
    SharedPool,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Mailbox => "mailbox",
            Tier::Team => "team",
            Tier::Tenant => "tenant",
            Tier::SharedPool => "shared_pool",
        }
    }
}

/// Why a considered candidate did not carry the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NotActive(ChannelStatus),
    ScopeMismatch,
    NotSendersChannel,
    OtherTeam,
    TooManyRecipients {
        limit: u32,
    },
    QuotaExhausted {
        until: DateTime<Utc>,
        limit: PaceLimit,
    },
    SharedPoolNotAllowed,
    /// The candidate covers the From's domain, but the tenant has not proven it (or the
    /// proof lapsed).
    DomainNotVerified(Option<ClaimState>),
    /// The sender's own mailbox for the From, on a server that does not check what its login
    /// may send as, and the From's domain is not verified (same code as `DomainNotVerified`).
    MailboxNotProven(Option<ClaimState>),
    LowerPriority,
}

impl SkipReason {
    /// Stable, for the API and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::NotActive(_) => "not_active",
            SkipReason::ScopeMismatch => "scope_mismatch",
            SkipReason::NotSendersChannel => "not_senders_channel",
            SkipReason::OtherTeam => "other_team",
            SkipReason::TooManyRecipients { .. } => "too_many_recipients",
            SkipReason::QuotaExhausted { .. } => "quota_exhausted",
            SkipReason::SharedPoolNotAllowed => "shared_pool_not_allowed",
            SkipReason::DomainNotVerified(_) | SkipReason::MailboxNotProven(_) => {
                "domain_not_verified"
            }
            SkipReason::LowerPriority => "lower_priority",
        }
    }

    /// One sentence for a person.
    pub fn describe(&self) -> String {
        match self {
            SkipReason::NotActive(status) => match status {
                ChannelStatus::NeedsReauth => "the channel needs re-authentication",
                ChannelStatus::Failing => "the channel is failing with repeated errors",
                ChannelStatus::Disabled => "the channel is disabled",
                ChannelStatus::Paused => {
                    "the channel is paused (too many bounces, a provider's sending block, or an admin); it carries no mail until it resumes"
                }
                ChannelStatus::Active => "the channel was not active",
            }
            .to_owned(),
            SkipReason::ScopeMismatch => {
                "the channel's credential does not cover this From address".to_owned()
            }
            SkipReason::NotSendersChannel => {
                "this mailbox belongs to another user; a mailbox credential sends only for its owner"
                    .to_owned()
            }
            SkipReason::OtherTeam => "the channel belongs to another team".to_owned(),
            SkipReason::TooManyRecipients { limit } => format!(
                "the message has more recipients than the channel allows per message ({limit})"
            ),
            SkipReason::QuotaExhausted { until, limit } => limit.describe(*until),
            SkipReason::SharedPoolNotAllowed => {
                "the tenant does not allow sending through the shared pool".to_owned()
            }
            SkipReason::DomainNotVerified(state) => domain_sentence(*state),
            SkipReason::MailboxNotProven(state) => format!(
                "this mailbox's server does not check which addresses its login may send as (Gmail, Microsoft 365, Outlook.com and Yahoo do), so its address needs the domain proven too: {}",
                domain_sentence(*state)
            ),
            SkipReason::LowerPriority => {
                "a channel earlier in the routing order comes first".to_owned()
            }
        }
    }
}

/// One candidate the router looked at, and what it decided about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Considered {
    pub channel_id: ChannelId,
    pub kind: ChannelKind,
    pub tier: Tier,
    /// `Ok(())` for the chosen channel.
    pub verdict: Result<(), SkipReason>,
}

/// Why the From's domain may not be sent as, naming the claim's state.
fn domain_sentence(state: Option<ClaimState>) -> String {
    match state {
        None => "the From's domain is not claimed by this tenant: claim it (POST /v1/domains) and publish its TXT record".to_owned(),
        Some(ClaimState::Verified) => "the From's domain is verified".to_owned(),
        Some(state) => format!(
            "the From's domain is {state} for this tenant, not verified: {}",
            state.describe()
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    SendingDisabled,
    TeamSendingDisabled,
    ChannelUnavailable,
    /// Only domain channels or the shared pool could carry the From, and its domain is not
    /// verified for the tenant.
    DomainNotVerified(Option<ClaimState>),
}

impl HoldReason {
    pub fn code(&self) -> &'static str {
        match self {
            HoldReason::SendingDisabled => "sending_disabled",
            HoldReason::TeamSendingDisabled => "team_sending_disabled",
            HoldReason::ChannelUnavailable => "channel_unavailable",
            HoldReason::DomainNotVerified(_) => "domain_not_verified",
        }
    }

    pub fn describe(&self) -> String {
        if let HoldReason::DomainNotVerified(state) = self {
            return domain_sentence(*state);
        }
        match self {
            HoldReason::SendingDisabled => "sending is switched off for the tenant",
            HoldReason::TeamSendingDisabled => "sending is switched off for the sender's team",
            HoldReason::ChannelUnavailable => {
                "the channel for this message cannot send now; the message waits until it can"
            }
            HoldReason::DomainNotVerified(_) => unreachable!("described above"),
        }
        .to_owned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    NoRoute,
    TooManyRecipients { limit: u32 },
}

impl RejectReason {
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::NoRoute => "no_route",
            RejectReason::TooManyRecipients { .. } => "too_many_recipients",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            RejectReason::NoRoute => {
                "no channel may send as this From address; connect its mailbox or add a domain channel"
                    .to_owned()
            }
            RejectReason::TooManyRecipients { limit } => format!(
                "too many recipients: the channels for this From take at most {limit} per message"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Send {
        channel: ChannelId,
        fell_back: bool,
    },
    /// Wait for `channel` (when there is one) to become usable again; released by
    /// rotation/reconnect/re-enable.
    Hold {
        channel: Option<ChannelId>,
        reason: HoldReason,
    },
    /// Over quota or paced: try again at `until` through `channel`; `limit` says which rule.
    Defer {
        channel: ChannelId,
        until: DateTime<Utc>,
        limit: PaceLimit,
    },
    Reject(RejectReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDecision {
    pub outcome: Outcome,
    pub considered: Vec<Considered>,
}

impl RouteDecision {
    /// The channel of a Send, Hold or Defer.
    pub fn channel(&self) -> Option<ChannelId> {
        match self.outcome {
            Outcome::Send { channel, .. } | Outcome::Defer { channel, .. } => Some(channel),
            Outcome::Hold { channel, .. } => channel,
            Outcome::Reject(_) => None,
        }
    }

    fn held(reason: HoldReason) -> Self {
        Self {
            outcome: Outcome::Hold {
                channel: None,
                reason,
            },
            considered: Vec::new(),
        }
    }
}

/// A listed candidate before the final verdicts are handed out.
struct Entry<'c> {
    candidate: &'c RouteCandidate,
    tier: Tier,
    covers: bool,
    /// `Ok` when usable, else the first reason it cannot carry this message now.
    check: Result<(), SkipReason>,
}

impl Entry<'_> {
    /// Covers the From and could carry this many recipients once active and under quota.
    fn fits(&self) -> bool {
        self.covers && !matches!(self.check, Err(SkipReason::TooManyRecipients { .. }))
    }
}

/// Routes one message. `channels` are the tenant's stored channels in a stable order (oldest
/// first); `shared_pool` is the platform relay when the operator configured one.
pub fn route(
    request: &RouteRequest<'_>,
    channels: &[RouteCandidate],
    shared_pool: Option<&RouteCandidate>,
) -> RouteDecision {
    if !request.policy.sending_enabled {
        return RouteDecision::held(HoldReason::SendingDisabled);
    }
    if !request.team_sending_enabled {
        return RouteDecision::held(HoldReason::TeamSendingDisabled);
    }

    let entries = list_candidates(request, channels, shared_pool);
    let primary = entries.iter().find(|e| e.fits()).map(|e| e.tier);
    let fallback = request.policy.fallback_policy == FallbackPolicy::Fallback;
    // Tiers before the primary hold nothing that fits, hence nothing usable: the first usable
    // entry is in the primary tier or, only worth taking under `fallback`, a later one.
    let chosen = entries
        .iter()
        .position(|e| e.check.is_ok())
        .filter(|&i| fallback || Some(entries[i].tier) == primary);

    let outcome = match (primary, chosen) {
        (None, _) if !request.domain_verified() && !entries.iter().any(|e| e.covers) => {
            Outcome::Hold {
                channel: None,
                reason: HoldReason::DomainNotVerified(request.from_domain),
            }
        }
        (None, _) => Outcome::Reject(reject_reason(&entries)),
        (Some(primary), Some(i)) => Outcome::Send {
            channel: entries[i].candidate.channel_id,
            fell_back: entries[i].tier != primary,
        },
        (Some(primary), None) => unavailable(&entries, primary, fallback),
    };
    let considered = entries
        .iter()
        .enumerate()
        .map(|(i, e)| Considered {
            channel_id: e.candidate.channel_id,
            kind: e.candidate.kind,
            tier: e.tier,
            verdict: match e.check {
                Ok(()) if chosen == Some(i) => Ok(()),
                Ok(()) => Err(SkipReason::LowerPriority),
                Err(reason) => Err(reason),
            },
        })
        .collect();
    RouteDecision {
        outcome,
        considered,
    }
}

/// The outcome when nothing may send now although the primary tier could carry the message.
fn unavailable(entries: &[Entry<'_>], primary: Tier, fallback: bool) -> Outcome {
    // `QuotaExhausted` is only ever the verdict of a covering, fitting, active candidate, so
    // waiting for it is enough. `min_by_key` keeps the first of equal times.
    let deferrable = entries
        .iter()
        .filter(|e| fallback || e.tier == primary)
        .filter_map(|e| match e.check {
            Err(SkipReason::QuotaExhausted { until, limit }) => {
                Some((e.candidate.channel_id, until, limit))
            }
            _ => None,
        })
        .min_by_key(|&(_, until, _)| until);
    if let Some((channel, until, limit)) = deferrable {
        return Outcome::Defer {
            channel,
            until,
            limit,
        };
    }
    Outcome::Hold {
        channel: entries
            .iter()
            .find(|e| e.tier == primary && e.fits())
            .map(|e| e.candidate.channel_id),
        reason: HoldReason::ChannelUnavailable,
    }
}

/// Nothing covering fits: only the recipient limit (the smallest, to say what would pass)
/// or nothing at all stood in the way.
fn reject_reason(entries: &[Entry<'_>]) -> RejectReason {
    let limits = entries.iter().filter_map(|e| match e.check {
        Err(SkipReason::TooManyRecipients { limit }) => Some(limit),
        _ => None,
    });
    match limits.min() {
        Some(limit) => RejectReason::TooManyRecipients { limit },
        None => RejectReason::NoRoute,
    }
}

/// The candidates worth explaining, in tier order, each with its coverage of the From.
/// Channels whose owner and scope do not fit together (which `check_scope` refuses at
/// creation) belong to no tier and are never used.
fn list_candidates<'c>(
    request: &RouteRequest<'_>,
    channels: &'c [RouteCandidate],
    shared_pool: Option<&'c RouteCandidate>,
) -> Vec<Entry<'c>> {
    let from = request.from.normalized();
    let from_domain = request.from.domain();
    // A domain channel that lists the From's domain still needs the tenant's proof of it.
    let proven = |covers: bool| match (covers, request.domain_verified()) {
        (true, true) => Ok(()),
        (true, false) => Err(SkipReason::DomainNotVerified(request.from_domain)),
        (false, _) => Err(SkipReason::ScopeMismatch),
    };
    let mut entries = Vec::new();
    let mut list = |candidate: &'c RouteCandidate, tier, coverage: Result<(), SkipReason>| {
        entries.push(Entry {
            candidate,
            tier,
            covers: coverage.is_ok(),
            check: coverage.and_then(|()| usability(candidate, request.recipients)),
        });
    };

    for c in channels {
        let ChannelOwner::User(owner) = c.owner else {
            continue;
        };
        if c.scope != CredentialScope::Mailbox {
            continue;
        }
        let own_address = c
            .from_address
            .as_ref()
            .is_some_and(|a| a.normalized() == from);
        match (owner == request.sender, own_address) {
            (true, true) if !c.login_proves_sender && !request.domain_verified() => list(
                c,
                Tier::Mailbox,
                Err(SkipReason::MailboxNotProven(request.from_domain)),
            ),
            (true, true) => list(c, Tier::Mailbox, Ok(())),
            (true, false) => list(c, Tier::Mailbox, Err(SkipReason::ScopeMismatch)),
            (false, true) => list(c, Tier::Mailbox, Err(SkipReason::NotSendersChannel)),
            // Someone else's mailbox for another address tells the sender nothing.
            (false, false) => {}
        }
    }
    for c in channels {
        let ChannelOwner::Team(team) = c.owner else {
            continue;
        };
        if c.scope != CredentialScope::Domain {
            continue;
        }
        let covers = c.domains.contains(from_domain);
        if request.sender_team == Some(team) {
            list(c, Tier::Team, proven(covers));
        } else if covers {
            list(c, Tier::Team, Err(SkipReason::OtherTeam));
        }
    }
    for c in channels {
        if c.owner == ChannelOwner::Tenant && c.scope == CredentialScope::Domain {
            list(c, Tier::Tenant, proven(c.domains.contains(from_domain)));
        }
    }
    if let Some(pool) = shared_pool {
        let policy = request.policy;
        let coverage = if !policy.shared_pool_allowed {
            Err(SkipReason::SharedPoolNotAllowed)
        } else if pool.domains.contains(from_domain) {
            Ok(())
        } else {
            proven(true)
        };
        list(pool, Tier::SharedPool, coverage);
    }
    entries
}

/// Whether a covering candidate can carry this message now. The recipient limit comes first:
/// it is the one reason no amount of waiting fixes.
fn usability(candidate: &RouteCandidate, recipients: u32) -> Result<(), SkipReason> {
    if let Some(limit) = candidate.recipients_per_message
        && recipients > limit
    {
        return Err(SkipReason::TooManyRecipients { limit });
    }
    if candidate.status != ChannelStatus::Active {
        return Err(SkipReason::NotActive(candidate.status));
    }
    match candidate.quota {
        QuotaState::Available => Ok(()),
        QuotaState::Exhausted { until, limit } => Err(SkipReason::QuotaExhausted { until, limit }),
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;
    use std::str::FromStr;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + minutes * 60, 0).unwrap()
    }

    /// Ids from a counter, so that a failing random case can be replayed exactly.
    fn id<T: FromStr<Err: Debug>>(n: u64) -> T {
        format!("00000000-0000-4000-8000-{n:012x}").parse().unwrap()
    }

    fn candidate(owner: ChannelOwner, scope: CredentialScope) -> RouteCandidate {
        RouteCandidate {
            channel_id: ChannelId::generate(),
            kind: ChannelKind::Smtp,
            owner,
            scope,
            from_address: None,
            login_proves_sender: false,
            domains: Vec::new(),
            status: ChannelStatus::Active,
            recipients_per_message: None,
            quota: QuotaState::Available,
        }
    }

    fn mailbox(owner: UserId, address: &str) -> RouteCandidate {
        RouteCandidate {
            from_address: Some(addr(address)),
            login_proves_sender: true,
            ..candidate(ChannelOwner::User(owner), CredentialScope::Mailbox)
        }
    }

    fn domain_channel(owner: ChannelOwner, domains: &[&str]) -> RouteCandidate {
        RouteCandidate {
            domains: domains.iter().map(|d| Domain::parse(d).unwrap()).collect(),
            ..candidate(owner, CredentialScope::Domain)
        }
    }

    fn pool() -> RouteCandidate {
        RouteCandidate {
            channel_id: ChannelId::shared_pool(),
            kind: ChannelKind::SharedPool,
            ..candidate(ChannelOwner::Platform, CredentialScope::Domain)
        }
    }

    impl RouteCandidate {
        fn status(self, status: ChannelStatus) -> Self {
            Self { status, ..self }
        }

        fn limit(self, limit: u32) -> Self {
            Self {
                recipients_per_message: Some(limit),
                ..self
            }
        }

        fn exhausted(self, until: DateTime<Utc>) -> Self {
            Self {
                quota: QuotaState::Exhausted {
                    until,
                    limit: PaceLimit::PerMinute,
                },
                ..self
            }
        }
    }

    /// A rep of tenant `acme.test` sending as rep@acme.test, policy `hold`, shared pool allowed.
    struct Setup {
        policy: TenantPolicy,
        /// The tenant's claim on the From's domain.
        from_domain: Option<ClaimState>,
        team_sending_enabled: bool,
        sender: UserId,
        team: TeamId,
        from: EmailAddress,
        recipients: u32,
    }

    impl Setup {
        fn new() -> Self {
            Self {
                policy: TenantPolicy::default(),
                from_domain: Some(ClaimState::Verified),
                team_sending_enabled: true,
                sender: UserId::generate(),
                team: TeamId::generate(),
                from: addr("rep@acme.test"),
                recipients: 1,
            }
        }

        fn fallback() -> Self {
            let mut setup = Self::new();
            setup.policy.fallback_policy = FallbackPolicy::Fallback;
            setup
        }

        fn route(
            &self,
            channels: &[RouteCandidate],
            pool: Option<&RouteCandidate>,
        ) -> RouteDecision {
            let request = RouteRequest {
                policy: &self.policy,
                team_sending_enabled: self.team_sending_enabled,
                sender: self.sender,
                sender_team: Some(self.team),
                from: &self.from,
                recipients: self.recipients,
                from_domain: self.from_domain,
            };
            route(&request, channels, pool)
        }
    }

    fn verdicts(decision: &RouteDecision) -> Vec<(ChannelId, Tier, Result<(), SkipReason>)> {
        let considered = decision.considered.iter();
        considered
            .map(|c| (c.channel_id, c.tier, c.verdict))
            .collect()
    }

    /// The verdict codes in listed order, `ok` for the chosen channel.
    fn codes(decision: &RouteDecision) -> Vec<&'static str> {
        let verdicts = decision.considered.iter().map(|c| c.verdict);
        verdicts
            .map(|v| v.map_or_else(|r| r.code(), |()| "ok"))
            .collect()
    }

    fn send(channel: &RouteCandidate, fell_back: bool) -> Outcome {
        Outcome::Send {
            channel: channel.channel_id,
            fell_back,
        }
    }

    fn hold_for(channel: &RouteCandidate) -> Outcome {
        Outcome::Hold {
            channel: Some(channel.channel_id),
            reason: HoldReason::ChannelUnavailable,
        }
    }

    const NOT_ACTIVE: [ChannelStatus; 3] = [
        ChannelStatus::NeedsReauth,
        ChannelStatus::Failing,
        ChannelStatus::Disabled,
    ];

    #[test]
    fn kill_switches_hold_before_anything_is_considered() {
        let mut setup = Setup::new();
        let own = mailbox(setup.sender, "rep@acme.test");
        setup.team_sending_enabled = false;
        let decision = setup.route(std::slice::from_ref(&own), Some(&pool()));
        assert_eq!(
            decision,
            RouteDecision::held(HoldReason::TeamSendingDisabled)
        );
        setup.policy.sending_enabled = false;
        let decision = setup.route(&[own], Some(&pool()));
        assert_eq!(decision, RouteDecision::held(HoldReason::SendingDisabled));
        assert_eq!(decision.channel(), None);
    }

    #[test]
    fn each_tier_wins_over_the_later_ones() {
        let setup = Setup::new();
        let own = mailbox(setup.sender, "rep@acme.test");
        let team = domain_channel(ChannelOwner::Team(setup.team), &["acme.test"]);
        let tenant = domain_channel(ChannelOwner::Tenant, &["acme.test"]);
        let pool = pool();
        // Stored order is deliberately not tier order.
        let all = [tenant.clone(), team.clone(), own.clone()];
        let decision = setup.route(&all, Some(&pool));
        assert_eq!(decision.outcome, send(&own, false));
        assert_eq!(decision.channel(), Some(own.channel_id));
        let lower = Err(SkipReason::LowerPriority);
        assert_eq!(
            verdicts(&decision),
            [
                (own.channel_id, Tier::Mailbox, Ok(())),
                (team.channel_id, Tier::Team, lower),
                (tenant.channel_id, Tier::Tenant, lower),
                (pool.channel_id, Tier::SharedPool, lower),
            ]
        );
        let decision = setup.route(&all[..2], Some(&pool));
        assert_eq!(decision.outcome, send(&team, false));
        let decision = setup.route(&all[..1], Some(&pool));
        assert_eq!(decision.outcome, send(&tenant, false));
        assert_eq!(setup.route(&[], Some(&pool)).outcome, send(&pool, false));
    }

    #[test]
    fn the_first_usable_channel_of_a_tier_is_chosen() {
        let setup = Setup::new();
        let broken =
            domain_channel(ChannelOwner::Tenant, &["acme.test"]).status(ChannelStatus::Failing);
        let first = domain_channel(ChannelOwner::Tenant, &["acme.test"]);
        let second = domain_channel(ChannelOwner::Tenant, &["acme.test"]);
        let decision = setup.route(&[broken.clone(), first.clone(), second.clone()], None);
        assert_eq!(decision.outcome, send(&first, false));
        assert_eq!(codes(&decision), ["not_active", "ok", "lower_priority"]);
    }

    #[test]
    fn a_mailbox_matches_its_own_address_ignoring_case_and_nothing_else() {
        let setup = Setup::new();
        let own = mailbox(setup.sender, "REP@Acme.Test");
        let decision = setup.route(std::slice::from_ref(&own), None);
        assert_eq!(decision.outcome, send(&own, false));

        let elsewhere = mailbox(setup.sender, "rep2@acme.test");
        let decision = setup.route(std::slice::from_ref(&elsewhere), Some(&pool()));
        assert_eq!(decision.outcome, send(&pool(), false));
        assert_eq!(codes(&decision), ["scope_mismatch", "ok"]);
    }

    #[test]
    fn another_users_mailbox_is_never_used_even_for_the_same_address() {
        let setup = Setup::fallback();
        let theirs = mailbox(UserId::generate(), "Rep@acme.test");
        let unrelated = mailbox(UserId::generate(), "someone@acme.test");
        let channels = [theirs.clone(), unrelated];
        let decision = setup.route(&channels, None);
        assert_eq!(decision.outcome, Outcome::Reject(RejectReason::NoRoute));
        assert_eq!(
            verdicts(&decision),
            [(
                theirs.channel_id,
                Tier::Mailbox,
                Err(SkipReason::NotSendersChannel)
            )]
        );
        // With a pool the pool is the primary route: nothing was fallen back from.
        let decision = setup.route(&channels, Some(&pool()));
        assert_eq!(decision.outcome, send(&pool(), false));
    }

    #[test]
    fn other_teams_channels_are_listed_but_never_used() {
        let setup = Setup::fallback();
        let covering = domain_channel(ChannelOwner::Team(TeamId::generate()), &["acme.test"]);
        let elsewhere = domain_channel(ChannelOwner::Team(TeamId::generate()), &["other.test"]);
        let decision = setup.route(&[covering.clone(), elsewhere], None);
        assert_eq!(decision.outcome, Outcome::Reject(RejectReason::NoRoute));
        assert_eq!(
            verdicts(&decision),
            [(covering.channel_id, Tier::Team, Err(SkipReason::OtherTeam))]
        );
    }

    #[test]
    fn an_unproven_domain_is_carried_by_no_domain_channel_and_not_by_the_pool() {
        let mut setup = Setup::new();
        let team = domain_channel(ChannelOwner::Team(setup.team), &["acme.test"]);
        for state in [None, Some(ClaimState::Pending), Some(ClaimState::Lapsed)] {
            setup.from_domain = state;
            let decision = setup.route(std::slice::from_ref(&team), Some(&pool()));
            assert_eq!(
                decision.outcome,
                Outcome::Hold {
                    channel: None,
                    reason: HoldReason::DomainNotVerified(state)
                }
            );
            assert_eq!(
                codes(&decision),
                ["domain_not_verified", "domain_not_verified"]
            );
        }
        let lapsed = HoldReason::DomainNotVerified(Some(ClaimState::Lapsed)).describe();
        assert!(lapsed.contains("lapsed"), "{lapsed}");
        let unclaimed = SkipReason::DomainNotVerified(None).describe();
        assert!(unclaimed.contains("POST /v1/domains"), "{unclaimed}");
    }

    #[test]
    fn a_mailbox_proves_its_own_address_without_a_domain_claim() {
        let mut setup = Setup::new();
        setup.from_domain = None;
        let own = mailbox(setup.sender, "rep@acme.test");
        let decision = setup.route(std::slice::from_ref(&own), Some(&pool()));
        assert_eq!(decision.outcome, send(&own, false));
        assert_eq!(codes(&decision), ["ok", "domain_not_verified"]);
    }

    #[test]
    fn a_mailbox_on_a_server_that_does_not_check_the_sender_needs_the_domain_proven() {
        let mut setup = Setup::new();
        let own = RouteCandidate {
            login_proves_sender: false,
            ..mailbox(setup.sender, "rep@acme.test")
        };
        for state in [None, Some(ClaimState::Pending), Some(ClaimState::Lapsed)] {
            setup.from_domain = state;
            let decision = setup.route(std::slice::from_ref(&own), None);
            assert_eq!(
                decision.outcome,
                Outcome::Hold {
                    channel: None,
                    reason: HoldReason::DomainNotVerified(state)
                }
            );
            assert_eq!(codes(&decision), ["domain_not_verified"]);
        }
        setup.from_domain = Some(ClaimState::Verified);
        let decision = setup.route(std::slice::from_ref(&own), None);
        assert_eq!(decision.outcome, send(&own, false));
    }

    #[test]
    fn subdomains_are_proven_on_their_own_and_the_platform_domain_needs_no_proof() {
        let mut setup = Setup::new();
        // The caller looks up the claim on the From's exact domain: none for the subdomain.
        setup.from = addr("rep@mail.acme.test");
        setup.from_domain = None;
        let tenant = domain_channel(ChannelOwner::Tenant, &["acme.test"]);
        let decision = setup.route(std::slice::from_ref(&tenant), Some(&pool()));
        assert_eq!(codes(&decision), ["scope_mismatch", "domain_not_verified"]);

        setup.from = addr("notifications@platform.test");
        let platform = RouteCandidate {
            domains: vec![Domain::parse("platform.test").unwrap()],
            ..pool()
        };
        let decision = setup.route(&[tenant], Some(&platform));
        assert_eq!(decision.outcome, send(&platform, false));
    }

    #[test]
    fn a_disallowed_shared_pool_leaves_no_route() {
        let mut setup = Setup::fallback();
        setup.policy.shared_pool_allowed = false;
        let decision = setup.route(&[], Some(&pool()));
        assert_eq!(decision.outcome, Outcome::Reject(RejectReason::NoRoute));
        assert_eq!(codes(&decision), ["shared_pool_not_allowed"]);
        assert_eq!(setup.route(&[], None).considered, []);
    }

    #[test]
    fn policy_hold_waits_for_the_senders_unusable_mailbox() {
        let setup = Setup::new();
        for status in NOT_ACTIVE {
            let own = mailbox(setup.sender, "rep@acme.test").status(status);
            let team = domain_channel(ChannelOwner::Team(setup.team), &["acme.test"]);
            let decision = setup.route(&[own.clone(), team.clone()], Some(&pool()));
            assert_eq!(decision.outcome, hold_for(&own), "{status}");
            assert_eq!(decision.channel(), Some(own.channel_id));
            let lower = Err(SkipReason::LowerPriority);
            assert_eq!(
                verdicts(&decision),
                [
                    (
                        own.channel_id,
                        Tier::Mailbox,
                        Err(SkipReason::NotActive(status))
                    ),
                    (team.channel_id, Tier::Team, lower),
                    (ChannelId::shared_pool(), Tier::SharedPool, lower),
                ]
            );
        }
    }

    #[test]
    fn policy_fallback_moves_past_the_senders_unusable_mailbox() {
        let setup = Setup::fallback();
        for status in NOT_ACTIVE {
            let own = mailbox(setup.sender, "rep@acme.test").status(status);
            let decision = setup.route(std::slice::from_ref(&own), Some(&pool()));
            assert_eq!(decision.outcome, send(&pool(), true), "{status}");
            // Nothing else usable: wait for the sender's own channel.
            assert_eq!(
                setup.route(std::slice::from_ref(&own), None).outcome,
                hold_for(&own)
            );
        }
    }

    #[test]
    fn an_exhausted_quota_defers_to_the_earliest_reset() {
        let setup = Setup::new();
        let reauth = mailbox(setup.sender, "rep@acme.test").status(ChannelStatus::NeedsReauth);
        let late = mailbox(setup.sender, "rep@acme.test").exhausted(at(60));
        let early = mailbox(setup.sender, "rep@acme.test").exhausted(at(5));
        let channels = [reauth, late, early.clone()];
        let decision = setup.route(&channels, Some(&pool()));
        let defer = Outcome::Defer {
            channel: early.channel_id,
            until: at(5),
            limit: PaceLimit::PerMinute,
        };
        assert_eq!(decision.outcome, defer);
        assert_eq!(decision.channel(), Some(early.channel_id));
        assert_eq!(
            decision.considered[2].verdict,
            Err(SkipReason::QuotaExhausted {
                until: at(5),
                limit: PaceLimit::PerMinute
            })
        );
    }

    #[test]
    fn fallback_passes_an_exhausted_quota_or_defers_when_nothing_is_usable() {
        let setup = Setup::fallback();
        let own = mailbox(setup.sender, "rep@acme.test").exhausted(at(30));
        let team = domain_channel(ChannelOwner::Team(setup.team), &["acme.test"]);
        let decision = setup.route(&[own.clone(), team.clone()], Some(&pool()));
        assert_eq!(decision.outcome, send(&team, true));

        // Down everywhere: the earliest reset wins, whichever tier it is in.
        let team = team.status(ChannelStatus::Disabled);
        let pool = pool().exhausted(at(10));
        let decision = setup.route(&[own, team], Some(&pool));
        let defer = Outcome::Defer {
            channel: pool.channel_id,
            until: at(10),
            limit: PaceLimit::PerMinute,
        };
        assert_eq!(decision.outcome, defer);
    }

    #[test]
    fn a_recipient_limit_skips_the_channel_without_making_it_primary() {
        let mut setup = Setup::new();
        setup.recipients = 3;
        let own = mailbox(setup.sender, "rep@acme.test").limit(2);
        let team = domain_channel(ChannelOwner::Team(setup.team), &["acme.test"]);
        let decision = setup.route(&[own.clone(), team.clone()], None);
        assert_eq!(decision.outcome, send(&team, false));
        assert_eq!(
            decision.considered[0].verdict,
            Err(SkipReason::TooManyRecipients { limit: 2 })
        );
        // Exactly at the limit is fine.
        let own = own.limit(3);
        assert_eq!(
            setup.route(std::slice::from_ref(&own), None).outcome,
            send(&own, false)
        );
    }

    #[test]
    fn recipient_limits_everywhere_reject_with_the_smallest() {
        let mut setup = Setup::fallback();
        setup.recipients = 50;
        let own = mailbox(setup.sender, "rep@acme.test").limit(20);
        let tenant = domain_channel(ChannelOwner::Tenant, &["acme.test"]).limit(10);
        let decision = setup.route(&[own, tenant], Some(&pool().limit(40)));
        let reject = Outcome::Reject(RejectReason::TooManyRecipients { limit: 10 });
        assert_eq!(decision.outcome, reject);
        let limits = ["too_many_recipients"; 3];
        assert_eq!(codes(&decision), limits);
    }

    #[test]
    fn reasons_have_stable_codes_and_readable_descriptions() {
        let reauth = SkipReason::NotActive(ChannelStatus::NeedsReauth);
        assert_eq!(reauth.code(), "not_active");
        assert_eq!(reauth.describe(), "the channel needs re-authentication");
        let quota = SkipReason::QuotaExhausted {
            until: at(0),
            limit: PaceLimit::PerMinute,
        };
        assert_eq!(
            quota.describe(),
            "the channel's per-minute limit is used up until 2023-11-14T22:13:20Z"
        );
        let all = [
            reauth,
            SkipReason::ScopeMismatch,
            SkipReason::NotSendersChannel,
            SkipReason::OtherTeam,
            SkipReason::TooManyRecipients { limit: 5 },
            quota,
            SkipReason::SharedPoolNotAllowed,
            SkipReason::DomainNotVerified(Some(ClaimState::Pending)),
            SkipReason::LowerPriority,
        ];
        let mut codes: Vec<_> = all.iter().map(SkipReason::code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|r| !r.describe().is_empty()));
        assert_eq!(HoldReason::ChannelUnavailable.code(), "channel_unavailable");
        assert_eq!(
            RejectReason::TooManyRecipients { limit: 5 }.code(),
            "too_many_recipients"
        );
        assert!(
            RejectReason::TooManyRecipients { limit: 5 }
                .describe()
                .contains('5')
        );
    }

    const LOCALS: [&str; 3] = ["rep", "REP", "other"];
    const DOMAINS: [&str; 4] = ["acme.test", "mail.acme.test", "evilacme.test", "other.test"];

    fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
        items[rng.random_range(0..items.len())]
    }

    /// One random routing problem; the sender is always user 1, of team 11, 12 or none.
    #[derive(Debug)]
    struct Case {
        policy: TenantPolicy,
        from_domain: Option<ClaimState>,
        team_sending_enabled: bool,
        sender_team: Option<TeamId>,
        from: EmailAddress,
        recipients: u32,
        channels: Vec<RouteCandidate>,
        pool: Option<RouteCandidate>,
    }

    impl Case {
        fn random(rng: &mut StdRng) -> Self {
            let policy = TenantPolicy {
                sending_enabled: rng.random_bool(0.95),
                fallback_policy: pick(rng, &[FallbackPolicy::Hold, FallbackPolicy::Fallback]),
                shared_pool_allowed: rng.random_bool(0.7),
                unsubscribe_by_default: false,
            };
            let from_domain = match rng.random_range(0..10) {
                0 => None,
                1 => Some(ClaimState::Pending),
                2 => Some(ClaimState::Lapsed),
                _ => Some(ClaimState::Verified),
            };
            let from = addr(&format!("{}@{}", pick(rng, &LOCALS), pick(rng, &DOMAINS)));
            let count = rng.random_range(0..8);
            // The pool shares only the state of a random channel, never its owner or scope.
            let pool = rng.random_bool(0.7).then(|| {
                let like = Self::random_channel(rng, 0);
                let platform = rng
                    .random_bool(0.3)
                    .then(|| Domain::parse(pick(rng, &DOMAINS)).unwrap());
                RouteCandidate {
                    status: like.status,
                    recipients_per_message: like.recipients_per_message,
                    quota: like.quota,
                    domains: platform.into_iter().collect(),
                    ..pool()
                }
            });
            Self {
                policy,
                from_domain,
                team_sending_enabled: rng.random_bool(0.95),
                sender_team: rng.random_bool(0.7).then(|| id(pick(rng, &[11, 12]))),
                from,
                recipients: rng.random_range(1..=4),
                channels: (0..count)
                    .map(|n| Self::random_channel(rng, 100 + n))
                    .collect(),
                pool,
            }
        }

        fn random_channel(rng: &mut StdRng, n: u64) -> RouteCandidate {
            let owner = match rng.random_range(0..3) {
                0 => ChannelOwner::User(id(pick(rng, &[1, 2, 3]))),
                1 => ChannelOwner::Team(id(pick(rng, &[11, 12]))),
                _ => ChannelOwner::Tenant,
            };
            // Mostly sound owner/scope pairs, some that `check_scope` would refuse.
            let mailbox = matches!(owner, ChannelOwner::User(_)) != rng.random_bool(0.1);
            let mut c = if mailbox {
                let address = format!("{}@{}", pick(rng, &LOCALS), pick(rng, &DOMAINS));
                RouteCandidate {
                    from_address: Some(addr(&address)),
                    login_proves_sender: rng.random_bool(0.7),
                    ..candidate(owner, CredentialScope::Mailbox)
                }
            } else {
                let domains: Vec<&str> = DOMAINS
                    .into_iter()
                    .filter(|_| rng.random_bool(0.4))
                    .collect();
                domain_channel(owner, &domains)
            };
            c.channel_id = id(n);
            c.status = match rng.random_range(0..6) {
                0 => ChannelStatus::NeedsReauth,
                1 => ChannelStatus::Failing,
                2 => ChannelStatus::Disabled,
                _ => ChannelStatus::Active,
            };
            c.recipients_per_message = rng.random_bool(0.3).then(|| rng.random_range(1..=4));
            if rng.random_bool(0.25) {
                c.quota = QuotaState::Exhausted {
                    until: at(rng.random_range(1..=60)),
                    limit: PaceLimit::PerMinute,
                };
            }
            c
        }

        fn request(&self) -> RouteRequest<'_> {
            RouteRequest {
                policy: &self.policy,
                team_sending_enabled: self.team_sending_enabled,
                sender: id(1),
                sender_team: self.sender_team,
                from: &self.from,
                recipients: self.recipients,
                from_domain: self.from_domain,
            }
        }

        /// The tier in which `c` covers the From, restated apart from the implementation.
        fn covering_tier(&self, c: &RouteCandidate) -> Option<Tier> {
            let from = self.from.domain();
            let own_address = c.from_address.as_ref().map(EmailAddress::normalized)
                == Some(self.from.normalized());
            let verified = self.from_domain == Some(ClaimState::Verified);
            match (c.owner, c.scope) {
                (ChannelOwner::Platform, _) => (self.policy.shared_pool_allowed
                    && (verified || c.domains.contains(from)))
                .then_some(Tier::SharedPool),
                (ChannelOwner::User(u), CredentialScope::Mailbox) => {
                    (u == id(1) && own_address && (c.login_proves_sender || verified))
                        .then_some(Tier::Mailbox)
                }
                (ChannelOwner::Team(t), CredentialScope::Domain) => {
                    (Some(t) == self.sender_team && verified && c.domains.contains(from))
                        .then_some(Tier::Team)
                }
                (ChannelOwner::Tenant, CredentialScope::Domain) => {
                    (verified && c.domains.contains(from)).then_some(Tier::Tenant)
                }
                _ => None,
            }
        }
    }

    /// Checks one decision against the rules; says which kind of outcome it was.
    fn check(case: &Case, decision: &RouteDecision) -> Result<&'static str, String> {
        macro_rules! ensure {
            ($holds:expr, $broken:literal) => {
                if !$holds {
                    return Err($broken.to_owned());
                }
            };
        }
        use ChannelStatus::Active;
        if !case.policy.sending_enabled || !case.team_sending_enabled {
            let held = matches!(decision.outcome, Outcome::Hold { channel: None, .. });
            ensure!(
                held && decision.considered.is_empty(),
                "kill switch ignored"
            );
            return Ok("kill");
        }
        let all: Vec<&RouteCandidate> = case.channels.iter().chain(&case.pool).collect();
        let find = |id: ChannelId| {
            all.iter()
                .copied()
                .find(|c| c.channel_id == id)
                .ok_or("unknown channel")
        };
        let fits = |c: &RouteCandidate| {
            c.recipients_per_message
                .is_none_or(|l| case.recipients <= l)
        };
        let usable =
            |c: &RouteCandidate| fits(c) && c.status == Active && c.quota == QuotaState::Available;
        let covering: Vec<(&RouteCandidate, Tier)> = all
            .iter()
            .filter_map(|&c| Some((c, case.covering_tier(c)?)))
            .collect();
        let any_usable = covering.iter().any(|&(c, _)| usable(c));
        let primary = covering
            .iter()
            .filter(|(c, _)| fits(c))
            .map(|&(_, t)| t)
            .min();
        let hold_policy = case.policy.fallback_policy == FallbackPolicy::Hold;

        let oks: Vec<ChannelId> = decision
            .considered
            .iter()
            .filter(|c| c.verdict.is_ok())
            .map(|c| c.channel_id)
            .collect();
        let mut listed: Vec<ChannelId> = decision.considered.iter().map(|c| c.channel_id).collect();
        listed.sort();
        listed.dedup();
        ensure!(
            listed.len() == decision.considered.len(),
            "a candidate listed twice"
        );
        ensure!(
            decision.considered.is_sorted_by_key(|c| c.tier),
            "considered out of tier order"
        );

        if let Outcome::Send { channel, fell_back } = decision.outcome {
            ensure!(oks == [channel], "Send without exactly its channel Ok");
            let c = find(channel)?;
            let tier = case
                .covering_tier(c)
                .ok_or("sent via a non-covering channel")?;
            ensure!(usable(c), "sent via an unusable channel");
            let own = c.owner == ChannelOwner::User(id(1))
                && c.from_address.as_ref().map(EmailAddress::normalized)
                    == Some(case.from.normalized());
            let mailbox = c.scope == CredentialScope::Mailbox;
            ensure!(!mailbox || own, "a mailbox sent for another From or user");
            ensure!(fell_back == (Some(tier) != primary), "fell_back is wrong");
            ensure!(!(hold_policy && fell_back), "fell back under policy hold");
            let passed_over = covering.iter().any(|&(o, t)| t < tier && usable(o));
            ensure!(!passed_over, "a usable earlier tier was passed over");
            return Ok(if fell_back { "fell_back" } else { "send" });
        }
        ensure!(oks.is_empty(), "an Ok verdict without Send");
        let usable_primary = covering
            .iter()
            .any(|&(c, t)| Some(t) == primary && usable(c));
        ensure!(!usable_primary, "a usable primary channel was not chosen");
        ensure!(
            hold_policy || !any_usable,
            "policy fallback did not fall back"
        );
        // The resets worth waiting for: the primary tier's, or any tier's under fallback.
        let resets: Vec<DateTime<Utc>> = covering
            .iter()
            .filter(|&&(c, t)| {
                (!hold_policy || Some(t) == primary) && fits(c) && c.status == Active
            })
            .filter_map(|(c, _)| match c.quota {
                QuotaState::Exhausted { until, .. } => Some(until),
                QuotaState::Available => None,
            })
            .collect();
        match decision.outcome {
            Outcome::Defer {
                channel,
                until,
                limit,
            } => {
                let c = find(channel)?;
                let waits_for = case.covering_tier(c).is_some() && fits(c) && c.status == Active;
                ensure!(waits_for, "deferred for a channel that cannot carry it");
                ensure!(
                    c.quota == QuotaState::Exhausted { until, limit },
                    "not the channel's reset"
                );
                ensure!(
                    resets.iter().min() == Some(&until),
                    "not the earliest reset"
                );
                Ok("defer")
            }
            Outcome::Hold {
                channel: None,
                reason: HoldReason::DomainNotVerified(state),
            } => {
                ensure!(covering.is_empty(), "domain_not_verified but covered");
                ensure!(state == case.from_domain, "the wrong domain state");
                ensure!(
                    state != Some(ClaimState::Verified),
                    "domain_not_verified for a verified domain"
                );
                Ok("domain_not_verified")
            }
            Outcome::Hold { channel, reason } => {
                ensure!(
                    reason == HoldReason::ChannelUnavailable,
                    "wrong hold reason"
                );
                ensure!(resets.is_empty(), "held although a quota reset was due");
                let c = find(channel.ok_or("held without a channel")?)?;
                let primary_channel = case.covering_tier(c) == primary && fits(c);
                ensure!(
                    primary_channel,
                    "held for a channel outside the primary tier"
                );
                Ok("hold")
            }
            Outcome::Reject(reason) => {
                ensure!(primary.is_none(), "rejected although a channel fits");
                let limits = covering
                    .iter()
                    .filter_map(|(c, _)| c.recipients_per_message);
                match reason {
                    RejectReason::NoRoute => {
                        ensure!(covering.is_empty(), "no_route but covered");
                        ensure!(
                            case.from_domain == Some(ClaimState::Verified),
                            "no_route for an unverified domain"
                        );
                    }
                    RejectReason::TooManyRecipients { limit } => {
                        ensure!(limits.min() == Some(limit), "not the smallest limit")
                    }
                }
                Ok(reason.code())
            }
            Outcome::Send { .. } => unreachable!(),
        }
    }

    #[test]
    fn random_cases_keep_the_invariants() {
        let mut rng = StdRng::seed_from_u64(0x5717_c4b0);
        let mut seen = std::collections::HashMap::<&str, u32>::new();
        for n in 0..4000 {
            let case = Case::random(&mut rng);
            let request = case.request();
            let decision = route(&request, &case.channels, case.pool.as_ref());
            let again = route(&request, &case.channels, case.pool.as_ref());
            assert_eq!(decision, again, "case {n} is not deterministic");
            match check(&case, &decision) {
                Ok(kind) => *seen.entry(kind).or_default() += 1,
                Err(broken) => panic!("case {n}: {broken}\n{decision:#?}\n{case:#?}"),
            }
        }
        // A generator that never reaches an outcome proves nothing about it.
        let kinds = [
            "kill",
            "send",
            "fell_back",
            "defer",
            "hold",
            "no_route",
            "domain_not_verified",
        ];
        for kind in kinds.into_iter().chain(["too_many_recipients"]) {
            let count = seen.get(kind).copied().unwrap_or(0);
            assert!(count >= 20, "too few {kind}: {seen:?}");
        }
    }
}
