//! DNS health of verified domains: SPF (the shared pool's include, one record, the
//! 10-lookup limit, loops), DKIM by TXT and by CNAME, DMARC, MX, DNS failures kept apart from
//! missing records, nothing shown before proof, and `domain.dns_error` once when a check
//! breaks. DNS is the in-process server (`dns_server.rs`).

use std::time::Duration;

use hickory_server::proto::rr::RecordType;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dns_server::DnsFault;
use crate::helpers::{TestApp, TestTenant, expect_json, expect_problem, spawn_app_with};
use crate::webhook_receiver::WebhookReceiver;

const INCLUDE: &str = "_spf.platform.test";
const KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu5Xq";

async fn app(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("SWITCHBOARD_SHARED_POOL_SPF_INCLUDE", INCLUDE)];
    env.extend_from_slice(extra);
    spawn_app_with(&env).await
}

/// SPF with the pool's include, DMARC and MX: every domain-level check but DKIM is `ok`.
async fn publish_healthy(app: &TestApp, domain: &str) {
    app.dns.txt(INCLUDE, "v=spf1 ip4:192.0.2.0/24 -all").await;
    app.dns
        .txt(domain, &format!("v=spf1 include:{INCLUDE} ~all"))
        .await;
    app.dns
        .txt(
            &format!("_dmarc.{domain}"),
            "v=DMARC1; p=quarantine; pct=50; rua=mailto:dmarc@acme.test",
        )
        .await;
    app.dns.mx(domain, 10, "mx1.mail.test").await;
}

/// An app using the pool's include, with acme.test's healthy records published, and the
/// tenant Acme (which has not proven it yet).
async fn acme_app(extra: &[(&str, &str)]) -> (TestApp, TestTenant) {
    let app = app(extra).await;
    publish_healthy(&app, "acme.test").await;
    let acme = app.create_tenant("Acme").await;
    (app, acme)
}

async fn set_spf(app: &TestApp, domain: &str, records: &[&str]) {
    app.dns.remove(domain, RecordType::TXT).await;
    for r in records {
        app.dns.txt(domain, r).await;
    }
}

async fn recheck(app: &TestApp, token: &str, claim: &Value) -> Value {
    let path = format!("/v1/domains/{}/verify", claim["id"].as_str().unwrap());
    expect_json(app.post(&path, token, json!({})).await, StatusCode::OK).await
}

/// The first check of a kind in a domain view.
fn check<'a>(view: &'a Value, kind: &str) -> &'a Value {
    view["health"]["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no health: {view:#}"))
        .iter()
        .find(|c| c["check"] == kind)
        .unwrap_or_else(|| panic!("no {kind} check: {view:#}"))
}

fn says(c: &Value, words: &str) -> bool {
    c["message"].as_str().unwrap().contains(words)
}

#[tokio::test]
async fn spf_with_the_pool_include_is_ok_and_without_it_is_invalid() {
    let (app, acme) = acme_app(&[]).await;
    let claim = app.prove_domain(&acme.admin_token, "acme.test").await;
    let spf = check(&claim, "spf");
    assert_eq!(spf["status"], "ok", "{spf:#}");
    assert!(says(spf, "the shared pool"), "{spf:#}");
    assert_eq!(spf["detail"]["lookups"], 1);
    assert_eq!(check(&claim, "dmarc")["status"], "ok");
    assert_eq!(check(&claim, "mx")["status"], "ok");

    app.dns
        .txt("other.test", "v=spf1 ip4:198.51.100.1 -all")
        .await;
    set_spf(&app, "acme.test", &["v=spf1 include:other.test ~all"]).await;
    let view = recheck(&app, &acme.admin_token, &claim).await;
    let spf = check(&view, "spf");
    assert_eq!(spf["status"], "invalid", "{spf:#}");
    assert!(says(spf, &format!("add include:{INCLUDE}")), "{spf:#}");

    // No record at all.
    app.dns.remove("acme.test", RecordType::TXT).await;
    let view = recheck(&app, &acme.admin_token, &claim).await;
    let spf = check(&view, "spf");
    assert_eq!(spf["status"], "missing", "{spf:#}");
    assert!(
        says(spf, &format!("v=spf1 include:{INCLUDE} ~all")),
        "{spf:#}"
    );
}

