//! Background workers: one item that always fails never stops the others; it backs off, is
//! flagged for operators (an event, a gauge, a list in the API, kept across restarts) and
//! retried hourly.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::accounts::operator;
use crate::command_helpers::online_locker;
use crate::helpers::{eventually, spawn_app_with};
use crate::rentals::{funded, money, plan};

/// A rental left `pending` by a request that died, ten minutes ago, holding `held` of its
/// 20.00 deposit in the wallet (less than 20.00: releasing it can never succeed).
async fn interrupted(pool: &PgPool, app_pool: &PgPool, user: Uuid, door: i32, held: i64) -> Uuid {
    let id = Uuid::now_v7();
    if held > 0 {
        locker_gateway::wallet::Wallets::new(app_pool.clone(), Default::default())
            .change(
                user,
                &locker_gateway::wallet::Movement::hold(held).for_(format!("rental {id}")),
            )
            .await
            .expect("held");
    }
    sqlx::query(
        "INSERT INTO rentals (id, user_id, device_id, door, state, terms, deposit_held, created_at)
         VALUES ($1, $2, 'lk-1', $3, 'pending', '{}', 2000, now() - interval '10 minutes')",
    )
    .bind(id)
    .bind(user)
    .bind(door)
    .execute(pool)
    .await
    .expect("rental");
    id
}

