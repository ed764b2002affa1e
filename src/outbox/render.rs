//! Turning a validated draft into the bytes and envelope a channel sends, applying the
//! channel's send-time policy: reply-to override, BCC archive and return path. Bcc
//! recipients go into the envelope only, never into a header.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox as LettreMailbox, MultiPart, SinglePart};

use crate::domain::email::Mailbox;
use crate::domain::message::MessageDraft;
use crate::domain::{EmailAddress, ReturnPath};

/// The channel settings that shape a message at send time.
#[derive(Debug, Clone, Default)]
pub struct SendPolicy {
    /// Replaces the message's Reply-To.
    pub reply_to: Option<EmailAddress>,
    /// Receives a blind copy of every message.
    pub bcc_archive: Option<EmailAddress>,
    pub return_path: Option<ReturnPath>,
    /// The mailbox the channel logs in as, when its username is an address: the envelope
    /// sender when the return path is left to the relay.
    pub login: Option<EmailAddress>,
    /// Put Bcc recipients (and the archive) in a Bcc header: for the Gmail API, which takes
    /// recipients from the headers and removes Bcc before delivery. SMTP never does.
    pub bcc_in_headers: bool,
}

/// A message ready for a transport.
#[derive(Debug)]
pub struct Rendered {
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
}

/// Why a stored message could not be rendered. Validation at acceptance makes this a bug or
/// a corrupt row, never a user error.
#[derive(Debug, thiserror::Error)]
#[error("cannot render the message: {0}")]
pub struct RenderError(String);

fn address(a: &EmailAddress) -> Address {
    // Already validated by our stricter parser (and lettre accepts everything it accepts).
    Address::new_dangerous(a.local_part(), a.domain().as_str())
}

fn mailbox(m: &Mailbox) -> LettreMailbox {
    LettreMailbox::new(m.name.clone(), address(&m.address))
}

pub fn render(
    draft: &MessageDraft,
    message_id_header: &str,
    accepted_at: DateTime<Utc>,
    policy: &SendPolicy,
) -> Result<Rendered, RenderError> {
    let mut builder = Message::builder()
        .from(mailbox(&draft.from))
        .subject(draft.subject.as_str())
        .message_id(Some(message_id_header.to_owned()))
        .date(SystemTime::from(accepted_at));
    for m in &draft.to {
        builder = builder.to(mailbox(m));
    }
    for m in &draft.cc {
        builder = builder.cc(mailbox(m));
    }
    match (&policy.reply_to, &draft.reply_to) {
        (Some(forced), _) => builder = builder.reply_to(LettreMailbox::new(None, address(forced))),
        (None, Some(given)) => builder = builder.reply_to(mailbox(given)),
        (None, None) => {}
    }
    for (name, value) in &draft.headers {
        let name = HeaderName::new_from_ascii(name.as_str().to_owned())
            .map_err(|e| RenderError(format!("header name: {e}")))?;
        // `new` encodes (RFC 2047) and folds the value; CR/LF were refused at acceptance.
        builder = builder.raw_header(HeaderValue::new(name, value.as_str().to_owned()));
    }
    let mut recipients: Vec<Address> = draft
        .envelope_recipients()
        .into_iter()
        .map(address)
        .collect();
    if let Some(archive) = &policy.bcc_archive
        && !draft
            .envelope_recipients()
            .iter()
            .any(|r| r.normalized() == archive.normalized())
    {
        recipients.push(address(archive));
    }
    let mail_from = match (&policy.return_path, &policy.login) {
        (Some(ReturnPath::Specified(a)), _) => address(a),
        (Some(ReturnPath::Yes), _) => address(&draft.from.address),
        // Left to the relay: the mailbox it authenticates (what providers require), or the
        // From when the login is not an address (API-key relays).
        (_, Some(login)) => address(login),
        (_, None) => address(&draft.from.address),
    };
    let envelope = Envelope::new(Some(mail_from), recipients)
        .map_err(|e| RenderError(format!("envelope: {e}")))?;
    if policy.bcc_in_headers {
        let mut blind: Vec<LettreMailbox> = draft.bcc.iter().map(mailbox).collect();
        if let Some(archive) = &policy.bcc_archive
            && !draft
                .envelope_recipients()
                .iter()
                .any(|r| r.normalized() == archive.normalized())
        {
            blind.push(LettreMailbox::new(None, address(archive)));
        }
        for m in blind {
            builder = builder.bcc(m);
        }
        builder = builder.keep_bcc();
    }
    let builder = builder.envelope(envelope.clone());
    let message = match (&draft.text, &draft.html) {
        (Some(text), Some(html)) => builder.multipart(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (None, Some(html)) => builder.singlepart(SinglePart::html(html.clone())),
        (Some(text), None) => builder.singlepart(SinglePart::plain(text.clone())),
        (None, None) => return Err(RenderError("no body".into())),
    }
    .map_err(|e| RenderError(e.to_string()))?;
    Ok(Rendered {
        envelope,
        bytes: message.formatted(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::DraftInput;

    fn draft() -> MessageDraft {
        let to = vec!["Ann <ann@example.com>".to_owned()];
        let bcc = vec![
            "hidden@example.com".to_owned(),
            "archive@acme.test".to_owned(),
        ];
        MessageDraft::parse(&DraftInput {
            from: "Rep <rep@acme.test>",
            to: &to,
            cc: &[],
            bcc: &bcc,
            reply_to: Some("replies@acme.test"),
            subject: "Hello",
            text: Some("text"),
            html: None,
            headers: &[("X-Campaign".to_owned(), "q4".to_owned())],
        })
        .unwrap()
    }

    fn text(r: &Rendered) -> String {
        String::from_utf8(r.bytes.clone()).unwrap()
    }

    #[test]
    fn bcc_goes_to_the_envelope_only_and_the_archive_once() {
        let policy = SendPolicy {
            bcc_archive: Some(EmailAddress::parse("archive@acme.test").unwrap()),
            ..SendPolicy::default()
        };
        let r = render(&draft(), "<id@acme.test>", Utc::now(), &policy).unwrap();
        let rcpt: Vec<String> = r.envelope.to().iter().map(ToString::to_string).collect();
        assert_eq!(
            rcpt,
            ["ann@example.com", "hidden@example.com", "archive@acme.test"]
        );
        let t = text(&r);
        assert!(
            !t.contains("hidden@") && !t.to_lowercase().contains("bcc:"),
            "{t}"
        );
        assert!(t.contains("Message-ID: <id@acme.test>"), "{t}");
        assert!(t.contains("Reply-To: replies@acme.test"), "{t}");
        assert!(t.contains("X-Campaign: q4"), "{t}");
        assert_eq!(r.envelope.from().unwrap().to_string(), "rep@acme.test");
    }

    #[test]
    fn the_channel_overrides_reply_to_and_return_path() {
        let policy = SendPolicy {
            reply_to: Some(EmailAddress::parse("team@acme.test").unwrap()),
            return_path: Some(ReturnPath::Specified(
                EmailAddress::parse("bounces@acme.test").unwrap(),
            )),
            ..SendPolicy::default()
        };
        let r = render(&draft(), "<id@acme.test>", Utc::now(), &policy).unwrap();
        let t = text(&r);
        assert!(t.contains("Reply-To: team@acme.test"), "{t}");
        assert!(!t.contains("replies@acme.test"), "{t}");
        assert_eq!(r.envelope.from().unwrap().to_string(), "bounces@acme.test");
    }
}
