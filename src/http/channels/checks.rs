//! Testing a channel against its server, and replacing its credential only once the new one
//! logs in.

use actix_web::{post, put, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::input::{one_secret, parse_address, parse_new_username, refuse_secret_username};
use super::trust::CertificateView;
use super::view::ChannelView;
use super::{require_manage, visible_one};
use crate::domain::channel::TestSenderError;
use crate::domain::{Action, AuditActor, ChannelKind, ChannelOwner, ChannelStatus, SendChannel};
use crate::http::AppState;
use crate::http::auth::TenantCaller;
use crate::http::error::{ApiError, NotFoundAs, Problem};
use crate::http::extract::optional_json;
use crate::store::channels;
use crate::transport::tester::{TestReport, test_smtp};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestChannelRequest {
    /// Also send a short test message to this address.
    send_to: Option<String>,
    /// The From of the test message (domain channels; defaults to no-reply@ its first
    /// domain). Mailbox channels always use their own address.
    from: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestStageView {
    /// `connect`, `tls`, `ehlo`, `auth` or `send`.
    stage: String,
    ok: bool,
    code: Option<u16>,
    message: String,
    hint: Option<String>,
    /// The `tls` stage, when the server's certificate was refused: what the server
    /// presented (compare its `sha256` with the server's, then trust it by that fingerprint).
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestResultView {
    ok: bool,
    stages: Vec<TestStageView>,
    /// `auth`, `tls`, `network`, `temporary`, `permanent` or `protocol`, when a stage failed.
    classification: Option<String>,
}

pub(super) fn report_view(report: TestReport) -> TestResultView {
    TestResultView {
        ok: report.ok,
        stages: report
            .stages
            .into_iter()
            .map(|s| TestStageView {
                stage: s.stage.to_owned(),
                ok: s.ok,
                code: s.code,
                message: s.message,
                hint: s.hint,
                certificate: s.certificate.map(CertificateView::from),
            })
            .collect(),
        classification: report
            .classification
            .and_then(|c| serde_json::to_value(c).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
    }
}

pub(super) fn report_json(report: TestReport) -> serde_json::Value {
    serde_json::to_value(report_view(report)).unwrap_or_default()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialRequest {
    /// The new password (mailboxes) …
    #[schema(value_type = Option<String>, write_only)]
    password: Option<SecretString>,
    /// … or API key (relays): one of the two.
    #[schema(value_type = Option<String>, write_only)]
    api_key: Option<SecretString>,
    /// A new username, for credentials that come as a pair (new SES SMTP credentials, a new
    /// Postmark SMTP token): tested and stored together with the secret.
    username: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ForceQuery {
    #[serde(default)]
    force: bool,
}

/// Replace a channel's password or API key. The new credential is tested against the server
/// first and stored only if the login works (or, with `?force=true`, stored unverified);
/// until then the old one stays in use. A verified credential makes a `needs_reauth`
/// channel active again.
#[utoipa::path(
    tag = "channels",
    params(
        ("id" = String, Path, description = "channel id"),
        ("force" = Option<bool>, Query, description = "store even though the test fails")
    ),
    request_body = CredentialRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ChannelView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)
    )
)]
#[put("/channels/{id}/credentials")]
pub(in crate::http) async fn replace_credential(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ForceQuery>,
    body: web::Json<CredentialRequest>,
) -> Result<web::Json<ChannelView>, ApiError> {
    match rotate_credential(&caller, &state, &id, query.force, body.into_inner()).await? {
        Ok(replaced) => Ok(web::Json(replaced.channel.into())),
        Err(refused) => Err(ApiError::VerificationFailed(report_json(refused.report))),
    }
}

/// A credential that was stored.
pub(in crate::http) struct Replaced {
    pub channel: SendChannel,
    /// It brought a `needs_reauth` or `failing` channel back, and its held mail was released.
    pub reactivated: bool,
}

/// A credential whose login test failed: nothing was stored, the old one stays in use.
pub(in crate::http) struct Refused {
    pub channel: SendChannel,
    pub report: TestReport,
}

/// Replaces a channel's credential once it logs in (or unverified with `force`): the work of
/// `PUT /v1/channels/{id}/credentials` and of the rotation form on the channel's page. The
/// outer error refuses the request; the inner one is a login that failed.
pub(in crate::http) async fn rotate_credential(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
    force: bool,
    body: CredentialRequest,
) -> Result<Result<Replaced, Refused>, ApiError> {
    let channel = visible_one(caller, state, id).await?;
    let own = matches!(channel.spec.owner, ChannelOwner::User(u) if u == caller.actor.user_id);
    if channel.spec.owner == ChannelOwner::Platform {
        require_manage(caller, channel.spec.owner)?;
    }
    if !own {
        caller.require(Action::RotateAnyCredential)?;
    }
    let credential = one_secret(body.password, body.api_key)?;
    let Some(mut smtp) = channel.spec.smtp.clone() else {
        return Err(ApiError::Unprocessable {
            code: "not_testable",
            detail: "this channel has no password (Gmail and Microsoft channels reconnect instead)"
                .into(),
        });
    };
    let new_username = parse_new_username("username", body.username)?;
    if let Some(username) = &new_username {
        smtp.username = Some(username.clone());
    }
    refuse_secret_username(smtp.username.as_deref(), &credential)?;
    let report = test_smtp(
        &smtp,
        Some(&credential),
        channel.spec.provider.as_deref(),
        &state.config.outbound,
        None,
    )
    .await;
    let verified = report.ok;
    if !verified && !force {
        return Ok(Err(Refused { channel, report }));
    }
    let (tenant, channel_id, actor) = (
        caller.actor.tenant_id,
        channel.id,
        AuditActor::User(caller.actor.user_id),
    );
    let vault = state.vault.clone();
    let updated = state
        .store
        .run(move |conn| {
            let credential = channels::NewCredential {
                secret: &credential,
                username: new_username.as_deref(),
                verified,
            };
            channels::replace_credential(conn, &vault, tenant, channel_id, &credential, actor)
        })
        .await
        .or_not_found("channel")?;
    tracing::info!(channel_id = %channel_id, verified, "credential replaced");
    let reactivated =
        channel.status != ChannelStatus::Active && updated.status == ChannelStatus::Active;
    Ok(Ok(Replaced {
        channel: updated,
        reactivated,
    }))
}

/// Test a channel: connect, TLS, EHLO, login and, when asked, send a test message. Each
/// stage reports the server's reply and a hint. The owner, admins and IT may test.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    request_body(content = Option<TestChannelRequest>),
    security(("bearer" = [])),
    responses((status = 200, body = TestResultView), (status = 403, body = Problem), (status = 404, body = Problem))
)]
#[post("/channels/{id}/test")]
pub(in crate::http) async fn test_channel(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<web::Json<TestResultView>, ApiError> {
    let (_, report) = run_test(&caller, &state, &id, &body).await?;
    Ok(web::Json(report_view(report)))
}

/// Tests a channel against its server and records the outcome: the work of
/// `POST /v1/channels/{id}/test` and of the test panel on the channel's page. `body` is the
/// API's JSON body ([`TestChannelRequest`]; empty for a plain login test), read only once
/// the caller may test, so both refuse the same things in the same order. Returns the
/// channel tested with the report.
pub(in crate::http) async fn run_test(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
    body: &[u8],
) -> Result<(SendChannel, TestReport), ApiError> {
    let channel = visible_one(caller, state, id).await?;
    let own = matches!(channel.spec.owner, ChannelOwner::User(u) if u == caller.actor.user_id);
    if !own {
        caller.require(Action::TestAnyChannel)?;
    }
    let request: TestChannelRequest = optional_json(body)?;
    let Some(smtp) = channel.spec.smtp.clone() else {
        return Err(ApiError::Unprocessable {
            code: "not_testable",
            detail: "only SMTP channels can be tested this way".into(),
        });
    };
    let send = match parse_address("send_to", request.send_to.as_deref())? {
        None => None,
        Some(to) => {
            let from = channel
                .test_sender(parse_address("from", request.from.as_deref())?)
                .map_err(|e| match e {
                    TestSenderError::NotInDomains => ApiError::InvalidField {
                        field: "from",
                        reason: "must be an address in one of the channel's domains".into(),
                    },
                    TestSenderError::NoDomain => ApiError::Unprocessable {
                        code: "no_from",
                        detail: "give `from`".into(),
                    },
                })?;
            Some(crate::transport::tester::TestSend {
                from,
                to,
                deliver: true,
            })
        }
    };
    let (tenant, channel_id) = (caller.actor.tenant_id, channel.id);
    let vault = state.vault.clone();
    let credential = match (&state.config.shared_pool, channel.spec.kind) {
        (Some(pool), ChannelKind::SharedPool) => pool.credential.clone(),
        _ => {
            state
                .store
                .run(move |conn| channels::credential(conn, &vault, tenant, channel_id))
                .await?
        }
    };
    let report = test_smtp(
        &smtp,
        credential.as_ref(),
        channel.spec.provider.as_deref(),
        &state.config.outbound,
        send,
    )
    .await;
    let failed_stage = report.stages.iter().find(|s| !s.ok).map(|s| s.stage);
    let detail = serde_json::json!({
        "ok": report.ok,
        "failed_stage": failed_stage,
        "classification": report.classification,
    });
    let (ok, actor) = (report.ok, AuditActor::User(caller.actor.user_id));
    state
        .store
        .run(move |conn| channels::record_test(conn, tenant, channel_id, ok, detail, actor))
        .await?;
    tracing::info!(channel_id = %channel_id, ok = report.ok, failed_stage = ?failed_stage, "channel tested");
    Ok((channel, report))
}

/// [`rotate_credential`] (verified, never forced), for the rotation form of a channel's
/// page: one secret (a password or an API key log in alike) and perhaps a new username.
pub(in crate::http) async fn rotate_verified(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
    secret: SecretString,
    username: Option<String>,
) -> Result<Result<Replaced, Refused>, ApiError> {
    let body = CredentialRequest {
        password: Some(secret),
        api_key: None,
        username,
    };
    rotate_credential(caller, state, id, false, body).await
}
