//! Webhooks of a tenant and their delivery log. The signing secret is a sealed secret
//! (`secrets`, owner = webhook id, field `signing_secret`); the row holds only the URL, the
//! subscribed events (a JSON array of names) and the switches. Deliveries are the
//! `notifications` rows of kind `webhook`, written by the notification worker.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use secrecy::SecretString;
use url::Url;

use super::schema::{notifications, webhooks};
use super::time::{from_micros, now_micros};
use super::write_transaction;
use super::{DbConnection, StoreError, audit, secrets};
use crate::domain::{AuditActor, EventType, TenantId, UserId, WebhookId};
use crate::vault::Vault;

/// The secret field a webhook's signing secret is sealed under.
pub const SIGNING_SECRET_FIELD: &str = "signing_secret";

/// How many webhooks one tenant may have. Every event is signed and sent to each subscriber,
/// so the number bounds the work one event can cause.
pub const MAX_WEBHOOKS_PER_TENANT: i64 = 20;

/// The `kind` of a `notifications` row that is a webhook delivery.
const WEBHOOK_KIND: &str = "webhook";

/// A tenant's webhook. The signing secret is never part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub tenant_id: TenantId,
    pub url: String,
    /// Sorted, without duplicates, never empty.
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub enabled: bool,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A webhook to create; the URL has passed `notify::destination` checks.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: Url,
    pub events: Vec<EventType>,
    pub description: Option<String>,
}

/// Changes to a webhook; `None` leaves a field as it is. `description: Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    pub url: Option<Url>,
    pub events: Option<Vec<EventType>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

impl WebhookChanges {
    fn is_empty(&self) -> bool {
        self.url.is_none()
            && self.events.is_none()
            && self.description.is_none()
            && self.enabled.is_none()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not delivered yet; another attempt is due at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up: the receiver refused it for good or every attempt failed.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn parse(raw: &str) -> Result<Self, StoreError> {
        match raw {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(StoreError::corrupt(format!("delivery status `{other}`"))),
        }
    }
}

/// One event sent (or being sent) to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// The HTTP status of the receiver's last answer, when it answered.
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due; only while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Where a page ending with this delivery continues.
    pub cursor: DeliveryCursor,
}

/// A position in a delivery log (newest first): deliveries strictly older come after it.
/// On the wire it is `<created_at micros>_<id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCursor {
    created_at: i64,
    id: String,
}

impl std::fmt::Display for DeliveryCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.created_at, self.id)
    }
}

impl std::str::FromStr for DeliveryCursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (at, id) = s.split_once('_').ok_or(())?;
        let created_at = at.parse().map_err(drop)?;
        if id.is_empty() || id.len() > 100 {
            return Err(());
        }
        Ok(Self {
            created_at,
            id: id.to_owned(),
        })
    }
}

fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::corrupt(e)
}

/// Sorted and without duplicates, as stored and shown.
fn normalized(events: &[EventType]) -> Vec<EventType> {
    let mut events = events.to_vec();
    events.sort();
    events.dedup();
    events
}

fn events_json(events: &[EventType]) -> String {
    let names: Vec<&str> = normalized(events)
        .into_iter()
        .map(EventType::as_str)
        .collect();
    serde_json::Value::from(names).to_string()
}

fn parse_events(raw: &str) -> Result<Vec<EventType>, StoreError> {
    let names: Vec<String> = serde_json::from_str(raw).map_err(corrupt)?;
    let events = names
        .iter()
        .map(|n| n.parse::<EventType>().map_err(corrupt))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(normalized(&events))
}