/// A rental's state (empty if there is no such rental).
pub async fn rental_state(pool: &PgPool, id: Uuid) -> String {
    sqlx::query_scalar::<_, String>("SELECT state FROM rentals WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap_or_default()
}

fn quick(config: &mut locker_gateway::Config) {
    config.worker_policy.first_retry = std::time::Duration::from_millis(100);
    config.worker_policy.max_retry = std::time::Duration::from_millis(200);
    config.worker_policy.flag_after = 3;
}

/// The operator's list of stuck items (`GET /v1/admin/stuck`).
pub async fn stuck_list(app: &crate::helpers::TestApp, token: &str) -> Value {
    app.http
        .get(app.url("/v1/admin/stuck"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .json::<Value>()
        .await
        .expect("json")
}

async fn announced(pool: &PgPool) -> Vec<Value> {
    sqlx::query_scalar("SELECT payload FROM outbox WHERE event_type = 'worker.item_stuck'")
        .fetch_all(pool)
        .await
        .expect("events")
}

#[sqlx::test]
async fn a_rental_that_always_fails_is_flagged_and_the_others_settle(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), quick).await;
    plan(&app).await;
    let _locker = online_locker(&app, "lk-1").await;
    let (_, user) = funded(&app, "r@example.com", 10_000).await;
    // Its hold is not in its owner's wallet: releasing it breaks the wallet's CHECK every time.
    let (_, unlucky) = funded(&app, "u@example.com", 0).await;
    let broken = interrupted(&pool, &app.pool, unlucky, 1, 0).await;
    let first = interrupted(&pool, &app.pool, user, 2, 2000).await;
    let second = interrupted(&pool, &app.pool, user, 3, 2000).await;
    let state = |id: Uuid| rental_state(&pool, id);
    eventually("the good rentals settled beside the broken one", || async {
        state(first).await == "cancelled" && state(second).await == "cancelled"
    })
    .await;
    assert_eq!(money(&app, user).await, (10_000, 0), "both holds released");
    let admin = operator(&app, "ops@example.com").await;
    let stuck = || stuck_list(&app, &admin);
    eventually("the broken rental is flagged", || async {
        stuck().await.as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let listed = stuck().await;
    assert_eq!(listed[0]["worker"], "rental_reconciler");
    assert_eq!(listed[0]["item"], format!("rental {broken}"));
    assert_eq!(listed[0]["failures"], 3);
    assert!(
        listed[0]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    assert_eq!(state(broken).await, "pending", "nothing half written");
    let events = announced(&pool).await;
    assert_eq!(events.len(), 1, "announced once");
    assert_eq!(events[0]["item"], format!("rental {broken}"));
    // Retried hourly from now on: a few more passes do not fail it again.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(stuck().await[0]["failures"], 3);
    // Counted in the metrics. (The gauge `locker_worker_items_stuck` is the process's: every
    // other gateway this test binary starts sets it to its own count, so it cannot be read here
    // for this gateway; the stuck list above is this gateway's own.)
    let metrics = app.metrics().await;
    let flagged = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"locker_worker_items_flagged_total{worker="rental_reconciler"} "#)
        })
        .and_then(|n| n.parse::<f64>().ok());
    assert!(flagged.is_some_and(|n| n >= 1.0), "{metrics}");
    // Customers do not see it.
    let (customer, _) = funded(&app, "c@example.com", 0).await;
    let refused = app
        .http
        .get(app.url("/v1/admin/stuck"))
        .bearer_auth(&customer)
        .send()
        .await
        .expect("sent");
    crate::api::problem(refused, 403, "forbidden").await;

    // The stuck list is in the database: a restarted gateway lists it, tries it once at start
    // (a fourth failure) and does not announce it again.
    // (A stopped gateway closes its pool: each start gets a new one on the same database.)
    let reopen = || async {
        PgPool::connect_with((*pool.connect_options()).clone())
            .await
            .expect("reopened")
    };
    app.app.run_until_stopped(async {}).await;
    let pool = reopen().await;
    let app = spawn_app_with(pool.clone(), quick).await;
    eventually("tried again once at start", || async {
        stuck_list(&app, &admin).await[0]["failures"] == 4
    })
    .await;
    assert_eq!(
        stuck_list(&app, &admin).await[0]["item"],
        format!("rental {broken}")
    );
    assert_eq!(announced(&pool).await.len(), 1, "not announced again");
    // Mended (the hold is put where the rental says it is), the next start settles it and the
    // list is empty again.
    app.app.run_until_stopped(async {}).await;
    let pool = reopen().await;
    let wallets = locker_gateway::wallet::Wallets::new(pool.clone(), Default::default());
    for movement in [
        locker_gateway::wallet::Movement::top_up(2000),
        locker_gateway::wallet::Movement::hold(2000).for_(format!("rental {broken}")),
    ] {
        wallets.change(unlucky, &movement).await.expect("mended");
    }
    let app = spawn_app_with(pool.clone(), quick).await;
    eventually("the mended rental settled", || async {
        sqlx::query_scalar::<_, String>("SELECT state FROM rentals WHERE id = $1")
            .bind(broken)
            .fetch_one(&pool)
            .await
            .is_ok_and(|state| state == "cancelled")
    })
    .await;
    eventually("the stuck list is empty", || async {
        stuck_list(&app, &admin)
            .await
            .as_array()
            .is_some_and(Vec::is_empty)
    })
    .await;
}

/// A rental whose recorded unlock says what no locker says (a refusal with no such reason) is
/// flagged by the sales' one reconciler, and nothing is settled from it; the other rental
/// waiting beside it settles.
#[sqlx::test]
async fn an_unlock_recorded_with_a_refusal_no_locker_gives_is_flagged_not_guessed(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), quick).await;
    plan(&app).await;
    let _locker = online_locker(&app, "lk-1").await;
    let (_, user) = funded(&app, "r@example.com", 10_000).await;
    let odd = interrupted(&pool, &app.pool, user, 1, 2000).await;
    let fine = interrupted(&pool, &app.pool, user, 2, 2000).await;
    for (rental, refusal) in [(odd, "exploded"), (fine, "busy")] {
        let command: i64 = sqlx::query_scalar(
            "INSERT INTO commands (device_id, kind, door, body, state, refusal, reason, answered_at)
             VALUES ('lk-1', 'unlock', 1, '{}', 'refused', $1, $2, now()) RETURNING id",
        )
        .bind(refusal)
        .bind(format!("rental {rental}"))
        .fetch_one(&pool)
        .await
        .expect("command");
        sqlx::query("UPDATE rentals SET start_command = $2 WHERE id = $1")
            .bind(rental)
            .bind(command)
            .execute(&pool)
            .await
            .expect("attached");
    }
    let admin = operator(&app, "ops@example.com").await;
    eventually("the odd rental is flagged", || async {
        stuck_list(&app, &admin)
            .await
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["item"] == format!("rental {odd}")))
    })
    .await;
    let state = |id: Uuid| rental_state(&pool, id);
    eventually("the refused one is cancelled", || async {
        state(fine).await == "cancelled"
    })
    .await;
    assert_eq!(state(odd).await, "pending", "not guessed");
    assert_eq!(money(&app, user).await, (8_000, 2_000), "its hold is kept");
}
