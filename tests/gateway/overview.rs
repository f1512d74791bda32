//! The fleet overview's books (issue 23): money taken today (captured fees less refunds) counted
//! from midnight in `LOCKER_TIME_ZONE`, rentals running and overdue (past their own plan's
//! `max_minutes`); on both backends.

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::accounts::operator;
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, in_both_modes, on_storage};

async fn overview(app: &TestApp, token: &str) -> Value {
    app.get_json("/v1/overview", token).await
}

async fn backdate(app: &TestApp, rental: &str, hours: i64) {
    let at = Utc::now() - chrono::Duration::hours(hours);
    let id: Uuid = rental.parse().expect("uuid");
    on_storage!(&app.storage, |pool| sqlx::query(
        "UPDATE rentals SET started_at = $1 WHERE id = $2"
    )
    .bind(at)
    .bind(id)
    .execute(pool)
    .await
    .expect("backdated")
    .rows_affected());
}

in_both_modes! {
async fn the_overview_counts_money_taken_today_and_overdue_rentals(backend: Backend) {
    let zone: chrono_tz::Tz = "Pacific/Kiritimati".parse().expect("zone");
    let app = backend.spawn_with(move |c| c.time_zone = zone).await;
    crate::rentals::plan(&app).await;
    let admin = operator(&app, "ops@example.com").await;
    let _locker = online_locker(&app, "lk-1").await;
    let mut rentals = Vec::new();
    for (n, email) in ["a@example.com", "b@example.com"].iter().enumerate() {
        let (token, _) = crate::rentals::funded(&app, email, 5000).await;
        let rented = crate::rentals::rent(&app, &token, json!({ "device_id": "lk-1", "door": n + 1 })).await;
        assert_eq!(rented.status(), 201);
        let rented: Value = rented.json().await.expect("rental");
        rentals.push(rented["id"].as_str().expect("id").to_owned());
    }
    let before = overview(&app, &admin).await;
    assert_eq!((before["rentals_running"].as_i64(), before["rentals_overdue"].as_i64()), (Some(2), Some(0)));
    assert_eq!(before["money_today"]["taken"], "0.00");
    // The first ends after two hours (2.00 taken from its hold), 0.50 of it given back; the
    // second has run four days, one past its plan's three.
    backdate(&app, &rentals[0], 2).await;
    backdate(&app, &rentals[1], 96).await;
    let post = |path: String, body: Value| {
        app.http.post(app.url(&path)).bearer_auth(&admin).json(&body).send()
    };
    let ended: Value = post(format!("/v1/admin/rentals/{}/end", rentals[0]), json!({ "reason": "left early" }))
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(ended["fee"], "2.00");
    let refunded = post(
        format!("/v1/admin/rentals/{}/refund", rentals[0]),
        json!({ "amount": "0.50", "reason": "goodwill" }),
    )
    .await
    .expect("sent");
    assert_eq!(refunded.status(), 200);
    let now = overview(&app, &admin).await;
    assert_eq!((now["rentals_running"].as_i64(), now["rentals_overdue"].as_i64()), (Some(1), Some(1)));
    let money = &now["money_today"];
    assert_eq!((money["taken"].as_str(), money["refunded"].as_str(), money["net"].as_str()),
        (Some("2.00"), Some("0.50"), Some("1.50")));
    assert_eq!(money["time_zone"], "Pacific/Kiritimati");
    let local_midnight = zone
        .from_local_datetime(&Utc::now().with_timezone(&zone).date_naive().and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .expect("exists")
        .with_timezone(&Utc);
    let since: chrono::DateTime<Utc> = money["since"].as_str().expect("since").parse().expect("a time");
    assert_eq!(since, local_midnight, "today begins at midnight in the configured zone");
    // The reason went into the audit log.
    let audit = app.get_json("/v1/audit?action=rental.end", &admin).await;
    assert_eq!(audit["items"][0]["detail"]["reason"], "left early");
}
}
