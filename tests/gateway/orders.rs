//! Vending orders over HTTP with a real broker, simulated lockers, PostgreSQL and Redis: the
//! charge, the items and the stock are one transaction, one door serves an order, a short item
//! fails the whole order, and a door that does not open gives the money and the stock back.

use serde_json::{Value, json};
use simulator::mqtt::Knob;
use sqlx::PgPool;
use uuid::Uuid;

use crate::accounts::operator;
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, on_storage, spawn_app, spawn_edge_app};
use crate::rentals::{funded, money};

/// A product made by an operator; returns its id.
pub async fn product(app: &TestApp, admin: &str, sku: &str, price: &str) -> Uuid {
    let made = app
        .http
        .post(app.url("/v1/products"))
        .bearer_auth(admin)
        .json(&json!({ "sku": sku, "name": format!("Product {sku}"), "price": price }))
        .send()
        .await
        .expect("sent");
    assert_eq!(made.status(), 201);
    let body: Value = made.json().await.expect("product");
    body["id"].as_str().expect("id").parse().expect("uuid")
}

/// Sets what a door holds.
pub async fn stock(app: &TestApp, admin: &str, device: &str, door: u16, items: Value) -> Value {
    let set = app
        .http
        .put(app.url(&format!("/v1/devices/{device}/doors/{door}/stock")))
        .bearer_auth(admin)
        .json(&json!({ "items": items }))
        .send()
        .await
        .expect("sent");
    assert_eq!(set.status(), 200);
    set.json().await.expect("stock")
}

pub async fn order(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url("/v1/orders"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

/// What a door holds of a product (-1: no line), on either storage.
pub async fn qty_on(
    storage: &locker_gateway::storage::Storage,
    device: &str,
    door: i32,
    product: Uuid,
) -> i32 {
    const QTY: &str = "SELECT coalesce((SELECT qty FROM door_stock
                          WHERE device_id = $1 AND door = $2 AND product_id = $3), -1)";
    on_storage!(storage, |pool| sqlx::query_scalar(QTY)
        .bind(device)
        .bind(door)
        .bind(product)
        .fetch_one(pool)
        .await
        .expect("stock"))
}

async fn events(storage: &locker_gateway::storage::Storage, kind: &str) -> i64 {
    const COUNT: &str = "SELECT count(*) FROM outbox WHERE event_type = $1";
    on_storage!(storage, |pool| sqlx::query_scalar(COUNT)
        .bind(kind)
        .fetch_one(pool)
        .await
        .expect("count"))
}

