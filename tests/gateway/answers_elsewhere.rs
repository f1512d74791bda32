//! An answer recorded by another gateway (the fleet issue: a locker's ack may reach any gateway
//! sharing the broker) reaches the request waiting here: announced (`NOTIFY` on PostgreSQL; read
//! every second on SQLite) it wakes the request at once, and the request also reads the books at
//! each resend and before it says "timeout", so it never answers "timeout" for a command the
//! books record as executed. Here the other gateway is played by a writer to the database, as
//! its device link would write and announce the answer.

use locker_gateway::command::DoorResult;
use locker_gateway::storage::Storage;
use simulator::mqtt::Knob;

use crate::command_helpers::{command_row, online_locker};
use crate::helpers::{eventually, in_both_modes, on_storage};

in_both_modes! {
    /// The locker's ack and door event never reach this gateway; another records them.
    async fn an_answer_recorded_elsewhere_is_the_requests_answer(backend: Backend) {
        let app = backend.spawn().await;
        let locker = online_locker(&app, "lk-1").await;
        locker.turn(Knob::DropAcks(100)).await;
        let commands = app.app.commands().clone();
        let waiting = tokio::spawn(async move {
            commands.unlock(crate::helpers::device("lk-1"), 1).await
        });
        // The command is out; the other gateway records the locker's answer and the opening.
        let storage = app.storage.clone();
        let id = || {
            let storage = storage.clone();
            async move {
                on_storage!(&storage, |pool| sqlx::query_scalar::<_, i64>(
                    "SELECT id FROM commands WHERE state = 'sent'"
                )
                .fetch_optional(pool)
                .await
                .expect("read"))
            }
        };
        eventually("the unlock is sent", || async { id().await.is_some() }).await;
        let sent = id().await.expect("sent");
        let now = chrono::Utc::now();
        on_storage!(&app.storage, |pool| sqlx::query(
            "UPDATE commands SET state = 'executed', answered_at = $2, settled_by = 'ack',
                    door_result = 'opened', door_at = $2
             WHERE id = $1 AND state = 'sent'"
        )
        .bind(sent)
        .bind(now)
        .execute(pool)
        .await
        .expect("recorded elsewhere")
        .rows_affected());
        let outcome = waiting.await.expect("task");
        let outcome = outcome.unwrap_or_else(|e| panic!("the books say executed, the answer was {e:?}"));
        assert_eq!(outcome.command_id, sent);
        assert_eq!(outcome.door, Some(DoorResult::Opened));
        let (state, door, _) = command_row(&app.storage, sent).await;
        assert_eq!((state.as_str(), door.as_deref()), ("executed", Some("opened")));
    }
}

/// The id of the command sent and not answered yet, once there is one.
async fn sent_command(storage: &Storage) -> i64 {
    let id = || async {
        on_storage!(storage, |pool| sqlx::query_scalar::<_, i64>(
            "SELECT id FROM commands WHERE state = 'sent'"
        )
        .fetch_optional(pool)
        .await
        .expect("read"))
    };
    eventually("the unlock is sent", || async { id().await.is_some() }).await;
    id().await.expect("sent")
}

/// Records command `id` executed with its door opened, as another gateway's device link does
/// (on PostgreSQL with its announcement, in the same transaction).
async fn recorded_elsewhere(storage: &Storage, id: i64) {
    const ANSWER: &str = "UPDATE commands SET state = 'executed', answered_at = $2,
            settled_by = 'ack', door_result = 'opened', door_at = $2
         WHERE id = $1 AND state = 'sent'";
    let now = chrono::Utc::now();
    match storage {
        Storage::Postgres(pool) => {
            let mut tx = pool.begin().await.expect("begun");
            sqlx::query(ANSWER)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .expect("recorded");
            sqlx::query("SELECT pg_notify('commands_answered', $1)")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .expect("announced");
            tx.commit().await.expect("committed");
        }
        Storage::Sqlite(pool) => {
            sqlx::query(ANSWER)
                .bind(id)
                .bind(now)
                .execute(pool)
                .await
                .expect("recorded");
        }
    }
}

in_both_modes! {
    /// Announced, the answer wakes the waiting request before its first resend (the gateway
    /// sends a command again 2 s after the first copy when no answer came, and reads the books
    /// then).
    async fn an_announced_answer_wakes_the_request_before_any_resend(backend: Backend) {
        let app = backend.spawn().await;
        let locker = online_locker(&app, "lk-1").await;
        locker.turn(Knob::DropAcks(100)).await;
        let commands = app.app.commands().clone();
        let waiting = tokio::spawn(async move {
            commands.unlock(crate::helpers::device("lk-1"), 2).await
        });
        let sent = sent_command(&app.storage).await;
        recorded_elsewhere(&app.storage, sent).await;
        let recorded = std::time::Instant::now();
        let outcome = waiting.await.expect("task").expect("executed");
        let took = recorded.elapsed();
        assert_eq!((outcome.command_id, outcome.door), (sent, Some(DoorResult::Opened)));
        let (_, _, attempts) = command_row(&app.storage, sent).await;
        assert_eq!(attempts, 1, "answered before any resend");
        // Woken by the announcement (at once on PostgreSQL, at the next one-second read on
        // SQLite), not at the resend two seconds after the first copy, where the books are read
        // too.
        assert!(
            took < std::time::Duration::from_millis(1600),
            "the request learned its answer {took:?} after it was recorded"
        );
    }
}
