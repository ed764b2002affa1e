//! Gmail's bulk-sender threshold: about 5,000 messages in 24 hours to personal Gmail
//! accounts, summed over a whole primary domain (subdomains and reps' own mailboxes
//! included). Once crossed, the domain is a bulk sender for good, and Gmail then rejects its
//! mail without DMARC (DOMAINS.md §2). This says, from what a tenant sent, whether a domain is
//! there or on its way, early enough to publish DMARC first.

use serde::Serialize;

use super::Domain;
use super::message::MessageDraft;

/// Messages to personal Gmail accounts in 24 hours that make a domain a bulk sender.
pub const GMAIL_BULK_THRESHOLD: u64 = 5_000;

/// The domains of Google's consumer mailboxes. Mail to Google Workspace domains is not
/// counted by Google, and cannot be told apart by its address anyway.
const PERSONAL_GMAIL: [&str; 2] = ["gmail.com", "googlemail.com"];

/// How many of a message's recipients have personal Gmail addresses.
pub fn personal_gmail_recipients(draft: &MessageDraft) -> usize {
    draft
        .envelope_recipients()
        .into_iter()
        .filter(|a| {
            PERSONAL_GMAIL
                .iter()
                .any(|d| a.domain().as_str().eq_ignore_ascii_case(d))
        })
        .count()
}

/// Whether mail from `from` counts toward `primary`: the domain itself or a subdomain.
pub fn counts_toward(from: &str, primary: &Domain) -> bool {
    let primary = primary.as_str();
    from.eq_ignore_ascii_case(primary)
        || from
            .len()
            .checked_sub(primary.len() + 1)
            .is_some_and(|cut| {
                from.as_bytes()[cut] == b'.' && from[cut + 1..].eq_ignore_ascii_case(primary)
            })
}

/// Personal-Gmail recipients a domain sent to, over the last day and its last quarter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GmailVolume {
    pub last_24h: u64,
    pub last_6h: u64,
}

/// Where a domain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkLevel {
    /// Well under the threshold at today's pace.
    Under,
    /// Half-way there in the last day, or the last six hours' pace would cross it.
    Approaching,
    /// Crossed within the last day: a bulk sender from now on.
    Over,
}

/// A domain's standing with its sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkStanding {
    pub level: BulkLevel,
    /// The last six hours' count times four: where the day ends at this pace.
    pub projected_24h: u64,
    /// What it means and what to do, for a person.
    pub message: String,
}