#[tokio::test]
async fn two_spf_records_are_invalid() {
    let (app, acme) = acme_app(&[]).await;
    app.dns.txt("acme.test", "v=spf1 mx -all").await;
    let claim = app.prove_domain(&acme.admin_token, "acme.test").await;
    let spf = check(&claim, "spf");
    assert_eq!(spf["status"], "invalid", "{spf:#}");
    assert!(says(spf, "2 SPF records"), "{spf:#}");
}

#[tokio::test]
async fn spf_over_ten_lookups_is_invalid_and_names_the_chain() {
    let (app, acme) = acme_app(&[]).await;
    // acme.test → i1 → … → i10, each include one lookup, plus the pool's: 11.
    set_spf(
        &app,
        "acme.test",
        &[&format!(
            "v=spf1 include:{INCLUDE} include:i1.chain.test ~all"
        )],
    )
    .await;
    for i in 1..=9 {
        app.dns
            .txt(
                &format!("i{i}.chain.test"),
                &format!("v=spf1 include:i{}.chain.test -all", i + 1),
            )
            .await;
    }
    app.dns
        .txt("i10.chain.test", "v=spf1 ip4:192.0.2.9 -all")
        .await;
    let claim = app.prove_domain(&acme.admin_token, "acme.test").await;
    let spf = check(&claim, "spf");
    assert_eq!(spf["status"], "invalid", "{spf:#}");
    assert_eq!(spf["detail"]["lookups"], 11, "{spf:#}");
    assert!(says(spf, "11 DNS lookups"), "{spf:#}");
    assert!(says(spf, "i10.chain.test"), "{spf:#}");

    // Ten is fine: the chain ends at i9 with the pool's include.
    set_spf(&app, "acme.test", &["v=spf1 include:i1.chain.test ~all"]).await;
    app.dns.remove("i9.chain.test", RecordType::TXT).await;
    app.dns
        .txt("i9.chain.test", &format!("v=spf1 include:{INCLUDE} -all"))
        .await;
    let view = recheck(&app, &acme.admin_token, &claim).await;
    let spf = check(&view, "spf");
    assert_eq!(spf["status"], "ok", "{spf:#}");
    assert_eq!(spf["detail"]["lookups"], 10, "{spf:#}");
}

#[tokio::test]
async fn an_spf_include_loop_is_invalid() {
    let (app, acme) = acme_app(&[]).await;
    set_spf(
        &app,
        "acme.test",
        &[&format!(
            "v=spf1 include:{INCLUDE} include:a.loop.test ~all"
        )],
    )
    .await;
    app.dns
        .txt("a.loop.test", "v=spf1 include:b.loop.test -all")
        .await;
    app.dns
        .txt("b.loop.test", "v=spf1 include:a.loop.test -all")
        .await;
    let claim = app.prove_domain(&acme.admin_token, "acme.test").await;
    let spf = check(&claim, "spf");
    assert_eq!(spf["status"], "invalid", "{spf:#}");
    assert!(
        says(spf, "a.loop.test → b.loop.test → a.loop.test"),
        "{spf:#}"
    );
}