async fn availability(app: &TestApp, token: &str, device: &str) -> Value {
    let got = app
        .http
        .get(app.url(&format!("/v1/devices/{device}/availability")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(got.status(), 200);
    got.json().await.expect("availability")
}

crate::helpers::in_both_modes! {
    /// An order is paid, taken from one door's stock, and that door opens.
    async fn an_order_is_paid_taken_from_one_door_and_that_door_opens(backend: Backend) {
        let app = backend.spawn().await;
        let admin = operator(&app, "ops@example.com").await;
        let _locker = online_locker(&app, "vend-1").await;
        let cola = product(&app, &admin, "cola", "2.50").await;
        let chips = product(&app, &admin, "chips", "1.00").await;
        stock(
            &app,
            &admin,
            "vend-1",
            2,
            json!([{ "product_id": cola, "qty": 3 }, { "product_id": chips, "qty": 1 }]),
        )
        .await;
        stock(
            &app,
            &admin,
            "vend-1",
            3,
            json!([{ "product_id": cola, "qty": 10 }]),
        )
        .await;
        let (token, id) = funded(&app, "buyer@example.com", 1000).await;
        let before = availability(&app, &token, "vend-1").await;
        let offered = |a: &Value, sku: Uuid| {
            a["products"]
                .as_array()
                .and_then(|p| {
                    p.iter()
                        .find(|o| o["product_id"] == sku.to_string())
                        .cloned()
                })
                .unwrap_or(Value::Null)
        };
        assert_eq!(offered(&before, cola)["in_stock"], 13);
        assert_eq!(offered(&before, cola)["most_per_order"], 10);
        assert_eq!(offered(&before, cola)["price"], "2.50");
        // Two doors are stocked, so two of the four are free for rent.
        assert_eq!(before["doors_free"]["m"], 2);

        // Cola and chips together: only door 2 holds both.
        let placed = order(
            &app,
            &token,
            json!({ "device_id": "vend-1", "items": [
            { "product_id": cola, "qty": 2 }, { "product_id": chips, "qty": 1 } ] }),
        )
        .await;
        assert_eq!(placed.status(), 201);
        let body: Value = placed.json().await.expect("order");
        assert_eq!(body["state"], "completed");
        assert_eq!(body["door"], 2);
        assert_eq!(body["total"], "6.00");
        assert_eq!(body["items"].as_array().map(Vec::len), Some(2));
        assert_eq!(money(&app, id).await, (400, 0));
        assert_eq!(qty_on(&app.storage, "vend-1", 2, cola).await, 1);
        assert_eq!(qty_on(&app.storage, "vend-1", 2, chips).await, 0);
        assert_eq!(qty_on(&app.storage, "vend-1", 3, cola).await, 10);
        let door: (String, Option<String>, i32) = on_storage!(&app.storage, |pool| sqlx::query_as(
            "SELECT c.state, c.door_result, c.door FROM orders o
             JOIN commands c ON c.id = o.unlock_command",
        )
        .fetch_one(pool)
        .await
        .expect("unlock"));
        assert_eq!(door, ("executed".into(), Some("opened".into()), 2));
        for kind in ["order.created", "order.paid", "order.completed"] {
            assert_eq!(events(&app.storage, kind).await, 1, "{kind}");
        }
        // The customer finds it among their orders, by state.
        let mine = |query: &'static str| {
            let (http, url, token) = (
                app.http.clone(),
                app.url(&format!("/v1/orders{query}")),
                token.clone(),
            );
            async move {
                let page: Value = http
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("sent")
                    .json()
                    .await
                    .expect("page");
                page
            }
        };
        let completed = mine("?state=completed").await;
        assert_eq!(completed["items"][0]["id"], body["id"]);
        assert_eq!(
            completed["items"][0]["items"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            mine("?state=paid").await["items"].as_array().map(Vec::len),
            Some(0)
        );
        // The availability shown was invalidated by the order, not left to expire.
        let after = availability(&app, &token, "vend-1").await;
        assert_eq!(offered(&after, cola)["in_stock"], 11);
        assert_eq!(offered(&after, chips), Value::Null);

        // A price change later does not change what was paid.
        let changed = app
            .http
            .patch(app.url(&format!("/v1/products/{cola}")))
            .bearer_auth(&admin)
            .json(&json!({ "price": "9.99" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(changed.status(), 200);
        let path = format!("/v1/orders/{}", body["id"].as_str().expect("id"));
        let mine: Value = app
            .http
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("order");
        assert_eq!(mine["total"], "6.00");
        let snapshot = mine["items"]
            .as_array()
            .and_then(|i| {
                i.iter()
                    .find(|i| i["product_id"] == cola.to_string())
                    .cloned()
            })
            .expect("cola line");
        assert_eq!(snapshot["unit_price"], "2.50");
        let (other, _) = funded(&app, "other@example.com", 0).await;
        let theirs = app
            .http
            .get(app.url(&path))
            .bearer_auth(&other)
            .send()
            .await
            .expect("sent");
        problem(theirs, 404, "not_found").await;
    }
}

crate::helpers::in_both_modes! {
    /// An order that cannot be served whole writes nothing: no order, no stock taken, no money.
    async fn an_order_that_cannot_be_served_whole_writes_nothing(backend: Backend) {
        let app = backend.spawn().await;
        let admin = operator(&app, "ops@example.com").await;
        let _locker = online_locker(&app, "vend-1").await;
        let cola = product(&app, &admin, "cola", "2.50").await;
        let chips = product(&app, &admin, "chips", "1.00").await;
        let gum = product(&app, &admin, "gum", "0.50").await;
        stock(
            &app,
            &admin,
            "vend-1",
            1,
            json!([{ "product_id": cola, "qty": 3 }]),
        )
        .await;
        stock(
            &app,
            &admin,
            "vend-1",
            2,
            json!([{ "product_id": chips, "qty": 5 }]),
        )
        .await;
        let (token, id) = funded(&app, "buyer@example.com", 1000).await;
        let nothing_written = |storage: locker_gateway::storage::Storage| async move {
            let orders: i64 = on_storage!(&storage, |pool| sqlx::query_scalar("SELECT count(*) FROM orders")
                .fetch_one(pool)
                .await
                .expect("count"));
            assert_eq!(orders, 0);
            assert_eq!(qty_on(&storage, "vend-1", 1, cola).await, 3);
            assert_eq!(qty_on(&storage, "vend-1", 2, chips).await, 5);
        };

        // One item short: the whole order fails, the other item is not taken either.
        let short = order(
            &app,
            &token,
            json!({ "device_id": "vend-1", "items": [
            { "product_id": chips, "qty": 1 }, { "product_id": cola, "qty": 4 } ] }),
        )
        .await;
        let body = problem(short, 409, "out_of_stock").await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or("")
                .contains("Product cola"),
            "{body}"
        );
        // Each item is there, but in different doors: one order is served from one door.
        let spread = order(
            &app,
            &token,
            json!({ "device_id": "vend-1", "items": [
            { "product_id": chips, "qty": 1 }, { "product_id": cola, "qty": 1 } ] }),
        )
        .await;
        let body = problem(spread, 409, "out_of_stock").await;
        assert!(
            body["detail"].as_str().unwrap_or("").contains("single"),
            "{body}"
        );
        // Not stocked anywhere.
        let none = order(
            &app,
            &token,
            json!({ "device_id": "vend-1", "items": [
            { "product_id": gum, "qty": 1 } ] }),
        )
        .await;
        problem(none, 409, "out_of_stock").await;
        // Not orders at all.
        for items in [
            json!([]),
            json!([{ "product_id": cola, "qty": 0 }]),
            json!([{ "product_id": cola, "qty": 100 }]),
            json!([{ "product_id": cola, "qty": 1 }, { "product_id": cola, "qty": 1 }]),
        ] {
            let bad = order(
                &app,
                &token,
                json!({ "device_id": "vend-1", "items": items }),
            )
            .await;
            problem(bad, 422, "invalid_order").await;
        }
        let unknown = order(
            &app,
            &token,
            json!({ "device_id": "vend-1", "items": [
            { "product_id": Uuid::new_v4(), "qty": 1 } ] }),
        )
        .await;
        problem(unknown, 422, "unknown_product").await;
        let nowhere = order(
            &app,
            &token,
            json!({ "device_id": "vend-9", "items": [
            { "product_id": cola, "qty": 1 } ] }),
        )
        .await;
        problem(nowhere, 404, "not_found").await;
        // Not enough money: nothing taken from stock.
        let (poor, poor_id) = funded(&app, "poor@example.com", 100).await;
        let broke = order(
            &app,
            &poor,
            json!({ "device_id": "vend-1", "items": [
            { "product_id": cola, "qty": 1 } ] }),
        )
        .await;
        problem(broke, 402, "insufficient_funds").await;
        assert_eq!(money(&app, poor_id).await, (100, 0));
        // A withdrawn product is not sold.
        let withdrawn = app
            .http
            .patch(app.url(&format!("/v1/products/{cola}")))
            .bearer_auth(&admin)
            .json(&json!({ "active": false }))
            .send()
            .await
            .expect("sent");
        assert_eq!(withdrawn.status(), 200);
        let gone = order(
            &app,
            &token,
            json!({ "device_id": "vend-1", "items": [
            { "product_id": cola, "qty": 1 } ] }),
        )
        .await;
        problem(gone, 422, "product_withdrawn").await;
        nothing_written(app.storage.clone()).await;
        assert_eq!(money(&app, id).await, (1000, 0));
    }
}

#[sqlx::test]
async fn a_door_that_does_not_open_gives_money_and_stock_back(pool: PgPool) {
    a_door_that_does_not_open_gives_money_and_stock_back_in(spawn_app(pool).await).await;
}

#[tokio::test]
async fn in_edge_mode_a_door_that_does_not_open_gives_money_and_stock_back() {
    a_door_that_does_not_open_gives_money_and_stock_back_in(spawn_edge_app().await).await;
}

async fn a_door_that_does_not_open_gives_money_and_stock_back_in(app: TestApp) {
    let storage = app.storage.clone();
    let admin = operator(&app, "ops@example.com").await;
    let locker = online_locker(&app, "vend-1").await;
    let cola = product(&app, &admin, "cola", "2.50").await;
    stock(
        &app,
        &admin,
        "vend-1",
        1,
        json!([{ "product_id": cola, "qty": 2 }]),
    )
    .await;
    let (token, id) = funded(&app, "buyer@example.com", 1000).await;
    let buy = json!({ "device_id": "vend-1", "items": [{ "product_id": cola, "qty": 2 }] });

    locker.turn(Knob::Jam(1)).await;
    let jammed = order(&app, &token, buy.clone()).await;
    let body = problem(jammed, 409, "door_jammed").await;
    assert!(
        body["detail"].as_str().unwrap_or("").contains("refunded"),
        "{body}"
    );
    assert_eq!(money(&app, id).await, (1000, 0));
    assert_eq!(qty_on(&storage, "vend-1", 1, cola).await, 2);
    const ORDER: &str = "SELECT state, cancel_reason FROM orders";
    let (state, reason): (String, Option<String>) =
        on_storage!(&storage, |pool| sqlx::query_as(ORDER)
            .fetch_one(pool)
            .await
            .expect("order"));
    assert_eq!(
        (state.as_str(), reason.as_deref()),
        ("cancelled", Some("jammed"))
    );
    // The charge and the refund are both in the ledger, and the events say so.
    const KINDS: &str = "SELECT kind FROM ledger ORDER BY id";
    let kinds: Vec<String> = on_storage!(&storage, |pool| sqlx::query_scalar(KINDS)
        .fetch_all(pool)
        .await
        .expect("ledger"));
    assert_eq!(kinds, ["top_up", "charge", "refund"]);
    assert_eq!(events(&storage, "order.cancelled").await, 1);
    assert_eq!(events(&storage, "payment.refunded").await, 1);
    // The jammed door is suspect: its goods are not sold until someone looks.
    let again = order(&app, &token, buy.clone()).await;
    problem(again, 409, "out_of_stock").await;

    // An offline locker: refunded at once, stock back.
    const CLEAR: &str = "UPDATE doors SET suspect = false";
    on_storage!(&storage, |pool| sqlx::query(CLEAR)
        .execute(pool)
        .await
        .expect("cleared")
        .rows_affected());
    locker.turn(Knob::Drop).await;
    crate::helpers::eventually("offline", || async { !app.online("vend-1").await }).await;
    let offline = order(&app, &token, buy).await;
    problem(offline, 503, "device_offline").await;
    assert_eq!(money(&app, id).await, (1000, 0));
    assert_eq!(qty_on(&storage, "vend-1", 1, cola).await, 2);
    let paid: i64 = crate::rentals::scalar(
        &app,
        "SELECT count(*) FROM orders WHERE state <> 'cancelled'",
    )
    .await;
    assert_eq!(paid, 0);
}

#[sqlx::test]
async fn concurrent_buyers_never_get_more_than_the_door_holds(pool: PgPool) {
    concurrent_buyers_never_get_more_than_the_door_holds_in(spawn_app(pool).await).await;
}

#[tokio::test]
async fn in_edge_mode_concurrent_buyers_never_get_more_than_the_door_holds() {
    concurrent_buyers_never_get_more_than_the_door_holds_in(spawn_edge_app().await).await;
}

async fn concurrent_buyers_never_get_more_than_the_door_holds_in(app: TestApp) {
    let admin = operator(&app, "ops@example.com").await;
    // Buyers close the door 30 ms after it opens.
    let creds = app.provision("vend-1", 4).await;
    let _locker = app.locker_with(&creds, crate::helpers::TEST_HEARTBEAT, |config| {
        config.close_after = Some(std::time::Duration::from_millis(30));
    });
    crate::helpers::eventually("online", || app.online("vend-1")).await;
    let cola = product(&app, &admin, "cola", "2.00").await;
    stock(
        &app,
        &admin,
        "vend-1",
        1,
        json!([{ "product_id": cola, "qty": 3 }]),
    )
    .await;
    stock(
        &app,
        &admin,
        "vend-1",
        2,
        json!([{ "product_id": cola, "qty": 2 }]),
    )
    .await;
    let mut buyers = Vec::new();
    for i in 0..30 {
        buyers.push(funded(&app, &format!("b{i}@example.com"), 500).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (token, _) in &buyers {
        let (http, url, token) = (app.http.clone(), app.url("/v1/orders"), token.clone());
        let body = json!({ "device_id": "vend-1", "items": [{ "product_id": cola, "qty": 1 }] });
        tasks.spawn(async move {
            // A busy door is a "try again": a buyer tries a few times, as an app would.
            for _ in 0..20 {
                let r = http.post(&url).bearer_auth(&token).json(&body).send().await;
                let r = r.expect("sent");
                let status = r.status().as_u16();
                let body: Value = r.json().await.expect("body");
                if body["code"] != "door_busy" {
                    return (status, body["code"].as_str().map(str::to_owned));
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            (409, Some("door_busy".to_owned()))
        });
    }
    let mut sold = 0;
    let mut out = 0;
    while let Some(result) = tasks.join_next().await {
        match result.expect("task") {
            (201, _) => sold += 1,
            (409, Some(code)) if code == "out_of_stock" || code == "door_busy" => out += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((sold, out), (5, 25));
    assert_eq!(qty_on(&app.storage, "vend-1", 1, cola).await, 0);
    assert_eq!(qty_on(&app.storage, "vend-1", 2, cola).await, 0);
    let mut spent = 0;
    for (_, id) in &buyers {
        let (available, held) = money(&app, *id).await;
        assert_eq!(held, 0);
        spent += 500 - available;
    }
    assert_eq!(spent, 5 * 200, "five paid, nobody else charged");
}
