//! Trusting a channel's server certificate by its fingerprint, the way a mail client keeps a
//! security exception; and how a refused certificate looks in a test report.

use actix_web::{post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::view::ChannelView;
use super::{require_manage, visible_one};
use crate::domain::{AuditActor, CertificateFingerprint, SendChannel};
use crate::http::AppState;
use crate::http::auth::TenantCaller;
use crate::http::error::{ApiError, NotFoundAs, Problem};
use crate::transport::smtp::presented_certificate;
use crate::transport::tester::CertificateReport;

/// The certificate a server presented when the `tls` stage refused it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// The subject's distinguished name, e.g. `CN=mail.example`.
    subject: String,
    issuer: String,
    /// DNS names and IP addresses it is for (subjectAltName, or the CN when it has none).
    names: Vec<String>,
    not_before: chrono::DateTime<chrono::Utc>,
    not_after: chrono::DateTime<chrono::Utc>,
    /// SHA-256 fingerprint as colon-separated hex pairs (`AB:CD:…`), as browsers show it:
    /// compare it with the server's, then trust it with
    /// `POST /v1/channels/{id}/trusted-certificate`.
    sha256: String,
    /// Issued by itself (no authority vouches for it).
    self_signed: bool,
    /// Why it was refused: `unknown_issuer`, `ca_used_as_end_entity`, `expired`,
    /// `not_yet_valid`, `wrong_name`, `changed` (no longer the trusted one) or `other`.
    problem: String,
    /// For `changed`: the fingerprint that was trusted for the channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted_sha256: Option<String>,
}

impl From<CertificateReport> for CertificateView {
    fn from(c: CertificateReport) -> Self {
        let p = c.presented;
        Self {
            subject: p.subject,
            issuer: p.issuer,
            names: p.names,
            not_before: p.not_before,
            not_after: p.not_after,
            sha256: p.sha256,
            self_signed: p.self_signed,
            problem: c.problem,
            trusted_sha256: c.trusted_sha256,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustCertificateRequest {
    /// The SHA-256 fingerprint the test report showed (`AB:CD:…`; colons optional).
    sha256: String,
}

/// Trust the server certificate with this fingerprint for this channel (a security
/// exception): from then on the channel accepts exactly that certificate, whoever issued it,
/// while its dates are valid. The server is asked first: a fingerprint it does not present
/// now is refused (409 `certificate_not_presented`). Whoever may edit the channel may do it.
#[utoipa::path(
    tag = "channels",
    params(("id" = String, Path, description = "channel id")),
    request_body = TrustCertificateRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = ChannelView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "the server does not present this certificate now (certificate_not_presented)", body = Problem),
        (status = 422, description = "a malformed fingerprint (invalid_field), a certificate outside its dates (certificate_not_valid_now), or a server that could not be asked (certificate_check_failed)", body = Problem)
    )
)]
#[post("/channels/{id}/trusted-certificate")]
pub(in crate::http) async fn trust_certificate(
    caller: TenantCaller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<TrustCertificateRequest>,
) -> Result<web::Json<ChannelView>, ApiError> {
    let fingerprint =
        CertificateFingerprint::parse(&body.sha256).map_err(|e| ApiError::invalid("sha256", e))?;
    Ok(web::Json(
        trust(&caller, &state, &id, fingerprint).await?.into(),
    ))
}

/// Trusts the certificate with `fingerprint` for the channel once its server shows it: the
/// work of `POST /v1/channels/{id}/trusted-certificate` and of the "Trust this certificate"
/// button on the channel's page.
pub(in crate::http) async fn trust(
    caller: &TenantCaller,
    state: &AppState,
    id: &str,
    fingerprint: CertificateFingerprint,
) -> Result<SendChannel, ApiError> {
    let channel = visible_one(caller, state, id).await?;
    require_manage(caller, channel.spec.owner)?;
    let Some(smtp) = channel.spec.smtp.clone() else {
        return Err(ApiError::Unprocessable {
            code: "not_smtp",
            detail: "only SMTP channels have a server certificate to trust".into(),
        });
    };
    // Asked with the fingerprint already trusted: whatever else is wrong with the
    // certificate then is something trusting it would not cure.
    let mut trial = smtp.clone();
    trial.pinned_sha256 = Some(fingerprint);
    trial.accept_invalid_certs = false;
    let (presented, rejection) = presented_certificate(&trial, &state.config.outbound)
        .await
        .map_err(|e| ApiError::Unprocessable {
            code: "certificate_check_failed",
            detail: format!(
                "the server could not be asked for its certificate, so nothing was trusted: {e}"
            ),
        })?;
    if presented != fingerprint {
        return Err(ApiError::Conflict {
            code: "certificate_not_presented",
            detail: format!(
                "{}:{} presents the certificate {presented} now, not {fingerprint}: run the test again and compare the fingerprint it shows with the server's before trusting it",
                smtp.host, smtp.port
            ),
        });
    }
    if let Some(rejection) = rejection {
        // With the fingerprint trusted, only the dates (or an unreadable certificate) remain.
        return Err(ApiError::Unprocessable {
            code: "certificate_not_valid_now",
            detail: format!(
                "{}: trusting it would not help; the server's administrator must replace it",
                rejection.problem
            ),
        });
    }
    let (tenant, channel_id, actor) = (
        caller.actor.tenant_id,
        channel.id,
        AuditActor::User(caller.actor.user_id),
    );
    let updated = state
        .store
        .run(move |conn| {
            crate::store::channels::trust_certificate(conn, tenant, channel_id, fingerprint, actor)
        })
        .await
        .or_not_found("channel")?;
    tracing::info!(channel_id = %channel_id, sha256 = %fingerprint, "server certificate trusted");
    Ok(updated)
}
