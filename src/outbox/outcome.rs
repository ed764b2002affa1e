//! What an attempt's outcome means for a message, its recipients and its channel: the
//! classification of a failure (held, retried, failed), each recipient's own answer, and the
//! message's status once they are counted. Pure: the worker applies it, the store records it.

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use lettre::address::Envelope;

use super::retry::{RetryPolicy, retry_hint};
use crate::domain::health::{FailureKind, ReauthCause};
use crate::domain::pause::PauseCause;
use crate::domain::recipients::{RecipientStatus, Recipients, Verdict};
use crate::domain::{ChannelId, TenantId};
use crate::store::delivery::{ChannelEffect, Completion};
use crate::store::messages::MessageRecord;
use crate::transport::FailureClass;
use crate::transport::pool::SendFailure;
use crate::transport::transaction::Transaction;

pub(super) fn class_name(class: FailureClass) -> &'static str {
    match class {
        FailureClass::Auth => "auth",
        FailureClass::Tls => "tls",
        FailureClass::Network => "network",
        FailureClass::Temporary => "temporary",
        FailureClass::Permanent => "permanent",
        FailureClass::Protocol => "protocol",
    }
}

/// What is known about a failed attempt besides the failure.
#[derive(Debug, Clone)]
pub(super) struct FailureContext {
    pub(super) channel: ChannelId,
    pub(super) tenant: TenantId,
    pub(super) credential_version: Option<i64>,
    pub(super) is_shared_pool: bool,
    pub(super) attempts: u32,
    pub(super) accepted_at: DateTime<Utc>,
    pub(super) now: DateTime<Utc>,
}

