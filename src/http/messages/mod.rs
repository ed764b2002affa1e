//! Sending mail and following it: `POST /v1/messages` (and `/batch`), `GET /v1/messages`,
//! `GET /v1/messages/{id}` and `POST /v1/route/explain`. An accepted message is committed
//! before the answer; the outbox's workers do the rest.

mod accept;
mod view;

use std::collections::{HashMap, HashSet};

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::auth::TenantCaller;
use super::error::{ApiError, NotFoundAs, Problem, body_error};
use super::extract::{json_with_limit, path_id};
use crate::domain::{Action, ChannelId, MessageId, UserId};
use crate::outbox::dkim::signing_note;
use crate::outbox::route::{TenantRoutes, decision_json};
use crate::store::messages::{self, Accepted, MessageFilter, ShownStatus};
use crate::store::suppressions;
pub use accept::SendRequest;
use accept::{Admission, Prepared, admit, prepare, resolve_sender};
pub(in crate::http) use view::{EventView, MessageView};

/// Most messages in one batch request.
const MAX_BATCH: usize = 1000;

/// The answer for one accepted message.
#[derive(Serialize, ToSchema)]
pub struct AcceptedView {
    pub id: String,
    /// `queued`, or `held` when it waits for its channel (the route says why); for a repeated
    /// idempotency key, the first message's current status.
    pub status: String,
    /// True when the idempotency key was used before and this is the first message.
    pub duplicate: bool,
}

fn accepted_view(a: &Accepted) -> AcceptedView {
    let (summary, duplicate) = match a {
        Accepted::New(s) => (s, false),
        Accepted::Existing(s) => (s, true),
    };
    AcceptedView {
        id: summary.id.to_string(),
        status: summary.status.as_str().to_owned(),
        duplicate,
    }
}

fn count_accepted<'a>(state: &AppState, results: impl IntoIterator<Item = &'a Accepted>) {
    for a in results {
        if let Accepted::New(summary) = a {
            state.outbox.metrics().accepted(summary.status.as_str(), 1);
        }
    }
}

fn key_in_use() -> ApiError {
    ApiError::Conflict {
        code: "idempotency_key_in_use",
        detail: "another sender of this tenant used this idempotency key; keys are unique per tenant, so include something of the sender in them".into(),
    }
}

/// JSON escaping can double a body's size; headers and addresses add a little.
fn body_limit(state: &AppState) -> usize {
    state.config.delivery.max_message_bytes * 2 + 64 * 1024
}

#[utoipa::path(
    tag = "messages",
    request_body = SendRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "stored; it will be sent", body = AcceptedView),
        (status = 200, description = "the idempotency key was used before: the first message", body = AcceptedView),
        (status = 403, body = Problem),
        (status = 409, description = "sending is switched off (sending_disabled, team_sending_disabled)", body = Problem),
        (status = 413, body = Problem),
        (status = 422, description = "invalid message (a suppressed recipient: recipient_suppressed; unsubscribe headers on a message with several recipients: unsubscribe_needs_one_recipient), or no channel may carry it (no_route)", body = Problem)
    )
)]
#[post("/messages")]
pub(super) async fn send_message(
    caller: TenantCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::SendMail)?;
    let request: SendRequest = json_with_limit(&req, payload, body_limit(&state)).await?;
    let prepared = prepare(
        request,
        caller.actor.user_id,
        caller.actor.may(Action::SendAsAnyUser),
        state.config.delivery.max_message_bytes,
        state.config.clock.now(),
    )?;
    let mut results = store_prepared(&state, &caller, vec![Ok(prepared)]).await?;
    let result = results.pop().expect("one result for one message")?;
    count_accepted(&state, [&result]);
    state.outbox.wake();
    let status = match result {
        Accepted::New(_) => actix_web::http::StatusCode::ACCEPTED,
        Accepted::Existing(_) => actix_web::http::StatusCode::OK,
    };
    Ok(HttpResponse::build(status).json(accepted_view(&result)))
}

