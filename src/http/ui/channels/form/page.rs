//! The form as shown: its sections, the preset's guidance, a refused test's stages and each
//! error next to its field.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use maud::{Markup, html};
use serde_json::Value;

use super::request::{ChannelForm, LIMITS};
use crate::domain::providers::ProviderPreset;
use crate::domain::{Action, ChannelKind, CredentialScope, SendChannel};
use crate::http::error::ApiError;
use crate::http::ui::channels::list;
use crate::http::ui::channels::{checks, presets};
use crate::http::ui::forms::{self, FieldErrors, Input};
use crate::http::ui::labels::People;
use crate::http::ui::layout::{self, Section};
use crate::http::ui::session::UiSession;

/// Puts an API error next to the field it is about. Scope-rule errors name no field in the
/// API (they are about the combination), but the page knows which box to point at.
pub(super) fn place(error: &ApiError) -> FieldErrors {
    let field = match error {
        ApiError::Unprocessable { code, .. } | ApiError::Conflict { code, .. } => match *code {
            "from_address_required" | "from_address_not_allowed" => Some("from_address"),
            "domains_required" | "domains_not_allowed" | "domain_not_verified" => Some("domains"),
            "channel_scope_mismatch" => Some("scope"),
            "username_is_secret" => Some("smtp.username"),
            "unknown_team" => Some("owner"),
            _ => None,
        },
        _ => None,
    };
    match field {
        Some(field) => FieldErrors::on(field, error.problem().detail),
        None => FieldErrors::from_api(error),
    }
}

/// Whether an API error belongs in the form (the input is wrong) rather than on an error
/// page (not allowed, not found, the database is down).
pub(super) fn is_form_error(error: &ApiError) -> bool {
    matches!(error.problem().status, 422 | 409 | 400)
        && !matches!(error, ApiError::VerificationFailed(_))
}

