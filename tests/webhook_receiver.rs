//! The test webhook receiver, driven by real clients; and the receiver-side recipes in
//! `docs/examples/`, held to the signatures Switchboard makes (with SWITCHBOARD_INTEROP=1,
//! which needs python3 and node).

#[path = "support/webhook_receiver.rs"]
mod webhook_receiver;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use switchboard::notify::signature::{self, SIGNATURE_HEADER};
use switchboard::notify::webhook_client::WebhookClient;
use switchboard::transport::outbound::OutboundPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;
use webhook_receiver::{WebhookReceiver, verify_with_recipe};

const WAIT: Duration = Duration::from_secs(5);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn records_method_path_lowercased_headers_and_the_raw_body() {
    let receiver = WebhookReceiver::start().await;
    let body = b"{\"event\":\"channel.needs_reauth\"}\xff\x00".to_vec();
    let response = reqwest::Client::new()
        .post(receiver.url("/hooks/a?b=c"))
        .header("Content-Type", "application/json")
        .header("Switchboard-Signature", "t=1,v1=ab")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let hooks = receiver.wait_for(1, WAIT).await;
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, "/hooks/a?b=c");
    assert_eq!(hook.body, body);
    assert_eq!(hook.header("switchboard-signature"), Some("t=1,v1=ab"));
    assert_eq!(hook.header("Content-Type"), Some("application/json"));
    assert!(
        hook.headers
            .iter()
            .any(|(n, v)| n == "switchboard-signature" && v == "t=1,v1=ab"),
        "names are stored lowercased: {:?}",
        hook.headers
    );
    assert_eq!(hook.header("x-missing"), None);
}

#[tokio::test]
async fn answers_the_configured_statuses_in_order_then_200() {
    let receiver = WebhookReceiver::start().await;
    receiver.set_responses(vec![500, 503, 410]);
    // One client: the requests share a kept-alive connection.
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = client
            .post(receiver.url(&format!("/{i}")))
            .body(format!("attempt {i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [500, 503, 410, 200, 200]);
    let hooks = receiver.requests();
    let paths: Vec<_> = hooks.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/0", "/1", "/2", "/3", "/4"]);
    assert_eq!(hooks[4].body_text(), "attempt 4");
    assert!(hooks.windows(2).all(|w| w[0].at <= w[1].at));
}

#[tokio::test]
async fn wait_for_gives_up_at_the_timeout_and_chunked_bodies_are_decoded() {
    let receiver = WebhookReceiver::start().await;
    assert!(
        receiver
            .wait_for(1, Duration::from_millis(100))
            .await
            .is_empty()
    );

    // A chunked body and `Connection: close`, written by hand.
    let waiting = receiver.wait_for(1, WAIT);
    let mut stream = tokio::net::TcpStream::connect(receiver.addr())
        .await
        .unwrap();
    stream
        .write_all(
            b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
              Connection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
        )
        .await
        .unwrap();
    let hooks = waiting.await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].body_text(), "hello world");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

/// What the notification worker does, end to end: sign, post with the webhook client, and
/// the receiver checks the signature with the reference `verify`.
async fn deliver_signed(
    receiver: &WebhookReceiver,
    secret: &SecretString,
    body: &[u8],
) -> webhook_receiver::ReceivedHook {
    let client = WebhookClient::new(OutboundPolicy::parse("127.0.0.0/8").unwrap()).unwrap();
    let header = signature::sign(secret, unix_now(), body);
    let url = Url::parse(&receiver.url("/switchboard")).unwrap();
    let response = client
        .post(
            &url,
            &[
                ("Content-Type", "application/json".to_owned()),
                (SIGNATURE_HEADER, header),
            ],
            body.to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    receiver.wait_for(1, WAIT).await.remove(0)
}

#[tokio::test]
async fn a_webhook_signed_and_posted_by_switchboard_verifies_at_the_receiver() {
    let receiver = WebhookReceiver::start().await;
    let secret = signature::generate_secret();
    let body = br#"{"type":"channel.needs_reauth","data":{"channel_id":"c1"}}"#;
    let hook = deliver_signed(&receiver, &secret, body).await;

    assert_eq!(hook.body, body);
    assert_eq!(hook.header("user-agent"), Some("Switchboard-Webhooks/1"));
    let header = hook.header("switchboard-signature").expect("signed");
    assert_eq!(
        signature::verify(&secret, header, &hook.body, unix_now()),
        Ok(())
    );
    let other = signature::generate_secret();
    assert!(signature::verify(&other, header, &hook.body, unix_now()).is_err());
}

#[tokio::test]
async fn the_recipes_accept_our_signatures_and_refuse_tampering_and_stale_timestamps() {
    if std::env::var("SWITCHBOARD_INTEROP").as_deref() != Ok("1") {
        eprintln!("recipes not run (SWITCHBOARD_INTEROP=1 runs them; they need python3 and node)");
        return;
    }
    let receiver = WebhookReceiver::start().await;
    let secret = signature::generate_secret();
    let body = "{\"type\":\"channel.needs_reauth\",\"note\":\"caf\u{e9} \u{1f4e7}\"}\n".as_bytes();
    let hook = deliver_signed(&receiver, &secret, body).await;
    let header = hook.header("switchboard-signature").unwrap().to_owned();
    let raw = secret.expose_secret();

    let now = unix_now();
    let old = signature::generate_secret();
    let tag = |s: &SecretString, t: i64| {
        let signed = signature::sign(s, t, body);
        signed.split_once(",v1=").unwrap().1.to_owned()
    };
    let rotating = format!("t={now},v1={},v1={}", tag(&old, now), tag(&secret, now));
    let stale = signature::sign(&secret, now - 301, body);
    let future = signature::sign(&secret, now + 3600, body);
    let mut tampered = hook.body.clone();
    tampered[2] ^= 0x20;

    for lang in ["python", "node"] {
        verify_with_recipe(lang, raw, &header, &hook.body)
            .unwrap_or_else(|e| panic!("{lang} refused a genuine webhook: {e}"));
        verify_with_recipe(lang, raw, &rotating, body)
            .unwrap_or_else(|e| panic!("{lang} refused a rotation header: {e}"));

        let refusals = [
            (
                "a tampered body",
                header.as_str(),
                &tampered[..],
                raw,
                "mismatch",
            ),
            ("a stale timestamp", &stale, body, raw, "timestamp"),
            ("a future timestamp", &future, body, raw, "timestamp"),
            (
                "another secret",
                &header,
                body,
                old.expose_secret(),
                "mismatch",
            ),
            ("a malformed header", "t=1,v1=xyz", body, raw, "malformed"),
        ];
        for (what, header, body, secret, reason) in refusals {
            let err = verify_with_recipe(lang, secret, header, body)
                .expect_err(&format!("{lang} accepted {what}"));
            assert!(err.contains(reason), "{lang}, {what}: {err}");
            assert!(err.contains("exit status: 1"), "{lang}, {what}: {err}");
        }
    }
}
