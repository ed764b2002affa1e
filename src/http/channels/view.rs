//! How a channel looks in responses: never its secret, always its warnings.

use crate::domain::pacing::{MinGapSpec, WarmupSpec, WindowsSpec};
use crate::store::pacing::PacingStatus;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::channel_dns::ChannelDomainHealth;
use crate::domain::health::ReauthCause;
use crate::domain::pause::PauseCause;
use crate::domain::{ChannelId, ChannelKind, ChannelStatus, Domain, ReturnPath, SendChannel};
use crate::http::domain_health::HealthCheckView;

#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct Warning {
    code: &'static str,
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct SmtpView {
    host: String,
    port: u16,
    security: &'static str,
    auth: &'static str,
    username: Option<String>,
    accept_invalid_certs: bool,
    ca_pem: Option<String>,
    /// The server certificate trusted by its fingerprint, if any (`AB:CD:…`).
    pinned_sha256: Option<String>,
    connect_timeout_secs: u32,
    command_timeout_secs: u32,
    pool_size: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct HealthView {
    /// Failures in a row (temporary replies, TLS or network errors) since the last success.
    consecutive_failures: u32,
    last_error: Option<String>,
    last_error_at: Option<DateTime<Utc>>,
    status_changed_at: Option<DateTime<Utc>>,
    /// What to do about a `needs_reauth` or `failing` status.
    advice: Option<&'static str>,
    /// The DNS health of each verified domain the channel carries, as this channel sends it
    /// (SPF for its relay, return path, DKIM, DMARC, alignment). On `GET /v1/channels/{id}`
    /// and `POST /v1/channels/{id}/health`; absent from the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    domains: Option<Vec<ChannelDomainHealthView>>,
}

/// One domain's checks for a channel; `checked_at` is null until the first run.
#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct ChannelDomainHealthView {
    domain: String,
    checked_at: Option<DateTime<Utc>>,
    checks: Vec<HealthCheckView>,
}

impl ChannelDomainHealthView {
    pub(in crate::http) fn list(found: Vec<(Domain, Option<ChannelDomainHealth>)>) -> Vec<Self> {
        found
            .into_iter()
            .map(|(domain, health)| Self {
                domain: domain.to_string(),
                checked_at: health.as_ref().map(|h| h.checked_at),
                checks: health
                    .iter()
                    .flat_map(|h| h.checks.iter().map(HealthCheckView::from))
                    .collect(),
            })
            .collect()
    }
}

impl ChannelView {
    /// The view with its pacing now (today's count, cap, ramp, window).
    pub(in crate::http) fn with_pacing(mut self, pacing: PacingStatus) -> Self {
        self.pacing = Some(pacing);
        self
    }

