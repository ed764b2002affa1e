//! `/ui/domains`: the tenant's sending domains, each with the TXT record to publish, its
//! DKIM records (pending, active, retiring), its state and what the last check found, and a
//! "Check now" button. Admins claim and drop domains, rotate DKIM keys and name the relay's
//! DKIM selectors here; IT may check them. The same functions as `/v1/domains` do the work.

use crate::http::ui::forms::NoFields;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::UiError;
use super::forms::{FieldErrors, Input};
use super::layout::{self, Section};
use super::routes::form_error;
use super::session::{self, UiPost, UiSession};
use crate::domain::Action;
use crate::domain::bulk::BulkLevel;
use crate::http::AppState;
use crate::http::domain_dkim;
use crate::http::domain_health::{self, DomainHealthView};
use crate::http::domains::{self, DkimRecordView, DomainView};
use crate::http::error::ApiError;
use crate::http::gmail_bulk::GmailBulkView;

/// Not `deny_unknown_fields`: the CSRF token rides along.
#[derive(Debug, Deserialize)]
struct ClaimForm {
    domain: Option<String>,
}

/// The relay's DKIM selectors, separated by commas or spaces.
#[derive(Debug, Deserialize)]
struct SelectorsForm {
    dkim_selectors: Option<String>,
}

/// The rotate button's question: what a new key changes, before anything changes.
const ROTATE_CONFIRM: &str = "Make a new DKIM key? The current key keeps signing until the new key's record is published and found; then it is kept published for 7 days.";

/// A DNS value with a button that copies it (shown when scripts run).
fn copyable(value: &str) -> Markup {
    html! {
        code.value { (value) }
        button.copy.secondary type="button" data-copy=(value) hidden { "Copy" }
    }
}

fn dkim_badge(r: &DkimRecordView) -> Markup {
    let (class, text) = match r.state {
        "active" => ("ok", "Active"),
        "pending" => ("warn", "Pending: publish this record"),
        _ => ("off", "Retiring"),
    };
    html! {
        span class={"badge " (class)} { (text) }
        @if let Some(after) = r.retire_after {
            " until " (layout::when(Some(after)))
        }
    }
}

/// A claim's DKIM records, with the admin's rotate button and selectors form.
fn dkim_section(session: &UiSession, d: &DomainView) -> Markup {
    let admin = session.actor().may(Action::ManageDomains);
    html! {
        h3.dkim-heading { "DKIM keys for " (d.domain) }
        @if d.dkim.is_empty() {
            p.hint { "No DKIM key yet: one is made at the domain's next check." }
        } @else {
            ul.dkim-records {
                @for r in &d.dkim {
                    li {
                        strong { "Selector " (r.selector) } " " (dkim_badge(r))
                        div { span.muted { "TXT name " } code { (r.name) } }
                        div { span.muted { "Value " } (copyable(&r.value)) }
                        div.hint { (r.state_detail) }
                    }
                }
            }
        }
        @if admin {
            @if d.state == "verified" {
                form.inline method="post" action={"/ui/domains/" (d.id) "/dkim/rotate"} data-confirm=(ROTATE_CONFIRM) {
                    (layout::csrf(session))
                    button.secondary type="submit" { "Rotate DKIM key" }
                    div.hint { "The old key keeps signing until the new record is published." }
                }
            }
            form.inline method="post" action={"/ui/domains/" (d.id) "/selectors"} {
                (layout::csrf(session))
                (Input::text("dkim_selectors", "Your relay's DKIM selectors")
                    .value(Some(d.dkim_selectors.join(", ").as_str()))
                    .placeholder("s1, s2")
                    .hint(html! { "If a relay signs for " (d.domain) " (SendGrid " code { "s1" } ", Google Workspace " code { "google" } "), name its selectors so that their records are checked too. Separate them with commas." })
                    .render(&FieldErrors::none()))
                div.actions { button.secondary type="submit" { "Save selectors" } }
            }
        }
    }
}

fn badge(state: &str) -> Markup {
    let (class, text) = match state {
        "verified" => ("ok", "Verified"),
        "pending" => ("warn", "Pending"),
        "lapsed" => ("bad", "Lapsed"),
        _ => ("bad", "Failed"),
    };
    html! { span class={"badge " (class)} { (text) } }
}