/// Routes and stores prepared messages in one transaction, answering each in order.
async fn store_prepared(
    state: &AppState,
    caller: &TenantCaller,
    prepared: Vec<Result<Prepared, ApiError>>,
) -> Result<Vec<Result<Accepted, ApiError>>, ApiError> {
    let tenant = caller.actor.tenant_id;
    let shared_pool = state.config.shared_pool.clone();
    let now = state.config.clock.now_micros();
    let public_url = state.config.public_url.clone();
    let answers = state
        .store
        .run(move |conn| {
            let keys: Vec<&str> = prepared
                .iter()
                .filter_map(|p| p.as_ref().ok()?.idempotency_key.as_deref())
                .collect();
            let earlier = messages::by_idempotency_keys(conn, tenant, &keys)?;
            let routes = TenantRoutes::load(conn, tenant, shared_pool.as_ref(), now)?;
            // One lookup for every recipient of the request, not one per recipient.
            let mut recipients: Vec<String> = prepared
                .iter()
                .filter_map(|p| p.as_ref().ok())
                .flat_map(Prepared::suppressible)
                .collect();
            recipients.sort_unstable();
            recipients.dedup();
            let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
            let suppressed = if recipients.is_empty() {
                HashSet::new()
            } else {
                suppressions::among(conn, tenant, &recipients)?
            };
            let admission = Admission {
                routes: &routes,
                suppressed: &suppressed,
                public_url: &public_url,
            };
            let mut senders = HashMap::new();
            let mut answers: Vec<Result<Option<Accepted>, ApiError>> = Vec::new();
            let mut new = Vec::new();
            for p in prepared {
                let p = match p {
                    Ok(p) => p,
                    Err(e) => {
                        answers.push(Err(e));
                        continue;
                    }
                };
                // A valid repeat is answered with the first message before routing and the
                // kill switches are checked again: it was accepted, whatever changed since.
                if let Some(first) = p.idempotency_key.as_deref().and_then(|k| earlier.get(k)) {
                    answers.push(if first.sender == p.sender {
                        Ok(Some(Accepted::Existing(first.clone())))
                    } else {
                        // Never a second send, and never another sender's message either.
                        Err(key_in_use())
                    });
                    continue;
                }
                let sender = match senders.entry(p.sender) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(resolve_sender(conn, &routes, p.sender)?)
                    }
                };
                let sender = match sender {
                    Ok(sender) => sender,
                    Err(e) => {
                        answers.push(Err(e.clone()));
                        continue;
                    }
                };
                match admit(&admission, sender, p) {
                    Ok(message) => {
                        new.push(message);
                        answers.push(Ok(None));
                    }
                    Err(e) => answers.push(Err(e)),
                }
            }
            let senders: Vec<UserId> = new.iter().map(|m| m.sender).collect();
            let mut stored = messages::accept(conn, tenant, &new)?
                .into_iter()
                .zip(senders);
            Ok(answers
                .into_iter()
                .map(|a| match a {
                    Ok(None) => match stored.next().expect("one stored row per admitted message") {
                        // A concurrent request of another sender won the key.
                        (Accepted::Existing(first), sender) if first.sender != sender => {
                            Err(key_in_use())
                        }
                        (accepted, _) => Ok(accepted),
                    },
                    Ok(Some(existing)) => Ok(existing),
                    Err(e) => Err(e),
                })
                .collect())
        })
        .await?;
    Ok(answers)
}

/// Up to 1000 messages.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Each as for `POST /v1/messages`; one that is invalid does not stop the others.
    #[schema(value_type = Vec<SendRequest>)]
    messages: Vec<serde_json::Value>,
}

/// One answer per message, in order: the accepted message or the problem with it.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchResult {
    Accepted(AcceptedView),
    Refused { error: Problem },
}

#[derive(Serialize, ToSchema)]
pub struct BatchView {
    results: Vec<BatchResult>,
}

#[utoipa::path(
    tag = "messages",
    request_body = BatchRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "every valid message is stored; `results` answers each in order", body = BatchView),
        (status = 413, body = Problem), (status = 422, body = Problem)
    )
)]
#[post("/messages/batch")]
pub(super) async fn send_batch(
    caller: TenantCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require(Action::SendMail)?;
    let limit = body_limit(&state).max(64 * 1024 * 1024);
    let batch: BatchRequest = json_with_limit(&req, payload, limit).await?;
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH {
        return Err(ApiError::Unprocessable {
            code: "invalid_batch_size",
            detail: format!(
                "a batch holds 1 to {MAX_BATCH} messages; this one has {}",
                batch.messages.len()
            ),
        });
    }
    let max_bytes = state.config.delivery.max_message_bytes;
    let may_send_as_others = caller.actor.may(Action::SendAsAnyUser);
    let now = state.config.clock.now();
    let prepared: Vec<Result<Prepared, ApiError>> = batch
        .messages
        .into_iter()
        .map(|value| {
            let request: SendRequest = serde_json::from_value(value).map_err(|e| body_error(&e))?;
            prepare(
                request,
                caller.actor.user_id,
                may_send_as_others,
                max_bytes,
                now,
            )
        })
        .collect();
    let results = store_prepared(&state, &caller, prepared).await?;
    count_accepted(&state, results.iter().filter_map(|r| r.as_ref().ok()));
    state.outbox.wake();
    let results = results
        .iter()
        .map(|r| match r {
            Ok(a) => BatchResult::Accepted(accepted_view(a)),
            Err(e) => BatchResult::Refused { error: e.problem() },
        })
        .collect();
    Ok(HttpResponse::Accepted().json(BatchView { results }))
}

