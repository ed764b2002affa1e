//! The connection test on a channel's page: "Test connection" (connect, TLS, login) and
//! "Send test email", answered in place by the page script or, without it, on a page of its
//! own. Both run `POST /v1/channels/{id}/test`'s own code and show each stage with the
//! server's reply and a hint.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::forms::{FieldErrors, Input};
use super::super::layout::{self, Section};
use super::super::session::{UiPost, UiSession};
use super::super::{UiError, wants_fragment};
use super::trust::{certificate_details, trust_form};
use crate::domain::{
    Action, ChannelOwner, CredentialScope, Security, SendChannel, SmtpAuth, SmtpSettings,
};
use crate::http::AppState;
use crate::http::channels::run_test;
use crate::http::error::ApiError;
use crate::transport::tester::{StageReport, TestReport};

/// The element the page script puts the result in.
const RESULT_ID: &str = "test-result";

/// Whether the viewer owns the channel (a mailbox channel of theirs): owners may always test
/// and rotate their own, as the API decides.
pub(super) fn viewer_owns(session: &UiSession, channel: &SendChannel) -> bool {
    channel.spec.owner == ChannelOwner::User(session.actor().user_id)
}

/// Whether the viewer may test this channel (the API's rule) and it can be tested.
fn may_test(session: &UiSession, channel: &SendChannel) -> bool {
    channel.spec.smtp.is_some()
        && (viewer_owns(session, channel) || session.actor().may(Action::TestAnyChannel))
}

/// The "Test connection" / "Send test email" panel; empty for viewers who may not test.
pub fn test_panel(session: &UiSession, channel: &SendChannel) -> Markup {
    panel(session, channel, None)
}

fn panel(session: &UiSession, channel: &SendChannel, result: Option<Markup>) -> Markup {
    if !may_test(session, channel) {
        return html! {};
    }
    // The test email goes to the owner's own mailbox unless they say otherwise; for anyone
    // else's channel the field starts empty rather than guess an address.
    let send_to = viewer_owns(session, channel)
        .then(|| channel.spec.from_address.as_ref().map(|a| a.to_string()))
        .flatten();
    let domain = channel.spec.scope == CredentialScope::Domain;
    let none = FieldErrors::none();
    html! {
        section.panel aria-labelledby="test-heading" {
            h2 id="test-heading" { "Test this channel" }
            p.muted {
                "“Test connection” connects, starts TLS and logs in; nothing is sent. "
                "“Send test email” also sends a short message."
            }
            form.stacked method="post" action={"/ui/channels/" (channel.id) "/test"} data-inline=(RESULT_ID) {
                (layout::csrf(session))
                (Input::text("send_to", "Send the test email to")
                    .kind("email")
                    .value(send_to.as_deref())
                    .autocomplete("email")
                    .hint(html! { "Used only by “Send test email”." })
                    .render(&none))
                @if domain {
                    (Input::text("from", "Send the test email from")
                        .kind("email")
                        .hint(html! { "An address in one of the channel's domains; empty means no-reply@ its first domain." })
                        .render(&none))
                }
                div.actions {
                    button type="submit" name="action" value="connect" data-busy="Testing…" { "Test connection" }
                    button.secondary type="submit" name="action" value="send" data-busy="Sending…" { "Send test email" }
                }
            }
            div.result id=(RESULT_ID) role="status" aria-live="polite" {
                @if let Some(result) = result { (result) }
            }
        }
    }
}

/// What a stage is called on the page.
fn stage_name(stage: &str) -> &str {
    match stage {
        "connect" => "Connect",
        "tls" => "TLS",
        "ehlo" => "Greeting (EHLO)",
        "auth" => "Login",
        "send" => "Send the test email",
        other => other,
    }
}

/// The stages a test of these settings goes through, in order (the tester skips TLS and
/// login when the channel uses neither).
fn planned_stages(smtp: Option<&SmtpSettings>, sends: bool) -> Vec<&'static str> {
    let mut stages = vec!["connect"];
    if smtp.is_none_or(|s| s.security != Security::None) {
        stages.push("tls");
    }
    stages.push("ehlo");
    if smtp.is_none_or(|s| s.auth != SmtpAuth::None) {
        stages.push("auth");
    }
    if sends {
        stages.push("send");
    }
    stages
}

