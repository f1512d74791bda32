//! A door outside the locker's doors, or a size class none of its doors has, is a 422 before
//! anything is stored or sent: rentals, maintenance unlocks, queued commands, stock.

use serde_json::{Value, json};

use crate::accounts::operator;
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, in_both_modes};
use crate::rentals::{funded, money, plan, rent, scalar};

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

in_both_modes! {
    /// Door 99, door 0, door 513 and size `xxl` of a four-door locker of size `m`.
    async fn doors_and_sizes_the_locker_lacks_are_refused_before_anything_happens(backend: Backend) {
        let app = backend.spawn().await;
        plan(&app).await;
        let _locker = online_locker(&app, "lk-1").await;
        let admin = operator(&app, "ops@example.com").await;
        let (token, user) = funded(&app, "r@example.com", 5000).await;
        for body in [json!({ "device_id": "lk-1", "door": 99 }), json!({ "device_id": "lk-1", "door": 5 })] {
            let refused = rent(&app, &token, body).await;
            let problem = problem(refused, 422, "no_such_door").await;
            assert!(problem["detail"].is_string());
        }
        problem(
            rent(&app, &token, json!({ "device_id": "lk-1", "size": "xxl" })).await,
            422,
            "no_such_size",
        )
        .await;
        let rentals: i64 = scalar(&app, "SELECT count(*) FROM rentals").await;
        assert_eq!(rentals, 0, "no rental was stored");
        assert_eq!(money(&app, user).await, (5000, 0), "nothing was held");
        for door in [5, 0, 513, 60000] {
            let path = format!("/v1/devices/lk-1/doors/{door}/unlock");
            let refused = post(&app, &admin, &path, json!({ "reason": "check" })).await;
            problem(refused, 422, "no_such_door").await;
        }
        let commands: i64 = scalar(&app, "SELECT count(*) FROM commands").await;
        assert_eq!(commands, 0, "no command was stored or sent");
        // What the CLI's `command unlock --door 9` calls.
        let queued = locker_gateway::command::queue::enqueue(
            &app.storage,
            &crate::helpers::device("lk-1"),
            &locker_gateway::command::Command::Unlock { door: 9 },
            std::time::Duration::from_secs(60),
        )
        .await
        .expect_err("door 9 of four");
        assert_eq!(queued.to_string(), "the locker has no door 9: its doors are 1 to 4");
        let commands: i64 = scalar(&app, "SELECT count(*) FROM commands").await;
        assert_eq!(commands, 0, "nothing queued");
        // Stock of a door the locker lacks; of a locker that does not exist.
        let stock = |path: &'static str| {
            app.http
                .put(app.url(path))
                .bearer_auth(&admin)
                .json(&json!({ "items": [] }))
                .send()
        };
        problem(
            stock("/v1/devices/lk-1/doors/9/stock").await.expect("sent"),
            422,
            "no_such_door",
        )
        .await;
        problem(
            stock("/v1/devices/nope/doors/1/stock").await.expect("sent"),
            404,
            "not_found",
        )
        .await;
        // The doors it has still work.
        let rented = rent(&app, &token, json!({ "device_id": "lk-1", "door": 4 })).await;
        assert_eq!(rented.status(), 201);
    }
}
