//! DKIM signing as a receiver sees it: what arrives at the relay carries a signature that an
//! independent verifier (mail-auth's, with the records our store says to publish pre-loaded,
//! no network) accepts; mailbox channels and relays without `dkim_sign` send unsigned; a
//! claim's key is pending, and signs nothing, until its record is found in the test's DNS;
//! keys rotate with the old key signing until the new record is seen, and its record kept
//! for a week after; the private key survives key rotations.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard::store::dkim_keys;

use crate::cli_channel::{Outcome, run};
use crate::helpers::{TestApp, TestTenant, expect_json, expect_problem, master_key};
use crate::messages::{REP, acme_and_rep, mail, world};
use crate::smtp_server::{SmtpServerConfig, TestSmtpServer};

const PATIENCE: Duration = Duration::from_secs(30);
const RELAY_USER: &str = "relay";
const RELAY_PASSWORD: &str = "Canary-Relay-Pw-5c1";

/// The TXT records a verifier finds, by fully qualified name. Nothing else resolves.
struct Records(HashMap<Box<str>, Txt>);

impl Records {
    /// From `switchboard dkim … --json` output: every record it says to publish.
    fn published(records: &Value) -> Self {
        let mut map = HashMap::new();
        for r in records.as_array().expect("a list of records") {
            let key = DomainKey::parse(r["value"].as_str().unwrap().as_bytes())
                .unwrap_or_else(|e| panic!("a record mail-auth reads: {e:?} {r}"));
            let name = format!("{}.", r["name"].as_str().unwrap());
            map.insert(name.into_boxed_str(), Txt::DomainKey(Arc::new(key)));
        }
        Self(map)
    }
}

impl ResolverCache<Box<str>, Txt> for Records {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(name).cloned()
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

/// mail-auth's verdict on each DKIM signature of `raw`.
async fn verify(raw: &[u8], records: &Records) -> Vec<DkimResult> {
    // Never asked: every name the message needs is in `records`.
    let resolver = MessageAuthenticator::new_cloudflare().unwrap();
    let message = AuthenticatedMessage::parse(raw).expect("a message mail-auth parses");
    resolver
        .verify_dkim(Parameters::new(&message).with_txt_cache(records))
        .await
        .into_iter()
        .map(|out| out.result().clone())
        .collect()
}

/// The tags of the message's DKIM-Signature field (none: unsigned).
fn signature_tags(raw: &[u8]) -> Option<HashMap<String, String>> {
    let text = String::from_utf8_lossy(raw);
    let header = &text[..text.find("\r\n\r\n")?];
    let start = header.find("DKIM-Signature:")?;
    let rest = &header[start + "DKIM-Signature:".len()..];
    // The field ends at the first line break not followed by a fold.
    let mut end = rest.len();
    for (i, _) in rest.match_indices("\r\n") {
        if !rest[i + 2..].starts_with([' ', '\t']) {
            end = i;
            break;
        }
    }
    let value: String = rest[..end]
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    Some(
        value
            .split(';')
            .filter_map(|tag| tag.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.split_whitespace().collect()))
            .collect(),
    )
}

/// The tenant's claim on `domain`, as `GET /v1/domains` shows it.
pub(crate) async fn claim_of(app: &TestApp, admin_token: &str, domain: &str) -> Value {
    let all = expect_json(app.get("/v1/domains", admin_token).await, StatusCode::OK).await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["domain"] == domain)
        .cloned()
        .unwrap_or_else(|| panic!("a claim on {domain}: {all:#}"))
}

/// "Check now" on a claim, as its admin.
async fn check_now(app: &TestApp, admin_token: &str, claim: &Value) -> Value {
    let path = format!("/v1/domains/{}/verify", claim["id"].as_str().unwrap());
    expect_json(
        app.post(&path, admin_token, json!({})).await,
        StatusCode::OK,
    )
    .await
}

/// The claim's DKIM record in `state`.
fn record_in<'a>(claim: &'a Value, state: &str) -> &'a Value {
    claim["dkim"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["state"] == state)
        .unwrap_or_else(|| panic!("a {state} DKIM record: {claim:#}"))
}

/// Publishes a DKIM record in the test's DNS as a provider does with a long value: split
/// into 255-byte strings of one record.
async fn publish(app: &TestApp, record: &Value) {
    app.dns
        .long_txt(
            record["name"].as_str().unwrap(),
            record["value"].as_str().unwrap(),
        )
        .await;
}