fn row(session: &UiSession, d: &DomainView) -> Markup {
    let admin = session.actor().may(Action::ManageDomains);
    html! {
        tr {
            th scope="row" { (d.domain) }
            td { (badge(d.state)) div.hint { (d.state_detail) } }
            td.record {
                div { span.muted { "Name " } code { (d.verification.name) } }
                div { span.muted { "Value " } (copyable(&d.verification.value)) }
            }
            td {
                @match d.checks.first() {
                    Some(check) => {
                        strong { (check.status.replace('_', " ")) } " "
                        (layout::when(check.at))
                        div.hint { (check.message) }
                    },
                    None => span.muted { "not checked yet" },
                }
                @if let Some(next) = d.next_check_at {
                    div.hint { "Next check " (layout::when(Some(next))) }
                }
            }
            td.actions {
                form method="post" action={"/ui/domains/" (d.id) "/verify"} {
                    (layout::csrf(session))
                    button type="submit" { "Check now" }
                }
                @if admin {
                    form method="post" action={"/ui/domains/" (d.id) "/delete"} {
                        (layout::csrf(session))
                        button.secondary type="submit" { "Remove" }
                    }
                }
            }
        }
        tr.dkim {
            td colspan="5" {
                (dkim_section(session, d))
            }
        }
        @if let Some(health) = &d.health {
            tr.health {
                td colspan="5" {
                    (health_list(health))
                }
            }
        }
        @if let Some(bulk) = &d.gmail_bulk {
            tr.health { td colspan="5" { (gmail_bulk_notice(bulk)) } }
        }
    }
}

fn check_badge(status: &str) -> Markup {
    let (class, text) = match status {
        "ok" => ("ok", "OK"),
        "missing" => ("bad", "Missing"),
        "invalid" => ("bad", "Invalid"),
        _ => ("warn", "DNS error"),
    };
    html! { span class={"badge " (class)} { (text) } }
}

/// A verified domain's DNS health: each check with its status and sentence. Also used by
/// the channel detail page.
pub(super) fn health_list(health: &DomainHealthView) -> Markup {
    html! {
        div.hint { "DNS health, checked " (layout::when(Some(health.checked_at))) }
        ul.checks {
            @for c in &health.checks {
                li {
                    strong { (c.check.replace('_', " ").to_uppercase()) } " "
                    (check_badge(c.status)) " "
                    span { (c.message) }
                }
            }
        }
    }
}

/// Gmail's bulk-sender standing: a line while far from it, a warning when near or over.
fn gmail_bulk_notice(bulk: &GmailBulkView) -> Markup {
    html! {
        @match bulk.level {
            BulkLevel::Under => div.hint { "Gmail bulk-sender count: " (bulk.message) },
            BulkLevel::Approaching | BulkLevel::Over => p.notice.warning role="status" {
                strong { "Gmail bulk-sender threshold. " } (bulk.message)
            },
        }
    }
}

fn page_body(
    session: &UiSession,
    claims: &[DomainView],
    typed: &str,
    errors: &FieldErrors,
) -> Markup {
    html! {
        h1 { "Domains" }
        p {
            "Mail is sent as a domain through team relays and the shared pool only once your organisation has proven it controls the domain: publish the TXT record shown, then check. "
            "Publish the domain's DKIM record in the same visit to your DNS: Switchboard signs mail from the domain with that key once it finds the record. "
            "Switchboard looks for the record again about daily; if it disappears, sending as the domain stops until it is back. "
            "Once a domain is verified, its SPF, DKIM, DMARC and MX records are checked hourly and shown under it. "
            "Reps' own mailboxes need no domain proof where the provider checks the sender (Connect Gmail; an SMTP login at Gmail, Microsoft 365, Outlook.com or Yahoo); a mailbox on another server sends only as a verified domain."
        }
        @if session.actor().may(Action::ManageDomains) {
            (errors.summary())
            form.inline method="post" action="/ui/domains" {
                (layout::csrf(session))
                (Input::text("domain", "Domain to claim")
                    .value(Some(typed))
                    .placeholder("example.com")
                    .hint(html! { "Each subdomain, such as " code { "mail.example.com" } ", is claimed and proven on its own." })
                    .required()
                    .render(errors))
                div.actions { button type="submit" { "Claim domain" } }
            }
        }
        @if claims.is_empty() {
            p.muted { "No domains claimed yet." }
        } @else {
            (layout::table("domains", "Sending domains", &["Domain", "State", "TXT record to publish (proof)", "Last check", ""],
                html! { @for d in claims { (row(session, d)) } }))
        }
    }
}

