//! SMTP throughput through our connection pool: `cargo bench --bench smtp`.
//! 2 KB messages over STARTTLS + AUTH to the in-process test server (tests/support), on one
//! session and on eight. The server shares the machine, so these are floors, not the
//! provider's speed; the point is that our sockets do not stall on Nagle + delayed ACK
//! (lettre's own async transport: about 23 msg/s on one connection, FIELD-NOTES.md).

#[path = "../tests/support/smtp_server.rs"]
mod smtp_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lettre::Address;
use lettre::address::Envelope;
use secrecy::SecretString;
use switchboard::domain::{ChannelId, Hostname, Security, SmtpAuth, SmtpSettings};
use switchboard::transport::OutboundPolicy;
use switchboard::transport::pool::{SmtpPool, Target};

use smtp_server::{SmtpServerConfig, TestSmtpServer};

const MESSAGES: usize = 2000;

fn two_kb_message() -> Vec<u8> {
    let mut body = String::from("From: a@acme.test\r\nTo: b@example.com\r\nSubject: bench\r\n\r\n");
    while body.len() < 2048 {
        body.push_str(
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n",
        );
    }
    body.into_bytes()
}

fn pool_throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestSmtpServer::start(SmtpServerConfig {
        users: vec![("a@acme.test".into(), "pw".into())],
        ..SmtpServerConfig::default()
    }));
    let message = Arc::new(two_kb_message());
    let envelope = Envelope::new(
        Some("a@acme.test".parse::<Address>().unwrap()),
        vec!["b@example.com".parse().unwrap()],
    )
    .unwrap();
    let mut group = c.benchmark_group("smtp pool");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(MESSAGES as u64));
    for sessions in [1u32, 8] {
        let settings = Arc::new(SmtpSettings {
            host: Hostname::parse("localhost").unwrap(),
            port: server.port(),
            security: Security::StartTls,
            auth: SmtpAuth::Plain,
            username: Some("a@acme.test".into()),
            accept_invalid_certs: false,
            ca_pem: Some(server.ca_pem()),
            pinned_sha256: None,
            connect_timeout_secs: 5,
            command_timeout_secs: 10,
            pool_size: sessions,
        });
        let pool = Arc::new(SmtpPool::new(
            OutboundPolicy::parse("127.0.0.0/8,::1").unwrap(),
            Duration::from_secs(60),
        ));
        let secret = Arc::new(SecretString::from("pw"));
        let channel = ChannelId::generate();
        group.bench_function(format!("2 KB messages, {sessions} session(s)"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    runtime.block_on(async {
                        let workers: Vec<_> = (0..sessions)
                            .map(|_| {
                                let (pool, settings, secret, message, envelope) = (
                                    pool.clone(),
                                    settings.clone(),
                                    secret.clone(),
                                    message.clone(),
                                    envelope.clone(),
                                );
                                tokio::spawn(async move {
                                    let target = Target {
                                        channel,
                                        credential_version: 1,
                                        settings: &settings,
                                        credential: Some(&secret),
                                    };
                                    for _ in 0..MESSAGES / sessions as usize {
                                        pool.send(&target, &envelope, &message).await.unwrap();
                                    }
                                })
                            })
                            .collect();
                        for worker in workers {
                            worker.await.unwrap();
                        }
                    });
                    total += started.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pool_throughput);
criterion_main!(benches);
