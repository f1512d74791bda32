//! Commands to a selection of lockers from the console's lockers list, in a real browser (see
//! [`crate::browser_support`]): five lockers selected, one of them offline, one unlock sent, five
//! results shown, the offline one named; the page does not scroll sideways at 360 px.

use std::time::Duration;

use fantoccini::Locator;
use locker_gateway::account::Role;
use sqlx::PgPool;

use crate::accounts::operator_as;
use crate::browser_support::{browser, find, scrolls_sideways, sign_in, until};
use crate::helpers::{eventually, spawn_app};

#[sqlx::test]
async fn a_bulk_unlock_to_five_lockers_with_one_offline_shows_five_results(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut lockers = Vec::new();
    for n in 1..=5 {
        let creds = app.provision(&format!("bulk-{n}"), 4).await;
        // bulk-5 never connects.
        if n < 5 {
            lockers.push(app.locker(&creds, Duration::from_millis(300)));
        }
    }
    app.provision("other-1", 4).await;
    for n in 1..=4 {
        eventually("online", || async {
            app.online(&format!("bulk-{n}")).await
        })
        .await;
    }
    operator_as(&app, "tech@example.com", Role::Technician).await;
    let client = browser().await;
    sign_in(&client, &app, "tech@example.com").await;
    client
        .goto(&app.url("/console/lockers?q=bulk"))
        .await
        .expect("goto");
    find(&client, "#select-all")
        .await
        .click()
        .await
        .expect("all");
    assert_eq!(
        find(&client, "#picked").await.text().await.expect("text"),
        "5 selected"
    );
    find(&client, "#bulk input[name=door]")
        .await
        .clear()
        .await
        .expect("cleared");
    find(&client, "#bulk input[name=door]")
        .await
        .send_keys("2")
        .await
        .expect("typed");
    find(&client, "#bulk input[name=reason]")
        .await
        .send_keys("weekly check")
        .await
        .expect("typed");
    find(&client, "#bulk button[type=submit]")
        .await
        .click()
        .await
        .expect("sent");
    until("five results", || async {
        client
            .find_all(Locator::Css("#bulk-results tr"))
            .await
            .map(|rows| rows.len())
            .unwrap_or(0)
            == 5
    })
    .await;
    let mut results = Vec::new();
    for row in client
        .find_all(Locator::Css("#bulk-results tr"))
        .await
        .expect("rows")
    {
        results.push(row.text().await.expect("text"));
    }
    for n in 1..=4 {
        let line = results
            .iter()
            .find(|r| r.starts_with(&format!("bulk-{n} ")))
            .unwrap_or_else(|| panic!("bulk-{n} in {results:?}"));
        assert!(
            line.contains("done") && !line.contains("not done"),
            "{line}"
        );
        assert!(line.contains("opened"), "{line}");
    }
    let offline = results
        .iter()
        .find(|r| r.starts_with("bulk-5 "))
        .expect("bulk-5");
    assert!(
        offline.contains("not done") && offline.contains("device_offline"),
        "{offline}"
    );
    assert_eq!(
        find(&client, "#bulk-status")
            .await
            .text()
            .await
            .expect("text"),
        "4 done, 1 not done."
    );
    // Each opened door is a command of its locker's, with the reason the page sent.
    let admin = crate::accounts::operator(&app, "ops@example.com").await;
    let commands = app.get_json("/v1/devices/bulk-3/commands", &admin).await;
    assert_eq!(commands["items"][0]["door"], 2);
    assert_eq!(commands["items"][0]["reason"], "weekly check");
    // A technician's phone: the list with its forms does not scroll sideways.
    client.set_window_size(360, 800).await.expect("resized");
    client.refresh().await.expect("reloaded");
    find(&client, "#bulk").await;
    assert!(
        !scrolls_sideways(&client).await,
        "the lockers list scrolls sideways at 360 px"
    );
    client.close().await.expect("closed");
    drop(lockers);
}