#[tokio::test]
async fn dkim_is_found_by_txt_and_through_a_cname_and_missing_is_said() {
    let (app, acme) = acme_app(&[]).await;
    let claim = app.prove_domain(&acme.admin_token, "acme.test").await;
    // Our own key, pending: the check says which record to publish.
    let ours = claim["dkim"][0]["selector"].as_str().unwrap().to_owned();
    let dkim = check(&claim, "dkim");
    assert_eq!(dkim["status"], "missing", "{dkim:#}");
    assert!(
        says(dkim, &format!("{ours}._domainkey.acme.test")),
        "{dkim:#}"
    );

    // s1: a long key, split into 255-byte strings; s2: SendGrid-style CNAME; s3: nothing;
    // s4: revoked.
    let long_key = KEY.repeat(8);
    app.dns
        .long_txt(
            "s1._domainkey.acme.test",
            &format!("v=DKIM1; k=rsa; p={long_key}"),
        )
        .await;
    app.dns
        .cname("s2._domainkey.acme.test", "s2.dkim.relay.test")
        .await;
    app.dns
        .txt("s2.dkim.relay.test", &format!("v=DKIM1; p={KEY}"))
        .await;
    app.dns.txt("s4._domainkey.acme.test", "v=DKIM1; p=").await;
    let path = format!("/v1/domains/{}", claim["id"].as_str().unwrap());
    let view = expect_json(
        app.patch(
            &path,
            &acme.admin_token,
            json!({"dkim_selectors": ["s1", "S2", "s3", "s4"]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(view["dkim_selectors"], json!(["s1", "s2", "s3", "s4"]));
    let dkim: Vec<&Value> = view["health"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "dkim" && c["detail"]["selector"] != ours.as_str())
        .collect();
    assert_eq!(dkim.len(), 4, "{view:#}");
    assert_eq!(dkim[0]["status"], "ok", "{:#}", dkim[0]);
    assert_eq!(dkim[1]["status"], "ok", "{:#}", dkim[1]);
    assert_eq!(dkim[1]["detail"]["cname"], "s2.dkim.relay.test");
    assert!(
        says(dkim[1], "CNAME to s2.dkim.relay.test"),
        "{:#}",
        dkim[1]
    );
    assert_eq!(dkim[2]["status"], "missing", "{:#}", dkim[2]);
    assert!(says(dkim[2], "s3._domainkey.acme.test"), "{:#}", dkim[2]);
    assert_eq!(dkim[3]["status"], "invalid", "{:#}", dkim[3]);
    assert!(says(dkim[3], "revoked"), "{:#}", dkim[3]);

    // A CNAME whose target has no key yet.
    app.dns.remove("s2.dkim.relay.test", RecordType::TXT).await;
    let view = recheck(&app, &acme.admin_token, &claim).await;
    let s2 = view["health"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["detail"]["selector"] == "s2")
        .unwrap();
    assert_eq!(s2["status"], "missing", "{s2:#}");
    assert!(says(s2, "finish the domain's setup at the relay"), "{s2:#}");

    // Bad selectors change nothing.
    let bad = app
        .patch(
            &path,
            &acme.admin_token,
            json!({"dkim_selectors": ["s1", "no good"]}),
        )
        .await;
    expect_problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field").await;
    let after = expect_json(app.get(&path, &acme.admin_token).await, StatusCode::OK).await;
    assert_eq!(after["dkim_selectors"], json!(["s1", "s2", "s3", "s4"]));
}

#[tokio::test]
async fn dmarc_policy_is_shown_and_missing_dmarc_and_mx_are_said() {
    let (app, acme) = acme_app(&[]).await;
    let claim = app.prove_domain(&acme.admin_token, "acme.test").await;
    let dmarc = check(&claim, "dmarc");
    assert_eq!(dmarc["status"], "ok", "{dmarc:#}");
    assert_eq!(dmarc["detail"]["policy"], "quarantine");
    assert_eq!(dmarc["detail"]["pct"], 50);
    assert_eq!(dmarc["detail"]["rua"], json!(["mailto:dmarc@acme.test"]));
    assert!(says(dmarc, "p=quarantine on 50%"), "{dmarc:#}");

    app.dns.remove("_dmarc.acme.test", RecordType::TXT).await;
    app.dns.remove("acme.test", RecordType::MX).await;
    let view = recheck(&app, &acme.admin_token, &claim).await;
    let dmarc = check(&view, "dmarc");
    assert_eq!(dmarc["status"], "missing", "{dmarc:#}");
    assert!(says(dmarc, "5,000"), "{dmarc:#}");
    assert!(says(dmarc, "v=DMARC1; p=none"), "{dmarc:#}");
    let mx = check(&view, "mx");
    assert_eq!(mx["status"], "missing", "{mx:#}");
    assert!(says(mx, "replies to this domain bounce"), "{mx:#}");

    // A subdomain falls back to the organisational domain the tenant proved.
    app.dns.txt("_dmarc.acme.test", "v=DMARC1; p=reject").await;
    publish_healthy(&app, "mail.acme.test").await;
    app.dns
        .remove("_dmarc.mail.acme.test", RecordType::TXT)
        .await;
    let sub = app.prove_domain(&acme.admin_token, "mail.acme.test").await;
    let dmarc = check(&sub, "dmarc");
    assert_eq!(dmarc["status"], "ok", "{dmarc:#}");
    assert_eq!(dmarc["detail"]["at"], "_dmarc.acme.test");
    assert_eq!(dmarc["detail"]["policy"], "reject");
}

#[tokio::test]
async fn a_dns_failure_is_a_temp_error_not_a_missing_record() {
    let (app, acme) = acme_app(&[]).await;
    let claim = app.prove_domain(&acme.admin_token, "acme.test").await;
    app.dns.fault("acme.test", DnsFault::ServFail);
    app.dns.fault("_dmarc.acme.test", DnsFault::ServFail);
    let view = recheck(&app, &acme.admin_token, &claim).await;
    assert_eq!(view["state"], "verified");
    for kind in ["spf", "dmarc", "mx"] {
        let c = check(&view, kind);
        assert_eq!(c["status"], "temp_error", "{c:#}");
        assert!(says(c, "did not answer"), "{c:#}");
    }
}

#[tokio::test]
async fn nothing_is_shown_before_proof_nor_to_another_tenant() {
    let (app, acme) = acme_app(&[]).await;
    let rival = app.create_tenant("Rival").await;
    let pending = expect_json(
        app.post(
            "/v1/domains",
            &rival.admin_token,
            json!({"domain": "acme.test"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let pending = recheck(&app, &rival.admin_token, &pending).await;
    assert_eq!(pending["state"], "pending");
    assert_eq!(pending["health"], Value::Null, "{pending:#}");

    let claim = app.prove_domain(&acme.admin_token, "acme.test").await;
    let id = claim["id"].as_str().unwrap();
    let path = format!("/v1/domains/{id}");
    for res in [
        app.get(&path, &rival.admin_token).await,
        app.post(&format!("{path}/verify"), &rival.admin_token, json!({}))
            .await,
        app.patch(&path, &rival.admin_token, json!({"dkim_selectors": ["s1"]}))
            .await,
    ] {
        expect_problem(res, StatusCode::NOT_FOUND, "not_found").await;
    }
    let mine = expect_json(app.get(&path, &acme.admin_token).await, StatusCode::OK).await;
    assert_eq!(mine["dkim_selectors"], json!([]));
}

#[tokio::test]
async fn a_broken_spf_record_fires_domain_dns_error_once() {
    let (app, acme) = acme_app(&[("SWITCHBOARD_DOMAIN_HEALTH_INTERVAL", "200ms")]).await;
    let hooks = WebhookReceiver::start().await;
    expect_json(
        app.post(
            "/v1/webhooks",
            &acme.admin_token,
            json!({"url": hooks.url("/hooks"), "events": ["domain.dns_error"]}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let claim = app.prove_domain(&acme.admin_token, "acme.test").await;
    assert_eq!(check(&claim, "spf")["status"], "ok");

    // Several hourly runs (200 ms here) while healthy: no event.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(hooks.requests().is_empty(), "no event while healthy");

    set_spf(&app, "acme.test", &["v=spf1 mx ~all"]).await;
    let got = hooks.wait_for(1, Duration::from_secs(20)).await;
    let event: Value = serde_json::from_str(&got[0].body_text()).unwrap();
    assert_eq!(event["type"], "domain.dns_error");
    assert_eq!(event["data"]["domain"]["domain"], "acme.test");
    let checks = event["data"]["checks"].as_array().unwrap();
    let spf = checks.iter().find(|c| c["check"] == "spf").unwrap();
    assert_eq!(spf["status"], "invalid", "{event:#}");
    assert!(
        checks.iter().any(|c| c["check"] == "dmarc"),
        "every check: {event:#}"
    );

    // Still broken on later runs: no second event.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(hooks.requests().len(), 1, "once per change");
    let view = expect_json(
        app.get(
            &format!("/v1/domains/{}", claim["id"].as_str().unwrap()),
            &acme.admin_token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(check(&view, "spf")["status"], "invalid");
}
