//! Restarts: what a clean restart keeps, and crash recovery: a process killed with SIGKILL
//! has its leased messages taken over within seconds by a live or restarted process.

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::binary::{Running, serve_with};
use crate::helpers::{expect_json, spawn_app};
use crate::messages::{mail, send_id};
use crate::processes::{
    Fleet, burst, message_ids_received, relay, sent_counter, statuses, tenant_with_relay,
    wait_all_sent,
};
use crate::smtp_server::{Fault, TestSmtpServer};

#[tokio::test]
async fn a_restart_keeps_tenants_users_policies_and_tokens() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let team = app.create_team(&acme, "West").await;
    let rep = app
        .create_user(&acme, "rep@acme.test", "rep", Some(&team))
        .await;
    let res = app
        .patch(
            "/v1/tenant",
            &acme.admin_token,
            json!({"domains": ["acme.test"], "fallback_policy": "fallback"}),
        )
        .await;
    expect_json(res, StatusCode::OK).await;
    let before = app.address.clone();

    let app = app.restart().await;
    assert_ne!(app.address, before, "a new server on a new port");
    let me = expect_json(app.get("/v1/me", &rep.token).await, StatusCode::OK).await;
    assert_eq!(me["team_id"], team.as_str());
    let tenant = expect_json(
        app.get("/v1/tenant", &acme.admin_token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(tenant["domains"], json!(["acme.test"]));
    assert_eq!(tenant["fallback_policy"], "fallback");
    let res = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Crash recovery (issue 15): a process killed with SIGKILL leaves messages leased under its
// name; a live or restarted process takes them over within seconds, not when the 10-minute
// lease runs out, and a live process's slow send is never taken from it.
// ---------------------------------------------------------------------------------------------

/// The bound: everything a dead process held is delivered within a minute.
const TAKEOVER_BOUND: Duration = Duration::from_secs(60);
/// `SWITCHBOARD_LEASE`'s default: with it, nothing but the takeover of a dead process's
/// messages can deliver them within the minute.
const DEFAULT_LEASE: &str = "10m";

/// A process with a quick heartbeat (every 200 ms, dead after 1 s of silence).
fn serve_quick_heartbeat(fleet: &Fleet, lease: &str) -> Running {
    let mut cmd = fleet.command(lease);
    cmd.env("SWITCHBOARD_HEARTBEAT_INTERVAL", "200ms")
        .env("SWITCHBOARD_HEARTBEAT_TIMEOUT", "1s");
    serve_with(cmd)
}

/// Waits until all `n` messages are recorded as sent (the database's count, read through
/// `at`'s metrics: a taken-over message counts only once its new owner sent it); returns how
/// long after `since` that was. Panics past the minute.
async fn all_sent(fleet: &Fleet, at: &Running, n: u64, since: Instant, what: &str) -> Duration {
    loop {
        let sent: u64 = crate::processes::metrics(fleet, at)
            .await
            .lines()
            .find_map(|l| l.strip_prefix("switchboard_queue_depth{status=\"sent\"} "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if sent >= n {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < TAKEOVER_BOUND,
            "{sent} of {n} messages sent within a minute {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn has_event(view: &Value, kind: &str) -> bool {
    view["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == kind)
}

/// What a takeover did: the messages taken over (their log says `lease_expired`: the dead
/// process held them at the kill, claimed, on the wire or sent but not recorded), the copies
/// that arrived twice, and how long after `killed_at` the last taken-over message was sent.
struct Takeover {
    taken: usize,
    duplicates: usize,
    last_sent: Duration,
}

fn takeover(
    views: &HashMap<String, Value>,
    server: &TestSmtpServer,
    killed_at: DateTime<Utc>,
) -> Takeover {
    let taken: Vec<&Value> = views
        .values()
        .filter(|v| has_event(v, "lease_expired"))
        .collect();
    let last_sent = taken
        .iter()
        .flat_map(|v| v["events"].as_array().unwrap())
        .filter(|e| e["kind"] == "sent")
        .map(|e| e["at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap())
        .max()
        .map(|at| (at - killed_at).to_std().unwrap_or_default())
        .unwrap_or_default();
    let received = message_ids_received(server);
    let unique: HashSet<&String> = received.iter().collect();
    Takeover {
        taken: taken.len(),
        duplicates: received.len() - unique.len(),
        last_sent,
    }
}

/// SIGKILL; returns when it happened, as an instant and by the wall clock (event times).
fn sigkill(process: &mut Running) -> (Instant, DateTime<Utc>) {
    process.child.kill().unwrap();
    process.child.wait().unwrap();
    (Instant::now(), Utc::now())
}

fn backend(fleet: &Fleet) -> &'static str {
    if fleet.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_process_killed_and_restarted_sends_what_it_held_within_a_minute_of_the_restart() {
    let fleet = Fleet::new().await;
    let server = relay().await;
    let mut doomed = fleet.serve(DEFAULT_LEASE);
    let admin = tenant_with_relay(&fleet, &doomed, &server).await;
    let ids = burst(&fleet, &doomed, &admin, "burst", 400).await;
    while server.messages().len() < 20 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (killed, killed_at) = sigkill(&mut doomed);
    let before = server.messages().len();

    let heir = fleet.serve(DEFAULT_LEASE);
    let restarted = Instant::now();
    let took = all_sent(&fleet, &heir, ids.len() as u64, restarted, "of the restart").await;
    let views = wait_all_sent(&fleet, &heir, &admin, &ids).await;
    let Takeover {
        taken,
        duplicates,
        last_sent,
    } = takeover(&views, &server, killed_at);
    eprintln!(
        "TAKEOVER restart on {}: the {taken} messages taken over all sent {last_sent:.2?} after the SIGKILL (restart {:.2?} after it); all {} sent {took:.2?} after the restart; {before} delivered before the kill, {duplicates} duplicates",
        backend(&fleet),
        restarted - killed,
        ids.len(),
    );
    assert!(
        taken > 0,
        "the kill left messages leased to the dead process"
    );
    assert!(last_sent < TAKEOVER_BOUND, "{last_sent:?}");
    assert!(
        duplicates <= taken,
        "{duplicates} duplicates, but the dead process held only {taken} messages"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn when_one_of_two_processes_is_killed_the_other_sends_what_it_held_within_a_minute() {
    let fleet = Fleet::new().await;
    let server = relay().await;
    let mut doomed = fleet.serve(DEFAULT_LEASE);
    let admin = tenant_with_relay(&fleet, &doomed, &server).await;
    let survivor = fleet.serve(DEFAULT_LEASE);
    // A server that takes 50 ms per message (real ones take longer) keeps the burst going
    // for a few seconds, each process with a full window of sends in flight.
    server.set_fault(Some(Fault::SlowData {
        delay: Duration::from_millis(50),
    }));
    let (mut ids, more) = tokio::join!(
        burst(&fleet, &doomed, &admin, "via-doomed", 300),
        burst(&fleet, &survivor, &admin, "via-survivor", 300)
    );
    ids.extend(more);
    // Mid-burst, and only once the doomed process is sending too (on SQLite the other may
    // have taken the first claims alone), so that it dies holding messages.
    let deadline = Instant::now() + TAKEOVER_BOUND;
    while server.messages().len() < 40 || sent_counter(&fleet, &doomed).await == 0 {
        assert!(Instant::now() < deadline, "the doomed process never sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (killed, killed_at) = sigkill(&mut doomed);
    let before = server.messages().len();

    let took = all_sent(
        &fleet,
        &survivor,
        ids.len() as u64,
        killed,
        "of the SIGKILL",
    )
    .await;
    let views = wait_all_sent(&fleet, &survivor, &admin, &ids).await;
    let Takeover {
        taken,
        duplicates,
        last_sent,
    } = takeover(&views, &server, killed_at);
    eprintln!(
        "TAKEOVER survivor on {}: the {taken} messages taken over all sent {last_sent:.2?} after the SIGKILL; all {} sent {took:.2?} after it; {before} delivered before the kill, {duplicates} duplicates",
        backend(&fleet),
        ids.len()
    );
    assert!(
        taken > 0,
        "the kill left messages leased to the dead process"
    );
    assert!(last_sent < TAKEOVER_BOUND, "{last_sent:?}");
    assert!(
        duplicates <= taken,
        "{duplicates} duplicates, but the dead process held only {taken} messages"
    );
}

/// Polls one message through `at` until `done` says so; panics after 30 s.
async fn wait_for(
    fleet: &Fleet,
    at: &Running,
    admin: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let views = statuses(fleet, at, admin, &[id.to_owned()]).await;
        let view = &views[id];
        if done(view) {
            return view.clone();
        }
        assert!(Instant::now() < deadline, "never {what}: {view:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_slow_send_by_a_live_process_is_not_taken_from_it() {
    let fleet = Fleet::new().await;
    let server = relay().await;
    // The lease (20 s, so a send may take 10) covers the slow server's 6 s; the heartbeat
    // timeout (1 s) is far shorter: only the heartbeat keeps the message with its sender.
    let sender = serve_quick_heartbeat(&fleet, "20s");
    let admin = tenant_with_relay(&fleet, &sender, &server).await;
    server.set_fault(Some(Fault::SlowData {
        delay: Duration::from_secs(6),
    }));
    let ids = burst(&fleet, &sender, &admin, "slow", 1).await;
    let id = &ids[0];
    wait_for(&fleet, &sender, &admin, id, "claimed", |v| {
        v["status"] == "sending"
    })
    .await;
    let other = serve_quick_heartbeat(&fleet, "20s");
    assert!(
        server.messages().is_empty(),
        "the send is still waiting for the server while the other process runs"
    );

    let views = wait_all_sent(&fleet, &other, &admin, &ids).await;
    assert!(!has_event(&views[id], "lease_expired"), "{:#}", views[id]);
    assert_eq!(message_ids_received(&server).len(), 1, "sent once");
    assert_eq!(sent_counter(&fleet, &sender).await, 1, "by its sender");
    assert_eq!(sent_counter(&fleet, &other).await, 0);
}

/// `switchboard_processes{status=…}` from `at`'s metrics.
async fn processes_metric(fleet: &Fleet, at: &Running, status: &str) -> u64 {
    let metrics = fleet
        .client
        .get(format!("{}/metrics", at.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("switchboard_processes{{status=\"{status}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
}

#[cfg(unix)]
#[tokio::test]
async fn a_process_stopped_during_a_slow_send_keeps_it_and_leaves_no_row_behind() {
    let fleet = Fleet::new().await;
    let server = relay().await;
    let mut stopping = serve_quick_heartbeat(&fleet, "20s");
    let admin = tenant_with_relay(&fleet, &stopping, &server).await;
    server.set_fault(Some(Fault::SlowData {
        delay: Duration::from_secs(3),
    }));
    let ids = burst(&fleet, &stopping, &admin, "stopping", 1).await;
    let id = &ids[0];
    wait_for(&fleet, &stopping, &admin, id, "claimed", |v| {
        v["status"] == "sending"
    })
    .await;
    let other = serve_quick_heartbeat(&fleet, "20s");
    assert_eq!(processes_metric(&fleet, &other, "alive").await, 2);
    // A graceful stop waits for the send, three heartbeat timeouts long: the stopping
    // process keeps beating meanwhile, so the other does not take the message over.
    let status = Command::new("kill")
        .args(["-TERM", &stopping.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while stopping.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the stop never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let views = wait_all_sent(&fleet, &other, &admin, &ids).await;
    assert!(!has_event(&views[id], "lease_expired"), "{:#}", views[id]);
    assert_eq!(message_ids_received(&server).len(), 1, "sent once");
    assert_eq!(
        sent_counter(&fleet, &other).await,
        0,
        "by the stopping process"
    );
    // Its row is gone, not left to go stale: past the heartbeat timeout nothing counts dead.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(processes_metric(&fleet, &other, "alive").await, 1);
    assert_eq!(processes_metric(&fleet, &other, "dead").await, 0);
}

#[cfg(unix)]
#[tokio::test]
async fn a_process_paused_past_the_heartbeat_timeout_loses_its_message_and_registers_again() {
    let fleet = Fleet::new().await;
    let server = relay().await;
    let paused = serve_quick_heartbeat(&fleet, DEFAULT_LEASE);
    let admin = tenant_with_relay(&fleet, &paused, &server).await;
    server.set_fault(Some(Fault::SlowData {
        delay: Duration::from_secs(3),
    }));
    let ids = burst(&fleet, &paused, &admin, "paused", 1).await;
    let id = &ids[0];
    wait_for(&fleet, &paused, &admin, id, "claimed", |v| {
        v["status"] == "sending"
    })
    .await;
    let other = serve_quick_heartbeat(&fleet, DEFAULT_LEASE);
    let signal = |name: &str| {
        let status = Command::new("kill")
            .args([name, &paused.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name}");
    };
    // Paused mid-send: silent for longer than the timeout, so the other process takes the
    // message over although its lease has ten minutes to run. (On SQLite a process stopped
    // inside one of its short heartbeat writes holds the write lock and blocks the other:
    // then it is let go for a moment and stopped again.)
    let mut taken = false;
    for _ in 0..3 {
        signal("-STOP");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !taken && Instant::now() < deadline {
            let views = statuses(&fleet, &other, &admin, &ids).await;
            taken = has_event(&views[id], "lease_expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if taken {
            break;
        }
        signal("-CONT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(taken, "the paused process's message was never taken over");
    signal("-CONT");

    let views = wait_all_sent(&fleet, &other, &admin, &ids).await;
    let sent: Vec<&Value> = views[id]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "sent")
        .collect();
    assert_eq!(sent.len(), 1, "one outcome recorded: {:#}", views[id]);
    assert_eq!(sent_counter(&fleet, &other).await, 1, "by the new owner");
    // The paused process finishes its send (the server has both copies: at-least-once), but
    // may not record it over the new owner, and says it was given up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = paused.log.lock().unwrap().clone();
        if log.contains("heartbeat lapsed") && log.contains("outcomes not recorded") {
            break;
        }
        assert!(Instant::now() < deadline, "no warnings in:\n{log}");
        drop(log);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        message_ids_received(&server).len() <= 2,
        "one duplicate at most"
    );
    // Registered again: both processes count as alive.
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_metric(&fleet, &other, "alive").await != 2 {
        assert!(
            Instant::now() < deadline,
            "the paused process never registered again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_claim_takes_over_the_messages_of_dead_processes_at_once_and_no_others() {
    use switchboard::store::delivery;
    use switchboard::store::processes::{self, Registration};

    let w = crate::messages::world_with(&[("SWITCHBOARD_DELIVERY", "off")]).await;
    let (store, _) = switchboard::startup::open_store_and_vault(&w.app.config()).unwrap();
    const SECOND: i64 = 1_000_000;
    let now = chrono::Utc::now().timestamp_micros();
    let stale_before = now - 30 * SECOND;
    // One message leased for ten minutes by each kind of owner.
    let mut leased = HashMap::new();
    for owner in ["found-dead", "silent", "live", "older-version"] {
        let id = send_id(&w, mail(owner)).await;
        let claimed = store
            .run_blocking(|c| {
                delivery::claim(
                    c,
                    owner,
                    1,
                    600 * SECOND,
                    Some(stale_before),
                    chrono::Utc::now().timestamp_micros(),
                )
            })
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, id);
        leased.insert(owner, id);
    }
    let register = |id: &str, heartbeat_at: i64| {
        let me = Registration {
            id: id.to_owned(),
            hostname: "test".into(),
            pid: 1,
            pid_scope: None,
            started_at: heartbeat_at,
        };
        store
            .run_blocking(|c| processes::register(c, &me, heartbeat_at))
            .unwrap();
    };
    register("found-dead", now);
    assert!(
        store
            .run_blocking(|c| processes::mark_dead(c, "found-dead", now, now))
            .unwrap()
    );
    register("silent", now - 31 * SECOND);
    register("live", now - 29 * SECOND);
    // "older-version" has no row: a process of a version without heartbeats.

    let heir = store
        .run_blocking(|c| {
            delivery::claim(
                c,
                "heir",
                10,
                600 * SECOND,
                Some(stale_before),
                chrono::Utc::now().timestamp_micros(),
            )
        })
        .unwrap();
    let taken: HashSet<String> = heir.iter().map(|m| m.id.clone()).collect();
    let expected: HashSet<String> = [&leased["found-dead"], &leased["silent"]]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(taken, expected);
    for owner in ["found-dead", "silent", "live", "older-version"] {
        let view = expect_json(
            w.app
                .get(&format!("/v1/messages/{}", leased[owner]), &w.rep.token)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(view["status"], "sending");
        assert_eq!(
            has_event(&view, "lease_expired"),
            expected.contains(&leased[owner]),
            "{owner}: {view:#}"
        );
    }
    // A process never takes its own messages back as a dead one's.
    register("heir", now - 60 * SECOND);
    let again = store
        .run_blocking(|c| {
            delivery::claim(
                c,
                "heir",
                10,
                600 * SECOND,
                Some(stale_before),
                chrono::Utc::now().timestamp_micros(),
            )
        })
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
    // Housekeeping keeps a dead process's row while a message is leased to it.
    assert_eq!(
        store
            .run_blocking(|c| processes::prune(c, now + SECOND))
            .unwrap(),
        1,
        "only found-dead's row (its message was taken over) goes"
    );
}
