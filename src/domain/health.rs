//! The health of a channel: what one send or check says about it, and when that changes its
//! status. Pure rules, so the outbox, the scheduled checks and the tests share them.
//!
//! - `active` → `needs_reauth` when the server refuses the credential (with the cause).
//! - `active` → `failing` after `threshold` failures in a row (temporary replies, TLS or
//!   network errors) that all fall within `window`; a success in between starts over.
//! - `failing` → `active` on the first success (a scheduled check or a send).
//! - `needs_reauth` is left only by a new credential, a reconnect or an admin; `disabled`
//!   only by an admin. Neither is changed by what a send observes.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::ChannelStatus;

/// When failures make a channel `failing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRule {
    /// Failures in a row that make an active channel failing.
    pub threshold: u32,
    /// The run of failures must fall within this long.
    pub window: Duration,
}

impl Default for FailureRule {
    fn default() -> Self {
        Self {
            threshold: 5,
            window: Duration::from_secs(10 * 60),
        }
    }
}

/// Why a server refused a credential, as people need to act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReauthCause {
    /// The password (or key) is wrong: it was changed, or revoked.
    AuthRejected,
    /// The OAuth grant was revoked or expired: the owner must reconnect.
    TokenRevoked,
    /// The provider turned off password logins for this mailbox or tenant (Microsoft 365).
    BasicAuthDisabled,
    /// The provider wants an app password, not the account password (Gmail, Yahoo with
    /// two-step verification).
    AppPasswordRequired,
    /// The channel has no OAuth grant (never connected, or disconnected).
    NotConnected,
    /// Microsoft revoked the grant: an admin reset the password or revoked the sessions
    /// (AADSTS50173).
    PasswordChanged,
    /// The grant expired, usually unused for 90 days (AADSTS700082, AADSTS70008).
    TokenExpired,
    /// The account must sign in again with multi-factor authentication (AADSTS50076, 50079,
    /// 50078).
    MfaRequired,
    /// A sign-in frequency policy wants a fresh sign-in (AADSTS70043).
    SignInFrequency,
    /// The consent to send mail was revoked (AADSTS65001).
    ConsentRevoked,
    /// Only the account's Microsoft administrator can let it through: Conditional Access,
    /// security defaults or admin approval of the app (AADSTS53003, 530035, 90094).
    AdminActionRequired,
    /// Exchange refuses to let the account send as its address (`ErrorSendAsDenied`).
    SendAsDenied,
    /// Exchange refuses access to the mailbox (`ErrorAccessDenied`).
    MailboxAccessDenied,
    /// The mailbox cannot be used through Microsoft Graph (`MailboxNotEnabledForRESTAPI`:
    /// unlicensed, inactive, soft-deleted or on-premises).
    MailboxNotEnabled,
    /// Exchange Online blocked the account from sending (`5.1.8`, outbound spam). Pauses the
    /// channel (`pause::PauseCause::of_refusal`): the credential is fine.
    SenderBlocked,
    /// The mailbox reached its sending limit (`ErrorExceededMessageLimit`). Pauses the
    /// channel for a day, likewise.
    SendLimitReached,
    /// A Microsoft channel sending over SMTP with XOAUTH2 met a tenant or mailbox that has
    /// SMTP AUTH switched off (`535 5.7.139`): Graph still works, the grant is fine.
    SmtpAuthDisabled,
}

