//! Webhooks: a tenant's admins and IT register URLs that are told, signed, about events
//! (`domain::EventType`), rotate their signing secrets and read their delivery log. The
//! secret is shown once, when it is made (creation, rotation), and never again.

use std::time::Duration;

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, NotFoundAs, Problem};
use super::extract::{path_id, present};
use crate::domain::{Action, AuditActor, EventType, WebhookId};
use crate::notify::destination::{check_destination, validate_url};
use crate::notify::signature::generate_secret;
use crate::store::webhooks::{self, Delivery, DeliveryCursor, NewWebhook, Webhook, WebhookChanges};
use crate::transport::OutboundError;

/// The longest description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 200;

/// How long the URL's host may take to resolve before the request is refused.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Page sizes of the delivery log.
const DEFAULT_DELIVERIES: i64 = 50;
const MAX_DELIVERIES: i64 = 200;

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    #[schema(value_type = String, format = Uuid)]
    id: WebhookId,
    url: String,
    /// The subscribed event types, sorted.
    #[schema(example = json!(["channel.needs_reauth", "message.failed"]))]
    events: Vec<&'static str>,
    description: Option<String>,
    /// A disabled webhook is sent nothing.
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events.into_iter().map(EventType::as_str).collect(),
            description: w.description,
            enabled: w.enabled,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A webhook just created, with its signing secret: the only time the secret is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhookView {
    #[serde(flatten)]
    webhook: WebhookView,
    /// The signing secret (`whsec_…`): the HMAC key of the `Switchboard-Signature` header.
    /// Shown this once; store it now.
    secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct RotatedSecretView {
    /// The new signing secret (`whsec_…`). Shown this once.
    secret: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https://…`; plain `http://` only to hosts the operator allowed. It must not resolve to
    /// a private address unless the operator allowed it.
    url: String,
    /// Event types to receive, e.g. `channel.needs_reauth`, `message.failed`.
    events: Vec<String>,
    /// At most 200 characters.
    description: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    url: Option<String>,
    /// Replaces the list.
    events: Option<Vec<String>>,
    /// `null` removes the description.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable)]
    description: Option<Option<String>>,
    enabled: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    id: String,
    event_id: String,
    event_type: &'static str,
    /// `pending`, `delivered` or `failed`.
    status: &'static str,
    attempts: i64,
    /// The HTTP status of the receiver's last answer.
    last_status_code: Option<i64>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    /// When the next attempt is due (pending deliveries only).
    next_attempt_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type.as_str(),
            status: d.status.as_str(),
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            delivered_at: d.delivered_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    deliveries: Vec<DeliveryView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
    /// Continue after this cursor (`next_before` of the previous page).
    before: Option<String>,
}

/// Checks the URL's form, then where its host resolves to, as the delivery client will
/// when it connects.
async fn parse_url(raw: &str, state: &AppState) -> Result<Url, ApiError> {
    let policy = &state.config.outbound;
    let url = validate_url(raw, policy).map_err(|reason| ApiError::InvalidField {
        field: "url",
        reason,
    })?;
    let unresolvable = |detail: String| ApiError::Unprocessable {
        code: "url_unresolvable",
        detail,
    };
    match tokio::time::timeout(RESOLVE_TIMEOUT, check_destination(&url, policy)).await {
        Ok(Ok(())) => Ok(url),
        Ok(Err(e @ OutboundError::Forbidden { .. })) => Err(ApiError::Unprocessable {
            code: "outbound_address_refused",
            detail: e.to_string(),
        }),
        Ok(Err(e @ OutboundError::Unresolvable { .. })) => Err(unresolvable(e.to_string())),
        Err(_) => Err(unresolvable(format!(
            "`{}` did not resolve within {} s",
            url.host_str().unwrap_or_default(),
            RESOLVE_TIMEOUT.as_secs()
        ))),
    }
}

fn parse_events(raw: &[String]) -> Result<Vec<EventType>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::InvalidField {
            field: "events",
            reason: format!(
                "name at least one event type: {}",
                EventType::ALL.map(EventType::as_str).join(", ")
            ),
        });
    }
    raw.iter()
        .map(|name| name.parse().map_err(|e| ApiError::invalid("events", e)))
        .collect()
}