async fn show(session: UiSession, state: web::Data<AppState>) -> Result<HttpResponse, UiError> {
    let claims = domains::list(&session.caller, &state).await?;
    Ok(layout::page(
        &session,
        Section::Domains,
        "Domains",
        page_body(&session, &claims, "", &FieldErrors::none()),
    ))
}

async fn claim(
    req: HttpRequest,
    post: UiPost<ClaimForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let typed = form.domain.unwrap_or_default();
    match domains::claim(&session.caller, &state, typed.trim()).await {
        Ok(claimed) => Ok(session::redirect_with_flash(
            &req,
            "/ui/domains",
            &format!(
                "{} claimed: publish its TXT record and its DKIM record, then check it",
                claimed.domain
            ),
        )),
        Err(e) => {
            let errors = match e {
                // A conflict (already claimed) belongs next to the field too.
                ApiError::Conflict { detail, .. } => FieldErrors::on("domain", detail),
                other => form_error(other)?,
            };
            let claims = domains::list(&session.caller, &state).await?;
            Ok(layout::page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                &session,
                Section::Domains,
                "Domains",
                page_body(&session, &claims, &typed, &errors),
            ))
        }
    }
}

async fn check_now(
    req: HttpRequest,
    post: UiPost<NoFields>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let checked = domains::verify(&post.session.caller, &state, &id).await?;
    let found = checked
        .checks
        .first()
        .map(|c| c.message.clone())
        .unwrap_or_default();
    Ok(session::redirect_with_flash(
        &req,
        "/ui/domains",
        &format!("{}: {}. {found}", checked.domain, checked.state),
    ))
}

async fn remove(
    req: HttpRequest,
    post: UiPost<NoFields>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let text = match domains::remove(&post.session.caller, &state, &id).await {
        Ok(()) => "Domain removed".to_owned(),
        Err(ApiError::Conflict { detail, .. }) => format!("Not removed: {detail}"),
        Err(e) => return Err(e.into()),
    };
    Ok(session::redirect_with_flash(&req, "/ui/domains", &text))
}

async fn rotate_dkim(
    req: HttpRequest,
    post: UiPost<NoFields>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let text = match domain_dkim::rotate(&post.session.caller, &state, &id).await {
        Ok(d) => match d.dkim.first() {
            Some(new) if new.state == "pending" => format!(
                "New DKIM key {} for {}: publish its record at {}. It signs once Switchboard finds it; the current key signs until then",
                new.selector, d.domain, new.name
            ),
            _ => format!("New DKIM key for {}", d.domain),
        },
        Err(ApiError::Conflict { detail, .. }) => format!("No new key: {detail}"),
        Err(e) => return Err(e.into()),
    };
    Ok(session::redirect_with_flash(&req, "/ui/domains", &text))
}

async fn set_selectors(
    req: HttpRequest,
    post: UiPost<SelectorsForm>,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let wanted: Vec<String> = form
        .dkim_selectors
        .unwrap_or_default()
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let text = match domain_health::set_selectors(&session.caller, &state, &id, &wanted).await {
        Ok(d) if d.dkim_selectors.is_empty() => format!("{}: no relay selectors named", d.domain),
        Ok(d) => format!(
            "{}: DKIM selectors {} saved",
            d.domain,
            d.dkim_selectors.join(", ")
        ),
        Err(ApiError::InvalidField { reason, .. }) => format!("Selectors not saved: {reason}"),
        Err(e) => return Err(e.into()),
    };
    Ok(session::redirect_with_flash(&req, "/ui/domains", &text))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/domains", web::get().to(show))
        .route("/domains", web::post().to(claim))
        .route("/domains/{id}/verify", web::post().to(check_now))
        .route("/domains/{id}/delete", web::post().to(remove))
        .route("/domains/{id}/dkim/rotate", web::post().to(rotate_dkim))
        .route("/domains/{id}/selectors", web::post().to(set_selectors));
}
