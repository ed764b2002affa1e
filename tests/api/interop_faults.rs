//! The faults of tests/api/server_faults.rs, against servers we did not write: Python's
//! aiosmtpd and Node's smtp-server (tests/interop/aiosmtpd_peer.py and smtp_server_peer.js: recipients
//! refused for good or for now, an idle session closed, a SIZE limit) and Postfix's smtp-sink
//! (421 and a dropped connection at a chosen command, a drop after the final dot).
//! Runs when SWITCHBOARD_INTEROP=1, with the peers installed by .ci/interop.sh in
//! SWITCHBOARD_INTEROP_DIR.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::events_of;
use crate::helpers::{TestApp, TestUser, expect_json};
use crate::interop::{Peer, launch, test_ca_certificates};

const USER: &str = "rep@acme.test";
const PASSWORD: &str = "Interop-Password-42";
const PATIENCE: Duration = Duration::from_secs(30);
const PEERS: [&str; 2] = ["aiosmtpd", "smtp-server"];

const ANN: &str = "ann@example.com";
const NOBODY: &str = "nobody@example.com";
const BUSY: &str = "busy@example.com";

fn interop_dir() -> Option<PathBuf> {
    let dir = crate::interop::interop_dir();
    if dir.is_none() {
        eprintln!("interop peers not requested (SWITCHBOARD_INTEROP=1 runs them)");
    }
    dir
}

/// Waits (at most PATIENCE) until `probe` finds what it looks for.
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// aiosmtpd and smtp-server with fault knobs
// ---------------------------------------------------------------------------------------------

/// What the peers log besides the messages: every RCPT and session event.
impl Peer {
    /// Every RCPT it answered: `{address, code, reply}`.
    fn rcpts(&self) -> Vec<Value> {
        self.records("rcpts.jsonl")
    }

    fn rcpts_of(&self, address: &str) -> Vec<Value> {
        self.rcpts()
            .into_iter()
            .filter(|r| r["address"] == address)
            .collect()
    }

    /// `{event: auth}` per login, `{event: idle_close}` per session it closed for idleness.
    fn session_events(&self, event: &str) -> usize {
        self.records("sessions.jsonl")
            .iter()
            .filter(|r| r["event"] == event)
            .count()
    }

    /// The mailboxes it answered 451 free up.
    fn lift_deferrals(&self) {
        std::fs::write(self.dir.path().join("defer-off"), b"").unwrap();
    }
}

/// A fault peer on STARTTLS with a real password check and the faults in `faults`.
fn start_fault_peer(installed: &Path, name: &'static str, faults: &[(&str, &str)]) -> Peer {
    let dir = test_ca_certificates(installed);
    launch(installed, name, "starttls", dir, faults)
}

/// An app that retries fast, a tenant owning acme.test, and its rep.
struct World {
    app: TestApp,
    rep: TestUser,
    channel: String,
}

