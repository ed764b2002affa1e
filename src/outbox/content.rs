//! How a message's content is kept in the outbox: the request as validated, in two JSON
//! documents (the envelope, kept for the log, and the body, pruned by retention). Stored as
//! given rather than rendered, so that send-time settings (a channel's reply-to override,
//! BCC archive, return path) apply to the channel that actually carries it.

use serde::{Deserialize, Serialize};

use crate::domain::message::{DraftError, DraftInput, MessageDraft};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredEnvelope {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredBody {
    pub reply_to: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// The two documents of a validated draft.
pub fn store(draft: &MessageDraft) -> (StoredEnvelope, StoredBody) {
    let list = |v: &[crate::domain::email::Mailbox]| v.iter().map(ToString::to_string).collect();
    (
        StoredEnvelope {
            to: list(&draft.to),
            cc: list(&draft.cc),
            bcc: list(&draft.bcc),
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
        },
    )
}

/// Parses the stored documents back into a draft. They were valid when stored; an error here
/// means a hand-edited or corrupt row.
pub fn load(
    from: &str,
    subject: &str,
    envelope: &StoredEnvelope,
    body: &StoredBody,
) -> Result<MessageDraft, DraftError> {
    MessageDraft::parse(&DraftInput {
        from,
        to: &envelope.to,
        cc: &envelope.cc,
        bcc: &envelope.bcc,
        reply_to: body.reply_to.as_deref(),
        subject,
        text: body.text.as_deref(),
        html: body.html.as_deref(),
        headers: &body.headers,
    })
}
