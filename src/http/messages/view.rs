//! Messages as the API shows them. The body is never shown back (it may be pruned, and a
//! list of messages is not a mail client); the envelope, the route and the log are.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::recipients::{RecipientState, RecipientStatus, Recipients};
use crate::outbox::content::StoredEnvelope;
use crate::store::StoreError;
use crate::store::messages::{MessageEvent, MessageRecord, ShownStatus};

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub at: DateTime<Utc>,
    /// `accepted`, `routed`, `attempt`, `deferred`, `held`, `released`, `sent`, `failed`,
    /// `lease_expired`, `cancelled`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<MessageEvent> for EventView {
    fn from(e: MessageEvent) -> Self {
        Self {
            at: e.at,
            kind: e.kind,
            detail: e.detail,
        }
    }
}

/// One recipient and where it stands.
#[derive(Serialize, ToSchema)]
pub struct RecipientView {
    pub address: String,
    /// `pending` (not tried yet, or waiting with the message), `sent`, `deferred` (refused
    /// for now by the server: tried again alone), `failed` (refused for good) or
    /// `cancelled` (the message was cancelled before it reached them).
    pub status: String,
    /// The server's reply code for this recipient, when it answered for it alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The server's reply for this recipient (or why it was not asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Why Switchboard itself did not send to this recipient: `suppressed` (the address is
    /// on the tenant's suppression list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&RecipientState> for RecipientView {
    fn from(r: &RecipientState) -> Self {
        let status = match r.status {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Sent => "sent",
            RecipientStatus::Deferred => "deferred",
            RecipientStatus::Failed => "failed",
        };
        Self {
            address: r.address.clone(),
            status: status.to_owned(),
            code: r.code,
            reply: r.reply.clone(),
            reason: r.reason.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    /// `queued`, `sending`, `sent`, `partially_sent` (some recipients have it, the others
    /// were refused for good: see `recipients`), `deferred`, `held`, `failed` or `cancelled`
    /// (withdrawn before it was sent).
    pub status: String,
    pub sender_user_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    /// Every envelope recipient (to, cc, bcc, and a channel's archive copy) with its own
    /// status and, once the server answered for it alone, its reply.
    pub recipients: Vec<RecipientView>,
    pub subject: String,
    /// The Message-ID header, assigned at acceptance and the same on every attempt.
    pub message_id: String,
    /// Sent as transactional: suppressed recipients get it too.
    pub transactional: bool,
    /// It carries one-click unsubscribe headers (the link itself is never shown here).
    pub unsubscribe: bool,
    /// The channel that sent it, or that it waits for.
    pub channel_id: Option<String>,
    /// Why it is held: `channel_unavailable`, `sending_disabled`, `team_sending_disabled`.
    pub hold_reason: Option<String>,
    /// The router's last decision: `channel_id`, `outcome`, `reasons` and every candidate.
    #[schema(value_type = Option<Object>)]
    pub route: Option<serde_json::Value>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When a deferred message is tried again, or a scheduled one is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The time the client scheduled it for (`send_at` at acceptance).
    pub send_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    pub size_bytes: i64,
    /// False once retention removed the body (the log stays).
    pub body_retained: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The event log, oldest first (on `GET /v1/messages/{id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventView>>,
}

fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::corrupt(format!("timestamp {micros}")))
}

impl MessageView {
    pub fn of(
        record: MessageRecord,
        events: Option<Vec<MessageEvent>>,
    ) -> Result<Self, StoreError> {
        let envelope: StoredEnvelope =
            serde_json::from_str(&record.envelope).map_err(StoreError::corrupt)?;
        let route = record
            .route
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(StoreError::corrupt)?;
        let recipients = recipient_views(&record, &envelope)?;
        Ok(Self {
            recipients,
            next_attempt_at: (record.status == "deferred"
                || (record.status == "queued" && record.send_at.is_some()))
            .then(|| time(record.next_attempt_at))
            .transpose()?,
            send_at: record.send_at.map(time).transpose()?,
            created_at: time(record.created_at)?,
            updated_at: time(record.updated_at)?,
            sent_at: record.sent_at.map(time).transpose()?,
            body_retained: record.body.is_some(),
            status: ShownStatus::of(&record.status, record.failed_recipients).to_owned(),
            id: record.id,
            sender_user_id: record.sender_user_id,
            from: record.from_address,
            transactional: envelope.transactional,
            unsubscribe: envelope.unsubscribe,
            to: envelope.to,
            cc: envelope.cc,
            bcc: envelope.bcc,
            subject: record.subject,
            message_id: record.message_id_header,
            channel_id: record.channel_id,
            hold_reason: record.hold_reason,
            route,
            attempts: record.attempts,
            last_error: record.last_error,
            idempotency_key: record.idempotency_key,
            size_bytes: record.size_bytes,
            events: events.map(|e| e.into_iter().map(EventView::from).collect()),
        })
    }
}

/// Each recipient's own state once recipients parted ways; before that, every envelope
/// recipient shares the message's status.
fn recipient_views(
    record: &MessageRecord,
    envelope: &StoredEnvelope,
) -> Result<Vec<RecipientView>, StoreError> {
    if let Some(stored) = &record.recipients {
        let recipients: Recipients = serde_json::from_str(stored).map_err(StoreError::corrupt)?;
        return Ok(recipients
            .states()
            .iter()
            .map(RecipientView::from)
            .collect());
    }
    let shared = match record.status.as_str() {
        "sent" => RecipientStatus::Sent,
        "failed" => RecipientStatus::Failed,
        _ => RecipientStatus::Pending,
    };
    let mut seen = std::collections::HashSet::new();
    let addresses: Vec<String> = envelope
        .to
        .iter()
        .chain(&envelope.cc)
        .chain(&envelope.bcc)
        .filter_map(|a| {
            let address = crate::domain::email::Mailbox::parse(a)
                .map_or_else(|_| a.clone(), |m| m.address.to_string());
            seen.insert(address.to_ascii_lowercase()).then_some(address)
        })
        .collect();
    let cancelled = record.status == "cancelled";
    Ok(Recipients::shared(&addresses, shared)
        .states()
        .iter()
        .map(RecipientView::from)
        .map(|mut view| {
            if cancelled {
                view.status = "cancelled".into();
            }
            view
        })
        .collect())
}