async fn create_channel(app: &TestApp, rep: &TestUser, smtp: Value) -> String {
    let res = app
        .post(
            "/v1/channels",
            &rep.token,
            json!({"name": "My mailbox", "kind": "smtp", "scope": "mailbox",
                   "from_address": USER, "smtp": smtp}),
        )
        .await;
    expect_json(res, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The rep's own mailbox channel on the peer: STARTTLS with the peer's CA, AUTH PLAIN.
async fn world_on(peer: &Peer) -> World {
    let (app, _, rep) = crate::messages::acme_and_rep(&[]).await;
    let channel = create_channel(
        &app,
        &rep,
        json!({"host": "localhost", "port": peer.port, "security": "starttls", "auth": "plain",
               "username": USER, "password": PASSWORD, "ca_pem": peer.ca_pem(),
               "connect_timeout_secs": 5, "command_timeout_secs": 10}),
    )
    .await;
    World { app, rep, channel }
}

impl World {
    async fn send(&self, body: Value) -> String {
        let res = self.app.post("/v1/messages", &self.rep.token, body).await;
        expect_json(res, StatusCode::ACCEPTED).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn send_to(&self, to: &str, subject: &str) -> String {
        self.send(json!({"from": USER, "to": [to], "subject": subject, "text": "Hello"}))
            .await
    }

    async fn until(&self, id: &str, status: &str) -> Value {
        self.app
            .wait_for_message(&self.rep.token, id, status, PATIENCE)
            .await
    }

    /// Waits until the message has left `queued`/`sending` and returns where it went.
    async fn settled(&self, id: &str) -> Value {
        self.app
            .wait_for_message_where(&self.rep.token, id, PATIENCE, |v| {
                !matches!(v["status"].as_str(), Some("queued" | "sending"))
            })
            .await
    }

    /// Waits until the message is no longer on its way (nor waiting to retry).
    async fn finished(&self, id: &str) -> Value {
        self.app
            .wait_for_message_where(&self.rep.token, id, PATIENCE, |v| {
                !matches!(
                    v["status"].as_str(),
                    Some("queued" | "sending" | "deferred")
                )
            })
            .await
    }

    async fn channel_view(&self) -> Value {
        let res = self
            .app
            .get(&format!("/v1/channels/{}", self.channel), &self.rep.token)
            .await;
        expect_json(res, StatusCode::OK).await
    }
}

fn recipient(view: &Value, address: &str) -> Value {
    view["recipients"]
        .as_array()
        .unwrap_or_else(|| panic!("recipients in {view:#}"))
        .iter()
        .find(|r| r["address"] == address)
        .cloned()
        .unwrap_or_else(|| panic!("{address} in the recipients of {view:#}"))
}

fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    data.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test]
async fn recipients_refused_for_good_or_for_now_by_aiosmtpd_and_smtp_server() {
    let Some(installed) = interop_dir() else {
        return;
    };
    for name in PEERS {
        let peer = start_fault_peer(
            &installed,
            name,
            &[("PEER_REFUSE", NOBODY), ("PEER_DEFER", BUSY)],
        );
        let w = world_on(&peer).await;
        let id = w
            .send(json!({"from": USER, "to": [ANN, NOBODY], "cc": [BUSY],
                         "subject": "three", "text": "Hello all"}))
            .await;

        // The accepted recipient has it at once; the others wait or fail alone.
        let deferred = w.settled(&id).await;
        assert_eq!(deferred["status"], "deferred", "{name}: {deferred:#}");
        let first = eventually(&format!("{name} to receive the message"), || {
            peer.messages().into_iter().next()
        })
        .await;
        assert_eq!(first["rcpt_tos"], json!([ANN]), "{name}: {first}");
        assert_eq!(first["mail_from"], USER, "{name}");
        let ann = recipient(&deferred, ANN);
        assert_eq!(ann["status"], "sent", "{name}: {ann}");
        let nobody = recipient(&deferred, NOBODY);
        assert_eq!(nobody["status"], "failed", "{name}: {nobody}");
        assert_eq!(nobody["code"], 550, "{name}: {nobody}");
        assert!(
            nobody["reply"].as_str().unwrap().contains("User unknown"),
            "{name}: the peer's own words: {nobody}"
        );
        let busy = recipient(&deferred, BUSY);
        assert_eq!(busy["status"], "deferred", "{name}: {busy}");
        assert_eq!(busy["code"], 451, "{name}: {busy}");
        assert!(
            busy["reply"].as_str().unwrap().contains("Mailbox busy"),
            "{name}: {busy}"
        );
        let attempt = events_of(&deferred, "attempt")[0];
        let answers = attempt["detail"]["recipients"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: RCPT answers in {attempt}"));
        let verdict = |address: &str| -> (Value, Value) {
            let a = answers
                .iter()
                .find(|a| a["address"] == address)
                .unwrap_or_else(|| panic!("{name}: {address} in {attempt}"));
            (a["verdict"].clone(), a["code"].clone())
        };
        assert_eq!(answers.len(), 3, "{name}: {attempt}");
        assert_eq!(verdict(ANN), (json!("accepted"), json!(250)), "{name}");
        assert_eq!(verdict(NOBODY), (json!("refused"), json!(550)), "{name}");
        assert_eq!(verdict(BUSY), (json!("deferred"), json!(451)), "{name}");
        let deferrals = events_of(&deferred, "deferred");
        assert_eq!(
            deferrals[0]["detail"]["reason"], "recipients_deferred",
            "{name}: {deferred:#}"
        );

        // The mailbox frees up: the retry goes to busy alone, never again to ann or nobody.
        peer.lift_deferrals();
        let done = w.until(&id, "partially_sent").await;
        let received = eventually(&format!("{name} to receive the retry"), || {
            let m = peer.messages();
            (m.len() >= 2).then_some(m)
        })
        .await;
        assert_eq!(received.len(), 2, "{name}: {received:?}");
        assert_eq!(received[1]["rcpt_tos"], json!([BUSY]), "{name}");
        assert_eq!(peer.rcpts_of(ANN).len(), 1, "{name}: {:?}", peer.rcpts());
        assert_eq!(peer.rcpts_of(NOBODY).len(), 1, "{name}: {:?}", peer.rcpts());
        assert!(peer.rcpts_of(BUSY).len() >= 2, "{name}: {:?}", peer.rcpts());
        // The retry is the same message: same Message-ID, the same To and Cc for everyone.
        let (once, again) = (
            received[0]["data"].as_str().unwrap(),
            received[1]["data"].as_str().unwrap(),
        );
        for name_of_header in ["Message-ID", "To", "Cc"] {
            let h = header(once, name_of_header);
            assert!(h.is_some(), "{name}: {name_of_header} in {once}");
            assert_eq!(h, header(again, name_of_header), "{name}: {name_of_header}");
        }
        assert_eq!(recipient(&done, ANN)["status"], "sent", "{name}: {done:#}");
        assert_eq!(recipient(&done, BUSY)["status"], "sent", "{name}: {done:#}");
        assert_eq!(
            recipient(&done, NOBODY)["status"],
            "failed",
            "{name}: {done:#}"
        );
        assert!(
            done["last_error"]
                .as_str()
                .unwrap_or_default()
                .contains(NOBODY),
            "{name}: the refusal is named: {done:#}"
        );
        assert!(events_of(&done, "failed").is_empty(), "{name}: {done:#}");
        // The peer's "550 5.1.1 … User unknown", read off its own wire format, is a hard
        // bounce: the address is suppressed for the tenant.
        let again = w
            .app
            .post(
                "/v1/messages",
                &w.rep.token,
                json!({"from": USER, "to": [NOBODY], "subject": "again", "text": "Hello"}),
            )
            .await;
        crate::helpers::expect_problem(
            again,
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "recipient_suppressed",
        )
        .await;
    }
}

#[tokio::test]
async fn a_session_aiosmtpd_or_smtp_server_closed_while_idle_costs_nothing() {
    let Some(installed) = interop_dir() else {
        return;
    };
    // aiosmtpd closes an idle session without a word; smtp-server says 421 first.
    for name in PEERS {
        let peer = start_fault_peer(&installed, name, &[("PEER_IDLE_MS", "500")]);
        let w = world_on(&peer).await;
        assert_eq!(peer.session_events("idle_close"), 0, "{name}");
        let first = w.send_to(ANN, "opens the session").await;
        w.until(&first, "sent").await;
        // The session stays in Switchboard's pool (30 s) until the peer closes it.
        eventually(&format!("{name} to close the idle session"), || {
            (peer.session_events("idle_close") >= 1).then_some(())
        })
        .await;
        assert_eq!(peer.session_events("auth"), 1, "{name}: one session so far");

        let id = w.send_to("ben@example.com", "after the close").await;
        let view = w.settled(&id).await;
        assert_eq!(view["status"], "sent", "{name}: {view:#}");
        assert_eq!(
            view["attempts"], 1,
            "{name}: sent on the first attempt: {view:#}"
        );
        assert!(
            events_of(&view, "deferred").is_empty(),
            "{name}: never deferred: {view:#}"
        );
        let attempts = events_of(&view, "attempt");
        assert_eq!(attempts.len(), 1, "{name}: {view:#}");
        assert_eq!(attempts[0]["detail"]["result"], "ok", "{name}: {view:#}");
        assert_eq!(peer.messages().len(), 2, "{name}");
        assert_eq!(
            peer.session_events("auth"),
            2,
            "{name}: a fresh session replaced the closed one"
        );
        let channel = w.channel_view().await;
        assert_eq!(channel["status"], "active", "{name}: {channel:#}");
        assert_eq!(
            channel["health"]["consecutive_failures"], 0,
            "{name}: not counted against the channel: {channel:#}"
        );
    }
}

#[tokio::test]
async fn a_message_over_the_size_aiosmtpd_or_smtp_server_announced_fails_at_once() {
    let Some(installed) = interop_dir() else {
        return;
    };
    for name in PEERS {
        let peer = start_fault_peer(&installed, name, &[("PEER_SIZE", "5000")]);
        let w = world_on(&peer).await;
        let id = w
            .send(json!({"from": USER, "to": [ANN], "subject": "big",
                         "text": "x".repeat(20_000)}))
            .await;
        let failed = w.settled(&id).await;
        assert_eq!(failed["status"], "failed", "{name}: {failed:#}");
        assert_eq!(failed["attempts"], 1, "{name}: {failed:#}");
        let error = failed["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("5000 bytes"), "{name}: the limit: {error}");
        assert!(error.contains("SIZE"), "{name}: {error}");
        let attempts = events_of(&failed, "attempt");
        assert_eq!(attempts.len(), 1, "{name}: {failed:#}");
        assert_eq!(
            attempts[0]["detail"]["result"], "permanent",
            "{name}: {failed:#}"
        );
        assert!(
            attempts[0]["detail"]["code"].is_null(),
            "{name}: refused by Switchboard before sending, not by the server's 552: {failed:#}"
        );
        let size = error
            .split_whitespace()
            .filter_map(|w| w.parse::<u64>().ok())
            .find(|n| *n > 20_000);
        assert!(size.is_some(), "{name}: the message's own size: {error}");
        assert!(
            peer.rcpts().is_empty() && peer.messages().is_empty(),
            "{name}: nothing reached the server: {:?} {:?}",
            peer.rcpts(),
            peer.messages()
        );

        // One that fits goes out on the same channel.
        let small = w.send_to(ANN, "small").await;
        w.until(&small, "sent").await;
        let received = peer.messages();
        assert_eq!(received.len(), 1, "{name}: {received:?}");
        assert_eq!(
            header(received[0]["data"].as_str().unwrap(), "Subject"),
            Some("small")
        );
    }
}

/// A non-ASCII address through the SMTP pool (acceptance refuses such addresses, so this is
/// the transport alone): to a peer that offers SMTPUTF8 it goes as it is; to one that does
/// not, that recipient fails with a reason and is never asked for in another form, while the
/// other recipient still gets the message.
#[tokio::test]
async fn a_non_ascii_address_reaches_aiosmtpd_or_smtp_server_only_with_smtputf8() {
    use lettre::address::{Address, Envelope};
    use secrecy::SecretString;
    use switchboard::domain::recipients::Verdict;
    use switchboard::domain::{ChannelId, Hostname, Security, SmtpAuth, SmtpSettings};
    use switchboard::transport::OutboundPolicy;
    use switchboard::transport::pool::{SmtpPool, Target};

    let Some(installed) = interop_dir() else {
        return;
    };
    let unicode = "jürgen@example.com";
    let envelope = Envelope::new(
        Some(USER.parse::<Address>().unwrap()),
        vec![unicode.parse().unwrap(), ANN.parse().unwrap()],
    )
    .unwrap();
    let message = format!("From: {USER}\r\nTo: {ANN}\r\nSubject: utf8\r\n\r\nHello\r\n");
    for name in PEERS {
        for offered in [false, true] {
            let flag = if offered { "1" } else { "0" };
            let peer = start_fault_peer(&installed, name, &[("PEER_SMTPUTF8", flag)]);
            let settings = SmtpSettings {
                host: Hostname::parse("localhost").unwrap(),
                port: peer.port,
                security: Security::StartTls,
                auth: SmtpAuth::Plain,
                username: Some(USER.into()),
                accept_invalid_certs: false,
                ca_pem: Some(peer.ca_pem()),
                pinned_sha256: None,
                connect_timeout_secs: 5,
                command_timeout_secs: 5,
                pool_size: 1,
            };
            let secret = SecretString::from(PASSWORD);
            let pool = SmtpPool::new(
                OutboundPolicy::parse("127.0.0.0/8").unwrap(),
                Duration::from_secs(30),
            );
            let target = Target {
                channel: ChannelId::generate(),
                credential_version: 1,
                settings: &settings,
                credential: Some(&secret),
            };
            let done = pool
                .send(&target, &envelope, message.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("{name} offered={offered}: {e:?}"));
            let label = format!("{name} SMTPUTF8 offered={offered}");
            let asked: Vec<String> = peer
                .rcpts()
                .iter()
                .map(|r| r["address"].as_str().unwrap().to_owned())
                .collect();
            let delivered = eventually(&label, || {
                let m = peer.messages();
                (!m.is_empty()).then_some(m)
            })
            .await;
            if offered {
                assert_eq!(
                    done.recipients[0].verdict,
                    Verdict::Accepted,
                    "{label}: {done:?}"
                );
                assert_eq!(asked, [unicode, ANN], "{label}");
                assert_eq!(delivered[0]["rcpt_tos"], json!([unicode, ANN]), "{label}");
            } else {
                assert_eq!(
                    done.recipients[0].verdict,
                    Verdict::Refused,
                    "{label}: {done:?}"
                );
                assert!(
                    done.recipients[0].reply.contains("SMTPUTF8"),
                    "{label}: {done:?}"
                );
                assert_eq!(asked, [ANN], "{label}: never asked for in another form");
                assert_eq!(delivered[0]["rcpt_tos"], json!([ANN]), "{label}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Postfix's smtp-sink
// ---------------------------------------------------------------------------------------------

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// An smtp-sink on 127.0.0.1, dumping each transaction to a file of its own directory.
struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Sink {
    /// `faults` as smtp-sink takes them, e.g. `["-Q", "mail"]`.
    fn start(faults: &[&str]) -> Sink {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: .ci/interop.sh installs postfix"
        );
        let dir = tempfile::TempDir::new().unwrap();
        let port = free_port();
        let mut command = Command::new(SMTP_SINK);
        if running_as_root() {
            // smtp-sink refuses to run as root without a user to switch to.
            command.args(["-u", "root"]);
        }
        command
            .args(faults)
            .arg("-d")
            .arg(dir.path().join("msg."))
            .arg(format!("127.0.0.1:{port}"))
            .arg("100")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("smtp-sink starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("smtp-sink {faults:?} on port {port} exited: {status}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("smtp-sink {faults:?} does not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Sink { child, port, dir }
    }

    /// The transactions it dumped whose message has `subject`.
    fn dumps_with(&self, subject: &str) -> usize {
        let wanted = format!("\nSubject: {subject}\n");
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
            .filter(|text| text.replace("\r\n", "\n").contains(&wanted))
            .count()
    }
}

/// The rep's mailbox channel on an smtp-sink: no TLS there (smtp-sink has none), and any
/// password does.
async fn world_on_sink(sink: &Sink) -> World {
    let (app, _, rep) = crate::messages::acme_and_rep(&[]).await;
    let channel = create_channel(
        &app,
        &rep,
        json!({"host": "127.0.0.1", "port": sink.port, "security": "none", "auth": "plain",
               "username": USER, "password": PASSWORD,
               "connect_timeout_secs": 5, "command_timeout_secs": 10}),
    )
    .await;
    World { app, rep, channel }
}

async fn point_channel_at(w: &World, port: u16) {
    let res = w
        .app
        .patch(
            &format!("/v1/channels/{}", w.channel),
            &w.rep.token,
            json!({"smtp": {"port": port}}),
        )
        .await;
    let channel = expect_json(res, StatusCode::OK).await;
    assert_eq!(channel["smtp"]["port"], port, "{channel:#}");
}

#[tokio::test]
async fn smtp_sink_hanging_up_at_each_step_defers_the_message_and_loses_nothing() {
    if interop_dir().is_none() {
        return;
    }
    // (smtp-sink's fault, the step, what Switchboard may call it, whether the server may have
    // the message when the connection broke)
    let stages: [(&str, &str, &[&str], bool); 4] = [
        ("-Q", "mail", &["temporary", "network"], false),
        ("-Q", "rcpt", &["temporary", "network"], false),
        ("-q", "data", &["network"], false),
        ("-q", ".", &["network"], true),
    ];
    for (flag, step, classes, possibly_delivered) in stages {
        let label = format!("smtp-sink {flag} {step}");
        let faulty = Sink::start(&[flag, step]);
        let w = world_on_sink(&faulty).await;
        let subject = format!("through {flag} {step}");
        let id = w.send_to(ANN, &subject).await;
        let deferred = w.settled(&id).await;
        assert_eq!(deferred["status"], "deferred", "{label}: {deferred:#}");
        let attempt = events_of(&deferred, "attempt")[0];
        eprintln!("{label}: {}", attempt["detail"]);
        let result = attempt["detail"]["result"].as_str().unwrap_or_default();
        assert!(classes.contains(&result), "{label}: {attempt}");
        if flag == "-Q" {
            assert_eq!(attempt["detail"]["code"], 421, "{label}: {attempt}");
        }
        assert_eq!(
            attempt["detail"]["possibly_delivered"]
                .as_bool()
                .unwrap_or(false),
            possibly_delivered,
            "{label}: {attempt}"
        );
        let deferral = events_of(&deferred, "deferred")[0];
        assert_eq!(
            deferral["detail"]["reason"], "temporary_failure",
            "{label}: {deferral}"
        );

        // The rep points the channel at a server that works: the message goes there.
        let clean = Sink::start(&[]);
        point_channel_at(&w, clean.port).await;
        let sent = w.finished(&id).await;
        assert_eq!(sent["status"], "sent", "{label}: {sent:#}");
        eventually(&format!("{label}: the clean sink's dump"), || {
            (clean.dumps_with(&subject) == 1).then_some(())
        })
        .await;
        assert!(events_of(&sent, "failed").is_empty(), "{label}: {sent:#}");
    }
}

/// PATCHing a channel's server is obeyed by the next message, even while a session to the
/// old server sits idle in the pool.
#[tokio::test]
async fn a_channel_pointed_at_another_server_sends_there_next() {
    if interop_dir().is_none() {
        return;
    }
    let old = Sink::start(&[]);
    let w = world_on_sink(&old).await;
    let first = w.send_to(ANN, "to the old server").await;
    w.until(&first, "sent").await;
    assert_eq!(old.dumps_with("to the old server"), 1);

    let new = Sink::start(&[]);
    point_channel_at(&w, new.port).await;
    let second = w.send_to(ANN, "to the new server").await;
    w.until(&second, "sent").await;
    let (on_new, on_old) = eventually("a server's dump of the second message", || {
        let (on_new, on_old) = (
            new.dumps_with("to the new server"),
            old.dumps_with("to the new server"),
        );
        (on_new + on_old > 0).then_some((on_new, on_old))
    })
    .await;
    assert_eq!(
        (on_new, on_old),
        (1, 0),
        "(new server, old server): the message sent after the channel was moved"
    );
}
