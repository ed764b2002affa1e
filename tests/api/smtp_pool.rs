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

use crate::smtp_server::{Fault, SmtpServerConfig, TestSmtpServer};

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

    smtp.set_fault(Some(Fault::Reply {
        command: "RCPT",
        code: 550,
        text: "5.1.1 User unknown".into(),
    }));
    let failure = pool
        .send(&target, &envelope(), &message(3))
        .await
        .unwrap_err();
    assert_eq!(
        (failure.class, failure.code),
        (FailureClass::Permanent, Some(550))
    );

    smtp.set_fault(None);
    pool.send(&target, &envelope(), &message(4)).await.unwrap();
    let connections = smtp.connections();
    assert!(
        connections >= 4,
        "each failure cost its session: {connections}"
    );
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
