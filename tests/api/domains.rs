//! Sending domains proven through DNS: claims with their own tokens, verification now and
//! on the scheduler's watch, lapses when the record goes, and no sending as a domain a
//! tenant has not proven, whichever path the mail would take. DNS is a real server inside
//! the test (`dns_server.rs`), never the internet.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dns_server::DnsFault;
use crate::helpers::{TestApp, TestTenant, expect_json, expect_problem, spawn_app_with};
use crate::messages::{REP, acme_and_rep, pool_relay};
use crate::smtp_server::{SmtpServerConfig, TestSmtpServer};

const RELAY_PASSWORD: &str = "Canary-Relay-Pw-4411";

/// The platform's relay, and an app using it as the shared pool (plus `extra`).
struct Pool {
    app: TestApp,
    relay: TestSmtpServer,
    _ca: tempfile::NamedTempFile,
}

async fn pool(extra: &[(&str, &str)]) -> Pool {
    let (relay, ca, url) = pool_relay(RELAY_PASSWORD).await;
    let mut env = vec![
        ("SWITCHBOARD_SHARED_POOL_URL", url.as_str()),
        ("SWITCHBOARD_POLL_INTERVAL", "100ms"),
        ("SWITCHBOARD_RETRY_BASE", "200ms"),
        ("SWITCHBOARD_RETRY_MAX", "1s"),
    ];
    env.extend_from_slice(extra);
    Pool {
        app: spawn_app_with(&env).await,
        relay,
        _ca: ca,
    }
}

async fn claim(app: &TestApp, token: &str, domain: &str) -> Value {
    expect_json(
        app.post("/v1/domains", token, json!({ "domain": domain }))
            .await,
        StatusCode::CREATED,
    )
    .await
}

async fn verify(app: &TestApp, token: &str, claim: &Value) -> Value {
    let path = format!("/v1/domains/{}/verify", claim["id"].as_str().unwrap());
    expect_json(app.post(&path, token, json!({})).await, StatusCode::OK).await
}

async fn publish(app: &TestApp, claim: &Value) {
    let record = &claim["verification"];
    app.dns
        .txt(
            record["name"].as_str().unwrap(),
            record["value"].as_str().unwrap(),
        )
        .await;
}

fn mail_from(from: &str) -> Value {
    json!({"from": from, "to": ["ann@example.com"], "subject": "Hello", "text": "Hi Ann"})
}

