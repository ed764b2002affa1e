//! Several `serve` processes on one database, and one killed with SIGKILL mid-burst: the
//! leases share the work, none is sent twice by design, and nothing accepted is lost.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::binary::{Running, command, serve_with};
use crate::dns_server::TestDns;
use crate::helpers::{TestDatabase, expect_json, random_secret};
use crate::smtp_server::{SmtpServerConfig, TestSmtpServer};

const RELAY_USER: &str = "relay@acme.test";
const RELAY_PASSWORD: &str = "Canary-Relay-Pw-31x";

pub(crate) struct Fleet {
    _dir: tempfile::TempDir,
    /// The DNS server in which tenants publish their domain proofs.
    pub(crate) dns: TestDns,
    data_dir: std::path::PathBuf,
    pub(crate) db: TestDatabase,
    operator: String,
    pub(crate) client: reqwest::Client,
}

impl Fleet {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        Self {
            dns: TestDns::start().await,
            data_dir: dir.path().join("data"),
            _dir: dir,
            db: TestDatabase::fresh(),
            operator: random_secret(),
            client: reqwest::Client::new(),
        }
    }

    pub(crate) fn command(&self, lease: &str) -> Command {
        let mut cmd = command(&self.data_dir, &self.db);
        cmd.env("SWITCHBOARD_OPERATOR_TOKEN", &self.operator)
            .env("SWITCHBOARD_OUTBOUND_ALLOW", "127.0.0.0/8")
            .env("SWITCHBOARD_POLL_INTERVAL", "100ms")
            .env("SWITCHBOARD_RETRY_BASE", "200ms")
            .env("SWITCHBOARD_LEASE", lease)
            .env("SWITCHBOARD_DNS_SERVERS", self.dns.servers())
            .env("RUST_LOG", "info");
        cmd
    }

    pub(crate) fn serve(&self, lease: &str) -> Running {
        serve_with(self.command(lease))
    }

    async fn json(&self, res: reqwest::Response, status: StatusCode) -> Value {
        expect_json(res, status).await
    }
}

