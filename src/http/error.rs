//! The one place where errors become HTTP responses: RFC 9457 problem details with a stable
//! machine-readable `code`. Handlers return `ApiError` and use `?`.

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::DomainError;
use crate::store::StoreError;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:switchboard:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and what to do about it, for a person.
    pub detail: String,
    /// Stable snake_case name of the problem, for programs.
    pub code: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The channel test that failed, for `verification_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub test: Option<serde_json::Value>,
    /// The router's decision, for a message no channel may carry (`no_route`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub route: Option<serde_json::Value>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("no bearer token")]
    MissingToken,
    #[error("the bearer token is not valid")]
    InvalidToken,
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// A well-formed request whose field breaks a rule (422).
    #[error("{field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// A well-formed request that cannot be carried out as asked (422).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A message that breaks a rule; `field` names where (`to[2]`, `headers.X-Campaign`).
    #[error("{field}: {detail}")]
    InvalidMessage {
        code: &'static str,
        field: String,
        detail: String,
    },
    #[error(
        "the message is about {size} bytes, above the limit of {limit} bytes (SWITCHBOARD_MAX_MESSAGE_BYTES)"
    )]
    MessageTooLarge { size: usize, limit: usize },
    /// The router cannot send this message through any channel; `route` says why each
    /// candidate was skipped.
    #[error("{detail}")]
    Unroutable {
        code: &'static str,
        detail: String,
        route: serde_json::Value,
    },
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the database is unavailable")]
    Unavailable(String),
    /// A credential or channel failed its test and was not saved; the test result says why.
    #[error(
        "the connection test failed, so nothing was saved; `test` shows each stage with the server's reply and a hint"
    )]
    VerificationFailed(serde_json::Value),
    /// The service is up but cannot serve yet (readiness).
    #[error("{0}")]
    NotReady(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: &'static str, e: DomainError) -> Self {
        ApiError::InvalidField {
            field,
            reason: e.reason,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MissingToken => "missing_token",
            ApiError::InvalidToken => "invalid_token",
            ApiError::Forbidden { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::InvalidMessage { code, .. }
            | ApiError::Unroutable { code, .. } => code,
            ApiError::MessageTooLarge { .. } => "message_too_large",
            ApiError::NotFound { .. } => "not_found",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unavailable(_) => "database_unavailable",
            ApiError::NotReady(_) => "not_ready",
            ApiError::VerificationFailed(_) => "verification_failed",
            ApiError::Internal(_) => "internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::MissingToken => {
                "send `Authorization: Bearer <token>`; tokens come from POST /v1/users/{id}/tokens".into()
            }
            ApiError::InvalidToken => {
                "the bearer token is unknown, revoked, or belongs to a disabled user".into()
            }
            ApiError::Unavailable(_) => {
                "the database is not answering; try again shortly".into()
            }
            ApiError::Internal(_) => {
                "an unexpected error occurred; it has been logged with this request's id (x-request-id)".into()
            }
            other => other.to_string(),
        }
    }

    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        Problem {
            kind: format!("urn:switchboard:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code().to_owned(),
            field: match self {
                ApiError::InvalidField { field, .. } => Some((*field).to_owned()),
                ApiError::InvalidMessage { field, .. } => Some(field.clone()),
                _ => None,
            },
            route: match self {
                ApiError::Unroutable { route, .. } => Some(route.clone()),
                _ => None,
            },
            test: match self {
                ApiError::VerificationFailed(report) => Some(report.clone()),
                _ => None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MissingToken | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::InvalidField { .. }
            | ApiError::Unprocessable { .. }
            | ApiError::InvalidMessage { .. }
            | ApiError::Unroutable { .. }
            | ApiError::VerificationFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } | ApiError::MessageTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(cause) => tracing::error!(cause = %cause, "internal error"),
            ApiError::Unavailable(cause) => tracing::warn!(cause = %cause, "database unavailable"),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        if matches!(self, ApiError::MissingToken | ApiError::InvalidToken) {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchboard\""),
            ));
        }
        response.json(self.problem())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound { what: "resource" },
            StoreError::Conflict { code, detail } => ApiError::Conflict { code, detail },
            StoreError::MissingReference(what) => ApiError::Unprocessable {
                code: match what {
                    "team" => "unknown_team",
                    "user" => "unknown_user",
                    _ => "unknown_reference",
                },
                detail: format!("no such {what} in this tenant"),
            },
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Store lookups by id answer "not found" naming what was looked for.
pub trait NotFoundAs<T> {
    fn or_not_found(self, what: &'static str) -> Result<T, ApiError>;
}

impl<T> NotFoundAs<T> for Result<T, StoreError> {
    fn or_not_found(self, what: &'static str) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound { what },
            other => other.into(),
        })
    }
}

/// serde's messages quote the offending value ("invalid type: string \"hunter2\""); a value
/// may be a password, so keep the kind of value and drop the value itself.
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(expected) = rest.find(", expected")
        {
            let kind = rest[..expected]
                .split([' ', '`', '"'])
                .next()
                .unwrap_or("value");
            return format!("{prefix}{kind}{}", &rest[expected..]);
        }
    }
    message.to_owned()
}

pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit: *limit },
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) => body_error(e),
        other => ApiError::BadRequest {
            code: "unreadable_body",
            detail: format!("the request body could not be read: {other}"),
        },
    };
    api.into()
}

/// Syntax errors are 400 (not JSON at all); JSON of the wrong shape is 422.
pub fn body_error(e: &serde_json::Error) -> ApiError {
    if e.is_data() {
        ApiError::Unprocessable {
            code: "invalid_body",
            detail: format!(
                "the request body does not match the schema: {}",
                without_values(&e.to_string())
            ),
        }
    } else {
        ApiError::BadRequest {
            code: "malformed_json",
            detail: format!("the request body is not valid JSON: {e}"),
        }
    }
}

pub fn path_error(_err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::NotFound { what: "resource" }.into()
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest {
        code: "invalid_query",
        detail: format!(
            "the query string is not valid: {}",
            without_values(&err.to_string())
        ),
    }
    .into()
}

/// For paths no route matches.
pub async fn no_route() -> HttpResponse {
    ApiError::NotFound { what: "endpoint" }.error_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_values_are_not_echoed() {
        let e = serde_json::from_str::<bool>("\"Canary-Secret\"").unwrap_err();
        let shown = without_values(&e.to_string());
        assert!(!shown.contains("Canary-Secret"), "{shown}");
        assert!(
            shown.starts_with("invalid type: string, expected a boolean"),
            "{shown}"
        );
    }

    #[test]
    fn every_problem_names_its_code_in_its_type() {
        let p = ApiError::Conflict {
            code: "email_taken",
            detail: "x".into(),
        }
        .problem();
        assert_eq!(p.status, 409);
        assert_eq!(p.kind, "urn:switchboard:problem:email_taken");
        assert_eq!(p.title, "Conflict");
    }
}
