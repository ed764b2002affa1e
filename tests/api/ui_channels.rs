//! The channel pages over HTTP, against a real SMTP server: the list with its badges, the
//! SMTP form filled from a preset and tested before saving, errors next to their fields,
//! what each role sees and may do, editing, disabling and deleting. No page ever shows a
//! password.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestTenant, TestUser, expect_json, spawn_app};
use crate::messages::{self, PASSWORD};
use crate::smtp_server::{SmtpServerConfig, TestSmtpServer};
use crate::ui_client::{Page, UiClient};

const REP: &str = "rep@acme.test";
/// The rep's mailbox password at the test server; it must never reach a page.
const CANARY: &str = "Canary-Ui-Pw-4b7e";
const PATIENCE: Duration = Duration::from_secs(30);

struct World {
    app: TestApp,
    acme: TestTenant,
    rep: TestUser,
    server: TestSmtpServer,
}

/// A tenant owning acme.test, a rep without channels, and the rep's mailbox server.
async fn world() -> World {
    let app = spawn_app().await;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    let rep = app.create_user(&acme, REP, "rep", None).await;
    let server = TestSmtpServer::start(SmtpServerConfig {
        users: vec![(REP.to_owned(), CANARY.to_owned())],
        ..SmtpServerConfig::default()
    })
    .await;
    World {
        app,
        acme,
        rep,
        server,
    }
}

/// The form as a rep fills it after choosing the Office 365 preset, pointed at the test
/// server (which has a private CA: its certificate goes in the CA box).
fn office365_form(server: &TestSmtpServer, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("preset", "office365".into()),
        ("name", "My Office 365".into()),
        ("scope", "mailbox".into()),
        ("from_address", REP.into()),
        ("domains", String::new()),
        ("smtp.host", "localhost".into()),
        ("smtp.port", server.port().to_string()),
        ("smtp.security", "starttls".into()),
        ("smtp.auth", "login".into()),
        ("smtp.username", REP.into()),
        ("smtp.password", password.into()),
        ("smtp.ca_pem", server.ca_pem()),
        ("bcc_archive", String::new()),
        ("reply_to", String::new()),
        ("return_path.mode", "no".into()),
        ("return_path.address", String::new()),
        ("limits.per_minute", "30".into()),
        ("limits.per_day_recipients", "10000".into()),
        ("limits.recipients_per_message", "500".into()),
        ("verify", "on".into()),
    ]
}

