//! The console's forms in a real browser (see [`crate::browser_support`]): an admin cancels a
//! rental with a reason (after confirming), tops up a wallet and sees the ledger, subscribes a
//! webhook and is shown its secret once, watches the live tail as a locker is provisioned, and
//! uploads a signed firmware image from a file; no page scrolls sideways at 360 px.

use fantoccini::{Client, Locator};
use locker_gateway::account::Role;
use serde_json::json;
use sqlx::PgPool;

use crate::accounts::operator_as;
use crate::browser_support::{browser, find, scrolls_sideways, sign_in, until};
use crate::helpers::spawn_app_with;

/// The element's text, once it is on the page (found again if the page was replaced meanwhile).
async fn text_of(client: &Client, css: &str) -> String {
    for _ in 0..50 {
        if let Ok(text) = find(client, css).await.text().await {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{css} kept being replaced");
}

/// The element's text now; empty while it is missing or being replaced (a page reloading).
async fn text_now(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn type_into(client: &Client, css: &str, text: &str) {
    find(client, css)
        .await
        .send_keys(text)
        .await
        .expect("typed");
}

#[sqlx::test]
async fn an_admin_cancels_a_rental_tops_up_a_wallet_subscribes_a_webhook_and_tails_events(
    pool: PgPool,
) {
    let vendor = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let public = vendor.verifying_key().to_bytes();
    let app = spawn_app_with(pool, move |c| {
        c.firmware.keys = vec![locker_gateway::config::VendorKey {
            name: "acme".into(),
            key: public,
            retire_after: None,
        }];
    })
    .await;
    crate::rentals::plan(&app).await;
    operator_as(&app, "ops@example.com", Role::Admin).await;
    let _locker = crate::command_helpers::online_locker(&app, "lk-1").await;
    let (renter, renter_id) = crate::rentals::funded(&app, "renter@example.com", 5000).await;
    let rented =
        crate::rentals::rent(&app, &renter, json!({ "device_id": "lk-1", "door": 1 })).await;
    assert_eq!(rented.status(), 201);
    let client = browser().await;
    sign_in(&client, &app, "ops@example.com").await;

    // A rental cancelled with a reason, after the confirmation.
    client
        .goto(&app.url("/console/rentals?user=renter%40example.com"))
        .await
        .expect("goto");
    let form = "form[data-api$=\"/cancel\"]";
    type_into(
        &client,
        &format!("{form} input[name=reason]"),
        "door stuck, customer helped",
    )
    .await;
    find(&client, &format!("{form} button"))
        .await
        .click()
        .await
        .expect("clicked");
    client.accept_alert().await.expect("confirmed");
    until("the rental is cancelled", || async {
        text_now(&client, "#rentals td.state").await == "cancelled"
    })
    .await;

    // A top-up with a reason: the balance and the ledger show it.
    client
        .goto(&app.url(&format!("/console/users/{renter_id}")))
        .await
        .expect("goto");
    assert!(
        text_of(&client, "#balance")
            .await
            .starts_with("Available 50.00")
    );
    type_into(&client, "input[name=amount]", "12.50").await;
    type_into(&client, "input[name=reference]", "receipt 4711").await;
    find(&client, "form.act button")
        .await
        .click()
        .await
        .expect("clicked");
    client.accept_alert().await.expect("confirmed");
    until("the balance grows", || async {
        text_of(&client, "#balance")
            .await
            .starts_with("Available 62.50")
    })
    .await;
    assert!(text_of(&client, "#ledger").await.contains("receipt 4711"));
    client.set_window_size(360, 800).await.expect("resized");
    assert!(
        !scrolls_sideways(&client).await,
        "a user's page scrolls sideways at 360 px"
    );
    client.set_window_size(1280, 900).await.expect("resized");

    // A webhook: the secret is shown once, the endpoint listed.
    client
        .goto(&app.url("/console/webhooks"))
        .await
        .expect("goto");
    type_into(
        &client,
        "input[name=url]",
        "https://hooks.example.com/lockers",
    )
    .await;
    find(&client, "form.act[data-api=\"/v1/webhooks\"] button")
        .await
        .click()
        .await
        .expect("clicked");
    until("the secret is shown", || async {
        text_now(&client, "form.act[data-api=\"/v1/webhooks\"] [data-result]")
            .await
            .contains("whsec_")
    })
    .await;
    client.refresh().await.expect("reloaded");
    assert!(
        text_of(&client, "#webhooks")
            .await
            .contains("https://hooks.example.com/lockers")
    );
    assert!(
        !client.source().await.expect("html").contains("whsec_"),
        "shown once"
    );

    // The live tail: a locker provisioned now appears without a reload.
    client
        .goto(&app.url("/console/events?types=device.*"))
        .await
        .expect("goto");
    find(&client, "main[data-live=yes]").await;
    app.provision("lk-new", 2).await;
    until("the new locker's event", || async {
        text_now(&client, "#tail").await.contains("lk-new")
    })
    .await;
    assert!(!text_of(&client, "#tail").await.contains("rental.cancelled"));

    // A firmware image uploaded from a file, with its signature.
    let image: Vec<u8> = (0..8192u32).map(|i| (i % 241) as u8).collect();
    let dir = crate::helpers::tempfile_dir::Dir::new();
    let file = dir.path().join("fw-4.0.0.bin");
    std::fs::write(&file, &image).expect("written");
    let hash: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        &image,
    ))
    .into();
    let manifest = firmware_protocol::image::manifest("4.0.0", 8192, &hash).expect("manifest");
    let signature = hex::encode(ed25519_dalek::Signer::sign(&vendor, &manifest).to_bytes());
    client
        .goto(&app.url("/console/firmware"))
        .await
        .expect("goto");
    type_into(
        &client,
        "#upload input[name=file]",
        &file.display().to_string(),
    )
    .await;
    type_into(&client, "#upload input[name=version]", "4.0.0").await;
    type_into(&client, "#upload input[name=models]", "lk-4").await;
    type_into(&client, "#upload input[name=signature]", &signature).await;
    find(&client, "#upload button")
        .await
        .click()
        .await
        .expect("clicked");
    until("the image is listed", || async {
        text_now(&client, "#images")
            .await
            .contains(&hex::encode(hash))
    })
    .await;
    // A campaign of it, from the form: no locker here announced update support, and the page
    // says so (the form's waves and target reached the API as the API wants them).
    client.refresh().await.expect("reloaded");
    type_into(&client, "#campaign input[name=name]", "4.0.0 north").await;
    type_into(&client, "#campaign input[name=waves]", "1,50%,100%").await;
    type_into(&client, "#campaign input[name=id_prefix]", "north-").await;
    find(&client, "#campaign button")
        .await
        .click()
        .await
        .expect("clicked");
    until("the campaign is refused: no lockers", || async {
        text_now(&client, "#campaign [data-result]")
            .await
            .contains("no locker matches")
    })
    .await;

    // A technician's phone: no page scrolls sideways at 360 px.
    client.set_window_size(360, 800).await.expect("resized");
    let user_page = format!("/console/users/{renter_id}");
    for path in [
        "/console",
        "/console/lockers",
        "/console/lockers/lk-1",
        "/console/alarms",
        "/console/rentals",
        "/console/orders",
        "/console/users?q=renter",
        user_page.as_str(),
        "/console/catalog?locker=lk-1",
        "/console/webhooks",
        "/console/firmware",
        "/console/events",
        "/console/gateways",
        "/console/commands",
        "/console/import",
        "/console/audit",
    ] {
        client.goto(&app.url(path)).await.expect("goto");
        find(&client, "main h1").await;
        assert!(
            !scrolls_sideways(&client).await,
            "{path} scrolls sideways at 360 px"
        );
    }
    client.close().await.expect("closed");
}