impl ReauthCause {
    pub fn as_str(self) -> &'static str {
        match self {
            ReauthCause::AuthRejected => "auth_rejected",
            ReauthCause::TokenRevoked => "token_revoked",
            ReauthCause::BasicAuthDisabled => "basic_auth_disabled",
            ReauthCause::AppPasswordRequired => "app_password_required",
            ReauthCause::NotConnected => "not_connected",
            ReauthCause::PasswordChanged => "password_changed",
            ReauthCause::TokenExpired => "token_expired",
            ReauthCause::MfaRequired => "mfa_required",
            ReauthCause::SignInFrequency => "sign_in_frequency",
            ReauthCause::ConsentRevoked => "consent_revoked",
            ReauthCause::AdminActionRequired => "admin_action_required",
            ReauthCause::SendAsDenied => "send_as_denied",
            ReauthCause::MailboxAccessDenied => "mailbox_access_denied",
            ReauthCause::MailboxNotEnabled => "mailbox_not_enabled",
            ReauthCause::SenderBlocked => "sender_blocked",
            ReauthCause::SendLimitReached => "send_limit_reached",
            ReauthCause::SmtpAuthDisabled => "smtp_auth_disabled",
        }
    }

    /// The cause named by its code (`token_revoked`, …), as stored in `status_cause`.
    pub fn from_code(code: &str) -> Option<Self> {
        [
            ReauthCause::AuthRejected,
            ReauthCause::TokenRevoked,
            ReauthCause::BasicAuthDisabled,
            ReauthCause::AppPasswordRequired,
            ReauthCause::NotConnected,
            ReauthCause::PasswordChanged,
            ReauthCause::TokenExpired,
            ReauthCause::MfaRequired,
            ReauthCause::SignInFrequency,
            ReauthCause::ConsentRevoked,
            ReauthCause::AdminActionRequired,
            ReauthCause::SendAsDenied,
            ReauthCause::MailboxAccessDenied,
            ReauthCause::MailboxNotEnabled,
            ReauthCause::SenderBlocked,
            ReauthCause::SendLimitReached,
            ReauthCause::SmtpAuthDisabled,
        ]
        .into_iter()
        .find(|c| c.as_str() == code || (code == "disconnected" && *c == ReauthCause::NotConnected))
    }

    /// Reads the cause from a server's refusal of a login.
    pub fn from_reply(reply: &str) -> Self {
        let lower = reply.to_ascii_lowercase();
        if reply.contains("5.7.139")
            || reply.contains("5.7.30")
            || lower.contains("basic authentication is not supported")
            || lower.contains("basic authentication is disabled")
            || lower.contains("smtpclientauthentication is disabled")
        {
            ReauthCause::BasicAuthDisabled
        } else if reply.contains("5.7.9")
            || lower.contains("application-specific password")
            || lower.contains("app password")
        {
            ReauthCause::AppPasswordRequired
        } else {
            ReauthCause::AuthRejected
        }
    }

    /// What the owner should do, in one sentence.
    pub fn advice(self) -> &'static str {
        match self {
            ReauthCause::AuthRejected => {
                "the server refused the password: enter the new one (rotate the credential)"
            }
            ReauthCause::TokenRevoked => {
                "access to the mailbox was revoked or expired: connect the mailbox again"
            }
            ReauthCause::BasicAuthDisabled => {
                "the provider turned off password logins (SMTP AUTH) for this mailbox: connect it with Connect Microsoft instead (no password, sending through Microsoft Graph); or a Microsoft 365 administrator enables SMTP AUTH for it, then rotate the credential (the same password works) so Switchboard checks it again"
            }
            ReauthCause::AppPasswordRequired => {
                "the provider wants an app password: create one in the account's security settings and enter it instead of the account password"
            }
            ReauthCause::NotConnected => "the mailbox is not connected: connect it again",
            ReauthCause::PasswordChanged => {
                "Microsoft revoked Switchboard's access (the password was reset or the sessions were revoked): connect the mailbox again"
            }
            ReauthCause::TokenExpired => {
                "Microsoft's grant expired (unused for too long): connect the mailbox again"
            }
            ReauthCause::MfaRequired => {
                "Microsoft wants the account to sign in again with multi-factor authentication: connect the mailbox again"
            }
            ReauthCause::SignInFrequency => {
                "the organisation's sign-in frequency policy wants a fresh sign-in: connect the mailbox again"
            }
            ReauthCause::ConsentRevoked => {
                "the permission to send mail was withdrawn: connect the mailbox again and allow sending (if Microsoft says \"Need admin approval\", ask your Microsoft admin)"
            }
            ReauthCause::AdminActionRequired => {
                "ask your Microsoft admin: the organisation's policy (Conditional Access, security defaults or app approval) blocks Switchboard; once the admin has approved it (admin-consent link), connect the mailbox again"
            }
            ReauthCause::SendAsDenied => {
                "Exchange does not let this account send as its address (ErrorSendAsDenied): ask your Microsoft admin to grant Send As, then connect the mailbox again"
            }
            ReauthCause::MailboxAccessDenied => {
                "Exchange refused access to the mailbox (ErrorAccessDenied): ask your Microsoft admin to check the mailbox and its application access policy, then connect the mailbox again"
            }
            ReauthCause::MailboxNotEnabled => {
                "this mailbox cannot send through Microsoft Graph (it is unlicensed, inactive, or hosted on-premises): use a licensed Exchange Online mailbox, or an SMTP channel"
            }
            ReauthCause::SenderBlocked => {
                "Microsoft blocked this account from sending (5.1.8, suspected outbound spam): a Microsoft 365 admin must release it (Defender portal, Restricted entities); then an admin resumes the channel"
            }
            ReauthCause::SendLimitReached => {
                "the mailbox reached Microsoft's sending limit: the channel is paused and resumes by itself once the limit has cleared (Exchange counts a rolling 24 hours)"
            }
            ReauthCause::SmtpAuthDisabled => {
                "the Microsoft 365 tenant (or this mailbox) has SMTP AUTH switched off (535 5.7.139, e.g. under Security Defaults): switch the channel's transport back to Microsoft Graph (transport \"graph\"), which needs no SMTP AUTH; or a Microsoft 365 admin enables authenticated SMTP for the mailbox"
            }
        }
    }
}