/// Publishes the pending DKIM record of the tenant's claim on `domain` in the test's DNS and
/// checks the domain, as an admin does after one visit to the DNS: the key starts signing.
/// Returns the claim's DKIM records (what a verifier may find).
pub(crate) async fn publish_dkim(app: &TestApp, admin_token: &str, domain: &str) -> Value {
    let claim = claim_of(app, admin_token, domain).await;
    let pending = record_in(&claim, "pending");
    publish(app, pending).await;
    let checked = check_now(app, admin_token, &claim).await;
    assert_eq!(
        record_in(&checked, "active")["selector"],
        pending["selector"],
        "{checked:#}"
    );
    checked["dkim"].clone()
}

/// `switchboard dkim <what> --tenant … --domain …` (and `extra`), as run on the server.
pub(crate) async fn dkim_command(
    app: &TestApp,
    what: &str,
    tenant: &str,
    domain: &str,
    extra: &[&str],
) -> Outcome {
    let mut args = vec!["dkim", what, "--tenant", tenant, "--domain", domain];
    args.extend_from_slice(extra);
    run(app, &args, None).await
}

/// `switchboard dkim <what> … --json`: the records to publish.
pub(crate) async fn dkim_cli(
    app: &TestApp,
    what: &str,
    tenant: &TestTenant,
    domain: &str,
) -> Value {
    let out = dkim_command(app, what, &tenant.id, domain, &["--json"]).await;
    assert!(out.ok, "dkim {what}: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

/// A relay that checks its password, for the shared pool or a team's domain channel.
async fn relay() -> TestSmtpServer {
    TestSmtpServer::start(SmtpServerConfig {
        users: vec![(RELAY_USER.to_owned(), RELAY_PASSWORD.to_owned())],
        ..SmtpServerConfig::default()
    })
    .await
}

/// An app whose shared pool is `relay`; the CA file must outlive the app.
async fn with_shared_pool(
    relay: &TestSmtpServer,
) -> (
    TestApp,
    TestTenant,
    crate::helpers::TestUser,
    tempfile::NamedTempFile,
) {
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), relay.ca_pem()).unwrap();
    let pool = format!(
        "smtp://{RELAY_USER}:{RELAY_PASSWORD}@localhost:{}?security=starttls&ca={}",
        relay.port(),
        ca.path().display()
    );
    let (app, acme, rep) = acme_and_rep(&[("SWITCHBOARD_SHARED_POOL_URL", pool.as_str())]).await;
    (app, acme, rep, ca)
}

