//! Flow 4: the password changed at the provider, mail is held; IT enters the new password on
//! the channel's page, it is verified, the held mail goes out, and the rep sees it sent.

use std::time::Duration;

use crate::browser::harness::{Browser, skipped};
use crate::messages::{REP, mail, send_id, world_with};

const NEW_PASSWORD: &str = "Canary-Rotated-In-Browser-5e3";
const SUBJECT: &str = "Quote for Ann";

#[tokio::test]
async fn it_replaces_a_refused_password_and_the_held_message_goes_out() {
    if skipped("it_replaces_a_refused_password_and_the_held_message_goes_out") {
        return;
    }
    let w = world_with(&[]).await;
    let it = w.app.create_user(&w.acme, "it@acme.test", "it", None).await;
    // IT changed the mailbox password at the provider; the rep's next message is refused
    // there, the channel needs the new password and the message waits.
    w.server.set_password(REP, NEW_PASSWORD);
    let id = send_id(&w, mail(SUBJECT)).await;
    w.app
        .wait_for_message(&w.rep.token, &id, "held", Duration::from_secs(20))
        .await;

    let browser = Browser::open(&w.app.address).await;
    browser.sign_in(&it.token).await;
    let row = browser
        .find("//tr[.//a[normalize-space()='My mailbox']]")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("Needs reauth"),
        "the list says what is wrong: {row}"
    );
    browser.follow("My mailbox").await;
    browser
        .wait_for_text("This channel's password was refused")
        .await;
    assert!(
        browser.heading_badge().await.starts_with("Needs reauth"),
        "{}",
        browser.text().await
    );
    browser.fill("New password or API key", NEW_PASSWORD).await;
    browser.screenshot("channel-rotate").await;
    browser.press("Verify and replace").await;

    browser
        .wait_for_text("The new password was verified and replaced the old one.")
        .await;
    browser
        .wait_for_text("mail held for it is on its way")
        .await;
    assert_eq!(browser.heading_badge().await, "Active");
    assert!(!browser.text().await.contains(NEW_PASSWORD));

    // The held message reaches the server, sent as the rep with the new password.
    let received = w.server.wait_for_messages(1, Duration::from_secs(20)).await;
    let data = String::from_utf8_lossy(&received[0].data);
    assert!(data.contains(&format!("Subject: {SUBJECT}")), "{data}");
    assert_eq!(received[0].authenticated_as.as_deref(), Some(REP));
    w.app
        .wait_for_message(&w.rep.token, &id, "sent", Duration::from_secs(20))
        .await;

    // The rep sees it sent among their messages, and why it waited.
    browser.sign_out().await;
    browser.sign_in(&w.rep.token).await;
    browser.follow("Messages").await;
    browser.wait_for_path("/ui/messages").await;
    let row = browser
        .find(&format!("//tr[.//a[normalize-space()='{SUBJECT}']]"))
        .await
        .text()
        .await
        .unwrap();
    assert!(row.contains("Sent") && row.contains("My mailbox"), "{row}");
    browser.screenshot("messages").await;
    browser.follow(SUBJECT).await;
    browser.wait_for_path(&format!("/ui/messages/{id}")).await;
    assert_eq!(browser.heading_badge().await, "Sent");
    let log = browser
        .find("//h2[@id='events']/following::table[1]")
        .await
        .text()
        .await
        .unwrap();
    for event in ["Held", "Released", "Sent"] {
        assert!(
            log.contains(event),
            "{event} missing in the event log:\n{log}"
        );
    }
    browser.screenshot("message").await;
    browser.close().await;
}
