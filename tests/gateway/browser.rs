//! The operator console in a real browser (see [`crate::browser_support`]): signing in and out,
//! the overview, a locker found by a fragment and its doors live, alarms, a CSV import. The test
//! command installs the browser when it is missing; without it these tests fail with one line
//! saying so, never skip.

use std::time::Duration;

use fantoccini::Locator;
use locker_gateway::account::Role;
use sqlx::PgPool;

use crate::accounts::operator_as;
use crate::browser_support::{
    browser, door_class, find, screenshot, scrolls_sideways, sign_in, until,
};
use crate::helpers::spawn_app;

#[sqlx::test]
async fn an_operator_signs_in_sees_the_overview_at_360_px_and_signs_out(pool: PgPool) {
    let app = spawn_app(pool).await;
    operator_as(&app, "ops@example.com", Role::Support).await;
    let client = browser().await;
    sign_in(&client, &app, "ops@example.com").await;
    let text = find(&client, "main").await.text().await.expect("text");
    assert!(
        text.contains("Fleet overview") && text.contains("lockers online"),
        "{text}"
    );
    let bar = find(&client, "header.bar")
        .await
        .text()
        .await
        .expect("text");
    assert!(
        bar.contains("ops@example.com") && bar.contains("support"),
        "{bar}"
    );
    // A technician's phone in front of a cabinet: nothing scrolls sideways.
    client.set_window_size(360, 800).await.expect("resized");
    assert!(
        !scrolls_sideways(&client).await,
        "the overview scrolls sideways at 360 px"
    );
    client.goto(&app.url("/console/login")).await.expect("goto");
    client.goto(&app.url("/console")).await.expect("goto");
    find(&client, "header.bar button")
        .await
        .click()
        .await
        .expect("signed out");
    find(&client, "input[name=email]").await;
    assert!(
        !scrolls_sideways(&client).await,
        "the sign-in page scrolls sideways at 360 px"
    );
    // Signed out: the console sends the browser back to sign in.
    client.goto(&app.url("/console")).await.expect("goto");
    find(&client, "input[name=password]").await;
    client.close().await.expect("closed");
}

#[sqlx::test]
async fn a_locker_found_by_a_fragment_shows_its_doors_live_and_opens_one_for_maintenance(
    pool: PgPool,
) {
    use simulator::mqtt::Knob;
    let app = spawn_app(pool).await;
    let creds = app.provision("cab-west-07", 4).await;
    app.provision("cab-east-01", 4).await;
    operator_as(&app, "tech@example.com", Role::Technician).await;
    let locker = app.locker(&creds, Duration::from_millis(300));
    crate::helpers::eventually("online", || async { app.online("cab-west-07").await }).await;
    let client = browser().await;
    sign_in(&client, &app, "tech@example.com").await;
    client
        .goto(&app.url("/console/lockers"))
        .await
        .expect("goto");
    find(&client, "input[name=q]")
        .await
        .send_keys("west")
        .await
        .expect("typed");
    find(&client, "form.filters button")
        .await
        .click()
        .await
        .expect("searched");
    until("one result", || async {
        client
            .find_all(Locator::Css("tbody tr"))
            .await
            .map(|r| r.len())
            .unwrap_or(0)
            == 1
    })
    .await;
    find(&client, "tbody a")
        .await
        .click()
        .await
        .expect("opened the locker");
    find(&client, "main[data-live=yes]").await;
    assert!(door_class(&client, 2).await.contains("closed"));
    // The simulator's door 2 is forced open: the grid shows it without a reload.
    locker.turn(Knob::ForceOpen(2)).await;
    until("door 2 open on the page", || async {
        door_class(&client, 2).await.contains("open")
    })
    .await;
    // A maintenance unlock of door 3, with a reason.
    find(&client, "#reason")
        .await
        .send_keys("replacing the hinge")
        .await
        .expect("typed");
    find(&client, "button.unlock[data-door=\"3\"]")
        .await
        .click()
        .await
        .expect("clicked");
    until("the unlock's answer", || async {
        find(&client, "#result")
            .await
            .text()
            .await
            .is_ok_and(|t| t.contains("Door 3: opened"))
    })
    .await;
    until("door 3 open on the page", || async {
        door_class(&client, 3).await.contains("open")
    })
    .await;
    // Door 4 is marked suspect and out of service (as a rental whose unlock jammed leaves it):
    // shown live; a technician looks and puts it back in service.
    sqlx::query("UPDATE doors SET suspect = true, out_of_service = true WHERE door = 4")
        .execute(&app.pool)
        .await
        .expect("marked");
    let marks = || async {
        find(&client, "li.door[data-door=\"4\"] .marks")
            .await
            .text()
            .await
            .unwrap_or_default()
    };
    until("door 4 suspect on the page", || async {
        marks().await.contains("suspect")
    })
    .await;
    let reason = find(&client, "#reason").await;
    reason.clear().await.expect("cleared");
    reason
        .send_keys("bolt freed and oiled")
        .await
        .expect("typed");
    find(&client, "button.service[data-door=\"4\"]")
        .await
        .click()
        .await
        .expect("clicked");
    until("door 4 back in service", || async {
        marks().await.is_empty()
    })
    .await;
    // The unlock is among the locker's commands, with its reason and state.
    client.refresh().await.expect("reloaded");
    find(&client, "main[data-live=yes]").await;
    screenshot(&client, "console-locker.png").await;
    let commands = find(&client, "#commands").await.text().await.expect("text");
    assert!(
        commands.contains("replacing the hinge")
            && commands.contains("executed")
            && commands.contains("opened"),
        "{commands}"
    );
    client.set_window_size(360, 800).await.expect("resized");
    assert!(
        !scrolls_sideways(&client).await,
        "the locker page scrolls sideways at 360 px"
    );
    let unlocks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'door.unlock' AND outcome = 'ok'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(unlocks, 1);
    let serviced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'door.service' AND outcome = 'ok'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(serviced, 1);
    // The operator sees it in the audit log's page too.
    client.set_window_size(1280, 900).await.expect("resized");
    client
        .goto(&app.url("/console/audit?action=door.unlock"))
        .await
        .expect("goto");
    let entries = find(&client, "#entries").await.text().await.expect("text");
    assert!(
        entries.contains("tech@example.com")
            && entries.contains("cab-west-07")
            && entries.contains("replacing the hinge"),
        "{entries}"
    );
    client.close().await.expect("closed");
}