/// The one line that sums a test up.
fn summary(report: &TestReport, sends: bool) -> String {
    match report.stages.iter().find(|s| !s.ok) {
        None if sends => "Connection and login work, and the server accepted the test email".into(),
        None => "Connection and login work".into(),
        Some(failed) => {
            let why = match failed.stage {
                "connect" => "Could not connect",
                "tls" => "TLS failed",
                "ehlo" => "The server refused the session",
                "auth" => "Login refused",
                "send" => "The test email was refused",
                _ => "The test failed",
            };
            format!(
                "{why}: {}",
                failed.hint.as_deref().unwrap_or(&failed.message)
            )
        }
    }
}

fn stage_item(stage: &StageReport) -> Markup {
    html! {
        li class=(if stage.ok { "passed" } else { "failed" }) {
            strong { (stage_name(stage.stage)) ": " (if stage.ok { "passed" } else { "failed" }) }
            span.reply {
                // The tester's messages often carry the code already.
                @if let Some(code) = stage.code.filter(|c| !stage.message.contains(&c.to_string())) {
                    (code) " "
                }
                (stage.message)
            }
            @if let Some(hint) = &stage.hint { span.hint { (hint) } }
            @if let Some(certificate) = &stage.certificate { (certificate_details(certificate)) }
        }
    }
}

/// A report as the API's `verification_failed` problem carries it (JSON), back in the
/// tester's shape, so a create refused by its test shows the same stages as the test panel.
pub(super) fn report_from_json(report: &serde_json::Value) -> TestReport {
    const STAGES: [&str; 5] = ["connect", "tls", "ehlo", "auth", "send"];
    let stages = report["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| StageReport {
            stage: STAGES
                .into_iter()
                .find(|name| Some(*name) == s["stage"].as_str())
                .unwrap_or("test"),
            ok: s["ok"] == true,
            code: s["code"].as_u64().and_then(|c| u16::try_from(c).ok()),
            message: s["message"].as_str().unwrap_or_default().to_owned(),
            hint: s["hint"].as_str().map(str::to_owned),
            certificate: serde_json::from_value(s["certificate"].clone()).ok(),
        })
        .collect();
    TestReport {
        ok: report["ok"] == true,
        stages,
        classification: None,
    }
}