fn with(
    mut fields: Vec<(&'static str, String)>,
    name: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    fields.retain(|(n, _)| *n != name);
    fields.push((name, value.to_owned()));
    fields
}

async fn post(ui: &mut UiClient, path: &str, fields: &[(&'static str, String)]) -> Page {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
    ui.post(path, &fields).await
}

async fn channels(app: &TestApp, token: &str) -> Vec<Value> {
    expect_json(app.get("/v1/channels", token).await, StatusCode::OK)
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn ok(page: &Page) {
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
}

#[tokio::test]
async fn signed_out_channel_pages_send_the_browser_to_sign_in() {
    let app = spawn_app().await;
    let mut ui = UiClient::new(&app);
    for (path, next) in [
        ("/ui/channels", "%2Fui%2Fchannels"),
        (
            "/ui/channels/new?preset=sendgrid",
            "%2Fui%2Fchannels%2Fnew%3Fpreset%3Dsendgrid",
        ),
    ] {
        let page = ui.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            page.location.as_deref(),
            Some(format!("/ui/sign-in?next={next}").as_str())
        );
    }
    let posted = ui.post("/ui/channels", &[("name", "x")]).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    assert_eq!(posted.location.as_deref(), Some("/ui/sign-in"));
}

#[tokio::test]
async fn the_list_shows_each_channel_with_its_badge_owner_scope_and_advice() {
    let w = messages::world().await;
    let mut admin = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    let list = admin.get("/ui/channels").await;
    ok(&list);
    list.expect("<div class=\"table-wrap\">")
        .expect(&format!(
            "href=\"/ui/channels/{}\">My mailbox</a>",
            w.channel
        ))
        .expect("<span class=\"badge ok\">Active</span>")
        .expect("<td>rep@acme.test</td>")
        .expect("Mailbox")
        .expect("href=\"/ui/channels/new\"")
        .expect("Add SMTP channel")
        .expect_not(PASSWORD);
    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;
    rep.get("/ui/channels").await.expect("<td>you</td>");

    // The password changes at the server: the next send marks the channel needs_reauth,
    // and the list says so and what to do.
    w.server.set_password(messages::REP, "Changed-By-IT-77");
    let id = messages::send_id(&w, messages::mail("held")).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "held", PATIENCE)
        .await;
    let list = admin.get("/ui/channels").await;
    list.expect("<span class=\"badge bad\">Needs reauth: auth rejected</span>")
        .expect("The server refused the password");
    let page = admin.get(&format!("/ui/channels/{}", w.channel)).await;
    ok(&page);
    page.expect("class=\"notice error\"")
        .expect("What to do: ")
        .expect("Last error")
        .expect_not(PASSWORD);

    // Mail waits for it: deleting asks first, then offers to delete anyway.
    let refused = admin
        .post(&format!("/ui/channels/{}/delete", w.channel), &[])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.html);
    refused.expect("Delete anyway");
    let deleted = admin
        .post(
            &format!("/ui/channels/{}/delete", w.channel),
            &[("force", "on")],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.html);
    assert_eq!(deleted.location.as_deref(), Some("/ui/channels"));
    admin
        .follow(&deleted)
        .await
        .expect("Channel “My mailbox” deleted.")
        .expect("No channels yet");
}

#[tokio::test]
async fn a_channel_created_from_a_preset_is_tested_saved_and_never_shows_its_password() {
    let w = world().await;
    let mut ui = UiClient::signed_in(&w.app, &w.rep.token).await;
    let empty = ui.get("/ui/channels").await;
    ok(&empty);
    empty.expect("No channels yet").expect("Add SMTP channel");

    let form = ui.get("/ui/channels/new?preset=office365").await;
    ok(&form);
    form.expect("<option value=\"office365\" selected>")
        .expect("Use preset")
        .expect("name=\"smtp.host\" type=\"text\" value=\"smtp.office365.com\"")
        .expect("name=\"smtp.port\" type=\"number\" value=\"587\"")
        .expect("<option value=\"login\" selected>")
        .expect("For this provider: your full Microsoft 365 address.")
        .expect("<div class=\"guidance\"")
        .expect("Authenticated SMTP")
        .expect("docs/providers/office365.md")
        .expect("name=\"scope\" value=\"mailbox\" checked")
        .expect("name=\"limits.per_minute\" type=\"number\" value=\"30\"")
        .expect("name=\"verify\" type=\"checkbox\" checked")
        .expect("Accept invalid certificates (unsafe)")
        .expect("paste your server's CA")
        .expect_not("name=\"owner\"");

    let created = post(&mut ui, "/ui/channels", &office365_form(&w.server, CANARY)).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let location = created.location.clone().unwrap();
    let id = location.strip_prefix("/ui/channels/").unwrap().to_owned();
    let page = ui.follow(&created).await;
    ok(&page);
    page.expect("Channel created and tested")
        .expect("<span class=\"badge ok\">Active</span>")
        .expect("<dt>Provider</dt><dd>Microsoft 365 / Office 365</dd>")
        .expect(&format!("localhost:{}", w.server.port()))
        .expect("Verified against a custom CA certificate")
        .expect("stored, last changed")
        .expect("30 messages per minute")
        .expect("Edit channel")
        .expect_not(CANARY);

    let channel = expect_json(
        w.app.get(&format!("/v1/channels/{id}"), &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["provider"], "office365", "{channel}");
    assert_eq!(channel["owner"], json!({"user": w.rep.id}));
    assert_eq!(channel["smtp"]["auth"], "login");
    assert!(channel["last_verified_at"].is_string(), "{channel}");
    assert!(
        !w.server.auth_attempts().is_empty(),
        "the form's test logged in"
    );

    ui.get("/ui/channels")
        .await
        .expect("SMTP · Microsoft 365 / Office 365");
    for path in [
        "/ui/channels".to_owned(),
        format!("/ui/channels/{id}"),
        format!("/ui/channels/{id}/edit"),
        "/ui/channels/new?preset=office365".to_owned(),
    ] {
        let page = ui.get(&path).await;
        ok(&page);
        page.expect_not(CANARY);
    }
}

#[tokio::test]
async fn a_wrong_password_comes_back_with_the_failed_login_and_its_hint_and_saves_nothing() {
    let w = world().await;
    let mut ui = UiClient::signed_in(&w.app, &w.rep.token).await;
    ui.get("/ui/channels/new?preset=office365").await;
    let wrong = "Wrong-Canary-Pw-31c";
    let page = post(&mut ui, "/ui/channels", &office365_form(&w.server, wrong)).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.html
    );
    page.expect("The connection test failed, so nothing was saved")
        .expect("<ol class=\"stages\">")
        .expect("<li class=\"passed\"><strong>Connect: passed</strong>")
        .expect("<li class=\"failed\"><strong>Login: failed</strong>")
        .expect("535")
        .expect("Username or password rejected")
        .expect("id=\"f-smtp-password-error\"")
        // What was typed stays, except the password.
        .expect("value=\"My Office 365\"")
        .expect("name=\"smtp.host\" type=\"text\" value=\"localhost\"")
        .expect_not(wrong)
        .expect_not(CANARY);
    assert!(channels(&w.app, &w.rep.token).await.is_empty());
}

#[tokio::test]
async fn field_errors_appear_next_to_their_fields() {
    let w = world().await;
    let mut ui = UiClient::signed_in(&w.app, &w.rep.token).await;
    ui.get("/ui/channels/new").await;
    let base = with(office365_form(&w.server, CANARY), "verify", "");

    let bad_port = post(
        &mut ui,
        "/ui/channels",
        &with(base.clone(), "smtp.port", "58x7"),
    )
    .await;
    assert_eq!(bad_port.status, StatusCode::UNPROCESSABLE_ENTITY);
    bad_port
        .expect("There is a problem")
        .expect("href=\"#f-smtp-port\"")
        .expect("id=\"f-smtp-port-error\"")
        .expect("must be a number from 1 to 65535")
        .expect_not(CANARY);

    // Without a preset, a server host is needed; the API says so for the SMTP group.
    let custom = with(with(base.clone(), "preset", ""), "smtp.host", "");
    let no_host = post(&mut ui, "/ui/channels", &custom).await;
    assert_eq!(no_host.status, StatusCode::UNPROCESSABLE_ENTITY);
    no_host
        .expect("id=\"f-smtp-error\"")
        .expect("`host` is required")
        .expect_not(CANARY);

    let bad_from = post(
        &mut ui,
        "/ui/channels",
        &with(base.clone(), "from_address", "not-an-address"),
    )
    .await;
    assert_eq!(bad_from.status, StatusCode::UNPROCESSABLE_ENTITY);
    bad_from
        .expect("id=\"f-from-address-error\"")
        .expect("value=\"not-an-address\"");

    // A scope rule names no field in the API; the page points at the box to fix.
    let domains = post(&mut ui, "/ui/channels", &with(base, "domains", "acme.test")).await;
    assert_eq!(domains.status, StatusCode::UNPROCESSABLE_ENTITY);
    domains.expect("id=\"f-domains-error\"");
    assert!(channels(&w.app, &w.rep.token).await.is_empty());
}

#[tokio::test]
async fn a_rep_sees_no_admin_actions_and_is_refused_when_posting_them() {
    let w = world().await;
    let relay = expect_json(
        w.app
            .post(
                "/v1/channels",
                &w.acme.admin_token,
                json!({"name": "Tenant relay", "kind": "smtp", "scope": "domain",
                       "owner": {"tenant": true}, "domains": ["acme.test"],
                       "smtp": {"host": "localhost", "port": w.server.port(),
                                "auth": "none", "ca_pem": w.server.ca_pem()}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let relay = relay["id"].as_str().unwrap().to_owned();
    let admins_own = expect_json(
        w.app
            .post(
                "/v1/channels",
                &w.acme.admin_token,
                json!({"name": "Admin mailbox", "kind": "smtp", "scope": "mailbox",
                       "from_address": "admin@acme.test",
                       "smtp": {"host": "localhost", "port": w.server.port(), "auth": "none"}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;
    let list = rep.get("/ui/channels").await;
    list.expect("Tenant relay")
        .expect("the whole tenant")
        .expect_not("Admin mailbox");
    let page = rep.get(&format!("/ui/channels/{relay}")).await;
    ok(&page);
    page.expect("Tenant relay")
        .expect("acme.test")
        .expect_not("Edit channel")
        .expect_not("Disable channel")
        .expect_not("Delete channel");
    rep.get("/ui/channels/new")
        .await
        .expect_not("name=\"owner\"");
    let hidden = rep.get(&format!("/ui/channels/{admins_own}")).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);

    let edit = rep.get(&format!("/ui/channels/{relay}/edit")).await;
    assert_eq!(edit.status, StatusCode::FORBIDDEN);
    for (path, fields) in [
        (format!("/ui/channels/{relay}/delete"), vec![]),
        (
            format!("/ui/channels/{relay}/status"),
            vec![("status", "disabled")],
        ),
        (format!("/ui/channels/{relay}"), vec![("name", "Hijacked")]),
    ] {
        let refused = rep.post(&path, &fields).await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            refused.html
        );
    }
    // Nor may a rep give a new channel to the tenant by forging the owner.
    let forged = post(
        &mut rep,
        "/ui/channels",
        &with(
            with(office365_form(&w.server, CANARY), "owner", "tenant"),
            "verify",
            "",
        ),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);

    let after = expect_json(
        w.app
            .get(&format!("/v1/channels/{relay}"), &w.acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["name"], "Tenant relay");
    assert_eq!(after["status"], "active");
    assert_eq!(
        channels(&w.app, &w.rep.token).await.len(),
        1,
        "only the relay"
    );

    // The admin sees every action, and the owner choice.
    let mut admin = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    admin
        .get(&format!("/ui/channels/{relay}"))
        .await
        .expect("Edit channel")
        .expect("Disable channel")
        .expect("Delete channel");
    admin
        .get("/ui/channels/new?preset=sendgrid")
        .await
        .expect("name=\"owner\"")
        .expect("<option value=\"tenant\" selected>")
        .expect("name=\"smtp.username\" type=\"text\" value=\"apikey\"")
        .expect("name=\"scope\" value=\"domain\" checked");
}

#[tokio::test]
async fn an_edit_changes_the_channel_and_disable_enable_and_delete_work() {
    let w = world().await;
    let mut ui = UiClient::signed_in(&w.app, &w.rep.token).await;
    ui.get("/ui/channels/new?preset=office365").await;
    let created = post(&mut ui, "/ui/channels", &office365_form(&w.server, CANARY)).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let id = created
        .location
        .unwrap()
        .trim_start_matches("/ui/channels/")
        .to_owned();

    let edit = ui.get(&format!("/ui/channels/{id}/edit")).await;
    ok(&edit);
    edit.expect("value=\"My Office 365\"")
        .expect("name=\"smtp.host\" type=\"text\" value=\"localhost\"")
        .expect("Replace credential on the channel page")
        .expect_not("name=\"smtp.password\"")
        .expect_not(CANARY);

    let fields: Vec<(&'static str, String)> = office365_form(&w.server, "")
        .into_iter()
        .filter(|(n, _)| !["preset", "scope", "verify", "smtp.password"].contains(n))
        .collect();
    let wrong = post(
        &mut ui,
        &format!("/ui/channels/{id}"),
        &with(fields.clone(), "reply_to", "nobody"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    wrong.expect("id=\"f-reply-to-error\"").expect_not(CANARY);

    let saved = post(
        &mut ui,
        &format!("/ui/channels/{id}"),
        &with(
            with(fields, "name", "Dana Office 365"),
            "reply_to",
            "sales@acme.test",
        ),
    )
    .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    ui.follow(&saved)
        .await
        .expect("Changes saved")
        .expect("Dana Office 365")
        .expect("sales@acme.test");
    let channel = expect_json(
        w.app.get(&format!("/v1/channels/{id}"), &w.rep.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(channel["name"], "Dana Office 365");
    assert_eq!(channel["reply_to"], "sales@acme.test");
    assert_eq!(channel["smtp"]["ca_pem"], w.server.ca_pem(), "the CA stays");
    assert!(channel["has_credential"].as_bool().unwrap());

    let disabled = ui
        .post(
            &format!("/ui/channels/{id}/status"),
            &[("status", "disabled")],
        )
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER);
    ui.follow(&disabled)
        .await
        .expect("Channel disabled")
        .expect("<span class=\"badge off\">Disabled")
        .expect("Enable channel");
    let enabled = ui
        .post(
            &format!("/ui/channels/{id}/status"),
            &[("status", "active")],
        )
        .await;
    assert_eq!(enabled.status, StatusCode::SEE_OTHER);
    ui.follow(&enabled)
        .await
        .expect("<span class=\"badge ok\">Active</span>");

    let deleted = ui.post(&format!("/ui/channels/{id}/delete"), &[]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.html);
    ui.follow(&deleted).await.expect("deleted.");
    let gone = w.app.get(&format!("/v1/channels/{id}"), &w.rep.token).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        ui.get(&format!("/ui/channels/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_admin_turns_dkim_signing_on_for_a_relay_and_a_mailbox_cannot_have_it() {
    let w = world().await;
    let mut admin = UiClient::signed_in(&w.app, &w.acme.admin_token).await;
    let relay = expect_json(
        w.app
            .post(
                "/v1/channels",
                &w.acme.admin_token,
                json!({"name": "Relay", "kind": "smtp", "scope": "domain",
                       "owner": {"tenant": true}, "domains": ["acme.test"],
                       "smtp": {"host": "localhost", "port": w.server.port(), "auth": "none"}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = relay["id"].as_str().unwrap();
    admin
        .get(&format!("/ui/channels/{id}"))
        .await
        .expect("Off: the relay signs");
    let edit = admin.get(&format!("/ui/channels/{id}/edit")).await;
    ok(&edit);
    edit.expect("Sign with DKIM")
        .expect_not("name=\"dkim_sign\" type=\"checkbox\" checked");
    let fields: Vec<(&'static str, String)> = vec![
        ("name", "Relay".into()),
        ("owner", "tenant".into()),
        ("domains", "acme.test".into()),
        ("smtp.host", "localhost".into()),
        ("smtp.port", w.server.port().to_string()),
        ("smtp.security", "starttls".into()),
        ("smtp.auth", "none".into()),
        ("return_path.mode", "no".into()),
        ("dkim_sign", "on".into()),
    ];
    let saved = post(&mut admin, &format!("/ui/channels/{id}"), &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    admin
        .follow(&saved)
        .await
        .expect("On: Switchboard signs, with your key for the From domain");
    let view = expect_json(
        w.app
            .get(&format!("/v1/channels/{id}"), &w.acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(view["dkim_sign"], true);
    admin
        .get(&format!("/ui/channels/{id}/edit"))
        .await
        .expect("name=\"dkim_sign\" type=\"checkbox\" checked");

    // A mailbox: the box is refused next to itself, and nothing is saved.
    let mut rep = UiClient::signed_in(&w.app, &w.rep.token).await;
    rep.get("/ui/channels/new?preset=office365").await;
    let refused = post(
        &mut rep,
        "/ui/channels",
        &with(office365_form(&w.server, CANARY), "dkim_sign", "on"),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    refused
        .expect("id=\"f-dkim-sign-error\"")
        .expect_not(CANARY);
    assert!(
        channels(&w.app, &w.rep.token)
            .await
            .iter()
            .all(|c| c["kind"] != "smtp" || c["scope"] != "mailbox")
    );
}