#[sqlx::test]
async fn an_alarm_raised_by_the_simulator_is_acknowledged_and_resolved_on_the_page(pool: PgPool) {
    use simulator::mqtt::Knob;
    let app = spawn_app(pool).await;
    let creds = app.provision("cab-alarm", 4).await;
    operator_as(&app, "tech@example.com", Role::Technician).await;
    let locker = app.locker(&creds, Duration::from_millis(300));
    crate::helpers::eventually("online", || async { app.online("cab-alarm").await }).await;
    locker.turn(Knob::ForceOpen(1)).await;
    let client = browser().await;
    sign_in(&client, &app, "tech@example.com").await;
    // From the overview's critical count to the list.
    until("the critical alarm counted", || async {
        client.refresh().await.is_ok()
            && find(&client, "a.card.critical .n")
                .await
                .text()
                .await
                .is_ok_and(|t| t == "1")
    })
    .await;
    screenshot(&client, "console-overview.png").await;
    find(&client, "a.card.critical")
        .await
        .click()
        .await
        .expect("to the alarms");
    let row = "tbody#alarms tr.critical";
    let state = || async {
        find(&client, &format!("{row} td.state"))
            .await
            .text()
            .await
            .unwrap_or_default()
    };
    assert_eq!(state().await, "open");
    find(&client, &format!("{row} button[data-act=acknowledge]"))
        .await
        .click()
        .await
        .expect("acknowledged");
    until("acknowledged", || async { state().await == "acknowledged" }).await;
    find(&client, "#resolution")
        .await
        .send_keys("door re-hung")
        .await
        .expect("typed");
    find(&client, &format!("{row} button[data-act=resolve]"))
        .await
        .click()
        .await
        .expect("resolved");
    until("resolved", || async { state().await == "resolved" }).await;
    let (state, by): (String, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT state, acknowledged_by FROM alarms")
            .fetch_one(&app.pool)
            .await
            .expect("alarm");
    assert_eq!(state, "resolved");
    assert!(by.is_some(), "who acknowledged it is kept");
    client.set_window_size(360, 800).await.expect("resized");
    // The table scrolls inside its box; the page itself does not.
    assert!(
        !scrolls_sideways(&client).await,
        "the alarms page scrolls sideways at 360 px"
    );
    client.close().await.expect("closed");
}

#[sqlx::test]
async fn a_csv_of_a_hundred_lockers_is_uploaded_and_some_of_them_connect(pool: PgPool) {
    let app = spawn_app(pool).await;
    operator_as(&app, "support@example.com", Role::Support).await;
    let dir = std::env::temp_dir().join(format!("console-import-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("lockers.csv");
    let mut csv = String::from("id,doors,model,size_classes\n");
    for i in 1..=100 {
        csv.push_str(&format!("site-{i:03},4,lx-4,m\n"));
    }
    std::fs::write(&file, csv).expect("written");
    let client = browser().await;
    sign_in(&client, &app, "support@example.com").await;
    client
        .goto(&app.url("/console/import"))
        .await
        .expect("goto");
    find(&client, "#file")
        .await
        .send_keys(&file.display().to_string())
        .await
        .expect("chosen");
    find(&client, "#import button")
        .await
        .click()
        .await
        .expect("sent");
    until("the upload's answer", || async {
        find(&client, "#result")
            .await
            .text()
            .await
            .is_ok_and(|t| t.starts_with("100 lockers provisioned"))
    })
    .await;
    assert!(
        find(&client, "#download")
            .await
            .attr("href")
            .await
            .expect("attr")
            .is_some_and(|h| h.starts_with("blob:"))
    );
    let credentials = find(&client, "#credentials")
        .await
        .prop("value")
        .await
        .expect("prop")
        .unwrap_or_default();
    let lines: Vec<serde_json::Value> = credentials
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 100);
    // Three of them connect with the credentials the page gave.
    let mut lockers = Vec::new();
    for line in &lines[..3] {
        let creds = locker_gateway::device::Provisioned {
            device_id: crate::helpers::device(line["device_id"].as_str().expect("id")),
            secret: firmware_protocol::DeviceSecret::from_hex(
                line["secret"].as_str().expect("secret"),
            )
            .expect("a secret"),
        };
        lockers.push(app.locker(&creds, Duration::from_millis(300)));
    }
    for line in &lines[..3] {
        let id = line["device_id"].as_str().expect("id").to_owned();
        crate::helpers::eventually("online", || async { app.online(&id).await }).await;
    }
    client
        .goto(&app.url("/console/lockers?online=true"))
        .await
        .expect("goto");
    until("three online on the list", || async {
        client
            .find_all(Locator::Css("tbody tr"))
            .await
            .map(|r| r.len())
            .unwrap_or(0)
            == 3
    })
    .await;
    client.close().await.expect("closed");
    let _ = std::fs::remove_dir_all(&dir);
}
