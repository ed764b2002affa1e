//! From a send request to rows in the outbox: validation, the sender, the router's first
//! decision (kill switches and unroutable mail are refused before anything is stored), and
//! the stored form. Shared by the single and the batch endpoint.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::message::{DraftInput, MessageDraft, message_id_header};
use crate::domain::routing::{HoldReason, Outcome};
use crate::domain::{MessageId, UserId};
use crate::http::error::ApiError;
use crate::outbox::content;
use crate::outbox::route::{Sender, TenantRoutes, decision_json};
use crate::store::messages::NewMessage;
use crate::store::{DbConnection, StoreError};

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// `rep@acme.test` or `"Rep One" <rep@acme.test>`.
    pub from: String,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    /// Delivered to, never shown in any header.
    #[serde(default)]
    pub bcc: Vec<String>,
    #[serde(default)]
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub reply_to: Option<String>,
    /// Extra headers such as `X-Campaign`; From, To, Cc, Bcc, Message-ID and the like are
    /// set by their own fields or by Switchboard.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A repeat with the same key returns the first message instead of sending again.
    pub idempotency_key: Option<String>,
    /// Send as this user (admins only); the caller by default.
    pub sender_user_id: Option<String>,
}

/// The longest idempotency key accepted.
const MAX_KEY_LEN: usize = 255;

/// A request that passed validation, ready to route and store.
pub struct Prepared {
    pub sender: UserId,
    pub draft: MessageDraft,
    pub idempotency_key: Option<String>,
    pub size: usize,
}

/// Everything that can be checked without the database.
pub fn prepare(
    request: SendRequest,
    caller: UserId,
    may_send_as_others: bool,
    max_bytes: usize,
) -> Result<Prepared, ApiError> {
    let sender = match request.sender_user_id.as_deref() {
        None => caller,
        Some(raw) => {
            let id: UserId = raw.parse().map_err(|e| ApiError::InvalidMessage {
                code: "invalid_field",
                field: "sender_user_id".into(),
                detail: format!("{e}"),
            })?;
            if id != caller && !may_send_as_others {
                return Err(ApiError::Forbidden {
                    code: "forbidden",
                    detail: "only an admin may send on behalf of another user (sender_user_id)"
                        .into(),
                });
            }
            id
        }
    };
    if let Some(key) = &request.idempotency_key
        && (key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control))
    {
        return Err(ApiError::InvalidMessage {
            code: "invalid_idempotency_key",
            field: "idempotency_key".into(),
            detail: format!(
                "an idempotency key is 1 to {MAX_KEY_LEN} characters without control characters"
            ),
        });
    }
    let headers: Vec<(String, String)> = request.headers.into_iter().collect();
    let draft = MessageDraft::parse(&DraftInput {
        from: &request.from,
        to: &request.to,
        cc: &request.cc,
        bcc: &request.bcc,
        reply_to: request.reply_to.as_deref(),
        subject: &request.subject,
        text: request.text.as_deref(),
        html: request.html.as_deref(),
        headers: &headers,
    })
    .map_err(|e| ApiError::InvalidMessage {
        code: e.code,
        field: e.field,
        detail: e.reason,
    })?;
    let size = draft.size_estimate();
    if size > max_bytes {
        return Err(ApiError::MessageTooLarge {
            size,
            limit: max_bytes,
        });
    }
    Ok(Prepared {
        sender,
        draft,
        idempotency_key: request.idempotency_key,
        size,
    })
}

/// The sender a message names, or the answer for it when there is no such (enabled) user.
pub fn resolve_sender(
    conn: &mut DbConnection,
    routes: &TenantRoutes,
    user: UserId,
) -> Result<Result<Sender, ApiError>, StoreError> {
    match routes.sender(conn, user) {
        Ok(sender) if sender.user.disabled => Ok(Err(ApiError::InvalidMessage {
            code: "sender_disabled",
            field: "sender_user_id".into(),
            detail: "the sender is disabled; enable the user or send as someone else".into(),
        })),
        Ok(sender) => Ok(Ok(sender)),
        Err(StoreError::NotFound) => Ok(Err(ApiError::InvalidMessage {
            code: "unknown_sender",
            field: "sender_user_id".into(),
            detail: "no such user in this tenant".into(),
        })),
        Err(e) => Err(e),
    }
}

/// Routes a prepared message now, to refuse what can never be sent and to hold what must
/// wait. `Err` is the answer for this message; nothing of it is stored.
pub fn admit(
    routes: &TenantRoutes,
    sender: &Sender,
    prepared: Prepared,
) -> Result<NewMessage, ApiError> {
    let draft = &prepared.draft;
    let decision = routes.route(sender, &draft.from.address, draft.recipient_count());
    let route = decision_json(&decision);
    let held = match decision.outcome {
        Outcome::Send { .. } | Outcome::Defer { .. } => None,
        Outcome::Hold {
            reason: reason @ (HoldReason::SendingDisabled | HoldReason::TeamSendingDisabled),
            ..
        } => {
            return Err(ApiError::Conflict {
                code: reason.code(),
                detail: format!(
                    "{}; nothing was stored. An admin switches it back on ({})",
                    reason.describe(),
                    if reason == HoldReason::SendingDisabled {
                        "PATCH /v1/tenant"
                    } else {
                        "PATCH /v1/teams/{id}"
                    }
                ),
            });
        }
        Outcome::Hold {
            reason: reason @ HoldReason::DomainNotVerified(_),
            ..
        } => {
            return Err(ApiError::Unroutable {
                code: reason.code(),
                detail: format!(
                    "{}; nothing was stored. Mail from a domain is accepted once the tenant has proven it (GET /v1/domains), or from a mailbox the sender connected",
                    reason.describe()
                ),
                route,
            });
        }
        Outcome::Hold { reason, .. } => Some(reason.code()),
        Outcome::Reject(reason) => {
            return Err(ApiError::Unroutable {
                code: reason.code(),
                detail: format!("{}; nothing was stored", reason.describe()),
                route,
            });
        }
    };
    let id = MessageId::generate();
    let (envelope, body) = content::store(draft);
    let json = |v: serde_json::Result<String>| v.map_err(|e| ApiError::Internal(e.to_string()));
    Ok(NewMessage {
        id,
        sender: sender.user.id,
        idempotency_key: prepared.idempotency_key,
        message_id_header: message_id_header(id, &draft.from.address),
        from_address: draft.from.to_string(),
        from_email: draft.from.address.to_string(),
        recipient_count: draft.recipient_count() as i64,
        subject: draft.subject.as_str().to_owned(),
        envelope: json(serde_json::to_string(&envelope))?,
        body: json(serde_json::to_string(&body))?,
        size_bytes: prepared.size as i64,
        route,
        channel: decision.channel(),
        held,
    })
}
