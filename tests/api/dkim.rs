//! DKIM signing as a receiver sees it: what arrives at the relay carries a signature that an
//! independent verifier (mail-auth's, with the records our store says to publish pre-loaded,
//! no network) accepts; mailbox channels and relays without `dkim_sign` send unsigned; keys
//! rotate with the old record kept for a week; the private key survives key rotations.
//! Keys are made with the operator's `switchboard dkim` commands.

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

    // No key yet: the mail goes out unsigned, it is not held or failed.
    let raw = delivered(&app, &rep.token, &relay, mail("Before any key")).await;
    assert!(signature_tags(&raw).is_none(), "unsigned without a key");
    let shown = dkim_cli(&app, "show", &acme, "acme.test").await;
    assert_eq!(shown, json!([]));

    let records = dkim_cli(&app, "rotate", &acme, "acme.test").await;
    assert_eq!(records.as_array().unwrap().len(), 1, "{records:#}");
    let record = &records[0];
    assert_eq!(record["state"], "active");
    let selector = record["selector"].as_str().unwrap();
    assert_eq!(
        record["name"],
        format!("{selector}._domainkey.acme.test"),
        "{record}"
    );
    let value = record["value"].as_str().unwrap();
    assert!(value.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"), "{value}");
    assert_eq!(dkim_cli(&app, "show", &acme, "acme.test").await, records);

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
    let records = dkim_cli(&w.app, "rotate", &w.acme, "acme.test").await;
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

#[tokio::test]
async fn rotation_signs_with_the_new_key_and_keeps_the_old_record_published_for_a_week() {
    let relay = relay().await;
    let (app, acme, rep, _ca) = with_shared_pool(&relay).await;
    let first = dkim_cli(&app, "rotate", &acme, "acme.test").await;
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

    let records = dkim_cli(&app, "rotate", &acme, "acme.test").await;
    let states: Vec<(&str, &str)> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["selector"].as_str().unwrap(),
                r["state"].as_str().unwrap(),
            )
        })
        .collect();
    let new_selector = states[0].0.to_owned();
    assert_ne!(new_selector, old_selector);
    assert_eq!(
        states,
        [
            (new_selector.as_str(), "active"),
            (old_selector.as_str(), "retiring")
        ]
    );
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
    let left = store
        .run_blocking(|conn| dkim_keys::published(conn, tenant, &domain))
        .unwrap();
    assert_eq!(left.len(), 1);

    let audit = expect_json(
        app.get("/v1/audit", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let actions: Vec<&str> = audit
        .as_array()
        .or(audit["events"].as_array())
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("dkim."))
        .collect();
    assert_eq!(actions, ["dkim.key_created", "dkim.key_rotated"]);
}

#[tokio::test]
async fn the_private_key_survives_tenant_and_master_key_rotation() {
    let relay = relay().await;
    let (app, acme, rep, _ca) = with_shared_pool(&relay).await;
    let records = dkim_cli(&app, "rotate", &acme, "acme.test").await;
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
    let out = dkim_command(&app, "show", &acme.id, "acme.test", &[]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("has no DKIM key"), "{}", out.stdout);
    let out = dkim_command(&app, "rotate", &acme.id, "acme.test", &[]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("._domainkey.acme.test  TXT")
            && out.stdout.contains("v=DKIM1; k=rsa; p="),
        "{}",
        out.stdout
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
async fn ensure_active_makes_one_key_and_remove_all_forgets_every_key_of_the_domain() {
    let (app, acme, _rep) = acme_and_rep(&[]).await;
    let (store, vault) = switchboard::startup::open_store_and_vault(&app.config()).unwrap();
    let tenant: switchboard::domain::TenantId = acme.id.parse().unwrap();
    let domain = switchboard::domain::Domain::parse("acme.test").unwrap();
    let actor = || switchboard::domain::AuditActor::System;
    let (first, again) = store
        .run_blocking(|conn| {
            let first = dkim_keys::ensure_active(conn, &vault, tenant, &domain, actor())?;
            let again = dkim_keys::ensure_active(conn, &vault, tenant, &domain, actor())?;
            Ok((first, again))
        })
        .unwrap();
    assert_eq!(first, again, "the second call finds the first key");
    assert_eq!(
        first.name,
        format!("{}._domainkey.acme.test", first.selector)
    );
    // Another tenant's key for the same domain is its own.
    let other = app.create_tenant("Other").await;
    let other_id: switchboard::domain::TenantId = other.id.parse().unwrap();
    let theirs = store
        .run_blocking(|conn| dkim_keys::ensure_active(conn, &vault, other_id, &domain, actor()))
        .unwrap();
    assert_ne!(theirs.selector, first.selector);

    store
        .run_blocking(|conn| dkim_keys::rotate(conn, &vault, tenant, &domain, actor()))
        .unwrap();
    let active = store
        .run_blocking(|conn| dkim_keys::active_key(conn, tenant, &domain))
        .unwrap()
        .unwrap();
    let removed = store
        .run_blocking(|conn| dkim_keys::remove_all(conn, tenant, &domain))
        .unwrap();
    assert_eq!(removed, 2, "the active key and the retiring one");
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
    assert_eq!(theirs_left, [theirs], "the other tenant's key stays");

    let audit = expect_json(
        app.get("/v1/audit", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let created = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "dkim.key_created")
        .count();
    assert_eq!(created, 1, "one key made, once recorded: {audit:#}");
}
