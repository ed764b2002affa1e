//! Our DKIM signatures against an implementation we did not write: Python's dkimpy verifies
//! the exact bytes aiosmtpd received, through the shared pool and through a team's relay
//! with `dkim_sign`, with only the TXT records our store says to publish (no network).
//! Runs when SWITCHBOARD_INTEROP=1 (the interop leg; see tests/interop/).

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dkim::{publish_dkim, send_and_wait};
use crate::helpers::{expect_json, spawn_app_with};
use crate::interop::{PASSWORD, Peer, USER, interop_dir, launch, test_ca_certificates};

/// dkimpy's verdict on a message, and the tags of its signatures.
fn dkimpy(installed: &Path, message: &[u8], records: &Value) -> Value {
    let dir = tempfile::TempDir::new().unwrap();
    let (eml, dns) = (dir.path().join("m.eml"), dir.path().join("dns.json"));
    std::fs::write(&eml, message).unwrap();
    let map: serde_json::Map<String, Value> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["value"].clone()))
        .collect();
    std::fs::write(&dns, Value::Object(map).to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/dkim_verify.py");
    let out = Command::new(installed.join("venv/bin/python"))
        .arg(script)
        .arg(&eml)
        .arg(&dns)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dkim_verify.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The exact bytes the peer received for the message with `subject`.
fn received(peer: &Peer, subject: &str) -> Vec<u8> {
    let record = peer
        .messages()
        .into_iter()
        .find(|m| m["data"].as_str().unwrap().contains(subject))
        .unwrap_or_else(|| panic!("{subject} arrived"));
    std::fs::read(peer.dir.path().join(record["raw"].as_str().unwrap())).unwrap()
}

fn message(from: &str, subject: &str, text: &str) -> Value {
    json!({"from": from, "to": ["Ann Buyer <ann@example.com>"], "subject": subject,
           "text": text,
           "headers": {"List-Unsubscribe": "<https://unsub.acme.test/u/opaque-token>",
                       "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}})
}

#[tokio::test]
async fn dkimpy_verifies_what_the_shared_pool_and_a_signing_team_relay_sent() {
    let Some(installed) = interop_dir() else {
        eprintln!("interop peers not requested (SWITCHBOARD_INTEROP=1 runs them)");
        return;
    };
    let peer = launch(
        &installed,
        "aiosmtpd",
        "starttls",
        test_ca_certificates(&installed),
        &[],
    );
    let ca = peer.dir.path().join("ca.pem");
    let pool = format!(
        "smtp://{}:{PASSWORD}@localhost:{}?security=starttls&auth=plain&ca={}",
        USER.replace('@', "%40"),
        peer.port,
        ca.display()
    );
    let app = spawn_app_with(&[
        ("SWITCHBOARD_SHARED_POOL_URL", pool.as_str()),
        ("SWITCHBOARD_POLL_INTERVAL", "100ms"),
    ])
    .await;
    let acme = app.create_tenant_with_domain("Acme", "acme.test").await;
    let team = app.create_team(&acme, "Sales").await;
    // Pat is in the team (its relay); Sam is in none (the shared pool).
    let pat = app
        .create_user(&acme, "pat@acme.test", "rep", Some(&team))
        .await;
    let sam = app.create_user(&acme, "sam@acme.test", "rep", None).await;
    expect_json(
        app.post(
            "/v1/channels",
            &acme.admin_token,
            json!({"name": "Team relay", "kind": "smtp", "scope": "domain",
                   "owner": {"team": team}, "domains": ["acme.test"], "dkim_sign": true,
                   "smtp": {"host": "localhost", "port": peer.port, "security": "starttls",
                            "auth": "plain", "username": USER, "password": PASSWORD,
                            "ca_pem": peer.ca_pem()}}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let records = publish_dkim(&app, &acme.admin_token, "acme.test").await;

    // What canonicalisation must get right. Through the pool: a plain ASCII body sent as
    // written (7bit), with runs of spaces, a tab, trailing spaces and whitespace-only lines
    // at the end (mail-auth before 0.15 got those wrong). Through the relay: a folded,
    // encoded Unicode subject and a quoted-printable HTML alternative.
    let plain = "Hello Ann,  two  spaces\n\twith a tab, trailing spaces   \n\n  \n\t\n";
    send_and_wait(
        &app,
        &sam.token,
        message("Sam <sam@acme.test>", "Via the pool", plain),
    )
    .await;
    let long = "A subject long enough that lettre folds it over more than one line — ünïcode ✓";
    let mut rich = message(
        "\"Pat, Sales\" <pat@acme.test>",
        long,
        "Hello Ann, ünïcode ✓",
    );
    rich["html"] = json!("<p>Hello Ann, <b>ünïcode</b> ✓</p>");
    send_and_wait(&app, &pat.token, rich).await;

    let pool_raw = received(&peer, "Via the pool");
    let pool_text = String::from_utf8_lossy(&pool_raw);
    assert!(
        pool_text.contains("trailing spaces   \r\n\r\n  \r\n\t\r\n"),
        "the whitespace reached the wire as written: {pool_text}"
    );
    for subject in ["Via the pool", "lettre folds it"] {
        let raw = received(&peer, subject);
        let verdict = dkimpy(&installed, &raw, &records);
        assert_eq!(verdict["verified"], true, "{subject}: {verdict:#}");
        let signature = &verdict["signatures"][0];
        assert_eq!(signature["d"], "acme.test");
        assert_eq!(signature["s"], records[0]["selector"]);
        let signed: Vec<String> = signature["h"]
            .as_str()
            .unwrap()
            .split(':')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect();
        for field in [
            "from",
            "subject",
            "list-unsubscribe",
            "list-unsubscribe-post",
        ] {
            assert!(signed.contains(&field.to_owned()), "{field}: {signed:?}");
        }

        // The test can fail: a line added to the body, or a changed unsubscribe link, does
        // not verify.
        let text = String::from_utf8(raw).unwrap();
        let added = format!("{text}Added on the way.\r\n");
        let relinked = text.replacen("opaque-token", "forged-token", 1);
        assert_ne!(relinked, text);
        for tampered in [added, relinked] {
            let verdict = dkimpy(&installed, tampered.as_bytes(), &records);
            assert_eq!(verdict["verified"], false, "{subject}: {verdict:#}");
        }
    }
}
