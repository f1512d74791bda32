//! An answer recorded by another gateway (the fleet issue: a locker's ack may reach any gateway
//! sharing the broker) reaches the request waiting here: the request reads the books at each
//! resend and before it says "timeout", so it never answers "timeout" for a command the books
//! record as executed. Here the other gateway is played by a writer to the database, as its
//! device link would write the answer.

use locker_gateway::command::DoorResult;
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
