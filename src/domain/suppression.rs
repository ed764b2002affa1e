//! Recipients a tenant no longer mails (its suppression list), and the RFC 8058 one-click
//! unsubscribe headers that let a recipient put themself on it.

use std::fmt;
use std::str::FromStr;

use super::DomainError;
use super::message::{DraftError, HeaderName, HeaderValue, MessageDraft};

/// Why an address is on a tenant's suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuppressionReason {
    /// The recipient used a one-click unsubscribe link (or the tenant imported an opt-out).
    Unsubscribed,
    /// The address does not exist: mail to it bounced for good.
    HardBounce,
    /// Added by an admin.
    Manual,
}

impl SuppressionReason {
    pub const ALL: [SuppressionReason; 3] = [
        SuppressionReason::Unsubscribed,
        SuppressionReason::HardBounce,
        SuppressionReason::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Unsubscribed => "unsubscribed",
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Manual => "manual",
        }
    }
}

impl FromStr for SuppressionReason {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, DomainError> {
        SuppressionReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                DomainError::new(format!(
                    "unknown reason `{}`; use manual, unsubscribed or hard_bounce",
                    super::email::shown(s)
                ))
            })
    }
}

impl fmt::Display for SuppressionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The header that carries the unsubscribe link (RFC 2369).
pub const LIST_UNSUBSCRIBE: &str = "List-Unsubscribe";
/// The header that says the link works with one POST (RFC 8058).
pub const LIST_UNSUBSCRIBE_POST: &str = "List-Unsubscribe-Post";
/// The only value RFC 8058 defines for it, and the body a receiver POSTs.
pub const ONE_CLICK: &str = "List-Unsubscribe=One-Click";
/// The path under the public URL where a link's token is answered.
pub const UNSUBSCRIBE_PATH: &str = "/unsubscribe/";

/// The stable code of a message that asks for unsubscribe headers but has several
/// recipients.
pub const NEEDS_ONE_RECIPIENT: &str = "unsubscribe_needs_one_recipient";

/// Whether `name` is one of the two headers Switchboard sets for one-click unsubscribe.
pub fn is_unsubscribe_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(LIST_UNSUBSCRIBE) || name.eq_ignore_ascii_case(LIST_UNSUBSCRIBE_POST)
}

/// The link a message's List-Unsubscribe names: `{public_url}/unsubscribe/{token}`.
pub fn unsubscribe_url(public_url: &str, token: &str) -> String {
    format!(
        "{}{UNSUBSCRIBE_PATH}{token}",
        public_url.trim_end_matches('/')
    )
}

/// The RFC 8058 pair for `url`, in the order they go on the wire.
pub fn one_click_headers(url: &str) -> Result<[(HeaderName, HeaderValue); 2], DomainError> {
    Ok([
        (
            HeaderName::parse(LIST_UNSUBSCRIBE)?,
            HeaderValue::parse(&format!("<{url}>"))?,
        ),
        (
            HeaderName::parse(LIST_UNSUBSCRIBE_POST)?,
            HeaderValue::parse(ONE_CLICK)?,
        ),
    ])
}

/// A message that asks for unsubscribe headers: the one recipient the link unsubscribes
/// (a link names one person), and no List-Unsubscribe of the caller's own beside ours.
/// `by_default` says the tenant's default asked, not the message, for the wording.
pub fn one_click_recipient(
    draft: &MessageDraft,
    by_default: bool,
) -> Result<super::EmailAddress, DraftError> {
    if let Some((name, _)) = draft
        .headers
        .iter()
        .find(|(name, _)| is_unsubscribe_header(name.as_str()))
    {
        return Err(DraftError {
            field: format!("headers.{name}"),
            code: DraftError::HEADER_NOT_ALLOWED,
            reason: format!(
                "{name} is set by Switchboard when a message asks for unsubscribe headers{}; \
                 leave it out, or send \"unsubscribe\": false to set your own",
                if by_default {
                    " (this tenant asks for them by default: unsubscribe_by_default)"
                } else {
                    ""
                }
            ),
        });
    }
    let recipients = draft.envelope_recipients();
    match recipients.as_slice() {
        [only] => Ok((*only).clone()),
        many => Err(DraftError {
            field: "to".into(),
            code: NEEDS_ONE_RECIPIENT,
            reason: format!(
                "an unsubscribe link unsubscribes one person, and this message has {} \
                 recipients across `to`, `cc` and `bcc`{}: send one message per recipient{}",
                many.len(),
                if by_default {
                    " (this tenant adds unsubscribe headers by default: unsubscribe_by_default)"
                } else {
                    ""
                },
                if by_default {
                    ", or say \"unsubscribe\": false for a one-to-one conversation"
                } else {
                    ""
                }
            ),
        }),
    }
}

