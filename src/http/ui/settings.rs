//! `/ui/settings`: the tenant's sending policy. Everyone who may read the tenant sees it;
//! admins change it through the same code as `PATCH /v1/tenant`, so the page refuses what
//! the API refuses, with its words, next to the field.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::UiError;
use super::forms::{self, FieldErrors, Input, field_id};
use super::layout::{self, Section};
use super::routes::form_error;
use super::session::{self, UiPost, UiSession};
use super::window_fields::{self, WindowFields};
use crate::domain::Action;
use crate::http::AppState;
use crate::http::error::body_error;
use crate::http::tenants::{self, TenantView, UpdateTenantRequest};
use crate::store::pacing::SendingDefaultsDoc;

/// The two fallback policies and what each means, in one sentence.
const POLICIES: [(&str, &str, &str); 2] = [
    (
        "hold",
        "Hold",
        "Mail waits for the sender's own channel, and the channel's owner is told what to fix.",
    ),
    (
        "fallback",
        "Fall back",
        "Mail goes through the next channel that may send it, such as the team relay or the shared pool.",
    ),
];

/// The form as posted. Not `deny_unknown_fields`: the CSRF token rides along.
#[derive(Debug, Deserialize)]
struct SettingsForm {
    name: Option<String>,
    #[serde(default, deserialize_with = "forms::checkbox_value")]
    sending_enabled: bool,
    fallback_policy: Option<String>,
    #[serde(default, deserialize_with = "forms::checkbox_value")]
    shared_pool_allowed: bool,
    #[serde(default, deserialize_with = "forms::checkbox_value")]
    unsubscribe_by_default: bool,
}

/// What the form shows: the stored policy, or what was posted when it comes back with errors.
struct Values {
    name: String,
    sending_enabled: bool,
    fallback_policy: String,
    shared_pool_allowed: bool,
    unsubscribe_by_default: bool,
}

impl From<&TenantView> for Values {
    fn from(t: &TenantView) -> Self {
        Self {
            name: t.name.clone(),
            sending_enabled: t.sending_enabled,
            fallback_policy: t.fallback_policy.clone(),
            shared_pool_allowed: t.shared_pool_allowed,
            unsubscribe_by_default: t.unsubscribe_by_default,
        }
    }
}

impl SettingsForm {
    /// The API's request: every field, since the form shows every field.
    fn request(&self) -> Result<UpdateTenantRequest, crate::http::error::ApiError> {
        let body = json!({
            "name": self.name.as_deref().unwrap_or_default().trim(),
            "sending_enabled": self.sending_enabled,
            "fallback_policy": self.fallback_policy.as_deref().unwrap_or_default(),
            "shared_pool_allowed": self.shared_pool_allowed,
            "unsubscribe_by_default": self.unsubscribe_by_default,
        });
        serde_json::from_value(body).map_err(|e| body_error(&e))
    }

    fn values(&self) -> Values {
        Values {
            name: self.name.clone().unwrap_or_default(),
            sending_enabled: self.sending_enabled,
            fallback_policy: self.fallback_policy.clone().unwrap_or_default(),
            shared_pool_allowed: self.shared_pool_allowed,
            unsubscribe_by_default: self.unsubscribe_by_default,
        }
    }
}

async fn settings_page(
    session: UiSession,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let tenant = tenants::read_tenant(&session.caller, &state).await?;
    let body = if session.actor().may(Action::UpdateTenantPolicy) {
        html! {
            (settings_form(&session, &Values::from(&tenant), &state, &FieldErrors::none()))
            (sending_forms(&session, &tenant))
        }
    } else {
        read_only(&tenant, &state)
    };
    Ok(layout::page(&session, Section::Settings, "Settings", body))
}

/// The tenant's sending defaults as posted: a daily cap and one window for the channels
/// that set none.
#[derive(Debug, Deserialize)]
struct DefaultsForm {
    per_day_messages: Option<String>,
    #[serde(flatten)]
    window: WindowFields,
}

/// The bounce rule as posted.
#[derive(Debug, Deserialize)]
struct BounceForm {
    threshold_percent: Option<String>,
    min_sends: Option<String>,
    window_days: Option<String>,
}