/// The classification decides: a refused credential holds the message and marks the channel
/// (not the operator's shared relay, which tenants cannot fix: that is retried); a permanent
/// refusal fails it with the server's reply; anything else is retried with backoff until the
/// message is too old.
pub(super) fn after_failure(
    failure: &SendFailure,
    ctx: &FailureContext,
    retry: &RetryPolicy,
    rng: &mut impl rand::Rng,
) -> (Completion, Option<ChannelEffect>) {
    let error = match failure.code {
        Some(code) if !failure.message.contains(&code.to_string()) => {
            format!("{code} {}", failure.message)
        }
        _ => failure.message.clone(),
    };
    match failure.class {
        FailureClass::Auth if !ctx.is_shared_pool => {
            let cause = failure
                .auth_cause
                .and_then(ReauthCause::from_code)
                .unwrap_or_else(|| ReauthCause::from_reply(&error));
            // A provider's sending block says nothing against the credential: the channel is
            // paused, not sent to reconnect; the message is routed again (held or fallback).
            if let Some(pause) = PauseCause::of_refusal(cause) {
                return (
                    Completion::Deferred {
                        channel: Some(ctx.channel),
                        until: ctx.now.timestamp_micros(),
                        reason: "channel_paused",
                        error: Some(error.clone()),
                    },
                    Some(ChannelEffect::Paused {
                        tenant: ctx.tenant,
                        channel: ctx.channel,
                        cause: pause,
                        reply: error,
                    }),
                );
            }
            // Routed again at once, now that the channel needs a new credential: the tenant's
            // policy decides between holding it for this channel and a fallback. (A rotation
            // that raced the send finds it queued, not stranded in `held`.)
            (
                Completion::Deferred {
                    channel: Some(ctx.channel),
                    until: ctx.now.timestamp_micros(),
                    reason: "credential_refused",
                    error: Some(error.clone()),
                },
                Some(ChannelEffect::NeedsReauth {
                    tenant: ctx.tenant,
                    channel: ctx.channel,
                    credential_version: ctx.credential_version,
                    cause,
                    reply: error,
                }),
            )
        }
        // Exchange refused the whole message because it blocked the mailbox (5.1.8) or the
        // mailbox reached its daily limit (5.1.90): not this message's fault, so it is
        // routed again (held or fallback) while the channel is paused.
        FailureClass::Permanent
            if !ctx.is_shared_pool && PauseCause::of_smtp_reply(&error).is_some() =>
        {
            let cause = PauseCause::of_smtp_reply(&error).unwrap_or(PauseCause::SenderBlocked);
            (
                Completion::Deferred {
                    channel: Some(ctx.channel),
                    until: ctx.now.timestamp_micros(),
                    reason: "channel_paused",
                    error: Some(error.clone()),
                },
                Some(ChannelEffect::Paused {
                    tenant: ctx.tenant,
                    channel: ctx.channel,
                    cause,
                    reply: error,
                }),
            )
        }
        // The server answered and refused this message: the channel itself works.
        FailureClass::Permanent => (
            Completion::Failed {
                channel: Some(ctx.channel),
                reason: "rejected",
                error,
            },
            (!ctx.is_shared_pool).then_some(ChannelEffect::Used {
                channel: ctx.channel,
            }),
        ),
        _ => {
            // One more failure in the channel's run (the operator's relay is not a channel
            // a tenant can mend: its trouble is logged, not counted).
            let kind = match failure.class {
                FailureClass::Tls => Some(FailureKind::Tls),
                FailureClass::Network => Some(FailureKind::Network),
                FailureClass::Protocol => Some(FailureKind::Protocol),
                FailureClass::Temporary => Some(FailureKind::Temporary),
                FailureClass::Auth | FailureClass::Permanent => None,
            };
            let effect = kind
                .filter(|_| !ctx.is_shared_pool)
                .map(|kind| ChannelEffect::Failed {
                    tenant: ctx.tenant,
                    channel: ctx.channel,
                    kind,
                    error: error.clone(),
                });
            let hint = failure.retry_after.or_else(|| retry_hint(&failure.message));
            let delay = retry.delay(ctx.attempts, hint, rng);
            let until = ctx.now + chrono::Duration::from_std(delay).unwrap_or_default();
            let max_age = chrono::Duration::from_std(retry.max_age).unwrap_or_default();
            if until > ctx.accepted_at + max_age {
                (
                    Completion::Failed {
                        channel: Some(ctx.channel),
                        reason: "expired",
                        error: format!(
                            "still failing after {} attempts over the maximum age; last error: {error}",
                            ctx.attempts
                        ),
                    },
                    effect,
                )
            } else {
                (
                    Completion::Deferred {
                        channel: Some(ctx.channel),
                        until: until.timestamp_micros(),
                        reason: "temporary_failure",
                        error: Some(error),
                    },
                    effect,
                )
            }
        }
    }
}

/// The recipients' outcomes stored with a message (none yet when they never parted ways).
pub(super) fn stored_recipients(record: &MessageRecord) -> Recipients {
    match record
        .recipients
        .as_deref()
        .map(serde_json::from_str::<Recipients>)
    {
        Some(Ok(recipients)) => recipients,
        Some(Err(e)) => {
            // Sending to everyone again is the safe side of a damaged record: nobody misses
            // the mail, at worst someone gets it twice.
            tracing::error!(message_id = %record.id, error = %e, "stored recipient outcomes do not parse; trying every recipient");
            Recipients::default()
        }
        None => Recipients::default(),
    }
}

/// The envelope without the recipients already settled (borrowed as it is when nobody is:
/// every first attempt).
pub(super) fn remaining<'a>(
    envelope: &'a Envelope,
    settled: &HashSet<String>,
) -> Result<Cow<'a, Envelope>, String> {
    if settled.is_empty() {
        return Ok(Cow::Borrowed(envelope));
    }
    let to = envelope
        .to()
        .iter()
        .filter(|a| !settled.contains(&a.to_string().to_ascii_lowercase()))
        .cloned()
        .collect();
    Envelope::new(envelope.from().cloned(), to)
        .map(Cow::Owned)
        .map_err(|e| format!("envelope: {e}"))
}

