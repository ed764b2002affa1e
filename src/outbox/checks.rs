//! Scheduled channel checks. A `failing` channel is tried again every probe interval, so it
//! recovers (and its held mail flows) as soon as its server does; an active channel nobody
//! used or verified for a day is logged into, so a dead credential is found before mail
//! needs it. Checks log in and stop there: they send nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::domain::health::{FailureKind, FailureRule, Observation, ReauthCause};
use crate::domain::{ChannelKind, ChannelStatus, SendChannel};
use crate::oauth::tokens::TokenError;
use crate::store::health::{self, DueCheck, Made};
use crate::store::{Store, channels};
use crate::transport::FailureClass;
use crate::transport::OutboundPolicy;
use crate::transport::tester::{TestSend, test_smtp};
use crate::vault::Vault;

use super::gmail::GmailSender;
use super::microsoft::MicrosoftSender;

/// Channels checked per pass at most.
const CHECKS_PER_PASS: i64 = 16;

/// What a check needs.
pub(super) struct Checker {
    pub store: Store,
    pub vault: Arc<Vault>,
    pub policy: OutboundPolicy,
    pub gmail: Option<Arc<GmailSender>>,
    pub microsoft: Option<Arc<MicrosoftSender>>,
    pub rule: FailureRule,
    pub probe_every: Duration,
    pub idle_after: Option<Duration>,
    /// When a provider's block ends.
    pub clock: crate::clock::Clock,
}

impl Checker {
    /// How often to look for due checks: often enough for the probe interval and the idle
    /// time, never busy.
    pub fn tick(&self) -> Duration {
        let shortest = self
            .idle_after
            .map_or(self.probe_every, |idle| idle.min(self.probe_every));
        (shortest / 2).clamp(Duration::from_millis(50), Duration::from_secs(30))
    }

    /// Resumes channels whose provider block ended, then claims the due checks and runs them
    /// side by side.
    pub async fn pass(self: &Arc<Self>) {
        let now = self.clock.now_micros();
        match self
            .store
            .run(move |c| crate::store::pauses::resume_ended_blocks(c, now))
            .await
        {
            Ok(resumed) => {
                for channel in resumed {
                    tracing::info!(channel_id = %channel, "the provider's block ended: channel resumed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "resuming channels whose block ended failed"),
        }
        let (probe, idle) = (self.probe_every, self.idle_after);
        let due = match self
            .store
            .run(move |c| health::claim_due_checks(c, probe, idle, CHECKS_PER_PASS))
            .await
        {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "looking for channels to check failed");
                return;
            }
        };
        let mut running = tokio::task::JoinSet::new();
        for check in due {
            let this = self.clone();
            running.spawn(async move { this.check(check).await });
        }
        while running.join_next().await.is_some() {}
    }

    async fn check(&self, due: DueCheck) {
        let DueCheck { tenant, channel } = due;
        let vault = self.vault.clone();
        let loaded = self
            .store
            .run(move |c| {
                let found = channels::get(c, tenant, channel)?;
                // Gmail channels are checked through their tokens, not a password.
                let secret = match found.spec.kind {
                    ChannelKind::Smtp => channels::credential(c, &vault, tenant, channel)?,
                    _ => None,
                };
                Ok((found, secret))
            })
            .await;
        let (found, secret) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::debug!(channel_id = %channel, error = %e, "channel to check is gone");
                return;
            }
        };
        // The status may have changed since the claim (a rotation, an admin).
        if !matches!(found.status, ChannelStatus::Active | ChannelStatus::Failing) {
            return;
        }
        let version = found.credential_updated_at.map(|t| t.timestamp_micros());
        let (observation, error) = match found.spec.kind {
            ChannelKind::Smtp => {
                let envelope = (found.status == ChannelStatus::Failing)
                    .then(|| probe_envelope(&found))
                    .flatten();
                smtp_verdict(&found, secret.as_ref(), &self.policy, envelope).await
            }
            ChannelKind::Gmail => match &self.gmail {
                Some(gmail) => token_verdict(gmail.tokens().check(tenant, found.id).await),
                None => return,
            },
            ChannelKind::Microsoft => match &self.microsoft {
                Some(microsoft) => token_verdict(microsoft.tokens().check(tenant, found.id).await),
                None => return,
            },
            ChannelKind::SharedPool => return,
        };
        let ok = observation == Observation::Success;
        let detail = json!({
            "scheduled": true,
            "status_was": found.status.as_str(),
            "ok": ok,
            "error": error,
        });
        let rule = self.rule;
        // A failing channel is probed often: only the probe that finds it working is worth a
        // line in the audit trail (the failure is recorded once, as `channel.failing`).
        let audited = ok || found.status != ChannelStatus::Failing;
        let result = self
            .store
            .run(move |c| {
                if audited {
                    health::record_check(c, tenant, channel, ok, detail)?;
                }
                health::observe(
                    c,
                    tenant,
                    channel,
                    Made::With(version),
                    observation,
                    error.as_deref(),
                    &rule,
                )
            })
            .await;
        match result {
            Ok(Some(transition)) => {
                tracing::info!(channel_id = %channel, ?transition, "a scheduled check changed the channel's status")
            }
            Ok(None) => tracing::debug!(channel_id = %channel, ok, "channel checked"),
            Err(e) => tracing::warn!(channel_id = %channel, error = %e, "recording a check failed"),
        }
    }
}