/// Judges `volume` for `domain`. `has_dmarc` is the last DMARC check: `Some(false)` when no
/// record was found, `None` when not known yet. A domain that already publishes DMARC gets
/// the count without alarm: it meets the rule that matters most once bulk.
pub fn assess(domain: &Domain, volume: GmailVolume, has_dmarc: Option<bool>) -> BulkStanding {
    let projected_24h = volume.last_6h.saturating_mul(4);
    let level = if volume.last_24h >= GMAIL_BULK_THRESHOLD {
        BulkLevel::Over
    } else if volume.last_24h * 2 >= GMAIL_BULK_THRESHOLD || projected_24h >= GMAIL_BULK_THRESHOLD {
        BulkLevel::Approaching
    } else {
        BulkLevel::Under
    };
    let count = format!(
        "{} messages to personal Gmail addresses in the last 24 hours from {domain} and its subdomains, reps' own mailboxes included",
        volume.last_24h
    );
    let pace = if projected_24h > volume.last_24h {
        format!(" ({projected_24h} a day at the last six hours' pace)")
    } else {
        String::new()
    };
    let message = match (level, has_dmarc) {
        (BulkLevel::Under, _) => format!(
            "{count}{pace}; Gmail treats a domain as a bulk sender from {GMAIL_BULK_THRESHOLD} a day."
        ),
        (BulkLevel::Over, Some(true)) => format!(
            "{count}: over Gmail's bulk-sender threshold of {GMAIL_BULK_THRESHOLD}, so the domain is a bulk sender from now on. DMARC is published; keep SPF and DKIM aligned and one-click unsubscribe on sequence mail."
        ),
        (BulkLevel::Over, _) => format!(
            "{count}: over Gmail's bulk-sender threshold of {GMAIL_BULK_THRESHOLD}, so the domain is a bulk sender from now on, and Gmail rejects its mail without a DMARC record. Publish one at _dmarc.{domain} now (p=none is enough to start)."
        ),
        (BulkLevel::Approaching, Some(true)) => format!(
            "{count}{pace}: on track for Gmail's bulk-sender threshold of {GMAIL_BULK_THRESHOLD} a day. DMARC is published; keep SPF and DKIM aligned and one-click unsubscribe on sequence mail."
        ),
        (BulkLevel::Approaching, _) => format!(
            "{count}{pace}: on track for Gmail's bulk-sender threshold of {GMAIL_BULK_THRESHOLD} a day, after which Gmail rejects the domain's mail without DMARC, for good. Publish a DMARC record at _dmarc.{domain} before then (p=none is enough to start)."
        ),
    };
    BulkStanding {
        level,
        projected_24h,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::DraftInput;

    fn domain(s: &str) -> Domain {
        Domain::parse(s).unwrap()
    }

    #[test]
    fn personal_gmail_recipients_are_counted_once_each_in_any_case() {
        let to = vec![
            "a@gmail.com".to_owned(),
            "B@GoogleMail.com".to_owned(),
            "c@example.com".to_owned(),
        ];
        let cc = vec![
            "A@Gmail.com".to_owned(),
            "d@workspace-customer.com".to_owned(),
        ];
        let draft = MessageDraft::parse(&DraftInput {
            from: "rep@acme.test",
            to: &to,
            cc: &cc,
            bcc: &[],
            reply_to: None,
            subject: "Hi",
            text: Some("Hello"),
            html: None,
            headers: &[],
        })
        .unwrap();
        assert_eq!(personal_gmail_recipients(&draft), 2);
    }

    #[test]
    fn a_primary_domain_counts_its_subdomains_and_nothing_else() {
        let acme = domain("acme.com");
        assert!(counts_toward("acme.com", &acme));
        assert!(counts_toward("mail.acme.com", &acme));
        assert!(counts_toward("Deep.Mail.ACME.com", &acme));
        assert!(!counts_toward("notacme.com", &acme));
        assert!(!counts_toward("acme.com.evil.test", &acme));
        assert!(!counts_toward("com", &acme));
    }

    #[test]
    fn the_level_follows_the_day_and_the_pace() {
        let acme = domain("acme.com");
        let at = |last_24h, last_6h| assess(&acme, GmailVolume { last_24h, last_6h }, None);
        assert_eq!(at(0, 0).level, BulkLevel::Under);
        assert_eq!(at(2_499, 600).level, BulkLevel::Under);
        assert_eq!(at(2_500, 0).level, BulkLevel::Approaching);
        // A quiet night, then a burst: the pace says where the day is going.
        let burst = at(1_300, 1_250);
        assert_eq!(burst.level, BulkLevel::Approaching);
        assert_eq!(burst.projected_24h, 5_000);
        assert!(
            burst
                .message
                .contains("5000 a day at the last six hours' pace"),
            "{}",
            burst.message
        );
        assert_eq!(at(5_000, 0).level, BulkLevel::Over);
    }

    #[test]
    fn the_sentence_asks_for_dmarc_only_where_it_is_missing() {
        let acme = domain("acme.com");
        let volume = GmailVolume {
            last_24h: 3_000,
            last_6h: 900,
        };
        let missing = assess(&acme, volume, Some(false)).message;
        assert!(
            missing.contains("Publish a DMARC record at _dmarc.acme.com"),
            "{missing}"
        );
        assert!(
            missing.contains("reps' own mailboxes included"),
            "{missing}"
        );
        let unknown = assess(&acme, volume, None).message;
        assert!(unknown.contains("Publish a DMARC record"), "{unknown}");
        let published = assess(&acme, volume, Some(true)).message;
        assert!(!published.contains("Publish"), "{published}");
        assert!(published.contains("DMARC is published"), "{published}");
        let over = assess(
            &acme,
            GmailVolume {
                last_24h: 6_000,
                last_6h: 1_000,
            },
            Some(false),
        );
        assert!(
            over.message
                .contains("rejects its mail without a DMARC record"),
            "{}",
            over.message
        );
    }
}
