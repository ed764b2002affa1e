//! `GET /v1/providers`: the presets, with their limits and what people trip over.

use actix_web::{get, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::providers::PRESETS;
use crate::http::auth::TenantCaller;

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    id: &'static str,
    name: &'static str,
    /// `{region}` stands for one of `regions`.
    host: &'static str,
    port: u16,
    security: &'static str,
    auth: &'static str,
    username_hint: &'static str,
    scope: &'static str,
    #[schema(value_type = Object)]
    limits: serde_json::Value,
    guidance: Vec<&'static str>,
    regions: Vec<&'static str>,
    docs: &'static str,
}

/// Provider presets: the settings of Gmail, Yahoo, Office 365, SparkPost, SendGrid, Amazon
/// SES, Mailgun and Postmark, with their limits and what people trip over.
#[utoipa::path(
    tag = "channels",
    security(("bearer" = [])),
    responses((status = 200, body = [ProviderView]))
)]
#[get("/providers")]
pub(in crate::http) async fn list_providers(_caller: TenantCaller) -> web::Json<Vec<ProviderView>> {
    web::Json(
        PRESETS
            .iter()
            .map(|p| ProviderView {
                id: p.id,
                name: p.name,
                host: p.host,
                port: p.port,
                security: p.security.as_str(),
                auth: p.auth.as_str(),
                username_hint: p.username_hint,
                scope: p.scope.as_str(),
                limits: serde_json::json!({
                    "per_minute": p.limits.per_minute,
                    "per_day_recipients": p.limits.per_day_recipients,
                    "recipients_per_message": p.limits.recipients_per_message,
                }),
                guidance: p.guidance.to_vec(),
                regions: p.regions.to_vec(),
                docs: p.docs,
            })
            .collect(),
    )
}