/// Reps see their own messages; admins every message of the tenant; IT none (it does not
/// read mail).
fn visible_sender(caller: &TenantCaller) -> Result<Option<UserId>, ApiError> {
    caller.require(Action::SendMail)?;
    Ok((!caller.actor.may(Action::SendAsAnyUser)).then_some(caller.actor.user_id))
}

#[utoipa::path(
    tag = "messages",
    params(("id" = String, Path, description = "message id")),
    security(("bearer" = [])),
    responses((status = 200, body = MessageView), (status = 404, body = Problem))
)]
#[get("/messages/{id}")]
pub(super) async fn get_message(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<MessageView>, ApiError> {
    Ok(web::Json(read_message(&caller, &state, &id).await?))
}

#[utoipa::path(
    tag = "messages",
    params(("id" = String, Path, description = "message id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "cancelled now, or before (the message as it stands)", body = MessageView),
        (status = 403, body = Problem),
        (status = 404, body = Problem),
        (status = 409, description = "it is being sent right now (message_in_flight), or was sent or failed already (message_finished)", body = Problem)
    )
)]
#[post("/messages/{id}/cancel")]
pub(super) async fn cancel_message(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<MessageView>, ApiError> {
    Ok(web::Json(cancel(&caller, &state, &id).await?))
}

/// `POST /v1/messages/{id}/cancel`: withdraws a message still waiting, if the caller may read
/// it; the message as it stands after.
pub(in crate::http) async fn cancel(
    caller: &TenantCaller,
    state: &AppState,
    raw_id: &str,
) -> Result<MessageView, ApiError> {
    let only_sender = visible_sender(caller)?;
    let id: MessageId = path_id(raw_id, "message")?;
    let tenant = caller.actor.tenant_id;
    let actor = caller.actor.user_id.to_string();
    let now = state.config.clock.now_micros();
    let (outcome, events) = state
        .store
        .run(move |conn| {
            let outcome = messages::cancel(conn, tenant, id, only_sender, &actor, now)?;
            let events = messages::events(conn, id)?;
            Ok((outcome, events))
        })
        .await
        .or_not_found("message")?;
    match outcome {
        messages::Cancelled::Now(record) | messages::Cancelled::Already(record) => {
            Ok(MessageView::of(record, Some(events))?)
        }
        messages::Cancelled::InFlight(_) => Err(ApiError::Conflict {
            code: "message_in_flight",
            detail: "the message is being sent right now and may already be on its way; it can no longer be cancelled (GET it to see how the attempt ends)".into(),
        }),
        messages::Cancelled::Finished(record) => Err(ApiError::Conflict {
            code: "message_finished",
            detail: format!(
                "the message is already {}; only mail still waiting (queued, scheduled, deferred or held) can be cancelled",
                ShownStatus::of(&record.status, record.failed_recipients)
            ),
        }),
    }
}

/// `GET /v1/messages/{id}`: one message with its event log, if the caller may read it (a
/// rep's view of another sender's message is a 404, as if it did not exist).
pub(in crate::http) async fn read_message(
    caller: &TenantCaller,
    state: &AppState,
    raw_id: &str,
) -> Result<MessageView, ApiError> {
    let only_sender = visible_sender(caller)?;
    let id: MessageId = path_id(raw_id, "message")?;
    let tenant = caller.actor.tenant_id;
    let view = state
        .store
        .run(move |conn| {
            let record = messages::get(conn, tenant, id)?;
            if only_sender.is_some_and(|s| s.to_string() != record.sender_user_id) {
                return Err(crate::store::StoreError::NotFound);
            }
            let events = messages::events(conn, id)?;
            MessageView::of(record, Some(events))
        })
        .await
        .or_not_found("message")?;
    Ok(view)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only messages in this status.
    status: Option<String>,
    /// Only messages routed to (or waiting for) this channel.
    channel_id: Option<String>,
    /// Only messages of this sender (admins; reps always see only their own).
    sender_user_id: Option<String>,
    /// Continue after this cursor (`next` of the previous page).
    before: Option<String>,
    /// Page size, 1 to 500 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub(in crate::http) messages: Vec<MessageView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub(in crate::http) next: Option<String>,
}

fn bad_query(detail: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        code: "invalid_query",
        detail: detail.into(),
    }
}