/// A description is shown in lists and consoles: one short line of text. Empty means none.
fn parse_description(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let invalid = |reason: String| ApiError::InvalidField {
        field: "description",
        reason,
    };
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(format!(
            "must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(
            "must not contain control characters (line breaks, tabs, …)".into(),
        ));
    }
    Ok(Some(text.to_owned()))
}

fn shown(secret: &SecretString) -> String {
    secret.expose_secret().to_owned()
}

/// Register a webhook. The response carries the signing secret: it is shown this once
/// (and again only by rotating it).
#[utoipa::path(
    tag = "webhooks",
    request_body = CreateWebhookRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedWebhookView), (status = 403, body = Problem),
        (status = 409, description = "the tenant has the most webhooks allowed (too_many_webhooks)", body = Problem),
        (status = 422, description = "invalid field, or the URL's host is private (outbound_address_refused) or does not resolve (url_unresolvable)", body = Problem)
    )
)]
#[post("/webhooks")]
pub(super) async fn create_webhook(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: web::Json<CreateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let body = body.into_inner();
    let events = parse_events(&body.events)?;
    let description = parse_description(body.description.as_deref())?;
    let url = parse_url(&body.url, &state).await?;
    let new = NewWebhook {
        url,
        events,
        description,
    };
    let secret = generate_secret();
    let shown_secret = shown(&secret);
    let (tenant, actor, vault) = (
        caller.actor.tenant_id,
        AuditActor::User(caller.actor.user_id),
        state.vault.clone(),
    );
    let created = state
        .store
        .run(move |conn| webhooks::create(conn, &vault, tenant, &new, &secret, actor))
        .await?;
    tracing::info!(webhook_id = %created.id, "webhook created");
    Ok(HttpResponse::Created().json(CreatedWebhookView {
        webhook: created.into(),
        secret: shown_secret,
    }))
}

/// The tenant's webhooks, oldest first. Secrets are never shown.
#[utoipa::path(
    tag = "webhooks",
    security(("bearer" = [])),
    responses((status = 200, body = [WebhookView]), (status = 403, body = Problem))
)]
#[get("/webhooks")]
pub(super) async fn list_webhooks(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<WebhookView>>, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let tenant = caller.actor.tenant_id;
    let all = state
        .store
        .run(move |conn| webhooks::list(conn, tenant))
        .await?;
    Ok(web::Json(all.into_iter().map(WebhookView::from).collect()))
}

/// One webhook (never its secret).
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = WebhookView), (status = 403, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[get("/webhooks/{id}")]
pub(super) async fn get_webhook(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<WebhookView>, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let id: WebhookId = path_id(&id, "webhook")?;
    let tenant = caller.actor.tenant_id;
    let found = state
        .store
        .run(move |conn| webhooks::get(conn, tenant, id))
        .await
        .or_not_found("webhook")?;
    Ok(web::Json(found.into()))
}

/// Change a webhook; absent fields stay as they are. A new URL is checked as at creation.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    request_body = UpdateWebhookRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = WebhookView), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)
    )
)]
#[patch("/webhooks/{id}")]
pub(super) async fn update_webhook(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<UpdateWebhookRequest>,
) -> Result<web::Json<WebhookView>, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let id: WebhookId = path_id(&id, "webhook")?;
    let body = body.into_inner();
    let events = body.events.as_deref().map(parse_events).transpose()?;
    let description = body
        .description
        .map(|d| parse_description(d.as_deref()))
        .transpose()?;
    let url = match &body.url {
        Some(raw) => Some(parse_url(raw, &state).await?),
        None => None,
    };
    let changes = WebhookChanges {
        url,
        events,
        description,
        enabled: body.enabled,
    };
    let (tenant, actor) = (
        caller.actor.tenant_id,
        AuditActor::User(caller.actor.user_id),
    );
    let updated = state
        .store
        .run(move |conn| webhooks::update(conn, tenant, id, &changes, actor))
        .await
        .or_not_found("webhook")?;
    Ok(web::Json(updated.into()))
}

