//! The public end of an unsubscribe link: `POST /unsubscribe/{token}` (RFC 8058 one-click,
//! what a mailbox provider sends when the recipient clicks "Unsubscribe") suppresses the
//! link's recipient for the tenant at once; `GET` only shows a page with a button that
//! POSTs, because link scanners and previews fetch every URL in a message. No login, no
//! cookie, no CSRF token: the unguessable token is the whole authority, and it can only ever
//! add its own recipient to its own tenant's list. The pages never show the address, and
//! the token appears nowhere in them (the form posts back to the page's own URL) nor in the
//! request log.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, get, post, web};
use maud::{DOCTYPE, Markup, html};

use super::AppState;
use super::ui::security_header_values;
use crate::store::suppressions;
use crate::store::{DbConnection, StoreError};
use crate::vault::TokenHash;

/// Link tokens are 256 bits in URL-safe base64 (`IssuedToken::for_link`).
const TOKEN_LEN: usize = 43;

fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A small page in the admin pages' style, with their security headers; the URL carries a
/// token, so no Referer ever leaves it.
fn page(state: &AppState, status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) }
                link rel="stylesheet" href=(super::ui::CSS_PATH);
            }
            body.bare {
                main id="main" { (body) }
            }
        }
    };
    let mut response = HttpResponse::build(status);
    response.content_type("text/html; charset=utf-8");
    for (name, value) in security_header_values(&state.config) {
        response.insert_header((name, value));
    }
    response.insert_header((
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ));
    response.body(markup.into_string())
}

fn not_found(state: &AppState) -> HttpResponse {
    page(
        state,
        StatusCode::NOT_FOUND,
        "Link not valid",
        html! {
            h1 { "This unsubscribe link is not valid" }
            p { "Check that the whole link was copied. If it came in an email, the unsubscribe option of your email program works too." }
        },
    )
}

fn unavailable(state: &AppState, e: &StoreError) -> HttpResponse {
    tracing::error!(error = %e, "an unsubscribe link could not be answered");
    page(
        state,
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again",
        html! {
            h1 { "Something went wrong" }
            p { "You were not unsubscribed yet. Please try again in a moment." }
        },
    )
}

/// Runs `work` for the link a presented token names; an unknown or malformed token, or a
/// database that does not answer, is the page to show instead.
async fn with_link<T: Send + 'static>(
    state: &AppState,
    token: &str,
    work: fn(&mut DbConnection, &TokenHash) -> Result<Option<T>, StoreError>,
) -> Result<T, HttpResponse> {
    if !well_formed(token) {
        return Err(not_found(state));
    }
    let hash = TokenHash::of(token);
    match state.store.run(move |conn| work(conn, &hash)).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(not_found(state)),
        Err(e) => Err(unavailable(state, &e)),
    }
}

#[utoipa::path(
    tag = "suppressions",
    params(("token" = String, Path, description = "the token of a message's List-Unsubscribe link")),
    responses(
        (status = 200, description = "a page with a button that unsubscribes (HTML); nothing changes", content_type = "text/html"),
        (status = 404, description = "unknown link (HTML page)", content_type = "text/html")
    )
)]
#[get("/unsubscribe/{token}")]
pub(super) async fn unsubscribe_page(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> HttpResponse {
    let link = match with_link(&state, &token, suppressions::link).await {
        Ok(link) => link,
        Err(answer) => return answer,
    };
    page(
        &state,
        StatusCode::OK,
        "Unsubscribe",
        html! {
            h1 { "Unsubscribe" }
            p { "Stop receiving these emails from " strong { (link.tenant_name) } "?" }
            // No action: the form posts to this page's own URL, so the page does not
            // repeat the token.
            form method="post" {
                input type="hidden" name="List-Unsubscribe" value="One-Click";
                button type="submit" { "Unsubscribe" }
            }
        },
    )
}

#[utoipa::path(
    tag = "suppressions",
    params(("token" = String, Path, description = "the token of a message's List-Unsubscribe link")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "`List-Unsubscribe=One-Click` (RFC 8058); any other body, or none, does the same"),
    responses(
        (status = 200, description = "unsubscribed, now or before (HTML page)", content_type = "text/html"),
        (status = 404, description = "unknown link (HTML page)", content_type = "text/html")
    )
)]
#[post("/unsubscribe/{token}")]
pub(super) async fn unsubscribe(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> HttpResponse {
    let (link, added) = match with_link(&state, &token, suppressions::unsubscribe).await {
        Ok(done) => done,
        Err(answer) => return answer,
    };
    tracing::info!(tenant_id = %link.tenant, message_id = %link.message, added, "a recipient unsubscribed");
    page(
        &state,
        StatusCode::OK,
        "Unsubscribed",
        html! {
            h1 { "You are unsubscribed" }
            p { "You will no longer receive these emails from " strong { (link.tenant_name) } "." }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_link_shaped_tokens_reach_the_database() {
        let token = crate::vault::IssuedToken::for_link();
        assert!(well_formed(token.expose()));
        assert!(!well_formed(&token.expose()[1..]));
        assert!(!well_formed(&format!("{}=", &token.expose()[1..])));
        assert!(!well_formed("sb_abc"));
    }
}
