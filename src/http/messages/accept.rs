//! From a send request to rows in the outbox: validation, the sender, the router's first
//! decision (kill switches and unroutable mail are refused before anything is stored), and
//! the stored form. Shared by the single and the batch endpoint.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::domain::message::{DraftError, DraftInput, MessageDraft, message_id_header};
use crate::domain::routing::{HoldReason, Outcome};
use crate::domain::suppression::{one_click_headers, one_click_recipient, unsubscribe_url};
use crate::domain::{EmailAddress, MessageId, UserId};
use crate::http::error::ApiError;
use crate::outbox::content;
use crate::outbox::route::{Sender, TenantRoutes, decision_json};
use crate::store::messages::NewMessage;
use crate::store::suppressions::LinkToken;
use crate::store::{DbConnection, StoreError};
use crate::vault::IssuedToken;

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
    /// A message the recipient must get whatever they unsubscribed from (a password reset,
    /// an invoice): the sender vouches for it. It goes to suppressed recipients too, and
    /// gets no unsubscribe headers unless `unsubscribe` asks for them.
    #[serde(default)]
    pub transactional: bool,
    /// Add RFC 8058 one-click unsubscribe headers (`List-Unsubscribe` with a link for the
    /// one recipient, `List-Unsubscribe-Post`). Absent: the tenant's
    /// `unsubscribe_by_default` decides for messages that are not transactional. A message
    /// with these headers has exactly one recipient.
    pub unsubscribe: Option<bool>,
    /// Send no earlier than this (RFC 3339 with an offset, e.g. `2026-12-03T09:30:00+01:00`).
    /// The message is stored at once; until then it waits as `queued` and can be cancelled.
    /// A time already past sends now. At most a year ahead.
    #[schema(format = DateTime, value_type = Option<String>)]
    pub send_at: Option<String>,
}

/// The longest idempotency key accepted.
const MAX_KEY_LEN: usize = 255;
/// How far ahead a message may be scheduled: further is more likely a mistaken year than a
/// plan, and would keep a body long past any retention.
const MAX_SCHEDULE_DAYS: i64 = 366;

/// A request that passed validation, ready to route and store.
pub struct Prepared {
    pub sender: UserId,
    pub draft: MessageDraft,
    pub idempotency_key: Option<String>,
    pub size: usize,
    pub transactional: bool,
    /// As asked; `None` leaves it to the tenant's default.
    pub unsubscribe: Option<bool>,
    pub send_at: Option<DateTime<Utc>>,
}

impl Prepared {
    /// The recipients a suppression would stop (normalized): none for a transactional
    /// message.
    pub fn suppressible(&self) -> Vec<String> {
        if self.transactional {
            return Vec::new();
        }
        self.draft
            .envelope_recipients()
            .into_iter()
            .map(EmailAddress::normalized)
            .collect()
    }
}

/// Everything that can be checked without the database.
pub fn prepare(
    request: SendRequest,
    caller: UserId,
    may_send_as_others: bool,
    max_bytes: usize,
    now: DateTime<Utc>,
) -> Result<Prepared, ApiError> {
    let send_at = request
        .send_at
        .as_deref()
        .map(|raw| scheduled_time(raw, now))
        .transpose()?;
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
    .map_err(invalid_message)?;
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
        transactional: request.transactional,
        unsubscribe: request.unsubscribe,
        send_at,
    })
}

/// `send_at` as a UTC time, or why it is not one we accept.
fn scheduled_time(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    let invalid = |code: &'static str, detail: String| ApiError::InvalidMessage {
        code,
        field: "send_at".into(),
        detail,
    };
    let at = DateTime::parse_from_rfc3339(raw.trim())
        .map_err(|e| {
            invalid(
                "invalid_send_at",
                format!("`{raw}` is not an RFC 3339 time with an offset, such as 2026-12-03T09:30:00+01:00 or 2026-12-03T08:30:00Z ({e})"),
            )
        })?
        .with_timezone(&Utc);
    if at > now + Duration::days(MAX_SCHEDULE_DAYS) {
        return Err(invalid(
            "send_at_too_far",
            format!(
                "{} is more than {MAX_SCHEDULE_DAYS} days ahead; schedule within a year",
                at.to_rfc3339()
            ),
        ));
    }
    Ok(at)
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

/// What acceptance knows of the tenant besides the message: its routes, which of the
/// recipients being accepted it suppresses, and where unsubscribe links point.
pub struct Admission<'a> {
    pub routes: &'a TenantRoutes,
    /// Normalized addresses.
    pub suppressed: &'a HashSet<String>,
    /// `SWITCHBOARD_PUBLIC_URL`.
    pub public_url: &'a str,
}

