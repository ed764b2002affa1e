//! A refused server certificate on a channel's page: what the server presented, and a
//! "Trust this certificate" button (`POST /v1/channels/{id}/trusted-certificate`'s own code),
//! like a mail client's security exception.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::UiError;
use super::super::layout::{self, Section};
use super::super::session::{self, UiPost, UiSession};
use crate::domain::{CertificateFingerprint, SendChannel};
use crate::http::AppState;
use crate::http::channels::{require_manage, trust};
use crate::http::error::ApiError;
use crate::transport::tester::{CertificateReport, TestReport};

/// What the server presented, as a person compares it with what the server's administrator
/// says.
pub(super) fn certificate_details(certificate: &CertificateReport) -> Markup {
    let p = &certificate.presented;
    let day = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    html! {
        dl.certificate {
            dt { "Subject" } dd { (p.subject) }
            dt { "Issuer" } dd { (p.issuer) @if p.self_signed { " (self-signed)" } }
            dt { "Names" } dd { (p.names.join(", ")) }
            dt { "Valid" } dd { (day(p.not_before)) " to " (day(p.not_after)) }
            dt { "SHA-256 fingerprint" } dd { code.fingerprint { (p.sha256) } }
            @if let Some(trusted) = &certificate.trusted_sha256 {
                dt { "Trusted until now" } dd { code.fingerprint { (trusted) } }
            }
        }
    }
}

/// The "Trust this certificate" button under a test whose TLS stage refused a certificate
/// that trusting would cure; empty when the viewer may not edit the channel, or when the
/// certificate is outside its dates (trusting it would not help).
pub(super) fn trust_form(
    session: &UiSession,
    channel: &SendChannel,
    report: &TestReport,
) -> Markup {
    let Some(certificate) = report
        .stages
        .iter()
        .filter(|s| !s.ok && s.stage == "tls")
        .find_map(|s| s.certificate.as_ref())
    else {
        return html! {};
    };
    if matches!(certificate.problem.as_str(), "expired" | "not_yet_valid")
        || require_manage(&session.caller, channel.spec.owner).is_err()
    {
        return html! {};
    }
    html! {
        form.stacked.trust method="post" action={"/ui/channels/" (channel.id) "/trust-certificate"} {
            (layout::csrf(session))
            input type="hidden" name="sha256" value=(certificate.presented.sha256);
            p.muted {
                "Compare the fingerprint with the one the server's administrator gives you "
                "(" code { "openssl x509 -noout -fingerprint -sha256 -in cert.pem" } "). "
                "If they match, this channel will accept exactly this certificate."
            }
            div.actions {
                button type="submit" data-busy="Checking…" { "Trust this certificate" }
            }
        }
    }
}

#[derive(Deserialize)]
struct TrustForm {
    sha256: String,
}

async fn trust_certificate(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<TrustForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let refused = |status: StatusCode, detail: String| {
        let body = html! {
            p { a href={"/ui/channels/" (id.as_str())} { "← Back to the channel" } }
            h1 { "Certificate not trusted" }
            p.notice.error { (detail) }
        };
        layout::page_with_status(
            status,
            &session,
            Section::Channels,
            "Certificate not trusted",
            body,
        )
    };
    let fingerprint = match CertificateFingerprint::parse(&form.sha256) {
        Ok(f) => f,
        Err(e) => return Ok(refused(StatusCode::UNPROCESSABLE_ENTITY, e.reason)),
    };
    match trust(&session.caller, &state, &id, fingerprint).await {
        Ok(channel) => Ok(session::redirect_with_flash(
            &req,
            &format!("/ui/channels/{}", channel.id),
            &format!(
                "The certificate {fingerprint} is trusted for this channel. Test the connection again to see it work."
            ),
        )),
        Err(e @ (ApiError::Conflict { .. } | ApiError::Unprocessable { .. })) => {
            let status = actix_web::ResponseError::status_code(&e);
            Ok(refused(status, e.problem().detail))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/channels/{id}/trust-certificate",
        web::post().to(trust_certificate),
    );
}
