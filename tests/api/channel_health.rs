//! DNS health per channel: SPF for the relay that will send, the return path and whether it
//! aligns, who DKIM-signs with which d=, DMARC, and whether DMARC passes on SPF or DKIM.
//! Real DNS (`dns_server.rs`), the real API, both backends; the channel page's panel.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dkim::dkim_cli;
use crate::helpers::{TestApp, TestTenant, expect_json, expect_problem, spawn_app_with};
use crate::ui_client::UiClient;

const KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu5Xq";
const RELAY_INCLUDE: &str = "_spf.sparkpost-like.test";
const POOL_INCLUDE: &str = "_spf.platform.test";

/// An app whose DNS has acme.test's MX and the includes' own records, and Acme with
/// acme.test proven.
async fn acme(extra: &[(&str, &str)]) -> (TestApp, TestTenant) {
    let app = spawn_app_with(extra).await;
    app.dns.mx("acme.test", 10, "mx1.mail.test").await;
    for include in [RELAY_INCLUDE, POOL_INCLUDE] {
        app.dns.txt(include, "v=spf1 ip4:192.0.2.0/24 -all").await;
    }
    let acme = app.create_tenant("Acme").await;
    app.prove_domain(&acme.admin_token, "acme.test").await;
    (app, acme)
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    expect_json(
        app.post("/v1/channels", token, body).await,
        StatusCode::CREATED,
    )
    .await
}

/// A tenant relay without a preset that names the SPF include it needs.
async fn custom_relay(app: &TestApp, acme: &TestTenant) -> Value {
    create(
        app,
        &acme.admin_token,
        json!({
            "name": "Like SparkPost", "kind": "smtp", "owner": {"tenant": true},
            "scope": "domain", "domains": ["acme.test"],
            "smtp": {"host": "smtp.sparkpost-like.test", "port": 587, "security": "starttls",
                     "auth": "plain", "username": "relay", "password": "Relay-Pw-1"},
            "spf_include": RELAY_INCLUDE,
        }),
    )
    .await
}

async fn sparkpost(app: &TestApp, acme: &TestTenant) -> Value {
    create(
        app,
        &acme.admin_token,
        json!({
            "name": "SparkPost", "kind": "smtp", "preset": "sparkpost",
            "owner": {"tenant": true}, "domains": ["acme.test"],
            "smtp": {"password": "Sparkpost-Key-1"},
        }),
    )
    .await
}

async fn check_now(app: &TestApp, token: &str, channel: &Value) -> Value {
    let path = format!("/v1/channels/{}/health", channel["id"].as_str().unwrap());
    expect_json(app.post(&path, token, json!({})).await, StatusCode::OK).await
}

async fn read(app: &TestApp, token: &str, channel: &Value) -> Value {
    let path = format!("/v1/channels/{}", channel["id"].as_str().unwrap());
    expect_json(app.get(&path, token).await, StatusCode::OK).await
}

/// The check of `kind` for `domain` in a channel view.
fn check<'a>(view: &'a Value, domain: &str, kind: &str) -> &'a Value {
    let d = view["health"]["domains"]
        .as_array()
        .unwrap_or_else(|| panic!("no health.domains: {view:#}"))
        .iter()
        .find(|d| d["domain"] == domain)
        .unwrap_or_else(|| panic!("no {domain}: {view:#}"));
    d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == kind)
        .unwrap_or_else(|| panic!("no {kind} check for {domain}: {d:#}"))
}

fn says(c: &Value, words: &str) -> bool {
    c["message"].as_str().unwrap().contains(words)
}