/// Sends `body` as `token`'s user and waits until it is sent.
pub(crate) async fn send_and_wait(app: &TestApp, token: &str, body: Value) {
    let res = app.post("/v1/messages", token, body).await;
    let id = expect_json(res, StatusCode::ACCEPTED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_message(token, &id, "sent", PATIENCE).await;
}

/// Sends `body` as `token`'s user and returns the bytes the server received.
async fn delivered(app: &TestApp, token: &str, server: &TestSmtpServer, body: Value) -> Vec<u8> {
    let subject = body["subject"].as_str().unwrap().to_owned();
    send_and_wait(app, token, body).await;
    server
        .messages()
        .into_iter()
        .find(|m| String::from_utf8_lossy(&m.data).contains(&subject))
        .unwrap_or_else(|| panic!("{subject} arrived"))
        .data
}

fn unsubscribing(subject: &str) -> Value {
    let mut body = mail(subject);
    body["headers"] = json!({
        "List-Unsubscribe": "<https://unsub.acme.test/u/opaque-token>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    });
    body
}

#[tokio::test]
async fn the_shared_pool_signs_with_the_tenants_key_and_an_independent_verifier_accepts_it() {
    let relay = relay().await;
    let (app, acme, rep, _ca) = with_shared_pool(&relay).await;

    // The claim came with a key, pending: its record is not published yet, so the mail
    // goes out unsigned (not held, not failed), and the message log and the route
    // explanation say why.
    let claim = claim_of(&app, &acme.admin_token, "acme.test").await;
    let pending = record_in(&claim, "pending").clone();
    let selector = pending["selector"].as_str().unwrap().to_owned();
    let why = format!("not DKIM-signed: the record for selector {selector} is not published yet");
    let res = app
        .post("/v1/messages", &rep.token, mail("Before the record"))
        .await;
    let id = expect_json(res, StatusCode::ACCEPTED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_message(&rep.token, &id, "sent", PATIENCE)
        .await;
    let raw = relay
        .messages()
        .into_iter()
        .find(|m| String::from_utf8_lossy(&m.data).contains("Before the record"))
        .expect("sent")
        .data;
    assert!(signature_tags(&raw).is_none(), "unsigned while pending");
    let logged = expect_json(
        app.get(&format!("/v1/messages/{id}"), &rep.token).await,
        StatusCode::OK,
    )
    .await;
    let attempt = logged["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "attempt")
        .unwrap_or_else(|| panic!("an attempt: {logged:#}"));
    assert_eq!(attempt["detail"]["dkim"]["signed"], false, "{attempt:#}");
    assert_eq!(
        attempt["detail"]["dkim"]["code"],
        "dkim_record_not_published"
    );
    assert!(
        attempt["detail"]["dkim"]["detail"]
            .as_str()
            .unwrap()
            .starts_with(&why),
        "{attempt:#}"
    );
    let explain = |token: String| {
        let app = &app;
        async move {
            expect_json(
                app.post("/v1/route/explain", &token, json!({"from": REP}))
                    .await,
                StatusCode::OK,
            )
            .await
        }
    };
    let explained = explain(rep.token.clone()).await;
    assert_eq!(explained["dkim"]["signed"], false, "{explained:#}");
    assert!(
        explained["dkim"]["detail"]
            .as_str()
            .unwrap()
            .starts_with(&why),
        "{explained:#}"
    );
    // So do the message's page and the route page.
    let mut ui = crate::ui_client::UiClient::signed_in(&app, &rep.token).await;
    ui.get(&format!("/ui/messages/{id}"))
        .await
        .expect(&format!("; {why}"));
    ui.get(&format!("/ui/route?from={REP}"))
        .await
        .expect(&format!("Sent {why}"));
    // The CLI shows the same key in the same state.
    let shown = dkim_cli(&app, "show", &acme, "acme.test").await;
    assert_eq!(shown[0]["selector"], selector.as_str(), "{shown:#}");
    assert_eq!(shown[0]["state"], "pending");

    // The admin publishes it; the next check finds it and the key signs from then on.
    let records = publish_dkim(&app, &acme.admin_token, "acme.test").await;
    assert_eq!(records.as_array().unwrap().len(), 1, "{records:#}");
    let record = &records[0];
    assert_eq!(record["state"], "active");
    assert_eq!(record["selector"], selector.as_str());
    assert_eq!(
        record["name"],
        format!("{selector}._domainkey.acme.test"),
        "{record}"
    );
    let value = record["value"].as_str().unwrap();
    assert!(value.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"), "{value}");
    let shown = dkim_cli(&app, "show", &acme, "acme.test").await;
    assert_eq!(shown[0]["state"], "active", "{shown:#}");
    let explained = explain(rep.token.clone()).await;
    assert_eq!(
        explained["dkim"],
        json!({"signed": true, "domain": "acme.test", "selector": selector}),
        "{explained:#}"
    );
    ui.get(&format!("/ui/route?from={REP}"))
        .await
        .expect(&format!(
            "DKIM-signed by Switchboard with selector <code>{selector}</code>"
        ));
    let selector = selector.as_str();

    let pool = expect_json(
        app.get(
            "/v1/channels/00000000-0000-0000-0000-000000000000",
            &rep.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(pool["dkim_sign"], true);

    let raw = delivered(
        &app,
        &rep.token,
        &relay,
        unsubscribing("Signed with one click"),
    )
    .await;
    let tags = signature_tags(&raw).expect("signed");
    assert_eq!(tags["d"], "acme.test");
    assert_eq!(tags["s"], selector);
    assert_eq!(tags["a"], "rsa-sha256");
    assert_eq!(tags["c"], "relaxed/relaxed");
    let signed: Vec<String> = tags["h"].split(':').map(str::to_ascii_lowercase).collect();
    for field in [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(signed.iter().any(|h| h == field), "{field} in h={signed:?}");
    }
    assert_eq!(
        signed.iter().filter(|h| *h == "from").count(),
        2,
        "From is over-signed: {signed:?}"
    );
    assert!(
        !signed.iter().any(|h| h == "cc"),
        "absent fields are not listed"
    );

    let dns = Records::published(&records);
    assert_eq!(verify(&raw, &dns).await, [DkimResult::Pass]);

    // What a receiver would notice: a changed body, or a changed unsubscribe link.
    let text = String::from_utf8(raw.clone()).unwrap();
    let body_changed = text.replace("Hello Ann", "Hello Bob");
    assert_ne!(body_changed, text);
    let link_changed = text.replace("opaque-token", "other-token");
    assert_ne!(link_changed, text);
    for tampered in [body_changed, link_changed] {
        let results = verify(tampered.as_bytes(), &dns).await;
        // mail-auth calls a body hash mismatch "neutral", a signature mismatch "fail".
        assert!(
            matches!(
                results.as_slice(),
                [DkimResult::Fail(_) | DkimResult::Neutral(_)]
            ),
            "{results:?}"
        );
    }
    // And a record that is not the published one.
    let other = dkim_cli(&app, "rotate", &acme, "mail.acme.test").await;
    let mut wrong = Records::published(&other);
    let wrong_key = wrong.0.drain().next().unwrap().1;
    let impostor = Records(HashMap::from([(
        format!("{selector}._domainkey.acme.test.").into_boxed_str(),
        wrong_key,
    )]));
    assert!(matches!(
        verify(&raw, &impostor).await.as_slice(),
        [DkimResult::Fail(_)]
    ));
}

#[tokio::test]
async fn a_domain_relay_signs_only_when_its_admin_turns_dkim_sign_on_and_mailboxes_never() {
    let w = world().await;
    let records = publish_dkim(&w.app, &w.acme.admin_token, "acme.test").await;
    let dns = Records::published(&records);

    // The rep's own mailbox: its provider signs, we never do.
    let raw = delivered(&w.app, &w.rep.token, &w.server, mail("Through my mailbox")).await;
    assert!(signature_tags(&raw).is_none());
    let path = format!("/v1/channels/{}", w.channel);
    let problem = expect_problem(
        w.app
            .patch(&path, &w.rep.token, json!({"dkim_sign": true}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;
    assert_eq!(problem["field"], "dkim_sign", "{problem}");
    let view = expect_json(w.app.get(&path, &w.rep.token).await, StatusCode::OK).await;
    assert_eq!(view["dkim_sign"], false, "bad input changes nothing");
    let mailbox = json!({"name": "Another", "kind": "smtp", "scope": "mailbox",
        "from_address": "rep2@acme.test", "dkim_sign": true,
        "smtp": {"host": "localhost", "port": w.server.port(), "auth": "none"}});
    let rep2 = w
        .app
        .create_user(&w.acme, "rep2@acme.test", "rep", None)
        .await;
    expect_problem(
        w.app.post("/v1/channels", &rep2.token, mailbox).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    )
    .await;

    // The tenant's relay, for reps without a mailbox of their own: off by default.
    let team_relay = relay().await;
    let created = expect_json(
        w.app
            .post(
                "/v1/channels",
                &w.acme.admin_token,
                json!({"name": "Relay", "kind": "smtp", "scope": "domain",
                       "owner": {"tenant": true}, "domains": ["acme.test"],
                       "smtp": {"host": "localhost", "port": team_relay.port(),
                                "security": "starttls", "auth": "login",
                                "username": RELAY_USER, "password": RELAY_PASSWORD,
                                "ca_pem": team_relay.ca_pem()}}),
            )
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["dkim_sign"], false);
    let mut body = mail("Through the relay, unsigned");
    body["from"] = json!("rep2@acme.test");
    let raw = delivered(&w.app, &rep2.token, &team_relay, body).await;
    assert!(signature_tags(&raw).is_none(), "the relay signs itself");

    let relay_path = format!("/v1/channels/{}", created["id"].as_str().unwrap());
    let on = expect_json(
        w.app
            .patch(&relay_path, &w.acme.admin_token, json!({"dkim_sign": true}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(on["dkim_sign"], true);
    let mut body = unsubscribing("Through the relay, signed");
    body["from"] = json!("Rep Two <rep2@acme.test>");
    let raw = delivered(&w.app, &rep2.token, &team_relay, body).await;
    assert_eq!(signature_tags(&raw).expect("signed")["d"], "acme.test");
    assert_eq!(verify(&raw, &dns).await, [DkimResult::Pass]);

    // Who turned it on is in the audit trail; the API documents the field.
    let audit = expect_json(
        w.app
            .get(
                &format!("/v1/audit?channel_id={}", created["id"].as_str().unwrap()),
                &w.acme.admin_token,
            )
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        audit.to_string().contains(r#""dkim_sign":true"#),
        "{audit:#}"
    );
    let openapi = expect_json(
        w.app.get("/openapi.json", &w.acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    for schema in [
        "ChannelView",
        "CreateChannelRequest",
        "UpdateChannelRequest",
    ] {
        assert!(
            openapi["components"]["schemas"][schema]["properties"]["dkim_sign"].is_object(),
            "{schema} documents dkim_sign"
        );
    }
    // REP is still the mailbox's only sender, unsigned.
    let raw = delivered(&w.app, &w.rep.token, &w.server, mail("Mailbox again")).await;
    assert!(
        signature_tags(&raw).is_none(),
        "{REP}'s mailbox stays unsigned"
    );
}

/// The claim's DKIM records as (selector, state), in the order shown.
fn states(claim: &Value) -> Vec<(String, String)> {
    claim["dkim"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["selector"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn rotation_keeps_the_old_key_signing_until_the_new_record_is_seen_then_switches() {
    let relay = relay().await;
    let (app, acme, rep, _ca) = with_shared_pool(&relay).await;
    let first = publish_dkim(&app, &acme.admin_token, "acme.test").await;
    let old_selector = first[0]["selector"].as_str().unwrap().to_owned();
    let (store, vault) = switchboard::startup::open_store_and_vault(&app.config()).unwrap();
    let tenant: switchboard::domain::TenantId = acme.id.parse().unwrap();
    let domain = switchboard::domain::Domain::parse("acme.test").unwrap();
    let old = store
        .run_blocking(|conn| dkim_keys::active_key(conn, tenant, &domain))
        .unwrap()
        .expect("the first key");
    assert_eq!(old.selector.as_str(), old_selector);
    let raw_old = delivered(&app, &rep.token, &relay, mail("Signed by the first key")).await;

    // Rotate: a new key, pending; the first keeps signing.
    let claim = claim_of(&app, &acme.admin_token, "acme.test").await;
    let rotate_path = format!("/v1/domains/{}/dkim/rotate", claim["id"].as_str().unwrap());
    let rotated = expect_json(
        app.post(&rotate_path, &acme.admin_token, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let shown = states(&rotated);
    let unpublished = shown[0].0.clone();
    assert_ne!(unpublished, old_selector);
    assert_eq!(
        shown,
        [
            (unpublished.clone(), "pending".to_owned()),
            (old_selector.clone(), "active".to_owned())
        ]
    );
    // Rotating again before publishing replaces the pending key (it never signed).
    let again = expect_json(
        app.post(&rotate_path, &acme.admin_token, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let shown = states(&again);
    let new_selector = shown[0].0.clone();
    assert_ne!(new_selector, unpublished);
    assert_eq!(
        shown,
        [
            (new_selector.clone(), "pending".to_owned()),
            (old_selector.clone(), "active".to_owned())
        ],
        "one pending key at a time"
    );
    let pending = record_in(&again, "pending").clone();
    let raw_still_old = delivered(&app, &rep.token, &relay, mail("Still the first key")).await;
    assert_eq!(signature_tags(&raw_still_old).unwrap()["s"], old_selector);

    // A check before the record is up changes nothing; the replaced key's record does not
    // count either.
    publish(
        &app,
        &json!({"name": format!("{unpublished}._domainkey.acme.test"),
                "value": record_in(&rotated, "pending")["value"]}),
    )
    .await;
    let checked = check_now(&app, &acme.admin_token, &claim).await;
    assert_eq!(
        record_in(&checked, "pending")["selector"],
        new_selector.as_str()
    );

    // The new record is published and seen: the new key signs, the old one is retiring.
    publish(&app, &pending).await;
    let checked = check_now(&app, &acme.admin_token, &claim).await;
    assert_eq!(
        states(&checked),
        [
            (new_selector.clone(), "active".to_owned()),
            (old_selector.clone(), "retiring".to_owned())
        ]
    );
    let records = checked["dkim"].clone();
    let retire_after: chrono::DateTime<chrono::Utc> = records[1]["retire_after"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let week = retire_after - chrono::Utc::now();
    assert!(
        week > chrono::Duration::days(6) && week <= chrono::Duration::days(7),
        "{week}"
    );

    // New mail: the new key; mail signed before still verifies against what is published.
    let raw_new = delivered(&app, &rep.token, &relay, mail("Signed by the second key")).await;
    assert_eq!(signature_tags(&raw_new).unwrap()["s"], new_selector);
    let dns = Records::published(&records);
    assert_eq!(verify(&raw_new, &dns).await, [DkimResult::Pass]);
    assert_eq!(verify(&raw_old, &dns).await, [DkimResult::Pass]);
    assert_eq!(verify(&raw_still_old, &dns).await, [DkimResult::Pass]);

    // The old key's private half is gone at once; a week later housekeeping retires it.
    assert!(matches!(
        store.run_blocking(|conn| dkim_keys::private_key(conn, &vault, tenant, &old)),
        Err(switchboard::store::StoreError::NotFound)
    ));
    let retired = store
        .run_blocking(|conn| {
            use dkim_keys::retire_due;
            assert_eq!(retire_due(conn, chrono::Utc::now())?, 0, "not yet");
            retire_due(conn, chrono::Utc::now() + chrono::Duration::days(7))
        })
        .unwrap();
    assert_eq!(retired, 1);
    let published = dkim_cli(&app, "show", &acme, "acme.test").await;
    assert_eq!(published.as_array().unwrap().len(), 1);
    assert_eq!(published[0]["selector"], new_selector.as_str());

    let audit = expect_json(
        app.get("/v1/audit", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let mut dkim_events: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("dkim."))
        .collect();
    dkim_events.sort_by_key(|e| e["at"].as_str().unwrap().to_owned());
    let actions: Vec<&str> = dkim_events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "dkim.key_created",
            "dkim.key_activated",
            "dkim.key_rotated",
            "dkim.key_rotated",
            "dkim.key_activated"
        ],
        "{audit:#}"
    );
    assert_eq!(
        dkim_events[3]["detail"]["replaced_pending_selector"],
        unpublished.as_str()
    );
    assert_eq!(
        dkim_events[4]["detail"]["previous_selector"],
        old_selector.as_str()
    );
}

/// Waits until the claim on `domain` satisfies `done` (the scheduler works on its own).
async fn wait_for_claim(
    app: &TestApp,
    token: &str,
    domain: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let claim = claim_of(app, token, domain).await;
        if done(&claim) {
            return claim;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the claim did not get there: {claim:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_scheduler_activates_a_published_key_on_a_pending_claims_check_and_on_the_health_pass()
{
    // Proof re-checks stay daily: after the first proof, only the health pass looks.
    let app = crate::helpers::spawn_app_with(&[
        ("SWITCHBOARD_DOMAIN_PENDING_INTERVAL", "200ms"),
        ("SWITCHBOARD_DOMAIN_HEALTH_INTERVAL", "300ms"),
    ])
    .await;
    let acme = app.create_tenant("Acme").await;
    let claim = expect_json(
        app.post(
            "/v1/domains",
            &acme.admin_token,
            json!({"domain": "acme.test"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    // One visit to the DNS: the proof and the DKIM record; nobody presses "Check now".
    let proof = &claim["verification"];
    app.dns
        .txt(
            proof["name"].as_str().unwrap(),
            proof["value"].as_str().unwrap(),
        )
        .await;
    publish(&app, record_in(&claim, "pending")).await;
    let first = record_in(&claim, "pending")["selector"].clone();
    let done = wait_for_claim(&app, &acme.admin_token, "acme.test", |c| {
        c["state"] == "verified" && c["dkim"][0]["state"] == "active"
    })
    .await;
    assert_eq!(done["dkim"][0]["selector"], first);

    // A rotation's record, published later, is found by the hourly (here: 300 ms) pass.
    let rotated = expect_json(
        app.post(
            &format!("/v1/domains/{}/dkim/rotate", claim["id"].as_str().unwrap()),
            &acme.admin_token,
            json!({}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let new = record_in(&rotated, "pending").clone();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let waiting = claim_of(&app, &acme.admin_token, "acme.test").await;
    assert_eq!(
        record_in(&waiting, "pending")["selector"],
        new["selector"],
        "not published yet"
    );
    publish(&app, &new).await;
    let switched = wait_for_claim(&app, &acme.admin_token, "acme.test", |c| {
        c["dkim"][0]["state"] == "active" && c["dkim"][0]["selector"] == new["selector"]
    })
    .await;
    assert_eq!(switched["dkim"][1]["selector"], first);
    assert_eq!(switched["dkim"][1]["state"], "retiring");
    let audit = expect_json(
        app.get("/v1/audit", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let activations = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "dkim.key_activated")
        .count();
    assert_eq!(activations, 2, "{audit:#}");
}

#[tokio::test]
async fn the_rotate_endpoint_refuses_unverified_claims_other_tenants_and_non_admins() {
    let app = crate::helpers::spawn_app().await;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    let verified = claim_of(&app, &acme.admin_token, "acme.test").await;
    let pending = expect_json(
        app.post(
            "/v1/domains",
            &acme.admin_token,
            json!({"domain": "mail.acme.test"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let path = |claim: &Value| format!("/v1/domains/{}/dkim/rotate", claim["id"].as_str().unwrap());

    // Not verified: 409, with the reason, and its key stays as it was.
    let refused = expect_problem(
        app.post(&path(&pending), &acme.admin_token, json!({}))
            .await,
        StatusCode::CONFLICT,
        "domain_not_verified",
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("mail.acme.test is pending"),
        "{refused:#}"
    );
    let after = claim_of(&app, &acme.admin_token, "mail.acme.test").await;
    assert_eq!(after["dkim"], pending["dkim"]);

    // Another tenant's claim is not found; a rep and IT may not rotate.
    let other = app.create_tenant("Other").await;
    expect_problem(
        app.post(&path(&verified), &other.admin_token, json!({}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let rep = app.create_user(&acme, "rep@acme.test", "rep", None).await;
    let it = app.create_user(&acme, "it@acme.test", "it", None).await;
    for token in [&rep.token, &it.token] {
        expect_problem(
            app.post(&path(&verified), token, json!({})).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
    expect_problem(
        app.post(
            "/v1/domains/not-an-id/dkim/rotate",
            &acme.admin_token,
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let unchanged = claim_of(&app, &acme.admin_token, "acme.test").await;
    assert_eq!(unchanged["dkim"], verified["dkim"], "nothing changed");

    // The endpoint is documented.
    let openapi = expect_json(
        app.get("/openapi.json", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let op = &openapi["paths"]["/v1/domains/{id}/dkim/rotate"]["post"];
    assert!(op["responses"]["409"].is_object(), "{op:#}");
}

#[tokio::test]
async fn the_private_key_survives_tenant_and_master_key_rotation() {
    let relay = relay().await;
    let (app, acme, rep, _ca) = with_shared_pool(&relay).await;
    let records = publish_dkim(&app, &acme.admin_token, "acme.test").await;
    let dns = Records::published(&records);

    // A new tenant data key re-seals every secret, the DKIM key among them.
    let out = run(&app, &["keys", "rotate-tenant", &acme.id], None).await;
    assert!(out.ok, "{}", out.stderr);
    let raw = delivered(
        &app,
        &rep.token,
        &relay,
        mail("After a tenant key rotation"),
    )
    .await;
    assert_eq!(verify(&raw, &dns).await, [DkimResult::Pass]);

    // A new master key: the old one can go once everything is re-wrapped.
    let old_key = app.master_keys.clone();
    let new_key = master_key("k2");
    let app = app.restart_with_keys(&format!("{new_key},{old_key}")).await;
    let out = run(&app, &["keys", "rotate"], None).await;
    assert!(out.ok, "{}", out.stderr);
    let app = app.restart_with_keys(&new_key).await;
    let raw = delivered(
        &app,
        &rep.token,
        &relay,
        mail("After a master key rotation"),
    )
    .await;
    assert_eq!(
        signature_tags(&raw).unwrap()["s"],
        records[0]["selector"].as_str().unwrap()
    );
    assert_eq!(verify(&raw, &dns).await, [DkimResult::Pass]);
}

#[tokio::test]
async fn the_dkim_commands_name_what_is_wrong() {
    let (app, acme, _rep) = acme_and_rep(&[]).await;
    let nobody = "00000000-0000-4000-8000-000000000000";
    for (what, tenant, domain, needle) in [
        ("show", "not-a-uuid", "acme.test", "--tenant"),
        ("rotate", nobody, "acme.test", "no tenant"),
        ("rotate", acme.id.as_str(), "not a domain", "--domain"),
    ] {
        let out = dkim_command(&app, what, tenant, domain, &[]).await;
        assert!(!out.ok, "{what} {tenant} {domain}");
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    }
    let out = dkim_command(&app, "show", &acme.id, "other.test", &[]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("has no DKIM key"), "{}", out.stdout);
    // The claim's key, pending, as the API shows it.
    let out = dkim_command(&app, "show", &acme.id, "acme.test", &[]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("pending: publish it now"),
        "{}",
        out.stdout
    );
    let out = dkim_command(&app, "rotate", &acme.id, "acme.test", &[]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("._domainkey.acme.test  TXT")
            && out.stdout.contains("v=DKIM1; k=rsa; p="),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("it replaces the pending key")
            && out.stderr.contains("mail is sent unsigned until then"),
        "{}",
        out.stderr
    );
    // Only the public record is printed (SubjectPublicKeyInfo, MIIBIj…), never the private
    // key (PKCS#8, MIIE…).
    assert!(
        !out.stdout.contains("MIIE") && !out.stderr.contains("MIIE"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn ensure_key_makes_one_key_and_remove_all_forgets_every_key_of_the_domain() {
    let (app, acme, _rep) = acme_and_rep(&[]).await;
    let (store, vault) = switchboard::startup::open_store_and_vault(&app.config()).unwrap();
    let tenant: switchboard::domain::TenantId = acme.id.parse().unwrap();
    let domain = switchboard::domain::Domain::parse("other.test").unwrap();
    let actor = || switchboard::domain::AuditActor::System;
    let pair = || dkim_keys::new_pair().unwrap();
    let first = store
        .run_blocking(|conn| {
            dkim_keys::ensure_key(conn, &vault, tenant, &domain, &pair(), actor())?;
            dkim_keys::ensure_key(conn, &vault, tenant, &domain, &pair(), actor())?;
            dkim_keys::published(conn, tenant, &domain)
        })
        .unwrap();
    assert_eq!(first.len(), 1, "the second call finds the first key");
    let first = &first[0];
    assert_eq!(
        first.state,
        switchboard::domain::dkim::DkimKeyState::Pending
    );
    assert_eq!(
        first.name,
        format!("{}._domainkey.other.test", first.selector)
    );
    // Another tenant's key for the same domain is its own.
    let other = app.create_tenant("Other").await;
    let other_id: switchboard::domain::TenantId = other.id.parse().unwrap();
    let theirs = store
        .run_blocking(|conn| {
            dkim_keys::ensure_key(conn, &vault, other_id, &domain, &pair(), actor())?;
            dkim_keys::published(conn, other_id, &domain)
        })
        .unwrap();
    assert_ne!(theirs[0].selector, first.selector);

    // Active, then a rotation's pending key: both go, private halves included.
    let active = store
        .run_blocking(|conn| {
            dkim_keys::activate(conn, tenant, &domain, &first.selector, actor())?;
            dkim_keys::rotate(conn, &vault, tenant, &domain, &pair(), actor())?;
            Ok(dkim_keys::active_key(conn, tenant, &domain)?.unwrap())
        })
        .unwrap();
    let removed = store
        .run_blocking(|conn| dkim_keys::remove_all(conn, tenant, &domain))
        .unwrap();
    assert_eq!(removed, 2, "the active key and the pending one");
    let (published, private, theirs_left) = store
        .run_blocking(|conn| {
            Ok((
                dkim_keys::published(conn, tenant, &domain)?,
                dkim_keys::private_key(conn, &vault, tenant, &active),
                dkim_keys::published(conn, other_id, &domain)?,
            ))
        })
        .unwrap();
    assert!(published.is_empty());
    assert!(matches!(
        private,
        Err(switchboard::store::StoreError::NotFound)
    ));
    assert_eq!(theirs_left, theirs, "the other tenant's key stays");
}