#[utoipa::path(
    tag = "messages",
    params(ListQuery),
    security(("bearer" = [])),
    responses((status = 200, body = MessageList), (status = 400, body = Problem))
)]
#[get("/messages")]
pub(super) async fn list_messages(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<MessageList>, ApiError> {
    Ok(web::Json(list(&caller, &state, query.into_inner()).await?))
}

/// `GET /v1/messages`: a page of messages, newest first; reps get only their own.
pub(in crate::http) async fn list(
    caller: &TenantCaller,
    state: &AppState,
    q: ListQuery,
) -> Result<MessageList, ApiError> {
    let only_sender = visible_sender(caller)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad_query("limit must be 1 to 500"));
    }
    let status = q
        .status
        .as_deref()
        .map(ShownStatus::parse)
        .transpose()
        .map_err(|_| {
            bad_query(
                "status must be queued, sending, sent, partially_sent, deferred, held or failed",
            )
        })?;
    let channel = q
        .channel_id
        .as_deref()
        .map(str::parse::<ChannelId>)
        .transpose()
        .map_err(|e| bad_query(e.reason))?;
    let requested_sender = q
        .sender_user_id
        .as_deref()
        .map(str::parse::<UserId>)
        .transpose()
        .map_err(|e| bad_query(e.reason))?;
    let before = q
        .before
        .as_deref()
        .map(|c| {
            c.split_once('_')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.parse::<MessageId>().ok()?)))
                .map(|(at, id)| (at, id.to_string()))
                .ok_or_else(|| bad_query("before must be a `next` cursor from a previous page"))
        })
        .transpose()?;
    let filter = MessageFilter {
        sender: only_sender.or(requested_sender),
        status,
        channel,
        before,
        limit: limit + 1,
    };
    let tenant = caller.actor.tenant_id;
    let (views, more) = state
        .store
        .run(move |conn| {
            let mut records = messages::list(conn, tenant, &filter)?;
            let more = records.len() as i64 > limit;
            records.truncate(limit as usize);
            let views = records
                .into_iter()
                .map(|r| MessageView::of(r, None))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((views, more))
        })
        .await?;
    let next = if more {
        views
            .last()
            .map(|v| format!("{}_{}", v.created_at.timestamp_micros(), v.id))
    } else {
        None
    };
    Ok(MessageList {
        messages: views,
        next,
    })
}

/// A message to route, without sending it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    from: String,
    /// The sender to route for (admins and IT); the caller by default.
    sender_user_id: Option<String>,
    /// How many recipients (default 1); matters for channels with a per-message limit.
    recipients: Option<u32>,
}

#[utoipa::path(
    tag = "messages",
    request_body = ExplainRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the decision the router would make now: `outcome` (send, hold, defer, reject), `channel_id`, and every candidate with `accepted` and `reason`", body = Object),
        (status = 403, body = Problem), (status = 422, body = Problem)
    )
)]
#[post("/route/explain")]
pub(super) async fn explain_route(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: web::Json<ExplainRequest>,
) -> Result<HttpResponse, ApiError> {
    let decision = explain(&caller, &state, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!(decision)))
}

/// `POST /v1/route/explain`: the decision the router would make now, as the API shows it
/// (`decision_json`); the route page shows the same value.
pub(in crate::http) async fn explain(
    caller: &TenantCaller,
    state: &AppState,
    body: ExplainRequest,
) -> Result<serde_json::Value, ApiError> {
    caller.require(Action::ExplainRoutes)?;
    // A bare address or one with a display name, as in a message's `from`.
    let from = crate::domain::email::Mailbox::parse(&body.from)
        .map(|m| m.address)
        .map_err(|e| ApiError::invalid("from", e))?;
    let sender = match body.sender_user_id.as_deref() {
        None => caller.actor.user_id,
        Some(raw) => {
            let id: UserId = raw
                .parse()
                .map_err(|e| ApiError::invalid("sender_user_id", e))?;
            if id != caller.actor.user_id {
                caller.require(Action::ReadAllChannels)?;
            }
            id
        }
    };
    let recipients = body.recipients.unwrap_or(1).max(1) as usize;
    let tenant = caller.actor.tenant_id;
    let shared_pool = state.config.shared_pool.clone();
    let now = state.config.clock.now_micros();
    let decision = state
        .store
        .run(move |conn| {
            let routes = TenantRoutes::load(conn, tenant, shared_pool.as_ref(), now)?;
            let sender = match resolve_sender(conn, &routes, sender)? {
                Ok(sender) => sender,
                Err(e) => return Ok(Err(e)),
            };
            let decision = routes.route(&sender, &from, recipients);
            let mut shown = decision_json(&decision);
            routes.annotate(&decision, &mut shown);
            // Whether the chosen channel would DKIM-sign it, and with which key (or why not).
            if let Some(channel) = decision.channel()
                && routes.signs_dkim(channel)
            {
                shown["dkim"] = signing_note(conn, tenant, from.domain())?;
            }
            Ok(Ok(shown))
        })
        .await??;
    Ok(decision)
}