/// A box's number as JSON (`null` when empty), or the box's own refusal.
fn number_json<T: std::str::FromStr + serde::Serialize>(
    raw: &Option<String>,
    field: &str,
) -> Result<serde_json::Value, crate::http::error::ApiError> {
    match forms::non_empty(raw) {
        None => Ok(serde_json::Value::Null),
        Some(v) => v.parse::<T>().map(|n| json!(n)).map_err(|_| {
            crate::http::error::ApiError::InvalidMessage {
                code: "invalid_field",
                field: field.to_owned(),
                detail: format!("`{v}` is not a number"),
            }
        }),
    }
}

impl DefaultsForm {
    fn request(&self) -> Result<UpdateTenantRequest, crate::http::error::ApiError> {
        let mut defaults = json!({
            "per_day_messages": number_json::<u32>(&self.per_day_messages, "sending_defaults.per_day_messages")?,
        });
        if let Some(windows) = self.window.windows_json() {
            defaults["windows"] = windows;
        }
        serde_json::from_value(json!({ "sending_defaults": defaults })).map_err(|e| body_error(&e))
    }
}

impl BounceForm {
    fn request(&self) -> Result<UpdateTenantRequest, crate::http::error::ApiError> {
        let mut rule = serde_json::Map::new();
        for (key, value) in [
            (
                "threshold_percent",
                number_json::<f64>(&self.threshold_percent, "bounce_pause.threshold_percent")?,
            ),
            (
                "min_sends",
                number_json::<u32>(&self.min_sends, "bounce_pause.min_sends")?,
            ),
            (
                "window_days",
                number_json::<u32>(&self.window_days, "bounce_pause.window_days")?,
            ),
        ] {
            // An empty box keeps the value it had.
            if !value.is_null() {
                rule.insert(key.to_owned(), value);
            }
        }
        serde_json::from_value(json!({ "bounce_pause": rule })).map_err(|e| body_error(&e))
    }
}

/// Saves one of the sending forms through `PATCH /v1/tenant`'s code; a refusal comes back as
/// the page with the API's words on top, and changes nothing.
async fn save_part(
    req: &HttpRequest,
    session: &UiSession,
    state: &AppState,
    request: Result<UpdateTenantRequest, crate::http::error::ApiError>,
    done: &str,
) -> Result<HttpResponse, UiError> {
    let saved = match request {
        Ok(request) => tenants::change_tenant(&session.caller, state, request).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Ok(session::redirect_with_flash(req, "/ui/settings", done)),
        Err(e) => {
            let errors = form_error(e)?;
            let tenant = tenants::read_tenant(&session.caller, state).await?;
            Ok(layout::page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                session,
                Section::Settings,
                "Settings",
                html! {
                    (errors.summary())
                    (settings_form(session, &Values::from(&tenant), state, &FieldErrors::none()))
                    (sending_forms(session, &tenant))
                },
            ))
        }
    }
}

async fn save_defaults(
    req: HttpRequest,
    post: UiPost<DefaultsForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    save_part(
        &req,
        &session,
        &state,
        form.request(),
        "Sending defaults saved",
    )
    .await
}

async fn save_bounce_rule(
    req: HttpRequest,
    post: UiPost<BounceForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    save_part(&req, &session, &state, form.request(), "Bounce rule saved").await
}

