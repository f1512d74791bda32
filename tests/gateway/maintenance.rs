//! A maintenance unlock leaves its mark on the door as a sale's unlock does: a door that did not
//! open is suspect, and after `LOCKER_JAMS_OUT_OF_SERVICE` jams in a row out of service, whether
//! the unlock came one by one or in bulk; a door that opens ends its run; on both backends.

use std::time::Duration;

use locker_gateway::command::Command;
use serde_json::{Value, json};
use simulator::mqtt::Knob;

use crate::accounts::operator;
use crate::helpers::{TestApp, device, eventually, in_both_modes};

async fn door(app: &TestApp, token: &str, n: usize) -> Value {
    app.get_json("/v1/devices/lk-1", token).await["doors"][n - 1].clone()
}

in_both_modes! {
async fn a_jammed_maintenance_unlock_marks_the_door_and_repeated_jams_take_it_out_of_service(backend: Backend) {
    let app = backend.spawn_with(|c| c.rentals.jams_out_of_service = 2).await;
    let admin = operator(&app, "ops@example.com").await;
    let creds = app.provision("lk-1", 4).await;
    let locker = app.locker(&creds, Duration::from_secs(3600));
    eventually("online", || async { app.online("lk-1").await }).await;
    // A short open window, so a door that does not open is known jammed soon.
    let window = Command::configure(60, 1000, 300, 0).expect("in range");
    app.app.commands().send(device("lk-1"), window).await.expect("configured");
    locker.turn(Knob::Jam(3)).await;
    let unlock = |door: u16| {
        let path = format!("/v1/devices/lk-1/doors/{door}/unlock");
        let admin = admin.clone();
        let app = &app;
        async move {
            app.json(reqwest::Method::POST, &path, &admin, Some(&json!({ "reason": "inspection" }))).await
        }
    };
    let (status, answer) = unlock(3).await;
    assert_eq!((status, answer["door"].as_str()), (200, Some("jammed")), "{answer}");
    let jammed = door(&app, &admin, 3).await;
    assert_eq!((jammed["suspect"].as_bool(), jammed["out_of_service"].as_bool()), (Some(true), Some(false)));
    // The second jam in a row, from a bulk unlock: out of service.
    let (status, answer) = app
        .json(
            reqwest::Method::POST,
            "/v1/bulk/unlock",
            &admin,
            Some(&json!({ "devices": ["lk-1"], "door": 3, "reason": "second look" })),
        )
        .await;
    assert_eq!((status, answer["results"][0]["door"].as_str()), (200, Some("jammed")), "{answer}");
    assert_eq!(door(&app, &admin, 3).await["out_of_service"], true);
    // A door that opens carries no mark.
    let (status, answer) = unlock(2).await;
    assert_eq!((status, answer["door"].as_str()), (200, Some("opened")));
    let opened = door(&app, &admin, 2).await;
    assert_eq!((opened["suspect"].as_bool(), opened["out_of_service"].as_bool()), (Some(false), Some(false)));
}
}