/// A test's outcome: the summary, then every stage in order, those after a failure as
/// not tried. Also the stages of a refused credential on the rotation form.
pub(super) fn report_markup(
    report: &TestReport,
    smtp: Option<&SmtpSettings>,
    sends: bool,
) -> Markup {
    let planned = planned_stages(smtp, sends);
    let not_tried: Vec<&str> = if report.ok {
        Vec::new()
    } else {
        planned
            .into_iter()
            .filter(|p| !report.stages.iter().any(|s| s.stage == *p))
            .collect()
    };
    html! {
        p class={"notice " (if report.ok { "success" } else { "error" })} { (summary(report, sends)) }
        ol.stages {
            @for stage in &report.stages { (stage_item(stage)) }
            @for stage in not_tried {
                li.skipped {
                    strong { (stage_name(stage)) ": not tried" }
                    span.hint { "an earlier stage failed" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct TestForm {
    /// `connect` or `send`: the button pressed.
    action: Option<String>,
    send_to: Option<String>,
    from: Option<String>,
}

impl TestForm {
    fn sends(&self) -> bool {
        self.action.as_deref() == Some("send")
    }

    /// The API's request body: a plain login test sends nothing; a test email names its
    /// recipient (and From, where the channel takes one). Blank fields are left out.
    fn api_body(&self) -> Vec<u8> {
        let mut body = serde_json::Map::new();
        if self.sends() {
            let given = |v: &Option<String>| {
                v.as_deref()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| serde_json::Value::String(v.to_owned()))
            };
            // An empty recipient still goes to the API, which says what is missing.
            body.insert(
                "send_to".into(),
                given(&self.send_to).unwrap_or_else(|| "".into()),
            );
            if let Some(from) = given(&self.from) {
                body.insert("from".into(), from);
            }
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

async fn run(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<TestForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let sends = form.sends();
    let tested = run_test(&session.caller, &state, &id, &form.api_body()).await;
    let fragment = wants_fragment(&req);
    match tested {
        Ok((channel, report)) => {
            // The facts above the panel were rendered before the test; say that it counts.
            let result = html! {
                (report_markup(&report, channel.spec.smtp.as_ref(), sends))
                (trust_form(&session, &channel, &report))
                @if report.ok {
                    p.muted {
                        "Recorded as the channel's last verification ("
                        (layout::when(Some(chrono::Utc::now()))) ")."
                    }
                }
            };
            if fragment {
                return Ok(layout::fragment(StatusCode::OK, result));
            }
            // Without the script the result cannot come back through a redirect: it is shown
            // on a page of its own, with the panel to test again.
            let body = html! {
                p { a href={"/ui/channels/" (channel.id)} { "← Back to " (channel.spec.name) } }
                h1 { (channel.spec.name) }
                (panel(&session, &channel, Some(result)))
            };
            Ok(layout::page(
                &session,
                Section::Channels,
                &format!("Test of {}", channel.spec.name),
                body,
            ))
        }
        // What the test was asked to do is wrong (a recipient that is no address, a From
        // outside the channel's domains): said where the answer goes.
        Err(e @ (ApiError::InvalidField { .. } | ApiError::Unprocessable { .. })) => {
            let status = actix_web::ResponseError::status_code(&e);
            let message = errors_text(&e);
            let mut errors = FieldErrors::none();
            errors.general = Some(message.clone());
            if fragment {
                return Ok(layout::fragment(
                    status,
                    html! { p.notice.error { (message) } },
                ));
            }
            let body = html! {
                p { a href={"/ui/channels/" (id.as_str())} { "← Back to the channel" } }
                h1 { "Channel test" }
                (errors.summary())
            };
            Ok(layout::page_with_status(
                status,
                &session,
                Section::Channels,
                "Channel test",
                body,
            ))
        }
        // Refused outright (not found, not allowed): in place too, for the script.
        Err(e) if fragment && !matches!(e, ApiError::Internal(_)) => {
            let status = actix_web::ResponseError::status_code(&e);
            Ok(layout::fragment(
                status,
                html! { p.notice.error { (e.problem().detail) } },
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// An API refusal in words, naming the field it concerns by its label.
fn errors_text(e: &ApiError) -> String {
    match e {
        ApiError::InvalidField { field, reason } => {
            let label = match *field {
                "send_to" => "Send the test email to",
                "from" => "Send the test email from",
                other => other,
            };
            format!("{label}: {reason}")
        }
        other => other.problem().detail,
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/{id}/test", web::post().to(run));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(stage: &'static str, ok: bool) -> StageReport {
        StageReport {
            stage,
            ok,
            code: (!ok).then_some(535),
            message: if ok {
                "fine".into()
            } else {
                "5.7.8 (535) invalid".into()
            },
            hint: (!ok).then(|| "check the password".into()),
            certificate: None,
        }
    }

    #[test]
    fn stages_after_a_failure_are_shown_as_not_tried() {
        let report = TestReport {
            ok: false,
            stages: vec![
                stage("connect", true),
                stage("tls", true),
                stage("ehlo", true),
                stage("auth", false),
            ],
            classification: None,
        };
        let html = report_markup(&report, None, true).into_string();
        assert!(html.contains("Login refused: check the password"), "{html}");
        assert!(
            html.contains("<li class=\"failed\"><strong>Login: failed"),
            "{html}"
        );
        assert!(
            html.contains("<li class=\"skipped\"><strong>Send the test email: not tried"),
            "{html}"
        );
        // The code is in the server's text already: not repeated.
        assert!(
            html.contains("<span class=\"reply\">5.7.8 (535) invalid</span>"),
            "{html}"
        );
    }

    #[test]
    fn a_passed_test_sums_up_what_works() {
        let report = TestReport {
            ok: true,
            stages: vec![stage("connect", true), stage("ehlo", true)],
            classification: None,
        };
        assert_eq!(summary(&report, false), "Connection and login work");
        let html = report_markup(&report, None, false).into_string();
        assert!(!html.contains("skipped"), "{html}");
    }
}