/// Polls the claim until `done` holds (the scheduler's work), or fails the test.
async fn wait_for_claim(
    app: &TestApp,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let view = expect_json(
            app.get(&format!("/v1/domains/{id}"), token).await,
            StatusCode::OK,
        )
        .await;
        if done(&view) {
            return view;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the claim did not get there: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn audit_actions(app: &TestApp, tenant: &TestTenant) -> Vec<String> {
    let trail = expect_json(
        app.get("/v1/audit", &tenant.admin_token).await,
        StatusCode::OK,
    )
    .await;
    trail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_claim_is_verified_only_when_its_own_txt_record_is_found() {
    let app = spawn_app_with(&[]).await;
    let acme = app.create_tenant("Acme").await;
    let claimed = claim(&app, &acme.admin_token, "Acme.TEST").await;
    assert_eq!(claimed["domain"], "acme.test");
    assert_eq!(claimed["state"], "pending");
    let record = &claimed["verification"];
    assert_eq!(record["type"], "TXT");
    assert_eq!(record["name"], "_switchboard.acme.test");
    let value = record["value"].as_str().unwrap();
    let token = value
        .strip_prefix("switchboard-domain-verification=")
        .unwrap();
    assert!(token.len() >= 32, "at least 128 bits: {token}");
    // The claim comes with its DKIM key, pending: its record is published with the proof.
    let dkim = claimed["dkim"].as_array().unwrap();
    assert_eq!(dkim.len(), 1, "{claimed:#}");
    assert_eq!(dkim[0]["state"], "pending");
    assert_eq!(dkim[0]["type"], "TXT");
    let selector = dkim[0]["selector"].as_str().unwrap();
    assert_eq!(dkim[0]["name"], format!("{selector}._domainkey.acme.test"));
    assert!(
        dkim[0]["value"]
            .as_str()
            .unwrap()
            .starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
        "{claimed:#}"
    );
    assert!(
        dkim[0]["state_detail"]
            .as_str()
            .unwrap()
            .contains("publish this record"),
        "{claimed:#}"
    );

    // Nothing published: the name does not exist.
    let missing = verify(&app, &acme.admin_token, &claimed).await;
    assert_eq!(missing["state"], "pending");
    assert_eq!(missing["checks"][0]["status"], "missing");
    assert_eq!(missing["checks"][0]["code"], "nxdomain");
    assert!(
        missing["checks"][0]["message"]
            .as_str()
            .unwrap()
            .contains(value),
        "the message says what to publish: {missing:#}"
    );

    // Something else lives there (another product's proof): still not ours.
    app.dns
        .txt(
            "_switchboard.acme.test",
            "switchboard-domain-verification=0000",
        )
        .await;
    let wrong = verify(&app, &acme.admin_token, &claimed).await;
    assert_eq!(wrong["state"], "pending");
    assert_eq!(wrong["checks"][0]["status"], "invalid");
    assert_eq!(wrong["checks"][0]["code"], "wrong_value");

    // A panel that quotes the value is fine; other TXT records at the name may stay.
    app.dns
        .txt("_switchboard.acme.test", &format!("\"{value}\""))
        .await;
    let verified = verify(&app, &acme.admin_token, &claimed).await;
    assert_eq!(verified["state"], "verified", "{verified:#}");
    assert_eq!(verified["checks"][0]["status"], "ok");
    assert!(verified["verified_at"].is_string());

    let tenant = expect_json(
        app.get("/v1/tenant", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant["domains"], json!(["acme.test"]));
    assert_eq!(tenant["verified_domains"], json!(["acme.test"]));
    let actions = audit_actions(&app, &acme).await;
    assert!(
        actions.contains(&"domain.claimed".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"domain.verified".to_owned()),
        "{actions:?}"
    );

    // Claiming it twice is a conflict; a mailbox provider's domain is refused with advice.
    expect_problem(
        app.post(
            "/v1/domains",
            &acme.admin_token,
            json!({"domain": "acme.test"}),
        )
        .await,
        StatusCode::CONFLICT,
        "domain_already_claimed",
    )
    .await;
    let gmail = expect_problem(
        app.post(
            "/v1/domains",
            &acme.admin_token,
            json!({"domain": "gmail.com"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "mailbox_provider_domain",
    )
    .await;
    assert!(gmail["detail"].as_str().unwrap().contains("Connect Gmail"));
    expect_problem(
        app.post(
            "/v1/domains",
            &acme.admin_token,
            json!({"domain": "not a domain"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
}

#[tokio::test]
async fn two_tenants_claim_one_domain_and_each_gets_it_only_by_its_own_proof() {
    let app = spawn_app_with(&[]).await;
    let acme = app.create_tenant("Acme").await;
    let mallory = app.create_tenant("Mallory").await;
    let theirs = app.prove_domain(&acme.admin_token, "acme.test").await;
    // Mallory is told nothing about Acme's claim: the same answer as for a fresh domain.
    let mine = claim(&app, &mallory.admin_token, "acme.test").await;
    assert_eq!(mine["state"], "pending");
    assert_ne!(
        mine["verification"]["value"],
        theirs["verification"]["value"]
    );
    assert_ne!(mine["id"], theirs["id"]);
    // Acme's record at the same name does not prove Mallory's claim.
    let still = verify(&app, &mallory.admin_token, &mine).await;
    assert_eq!(still["state"], "pending");
    assert_eq!(still["checks"][0]["code"], "wrong_value");

    // Every endpoint answers 404 for the other tenant's claim, and changes nothing.
    let theirs_id = theirs["id"].as_str().unwrap();
    let path = format!("/v1/domains/{theirs_id}");
    expect_problem(
        app.get(&path, &mallory.admin_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.post(&format!("{path}/verify"), &mallory.admin_token, json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_problem(
        app.delete(&path, &mallory.admin_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let listed = expect_json(
        app.get("/v1/domains", &mallory.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], mine["id"]);
    let acme_view = expect_json(app.get(&path, &acme.admin_token).await, StatusCode::OK).await;
    assert_eq!(acme_view["state"], "verified");

    // Both may hold it once both proved it: two TXT values at one name.
    publish(&app, &mine).await;
    assert_eq!(
        verify(&app, &mallory.admin_token, &mine).await["state"],
        "verified"
    );
}

#[tokio::test]
async fn only_admins_claim_and_drop_domains_and_it_may_check_them() {
    let app = spawn_app_with(&[]).await;
    let acme = app.create_tenant("Acme").await;
    let it = app.create_user(&acme, "it@acme.test", "it", None).await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    for token in [&it.token, &rep.token] {
        expect_problem(
            app.post("/v1/domains", token, json!({"domain": "acme.test"}))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    let claimed = claim(&app, &acme.admin_token, "acme.test").await;
    publish(&app, &claimed).await;
    assert_eq!(verify(&app, &it.token, &claimed).await["state"], "verified");
    expect_problem(
        app.get("/v1/domains", &rep.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let path = format!("/v1/domains/{}", claimed["id"].as_str().unwrap());
    expect_problem(
        app.delete(&path, &it.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let res = app.delete(&path, &acme.admin_token).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get(&path, &acme.admin_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn no_path_sends_as_a_domain_the_tenant_has_not_proven() {
    // The attack from the issue: a second tenant lists another's domain and gmail.com, then
    // sends as ceo@acme.test through the shared pool.
    let p = pool(&[]).await;
    let app = &p.app;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    let mallory = app.create_tenant("Mallory").await;
    let team = app.create_team(&mallory, "Sales").await;
    let rep = app
        .create_user(&mallory, "rep@mallory.test", "rep", Some(&team))
        .await;
    // The old way of listing domains now only claims them (pending), and gmail.com not at all.
    expect_problem(
        app.patch(
            "/v1/tenant",
            &mallory.admin_token,
            json!({"domains": ["acme.test", "gmail.com"]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "mailbox_provider_domain",
    )
    .await;
    let tenant = expect_json(
        app.patch(
            "/v1/tenant",
            &mallory.admin_token,
            json!({"domains": ["acme.test"]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant["domains"], json!(["acme.test"]));
    assert_eq!(tenant["verified_domains"], json!([]));
    // Claimed this way too, it comes with its DKIM key to publish.
    let claims = expect_json(
        app.get("/v1/domains", &mallory.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(claims[0]["dkim"][0]["state"], "pending", "{claims:#}");

    for from in ["ceo@acme.test", "someone@gmail.com", "x@sub.acme.test"] {
        let refused = expect_problem(
            app.post("/v1/messages", &rep.token, mail_from(from)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "domain_not_verified",
        )
        .await;
        assert!(
            refused["detail"]
                .as_str()
                .unwrap()
                .contains("nothing was stored")
        );
        let pool_verdict = refused["route"]["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["tier"] == "shared_pool")
            .cloned()
            .unwrap();
        assert_eq!(pool_verdict["reason"], "domain_not_verified", "{refused:#}");
    }
    // The explanation names the claim's state.
    let explained = expect_json(
        app.post(
            "/v1/route/explain",
            &rep.token,
            json!({"from": "ceo@acme.test"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(explained["outcome"], "hold");
    assert_eq!(explained["reason"], "domain_not_verified");
    assert!(
        explained["detail"].as_str().unwrap().contains("pending"),
        "{explained:#}"
    );
    // In a batch, each such entry is refused on its own; a proven domain's mail goes in.
    app.prove_domain(&mallory.admin_token, "mallory.test").await;
    let batch = expect_json(
        app.post(
            "/v1/messages/batch",
            &mallory.admin_token,
            json!({"messages": [mail_from("ceo@acme.test"), mail_from("a@mallory.test")]}),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    assert_eq!(
        batch["results"][0]["error"]["code"], "domain_not_verified",
        "{batch:#}"
    );
    assert_eq!(batch["results"][1]["status"], "queued", "{batch:#}");

    // A team relay may not list it either.
    let relay = json!({"name": "Relay", "kind": "smtp", "scope": "domain",
        "owner": {"team": team}, "domains": ["acme.test"],
        "smtp": {"host": "localhost", "port": 2525, "security": "starttls", "auth": "plain",
                 "username": "u", "password": "p"}});
    let refused = expect_problem(
        app.post("/v1/channels", &mallory.admin_token, relay).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "domain_not_verified",
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("POST /v1/domains")
    );

    // Acme, which proved it, sends as it through the pool; nothing of Mallory's reached it.
    let acme_rep = app.create_user(&acme, "ceo@acme.test", "rep", None).await;
    let sent = expect_json(
        app.post("/v1/messages", &acme_rep.token, mail_from("ceo@acme.test"))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.wait_for_message(
        &acme_rep.token,
        sent["id"].as_str().unwrap(),
        "sent",
        Duration::from_secs(20),
    )
    .await;
    // Mallory's batch entry from its own proven domain went out too; nothing as acme.test.
    p.relay.wait_for_messages(2, Duration::from_secs(20)).await;
    let senders: Vec<String> = p
        .relay
        .messages()
        .iter()
        .map(|m| m.mail_from.clone())
        .collect();
    assert_eq!(
        senders.iter().filter(|s| s.ends_with("@acme.test")).count(),
        1,
        "{senders:?}"
    );
    assert!(
        senders.contains(&"a@mallory.test".to_owned()),
        "{senders:?}"
    );
}

#[tokio::test]
async fn a_mailbox_on_a_server_that_does_not_check_senders_needs_the_domain_proven() {
    let app = spawn_app_with(&[("SWITCHBOARD_POLL_INTERVAL", "100ms")]).await;
    let acme = app.create_tenant("Acme").await;
    let rep = app.create_user(&acme, REP, "rep", None).await;
    let server = TestSmtpServer::start(SmtpServerConfig {
        users: vec![(REP.to_owned(), "pw".to_owned())],
        ..SmtpServerConfig::default()
    })
    .await;
    expect_json(
        app.post(
            "/v1/channels",
            &rep.token,
            json!({"name": "Mine", "kind": "smtp", "scope": "mailbox", "from_address": REP,
                   "smtp": {"host": "localhost", "port": server.port(), "security": "starttls",
                            "auth": "login", "username": REP, "password": "pw",
                            "ca_pem": server.ca_pem()}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    // Logging in to this server proves the login, not that it may send as rep@acme.test:
    // only a provider that checks the sender (Gmail, Microsoft, Yahoo) vouches for that.
    let refused = expect_problem(
        app.post("/v1/messages", &rep.token, mail_from(REP)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "domain_not_verified",
    )
    .await;
    let skipped = &refused["route"]["candidates"][0];
    assert_eq!(skipped["tier"], "mailbox", "{refused:#}");
    assert!(
        skipped["detail"]
            .as_str()
            .unwrap()
            .contains("does not check which addresses its login may send as"),
        "{refused:#}"
    );
    app.prove_domain(&acme.admin_token, "acme.test").await;
    let sent = expect_json(
        app.post("/v1/messages", &rep.token, mail_from(REP)).await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.wait_for_message(
        &rep.token,
        sent["id"].as_str().unwrap(),
        "sent",
        Duration::from_secs(20),
    )
    .await;
    // The mailbox covers its own address only: a colleague's needs a domain channel.
    expect_problem(
        app.post("/v1/messages", &rep.token, mail_from("boss@acme.test"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_route",
    )
    .await;
}

#[tokio::test]
async fn dns_failures_never_lapse_a_domain() {
    let app = spawn_app_with(&[("SWITCHBOARD_DOMAIN_LAPSE_AFTER", "1")]).await;
    let acme = app.create_tenant("Acme").await;
    let proven = app.prove_domain(&acme.admin_token, "acme.test").await;
    for fault in [DnsFault::ServFail, DnsFault::Silence] {
        app.dns.fault("_switchboard.acme.test", fault);
        let checked = verify(&app, &acme.admin_token, &proven).await;
        assert_eq!(checked["state"], "verified", "{fault:?}: {checked:#}");
        assert_eq!(checked["checks"][0]["status"], "temp_error", "{fault:?}");
        assert_eq!(checked["misses"], 0);
        assert!(
            checked["checks"][0]["message"]
                .as_str()
                .unwrap()
                .contains("not counted"),
            "{checked:#}"
        );
    }
    app.dns.clear("_switchboard.acme.test");
    assert_eq!(
        verify(&app, &acme.admin_token, &proven).await["checks"][0]["status"],
        "ok"
    );
}

#[tokio::test]
async fn a_removed_record_lapses_the_domain_holds_its_mail_and_it_flows_when_proven_again() {
    let (app, acme, rep) = acme_and_rep(&[
        ("SWITCHBOARD_DOMAIN_LAPSE_AFTER", "2"),
        // Slow enough retries for the lapse to happen between two attempts.
        ("SWITCHBOARD_RETRY_BASE", "2s"),
        ("SWITCHBOARD_RETRY_MAX", "2s"),
    ])
    .await;
    let relay = TestSmtpServer::start(SmtpServerConfig {
        users: vec![("relay".to_owned(), "pw".to_owned())],
        ..SmtpServerConfig::default()
    })
    .await;
    expect_json(
        app.post(
            "/v1/channels",
            &acme.admin_token,
            json!({"name": "Relay", "kind": "smtp", "scope": "domain", "owner": {"tenant": true},
                   "domains": ["acme.test"],
                   "smtp": {"host": "localhost", "port": relay.port(), "security": "starttls",
                            "auth": "login", "username": "relay", "password": "pw",
                            "ca_pem": relay.ca_pem()}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let claims = expect_json(
        app.get("/v1/domains", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let proven = claims[0].clone();
    // Mail accepted while the domain is proven waits: the relay defers its recipient.
    relay.set_rcpt_reply("ann@example.com", Some((451, "4.3.0 try again later")));
    let queued = expect_json(
        app.post("/v1/messages", &rep.token, mail_from(REP)).await,
        StatusCode::ACCEPTED,
    )
    .await;
    let id = queued["id"].as_str().unwrap();
    app.wait_for_message(&rep.token, id, "deferred", Duration::from_secs(20))
        .await;

    // The record goes; one miss is not a lapse, the second is.
    app.dns
        .remove(
            "_switchboard.acme.test",
            hickory_server::proto::rr::RecordType::TXT,
        )
        .await;
    let once = verify(&app, &acme.admin_token, &proven).await;
    assert_eq!(once["state"], "verified");
    assert_eq!(once["misses"], 1);
    let lapsed = verify(&app, &acme.admin_token, &proven).await;
    assert_eq!(lapsed["state"], "lapsed", "{lapsed:#}");
    assert!(lapsed["lapsed_at"].is_string());
    assert!(
        audit_actions(&app, &acme)
            .await
            .contains(&"domain.lapsed".to_owned())
    );

    // New mail is refused; the queued message, at its next attempt, is held for the domain.
    relay.set_rcpt_reply("ann@example.com", None);
    expect_problem(
        app.post("/v1/messages", &rep.token, mail_from(REP)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "domain_not_verified",
    )
    .await;
    let held = app
        .wait_for_message_where(&rep.token, id, Duration::from_secs(20), |v| {
            v["status"] == "held" && v["route"]["reason"] == "domain_not_verified"
        })
        .await;
    assert!(
        held["route"]["detail"].as_str().unwrap().contains("lapsed"),
        "{held:#}"
    );
    assert!(relay.messages().is_empty());

    // Published again and checked: verified, and the held mail goes out.
    publish(&app, &proven).await;
    let back = verify(&app, &acme.admin_token, &proven).await;
    assert_eq!(back["state"], "verified");
    assert_eq!(back["misses"], 0);
    app.wait_for_message(&rep.token, id, "sent", Duration::from_secs(20))
        .await;
    assert_eq!(relay.messages().len(), 1);
}

#[tokio::test]
async fn the_scheduler_proves_pending_claims_lapses_removed_records_and_fails_old_claims() {
    let app = spawn_app_with(&[
        ("SWITCHBOARD_DOMAIN_PENDING_INTERVAL", "200ms"),
        ("SWITCHBOARD_DOMAIN_RECHECK_INTERVAL", "300ms"),
        ("SWITCHBOARD_DOMAIN_RETRY_INTERVAL", "200ms"),
        ("SWITCHBOARD_DOMAIN_LAPSE_AFTER", "2"),
        ("SWITCHBOARD_DOMAIN_CLAIM_WINDOW", "2s"),
    ])
    .await;
    let acme = app.create_tenant("Acme").await;
    let claimed = claim(&app, &acme.admin_token, "acme.test").await;
    let abandoned = claim(&app, &acme.admin_token, "old.acme.test").await;
    publish(&app, &claimed).await;
    let id = claimed["id"].as_str().unwrap();
    let verified = wait_for_claim(&app, &acme.admin_token, id, |v| v["state"] == "verified").await;
    assert!(verified["next_check_at"].is_string());

    app.dns
        .remove(
            "_switchboard.acme.test",
            hickory_server::proto::rr::RecordType::TXT,
        )
        .await;
    let lapsed = wait_for_claim(&app, &acme.admin_token, id, |v| v["state"] == "lapsed").await;
    assert_eq!(lapsed["checks"][0]["code"], "nxdomain");

    publish(&app, &claimed).await;
    wait_for_claim(&app, &acme.admin_token, id, |v| v["state"] == "verified").await;

    // Never published within its window: failed, and no longer scheduled.
    let old = abandoned["id"].as_str().unwrap();
    let failed = wait_for_claim(&app, &acme.admin_token, old, |v| v["state"] == "failed").await;
    assert!(failed["next_check_at"].is_null(), "{failed:#}");
    let actions = audit_actions(&app, &acme).await;
    for action in ["domain.verified", "domain.lapsed", "domain.failed"] {
        assert!(
            actions.contains(&action.to_owned()),
            "{action}: {actions:?}"
        );
    }
    // A check on demand can still prove it.
    publish(&app, &abandoned).await;
    assert_eq!(
        verify(&app, &acme.admin_token, &abandoned).await["state"],
        "verified"
    );
}

#[tokio::test]
async fn domains_listed_before_proof_existed_become_pending_claims_after_the_upgrade() {
    use diesel::connection::SimpleConnection;
    use switchboard::store::{DbConnection, Store, migrations};

    let app = spawn_app_with(&[]).await;
    let acme = app.create_tenant("Acme").await;
    let config = app.config();
    let keys = app.master_keys.clone();
    let setup = app.stop().await;
    // Back to the schema before claims, where a tenant listed its domains as it pleased.
    let store = Store::open(&config.database, 1).unwrap();
    store
        .run_blocking(|conn| {
            let reverted = migrations::revert_newer_than(conn, "2026-12-02-000009")?;
            assert!(
                reverted.iter().any(|v| v.ends_with("000010")),
                "{reverted:?}"
            );
            let insert = format!(
                "INSERT INTO tenant_domains (tenant_id, domain, created_at) VALUES \
                 ('{id}', 'acme.test', 1), ('{id}', 'sales.acme.test', 1)",
                id = acme.id
            );
            match conn {
                DbConnection::Sqlite(c) => c.batch_execute(&insert)?,
                DbConnection::Postgresql(c) => c.batch_execute(&insert)?,
            }
            Ok(())
        })
        .unwrap();
    drop(store);
    let app = setup
        .start_with_keys(&keys)
        .await
        .unwrap_or_else(|(e, _)| panic!("the upgraded app starts: {e}"));

    let claims = expect_json(
        app.get("/v1/domains", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let claims = claims.as_array().unwrap();
    assert_eq!(claims.len(), 2, "{claims:#?}");
    let names: Vec<&str> = claims
        .iter()
        .map(|c| c["domain"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme.test", "sales.acme.test"]);
    for claim in claims {
        assert_eq!(claim["state"], "pending");
        let value = claim["verification"]["value"].as_str().unwrap();
        let token = value
            .strip_prefix("switchboard-domain-verification=")
            .unwrap();
        assert_eq!(token.len(), 40, "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        assert_eq!(
            claim["verification"]["name"],
            format!("_switchboard.{}", claim["domain"].as_str().unwrap())
        );
    }
    assert_ne!(
        claims[0]["verification"]["value"],
        claims[1]["verification"]["value"]
    );
    // Until proven, nothing is sent as them; proven, they work as any claim.
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    expect_problem(
        app.post("/v1/messages", &rep.token, mail_from("rep@acme.test"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "domain_not_verified",
    )
    .await;
    publish(&app, &claims[0]).await;
    assert_eq!(
        verify(&app, &acme.admin_token, &claims[0]).await["state"],
        "verified"
    );
}

#[tokio::test]
async fn a_claim_abandoned_after_failing_is_removed() {
    let app = spawn_app_with(&[
        ("SWITCHBOARD_DOMAIN_PENDING_INTERVAL", "100ms"),
        ("SWITCHBOARD_DOMAIN_CLAIM_WINDOW", "1s"),
        ("SWITCHBOARD_DOMAIN_PURGE_AFTER", "1s"),
    ])
    .await;
    let acme = app.create_tenant("Acme").await;
    let abandoned = claim(&app, &acme.admin_token, "old.acme.test").await;
    let id = abandoned["id"].as_str().unwrap();
    wait_for_claim(&app, &acme.admin_token, id, |v| v["state"] == "failed").await;
    let path = format!("/v1/domains/{id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while app.get(&path, &acme.admin_token).await.status() != StatusCode::NOT_FOUND {
        assert!(
            std::time::Instant::now() < deadline,
            "a failed claim is never removed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audit = expect_json(
        app.get("/v1/audit?action=domain.deleted", &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(audit[0]["actor"], "system", "{audit:#}");
    assert_eq!(audit[0]["detail"]["state"], "failed", "{audit:#}");
    // The name is free to claim again, with a new token.
    let again = claim(&app, &acme.admin_token, "old.acme.test").await;
    assert_eq!(again["state"], "pending");
    assert_ne!(
        again["verification"]["value"],
        abandoned["verification"]["value"]
    );
}
