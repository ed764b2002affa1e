//! Flow 7: the channel list on a phone-sized window reads without scrolling sideways.

use crate::browser::harness::{Browser, skipped};
use crate::messages::world_with;

#[tokio::test]
async fn the_channel_list_fits_a_phone_screen() {
    if skipped("the_channel_list_fits_a_phone_screen") {
        return;
    }
    let w = world_with(&[]).await;
    let browser = Browser::open(&w.app.address).await;
    browser.resize(390, 844).await;
    browser.sign_in(&w.acme.admin_token).await;
    browser.wait_for_text("My mailbox").await;
    let width = browser.js("return window.innerWidth").await;
    assert_eq!(width, 390, "the window is phone-sized");
    let fits = browser
        .js("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    let scroll_width = browser
        .js("return document.documentElement.scrollWidth")
        .await;
    browser.screenshot("channels-phone").await;
    assert_eq!(
        fits, true,
        "the page scrolls sideways on a phone: {scroll_width} px wide in a 390 px window"
    );
    browser.close().await;
}
