//! The events a tenant can subscribe to (webhooks) and the people who are told by email.
//! The names are part of the API contract: receivers switch on them.

use std::fmt;
use std::str::FromStr;

use super::DomainError;

/// Something that happened to a tenant's channels or mail that someone should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A channel's credential was refused (or its token revoked): its mail is held.
    ChannelNeedsReauth,
    /// A channel failed repeatedly with temporary or TLS errors: its mail is held or falls back.
    ChannelFailing,
    /// A channel that needed attention carries mail again.
    ChannelRecovered,
    /// A channel's credential was replaced.
    CredentialRotated,
    /// A message failed for good.
    MessageFailed,
    /// A message reached some of its recipients; the others were refused for good.
    MessagePartiallySent,
    /// A channel used 90 % of a sending limit.
    QuotaNearLimit,
    /// A claimed domain was proven (first time, or again after a lapse): mail for it flows.
    DomainVerified,
    /// A verified domain's proof was missing on several checks in a row: sending as it stops.
    DomainLapsed,
    /// A claim was not proven within its window.
    DomainFailed,
    /// A DNS health check of a verified domain (SPF, DKIM, DMARC, MX) that was `ok` now
    /// fails; the event carries every check. Once per change, not on every re-check.
    DomainDnsError,
    /// A recipient used a message's one-click unsubscribe link: the address is now on the
    /// tenant's suppression list.
    RecipientUnsubscribed,
    /// A channel was paused (bounces over the threshold, a provider's block, an admin): its
    /// mail is held until it resumes.
    ChannelPaused,
    /// A paused channel carries mail again (resumed by an admin, or its block ended).
    ChannelResumed,
}

impl EventType {
    pub const ALL: [EventType; 14] = [
        EventType::ChannelNeedsReauth,
        EventType::ChannelFailing,
        EventType::ChannelRecovered,
        EventType::CredentialRotated,
        EventType::MessageFailed,
        EventType::MessagePartiallySent,
        EventType::QuotaNearLimit,
        EventType::DomainVerified,
        EventType::DomainLapsed,
        EventType::DomainFailed,
        EventType::DomainDnsError,
        EventType::RecipientUnsubscribed,
        EventType::ChannelPaused,
        EventType::ChannelResumed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ChannelNeedsReauth => "channel.needs_reauth",
            EventType::ChannelFailing => "channel.failing",
            EventType::ChannelRecovered => "channel.recovered",
            EventType::CredentialRotated => "credential.rotated",
            EventType::MessageFailed => "message.failed",
            EventType::MessagePartiallySent => "message.partially_sent",
            EventType::QuotaNearLimit => "quota.near_limit",
            EventType::DomainVerified => "domain.verified",
            EventType::DomainLapsed => "domain.lapsed",
            EventType::DomainFailed => "domain.failed",
            EventType::DomainDnsError => "domain.dns_error",
            EventType::RecipientUnsubscribed => "recipient.unsubscribed",
            EventType::ChannelPaused => "channel.paused",
            EventType::ChannelResumed => "channel.resumed",
        }
    }

    /// Whether the channel's owner (the rep, or the team's admins) is also told by email.
    /// Per message and per quota events go to webhooks only: an inbox is not a log.
    pub fn emails_owner(self) -> bool {
        matches!(
            self,
            EventType::ChannelNeedsReauth
                | EventType::ChannelFailing
                | EventType::ChannelRecovered
                | EventType::ChannelPaused
                | EventType::ChannelResumed
        )
    }

    /// Whether the tenant's admins are told by email: a lapsed domain stops everyone's mail
    /// from it, so the people who can publish the record must hear at once; a paused channel
    /// waits for an admin to resume it.
    pub fn emails_admins(self) -> bool {
        matches!(self, EventType::DomainLapsed | EventType::ChannelPaused)
    }
}

impl FromStr for EventType {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                DomainError::new(format!(
                    "unknown event type `{s}`; use {}",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ))
            })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_list_the_valid_ones() {
        for event in EventType::ALL {
            assert_eq!(event.as_str().parse::<EventType>().unwrap(), event);
        }
        let err = "channel.exploded".parse::<EventType>().unwrap_err();
        assert!(
            err.reason.contains("channel.needs_reauth"),
            "{}",
            err.reason
        );
    }
}
