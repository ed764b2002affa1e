//! The pages for people who use a keyboard, a screen reader or a phone: every control has a
//! label, every page one heading and a language, no page scrolls sideways at phone width, and
//! a channel can be tested with the keyboard alone.

use fantoccini::key::Key;

use crate::browser::harness::{Browser, skipped};
use crate::messages::world_with;

/// What a page lacks for assistive technology, found in the page itself: controls without a
/// label, the number of `h1`s, the document's language.
const AUDIT_SCRIPT: &str = r#"
const unlabelled = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
  .map(e => e.name || e.id || e.outerHTML.slice(0, 60));
const described = [...document.querySelectorAll('[aria-describedby]')]
  .flatMap(e => e.getAttribute('aria-describedby').split(' '))
  .filter(id => !document.getElementById(id));
return {
  unlabelled,
  dangling_descriptions: described,
  h1: document.querySelectorAll('h1').length,
  lang: document.documentElement.lang,
  fits: document.documentElement.scrollWidth <= window.innerWidth,
  width: document.documentElement.scrollWidth,
};
"#;

#[tokio::test]
async fn every_page_labels_its_controls_and_fits_a_phone() {
    if skipped("every_page_labels_its_controls_and_fits_a_phone") {
        return;
    }
    let w = world_with(&[]).await;
    let browser = Browser::open(&w.app.address).await;
    browser.resize(390, 844).await;
    browser.sign_in(&w.acme.admin_token).await;
    let channel = &w.channel;
    let pages = [
        "/ui/channels".to_owned(),
        "/ui/overview".to_owned(),
        "/ui/channels/new".to_owned(),
        "/ui/channels/new?preset=office365".to_owned(),
        "/ui/channels/new?preset=amazon_ses".to_owned(),
        format!("/ui/channels/{channel}"),
        format!("/ui/channels/{channel}/edit"),
        "/ui/route?from=rep%40acme.test".to_owned(),
        "/ui/messages".to_owned(),
        "/ui/audit".to_owned(),
        "/ui/settings".to_owned(),
        "/ui/people".to_owned(),
        format!("/ui/people/{}", w.rep.id),
    ];
    let mut problems = Vec::new();
    for page in &pages {
        browser.goto(page).await;
        browser.wait_for_text("Sign out").await;
        let found = browser.js(AUDIT_SCRIPT).await;
        if found["unlabelled"].as_array().is_none_or(|a| !a.is_empty()) {
            problems.push(format!(
                "{page}: controls without a label: {}",
                found["unlabelled"]
            ));
        }
        if found["dangling_descriptions"]
            .as_array()
            .is_none_or(|a| !a.is_empty())
        {
            problems.push(format!(
                "{page}: aria-describedby names missing ids: {}",
                found["dangling_descriptions"]
            ));
        }
        if found["h1"] != 1 {
            problems.push(format!("{page}: {} h1 headings", found["h1"]));
        }
        if found["lang"] != "en" {
            problems.push(format!("{page}: no document language"));
        }
        if found["fits"] != true {
            problems.push(format!(
                "{page}: {} px wide in a 390 px window",
                found["width"]
            ));
        }
    }
    browser.close().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn a_keyboard_alone_tests_a_channel() {
    if skipped("a_keyboard_alone_tests_a_channel") {
        return;
    }
    let w = world_with(&[]).await;
    let browser = Browser::open(&w.app.address).await;
    browser.sign_in(&w.rep.token).await;
    browser.goto(&format!("/ui/channels/{}", w.channel)).await;
    browser.wait_for_text("Test this channel").await;

    // Tab from the top of the page until "Test connection" has the focus, as a person would.
    let body = browser
        .client
        .find(fantoccini::Locator::Css("body"))
        .await
        .unwrap();
    body.click().await.unwrap();
    let mut reached = false;
    for _ in 0..60 {
        let active = browser.client.active_element().await.unwrap();
        if active.text().await.unwrap_or_default().trim() == "Test connection" {
            reached = true;
            break;
        }
        active.send_keys(&Key::Tab.to_string()).await.unwrap();
    }
    assert!(reached, "Tab never reached the Test connection button");
    let focus_visible = browser
        .js("return getComputedStyle(document.activeElement).outlineStyle !== 'none'")
        .await;
    assert_eq!(focus_visible, true, "the focused button shows its focus");
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    browser.wait_for_text("Connection and login work").await;
    browser.close().await;
}
