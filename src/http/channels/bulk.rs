//! Rotating a shared credential everywhere at once: after IT changes the password of a relay
//! account (SendGrid, SES, a team's Office 365 relay user), every channel that logs in as that
//! account gets the new one in one call, verified first, all or none.

use std::collections::BTreeMap;

use actix_web::{post, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::checks::{TestResultView, report_view};
use super::input::{one_secret, parse_new_username, refuse_secret_username};
use super::view::ChannelView;
use crate::domain::{Action, AuditActor, ChannelId, ChannelKind, SendChannel, TeamId};
use crate::http::AppState;
use crate::http::auth::TenantCaller;
use crate::http::error::{ApiError, Problem};
use crate::store::channels;
use crate::transport::tester::test_smtp;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRotationRequest {
    /// The SMTP host the credential logs in to, e.g. `smtp.sendgrid.net`.
    host: String,
    /// The user name it logs in as today, e.g. `apikey`.
    username: String,
    /// Only channels owned by this team.
    team_id: Option<String>,
    /// The new password …
    #[schema(value_type = Option<String>, write_only)]
    password: Option<SecretString>,
    /// … or API key: one of the two.
    #[schema(value_type = Option<String>, write_only)]
    api_key: Option<SecretString>,
    /// A new user name, when the provider issued a new pair (SES SMTP credentials).
    new_username: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct BulkQuery {
    #[serde(default)]
    force: bool,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServerTest {
    host: String,
    port: u16,
    /// The channels that log in to this server with these settings.
    channels: Vec<String>,
    result: TestResultView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkRotationView {
    /// The channels that use the credential.
    matched: Vec<ChannelView>,
    /// Whether the new credential logged in everywhere (with `?force=true` it may not have).
    verified: bool,
    /// One login test per distinct server setting; none for a dry run.
    tests: Vec<ServerTest>,
    /// Whether the credentials were replaced (false for a dry run).
    rotated: bool,
}

/// Replace a shared credential in every channel that uses it: every SMTP channel of the
/// tenant (or of one team) that logs in to `host` as `username`. The new credential is
/// tested once per distinct server setting first; only when every test logs in (or with
/// `?force=true`) are all the channels changed, in one transaction. `?dry_run=true` lists the
/// channels that would change and changes nothing. Admins and IT.
#[utoipa::path(
    tag = "channels",
    params(
        ("force" = Option<bool>, Query, description = "store even though a test fails"),
        ("dry_run" = Option<bool>, Query, description = "only list the channels that would change")
    ),
    request_body = BulkRotationRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = BulkRotationView), (status = 403, body = Problem),
        (status = 422, body = Problem)
    )
)]
#[post("/credentials/rotate")]
pub(in crate::http) async fn rotate_shared_credential(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<BulkQuery>,
    body: web::Json<BulkRotationRequest>,
) -> Result<web::Json<BulkRotationView>, ApiError> {
    caller.require(Action::RotateAnyCredential)?;
    let body = body.into_inner();
    let host = body.host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return Err(ApiError::InvalidField {
            field: "host",
            reason: "give the SMTP host the credential logs in to".into(),
        });
    }
    let team = body
        .team_id
        .as_deref()
        .map(|t| {
            t.parse::<TeamId>()
                .map_err(|e| ApiError::invalid("team_id", e))
        })
        .transpose()?;
    let new_username = parse_new_username("new_username", body.new_username)?;
    let tenant = caller.actor.tenant_id;
    let all = state
        .store
        .run(move |conn| channels::list(conn, tenant))
        .await?;
    let matched: Vec<SendChannel> = all
        .into_iter()
        .filter(|c| c.spec.kind == ChannelKind::Smtp)
        .filter(|c| {
            c.spec.smtp.as_ref().is_some_and(|s| {
                s.host.as_str() == host && s.username.as_deref() == Some(body.username.as_str())
            })
        })
        .filter(|c| team.is_none_or(|t| c.spec.owner == crate::domain::ChannelOwner::Team(t)))
        .collect();
    if matched.is_empty() {
        return Err(ApiError::Unprocessable {
            code: "no_matching_channels",
            detail: format!(
                "no SMTP channel of this tenant{} logs in to {host} as `{}`",
                if team.is_some() { " and team" } else { "" },
                body.username
            ),
        });
    }
    if query.dry_run {
        return Ok(web::Json(BulkRotationView {
            matched: matched.into_iter().map(ChannelView::from).collect(),
            verified: false,
            tests: Vec::new(),
            rotated: false,
        }));
    }
    let credential = one_secret(body.password, body.api_key)?;
    refuse_secret_username(
        Some(new_username.as_deref().unwrap_or(&body.username)),
        &credential,
    )?;
    // One test per distinct way of reaching the server: channels that differ only in name,
    // owner or limits share it.
    let mut servers: BTreeMap<
        String,
        (crate::domain::SmtpSettings, Option<String>, Vec<ChannelId>),
    > = BTreeMap::new();
    for channel in &matched {
        let Some(mut smtp) = channel.spec.smtp.clone() else {
            continue;
        };
        if let Some(u) = &new_username {
            smtp.username = Some(u.clone());
        }
        let key = format!(
            "{}:{}:{}:{}:{}:{:?}:{:?}",
            smtp.host,
            smtp.port,
            smtp.security,
            smtp.auth,
            smtp.accept_invalid_certs,
            smtp.ca_pem,
            smtp.pinned_sha256
        );
        servers
            .entry(key)
            .or_insert_with(|| (smtp, channel.spec.provider.clone(), Vec::new()))
            .2
            .push(channel.id);
    }
    let mut tests = Vec::with_capacity(servers.len());
    let mut groups = Vec::with_capacity(servers.len());
    let mut verified = true;
    for (smtp, provider, ids) in servers.into_values() {
        let report = test_smtp(
            &smtp,
            Some(&credential),
            provider.as_deref(),
            &state.config.outbound,
            None,
        )
        .await;
        verified &= report.ok;
        tests.push(ServerTest {
            host: smtp.host.to_string(),
            port: smtp.port,
            channels: ids.iter().map(ToString::to_string).collect(),
            result: report_view(report.clone()),
        });
        groups.push((ids, report.ok));
    }
    if !verified && !query.force {
        return Err(ApiError::VerificationFailed(
            serde_json::to_value(&tests).unwrap_or_default(),
        ));
    }
    let (vault, actor) = (state.vault.clone(), AuditActor::User(caller.actor.user_id));
    let rotated = state
        .store
        .run(move |conn| {
            channels::replace_credentials(
                conn,
                &vault,
                tenant,
                &groups,
                &credential,
                new_username.as_deref(),
                actor,
            )
        })
        .await?;
    tracing::info!(
        channels = rotated.len(),
        verified,
        "shared credential replaced"
    );
    Ok(web::Json(BulkRotationView {
        matched: rotated.into_iter().map(ChannelView::from).collect(),
        verified,
        tests,
        rotated: true,
    }))
}