/// The envelope a failing channel is probed with: its own address (or no-reply@ its first
/// domain) to itself. Nothing is delivered: the probe resets after RCPT TO.
fn probe_envelope(channel: &SendChannel) -> Option<TestSend> {
    let from = channel.test_sender(None).ok()?;
    Some(TestSend {
        to: from.clone(),
        from,
        deliver: false,
    })
}

/// Logs in to the channel's server and, for a failing channel, offers an envelope (no
/// message), then reads the verdict. A permanent refusal still shows a server that works:
/// `failing` is about mail that cannot go out for now.
async fn smtp_verdict(
    channel: &SendChannel,
    secret: Option<&secrecy::SecretString>,
    policy: &OutboundPolicy,
    envelope: Option<TestSend>,
) -> (Observation, Option<String>) {
    let Some(settings) = &channel.spec.smtp else {
        return (Observation::Success, None);
    };
    let report = test_smtp(
        settings,
        secret,
        channel.spec.provider.as_deref(),
        policy,
        envelope,
    )
    .await;
    let failed = report.stages.iter().find(|s| !s.ok);
    let error = failed.map(|s| match s.code {
        Some(code) if !s.message.contains(&code.to_string()) => format!("{code} {}", s.message),
        _ => s.message.clone(),
    });
    let observation = match report.classification {
        None | Some(FailureClass::Permanent) => Observation::Success,
        Some(FailureClass::Auth) => Observation::Refused(ReauthCause::from_reply(
            error.as_deref().unwrap_or_default(),
        )),
        Some(FailureClass::Tls) => Observation::Failure(FailureKind::Tls),
        Some(FailureClass::Network) => Observation::Failure(FailureKind::Network),
        Some(FailureClass::Temporary) => Observation::Failure(FailureKind::Temporary),
        Some(FailureClass::Protocol) => Observation::Failure(FailureKind::Protocol),
    };
    (observation, error)
}

/// An OAuth channel (Gmail, Microsoft) is alive when its grant still yields an access token
/// (an idle channel's token has expired, so this asks the provider, which also keeps a
/// Microsoft grant from dying unused).
fn token_verdict(check: Result<(), TokenError>) -> (Observation, Option<String>) {
    match check {
        Ok(()) => (Observation::Success, None),
        Err(TokenError::NeedsReauth { cause, detail }) => (
            Observation::Refused(
                ReauthCause::from_code(cause).unwrap_or(ReauthCause::TokenRevoked),
            ),
            Some(detail),
        ),
        Err(TokenError::Unavailable(e)) => (Observation::Failure(FailureKind::Network), Some(e)),
    }
}
