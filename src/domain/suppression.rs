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
}