/// A tenant with a tenant-wide relay channel on `server`; returns the admin token.
pub(crate) async fn tenant_with_relay(
    fleet: &Fleet,
    at: &Running,
    server: &TestSmtpServer,
) -> String {
    let tenant = fleet
        .json(
            fleet
                .client
                .post(format!("{}/v1/tenants", at.address))
                .bearer_auth(&fleet.operator)
                .json(&json!({"name": "Acme", "admin_email": "admin@acme.test"}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
    let admin = tenant["admin"]["token"].as_str().unwrap().to_owned();
    // The tenant proves acme.test: claim, publish, check.
    let claim = fleet
        .json(
            fleet
                .client
                .post(format!("{}/v1/domains", at.address))
                .bearer_auth(&admin)
                .json(&json!({"domain": "acme.test"}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
    let record = &claim["verification"];
    fleet
        .dns
        .txt(
            record["name"].as_str().unwrap(),
            record["value"].as_str().unwrap(),
        )
        .await;
    let verified = fleet
        .json(
            fleet
                .client
                .post(format!(
                    "{}/v1/domains/{}/verify",
                    at.address,
                    claim["id"].as_str().unwrap()
                ))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
    assert_eq!(verified["state"], "verified", "{verified:#}");
    fleet
        .json(
            fleet
                .client
                .post(format!("{}/v1/channels", at.address))
                .bearer_auth(&admin)
                .json(
                    &json!({"name": "Relay", "kind": "smtp", "scope": "domain", "owner": {"tenant": true},
                    "domains": ["acme.test"],
                    "smtp": {"host": "localhost", "port": server.port(), "security": "starttls",
                             "auth": "plain", "username": RELAY_USER, "password": RELAY_PASSWORD,
                             "ca_pem": server.ca_pem(), "pool_size": 8}}),
                )
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
    admin
}

pub(crate) async fn relay() -> TestSmtpServer {
    TestSmtpServer::start(SmtpServerConfig {
        users: vec![(RELAY_USER.to_owned(), RELAY_PASSWORD.to_owned())],
        ..SmtpServerConfig::default()
    })
    .await
}

/// Accepts `n` messages through `at` in one batch; returns their ids.
pub(crate) async fn burst(
    fleet: &Fleet,
    at: &Running,
    admin: &str,
    tag: &str,
    n: usize,
) -> Vec<String> {
    let messages: Vec<Value> = (0..n)
        .map(|i| {
            json!({"from": "news@acme.test", "to": [format!("buyer{i}@example.com")],
                   "subject": format!("{tag} {i}"), "text": "hello"})
        })
        .collect();
    let answer = fleet
        .json(
            fleet
                .client
                .post(format!("{}/v1/messages/batch", at.address))
                .bearer_auth(admin)
                .json(&json!({ "messages": messages }))
                .send()
                .await
                .unwrap(),
            StatusCode::ACCEPTED,
        )
        .await;
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().expect("every message accepted").to_owned())
        .collect()
}

/// Statuses of these messages, read through `at`.
pub(crate) async fn statuses(
    fleet: &Fleet,
    at: &Running,
    admin: &str,
    ids: &[String],
) -> HashMap<String, Value> {
    let mut out = HashMap::new();
    for id in ids {
        let view = fleet
            .json(
                fleet
                    .client
                    .get(format!("{}/v1/messages/{id}", at.address))
                    .bearer_auth(admin)
                    .send()
                    .await
                    .unwrap(),
                StatusCode::OK,
            )
            .await;
        out.insert(id.clone(), view);
    }
    out
}

pub(crate) async fn wait_all_sent(
    fleet: &Fleet,
    at: &Running,
    admin: &str,
    ids: &[String],
) -> HashMap<String, Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let views = statuses(fleet, at, admin, ids).await;
        let unsent: Vec<&Value> = views.values().filter(|v| v["status"] != "sent").collect();
        if unsent.is_empty() {
            return views;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "{} of {} not sent, e.g. {:#}",
                unsent.len(),
                ids.len(),
                unsent[0]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn message_ids_received(server: &TestSmtpServer) -> Vec<String> {
    server
        .messages()
        .iter()
        .map(|m| {
            String::from_utf8_lossy(&m.data)
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_owned))
                .expect("every message has a Message-ID")
        })
        .collect()
}

/// The process's `/metrics` page.
pub(crate) async fn metrics(fleet: &Fleet, at: &Running) -> String {
    fleet
        .client
        .get(format!("{}/metrics", at.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub(crate) async fn sent_counter(fleet: &Fleet, at: &Running) -> u64 {
    metrics(fleet, at)
        .await
        .lines()
        .filter(|l| l.starts_with("switchboard_messages_total{") && l.contains("outcome=\"sent\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn two_processes_share_the_queue_and_send_each_message_once() {
    let fleet = Fleet::new().await;
    let server = relay().await;
    let a = fleet.serve("10m");
    let admin = tenant_with_relay(&fleet, &a, &server).await;
    let b = fleet.serve("10m");
    let (mut ids, more) = tokio::join!(
        burst(&fleet, &a, &admin, "via-a", 150),
        burst(&fleet, &b, &admin, "via-b", 150)
    );
    ids.extend(more);
    let views = wait_all_sent(&fleet, &a, &admin, &ids).await;
    let expected: HashSet<String> = views
        .values()
        .map(|v| v["message_id"].as_str().unwrap().to_owned())
        .collect();
    let received = message_ids_received(&server);
    let unique: HashSet<String> = received.iter().cloned().collect();
    assert_eq!(unique, expected, "every accepted message arrived");
    assert_eq!(received.len(), ids.len(), "and none twice");
    let (sent_a, sent_b) = (
        sent_counter(&fleet, &a).await,
        sent_counter(&fleet, &b).await,
    );
    assert_eq!(sent_a + sent_b, 300);
    assert!(
        sent_a > 0 && sent_b > 0,
        "both processes sent: {sent_a} + {sent_b}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_process_killed_mid_burst_loses_nothing() {
    let fleet = Fleet::new().await;
    let server = relay().await;
    let mut doomed = fleet.serve("2s");
    let admin = tenant_with_relay(&fleet, &doomed, &server).await;
    let ids = burst(&fleet, &doomed, &admin, "burst", 400).await;
    // Mid-burst: some delivered, some on the wire, most still queued.
    while server.messages().len() < 20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // SIGKILL: no graceful stop, leases left behind, outcomes possibly unrecorded.
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    let before = server.messages().len();

    let heir = fleet.serve("2s");
    let views = wait_all_sent(&fleet, &heir, &admin, &ids).await;
    let received: HashSet<String> = message_ids_received(&server).into_iter().collect();
    for view in views.values() {
        assert!(
            received.contains(view["message_id"].as_str().unwrap()),
            "accepted and marked sent, so it arrived: {view:#}"
        );
    }
    let total = server.messages().len();
    assert!(total >= ids.len(), "{total} < {}", ids.len());
    // A message can arrive twice only when its sender died between the server's 250 and the
    // outcome's commit; its log says so.
    let resent: usize = views
        .values()
        .filter(|v| {
            v["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "lease_expired")
        })
        .count();
    eprintln!(
        "killed after {before} deliveries; {total} in all for {} messages; {resent} taken over",
        ids.len()
    );
    assert!(
        total - ids.len() <= resent,
        "{} duplicates but only {resent} messages were taken over after the kill (before the kill: {before})",
        total - ids.len()
    );
}