/// The tenant's sending defaults and bounce rule, each its own form.
fn sending_forms(session: &UiSession, tenant: &TenantView) -> Markup {
    let defaults: SendingDefaultsDoc =
        serde_json::from_value(tenant.sending_defaults.clone()).unwrap_or_default();
    let windows = defaults
        .windows
        .as_ref()
        .and_then(|w| w.parse("sending_defaults.windows").ok());
    let cap = defaults
        .per_day_messages
        .map(|n| n.to_string())
        .unwrap_or_default();
    let rule = &tenant.bounce_pause;
    html! {
        section.panel aria-labelledby="defaults-heading" {
            h2 id="defaults-heading" { "Sending defaults" }
            p.muted { "For every channel that sets none of its own: a daily cap per mailbox and the hours mail may leave. A channel's own settings win; a connected mailbox's provider limit still applies (docs/pacing.md)." }
            form method="post" action="/ui/settings/defaults" {
                (layout::csrf(session))
                fieldset {
                    legend { "Daily cap" }
                    label { "Messages per mailbox per rolling 24 hours "
                        input type="number" min="1" name="per_day_messages" value=(cap);
                    }
                }
                (window_fields::fieldset(windows.as_ref()))
                button type="submit" { "Save sending defaults" }
            }
        }
        section.panel aria-labelledby="bounce-rule-heading" {
            h2 id="bounce-rule-heading" { "Bounce auto-pause" }
            p { (bounce_pause_words(&BouncePauseWords::of(tenant))) }
            form method="post" action="/ui/settings/bounces" {
                (layout::csrf(session))
                label { "Pause at " input type="number" step="0.01" min="0.01" max="20" name="threshold_percent" value=(rule.threshold_percent); " % hard bounces" }
                label { ", over " input type="number" min="1" max="90" name="window_days" value=(rule.window_days); " days" }
                label { ", once a channel has at least " input type="number" min="1" name="min_sends" value=(rule.min_sends); " sends" }
                div.actions { button type="submit" { "Save bounce rule" } }
            }
        }
    }
}

async fn save_settings(
    req: HttpRequest,
    post: UiPost<SettingsForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let saved = match form.request() {
        Ok(request) => tenants::change_tenant(&session.caller, &state, request).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Ok(session::redirect_with_flash(
            &req,
            "/ui/settings",
            "Settings saved",
        )),
        Err(e) => {
            let errors = form_error(e)?;
            Ok(layout::page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &session,
                Section::Settings,
                "Settings",
                settings_form(&session, &form.values(), &state, &errors),
            ))
        }
    }
}

fn pool_hint(state: &AppState) -> Markup {
    html! {
        "Lets mail go through the platform's shared relay, for From addresses in the tenant's verified domains, when no channel of the tenant may send it."
        @if state.config.shared_pool.is_none() {
            " " strong { "No shared pool is configured on this installation, so this has no effect." }
        }
    }
}

fn sending_hint() -> Markup {
    html! {
        "The kill switch. When off, nothing of this tenant is sent: new mail is refused and queued mail is held until sending is switched on again."
    }
}

fn unsubscribe_hint() -> Markup {
    html! {
        "Adds one-click unsubscribe headers (RFC 8058) to every message that does not say "
        code { "\"unsubscribe\": false" }
        ". Gmail and Yahoo require them on bulk and sequence mail; an address that unsubscribes goes on the "
        a href="/ui/suppressions" { "suppression list" }
        ". Each such message must have one recipient."
    }
}

/// The domains live on their own page, with the records to publish.
fn domains_fact(tenant_domains: &[String], verified: &[String]) -> Markup {
    html! {
        dt { "Sending domains" } dd {
            @if tenant_domains.is_empty() { span.muted { "none" } } @else {
                (verified.len()) " of " (tenant_domains.len()) " verified"
                @if !verified.is_empty() { ": " (verified.join(", ")) }
            }
            " — " a href="/ui/domains" { "Domains" }
        }
    }
}

