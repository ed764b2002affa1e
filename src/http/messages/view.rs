//! Messages as the API shows them. The body is never shown back (it may be pruned, and a
//! list of messages is not a mail client); the envelope, the route and the log are.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::outbox::content::StoredEnvelope;
use crate::store::StoreError;
use crate::store::messages::{MessageEvent, MessageRecord};

#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub at: DateTime<Utc>,
    /// `accepted`, `routed`, `attempt`, `deferred`, `held`, `released`, `sent`, `failed`,
    /// `lease_expired`.
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

#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    /// `queued`, `sending`, `sent`, `deferred`, `held` or `failed`.
    pub status: String,
    pub sender_user_id: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    /// The Message-ID header, assigned at acceptance and the same on every attempt.
    pub message_id: String,
    /// The channel that sent it, or that it waits for.
    pub channel_id: Option<String>,
    /// Why it is held: `channel_unavailable`, `sending_disabled`, `team_sending_disabled`.
    pub hold_reason: Option<String>,
    /// The router's last decision: `channel_id`, `outcome`, `reasons` and every candidate.
    #[schema(value_type = Option<Object>)]
    pub route: Option<serde_json::Value>,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When a deferred message is tried again.
    pub next_attempt_at: Option<DateTime<Utc>>,
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
        Ok(Self {
            next_attempt_at: (record.status == "deferred")
                .then(|| time(record.next_attempt_at))
                .transpose()?,
            created_at: time(record.created_at)?,
            updated_at: time(record.updated_at)?,
            sent_at: record.sent_at.map(time).transpose()?,
            body_retained: record.body.is_some(),
            id: record.id,
            status: record.status,
            sender_user_id: record.sender_user_id,
            from: record.from_address,
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
