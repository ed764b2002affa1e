//! The admin pages under `/ui`: server-rendered HTML (maud), forms that work without
//! JavaScript, and one small script that makes some of them answer in place. Page handlers
//! call the same functions as the JSON API, so a page can do nothing the API would refuse.
//! May import everything `http` may.

mod assets;
mod audit;
mod channels;
mod chart;
mod dashboard;
mod domains;
mod errors;
mod forms;
mod home;
mod labels;
mod layout;
mod messages;
mod overview;
mod people;
mod routes;
pub mod session;
mod settings;
mod sign_in;
mod suppressions;
mod window_fields;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next, from_fn};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};

pub use assets::CSS_PATH;
pub use errors::{UiError, safe_next};

use crate::config::Config;

/// The request header the page script sends when it wants only the part of a page that
/// answers a form (the test results, say), not the whole page.
pub const FRAGMENT_HEADER: &str = "x-switchboard-fragment";

/// Whether the request came from the page script and wants a fragment.
pub fn wants_fragment(req: &HttpRequest) -> bool {
    req.headers().contains_key(FRAGMENT_HEADER)
}

/// Every page: no caching (pages show channel states and carry CSRF tokens), no framing,
/// scripts and styles from this origin only. Forms may post here and, for Connect Gmail,
/// be redirected on to Google's consent page (Chromium applies form-action to redirects).
/// The public unsubscribe pages send the same.
pub fn security_header_values(config: &Config) -> [(header::HeaderName, String); 5] {
    let google = config
        .google
        .as_ref()
        .map(|g| format!(" {}", g.auth_url.origin().ascii_serialization()))
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'{google}; frame-ancestors 'none'; base-uri 'none'"
    );
    [
        (header::CONTENT_SECURITY_POLICY, csp),
        (header::CACHE_CONTROL, "no-store".to_owned()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::REFERRER_POLICY, "same-origin".to_owned()),
        (header::X_FRAME_OPTIONS, "DENY".to_owned()),
    ]
}

/// `security_header_values` on every response of the `/ui` scope.
pub fn security_headers(config: &Config) -> DefaultHeaders {
    security_header_values(config)
        .into_iter()
        .fold(DefaultHeaders::new(), |headers, pair| headers.add(pair))
}

/// Clears a flash notice once a page has displayed it.
async fn clear_shown_flash(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = next.call(req).await?;
    let shown = response
        .request()
        .extensions()
        .get::<session::FlashShown>()
        .is_some_and(|f| f.0);
    if shown
        && response.status().is_success()
        && let Some(clear) = session::clear_flash(response.request())
        && let Ok(value) = HeaderValue::from_str(&clear)
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The `/ui` scope with every page, behind `security_headers`.
pub fn scope(
    headers: DefaultHeaders,
) -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("/ui")
        .wrap(from_fn(clear_shown_flash))
        .wrap(headers)
        .configure(assets::routes)
        .configure(sign_in::routes)
        .configure(home::routes)
        .configure(overview::routes)
        .configure(channels::routes)
        .configure(routes::routes)
        .configure(messages::routes)
        .configure(audit::routes)
        .configure(domains::routes)
        .configure(settings::routes)
        .configure(suppressions::routes)
        .configure(people::routes)
        .default_service(web::to(errors::not_found))
}

/// `/` sends a browser to the pages.
pub async fn root() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}
