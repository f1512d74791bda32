//! What a door of a vending locker holds: set by operators only, never for a rented door or one
//! the locker lacks, and a stocked door is not rented out.

use serde_json::{Value, json};

use crate::accounts::operator;
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{in_both_modes, on_storage};
use crate::orders::{product, stock};
use crate::rentals::funded;

in_both_modes! {
    /// Stock is set by operators only, never for a rented door; every attempt is audited.
    async fn stock_is_for_operators_and_a_rented_door_keeps_its_content(backend: Backend) {
        let app = backend.spawn().await;
        crate::rentals::plan(&app).await;
        let admin = operator(&app, "ops@example.com").await;
        let _locker = online_locker(&app, "vend-1").await;
        let cola = product(&app, &admin, "cola", "2.00").await;
        let (token, _) = funded(&app, "renter@example.com", 5000).await;
        let rented =
            crate::rentals::rent(&app, &token, json!({ "device_id": "vend-1", "door": 4 })).await;
        assert_eq!(rented.status(), 201);
        let set = app
            .http
            .put(app.url("/v1/devices/vend-1/doors/4/stock"))
            .bearer_auth(&admin)
            .json(&json!({ "items": [{ "product_id": cola, "qty": 1 }] }))
            .send()
            .await
            .expect("sent");
        problem(set, 409, "door_rented").await;
        let by_customer = app
            .http
            .put(app.url("/v1/devices/vend-1/doors/1/stock"))
            .bearer_auth(&token)
            .json(&json!({ "items": [{ "product_id": cola, "qty": 1 }] }))
            .send()
            .await
            .expect("sent");
        problem(by_customer, 403, "forbidden").await;
        let no_door = app
            .http
            .put(app.url("/v1/devices/vend-1/doors/9/stock"))
            .bearer_auth(&admin)
            .json(&json!({ "items": [] }))
            .send()
            .await
            .expect("sent");
        problem(no_door, 422, "no_such_door").await;
        // A stocked door is not rented out.
        stock(
            &app,
            &admin,
            "vend-1",
            1,
            json!([{ "product_id": cola, "qty": 1 }]),
        )
        .await;
        let next =
            crate::rentals::rent(&app, &token, json!({ "device_id": "vend-1", "door": 1 })).await;
        problem(next, 409, "no_free_door").await;
        // Emptying a door: it is rentable again.
        stock(&app, &admin, "vend-1", 1, json!([])).await;
        let listed: Value = app
            .http
            .get(app.url("/v1/devices/vend-1/stock"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("stock");
        assert_eq!(listed, json!([]));
        let audited: i64 = on_storage!(&app.storage, |pool| sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'stock.set'"
        )
        .fetch_one(pool)
        .await
        .expect("count"));
        assert_eq!(audited, 4, "every attempt, refused ones too");
    }
}
