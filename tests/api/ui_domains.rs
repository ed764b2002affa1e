//! The Domains page's DKIM part over HTTP: each claim lists its DKIM records (pending with
//! "publish this record", active, retiring until a date) with a copy button, an admin rotates
//! the key (after a confirmation that says the old key keeps signing) and names the relay's
//! selectors; IT sees the records and changes nothing; another tenant reaches nothing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dkim::claim_of;
use crate::helpers::{TestApp, expect_json, spawn_app};
use crate::ui_client::UiClient;

/// Publishes every record the claim lists (proof and DKIM) in the test's DNS.
async fn publish_all(app: &TestApp, claim: &Value) {
    let proof = &claim["verification"];
    app.dns
        .txt(
            proof["name"].as_str().unwrap(),
            proof["value"].as_str().unwrap(),
        )
        .await;
    for r in claim["dkim"].as_array().unwrap() {
        if r["state"] == "pending" {
            app.dns
                .long_txt(r["name"].as_str().unwrap(), r["value"].as_str().unwrap())
                .await;
        }
    }
}

#[tokio::test]
async fn the_domains_page_shows_dkim_records_rotates_keys_and_names_selectors() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let mut ui = UiClient::signed_in(&app, &acme.admin_token).await;
    ui.get("/ui/domains").await;
    let claimed = ui.post("/ui/domains", &[("domain", "acme.test")]).await;
    assert_eq!(claimed.status, StatusCode::SEE_OTHER, "{}", claimed.html);
    let claim = claim_of(&app, &acme.admin_token, "acme.test").await;
    let first = &claim["dkim"][0];
    let selector = first["selector"].as_str().unwrap();
    let value = first["value"].as_str().unwrap();
    // The DKIM record is there from the claim on, next to the proof, with a copy button.
    ui.follow(&claimed)
        .await
        .expect("publish its TXT record and its DKIM record")
        .expect("DKIM keys for acme.test")
        .expect(&format!("Selector {selector}"))
        .expect(&format!("{selector}._domainkey.acme.test"))
        .expect("Pending: publish this record")
        .expect(&format!("data-copy=\"{value}\""))
        .expect("data-copy=\"switchboard-domain-verification=")
        // Not verified yet: nothing to rotate.
        .expect_not("Rotate DKIM key");

    // Both records published, one check: verified, and the key signs.
    publish_all(&app, &claim).await;
    let id = claim["id"].as_str().unwrap();
    let checked = ui.post(&format!("/ui/domains/{id}/verify"), &[]).await;
    let page = ui.follow(&checked).await;
    page.expect("acme.test: verified")
        .expect("badge ok\">Active")
        .expect_not("Pending: publish this record")
        .expect(">Rotate DKIM key</button>")
        .expect("data-confirm=\"Make a new DKIM key? The current key keeps signing until the new key's record is published and found");

    // Rotate: a new pending key, the active one stays.
    let rotated = ui.post(&format!("/ui/domains/{id}/dkim/rotate"), &[]).await;
    assert_eq!(rotated.status, StatusCode::SEE_OTHER, "{}", rotated.html);
    let after = claim_of(&app, &acme.admin_token, "acme.test").await;
    let new = after["dkim"][0]["selector"].as_str().unwrap().to_owned();
    assert_ne!(new, selector);
    ui.follow(&rotated)
        .await
        .expect(&format!("New DKIM key {new} for acme.test"))
        .expect("the current key signs until then")
        .expect("Pending: publish this record")
        .expect("badge ok\">Active");
    // Its record found: the old key is retiring, with the date to keep it until.
    publish_all(&app, &after).await;
    ui.post(&format!("/ui/domains/{id}/verify"), &[]).await;
    ui.get("/ui/domains")
        .await
        .expect("badge off\">Retiring</span> until <time")
        .expect(&format!("Selector {selector}"));

    // The relay's selectors, as PATCH /v1/domains/{id} sets them.
    let saved = ui
        .post(
            &format!("/ui/domains/{id}/selectors"),
            &[("dkim_selectors", "s1, S2")],
        )
        .await;
    ui.follow(&saved)
        .await
        .expect("acme.test: DKIM selectors s1, s2 saved")
        .expect("value=\"s1, s2\"");
    let bad = ui
        .post(
            &format!("/ui/domains/{id}/selectors"),
            &[("dkim_selectors", "s1 no_good!")],
        )
        .await;
    ui.follow(&bad).await.expect("Selectors not saved");
    let view = claim_of(&app, &acme.admin_token, "acme.test").await;
    assert_eq!(view["dkim_selectors"], json!(["s1", "s2"]), "unchanged");

    // IT sees the records and may change none of it.
    let it = app.create_user(&acme, "it@acme.test", "it", None).await;
    let mut it_ui = UiClient::signed_in(&app, &it.token).await;
    it_ui
        .get("/ui/domains")
        .await
        .expect(&format!("Selector {new}"))
        .expect_not("Rotate DKIM key")
        .expect_not("name=\"dkim_selectors\"");
    for path in ["dkim/rotate", "selectors"] {
        let refused = it_ui
            .post(
                &format!("/ui/domains/{id}/{path}"),
                &[("dkim_selectors", "x")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
    }
    // Another tenant's admin: not found.
    let other = app.create_tenant("Other").await;
    let mut other_ui = UiClient::signed_in(&app, &other.admin_token).await;
    other_ui.get("/ui/domains").await;
    let probe = other_ui
        .post(&format!("/ui/domains/{id}/dkim/rotate"), &[])
        .await;
    assert_eq!(probe.status, StatusCode::NOT_FOUND);
    let unchanged = expect_json(
        app.get(&format!("/v1/domains/{id}"), &acme.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unchanged["dkim"], view["dkim"]);
}
