//! How a message's content is kept in the outbox: the request as validated, in two JSON
//! documents (the envelope, kept for the log, and the body, pruned by retention). Stored as
//! given rather than rendered, so that send-time settings (a channel's reply-to override,
//! BCC archive, return path) apply to the channel that actually carries it. Headers that
//! Switchboard adds itself at acceptance (the unsubscribe pair, whose link is made then) are
//! stored with the body, so that every attempt renders them byte for byte the same.

use serde::{Deserialize, Serialize};

use crate::domain::message::{DraftError, DraftInput, HeaderName, HeaderValue, MessageDraft};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredEnvelope {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    /// The sender vouched that the message is transactional: it goes to suppressed
    /// recipients too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub transactional: bool,
    /// The message carries one-click unsubscribe headers.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unsubscribe: bool,
}

fn is_false(v: &bool) -> bool {
    !*v
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredBody {
    pub reply_to: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Headers Switchboard added at acceptance, after the caller's (not counted against
    /// their limit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added_headers: Vec<(String, String)>,
}

/// The two documents of a validated draft.
pub fn store(draft: &MessageDraft) -> (StoredEnvelope, StoredBody) {
    let list = |v: &[crate::domain::email::Mailbox]| v.iter().map(ToString::to_string).collect();
    (
        StoredEnvelope {
            to: list(&draft.to),
            cc: list(&draft.cc),
            bcc: list(&draft.bcc),
            transactional: false,
            unsubscribe: false,
        },
        StoredBody {
            reply_to: draft.reply_to.as_ref().map(ToString::to_string),
            text: draft.text.clone(),
            html: draft.html.clone(),
            headers: draft
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_str().to_owned()))
                .collect(),
            added_headers: Vec::new(),
        },
    )
}

/// Adds headers of Switchboard's own to a body being stored.
pub fn add_headers(body: &mut StoredBody, headers: &[(HeaderName, HeaderValue)]) {
    body.added_headers.extend(
        headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_str().to_owned())),
    );
}

/// Parses the stored documents back into a draft. They were valid when stored; an error here
/// means a hand-edited or corrupt row.
pub fn load(
    from: &str,
    subject: &str,
    envelope: &StoredEnvelope,
    body: &StoredBody,
) -> Result<MessageDraft, DraftError> {
    let mut draft = MessageDraft::parse(&DraftInput {
        from,
        to: &envelope.to,
        cc: &envelope.cc,
        bcc: &envelope.bcc,
        reply_to: body.reply_to.as_deref(),
        subject,
        text: body.text.as_deref(),
        html: body.html.as_deref(),
        headers: &body.headers,
    })?;
    for (name, value) in &body.added_headers {
        let invalid = |e: crate::domain::DomainError| DraftError {
            field: format!("added_headers.{name}"),
            code: DraftError::INVALID_HEADER,
            reason: e.reason,
        };
        draft.headers.push((
            HeaderName::parse(name).map_err(invalid)?,
            HeaderValue::parse(value).map_err(invalid)?,
        ));
    }
    Ok(draft)
}
