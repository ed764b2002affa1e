//! The per-channel SMTP connection pool against a real server: reuse, the pool size bound,
//! a rotated credential, broken and silent sessions, idle expiry.

use std::sync::Arc;
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use secrecy::SecretString;
use switchboard::domain::{ChannelId, Hostname, Security, SmtpAuth, SmtpSettings};
use switchboard::transport::FailureClass;
use switchboard::transport::OutboundPolicy;
use switchboard::transport::pool::{SmtpPool, Target};

use crate::smtp_server::{Fault, IdleClose, SmtpServerConfig, TestSmtpServer};
use switchboard::domain::recipients::Verdict;

const USER: &str = "relay@acme.test";

fn settings(server: &TestSmtpServer, pool_size: u32) -> SmtpSettings {
    SmtpSettings {
        host: Hostname::parse("localhost").unwrap(),
        port: server.port(),
        security: Security::StartTls,
        auth: SmtpAuth::Plain,
        username: Some(USER.into()),
        accept_invalid_certs: false,
        ca_pem: Some(server.ca_pem()),
        pinned_sha256: None,
        connect_timeout_secs: 5,
        command_timeout_secs: 2,
        pool_size,
    }
}

fn pool(idle: Duration) -> Arc<SmtpPool> {
    Arc::new(SmtpPool::new(
        OutboundPolicy::parse("127.0.0.0/8,::1").unwrap(),
        idle,
    ))
}

fn envelope() -> Envelope {
    Envelope::new(
        Some(USER.parse::<Address>().unwrap()),
        vec!["lead@example.com".parse().unwrap()],
    )
    .unwrap()
}

fn message(n: usize) -> Vec<u8> {
    format!("From: {USER}\r\nTo: lead@example.com\r\nSubject: {n}\r\n\r\nBody {n}\r\n").into_bytes()
}

async fn server(password: &str) -> TestSmtpServer {
    TestSmtpServer::start(SmtpServerConfig {
        users: vec![(USER.to_owned(), password.to_owned())],
        ..SmtpServerConfig::default()
    })
    .await
}

/// A server shaped by `config`, with the relay account (password `pw`).
async fn server_with(config: SmtpServerConfig) -> TestSmtpServer {
    TestSmtpServer::start(SmtpServerConfig {
        users: vec![(USER.to_owned(), "pw".to_owned())],
        ..config
    })
    .await
}

/// A target on a channel of its own.
fn target<'a>(settings: &'a SmtpSettings, secret: &'a SecretString) -> Target<'a> {
    Target {
        channel: ChannelId::generate(),
        credential_version: 1,
        settings,
        credential: Some(secret),
    }
}

#[tokio::test]
async fn sequential_sends_reuse_one_authenticated_session() {
    let smtp = server("pw").await;
    let pool = pool(Duration::from_secs(30));
    let (settings, secret) = (settings(&smtp, 4), SecretString::from("pw"));
    let channel = ChannelId::generate();
    let target = Target {
        channel,
        credential_version: 1,
        settings: &settings,
        credential: Some(&secret),
    };
    for n in 0..20 {
        pool.send(&target, &envelope(), &message(n)).await.unwrap();
    }
    assert_eq!(
        smtp.wait_for_messages(20, Duration::from_secs(5))
            .await
            .len(),
        20
    );
    assert_eq!(smtp.connections(), 1);
    assert_eq!(
        smtp.auth_attempts().len(),
        1,
        "one login for twenty messages"
    );
    assert_eq!(pool.idle_count(channel), 1);
}