#[tokio::test]
async fn the_spf_check_names_the_include_this_relay_needs_and_the_hourly_pass_sees_the_fix() {
    let (app, acme) = acme(&[]).await;
    app.dns.txt("acme.test", "v=spf1 mx -all").await;
    let relay = custom_relay(&app, &acme).await;
    assert_eq!(relay["spf_include"], RELAY_INCLUDE);
    // Checked once on creation; "Check now" (at the same moment, on purpose) checks again.
    let view = check_now(&app, &acme.admin_token, &relay).await;
    let spf = check(&view, "acme.test", "spf");
    assert_eq!(spf["status"], "invalid", "{spf:#}");
    assert!(
        says(spf, &format!("add include:{RELAY_INCLUDE}")),
        "{spf:#}"
    );
    // The relay keeps the From as the envelope sender: aligned, but SPF fails.
    assert_eq!(check(&view, "acme.test", "return_path")["status"], "ok");
    let alignment = check(&view, "acme.test", "alignment");
    assert_eq!(alignment["status"], "invalid", "{alignment:#}");
    assert_eq!(alignment["detail"]["spf_aligned"], false);
    checked_after_creation(&app, &acme, &relay).await;

    // The admin fixes SPF; the domain's own check (hourly, or its "check now") re-checks
    // the channels that send as it.
    app.dns
        .remove("acme.test", hickory_server::proto::rr::RecordType::TXT)
        .await;
    app.dns
        .txt(
            "acme.test",
            &format!("v=spf1 mx include:{RELAY_INCLUDE} -all"),
        )
        .await;
    let claims = expect_json(
        app.get("/v1/domains", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let claim = claims.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = format!("/v1/domains/{claim}/verify");
    expect_json(
        app.post(&verify, &acme.admin_token, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let view = read(&app, &acme.admin_token, &relay).await;
    let spf = check(&view, "acme.test", "spf");
    assert_eq!(spf["status"], "ok", "{spf:#}");
    assert_eq!(spf["detail"]["lookups"], 2, "{spf:#}");
    let alignment = check(&view, "acme.test", "alignment");
    assert_eq!(alignment["status"], "ok", "{alignment:#}");
    assert!(says(alignment, "SPF alone"), "{alignment:#}");
    // Nobody signs: DKIM says what to turn on.
    let dkim = check(&view, "acme.test", "dkim");
    assert_eq!(dkim["status"], "missing", "{dkim:#}");
    assert!(says(dkim, "dkim_sign"), "{dkim:#}");

    // Without an include, the check says it cannot know and what to ask.
    let path = format!("/v1/channels/{}", relay["id"].as_str().unwrap());
    expect_json(
        app.patch(&path, &acme.admin_token, json!({"spf_include": null}))
            .await,
        StatusCode::OK,
    )
    .await;
    let view = check_now(&app, &acme.admin_token, &relay).await;
    let spf = check(&view, "acme.test", "spf");
    assert_eq!(spf["status"], "missing", "{spf:#}");
    assert!(says(spf, "ask the relay's admin"), "{spf:#}");
    let bad = app
        .patch(
            &path,
            &acme.admin_token,
            json!({"spf_include": "not a name"}),
        )
        .await;
    expect_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
}

#[tokio::test]
async fn sparkpost_aligns_spf_with_a_bounce_cname_and_dkim_with_its_selector() {
    let (app, acme) = acme(&[]).await;
    let channel = sparkpost(&app, &acme).await;
    let view = check_now(&app, &acme.admin_token, &channel).await;
    // Its own bounce domain: SPF passes there, and does not align.
    let rp = check(&view, "acme.test", "return_path");
    assert_eq!(rp["status"], "invalid", "{rp:#}");
    assert_eq!(rp["detail"]["envelope_domain"], "sparkpostmail.com");
    assert!(
        says(rp, "CNAME bounce.acme.test → sparkpostmail.com"),
        "{rp:#}"
    );
    let dkim = check(&view, "acme.test", "dkim");
    assert_eq!(dkim["status"], "missing", "{dkim:#}");
    assert!(says(dkim, "scph"), "{dkim:#}");
    let alignment = check(&view, "acme.test", "alignment");
    assert_eq!(alignment["status"], "invalid", "{alignment:#}");
    assert!(says(alignment, "neither SPF nor DKIM"), "{alignment:#}");
    assert!(says(alignment, "bounce.acme.test"), "{alignment:#}");
    // No DMARC is said too.
    assert_eq!(check(&view, "acme.test", "dmarc")["status"], "missing");
    assert!(says(alignment, "no DMARC record"), "{alignment:#}");

    // A bounce domain delegated by CNAME, used as the return path: aligned.
    app.dns.cname("bounce.acme.test", "sparkpostmail.com").await;
    let path = format!("/v1/channels/{}", channel["id"].as_str().unwrap());
    expect_json(
        app.patch(
            &path,
            &acme.admin_token,
            json!({"return_path": {"mode": "specified", "address": "bounces@bounce.acme.test"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // The relay's DKIM key, named on the domain and delegated by CNAME.
    app.dns
        .cname(
            "scph1126._domainkey.acme.test",
            "scph1126.dkim.sparkpost.test",
        )
        .await;
    app.dns
        .txt(
            "scph1126.dkim.sparkpost.test",
            &format!("v=DKIM1; k=rsa; p={KEY}"),
        )
        .await;
    app.dns
        .txt(
            "_dmarc.acme.test",
            "v=DMARC1; p=none; rua=mailto:d@acme.test",
        )
        .await;
    let claims = expect_json(
        app.get("/v1/domains", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let claim = claims.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_json(
        app.patch(
            &format!("/v1/domains/{claim}"),
            &acme.admin_token,
            json!({"dkim_selectors": ["scph1126"]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let view = check_now(&app, &acme.admin_token, &channel).await;
    let rp = check(&view, "acme.test", "return_path");
    assert_eq!(rp["status"], "ok", "{rp:#}");
    assert_eq!(rp["detail"]["envelope_domain"], "bounce.acme.test");
    assert_eq!(check(&view, "acme.test", "spf")["status"], "ok");
    let dkim = check(&view, "acme.test", "dkim");
    assert_eq!(dkim["status"], "ok", "{dkim:#}");
    assert!(
        says(dkim, "SparkPost signs") && says(dkim, "d=acme.test"),
        "{dkim:#}"
    );
    assert_eq!(dkim["detail"]["cname"], "scph1126.dkim.sparkpost.test");
    let alignment = check(&view, "acme.test", "alignment");
    assert_eq!(alignment["status"], "ok", "{alignment:#}");
    assert!(says(alignment, "both SPF and DKIM"), "{alignment:#}");
    assert!(!says(alignment, "no DMARC"), "{alignment:#}");
}

#[tokio::test]
async fn the_shared_pool_aligns_on_our_active_key() {
    let (app, acme) = acme(&[
        (
            "SWITCHBOARD_SHARED_POOL_URL",
            "smtp://relay:Pool-Pw-1@localhost:2525?security=starttls",
        ),
        ("SWITCHBOARD_SHARED_POOL_SPF_INCLUDE", POOL_INCLUDE),
    ])
    .await;
    app.dns
        .txt("acme.test", &format!("v=spf1 include:{POOL_INCLUDE} ~all"))
        .await;
    let all = expect_json(
        app.get("/v1/channels", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let pool = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "shared_pool")
        .cloned()
        .expect("the shared pool");
    let view = check_now(&app, &acme.admin_token, &pool).await;
    let dkim = check(&view, "acme.test", "dkim");
    assert_eq!(dkim["status"], "missing", "{dkim:#}");
    assert!(says(dkim, "no active DKIM key"), "{dkim:#}");
    assert!(says(check(&view, "acme.test", "spf"), "the shared pool"));

    let records = dkim_cli(&app, "rotate", &acme, "acme.test").await;
    let record = &records[0];
    app.dns
        .long_txt(
            record["name"].as_str().unwrap(),
            record["value"].as_str().unwrap(),
        )
        .await;
    let view = check_now(&app, &acme.admin_token, &pool).await;
    let dkim = check(&view, "acme.test", "dkim");
    assert_eq!(dkim["status"], "ok", "{dkim:#}");
    assert!(says(dkim, "Switchboard signs"), "{dkim:#}");
    assert_eq!(dkim["detail"]["selector"], record["selector"], "{dkim:#}");
    let alignment = check(&view, "acme.test", "alignment");
    assert_eq!(alignment["status"], "ok", "{alignment:#}");
    assert_eq!(alignment["detail"]["dkim_aligned"], true);
    assert_eq!(alignment["detail"]["spf_aligned"], true);
}

#[tokio::test]
async fn another_tenant_cannot_read_or_check_a_channels_health() {
    let (app, acme) = acme(&[]).await;
    let relay = custom_relay(&app, &acme).await;
    let checked_at = checked_after_creation(&app, &acme, &relay).await;
    let other = app.create_tenant("Other").await;
    let id = relay["id"].as_str().unwrap();
    for res in [
        app.post(
            &format!("/v1/channels/{id}/health"),
            &other.admin_token,
            json!({}),
        )
        .await,
        app.get(&format!("/v1/channels/{id}"), &other.admin_token)
            .await,
        app.post(
            "/v1/channels/not-an-id/health",
            &acme.admin_token,
            json!({}),
        )
        .await,
    ] {
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    // Nothing about acme.test was checked for the prober.
    let view = read(&app, &acme.admin_token, &relay).await;
    assert_eq!(view["health"]["domains"][0]["checked_at"], checked_at);
    let openapi = expect_json(
        app.get("/openapi.json", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert!(openapi["paths"]["/v1/channels/{id}/health"]["post"].is_object());
    let schemas = &openapi["components"]["schemas"];
    assert!(
        schemas["ChannelDomainHealthView"]["properties"]["checks"].is_object(),
        "{schemas:#}"
    );
    assert!(schemas["HealthView"]["properties"]["domains"].is_object());
    for request in ["CreateChannelRequest", "UpdateChannelRequest"] {
        assert!(
            schemas[request]["properties"]["spf_include"].is_object(),
            "{request}"
        );
    }
}

#[tokio::test]
async fn the_channel_page_shows_domain_health_and_checks_now() {
    let (app, acme) = acme(&[]).await;
    app.dns
        .txt("acme.test", &format!("v=spf1 include:{RELAY_INCLUDE} -all"))
        .await;
    let relay = custom_relay(&app, &acme).await;
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;
    let page_path = format!("/ui/channels/{}", relay["id"].as_str().unwrap());
    let page = ui.get(&page_path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let edit = ui.get(&format!("{page_path}/edit")).await;
    edit.expect("SPF include of the relay")
        .expect(RELAY_INCLUDE);
    // Whether the check made at creation has finished yet or not, the page has the panel.
    page.expect("Domain health").expect("Check now");
    let done = ui.post(&format!("{page_path}/health"), &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let page = ui.follow(&done).await;
    page.expect("need attention")
        .expect("SPF authorises smtp.sparkpost-like.test")
        .expect("RETURN PATH")
        .expect("ALIGNMENT")
        .expect_not("Not checked yet.");
}

#[tokio::test]
async fn a_workspace_mailbox_warns_that_alignment_rests_on_spf_until_dkim_is_set_up() {
    let (app, acme) = acme(&[]).await;
    app.dns
        .txt("acme.test", "v=spf1 include:_spf.google.com ~all")
        .await;
    app.dns
        .txt("_spf.google.com", "v=spf1 ip4:192.0.2.0/24 ~all")
        .await;
    let rep = app.create_user(&acme, "dana@acme.test", "rep", None).await;
    let mailbox = create(
        &app,
        &rep.token,
        json!({
            "name": "Dana", "kind": "smtp", "preset": "gmail", "scope": "mailbox",
            "from_address": "dana@acme.test",
            "smtp": {"username": "dana@acme.test", "password": "App-Pw-123"},
        }),
    )
    .await;
    let view = check_now(&app, &rep.token, &mailbox).await;
    // The mailbox is the envelope sender: aligned, and SPF passes with Google's include.
    assert_eq!(check(&view, "acme.test", "return_path")["status"], "ok");
    assert_eq!(check(&view, "acme.test", "spf")["status"], "ok");
    let dkim = check(&view, "acme.test", "dkim");
    assert_eq!(dkim["status"], "missing", "{dkim:#}");
    assert!(
        says(dkim, "gappssmtp.com") && says(dkim, "rests on SPF"),
        "{dkim:#}"
    );
    let alignment = check(&view, "acme.test", "alignment");
    assert_eq!(alignment["status"], "ok", "{alignment:#}");
    assert!(says(alignment, "SPF alone"), "{alignment:#}");

    // Workspace DKIM turned on: the google selector is found without being named.
    app.dns
        .txt(
            "google._domainkey.acme.test",
            &format!("v=DKIM1; k=rsa; p={KEY}"),
        )
        .await;
    let view = check_now(&app, &rep.token, &mailbox).await;
    assert_eq!(check(&view, "acme.test", "dkim")["status"], "ok");
    assert!(says(
        check(&view, "acme.test", "alignment"),
        "both SPF and DKIM"
    ));
}

/// Waits for the check a channel gets when it is created; its `checked_at`.
async fn checked_after_creation(app: &TestApp, acme: &TestTenant, channel: &Value) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let view = read(app, &acme.admin_token, channel).await;
        let domains = &view["health"]["domains"];
        if domains[0]["checked_at"].is_string() {
            assert_eq!(domains[0]["domain"], "acme.test", "{view:#}");
            assert!(
                domains[0]["checks"].as_array().unwrap().len() >= 4,
                "{view:#}"
            );
            return domains[0]["checked_at"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never checked: {view:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_new_channel_is_checked_without_waiting_for_the_hourly_pass() {
    let (app, acme) = acme(&[]).await;
    app.dns
        .txt("acme.test", &format!("v=spf1 include:{RELAY_INCLUDE} -all"))
        .await;
    let relay = custom_relay(&app, &acme).await;
    checked_after_creation(&app, &acme, &relay).await;
}