/// Whether a server's permanent refusal of one recipient says the address cannot receive
/// mail at all (a hard bounce), so that the tenant stops mailing it. Read from the enhanced
/// status code (RFC 3463) where the server gives one: the 5.1.x subjects about the
/// *destination* address (no such mailbox, no such domain, bad syntax, moved, null MX). The
/// sender-side ones (5.1.7, 5.1.8, Microsoft's 5.1.90 daily limit) and every policy or
/// content refusal (5.7.x, 5.2.x) are not the recipient's fault and suppress nobody. Without
/// an enhanced code, only the wording servers use for a missing user counts.
pub fn is_hard_bounce(code: Option<u16>, reply: &str) -> bool {
    if !code.is_some_and(|c| (500..600).contains(&c)) {
        return false;
    }
    let text = reply.trim_start();
    // Some servers repeat the basic code before the enhanced one ("550 5.1.1 …").
    let text = match text.split_once([' ', '-']) {
        Some((first, rest)) if first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit()) => {
            rest.trim_start()
        }
        _ => text,
    };
    let first = text.split_whitespace().next().unwrap_or("");
    let mut parts = first.split('.');
    if let (Some(class), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
        && [class, subject, detail]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return class == "5"
            && subject == "1"
            && matches!(detail, "0" | "1" | "2" | "3" | "6" | "10");
    }
    let lower = text.to_ascii_lowercase();
    [
        "user unknown",
        "unknown user",
        "no such user",
        "no such mailbox",
        "mailbox not found",
        "recipient not found",
        "unknown recipient",
        "does not exist",
    ]
    .iter()
    .any(|phrase| lower.contains(phrase))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::DraftInput;

    fn draft(to: &[&str], cc: &[&str], headers: &[(&str, &str)]) -> MessageDraft {
        let list = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        MessageDraft::parse(&DraftInput {
            from: "rep@acme.test",
            to: &list(to),
            cc: &list(cc),
            bcc: &[],
            reply_to: None,
            subject: "Hi",
            text: Some("Hello"),
            html: None,
            headers: &headers,
        })
        .unwrap()
    }

    #[test]
    fn reasons_round_trip() {
        for r in SuppressionReason::ALL {
            assert_eq!(r.as_str().parse::<SuppressionReason>().unwrap(), r);
        }
        let e = "bounced".parse::<SuppressionReason>().unwrap_err();
        assert!(e.reason.contains("hard_bounce"), "{}", e.reason);
    }

    #[test]
    fn the_headers_are_the_rfc_8058_pair() {
        let url = unsubscribe_url("https://sb.example.com/", "abc");
        assert_eq!(url, "https://sb.example.com/unsubscribe/abc");
        let [(n1, v1), (n2, v2)] = one_click_headers(&url).unwrap();
        assert_eq!(
            (n1.as_str(), v1.as_str()),
            (
                "List-Unsubscribe",
                "<https://sb.example.com/unsubscribe/abc>"
            )
        );
        assert_eq!(
            (n2.as_str(), v2.as_str()),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        );
    }

    #[test]
    fn one_recipient_counted_after_deduplication() {
        let d = draft(&["Ann <Ann@Example.com>"], &["ann@example.com"], &[]);
        assert_eq!(
            one_click_recipient(&d, false).unwrap().to_string(),
            "Ann@example.com"
        );
        let d = draft(&["ann@example.com"], &["bob@example.com"], &[]);
        let e = one_click_recipient(&d, false).unwrap_err();
        assert_eq!(e.code, NEEDS_ONE_RECIPIENT);
        assert!(e.reason.contains("2 recipients"), "{}", e.reason);
        let e = one_click_recipient(&d, true).unwrap_err();
        assert!(e.reason.contains("unsubscribe_by_default"), "{}", e.reason);
    }

    #[test]
    fn the_callers_own_list_unsubscribe_is_refused_beside_ours() {
        for name in ["List-Unsubscribe", "list-unsubscribe-post"] {
            let d = draft(&["ann@example.com"], &[], &[(name, "<mailto:x@acme.test>")]);
            let e = one_click_recipient(&d, false).unwrap_err();
            assert_eq!(e.code, DraftError::HEADER_NOT_ALLOWED);
            assert_eq!(e.field, format!("headers.{name}"));
        }
    }

    #[test]
    fn hard_bounces_are_the_destination_address_refused_for_good() {
        for (code, reply) in [
            (
                550,
                "5.1.1 <ghost@example.com>: Recipient address rejected: User unknown",
            ),
            (
                550,
                "550 5.1.1 The email account that you tried to reach does not exist.",
            ),
            (
                550,
                "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
            ),
            (556, "5.1.10 Recipient address has null MX"),
            (553, "5.1.3 Bad recipient address syntax"),
            (550, "5.1.2 Host unknown"),
            (550, "No such user here"),
            (
                550,
                "Requested action not taken: mailbox unavailable (user unknown)",
            ),
        ] {
            assert!(is_hard_bounce(Some(code), reply), "{code} {reply}");
        }
        for (code, reply) in [
            // Temporary: tried again, never suppressed.
            (Some(450), "4.1.1 mailbox temporarily unavailable"),
            (None, "the server does not take SMTPUTF8 addresses"),
            // The sender's or the relay's trouble, not the recipient's.
            (Some(550), "5.1.8 Access denied, bad outbound sender"),
            (
                Some(550),
                "5.1.90 Your message can't be sent because you've reached your daily limit",
            ),
            (Some(553), "5.1.7 The sender address is invalid"),
            (Some(550), "5.7.1 Message rejected as spam"),
            (Some(552), "5.2.2 Mailbox full"),
            (
                Some(554),
                "5.7.26 Unauthenticated email is not accepted: DMARC",
            ),
            // An enhanced code decides over the wording.
            (
                Some(550),
                "5.7.1 Relaying denied: user unknown to this relay",
            ),
            (Some(550), "Requested action not taken: mailbox unavailable"),
        ] {
            assert!(!is_hard_bounce(code, reply), "{code:?} {reply}");
        }
    }
}
