//! Price plans over HTTP: operators publish, everyone logged in reads; a new plan replaces the
//! active one of its size class.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::accounts::{customer, operator};
use crate::api::problem;
use crate::helpers::{TestApp, spawn_app};

pub fn plan_body(size: &str, name: &str) -> Value {
    json!({
        "name": name, "size_class": size, "deposit": "20.00", "free_minutes": 30,
        "unit_minutes": 60, "price_per_unit": "1.00", "cap_per_24h": "10.00",
        "max_minutes": 4320, "overdue_price_per_unit": "5.00"
    })
}

async fn publish(app: &TestApp, token: &str, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/v1/plans"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("sent")
}

#[sqlx::test]
async fn operators_publish_plans_and_a_new_one_replaces_its_size_class(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    let user = customer(&app, "c@example.com").await;
    let made = publish(&app, &admin, &plan_body("m", "Medium")).await;
    assert_eq!(made.status(), 201);
    let made: Value = made.json().await.expect("plan");
    assert_eq!(
        (&made["deposit"], &made["currency"]),
        (&json!("20.00"), &json!("EUR"))
    );
    assert_eq!(
        publish(&app, &admin, &plan_body("s", "Small"))
            .await
            .status(),
        201
    );
    assert_eq!(
        publish(&app, &admin, &plan_body("m", "Medium 2"))
            .await
            .status(),
        201
    );
    let plans: Value = app
        .http
        .get(app.url("/v1/plans"))
        .bearer_auth(&user)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("plans");
    let names: Vec<&str> = plans
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["Medium 2", "Small"]);
    problem(
        publish(&app, &user, &plan_body("l", "Large")).await,
        403,
        "forbidden",
    )
    .await;
    let mut bad = plan_body("l", "Large");
    bad["unit_minutes"] = json!(0);
    bad["deposit"] = json!("-1.00");
    let refused = problem(publish(&app, &admin, &bad).await, 422, "invalid_amount").await;
    let fields: Vec<&str> = refused["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"deposit") && fields.contains(&"unit_minutes"),
        "{refused}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM price_plans")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 3, "the refused plan wrote nothing");
    let terms = locker_gateway::rental::plan::for_size(
        &locker_gateway::storage::Storage::Postgres(pool.clone()),
        "m",
    )
    .await
    .expect("read")
    .expect("active")
    .terms;
    assert_eq!(
        locker_gateway::rental::fee(&terms, std::time::Duration::from_secs(24 * 3600)),
        1000
    );
}

/// The price-plan contract, on either storage: one active plan per size class, a new one
/// replacing the old for new rentals, terms read back as written.
async fn one_active_plan_per_size(storage: locker_gateway::storage::Storage) {
    use locker_gateway::rental::plan::{Plan, active, for_size, publish};
    let plan = |size: &str, deposit: i64| Plan {
        id: uuid::Uuid::now_v7(),
        name: format!("{size} {deposit}"),
        currency: "EUR".into(),
        size_class: size.into(),
        terms: locker_gateway::rental::Terms {
            deposit,
            free_minutes: 15,
            unit_minutes: 60,
            price_per_unit: 150,
            cap_per_24h: 1200,
            max_minutes: 4320,
            overdue_price_per_unit: 300,
        },
    };
    assert_eq!(for_size(&storage, "m").await.expect("read"), None);
    let first = publish(&storage, &plan("m", 2000))
        .await
        .expect("published");
    assert_eq!(
        for_size(&storage, "m").await.expect("read").as_ref(),
        Some(&first)
    );
    let second = publish(&storage, &plan("m", 2500)).await.expect("replaced");
    let small = publish(&storage, &plan("s", 1000))
        .await
        .expect("published");
    assert_eq!(
        for_size(&storage, "m")
            .await
            .expect("read")
            .map(|p| p.terms.deposit),
        Some(2500)
    );
    assert_eq!(
        active(&storage).await.expect("listed"),
        vec![second, small],
        "one per size class, by size class"
    );
}

#[sqlx::test]
async fn one_active_plan_per_size_on_postgresql(pool: PgPool) {
    one_active_plan_per_size(locker_gateway::storage::Storage::Postgres(pool)).await;
}

#[tokio::test]
async fn one_active_plan_per_size_on_sqlite() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    one_active_plan_per_size(storage).await;
}
