//! Recipients suppressed after their message was accepted (an unsubscribe, an admin's
//! entry): at delivery they are left out, each failed with the reason `suppressed`, and a
//! message left with nobody to send to ends without an attempt. Pure: the worker looks the
//! addresses up once per claimed batch and applies this to each message.

use std::collections::HashSet;

use crate::domain::message::MessageDraft;
use crate::domain::recipients::{Recipients, SUPPRESSED};
use crate::domain::{ChannelId, EmailAddress, TenantId};
use crate::store::delivery::Completion;

/// The addresses of a message a suppression could stop (normalized).
pub(super) fn suppressible(draft: &MessageDraft) -> impl Iterator<Item = String> + '_ {
    draft
        .envelope_recipients()
        .into_iter()
        .map(EmailAddress::normalized)
}

/// What suppression leaves of a message.
#[derive(Debug)]
pub(super) enum Left {
    /// Nobody of it is suppressed.
    Untouched,
    /// Some recipients are now failed as suppressed; the others are sent to.
    Others,
    /// Everyone not reached yet is suppressed: the message ends so.
    Nobody(Completion),
}

/// Marks the recipients of a message of `tenant` that are in `found` as suppressed.
/// `earlier_channel` is the channel that reached some of them in an earlier attempt, if any.
pub(super) fn leave_out(
    draft: &MessageDraft,
    tenant: TenantId,
    recipients: &mut Recipients,
    found: &HashSet<(TenantId, String)>,
    earlier_channel: Option<ChannelId>,
) -> Left {
    let mut hit = false;
    for address in draft.envelope_recipients() {
        if found.contains(&(tenant, address.normalized())) {
            recipients.suppress(&address.to_string());
            hit = true;
        }
    }
    if !hit {
        return Left::Untouched;
    }
    let settled = recipients.settled();
    if draft
        .envelope_recipients()
        .iter()
        .any(|a| !settled.contains(&a.to_string().to_ascii_lowercase()))
    {
        return Left::Others;
    }
    let suppressed: Vec<&str> = recipients
        .states()
        .iter()
        .filter(|r| r.reason.as_deref() == Some(SUPPRESSED))
        .map(|r| r.address.as_str())
        .collect();
    let error = format!(
        "on the tenant's suppression list, so not sent: {}",
        suppressed.join(", ")
    );
    Left::Nobody(match earlier_channel {
        Some(channel) if recipients.tally().sent > 0 => Completion::PartiallySent {
            channel,
            reply: "sent to the other recipients earlier".to_owned(),
            error,
        },
        _ => Completion::Failed {
            channel: None,
            reason: "recipient_suppressed",
            error,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::DraftInput;
    use crate::domain::recipients::{RcptOutcome, RecipientStatus, Verdict};

    fn draft(to: &[&str]) -> MessageDraft {
        let to: Vec<String> = to.iter().map(|s| (*s).to_owned()).collect();
        MessageDraft::parse(&DraftInput {
            from: "rep@acme.test",
            to: &to,
            cc: &[],
            bcc: &[],
            reply_to: None,
            subject: "Hi",
            text: Some("Hello"),
            html: None,
            headers: &[],
        })
        .unwrap()
    }

    fn found(tenant: TenantId, addresses: &[&str]) -> HashSet<(TenantId, String)> {
        addresses
            .iter()
            .map(|a| (tenant, (*a).to_owned()))
            .collect()
    }

    #[test]
    fn only_the_tenants_own_suppressions_count() {
        let (acme, beta) = (TenantId::generate(), TenantId::generate());
        let d = draft(&["Ann@Example.com", "bob@example.com"]);
        let mut r = Recipients::default();
        let theirs = found(beta, &["ann@example.com"]);
        assert!(matches!(
            leave_out(&d, acme, &mut r, &theirs, None),
            Left::Untouched
        ));
        assert!(r.is_empty());
        let ours = found(acme, &["ann@example.com"]);
        assert!(matches!(
            leave_out(&d, acme, &mut r, &ours, None),
            Left::Others
        ));
        assert_eq!(r.states()[0].address, "Ann@example.com");
        assert_eq!(r.states()[0].status, RecipientStatus::Failed);
    }

    #[test]
    fn a_message_with_nobody_left_fails_or_was_partially_sent() {
        let acme = TenantId::generate();
        let d = draft(&["ann@example.com"]);
        let mut r = Recipients::default();
        let all = found(acme, &["ann@example.com", "bob@example.com"]);
        match leave_out(&d, acme, &mut r, &all, None) {
            Left::Nobody(Completion::Failed { reason, error, .. }) => {
                assert_eq!(reason, "recipient_suppressed");
                assert!(error.contains("ann@example.com"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        // Bob had it from an earlier attempt; Ann, still waiting, is suppressed since.
        let d = draft(&["ann@example.com", "bob@example.com"]);
        let mut r = Recipients::default();
        let attempted = ["ann@example.com".to_owned(), "bob@example.com".to_owned()];
        let answer = |address: &str, verdict, code| RcptOutcome {
            address: address.into(),
            verdict,
            code: Some(code),
            reply: String::new(),
        };
        r.record(
            &attempted,
            &[
                answer("ann@example.com", Verdict::Deferred, 451),
                answer("bob@example.com", Verdict::Accepted, 250),
            ],
            Some("250 ok"),
        );
        let channel = ChannelId::generate();
        let left = leave_out(&d, acme, &mut r, &all, Some(channel));
        assert!(
            matches!(left, Left::Nobody(Completion::PartiallySent { channel: c, .. }) if c == channel),
            "{left:?}"
        );
        assert_eq!(r.states()[1].status, RecipientStatus::Sent);
    }
}