#[tokio::test]
async fn concurrent_sends_never_open_more_than_the_pool_size() {
    let smtp = server("pw").await;
    let pool = pool(Duration::from_secs(30));
    let settings = Arc::new(settings(&smtp, 2));
    let secret = Arc::new(SecretString::from("pw"));
    let channel = ChannelId::generate();
    let sends: Vec<_> = (0..12)
        .map(|n| {
            let (pool, settings, secret) = (pool.clone(), settings.clone(), secret.clone());
            tokio::spawn(async move {
                let target = Target {
                    channel,
                    credential_version: 1,
                    settings: &settings,
                    credential: Some(&secret),
                };
                pool.send(&target, &envelope(), &message(n)).await
            })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    assert_eq!(
        smtp.wait_for_messages(12, Duration::from_secs(5))
            .await
            .len(),
        12
    );
    assert!(
        smtp.connections() <= 2,
        "{} connections for a pool of 2",
        smtp.connections()
    );
}

#[tokio::test]
async fn a_rotated_credential_gets_a_new_session_and_the_old_ones_are_dropped() {
    let smtp = server("old").await;
    let pool = pool(Duration::from_secs(30));
    let settings = settings(&smtp, 4);
    let channel = ChannelId::generate();
    let old = SecretString::from("old");
    let v1 = Target {
        channel,
        credential_version: 1,
        settings: &settings,
        credential: Some(&old),
    };
    pool.send(&v1, &envelope(), &message(1)).await.unwrap();
    smtp.set_password(USER, "new");
    let new = SecretString::from("new");
    let v2 = Target {
        channel,
        credential_version: 2,
        settings: &settings,
        credential: Some(&new),
    };
    pool.send(&v2, &envelope(), &message(2)).await.unwrap();
    assert_eq!(
        smtp.connections(),
        2,
        "the new credential logged in on a new session"
    );
    let attempts = smtp.auth_attempts();
    assert!(
        attempts.iter().all(|a| a.success),
        "the new password was never tried on the old session"
    );
    assert_eq!(
        pool.idle_count(channel),
        1,
        "the old version's session is gone"
    );
}

#[tokio::test]
async fn broken_and_silent_sessions_fail_classified_and_are_never_reused() {
    let smtp = server("pw").await;
    let pool = pool(Duration::from_secs(30));
    let (settings, secret) = (settings(&smtp, 1), SecretString::from("pw"));
    let channel = ChannelId::generate();
    let target = Target {
        channel,
        credential_version: 1,
        settings: &settings,
        credential: Some(&secret),
    };
    pool.send(&target, &envelope(), &message(0)).await.unwrap();

    smtp.set_fault(Some(Fault::DropAfterData));
    let failure = pool
        .send(&target, &envelope(), &message(1))
        .await
        .unwrap_err();
    assert_eq!(failure.class, FailureClass::Network, "{failure:?}");
    assert_eq!(pool.idle_count(channel), 0);

    smtp.set_fault(Some(Fault::SilentAfter { command: "DATA" }));
    let started = std::time::Instant::now();
    let failure = pool
        .send(&target, &envelope(), &message(2))
        .await
        .unwrap_err();
    assert_eq!(failure.class, FailureClass::Network, "{failure:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "our deadline ended the silent send"
    );

    smtp.set_fault(None);
    pool.send(&target, &envelope(), &message(4)).await.unwrap();
    let connections = smtp.connections();
    assert!(
        connections >= 3,
        "each failure cost its session: {connections}"
    );
}

#[tokio::test]
async fn a_refused_recipient_is_answered_alone_and_keeps_the_session() {
    let smtp = server("pw").await;
    let pool = pool(Duration::from_secs(30));
    let (settings, secret) = (settings(&smtp, 1), SecretString::from("pw"));
    let target = target(&settings, &secret);
    smtp.set_rcpt_reply("nobody@example.com", Some((550, "5.1.1 User unknown")));
    let two = Envelope::new(
        Some(USER.parse::<Address>().unwrap()),
        vec![
            "nobody@example.com".parse().unwrap(),
            "lead@example.com".parse().unwrap(),
        ],
    )
    .unwrap();
    let done = pool.send(&target, &two, &message(0)).await.unwrap();
    assert!(done.delivered.is_some(), "{done:?}");
    assert_eq!(done.recipients[0].verdict, Verdict::Refused);
    assert_eq!(done.recipients[0].code, Some(550));
    assert_eq!(done.recipients[1].verdict, Verdict::Accepted);
    assert_eq!(smtp.messages()[0].rcpt_to, ["lead@example.com"]);

    // Nobody accepted: nothing is sent, and the session is reset and reused.
    let one = Envelope::new(
        Some(USER.parse::<Address>().unwrap()),
        vec!["nobody@example.com".parse().unwrap()],
    )
    .unwrap();
    let done = pool.send(&target, &one, &message(1)).await.unwrap();
    assert_eq!(done.delivered, None);
    pool.send(&target, &envelope(), &message(2)).await.unwrap();
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(smtp.connections(), 1, "refusals do not cost the session");
}

#[tokio::test]
async fn a_session_the_server_closed_while_idle_is_replaced_within_the_same_send() {
    for how in [IdleClose::Reply421, IdleClose::Silent] {
        let smtp = server_with(SmtpServerConfig {
            idle_timeout: Some((Duration::from_millis(100), how)),
            ..SmtpServerConfig::default()
        })
        .await;
        let pool = pool(Duration::from_secs(30));
        let (settings, secret) = (settings(&smtp, 1), SecretString::from("pw"));
        let target = target(&settings, &secret);
        pool.send(&target, &envelope(), &message(0)).await.unwrap();
        while smtp.idle_closes() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let done = pool.send(&target, &envelope(), &message(1)).await;
        assert!(done.is_ok(), "{how:?}: {done:?}");
        assert_eq!(smtp.messages().len(), 2, "{how:?}");
        assert_eq!(smtp.connections(), 2, "{how:?}");
    }
}

#[tokio::test]
async fn the_servers_size_limit_is_read_from_ehlo_and_honoured_before_sending() {
    let smtp = server_with(SmtpServerConfig {
        size_limit: 1_000,
        ..SmtpServerConfig::default()
    })
    .await;
    let pool = pool(Duration::from_secs(30));
    let (settings, secret) = (settings(&smtp, 1), SecretString::from("pw"));
    let target = target(&settings, &secret);
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(2_000)).into_bytes();
    let failure = pool.send(&target, &envelope(), &big).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Permanent, "{failure:?}");
    assert!(
        failure.message.contains(&format!("{} bytes", big.len()))
            && failure.message.contains("1000 bytes"),
        "{failure:?}"
    );
    assert!(
        smtp.rcpt_log().is_empty(),
        "nothing was asked of the server"
    );
    pool.send(&target, &envelope(), &message(1)).await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_failure_and_idle_sessions_expire() {
    let smtp = server("pw").await;
    let settings = settings(&smtp, 2);
    let channel = ChannelId::generate();
    let wrong = SecretString::from("wrong");
    let pool = pool(Duration::from_millis(50));
    let target = Target {
        channel,
        credential_version: 1,
        settings: &settings,
        credential: Some(&wrong),
    };
    let failure = pool
        .send(&target, &envelope(), &message(0))
        .await
        .unwrap_err();
    assert_eq!(
        (failure.class, failure.code),
        (FailureClass::Auth, Some(535))
    );

    let right = SecretString::from("pw");
    let target = Target {
        channel,
        credential_version: 2,
        settings: &settings,
        credential: Some(&right),
    };
    pool.send(&target, &envelope(), &message(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.close_idle().await, 1);
    assert_eq!(pool.idle_count(channel), 0);
}

#[tokio::test]
async fn a_non_ascii_address_goes_only_to_a_server_that_offers_smtputf8() {
    let unicode: Address = "jürgen@example.com".parse().unwrap();
    let mixed = Envelope::new(
        Some(USER.parse::<Address>().unwrap()),
        vec![unicode.clone(), "lead@example.com".parse().unwrap()],
    )
    .unwrap();
    for smtputf8 in [false, true] {
        let smtp = server_with(SmtpServerConfig {
            smtputf8,
            ..SmtpServerConfig::default()
        })
        .await;
        let pool = pool(Duration::from_secs(30));
        let (settings, secret) = (settings(&smtp, 1), SecretString::from("pw"));
        let target = target(&settings, &secret);
        let done = pool.send(&target, &mixed, &message(0)).await.unwrap();
        let asked: Vec<String> = smtp.rcpt_log().into_iter().map(|(a, _)| a).collect();
        if smtputf8 {
            assert_eq!(done.recipients[0].verdict, Verdict::Accepted, "{done:?}");
            assert_eq!(asked, ["jürgen@example.com", "lead@example.com"]);
            assert_eq!(
                smtp.messages()[0].rcpt_to,
                ["jürgen@example.com", "lead@example.com"],
                "sent as it is, not altered"
            );
        } else {
            assert_eq!(done.recipients[0].verdict, Verdict::Refused, "{done:?}");
            assert_eq!(done.recipients[0].code, None);
            assert!(done.recipients[0].reply.contains("SMTPUTF8"), "{done:?}");
            assert_eq!(asked, ["lead@example.com"], "never sent in another form");
            assert_eq!(done.recipients[1].verdict, Verdict::Accepted);
        }
    }
}

#[tokio::test]
async fn edited_settings_take_effect_with_the_next_message() {
    let (old, new) = (server("pw").await, server("pw").await);
    let pool = pool(Duration::from_secs(30));
    let secret = SecretString::from("pw");
    let channel = ChannelId::generate();
    let before = settings(&old, 1);
    let send = |settings| Target {
        channel,
        credential_version: 1,
        settings,
        credential: Some(&secret),
    };
    pool.send(&send(&before), &envelope(), &message(0))
        .await
        .unwrap();
    assert_eq!(pool.idle_count(channel), 1);
    // An admin points the channel at another server; the credential stays the same.
    let after = settings(&new, 1);
    pool.send(&send(&after), &envelope(), &message(1))
        .await
        .unwrap();
    assert_eq!(old.messages().len(), 1, "the old server got only the first");
    assert_eq!(
        new.messages().len(),
        1,
        "the next one went to the new server"
    );
}