/// The host of a URL, for the audit trail: the full URL may carry a token in its path or
/// query, and the trail is read by more people than the webhook's creator.
fn host_of(url: &Url) -> &str {
    url.host_str().unwrap_or_default()
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = webhooks)]
struct WebhookRow {
    id: String,
    tenant_id: String,
    url: String,
    events: String,
    description: Option<String>,
    enabled: bool,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl WebhookRow {
    fn into_webhook(self) -> Result<Webhook, StoreError> {
        Ok(Webhook {
            id: self.id.parse().map_err(corrupt)?,
            tenant_id: self.tenant_id.parse().map_err(corrupt)?,
            url: self.url,
            events: parse_events(&self.events)?,
            description: self.description,
            enabled: self.enabled,
            created_by: self
                .created_by
                .map(|u| u.parse().map_err(corrupt))
                .transpose()?,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

fn record(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: WebhookId,
    actor: AuditActor,
    action: &'static str,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    audit::record_about(conn, tenant, &id, actor, action, detail)
}

/// Serialises webhook creation per tenant on PostgreSQL, so that two concurrent requests
/// cannot both see 19 webhooks and make 21 (SQLite's `BEGIN IMMEDIATE` already holds the
/// write lock). Raw SQL: the multi-backend connection has no `FOR UPDATE`.
fn lock_tenant(conn: &mut DbConnection, tenant: TenantId) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(c) = conn {
        diesel::sql_query("SELECT id FROM tenants WHERE id = $1 FOR UPDATE")
            .bind::<Text, _>(tenant.to_string())
            .execute(c)?;
    }
    Ok(())
}

/// Creates a webhook and seals its signing secret, in one transaction. At most
/// [`MAX_WEBHOOKS_PER_TENANT`] per tenant (`too_many_webhooks`).
pub fn create(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    webhook: &NewWebhook,
    secret: &SecretString,
    actor: AuditActor,
) -> Result<Webhook, StoreError> {
    write_transaction(conn, |conn| {
        lock_tenant(conn, tenant)?;
        let count: i64 = webhooks::table
            .filter(webhooks::tenant_id.eq(tenant.to_string()))
            .count()
            .get_result(conn)?;
        if count >= MAX_WEBHOOKS_PER_TENANT {
            return Err(StoreError::Conflict {
                code: "too_many_webhooks",
                detail: format!(
                    "a tenant may have at most {MAX_WEBHOOKS_PER_TENANT} webhooks; delete one, or subscribe an existing one to more events"
                ),
            });
        }
        let id = WebhookId::generate();
        let now = now_micros();
        let created_by = match actor {
            AuditActor::User(u) => Some(u.to_string()),
            _ => None,
        };
        diesel::insert_into(webhooks::table)
            .values((
                webhooks::id.eq(id.to_string()),
                webhooks::tenant_id.eq(tenant.to_string()),
                webhooks::url.eq(webhook.url.as_str()),
                webhooks::events.eq(events_json(&webhook.events)),
                webhooks::description.eq(webhook.description.as_deref()),
                webhooks::enabled.eq(true),
                webhooks::created_by.eq(created_by),
                webhooks::created_at.eq(now),
                webhooks::updated_at.eq(now),
            ))
            .execute(conn)?;
        secrets::put(
            conn,
            vault,
            tenant,
            &id.to_string(),
            SIGNING_SECRET_FIELD,
            secret,
        )?;
        let events: Vec<&str> = normalized(&webhook.events)
            .into_iter()
            .map(EventType::as_str)
            .collect();
        record(
            conn,
            tenant,
            id,
            actor,
            "webhook.created",
            serde_json::json!({ "host": host_of(&webhook.url), "events": events }),
        )?;
        get(conn, tenant, id)
    })
}

/// Every webhook of the tenant, oldest first.
pub fn list(conn: &mut DbConnection, tenant: TenantId) -> Result<Vec<Webhook>, StoreError> {
    webhooks::table
        .filter(webhooks::tenant_id.eq(tenant.to_string()))
        .order((webhooks::created_at, webhooks::id))
        .select(WebhookRow::as_select())
        .load(conn)?
        .into_iter()
        .map(WebhookRow::into_webhook)
        .collect()
}

/// One webhook of the tenant; `NotFound` for another tenant's.
pub fn get(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: WebhookId,
) -> Result<Webhook, StoreError> {
    webhooks::table
        .filter(webhooks::tenant_id.eq(tenant.to_string()))
        .filter(webhooks::id.eq(id.to_string()))
        .select(WebhookRow::as_select())
        .first(conn)?
        .into_webhook()
}

/// Applies `changes` (the URL has passed `notify::destination` checks). Recorded as
/// `webhook.updated` with what changed; neither the URL nor the description is repeated in
/// the trail, only the new host.
pub fn update(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: WebhookId,
    changes: &WebhookChanges,
    actor: AuditActor,
) -> Result<Webhook, StoreError> {
    write_transaction(conn, |conn| {
        let current = get(conn, tenant, id)?;
        if changes.is_empty() {
            return Ok(current);
        }
        let url = changes
            .url
            .as_ref()
            .map_or(current.url.clone(), |u| u.as_str().to_owned());
        let events = changes.events.as_deref().unwrap_or(&current.events);
        let description = changes
            .description
            .clone()
            .unwrap_or(current.description.clone());
        let enabled = changes.enabled.unwrap_or(current.enabled);
        diesel::update(
            webhooks::table
                .filter(webhooks::tenant_id.eq(tenant.to_string()))
                .filter(webhooks::id.eq(id.to_string())),
        )
        .set((
            webhooks::url.eq(url),
            webhooks::events.eq(events_json(events)),
            webhooks::description.eq(description),
            webhooks::enabled.eq(enabled),
            webhooks::updated_at.eq(now_micros()),
        ))
        .execute(conn)?;
        let mut changed = Vec::new();
        let mut detail = serde_json::Map::new();
        if let Some(url) = &changes.url {
            changed.push("url");
            detail.insert("host".into(), host_of(url).into());
        }
        if changes.events.is_some() {
            changed.push("events");
            let names: Vec<&str> = normalized(events)
                .into_iter()
                .map(EventType::as_str)
                .collect();
            detail.insert("events".into(), names.into());
        }
        if changes.description.is_some() {
            changed.push("description");
        }
        if let Some(enabled) = changes.enabled {
            changed.push("enabled");
            detail.insert("enabled".into(), enabled.into());
        }
        detail.insert("changed".into(), changed.into());
        record(
            conn,
            tenant,
            id,
            actor,
            "webhook.updated",
            serde_json::Value::Object(detail),
        )?;
        get(conn, tenant, id)
    })
}

/// Deletes the webhook, its delivery log (the `notifications` rows cascade) and its sealed
/// secret.
pub fn delete(
    conn: &mut DbConnection,
    tenant: TenantId,
    id: WebhookId,
    actor: AuditActor,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let deleted = diesel::delete(
            webhooks::table
                .filter(webhooks::tenant_id.eq(tenant.to_string()))
                .filter(webhooks::id.eq(id.to_string())),
        )
        .execute(conn)?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        secrets::delete_owner(conn, tenant, &id.to_string())?;
        record(
            conn,
            tenant,
            id,
            actor,
            "webhook.deleted",
            serde_json::json!({}),
        )
    })
}

/// Replaces the signing secret. The old one stops signing at once: deliveries from here on
/// carry only the new signature.
pub fn rotate_secret(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    id: WebhookId,
    secret: &SecretString,
    actor: AuditActor,
) -> Result<Webhook, StoreError> {
    write_transaction(conn, |conn| {
        let changed = diesel::update(
            webhooks::table
                .filter(webhooks::tenant_id.eq(tenant.to_string()))
                .filter(webhooks::id.eq(id.to_string())),
        )
        .set(webhooks::updated_at.eq(now_micros()))
        .execute(conn)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        secrets::put(
            conn,
            vault,
            tenant,
            &id.to_string(),
            SIGNING_SECRET_FIELD,
            secret,
        )?;
        record(
            conn,
            tenant,
            id,
            actor,
            "webhook.secret_rotated",
            serde_json::json!({}),
        )?;
        get(conn, tenant, id)
    })
}

/// The webhook's signing secret in the clear, to sign a delivery. Never log it. `None` when
/// the webhook (or its secret) is gone.
pub fn signing_secret(
    conn: &mut DbConnection,
    vault: &Vault,
    tenant: TenantId,
    id: WebhookId,
) -> Result<Option<SecretString>, StoreError> {
    secrets::get(conn, vault, tenant, &id.to_string(), SIGNING_SECRET_FIELD)
}

/// The tenant's enabled webhooks subscribed to `event`, oldest first. Events are a JSON
/// array in the row, so they are matched here, after loading the tenant's enabled webhooks
/// (at most [`MAX_WEBHOOKS_PER_TENANT`]).
pub fn subscribers(
    conn: &mut DbConnection,
    tenant: TenantId,
    event: EventType,
) -> Result<Vec<WebhookId>, StoreError> {
    let rows: Vec<(String, String)> = webhooks::table
        .filter(webhooks::tenant_id.eq(tenant.to_string()))
        .filter(webhooks::enabled.eq(true))
        .order((webhooks::created_at, webhooks::id))
        .select((webhooks::id, webhooks::events))
        .load(conn)?;
    let mut ids = Vec::new();
    for (id, events) in rows {
        if parse_events(&events)?.contains(&event) {
            ids.push(id.parse().map_err(corrupt)?);
        }
    }
    Ok(ids)
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = notifications)]
struct DeliveryRow {
    id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl DeliveryRow {
    fn into_delivery(self) -> Result<Delivery, StoreError> {
        let status = DeliveryStatus::parse(&self.status)?;
        Ok(Delivery {
            cursor: DeliveryCursor {
                created_at: self.created_at,
                id: self.id.clone(),
            },
            id: self.id,
            event_id: self.event_id,
            event_type: self.event_type.parse().map_err(corrupt)?,
            status,
            attempts: self.attempts,
            last_status_code: self.last_status_code,
            last_error: self.last_error,
            created_at: from_micros(self.created_at)?,
            next_attempt_at: match status {
                DeliveryStatus::Pending => Some(from_micros(self.next_attempt_at)?),
                _ => None,
            },
            delivered_at: self.delivered_at.map(from_micros).transpose()?,
        })
    }
}

/// The webhook's delivery log, newest first: at most `limit` deliveries older than `before`.
/// `NotFound` when the tenant has no such webhook.
pub fn deliveries(
    conn: &mut DbConnection,
    tenant: TenantId,
    webhook: WebhookId,
    limit: i64,
    before: Option<&DeliveryCursor>,
) -> Result<Vec<Delivery>, StoreError> {
    get(conn, tenant, webhook)?;
    let mut query = notifications::table
        .filter(notifications::tenant_id.eq(tenant.to_string()))
        .filter(notifications::kind.eq(WEBHOOK_KIND))
        .filter(notifications::webhook_id.eq(webhook.to_string()))
        .order((notifications::created_at.desc(), notifications::id.desc()))
        .limit(limit)
        .select(DeliveryRow::as_select())
        .into_boxed();
    if let Some(cursor) = before {
        query = query.filter(
            notifications::created_at
                .lt(cursor.created_at)
                .or(notifications::created_at
                    .eq(cursor.created_at)
                    .and(notifications::id.lt(cursor.id.clone()))),
        );
    }
    query
        .load(conn)?
        .into_iter()
        .map(DeliveryRow::into_delivery)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_stored_sorted_and_once() {
        let stored = events_json(&[
            EventType::MessageFailed,
            EventType::ChannelFailing,
            EventType::MessageFailed,
        ]);
        assert_eq!(stored, r#"["channel.failing","message.failed"]"#);
        assert_eq!(
            parse_events(&stored).unwrap(),
            vec![EventType::ChannelFailing, EventType::MessageFailed]
        );
        assert!(parse_events(r#"["channel.exploded"]"#).is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = DeliveryCursor {
            created_at: 1_700_000_000_000_000,
            id: "0b0e6f4e-9c52-4d53-a7a4-5d5b0c4c3d21".into(),
        };
        assert_eq!(cursor.to_string().parse::<DeliveryCursor>(), Ok(cursor));
        for bad in ["", "12", "x_abc", "12_"] {
            assert!(bad.parse::<DeliveryCursor>().is_err(), "{bad}");
        }
    }
}
