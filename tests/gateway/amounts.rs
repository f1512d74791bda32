//! Amounts from outside: one strict grammar, bounds per amount and per balance, never a panic,
//! in both modes.

use serde_json::{Value, json};

use crate::accounts::{customer, me_id, operator};
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, in_both_modes};
use crate::rentals::{money, plan, rent};

async fn top_up(app: &TestApp, admin: &str, user: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/v1/wallets/{user}/top-ups")))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .expect("sent")
}

async fn available(app: &TestApp, token: &str) -> Value {
    let wallet: Value = app
        .http
        .get(app.url("/v1/wallet"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("wallet");
    wallet["available"].clone()
}

in_both_modes! {
    /// Each loose spelling the review found (and a few more) is a 422 `invalid_amount` naming the
    /// field, with nothing written; amounts above `LOCKER_MAX_AMOUNT` and balances above
    /// `LOCKER_MAX_BALANCE` are refused; the amount too large for minor units no longer panics.
    async fn loose_and_huge_amounts_are_refused_with_invalid_amount(backend: Backend) {
        let app = backend
            .spawn_with(|config| {
                config.currency.max_amount = 100_000; // 1000.00
                config.currency.max_balance = 150_000; // 1500.00
            })
            .await;
        let admin = operator(&app, "ops@example.com").await;
        let user = customer(&app, "c@example.com").await;
        let id = me_id(&app, &user).await;
        for bad in [
            json!("1e2"),
            json!("1_000"),
            json!("+5"),
            json!(".5"),
            json!("5."),
            json!("0001.00"),
            json!("1.000"),
            json!("1,00"),
            json!(" 5"),
            json!("92233720368547758.07"),
            json!("1000.01"),
            json!(5),
            json!(null),
        ] {
            let refused = top_up(&app, &admin, &id, json!({ "amount": bad })).await;
            let body = problem(refused, 422, "invalid_amount").await;
            assert_eq!(body["errors"][0]["field"], "amount", "{bad}: {body}");
        }
        assert_eq!(available(&app, &user).await, "0.00", "nothing was written");
        // At the bounds: the largest amount is taken, and then a balance above the largest is not.
        let done = top_up(&app, &admin, &id, json!({ "amount": "1000.00" })).await;
        assert_eq!(done.status(), 200);
        let over = top_up(&app, &admin, &id, json!({ "amount": "500.01" })).await;
        problem(over, 422, "balance_limit").await;
        let up_to = top_up(&app, &admin, &id, json!({ "amount": "500" })).await;
        assert_eq!(up_to.status(), 200);
        assert_eq!(available(&app, &user).await, "1500.00");
        // Every amount field of every body follows the same grammar.
        let mut plan = crate::plans::plan_body("m", "Medium");
        plan["deposit"] = json!("1e1");
        plan["cap_per_24h"] = json!("10.000");
        let refused = app
            .http
            .post(app.url("/v1/plans"))
            .bearer_auth(&admin)
            .json(&plan)
            .send()
            .await
            .expect("sent");
        let body = problem(refused, 422, "invalid_amount").await;
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert_eq!(fields, ["deposit", "cap_per_24h"], "{body}");
        let product = app
            .http
            .post(app.url("/v1/products"))
            .bearer_auth(&admin)
            .json(&json!({ "sku": "cola", "name": "Cola", "price": "2.5e0" }))
            .send()
            .await
            .expect("sent");
        problem(product, 422, "invalid_amount").await;
    }
}

in_both_modes! {
    /// A wallet at the largest balance rents a door and picks up: no arithmetic leaves what minor
    /// units hold, the books add up.
    async fn a_wallet_at_the_largest_balance_rents_and_picks_up(backend: Backend) {
        // 30000.00 at most: three top-ups of the largest amount reach it.
        let app = backend
            .spawn_with(|config| config.currency.max_balance = 3_000_000)
            .await;
        plan(&app).await;
        let _locker = online_locker(&app, "lk-1").await;
        let admin = operator(&app, "ops@example.com").await;
        let user = customer(&app, "rich@example.com").await;
        let id = me_id(&app, &user).await;
        let max = 3_000_000;
        for _ in 0..3 {
            let step = top_up(&app, &admin, &id, json!({ "amount": "10000.00" })).await;
            assert_eq!(step.status(), 200);
        }
        assert_eq!(available(&app, &user).await, "30000.00");
        let rental = rent(&app, &user, json!({ "device_id": "lk-1" })).await;
        assert_eq!(rental.status(), 201);
        let rental: Value = rental.json().await.expect("rental");
        let end = app
            .http
            .post(app.url(&format!("/v1/rentals/{}/end", rental["id"].as_str().expect("id"))))
            .bearer_auth(&user)
            .send()
            .await
            .expect("sent");
        assert_eq!(end.status(), 200);
        let ended: Value = end.json().await.expect("rental");
        assert_eq!(ended["state"], "ended");
        let (available, held) = money(&app, id.parse().expect("uuid")).await;
        assert_eq!((available, held), (max, 0), "a pickup within the free minutes costs nothing");
    }
}

in_both_modes! {
    /// The OpenAPI document states the grammar of the configured currency.
    async fn the_openapi_document_states_the_amount_pattern(backend: Backend) {
        let app = backend
            .spawn_with(|config| config.currency = locker_gateway::money::Currency::new("JPY", 0))
            .await;
        let doc = crate::contract::openapi(&app).await;
        let amount = &doc["components"]["schemas"]["Amount"];
        assert_eq!(amount["type"], "string");
        assert_eq!(amount["pattern"], r"^(0|[1-9][0-9]{0,11})$");
        assert_eq!(
            doc["components"]["schemas"]["TopUp"]["properties"]["amount"]["$ref"],
            "#/components/schemas/Amount"
        );
        // Every POST's Idempotency-Key header has a schema a tool can use.
        let mut posts = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let Some(post) = item.get("post") else { continue };
            posts += 1;
            let header = post["parameters"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["name"] == "Idempotency-Key"))
                .unwrap_or_else(|| panic!("{path}: no Idempotency-Key"));
            assert_eq!(header["schema"]["type"], "string", "{path}");
            assert_eq!(header["schema"]["maxLength"], 255, "{path}");
        }
        assert!(posts > 10);
        // Limits the server enforces on text are in the schema.
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["Registration"]["properties"]["password"]["maxLength"], 128);
        assert_eq!(schemas["MaintenanceUnlock"]["properties"]["reason"]["maxLength"], 200);
        assert_eq!(schemas["NewPlan"]["properties"]["name"]["maxLength"], 64);
        assert_eq!(schemas["NewProduct"]["properties"]["sku"]["pattern"], "^[A-Za-z0-9._-]{1,64}$");
    }
}