/// How an attempt in which the server accepted nobody counts in the log and the metrics: as
/// a temporary refusal when someone may be taken later, else a permanent one; with the first
/// refusal's code and every refusal's reply.
pub(super) fn nobody_accepted(transaction: &Transaction) -> (&'static str, Option<u16>, String) {
    let refused = &transaction.recipients;
    let class = if refused.iter().any(|r| r.verdict == Verdict::Deferred) {
        "temporary"
    } else {
        "permanent"
    };
    let reply = refused
        .iter()
        .map(|r| format!("{}: {}", r.address, r.reply))
        .collect::<Vec<_>>()
        .join("; ");
    (class, refused.first().and_then(|r| r.code), reply)
}

/// One line per refused recipient, for `last_error` and webhooks.
fn refusals(recipients: &Recipients, status: RecipientStatus) -> String {
    recipients
        .states()
        .iter()
        .filter(|r| r.status == status)
        .map(|r| {
            let reply = r.reply.as_deref().unwrap_or("");
            match r.code {
                Some(code) if !reply.contains(&code.to_string()) => {
                    format!("{}: {code} {reply}", r.address)
                }
                _ => format!("{}: {reply}", r.address),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A transaction the server answered: each recipient keeps its own outcome. Those refused
/// for now wait for a retry of their own; the message is done once nobody waits, as `sent`,
/// `partially_sent` or `failed`. The channel worked either way.
pub(super) fn after_transaction(
    transaction: &Transaction,
    mut recipients: Recipients,
    attempted: &[String],
    ctx: &FailureContext,
    retry: &RetryPolicy,
    rng: &mut impl rand::Rng,
) -> (Completion, Option<ChannelEffect>, Option<Recipients>) {
    let effect = (!ctx.is_shared_pool).then_some(ChannelEffect::Used {
        channel: ctx.channel,
    });
    let reply = transaction.delivered.clone().unwrap_or_default();
    // The common case, on every message: everyone taken at once, nobody settled before. It
    // needs no state of its own (recorded in the grouped UPDATE of sent messages).
    let everyone_taken = transaction.delivered.is_some()
        && transaction
            .recipients
            .iter()
            .all(|r| r.verdict == Verdict::Accepted);
    if everyone_taken && recipients.is_empty() {
        return (
            Completion::Sent {
                channel: ctx.channel,
                reply,
            },
            effect,
            None,
        );
    }
    recipients.record(
        attempted,
        &transaction.recipients,
        transaction.delivered.as_deref(),
    );
    if !recipients.tally().is_final() {
        let waiting = refusals(&recipients, RecipientStatus::Deferred);
        let hint = transaction
            .recipients
            .iter()
            .filter(|r| r.verdict == Verdict::Deferred)
            .find_map(|r| retry_hint(&r.reply));
        let delay = retry.delay(ctx.attempts, hint, rng);
        let until = ctx.now + chrono::Duration::from_std(delay).unwrap_or_default();
        let max_age = chrono::Duration::from_std(retry.max_age).unwrap_or_default();
        if until <= ctx.accepted_at + max_age {
            return (
                Completion::Deferred {
                    channel: Some(ctx.channel),
                    until: until.timestamp_micros(),
                    reason: "recipients_deferred",
                    error: Some(waiting),
                },
                effect,
                Some(recipients),
            );
        }
        recipients.fail_waiting(
            attempted,
            None,
            &format!(
                "still refused for now after {} attempts over the maximum age; last reply: {waiting}",
                ctx.attempts
            ),
        );
    }
    (
        finished(&recipients, ctx.channel, reply),
        effect,
        Some(recipients),
    )
}

/// The final completion of a message nobody waits for any more.
fn finished(recipients: &Recipients, channel: ChannelId, reply: String) -> Completion {
    let tally = recipients.tally();
    let failed = refusals(recipients, RecipientStatus::Failed);
    if tally.sent == 0 {
        // Every recipient refused: the same outcome as a refusal of the whole message.
        Completion::Failed {
            channel: Some(channel),
            reason: "rejected",
            error: failed,
        }
    } else if tally.is_partial() {
        let reply = if reply.is_empty() {
            // Sent in an earlier attempt: that attempt's reply is in the log.
            "sent to the other recipients earlier".to_owned()
        } else {
            reply
        };
        Completion::PartiallySent {
            channel,
            reply,
            error: failed,
        }
    } else {
        Completion::Sent { channel, reply }
    }
}

/// A failure of the whole transaction, where recipients had parted ways before: a message
/// that fails for good now fails only for those still waiting, and one that reached some
/// recipients earlier is partially sent rather than failed.
pub(super) fn settle_failed_recipients(
    completion: Completion,
    mut recipients: Recipients,
    attempted: &[String],
    code: Option<u16>,
) -> (Completion, Option<Recipients>) {
    if recipients.is_empty() {
        return (completion, None);
    }
    match completion {
        Completion::Failed {
            channel,
            reason,
            error,
        } => {
            recipients.fail_waiting(attempted, code, &error);
            match channel {
                Some(channel) if recipients.tally().sent > 0 => (
                    finished(&recipients, channel, String::new()),
                    Some(recipients),
                ),
                _ => (
                    Completion::Failed {
                        channel,
                        reason,
                        error,
                    },
                    Some(recipients),
                ),
            }
        }
        other => (other, None),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::domain::recipients::RcptOutcome;

    fn rcpt(address: &str, verdict: Verdict, code: u16, reply: &str) -> RcptOutcome {
        RcptOutcome {
            address: address.into(),
            verdict,
            code: Some(code),
            reply: reply.into(),
        }
    }

    #[test]
    fn a_refused_and_a_deferred_recipient_part_ways_with_the_accepted_one() {
        let mut rng = StdRng::seed_from_u64(3);
        let retry = RetryPolicy::default();
        let attempted: Vec<String> = ["a@x.test", "b@x.test", "c@x.test"]
            .map(String::from)
            .to_vec();
        let first = Transaction {
            recipients: vec![
                rcpt("a@x.test", Verdict::Accepted, 250, "2.1.5 Ok"),
                rcpt("b@x.test", Verdict::Refused, 550, "5.1.1 no such user"),
                rcpt(
                    "c@x.test",
                    Verdict::Deferred,
                    451,
                    "4.2.0 try again in 120 seconds",
                ),
            ],
            delivered: Some("2.0.0 queued as 1".into()),
        };
        let c = ctx(1, Duration::ZERO, false);
        let (completion, effect, recipients) = after_transaction(
            &first,
            Recipients::default(),
            &attempted,
            &c,
            &retry,
            &mut rng,
        );
        let recipients = recipients.expect("recipients parted ways");
        match &completion {
            Completion::Deferred {
                reason: "recipients_deferred",
                until,
                error: Some(error),
                ..
            } => {
                assert!(
                    *until - c.now.timestamp_micros() >= 120_000_000,
                    "the hint is a floor"
                );
                assert!(error.contains("c@x.test: 451"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(effect, Some(ChannelEffect::Used { .. })));
        // The retry goes to c alone; once it is taken the message is partially sent.
        let envelope = Envelope::new(
            Some("rep@acme.test".parse().unwrap()),
            attempted.iter().map(|a| a.parse().unwrap()).collect(),
        )
        .unwrap();
        let retry_envelope = remaining(&envelope, &recipients.settled()).unwrap();
        let again: Vec<String> = retry_envelope
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(again, vec!["c@x.test".to_string()]);
        let second = Transaction {
            recipients: vec![rcpt("c@x.test", Verdict::Accepted, 250, "2.1.5 Ok")],
            delivered: Some("2.0.0 queued as 2".into()),
        };
        let (completion, _, recipients) = after_transaction(
            &second,
            recipients,
            &again,
            &ctx(2, Duration::ZERO, false),
            &retry,
            &mut rng,
        );
        match completion {
            Completion::PartiallySent { error, reply, .. } => {
                assert!(
                    error.contains("b@x.test: 550 5.1.1 no such user"),
                    "{error}"
                );
                assert_eq!(reply, "2.0.0 queued as 2");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(recipients.unwrap().tally().sent, 2);
    }

    #[test]
    fn everyone_refused_fails_and_a_clean_send_stores_nothing() {
        let mut rng = StdRng::seed_from_u64(3);
        let attempted = vec!["a@x.test".to_string()];
        let refused = Transaction {
            recipients: vec![rcpt("a@x.test", Verdict::Refused, 550, "5.1.1 unknown")],
            delivered: None,
        };
        let (completion, _, _) = after_transaction(
            &refused,
            Recipients::default(),
            &attempted,
            &ctx(1, Duration::ZERO, false),
            &RetryPolicy::default(),
            &mut rng,
        );
        assert!(matches!(
            completion,
            Completion::Failed {
                reason: "rejected",
                ..
            }
        ));
        let (completion, _, stored) = after_transaction(
            &Transaction {
                recipients: Vec::new(),
                delivered: Some("250 ok".into()),
            },
            Recipients::default(),
            &attempted,
            &ctx(1, Duration::ZERO, false),
            &RetryPolicy::default(),
            &mut rng,
        );
        assert!(matches!(completion, Completion::Sent { .. }));
        assert!(stored.is_none());
    }

    #[test]
    fn a_later_permanent_failure_keeps_the_earlier_recipients_sent() {
        let attempted = vec!["a@x.test".to_string(), "b@x.test".to_string()];
        let mut earlier = Recipients::default();
        earlier.record(
            &attempted,
            &[
                rcpt("a@x.test", Verdict::Accepted, 250, "ok"),
                rcpt("b@x.test", Verdict::Deferred, 451, "later"),
            ],
            Some("250 queued"),
        );
        let retry = vec!["b@x.test".to_string()];
        let (completion, stored) = settle_failed_recipients(
            Completion::Failed {
                channel: Some(ChannelId::generate()),
                reason: "rejected",
                error: "554 5.7.1 rejected".into(),
            },
            earlier,
            &retry,
            Some(554),
        );
        assert!(
            matches!(completion, Completion::PartiallySent { .. }),
            "{completion:?}"
        );
        assert!(stored.unwrap().tally().is_partial());
    }

    fn ctx(attempts: u32, age: Duration, shared: bool) -> FailureContext {
        let now = Utc::now();
        FailureContext {
            channel: ChannelId::generate(),
            tenant: TenantId::generate(),
            credential_version: Some(42),
            is_shared_pool: shared,
            attempts,
            accepted_at: now - chrono::Duration::from_std(age).unwrap(),
            now,
        }
    }

    fn failure(class: FailureClass, code: Option<u16>, message: &str) -> SendFailure {
        SendFailure::new(class, code, message)
    }

    #[test]
    fn a_refused_credential_routes_the_message_again_at_once_and_marks_the_channel() {
        let mut rng = StdRng::seed_from_u64(3);
        let c = ctx(1, Duration::ZERO, false);
        let (completion, effect) = after_failure(
            &failure(
                FailureClass::Auth,
                Some(535),
                "5.7.8 Authentication credentials invalid",
            ),
            &c,
            &RetryPolicy::default(),
            &mut rng,
        );
        assert!(
            matches!(completion, Completion::Deferred { channel: Some(ch), reason: "credential_refused", until, .. } if ch == c.channel && until == c.now.timestamp_micros())
        );
        match effect {
            Some(ChannelEffect::NeedsReauth {
                cause,
                credential_version,
                reply,
                ..
            }) => {
                assert_eq!(cause, ReauthCause::AuthRejected);
                assert_eq!(credential_version, Some(42));
                assert!(reply.starts_with("535 "), "{reply}");
            }
            other => panic!("{other:?}"),
        }
        let (_, effect) = after_failure(
            &failure(
                FailureClass::Auth,
                Some(535),
                "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant",
            ),
            &c,
            &RetryPolicy::default(),
            &mut rng,
        );
        assert!(matches!(
            effect,
            Some(ChannelEffect::NeedsReauth {
                cause: ReauthCause::BasicAuthDisabled,
                ..
            })
        ));
    }

    #[test]
    fn an_outbound_spam_block_pauses_the_channel_and_routes_the_message_again() {
        let mut rng = StdRng::seed_from_u64(3);
        let c = ctx(1, Duration::ZERO, false);
        let (completion, effect) = after_failure(
            &failure(
                FailureClass::Permanent,
                Some(550),
                "5.1.8 Access denied, bad outbound sender",
            ),
            &c,
            &RetryPolicy::default(),
            &mut rng,
        );
        assert!(
            matches!(completion, Completion::Deferred { reason: "channel_paused", until, .. } if until == c.now.timestamp_micros()),
            "{completion:?}"
        );
        assert!(matches!(
            effect,
            Some(ChannelEffect::Paused {
                cause: PauseCause::SenderBlocked,
                ..
            })
        ));
        // The operator's relay is never paused: the message fails as before.
        let (completion, effect) = after_failure(
            &failure(FailureClass::Permanent, Some(550), "5.1.8 Access denied"),
            &ctx(1, Duration::ZERO, true),
            &RetryPolicy::default(),
            &mut rng,
        );
        assert!(matches!(completion, Completion::Failed { .. }));
        assert!(effect.is_none());
    }

    #[test]
    fn the_shared_relay_refusing_us_is_retried_not_held() {
        let mut rng = StdRng::seed_from_u64(3);
        let (completion, effect) = after_failure(
            &failure(FailureClass::Auth, Some(535), "bad"),
            &ctx(1, Duration::ZERO, true),
            &RetryPolicy::default(),
            &mut rng,
        );
        assert!(matches!(completion, Completion::Deferred { .. }));
        assert!(effect.is_none());
    }

    #[test]
    fn permanent_fails_with_the_reply_and_temporary_retries_until_too_old() {
        let mut rng = StdRng::seed_from_u64(3);
        let retry = RetryPolicy::default();
        let (completion, _) = after_failure(
            &failure(FailureClass::Permanent, Some(550), "5.1.1 no such user"),
            &ctx(1, Duration::ZERO, false),
            &retry,
            &mut rng,
        );
        assert!(
            matches!(&completion, Completion::Failed { reason: "rejected", error, .. } if error == "550 5.1.1 no such user")
        );
        for class in [
            FailureClass::Temporary,
            FailureClass::Network,
            FailureClass::Tls,
            FailureClass::Protocol,
        ] {
            let c = ctx(2, Duration::from_secs(60), false);
            let (completion, _) = after_failure(
                &failure(class, Some(451), "try again in 300 seconds"),
                &c,
                &retry,
                &mut rng,
            );
            match completion {
                Completion::Deferred {
                    until,
                    reason: "temporary_failure",
                    ..
                } => {
                    let wait = until - c.now.timestamp_micros();
                    assert!(
                        wait >= 300_000_000,
                        "{class:?}: the server's hint is a floor ({wait} µs)"
                    );
                }
                other => panic!("{class:?}: {other:?}"),
            }
        }
        let (completion, _) = after_failure(
            &failure(FailureClass::Temporary, Some(451), "busy"),
            &ctx(40, retry.max_age, false),
            &retry,
            &mut rng,
        );
        assert!(matches!(
            completion,
            Completion::Failed {
                reason: "expired",
                ..
            }
        ));
    }
}
