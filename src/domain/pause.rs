//! Why a channel is `paused`, and what ends it. A pause is deliberate: it protects the
//! mailbox's (and the domain's) reputation, so only a person resumes it, except a provider's
//! block with a known end, after which the channel resumes by itself.

use super::health::ReauthCause;

/// Why a channel is paused (its `status_cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseCause {
    /// Hard bounces crossed the tenant's threshold over the window.
    BounceRate,
    /// The provider's sending limit was reached (Exchange `ErrorExceededMessageLimit`,
    /// 5.1.90): it clears over a rolling 24 hours.
    SendLimitReached,
    /// The provider blocked the account as a suspected spammer (Exchange `5.1.8`): only the
    /// provider's admin releases it.
    SenderBlocked,
    /// An admin paused it.
    Manual,
}

impl PauseCause {
    pub const ALL: [PauseCause; 4] = [
        PauseCause::BounceRate,
        PauseCause::SendLimitReached,
        PauseCause::SenderBlocked,
        PauseCause::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PauseCause::BounceRate => "bounce_rate",
            PauseCause::SendLimitReached => "send_limit_reached",
            PauseCause::SenderBlocked => "sender_blocked",
            PauseCause::Manual => "manual",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The provider refusals that pause a channel instead of asking for a reconnect: the
    /// credential is fine, the mailbox may not send for a while.
    pub fn of_refusal(cause: ReauthCause) -> Option<Self> {
        match cause {
            ReauthCause::SendLimitReached => Some(PauseCause::SendLimitReached),
            ReauthCause::SenderBlocked => Some(PauseCause::SenderBlocked),
            _ => None,
        }
    }

    /// The provider blocks an SMTP server names in a refusal of the whole message: Exchange
    /// Online's outbound-spam block (`5.1.8`, "bad outbound sender") and its daily limit
    /// (`5.1.90`). Enhanced codes are matched whole (`5.1.8` is not `5.1.80`).
    pub fn of_smtp_reply(reply: &str) -> Option<Self> {
        let lower = reply.to_ascii_lowercase();
        let has_code = |code: &str| {
            lower
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .any(|token| token.trim_end_matches('.') == code)
        };
        if has_code("5.1.8") || lower.contains("bad outbound sender") {
            Some(PauseCause::SenderBlocked)
        } else if has_code("5.1.90") || lower.contains("daily message/recipient limit") {
            Some(PauseCause::SendLimitReached)
        } else {
            None
        }
    }

    /// How long a provider's block lasts when it has a known end: Exchange counts its limits
    /// over a rolling 24 hours (MICROSOFT.md), so a day after the refusal the mailbox may
    /// send again.
    pub fn block_lasts(self) -> Option<chrono::Duration> {
        match self {
            PauseCause::SendLimitReached => Some(chrono::Duration::hours(24)),
            _ => None,
        }
    }

    /// What the people told should know or do, in one sentence.
    pub fn advice(self) -> &'static str {
        match self {
            PauseCause::BounceRate => {
                "too many recipients were refused as unknown (hard bounces): clean the list (the bounced addresses are already suppressed), then an admin resumes the channel"
            }
            PauseCause::SendLimitReached => {
                "the mailbox reached the provider's sending limit: it resumes by itself when the 24-hour block ends, or an admin resumes it earlier"
            }
            PauseCause::SenderBlocked => {
                "Microsoft blocked this account from sending (5.1.8, suspected outbound spam): a Microsoft 365 admin must release it (Defender portal, Restricted entities); then an admin resumes the channel"
            }
            PauseCause::Manual => "an admin paused the channel; an admin resumes it",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_back_and_only_provider_blocks_pause() {
        for cause in PauseCause::ALL {
            assert_eq!(PauseCause::from_code(cause.as_str()), Some(cause));
        }
        assert_eq!(
            PauseCause::of_refusal(ReauthCause::SendLimitReached),
            Some(PauseCause::SendLimitReached)
        );
        assert_eq!(
            PauseCause::of_refusal(ReauthCause::SenderBlocked),
            Some(PauseCause::SenderBlocked)
        );
        assert_eq!(PauseCause::of_refusal(ReauthCause::TokenRevoked), None);
        assert_eq!(
            PauseCause::SendLimitReached.block_lasts(),
            Some(chrono::Duration::hours(24))
        );
        assert_eq!(PauseCause::SenderBlocked.block_lasts(), None);
    }

    #[test]
    fn exchanges_smtp_blocks_are_read_from_the_reply_and_nothing_else_is() {
        for (reply, cause) in [
            (
                "550 5.1.8 Access denied, bad outbound sender",
                Some(PauseCause::SenderBlocked),
            ),
            ("550 5.1.8 Access denied.", Some(PauseCause::SenderBlocked)),
            (
                "550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients",
                Some(PauseCause::SendLimitReached),
            ),
            ("550 5.1.80 something else", None),
            ("550 5.1.1 <a@b.test>: User unknown", None),
            ("554 5.7.1 Message rejected by policy", None),
        ] {
            assert_eq!(PauseCause::of_smtp_reply(reply), cause, "{reply}");
        }
    }
}
