//! The HTTP API (actix-web): routes, the auth extractors, the error mapping, the OpenAPI
//! document. May import every other module of ours.

mod audit;
pub mod auth;
mod channels;
pub(crate) mod domain_dkim;
pub(crate) mod domain_health;
mod domains;
pub mod error;
mod extract;
mod gmail_bulk;
mod health;
mod messages;
mod oauth;
mod openapi;
mod request_log;
mod suppressions;
mod teams;
mod tenants;
mod tokens;
pub mod ui;
mod unsubscribe;
mod users;
mod webhooks;

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, web};
use utoipa::OpenApi;
use utoipa_actix_web::{AppExt, scope};

use crate::config::Config;
use crate::domains::Domains;
use crate::oauth::google::Google;
use crate::outbox::Outbox;
use crate::store::Store;
use crate::vault::{TokenHash, Vault};

pub use request_log::REQUEST_ID;

/// Everything a request handler may need, built once at start.
pub struct AppState {
    pub store: Store,
    pub vault: Arc<Vault>,
    pub config: Arc<Config>,
    /// Wakes this process's delivery workers when mail is accepted.
    pub outbox: Outbox,
    /// Google's OAuth client, when Gmail is configured.
    pub google: Option<Arc<Google>>,
    /// Microsoft's OAuth client, when Microsoft is configured.
    pub microsoft: Option<Arc<crate::oauth::microsoft::Microsoft>>,
    /// Hash of `SWITCHBOARD_OPERATOR_TOKEN`, when one is configured.
    pub configured_operator_token: Option<TokenHash>,
    /// Domain claims and their DNS checks.
    pub domains: Arc<Domains>,
}

/// Largest JSON body the management endpoints accept.
pub const JSON_LIMIT: usize = 64 * 1024;

/// Registers every documented route; the OpenAPI document is collected from the same calls,
/// so a route cannot exist without being described.
fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(oauth::google_callback)
        .service(oauth::microsoft_callback)
        .service(unsubscribe::unsubscribe_page)
        .service(unsubscribe::unsubscribe)
        .service(
            scope("/v1")
                .service(tenants::create_tenant)
                .service(tenants::list_tenants)
                .service(tenants::delete_tenant)
                .service(tenants::get_tenant)
                .service(tenants::update_tenant)
                .service(users::me)
                .service(teams::create_team)
                .service(teams::list_teams)
                .service(teams::get_team)
                .service(teams::update_team)
                .service(users::create_user)
                .service(users::list_users)
                .service(users::get_user)
                .service(users::update_user)
                .service(tokens::issue_token)
                .service(tokens::list_tokens)
                .service(tokens::revoke_token)
                .service(channels::create_channel)
                .service(channels::list_channels)
                .service(channels::get_channel)
                .service(channels::update_channel)
                .service(channels::delete_channel)
                .service(channels::test_channel)
                .service(channels::replace_credential)
                .service(channels::trust_certificate)
                .service(channels::rotate_shared_credential)
                .service(channels::list_providers)
                .service(channels::disconnect_oauth)
                .service(channels::pause_channel)
                .service(channels::resume_channel)
                .service(oauth::google_start)
                .service(oauth::microsoft_start)
                .service(audit::list_audit)
                .service(webhooks::create_webhook)
                .service(webhooks::list_webhooks)
                .service(webhooks::get_webhook)
                .service(webhooks::update_webhook)
                .service(webhooks::delete_webhook)
                .service(webhooks::rotate_webhook_secret)
                .service(webhooks::list_webhook_deliveries)
                .service(messages::send_message)
                .service(messages::send_batch)
                .service(messages::list_messages)
                .service(messages::get_message)
                .service(messages::cancel_message)
                .service(messages::explain_route)
                .service(domains::claim_domain)
                .service(domains::list_domains)
                .service(domains::get_domain)
                .service(domains::verify_domain)
                .service(domains::delete_domain)
                .service(suppressions::list_suppressions)
                .service(suppressions::add_suppression)
                .service(suppressions::remove_suppression)
                .service(domain_health::update_domain)
                .service(channels::check_channel_health)
                .service(domain_dkim::rotate_dkim_key)
                .service(channels::get_channel_stats),
        );
}

/// The whole application for one HTTP worker.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let ui_headers = ui::security_headers(&state.config);
    App::new()
        .into_utoipa_app()
        .openapi(openapi::ApiDoc::openapi())
        .app_data(state)
        .app_data(
            web::JsonConfig::default()
                .limit(JSON_LIMIT)
                .error_handler(error::json_error),
        )
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .configure(routes)
        .openapi_service(|api| {
            let document = web::Data::new(api);
            web::resource("/openapi.json")
                .app_data(document)
                .route(
                    web::get().to(|doc: web::Data<utoipa::openapi::OpenApi>| async move {
                        HttpResponse::Ok().json(doc.get_ref())
                    }),
                )
        })
        .into_app()
        .service(ui::scope(ui_headers))
        .route("/", web::get().to(ui::root))
        .default_service(web::to(error::no_route))
        .wrap(from_fn(request_log::trace_requests))
}