/// Delete a webhook, its signing secret and its delivery log. Deliveries not yet made are
/// dropped.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    security(("bearer" = [])),
    responses(
        (status = 204), (status = 403, body = Problem), (status = 404, body = Problem)
    )
)]
#[delete("/webhooks/{id}")]
pub(super) async fn delete_webhook(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let id: WebhookId = path_id(&id, "webhook")?;
    let (tenant, actor) = (
        caller.actor.tenant_id,
        AuditActor::User(caller.actor.user_id),
    );
    state
        .store
        .run(move |conn| webhooks::delete(conn, tenant, id, actor))
        .await
        .or_not_found("webhook")?;
    tracing::info!(webhook_id = %id, "webhook deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Replace a webhook's signing secret and show the new one, this once. The old secret
/// stops working at once: every delivery from now on, retries of earlier events included,
/// is signed with the new secret only, so update the receiver straight away.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = RotatedSecretView), (status = 403, body = Problem),
        (status = 404, body = Problem)
    )
)]
#[post("/webhooks/{id}/rotate-secret")]
pub(super) async fn rotate_webhook_secret(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<RotatedSecretView>, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let id: WebhookId = path_id(&id, "webhook")?;
    let secret = generate_secret();
    let shown_secret = shown(&secret);
    let (tenant, actor, vault) = (
        caller.actor.tenant_id,
        AuditActor::User(caller.actor.user_id),
        state.vault.clone(),
    );
    state
        .store
        .run(move |conn| webhooks::rotate_secret(conn, &vault, tenant, id, &secret, actor))
        .await
        .or_not_found("webhook")?;
    tracing::info!(webhook_id = %id, "webhook secret rotated");
    Ok(web::Json(RotatedSecretView {
        secret: shown_secret,
    }))
}

fn bad_query(detail: &str) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        detail: detail.to_owned(),
    }
}

/// The webhook's delivery log, newest first: each event sent to it, its status, attempts and
/// the receiver's last answer.
#[utoipa::path(
    tag = "webhooks",
    params(("id" = String, Path, description = "webhook id"), DeliveriesQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = DeliveryList), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem)
    )
)]
#[get("/webhooks/{id}/deliveries")]
pub(super) async fn list_webhook_deliveries(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
) -> Result<web::Json<DeliveryList>, ApiError> {
    caller.require(Action::ManageWebhooks)?;
    let id: WebhookId = path_id(&id, "webhook")?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(DEFAULT_DELIVERIES);
    if !(1..=MAX_DELIVERIES).contains(&limit) {
        return Err(bad_query("limit must be 1 to 200"));
    }
    let before = q
        .before
        .as_deref()
        .map(str::parse::<DeliveryCursor>)
        .transpose()
        .map_err(|()| bad_query("before must be a `next_before` cursor from a previous page"))?;
    let tenant = caller.actor.tenant_id;
    let mut page = state
        .store
        .run(move |conn| webhooks::deliveries(conn, tenant, id, limit + 1, before.as_ref()))
        .await
        .or_not_found("webhook")?;
    let more = page.len() as i64 > limit;
    page.truncate(limit as usize);
    let next_before = if more {
        page.last().map(|d| d.cursor.to_string())
    } else {
        None
    };
    Ok(web::Json(DeliveryList {
        deliveries: page.into_iter().map(DeliveryView::from).collect(),
        next_before,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_one_short_line() {
        assert_eq!(parse_description(Some("  ")).unwrap(), None);
        assert_eq!(
            parse_description(Some(" CRM alerts ")).unwrap().as_deref(),
            Some("CRM alerts")
        );
        assert!(parse_description(Some("a\nb")).is_err());
        assert!(parse_description(Some(&"é".repeat(200))).is_ok());
        assert!(parse_description(Some(&"é".repeat(201))).is_err());
    }

    #[test]
    fn events_must_be_known_and_at_least_one() {
        let err = parse_events(&[]).unwrap_err().to_string();
        assert!(err.contains("message.failed"), "{err}");
        let err = parse_events(&["channel.exploded".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("channel.needs_reauth"), "{err}");
        assert_eq!(
            parse_events(&["message.failed".into()]).unwrap(),
            vec![EventType::MessageFailed]
        );
    }
}
