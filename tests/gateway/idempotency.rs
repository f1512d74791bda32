//! `Idempotency-Key`: a retry gets the first answer, a changed request is refused, a concurrent
//! one waits its turn, keys belong to their user.

use std::time::Duration;

use serde_json::{Value, json};
use simulator::mqtt::Knob;
use sqlx::PgPool;

use crate::accounts::operator;
use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, spawn_app};

fn post(
    app: &TestApp,
    token: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> reqwest::RequestBuilder {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test]
async fn a_retry_gets_the_first_answer_without_doing_the_work_again(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    let body = json!({ "id": "lk-9", "door_count": 4 });
    let first = post(&app, &admin, "/v1/devices", "key-1", &body)
        .send()
        .await
        .expect("sent");
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");
    let again = post(&app, &admin, "/v1/devices", "key-1", &body)
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 201);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let again: Value = again.json().await.expect("json");
    assert_eq!(again, first, "the same secret, not a second device");
    assert_eq!(count(&pool, "SELECT count(*) FROM devices").await, 1);
    // Without a key the second request does the work (and finds the id taken).
    let plain = app
        .http
        .post(app.url("/v1/devices"))
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .expect("sent");
    problem(plain, 409, "device_exists").await;
    // The same key with another request is refused, and nothing is done.
    let other = json!({ "id": "lk-10", "door_count": 4 });
    let reused = post(&app, &admin, "/v1/devices", "key-1", &other)
        .send()
        .await
        .expect("sent");
    problem(reused, 422, "idempotency_key_reused").await;
    assert_eq!(count(&pool, "SELECT count(*) FROM devices").await, 1);
    // Keys are per user: another operator's key-1 is their own.
    let second = operator(&app, "ops2@example.com").await;
    let theirs = post(&app, &second, "/v1/devices", "key-1", &other)
        .send()
        .await
        .expect("sent");
    assert_eq!(theirs.status(), 201);
    assert_eq!(count(&pool, "SELECT count(*) FROM devices").await, 2);
    // A key that is not visible ASCII is a 400.
    let bad = post(&app, &admin, "/v1/devices", "has space", &other)
        .send()
        .await
        .expect("sent");
    problem(bad, 400, "bad_request").await;
}

#[sqlx::test]
async fn the_same_key_while_the_first_runs_is_a_conflict_and_the_door_opens_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let admin = operator(&app, "ops@example.com").await;
    let locker = online_locker(&app, "lk-1").await;
    locker
        .turn(Knob::AckDelay(Duration::from_millis(1500)))
        .await;
    let body = json!({ "reason": "stuck" });
    let path = "/v1/devices/lk-1/doors/1/unlock";
    let first = tokio::spawn(post(&app, &admin, path, "unlock-1", &body).send());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = post(&app, &admin, path, "unlock-1", &body)
        .send()
        .await
        .expect("sent");
    problem(second, 409, "idempotency_in_progress").await;
    let first = first.await.expect("joined").expect("sent");
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("json");
    let replay = post(&app, &admin, path, "unlock-1", &body)
        .send()
        .await
        .expect("sent");
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.expect("json");
    assert_eq!(replay, first);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM commands WHERE kind = 'unlock'").await,
        1,
        "one unlock, whatever the retries"
    );
}

/// Answers older than a day are forgotten by the purge, on either storage; younger ones stay.
async fn old_answers_are_purged(storage: locker_gateway::storage::Storage) {
    let accounts = locker_gateway::account::Accounts::on(
        storage.clone(),
        locker_gateway::account::PasswordCost::TEST,
        std::time::Duration::from_secs(60),
    );
    let user = accounts
        .register(
            "i@example.com",
            "a long password",
            locker_gateway::account::Role::User,
        )
        .await
        .expect("user")
        .id;
    let now = chrono::Utc::now();
    const KEEP: &str =
        "INSERT INTO idempotency_keys (user_id, key, request_sha256, status, created_at)
         VALUES ($1, $2, $3, 201, $4)";
    for (key, age) in [
        ("old", chrono::Duration::hours(25)),
        ("new", chrono::Duration::hours(23)),
    ] {
        let digest = vec![7u8; 32];
        crate::helpers::on_storage!(&storage, |pool| sqlx::query(KEEP)
            .bind(user)
            .bind(key)
            .bind(&digest)
            .bind(now - age)
            .execute(pool)
            .await
            .expect("kept")
            .rows_affected());
    }
    assert_eq!(
        locker_gateway::api::idempotency::purge(&storage)
            .await
            .expect("purged"),
        1
    );
    assert_eq!(
        locker_gateway::api::idempotency::purge(&storage)
            .await
            .expect("purged"),
        0,
        "the younger answer stays"
    );
}

#[sqlx::test]
async fn old_answers_are_purged_on_postgresql(pool: PgPool) {
    old_answers_are_purged(locker_gateway::storage::Storage::Postgres(pool)).await;
}

#[tokio::test]
async fn old_answers_are_purged_on_sqlite() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    old_answers_are_purged(storage).await;
}
