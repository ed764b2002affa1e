//! What a page shows when a request cannot be served: the sign-in redirect, a refused form,
//! or the API's own error as a page. Form errors that belong next to a field are not here:
//! handlers render those in the form (`forms::FieldErrors`).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use maud::html;

use super::layout;
use crate::http::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No live session: a page request is sent to sign in and comes back to `next`.
    #[error("sign in to continue")]
    SignInRequired { next: Option<String> },
    /// A form without a valid CSRF token, or posted from another site.
    #[error("this form has expired or came from another site; reload the page and submit it again")]
    Csrf,
    #[error("the form could not be read: {detail}")]
    BadForm { detail: String },
    /// What the API said, shown as a page.
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("internal error")]
    Internal(String),
}

impl UiError {
    fn message(&self) -> String {
        match self {
            UiError::Api(e) => e.problem().detail,
            UiError::Internal(_) => {
                "Something went wrong on our side. It has been logged; try again in a moment."
                    .into()
            }
            other => other.to_string(),
        }
    }

    fn title(&self) -> &'static str {
        match self.status_code() {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::CONFLICT => "Cannot do that now",
            s if s.is_server_error() => "Something went wrong",
            _ => "Cannot do that",
        }
    }
}

/// Where a browser may be sent back to after signing in or after Google's consent: the
/// pages' own paths only, so neither can be used to send a browser to another site.
pub fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        (*n == "/ui" || n.starts_with("/ui/") || n.starts_with("/ui?"))
            && !n.contains("//")
            && !n.contains('\\')
    })
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            UiError::SignInRequired { .. } => StatusCode::SEE_OTHER,
            UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::BadForm { .. } => StatusCode::BAD_REQUEST,
            UiError::Api(e) => e.status_code(),
            UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            UiError::SignInRequired { next } => {
                let location = match safe_next(next.as_deref()) {
                    Some(next) => format!(
                        "/ui/sign-in?{}",
                        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
                    ),
                    None => "/ui/sign-in".to_owned(),
                };
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, location))
                    .finish();
            }
            UiError::Internal(cause) => tracing::error!(cause = %cause, "page failed"),
            UiError::Api(ApiError::Internal(cause)) => {
                tracing::error!(cause = %cause, "page failed")
            }
            _ => {}
        }
        let message = self.message();
        let body = html! {
            h1 { (self.title()) }
            p.notice.error role="alert" { (message) }
            p { a href="/ui/channels" { "Back to channels" } }
        };
        layout::bare(self.status_code(), self.title(), body)
    }
}

pub async fn not_found() -> HttpResponse {
    UiError::Api(ApiError::NotFound { what: "page" }).error_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_returns_only_to_local_pages() {
        assert_eq!(
            safe_next(Some("/ui/channels?x=1")),
            Some("/ui/channels?x=1")
        );
        assert_eq!(safe_next(Some("//evil.example/ui")), None);
        assert_eq!(safe_next(Some("https://evil.example/ui")), None);
        assert_eq!(safe_next(Some("/ui\\..\\evil")), None);
        assert_eq!(safe_next(Some("/v1/channels")), None);
        assert_eq!(safe_next(Some("/uievil")), None);
        assert_eq!(safe_next(Some("/ui//evil.example")), None);
        assert_eq!(safe_next(Some("/ui/channels")), Some("/ui/channels"));
    }
}