/// The kind of failure that counts toward `failing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Temporary,
    Tls,
    Network,
    Protocol,
}

impl FailureKind {
    /// The `status_cause` of a channel failing with this kind of error last.
    pub fn failing_cause(self) -> &'static str {
        match self {
            FailureKind::Temporary => "temporary_failures",
            FailureKind::Tls => "tls_errors",
            FailureKind::Network => "network_errors",
            FailureKind::Protocol => "protocol_errors",
        }
    }
}

/// The health-relevant state of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    pub status: ChannelStatus,
    pub cause: Option<String>,
    /// Failures in the current run.
    pub failures: u32,
    /// When the current run began.
    pub first_failure_at: Option<DateTime<Utc>>,
}

/// What one send or check showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The server took the login (and the message, if there was one).
    Success,
    /// A failure that says the channel cannot carry mail right now.
    Failure(FailureKind),
    /// The server refused the credential.
    Refused(ReauthCause),
}

/// A change of status worth recording and telling people about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Failing(FailureKind),
    NeedsReauth(ReauthCause),
    /// Back to active from `failing`.
    Recovered,
}

/// The state after an observation, and the transition it caused, if any.
pub fn observe(
    state: &HealthState,
    observation: Observation,
    at: DateTime<Utc>,
    rule: &FailureRule,
) -> (HealthState, Option<Transition>) {
    let mut next = state.clone();
    let transition = match observation {
        Observation::Success => {
            next.failures = 0;
            next.first_failure_at = None;
            (state.status == ChannelStatus::Failing).then(|| {
                next.status = ChannelStatus::Active;
                next.cause = None;
                Transition::Recovered
            })
        }
        Observation::Failure(kind) => {
            let window = chrono::Duration::from_std(rule.window).unwrap_or(chrono::Duration::MAX);
            match state.first_failure_at {
                Some(first) if state.failures > 0 && at - first <= window => {
                    next.failures = state.failures.saturating_add(1);
                }
                _ => {
                    next.failures = 1;
                    next.first_failure_at = Some(at);
                }
            }
            if state.status == ChannelStatus::Failing {
                // Still failing; the cause follows the latest error.
                next.cause = Some(kind.failing_cause().to_owned());
                None
            } else if state.status == ChannelStatus::Active && next.failures >= rule.threshold {
                next.status = ChannelStatus::Failing;
                next.cause = Some(kind.failing_cause().to_owned());
                Some(Transition::Failing(kind))
            } else {
                None
            }
        }
        Observation::Refused(cause) => match state.status {
            ChannelStatus::Active | ChannelStatus::Failing => {
                next.status = ChannelStatus::NeedsReauth;
                next.cause = Some(cause.as_str().to_owned());
                next.failures = 0;
                next.first_failure_at = None;
                Some(Transition::NeedsReauth(cause))
            }
            // A paused channel stays paused: only a resume (or its block's end) ends a pause.
            ChannelStatus::NeedsReauth | ChannelStatus::Disabled | ChannelStatus::Paused => None,
        },
    };
    (next, transition)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> HealthState {
        HealthState {
            status: ChannelStatus::Active,
            cause: None,
            failures: 0,
            first_failure_at: None,
        }
    }

    fn rule(threshold: u32, window_secs: u64) -> FailureRule {
        FailureRule {
            threshold,
            window: Duration::from_secs(window_secs),
        }
    }

    fn run(
        mut state: HealthState,
        steps: &[(Observation, i64)],
        rule: &FailureRule,
    ) -> (HealthState, Vec<Transition>) {
        let start = Utc::now();
        let mut seen = Vec::new();
        for &(o, secs) in steps {
            let (next, t) = observe(&state, o, start + chrono::Duration::seconds(secs), rule);
            state = next;
            seen.extend(t);
        }
        (state, seen)
    }

    const TEMP: Observation = Observation::Failure(FailureKind::Temporary);
    const TLS: Observation = Observation::Failure(FailureKind::Tls);

    #[test]
    fn threshold_failures_in_a_row_within_the_window_make_it_failing_once() {
        let r = rule(3, 60);
        let (state, seen) = run(
            active(),
            &[(TEMP, 0), (TEMP, 10), (TLS, 20), (TEMP, 30)],
            &r,
        );
        assert_eq!(seen, vec![Transition::Failing(FailureKind::Tls)]);
        assert_eq!(state.status, ChannelStatus::Failing);
        assert_eq!(state.cause.as_deref(), Some("temporary_failures"));
        assert_eq!(state.failures, 4);
    }

    #[test]
    fn a_success_in_between_starts_the_count_over() {
        let r = rule(3, 60);
        let steps = [
            (TEMP, 0),
            (TEMP, 1),
            (Observation::Success, 2),
            (TEMP, 3),
            (TEMP, 4),
        ];
        let (state, seen) = run(active(), &steps, &r);
        assert!(seen.is_empty());
        assert_eq!((state.status, state.failures), (ChannelStatus::Active, 2));
    }

    #[test]
    fn failures_spread_wider_than_the_window_do_not_add_up() {
        let r = rule(3, 60);
        let (state, seen) = run(
            active(),
            &[(TEMP, 0), (TEMP, 50), (TEMP, 61), (TEMP, 100)],
            &r,
        );
        assert!(seen.is_empty(), "{seen:?}");
        assert_eq!(state.failures, 2, "a new run began at 61 s");
        let (_, seen) = run(state, &[(TEMP, 110)], &r);
        assert_eq!(seen, vec![Transition::Failing(FailureKind::Temporary)]);
    }

    #[test]
    fn a_failing_channel_recovers_on_the_first_success() {
        let r = rule(2, 60);
        let (state, seen) = run(
            active(),
            &[(TEMP, 0), (TEMP, 1), (TEMP, 2), (Observation::Success, 3)],
            &r,
        );
        assert_eq!(
            seen,
            vec![
                Transition::Failing(FailureKind::Temporary),
                Transition::Recovered
            ]
        );
        assert_eq!(state, active());
    }

    #[test]
    fn a_refused_credential_needs_reauth_from_active_or_failing_and_nothing_else_leaves_it() {
        let r = rule(2, 60);
        let refused = Observation::Refused(ReauthCause::BasicAuthDisabled);
        let (state, seen) = run(active(), &[(TEMP, 0), (TEMP, 1), (refused, 2)], &r);
        assert_eq!(
            seen,
            vec![
                Transition::Failing(FailureKind::Temporary),
                Transition::NeedsReauth(ReauthCause::BasicAuthDisabled)
            ]
        );
        assert_eq!(state.cause.as_deref(), Some("basic_auth_disabled"));
        // A late success from a send in flight, failures, another refusal: still needs_reauth.
        let (after, seen) = run(
            state.clone(),
            &[
                (Observation::Success, 3),
                (TEMP, 4),
                (TEMP, 5),
                (refused, 6),
            ],
            &r,
        );
        assert!(seen.is_empty(), "{seen:?}");
        assert_eq!(after.status, ChannelStatus::NeedsReauth);
    }

    #[test]
    fn a_disabled_channel_stays_disabled() {
        let disabled = HealthState {
            status: ChannelStatus::Disabled,
            ..active()
        };
        let r = rule(1, 60);
        let (state, seen) = run(
            disabled,
            &[
                (TEMP, 0),
                (Observation::Refused(ReauthCause::AuthRejected), 1),
                (Observation::Success, 2),
            ],
            &r,
        );
        assert!(seen.is_empty());
        assert_eq!(state.status, ChannelStatus::Disabled);
    }

    #[test]
    fn causes_are_read_from_provider_replies() {
        let cases = [
            (
                "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
                ReauthCause::BasicAuthDisabled,
            ),
            (
                "535 5.7.30 Basic authentication is not supported for Client Submission.",
                ReauthCause::BasicAuthDisabled,
            ),
            (
                "534-5.7.9 Application-specific password required. Learn more at https://support.google.com/mail/?p=InvalidSecondFactor",
                ReauthCause::AppPasswordRequired,
            ),
            (
                "535 5.7.8 Username and Password not accepted",
                ReauthCause::AuthRejected,
            ),
        ];
        for (reply, cause) in cases {
            assert_eq!(ReauthCause::from_reply(reply), cause, "{reply}");
        }
    }
}