fn settings_form(
    session: &UiSession,
    values: &Values,
    state: &AppState,
    errors: &FieldErrors,
) -> Markup {
    let policy_error = errors.get("fallback_policy");
    let policy_id = field_id("fallback_policy");
    html! {
        h1 { "Settings" }
        (errors.summary())
        form.stacked method="post" action="/ui/settings" {
            (layout::csrf(session))
            (Input::text("name", "Tenant name").value(Some(&values.name)).required().render(errors))
            (forms::checkbox("sending_enabled", "Sending enabled", values.sending_enabled, Some(sending_hint())))
            fieldset id=(policy_id) class={"field" @if policy_error.is_some() { " invalid" }}
                aria-describedby=[policy_error.map(|_| format!("{policy_id}-error"))] {
                legend { "When the sender's own channel cannot send" }
                @if let Some(error) = policy_error {
                    p.field-error id={(policy_id) "-error"} { span.visually-hidden { "Error: " } (error) }
                }
                @for (value, label, explanation) in POLICIES {
                    @let id = field_id(&format!("fallback_policy-{value}"));
                    div.field.check {
                        input type="radio" id=(id) name="fallback_policy" value=(value)
                            checked[values.fallback_policy == value]
                            aria-describedby={(id) "-hint"};
                        label for=(id) { (label) }
                        div.hint id={(id) "-hint"} { (explanation) }
                    }
                }
            }
            (forms::checkbox("shared_pool_allowed", "Shared pool allowed", values.shared_pool_allowed, Some(pool_hint(state))))
            (forms::checkbox("unsubscribe_by_default", "Unsubscribe link on every message", values.unsubscribe_by_default, Some(unsubscribe_hint())))
            div.actions { button type="submit" { "Save settings" } }
        }
        p { "Sending domains are claimed and proven on the " a href="/ui/domains" { "Domains" } " page." }
        (microsoft_consent(state))
    }
}

/// The admin-consent link for the organisation's Microsoft admin, so that reps are not
/// stopped by "Need admin approval" when they connect their mailboxes.
fn microsoft_consent(state: &AppState) -> Markup {
    let Some(microsoft) = &state.microsoft else {
        return html! {};
    };
    html! {
        section.panel aria-labelledby="microsoft-consent-heading" {
            h2 id="microsoft-consent-heading" { "Microsoft 365 approval" }
            p {
                "Many organisations let only an admin approve apps that send mail. Your Microsoft 365 admin can approve Switchboard once for everyone with this link; reps then connect their mailboxes without being asked for approval: "
                a href=(microsoft.admin_consent_url(None)) { "admin consent for Switchboard" }
            }
        }
    }
}

/// The tenant's bounce rule, as the settings page states it.
struct BouncePauseWords {
    threshold_percent: f64,
    min_sends: u32,
    window_days: u32,
}

impl BouncePauseWords {
    fn of(tenant: &TenantView) -> Self {
        Self {
            threshold_percent: tenant.bounce_pause.threshold_percent,
            min_sends: tenant.bounce_pause.min_sends,
            window_days: tenant.bounce_pause.window_days,
        }
    }
}

fn bounce_pause_words(r: &BouncePauseWords) -> String {
    format!(
        "A channel pauses when {} % or more of its recipients hard-bounce over {} day(s), once it has mailed at least {}.",
        r.threshold_percent, r.window_days, r.min_sends
    )
}

fn read_only(tenant: &TenantView, state: &AppState) -> Markup {
    let policy = POLICIES
        .iter()
        .find(|(v, _, _)| *v == tenant.fallback_policy);
    html! {
        h1 { "Settings" }
        p.notice.info { "Only an admin can change these settings." }
        dl.facts {
            dt { "Tenant name" } dd { (tenant.name) }
            dt { "Sending enabled" } dd { @if tenant.sending_enabled { "Yes" } @else { "No — nothing is sent" } }
            dt { "Fallback policy" } dd {
                @match policy {
                    Some((_, label, explanation)) => { (label) ": " (explanation) },
                    None => (tenant.fallback_policy),
                }
            }
            dt { "Shared pool allowed" } dd {
                @if tenant.shared_pool_allowed { "Yes" } @else { "No" }
                @if state.config.shared_pool.is_none() { span.muted { " (no shared pool is configured)" } }
            }
            dt { "Unsubscribe link on every message" } dd {
                @if tenant.unsubscribe_by_default { "Yes, unless a message says otherwise" }
                @else { "Only on messages that ask for it" }
            }
            (domains_fact(&tenant.domains, &tenant.verified_domains))
            dt { "Bounce auto-pause" } dd { (bounce_pause_words(&BouncePauseWords::of(tenant))) }
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/settings", web::get().to(settings_page))
        .route("/settings", web::post().to(save_settings))
        .route("/settings/defaults", web::post().to(save_defaults))
        .route("/settings/bounces", web::post().to(save_bounce_rule));
}
