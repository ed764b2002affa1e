use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::error::Problem;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "Send channels for sales-engagement email: tenancy, channels, credentials, routing and delivery."
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "tenancy", description = "Tenants, teams, users and API tokens"),
        (name = "channels", description = "Send channels, their credentials and provider presets"),
        (name = "messages", description = "Sending mail, following it, and explaining routes"),
        (name = "webhooks", description = "Signed event notifications to tenant URLs, their secrets and delivery log"),
        (name = "domains", description = "Sending domains: claims proven by a DNS TXT record, and their checks"),
        (name = "suppressions", description = "Recipients the tenant no longer mails, and the public one-click unsubscribe link (RFC 8058)")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