    /// The view with its domains' DNS health.
    pub(in crate::http) fn with_domains(mut self, domains: Vec<ChannelDomainHealthView>) -> Self {
        self.health.domains = Some(domains);
        self
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct PauseView {
    /// `bounce_rate`, `send_limit_reached`, `sender_blocked` or `manual`.
    cause: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    /// The bounce figures (`sends`, `hard_bounces`, `rate_percent`, `threshold_percent`,
    /// `min_sends`, `window_days`) of a bounce pause.
    #[schema(value_type = Option<Object>)]
    figures: Option<serde_json::Value>,
    /// What the provider said, for a provider's block.
    reply: Option<String>,
    /// Who paused it: `system` or `user:{id}`.
    by: Option<String>,
}

impl PauseView {
    fn of(c: &SendChannel) -> Option<Self> {
        if c.status != ChannelStatus::Paused {
            return None;
        }
        let detail = c.health.pause_detail.clone().unwrap_or_default();
        Some(Self {
            cause: c.status_cause.clone(),
            since: c.health.status_changed_at,
            until: c.health.paused_until,
            figures: detail.get("figures").cloned(),
            reply: detail["reply"].as_str().map(str::to_owned),
            by: detail["by"].as_str().map(str::to_owned),
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(in crate::http) struct ChannelView {
    #[schema(value_type = String, format = Uuid)]
    id: ChannelId,
    name: String,
    kind: &'static str,
    /// `{"user": id}`, `{"team": id}` or `{"tenant": true}`.
    #[schema(value_type = Object)]
    owner: serde_json::Value,
    scope: &'static str,
    from_address: Option<String>,
    domains: Vec<String>,
    smtp: Option<SmtpView>,
    #[schema(value_type = Object)]
    limits: serde_json::Value,
    bcc_archive: Option<String>,
    reply_to: Option<String>,
    #[schema(value_type = Object)]
    return_path: serde_json::Value,
    provider: Option<String>,
    /// A connected mailbox's account kind, as its provider told us: `google_consumer`,
    /// `google_workspace`, `microsoft_365`, `outlook_com`. Its provider's limits bound the
    /// channel's `limits` (422 `limit_above_provider` above them).
    account: Option<String>,
    /// Whether Switchboard DKIM-signs what this channel sends, with the tenant's key for the
    /// From domain (when it has one): always for the shared pool, for a domain channel when
    /// its admin turned it on; never for mailbox and Gmail channels (their provider signs).
    dkim_sign: bool,
    /// The SPF include the relay needs, as the admin gave it (relays without a preset).
    spf_include: Option<String>,
    /// `microsoft` channels only: `graph` (Microsoft Graph sendMail, the default) or `smtp`
    /// (smtp.office365.com with AUTH XOAUTH2); absent for other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    transport: Option<&'static str>,
    status: &'static str,
    status_cause: Option<String>,
    /// Whether a password or API key is stored; the secret itself is never returned.
    has_credential: bool,
    credential_updated_at: Option<DateTime<Utc>>,
    last_verified_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    /// Why the status is what it is, in a sentence a person can act on (`needs_reauth`,
    /// `failing`), with the last error the server gave.
    health: HealthView,
    /// A paused channel's pause: its cause, when a provider's block ends (`until`, then it
    /// resumes by itself), and what paused it (`figures` of a bounce pause, the provider's
    /// `reply`, `by` whom). Absent unless the status is `paused`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pause: Option<PauseView>,
    warnings: Vec<Warning>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Today's count against the day's cap, the ramp and the window (docs/pacing.md). On
    /// `GET /v1/channels/{id}`; absent from the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pacing: Option<PacingStatus>,
}

impl From<SendChannel> for ChannelView {
    fn from(c: SendChannel) -> Self {
        let warnings = c
            .spec
            .smtp
            .as_ref()
            .map(|s| {
                s.warnings()
                    .into_iter()
                    .map(|(code, message)| Warning { code, message })
                    .collect()
            })
            .unwrap_or_default();
        let dkim_sign = c.spec.kind == ChannelKind::SharedPool || c.spec.signs_dkim();
        let pause = PauseView::of(&c);
        Self {
            id: c.id,
            name: c.spec.name.to_string(),
            kind: c.spec.kind.as_str(),
            owner: crate::store::channels::owner_json(c.spec.owner),
            scope: c.spec.scope.as_str(),
            from_address: c.spec.from_address.map(|a| a.to_string()),
            domains: c.spec.domains.iter().map(ToString::to_string).collect(),
            smtp: c.spec.smtp.map(|s| SmtpView {
                host: s.host.to_string(),
                port: s.port,
                security: s.security.as_str(),
                auth: s.auth.as_str(),
                username: s.username,
                accept_invalid_certs: s.accept_invalid_certs,
                ca_pem: s.ca_pem,
                pinned_sha256: s.pinned_sha256.map(|f| f.to_string()),
                connect_timeout_secs: s.connect_timeout_secs,
                command_timeout_secs: s.command_timeout_secs,
                pool_size: s.pool_size,
            }),
            limits: serde_json::json!({
                "per_minute": c.spec.limits.per_minute,
                "per_day_recipients": c.spec.limits.per_day_recipients,
                "recipients_per_message": c.spec.limits.recipients_per_message,
                "per_day_messages": c.spec.limits.per_day_messages,
                "windows": c.spec.limits.windows.as_ref().map(WindowsSpec::from),
                "warmup": c.spec.limits.warmup.as_ref().map(WarmupSpec::from),
                "min_gap": c.spec.limits.min_gap.as_ref().map(MinGapSpec::from),
            }),
            bcc_archive: c.spec.bcc_archive.map(|a| a.to_string()),
            reply_to: c.spec.reply_to.map(|a| a.to_string()),
            return_path: match c.spec.return_path {
                ReturnPath::No => serde_json::json!({ "mode": "no" }),
                ReturnPath::Yes => serde_json::json!({ "mode": "yes" }),
                ReturnPath::Specified(a) => {
                    serde_json::json!({ "mode": "specified", "address": a.to_string() })
                }
            },
            dkim_sign,
            spf_include: c.spec.spf_include,
            transport: (c.spec.kind == ChannelKind::Microsoft)
                .then(|| c.spec.microsoft_transport.as_str()),
            provider: c.spec.provider,
            account: c.spec.account.map(|a| a.as_str().to_owned()),
            status: c.status.as_str(),
            status_cause: c.status_cause.clone(),
            // The shared pool's credential is the operator's configuration, not a stored secret.
            has_credential: c.credential_updated_at.is_some()
                || c.spec.kind == ChannelKind::SharedPool,
            credential_updated_at: c.credential_updated_at,
            last_verified_at: c.last_verified_at,
            last_used_at: c.last_used_at,
            health: HealthView {
                consecutive_failures: c.health.failures,
                last_error: c.health.last_error,
                last_error_at: c.health.last_error_at,
                status_changed_at: c.health.status_changed_at,
                advice: advice(c.status, c.status_cause.as_deref()),
                domains: None,
            },
            pause,
            warnings,
            created_at: c.created_at,
            updated_at: c.updated_at,
            pacing: None,
        }
    }
}

/// The one sentence that tells the owner what to do, by status and cause (the API's
/// `health.advice`, and the channel pages).
pub(in crate::http) fn advice(status: ChannelStatus, cause: Option<&str>) -> Option<&'static str> {
    match status {
        ChannelStatus::Active => None,
        ChannelStatus::NeedsReauth => Some(
            cause
                .and_then(ReauthCause::from_code)
                .map_or("the credential must be replaced or the mailbox reconnected; mail for this channel is held", ReauthCause::advice),
        ),
        ChannelStatus::Failing => Some(
            "the server keeps failing (see last_error); mail waits or goes through a fallback channel, and the channel is checked again regularly (SWITCHBOARD_HEALTH_PROBE_INTERVAL) until it works",
        ),
        ChannelStatus::Disabled => Some("an admin disabled this channel; enable it to send again"),
        ChannelStatus::Paused => Some(cause.and_then(PauseCause::from_code).map_or(
            "the channel is paused; mail for it is held until an admin resumes it",
            PauseCause::advice,
        )),
    }
}