fn invalid_message(e: DraftError) -> ApiError {
    ApiError::InvalidMessage {
        code: e.code,
        field: e.field,
        detail: e.reason,
    }
}

/// Refuses a message with a suppressed recipient, naming each (they are the caller's own
/// recipients) and the first field that holds one.
fn refuse_suppressed(draft: &MessageDraft, suppressed: &HashSet<String>) -> Result<(), ApiError> {
    let mut field = None;
    let mut named: Vec<String> = Vec::new();
    for (list, mailboxes) in [("to", &draft.to), ("cc", &draft.cc), ("bcc", &draft.bcc)] {
        for (i, m) in mailboxes.iter().enumerate() {
            let address = m.address.normalized();
            if suppressed.contains(&address) {
                field.get_or_insert_with(|| format!("{list}[{i}]"));
                if !named.contains(&address) {
                    named.push(address);
                }
            }
        }
    }
    match field {
        None => Ok(()),
        Some(field) => Err(ApiError::InvalidMessage {
            code: "recipient_suppressed",
            field,
            detail: format!(
                "{} {} on this tenant's suppression list (unsubscribed, bounced or added by an \
                 admin), so nothing was stored: leave {} out, or send \"transactional\": true \
                 if this is a message the recipient must get (a password reset, an invoice)",
                named.join(", "),
                if named.len() == 1 { "is" } else { "are" },
                if named.len() == 1 { "it" } else { "them" },
            ),
        }),
    }
}

/// Routes a prepared message now, to refuse what can never be sent and to hold what must
/// wait. `Err` is the answer for this message; nothing of it is stored.
pub fn admit(
    admission: &Admission<'_>,
    sender: &Sender,
    prepared: Prepared,
) -> Result<NewMessage, ApiError> {
    let routes = admission.routes;
    let draft = &prepared.draft;
    // The tenant's default applies to messages that do not say, and never makes a
    // transactional message look like a list mail.
    let by_default = prepared.unsubscribe.is_none();
    let wants_unsubscribe = prepared
        .unsubscribe
        .unwrap_or(!prepared.transactional && routes.tenant.policy.unsubscribe_by_default);
    let one_click = wants_unsubscribe
        .then(|| one_click_recipient(draft, by_default))
        .transpose()
        .map_err(invalid_message)?;
    if !prepared.transactional {
        refuse_suppressed(draft, admission.suppressed)?;
    }
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
                    "{}; nothing was stored. Mail from a domain is accepted once the tenant has proven it (GET /v1/domains), or from a mailbox the sender connected at a provider that checks the sender (Gmail, Microsoft 365, Outlook.com, Yahoo)",
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
    let (mut envelope, mut body) = content::store(draft);
    envelope.transactional = prepared.transactional;
    let mut size = prepared.size;
    let unsubscribe = match one_click {
        None => None,
        Some(recipient) => {
            // The link is made once, here, and stored with the body: every attempt sends
            // the same bytes (a DKIM signature covers them).
            let token = IssuedToken::for_link();
            let url = unsubscribe_url(admission.public_url, token.expose());
            let headers =
                one_click_headers(&url).map_err(|e| ApiError::Internal(e.reason.clone()))?;
            size += headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.as_str().len() + 4)
                .sum::<usize>();
            content::add_headers(&mut body, &headers);
            envelope.unsubscribe = true;
            Some(LinkToken {
                hash: token.hash,
                address: recipient.normalized(),
                message: id,
            })
        }
    };
    let json = |v: serde_json::Result<String>| v.map_err(|e| ApiError::Internal(e.to_string()));
    Ok(NewMessage {
        id,
        sender: sender.user.id,
        idempotency_key: prepared.idempotency_key,
        message_id_header: message_id_header(id, &draft.from.address),
        from_address: draft.from.to_string(),
        from_email: draft.from.address.to_string(),
        recipient_count: draft.recipient_count() as i64,
        personal_gmail: crate::domain::bulk::personal_gmail_recipients(draft) as i64,
        subject: draft.subject.as_str().to_owned(),
        envelope: json(serde_json::to_string(&envelope))?,
        body: json(serde_json::to_string(&body))?,
        size_bytes: size as i64,
        route,
        channel: decision.channel(),
        held,
        unsubscribe,
        send_at: prepared.send_at.map(|t| t.timestamp_micros()),
    })
}
