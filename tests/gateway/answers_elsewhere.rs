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

in_both_modes! {
    /// A locker's new session recorded by another gateway (its hello reached that one): this
    /// gateway, which knew the old session, reads the session from the books again and takes
    /// the locker's uplinks in the new one (they were dropped as of an unknown session).
    async fn a_session_recorded_elsewhere_is_read_from_the_books(backend: Backend) {
        use firmware_protocol::{
            Direction, DoorSensor, DoorStatus, Envelope, Header, Heartbeat, Hello, Uplink,
        };
        use locker_gateway::device::presence::{self, HelloRecorded};
        let app = backend.spawn().await;
        let (locker, creds) = crate::command_helpers::online_locker_with_credentials(&app, "lk-1").await;
        let device = creds.device_id;
        // This gateway's memory of the locker is older than a second (it reads the books again
        // at most that often).
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        // Another gateway records the locker's new session.
        const SESSION: u32 = 0x5e55;
        let hello = Hello {
            protocol_version: firmware_protocol::PROTOCOL_VERSION,
            firmware: "1.0.0".into(),
            serial_no: "SN1".into(),
            door_count: 4,
            session: SESSION,
            uptime_ms: 10,
            max_chunk: None,
        };
        match presence::hello(&app.storage, &device, &hello, 1, chrono::Utc::now()).await.expect("recorded") {
            HelloRecorded::New(work) => work.commit().await.expect("committed"),
            other => panic!("a new session, not {}", matches!(other, HelloRecorded::Again)),
        }
        // The locker's next uplink, in the new session, reaches this gateway.
        let beat = Envelope {
            header: Header { direction: Direction::Up, device_id: device, session: SESSION, counter: 2 },
            message: Uplink::Heartbeat(Heartbeat {
                uptime_ms: 20,
                doors: vec![DoorStatus { sensor: DoorSensor::Closed, locked: true, occupied: None }; 4],
                signal: None,
            }),
        };
        let sealed = beat.seal_json(&creds.secret.tag_key()).expect("sealed");
        locker.turn(Knob::SendRaw(sealed.into_bytes())).await;
        let storage = app.storage.clone();
        eventually("the uplink of the new session is taken", || async {
            let (session, counter): (Option<i64>, Option<i64>) = on_storage!(&storage, |pool| sqlx::query_as(
                "SELECT session, up_counter FROM devices WHERE id = 'lk-1'"
            )
            .fetch_one(pool)
            .await
            .expect("a device"));
            (session, counter) == (Some(i64::from(SESSION)), Some(2))
        })
        .await;
    }
}
