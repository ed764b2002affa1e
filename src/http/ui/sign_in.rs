//! Signing in with an API token (until the product has its own identity provider), and
//! signing out. The token is exchanged for a session cookie once; it is never stored in the
//! browser or shown again.

use crate::http::ui::forms::NoFields;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::errors::safe_next;
use super::forms::{FieldErrors, Input};
use super::session::{self, CSRF_FIELD, SignInGuard, UiPost, UiSession};
use super::{UiError, layout};

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn form(
    req: &HttpRequest,
    next: Option<&str>,
    errors: &FieldErrors,
    status: StatusCode,
) -> HttpResponse {
    let guard = SignInGuard::for_request(req);
    let notice = session::take_flash(req);
    let body = html! {
        h1 { "Sign in to Switchboard" }
        @if let Some(text) = notice { p.notice.success role="status" { (text) } }
        (errors.summary())
        form.stacked method="post" action="/ui/sign-in" {
            input type="hidden" name=(CSRF_FIELD) value=(guard.value);
            @if let Some(next) = next { input type="hidden" name="next" value=(next); }
            (Input::password("token", "API token")
                .required()
                .autocomplete("off")
                .hint(html! {
                    "Your personal token (it starts with " code { "sb_" } "). An admin issues it under "
                    code { "POST /v1/users/{id}/tokens" } "; see docs/admin-ui.md. "
                    "Revoking the token signs out every session opened with it."
                })
                .render(errors))
            button type="submit" { "Sign in" }
        }
    };
    let mut response = layout::bare(status, "Sign in", body);
    guard.set_on(req, &mut response);
    response
}

async fn show(req: HttpRequest, query: web::Query<NextQuery>) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    if <UiSession as actix_web::FromRequest>::extract(&req)
        .await
        .is_ok()
    {
        return redirect(next.unwrap_or("/ui/channels"));
    }
    form(&req, next, &FieldErrors::none(), StatusCode::OK)
}

#[derive(Deserialize)]
struct SignInForm {
    token: String,
    next: Option<String>,
}

async fn sign_in(req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, UiError> {
    SignInGuard::verify(&req, &body)?;
    let input: SignInForm = serde_urlencoded::from_bytes(&body).map_err(|_| UiError::BadForm {
        detail: "the sign-in form needs a token".into(),
    })?;
    let next = safe_next(input.next.as_deref())
        .unwrap_or("/ui/channels")
        .to_owned();
    let token = input.token.trim();
    if token.is_empty() {
        let errors = FieldErrors::on("token", "Enter your API token");
        return Ok(form(
            &req,
            Some(&next),
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let mut response = HttpResponse::SeeOther();
    match session::open(&req, token, &mut response).await? {
        Some(actor) => {
            tracing::info!(tenant_id = %actor.tenant_id, user_id = %actor.user_id, "signed in to the pages");
            Ok(response.insert_header((header::LOCATION, next)).finish())
        }
        None => {
            tracing::info!(
                "a sign-in with an unknown, revoked or disabled user's token was refused"
            );
            let errors = FieldErrors::on(
                "token",
                "This token is unknown or revoked, or its user is disabled. Check that you copied all of it, or ask an admin for a new one.",
            );
            Ok(form(&req, Some(&next), &errors, StatusCode::UNAUTHORIZED))
        }
    }
}

async fn sign_out(req: HttpRequest, _post: UiPost<NoFields>) -> Result<HttpResponse, UiError> {
    let mut response = HttpResponse::SeeOther();
    session::close(&req, &mut response).await?;
    session::flash(&req, &mut response, "You are signed out.");
    Ok(response
        .insert_header((header::LOCATION, "/ui/sign-in"))
        .finish())
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to.to_owned()))
        .finish()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sign-in", web::get().to(show))
        .route("/sign-in", web::post().to(sign_in))
        .route("/sign-out", web::post().to(sign_out));
}