/// The connection test that failed, stage by stage, with its hint also next to the field to
/// change.
pub(super) fn verification_errors(report: &Value) -> FieldErrors {
    let failed = report["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["ok"] == false));
    let field = failed.and_then(|s| match s["stage"].as_str() {
        Some("connect") => Some("smtp.host"),
        Some("tls") => Some("smtp.security"),
        Some("auth") => Some("smtp.password"),
        _ => None,
    });
    let hint = failed
        .and_then(|s| s["hint"].as_str().or(s["message"].as_str()))
        .unwrap_or("the test failed");
    let mut errors = match field {
        Some(field) => FieldErrors::on(field, list::capitalized(hint)),
        None => FieldErrors::none(),
    };
    errors.general = Some(
        "The connection test failed, so nothing was saved. Each stage is shown below with the server's reply and a hint."
            .into(),
    );
    errors
}

/// Which form: a new channel (from a preset or none) or a change to one.
#[derive(Clone, Copy)]
pub(super) enum Mode<'a> {
    Create(Option<&'static ProviderPreset>),
    Edit(&'a SendChannel),
}

pub(super) struct FormPage<'a> {
    pub(super) session: &'a UiSession,
    pub(super) mode: Mode<'a>,
    pub(super) values: &'a ChannelForm,
    pub(super) errors: &'a FieldErrors,
    pub(super) names: &'a People,
    /// The failed connection test of a "Test before saving".
    pub(super) report: Option<&'a Value>,
}

/// A field-less error slot at the top of a group (`smtp`, `limits`, `return_path`, `scope`):
/// the API names the group when the error is about the combination.
fn group_error(errors: &FieldErrors, group: &str) -> Markup {
    html! {
        @if let Some(message) = errors.get(group) {
            p.field-error id={(forms::field_id(group)) "-error"} {
                span.visually-hidden { "Error: " } (message)
            }
        }
    }
}

fn radio(name: &str, value: &str, checked: bool, label: Markup) -> Markup {
    let id = forms::field_id(&format!("{name}-{value}"));
    html! {
        div.field.check {
            input id=(id) type="radio" name=(name) value=(value) checked[checked];
            label for=(id) { (label) }
        }
    }
}

impl FormPage<'_> {
    fn preset(&self) -> Option<&'static ProviderPreset> {
        match self.mode {
            Mode::Create(p) => p,
            Mode::Edit(c) => presets::find(c.spec.provider.as_deref()),
        }
    }

    pub(super) fn may_choose_owner(&self) -> bool {
        let shared = self.session.actor().may(Action::ManageSharedChannels);
        match self.mode {
            Mode::Create(_) => shared,
            Mode::Edit(c) => shared && c.spec.scope == CredentialScope::Domain,
        }
    }

    fn about(&self) -> Markup {
        let v = self.values;
        let e = self.errors;
        let mut owners: Vec<(String, String)> = Vec::new();
        if matches!(self.mode, Mode::Create(_)) {
            owners.push(("me".into(), "Me (my own mailbox)".into()));
        }
        owners.push(("tenant".into(), "The whole tenant".into()));
        owners.extend(
            self.names
                .teams()
                .into_iter()
                .map(|(id, name)| (format!("team:{id}"), format!("Team: {name}"))),
        );
        let owner_options: Vec<(&str, &str)> = owners
            .iter()
            .map(|(v, t)| (v.as_str(), t.as_str()))
            .collect();
        let scope = v.scope.as_deref();
        html! {
            fieldset {
                legend { "About this channel" }
                (Input::text("name", "Name").value(v.name.as_deref()).required()
                    .hint(html! { "A name people recognise, e.g. “Dana's Office 365” or “Marketing relay”." })
                    .render(e))
                @match self.mode {
                    Mode::Create(_) => {
                        fieldset.scope id=(forms::field_id("scope")) {
                            legend { "Scope" }
                            (group_error(e, "scope"))
                            (radio("scope", "mailbox", scope == Some("mailbox"), html! {
                                strong { "Mailbox" } ": one person's own mailbox (Office 365, Gmail app password); only its own address may send through it, and it is never shared."
                            }))
                            (radio("scope", "domain", scope == Some("domain"), html! {
                                strong { "Domain" } ": a relay for your domains (SparkPost, SendGrid, SES); a team or the whole tenant may share it."
                            }))
                        }
                    }
                    Mode::Edit(c) => {
                        p { strong { "Scope: " } (list::scope_words(c).0) span.muted { " (fixed once created)" } }
                    }
                }
                @if self.may_choose_owner() {
                    (forms::select("owner", "Owner", &owner_options, v.owner.as_deref(),
                        Some(html! { "A mailbox channel belongs to you; a domain channel to a team or the whole tenant." }), e))
                }
            }
        }
    }

    fn addresses(&self) -> Markup {
        let v = self.values;
        let e = self.errors;
        html! {
            fieldset {
                legend { "Sends as" }
                (Input::text("from_address", "From address").kind("email").value(v.from_address.as_deref())
                    .hint(html! { "Mailbox channels: the one address this mailbox sends as." })
                    .render(e))
                (forms::textarea("domains", "Domains", v.domains.as_deref().unwrap_or_default(),
                    Some(html! { "Domain channels: the From domains this relay may send for, one per line or separated by commas. They must be your tenant's domains." }), e))
            }
        }
    }

    fn server(&self) -> Markup {
        let v = self.values;
        let e = self.errors;
        let preset = self.preset();
        let creating = matches!(self.mode, Mode::Create(_));
        let regions: Vec<(&str, &str)> = match (creating, preset) {
            (true, Some(p)) if !p.regions.is_empty() => {
                p.regions.iter().map(|r| (*r, *r)).collect()
            }
            _ => Vec::new(),
        };
        let username_hint = preset.map(|p| p.username_hint);
        let host = Input::text("smtp.host", "Server host name")
            .value(v.host.as_deref())
            .placeholder("smtp.example.com");
        let host = if regions.is_empty() {
            host.required()
                .hint(html! { "The host name only, without scheme or port." })
        } else {
            host.hint(html! { "Leave empty: the region below decides it." })
        };
        html! {
            fieldset id=(forms::field_id("smtp")) {
                legend { "SMTP server" }
                (group_error(e, "smtp"))
                (host.render(e))
                @if !regions.is_empty() {
                    (forms::select("smtp.region", "Region", &regions, v.region.as_deref(), None, e))
                }
                (Input::text("smtp.port", "Port").kind("number").numeric().value(v.port.as_deref()).required().render(e))
                (forms::select("smtp.security", "Security", &[
                    ("starttls", "STARTTLS (usually port 587)"),
                    ("tls", "TLS from the start (implicit TLS, usually port 465)"),
                    ("none", "None: unencrypted"),
                ], v.security.as_deref(), Some(html! {
                    "Port 465 uses implicit TLS and 587 STARTTLS: both are recommended. "
                    "Port 25 is often blocked and meant for server-to-server relay; avoid it. "
                    "Without security the password travels unencrypted."
                }), e))
                (forms::select("smtp.auth", "Login method", &[
                    ("plain", "PLAIN"),
                    ("login", "LOGIN"),
                    ("none", "None: the server does not ask for a login"),
                ], v.auth.as_deref(), None, e))
                (Input::text("smtp.username", "Username").value(v.username.as_deref()).required()
                    .hint(html! {
                        @if let Some(hint) = username_hint { "For this provider: " (hint) "." }
                        @else { "Usually your full email address." }
                    })
                    .render(e))
                @match self.mode {
                    Mode::Create(_) => {
                        (Input::password("smtp.password", "Password or API key")
                            .required()
                            .hint(html! { "Stored encrypted and never shown again. Not needed when the login method is None." })
                            .render(e))
                    }
                    Mode::Edit(c) => {
                        p.hint {
                            "The password is stored encrypted and never shown. To change it, use "
                            a href={"/ui/channels/" (c.id) "#rotate"} { "Replace credential on the channel page" }
                            ": the new one is tested before it replaces the working one."
                        }
                    }
                }
                (forms::checkbox("smtp.accept_invalid_certs", "Accept invalid certificates (unsafe)", v.accept_invalid_certs, Some(html! {
                    strong { "Warning: " }
                    "this turns certificate checks off. Anyone on the network path to the server "
                    "could pose as it and read the password and every message. Paste the server's "
                    "CA certificate below instead."
                })))
                (forms::textarea("smtp.ca_pem", "Custom CA certificate (PEM)", v.ca_pem.as_deref().unwrap_or_default(),
                    Some(html! {
                        "For a server with a private or self-signed certificate: paste your server's CA "
                        "certificate, or the server's own self-signed certificate (trusted exactly), in "
                        "PEM (starting with -----BEGIN CERTIFICATE-----) instead of accepting invalid "
                        "certificates. The connection stays verified."
                    }), e))
                (Input::text("smtp.pinned_sha256", "Trusted certificate (SHA-256 fingerprint)")
                    .value(v.pinned_sha256.as_deref())
                    .hint(html! {
                        "Set by “Trust this certificate” after a failed test: the server certificate "
                        "with this fingerprint is accepted whoever issued it. Empty it to stop trusting it."
                    })
                    .render(e))
            }
        }
    }

    fn delivery(&self) -> Markup {
        let v = self.values;
        let e = self.errors;
        let smtp = match self.mode {
            Mode::Create(_) => true,
            Mode::Edit(c) => c.spec.kind == ChannelKind::Smtp,
        };
        // A new channel's scope is chosen on the same form: the box is there, and the API
        // refuses it for a mailbox.
        let dkim = match self.mode {
            Mode::Create(_) => true,
            Mode::Edit(c) => {
                c.spec.kind == ChannelKind::Smtp && c.spec.scope == CredentialScope::Domain
            }
        };
        html! {
            fieldset {
                legend { "Delivery options" }
                (Input::text("bcc_archive", "BCC archive address").kind("email").value(v.bcc_archive.as_deref())
                    .hint(html! { "A copy of every message goes to this address, e.g. for compliance." })
                    .render(e))
                (Input::text("reply_to", "Reply-to address").kind("email").value(v.reply_to.as_deref())
                    .hint(html! { "Replies go here instead of to the From address." })
                    .render(e))
                @if dkim {
                    (group_error(e, "dkim_sign"))
                    (forms::checkbox("dkim_sign", "Sign with DKIM (domain channels)", v.dkim_sign, Some(html! {
                        "Switchboard signs every message with your domain's DKIM key (the record to publish is shown with the domain). "
                        "Turn it on for a relay that does not sign by itself, such as your own server. "
                        "Leave it off for Amazon SES, SendGrid or SparkPost: they sign for your domain themselves, "
                        "and their link tracking rewrites the message, which would break our signature."
                    })))
                    (Input::text("spf_include", "SPF include of the relay (custom servers)").value(v.spf_include.as_deref())
                        .hint(html! { "What your domains' SPF record must include for this relay, e.g. _spf.relay.example; ask the relay's admin. Presets know their own. The channel's Domain health checks for it." })
                        .render(e))
                }
                @if smtp {
                    fieldset id=(forms::field_id("return_path")) {
                        legend { "Return path (where bounces go)" }
                        (group_error(e, "return_path"))
                        (forms::select("return_path.mode", "Return path", &[
                            ("no", "Let the server decide (usually the mailbox)"),
                            ("yes", "The message's From address"),
                            ("specified", "A fixed bounce address"),
                        ], v.return_path_mode.as_deref(), None, e))
                        (Input::text("return_path.address", "Bounce address").kind("email")
                            .value(v.return_path_address.as_deref())
                            .hint(html! { "Only with “A fixed bounce address”." })
                            .render(e))
                    }
                }
            }
        }
    }

    fn limits(&self) -> Markup {
        let e = self.errors;
        html! {
            fieldset id=(forms::field_id("limits")) {
                legend { "Sending limits" }
                p.hint { "Empty means no limit. A preset fills in the provider's published limits; mail over a limit waits." }
                (group_error(e, "limits"))
                @for (key, label) in LIMITS {
                    @let name = format!("limits.{key}");
                    (Input::text(&name, label).kind("number").numeric()
                        .value(self.values.limit(key).map(String::as_str)).render(e))
                }
            }
        }
    }

    pub(super) fn render(&self, status: StatusCode) -> HttpResponse {
        let (title, action, submit, cancel) = match self.mode {
            Mode::Create(_) => (
                "Add an SMTP channel".to_owned(),
                "/ui/channels".to_owned(),
                "Save channel",
                "/ui/channels".to_owned(),
            ),
            Mode::Edit(c) => (
                format!("Edit {}", c.spec.name),
                format!("/ui/channels/{}", c.id),
                "Save changes",
                format!("/ui/channels/{}", c.id),
            ),
        };
        let kind = match self.mode {
            Mode::Edit(c) => c.spec.kind,
            Mode::Create(_) => ChannelKind::Smtp,
        };
        let body = html! {
            h1 { (title) }
            @if let Mode::Create(preset) = self.mode {
                p.muted { "Your own mailbox, or a relay for your domains. Gmail can also be connected without a password from the channel list." }
                (presets::chooser(preset))
            }
            @if let Some(preset) = self.preset() { (presets::guidance(preset)) }
            (self.errors.summary())
            @if let Some(report) = self.report {
                div.result id="create-test" role="status" {
                    h2 { "Connection test" }
                    (checks::report_markup(&checks::report_from_json(report), None, false))
                }
            }
            form.stacked.channel method="post" action=(action) novalidate {
                (layout::csrf(self.session))
                @if let (Mode::Create(_), Some(id)) = (self.mode, self.values.preset.as_deref()) {
                    input type="hidden" name="preset" value=(id);
                }
                (self.about())
                @if kind == ChannelKind::Smtp {
                    (self.addresses())
                    (self.server())
                }
                (self.delivery())
                (self.limits())
                @if matches!(self.mode, Mode::Create(_)) {
                    (forms::checkbox("verify", "Test before saving", self.values.verify, Some(html! {
                        "Connects and logs in first; if that fails, nothing is saved and each stage is shown with the server's reply."
                    })))
                }
                div.actions {
                    button type="submit" { (submit) }
                    a href=(cancel) { "Cancel" }
                }
            }
        };
        layout::page_with_status(status, self.session, Section::Channels, &title, body)
    }
}
