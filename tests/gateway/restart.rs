//! The gateway killed and started again, as a separate process.

use std::time::Duration;

use locker_gateway::device::DeviceRegistry;
use simulator::mqtt::{Credentials, Happening, LockerConfig, expect};
use sqlx::PgPool;

use crate::helpers::{WAIT, device, eventually};
use crate::process::GatewayProcess;

async fn online_session(pool: &PgPool, id: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT session FROM devices WHERE id = $1 AND online")
        .bind(id)
        .fetch_optional(pool)
        .await
        .expect("query")
        .flatten()
}

async fn unpublished(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(pool)
        .await
        .expect("count")
}

#[sqlx::test]
async fn a_killed_gateway_comes_back_with_its_lockers_and_its_events(pool: PgPool) {
    let registry = DeviceRegistry::new(pool.clone());
    let mut lockers = Vec::new();
    let mut gateway = GatewayProcess::start(&pool, None).await;
    for n in 1..=3 {
        let id = format!("lk-{n}");
        let creds = crate::helpers::provision(&registry, &id, 4).await;
        let mut config = LockerConfig::new(
            gateway.mqtt,
            Credentials::from_secret(creds.device_id, &creds.secret),
        );
        config.reconnect_after = Duration::from_millis(200);
        let locker = simulator::mqtt::spawn(config);
        let watch = locker.watch();
        lockers.push((id, locker, watch));
    }
    let mut first = Vec::new();
    for (id, _, watch) in &mut lockers {
        let session = expect(watch, WAIT, |h| match h {
            Happening::Connected { session } => Some(*session),
            _ => None,
        })
        .await
        .expect("connected");
        eventually("online", || async {
            online_session(&pool, id).await == Some(i64::from(session))
        })
        .await;
        first.push(session);
    }
    eventually("events delivered", || async {
        unpublished(&pool).await == 0
    })
    .await;

    // SIGKILL: no shutdown at all. Meanwhile something else records an event.
    gateway.kill();
    registry
        .revoke(device("lk-3"))
        .await
        .expect("revoked while the gateway is down");
    assert_eq!(unpublished(&pool).await, 1);

    let _gateway = GatewayProcess::start(&pool, Some(gateway.mqtt)).await;
    for (i, (id, _, watch)) in lockers.iter_mut().enumerate().take(2) {
        let session = expect(watch, Duration::from_secs(30), |h| match h {
            Happening::Connected { session } => Some(*session),
            _ => None,
        })
        .await
        .expect("reconnected after the restart");
        assert_ne!(session, first[i], "a reconnect must use a new session");
        eventually("online again", || async {
            online_session(&pool, id).await == Some(i64::from(session))
        })
        .await;
    }
    // The revoked locker stays out.
    assert_eq!(online_session(&pool, "lk-3").await, None);
    // The event written while the gateway was dead is delivered after the restart.
    eventually("every event delivered", || async {
        unpublished(&pool).await == 0
    })
    .await;
}

#[sqlx::test]
async fn sigterm_stops_the_gateway_cleanly(pool: PgPool) {
    let mut gateway = GatewayProcess::start(&pool, None).await;
    let status = gateway.terminate();
    assert!(status.success(), "exit status {status}");
}

#[sqlx::test]
async fn a_taken_mqtt_port_stops_the_gateway_with_a_clear_message(pool: PgPool) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
        .arg("serve")
        .env("DATABASE_URL", crate::process::database_url(&pool))
        .env("REDIS_URL", crate::helpers::redis_url())
        .env("LOCKER_MQTT_ADDR", addr.to_string())
        .env("RUST_LOG", "error")
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&addr.to_string()) && last.contains("LOCKER_MQTT_ADDR"),
        "{stderr}"
    );
}

#[sqlx::test]
async fn a_killed_gateway_settles_its_command_in_flight_by_asking(pool: PgPool) {
    use locker_gateway::command::{Command, queue};
    use simulator::mqtt::Knob;
    let registry = DeviceRegistry::new(pool.clone());
    let creds = crate::helpers::provision(&registry, "lk-1", 4).await;
    let mut gateway = GatewayProcess::start(&pool, None).await;
    let mut config = LockerConfig::new(
        gateway.mqtt,
        Credentials::from_secret(creds.device_id, &creds.secret),
    );
    config.reconnect_after = Duration::from_millis(200);
    let locker = simulator::mqtt::spawn(config);
    let mut watch = locker.watch();
    let session = expect(&mut watch, WAIT, |h| match h {
        Happening::Connected { session } => Some(*session),
        _ => None,
    })
    .await
    .expect("connected");
    eventually("online", || async {
        online_session(&pool, "lk-1").await == Some(i64::from(session))
    })
    .await;
    // An operator queues an unlock (as `locker-gateway command unlock` does); the locker executes
    // it but its answer is lost, and the gateway is killed before it learns anything.
    locker.turn(Knob::DropAcks(1)).await;
    let id = queue::enqueue(
        &pool.clone().into(),
        &device("lk-1"),
        &Command::Unlock { door: 1 },
        Duration::from_secs(60),
    )
    .await
    .expect("queued");
    expect(&mut watch, WAIT, |h| match h {
        Happening::Sent(p) if p.contains("door_event") => Some(()),
        _ => None,
    })
    .await
    .expect("the locker executed the unlock");
    gateway.kill();
    let _gateway = GatewayProcess::start(&pool, Some(gateway.mqtt)).await;
    eventually("the command is settled by asking the locker", || async {
        let row: (String, Option<String>, i32) =
            sqlx::query_as("SELECT state, settled_by, attempts FROM commands WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .expect("row");
        row == ("executed".to_owned(), Some("state_report".to_owned()), 1)
    })
    .await;
    let mut opened = 0;
    while let Ok(h) = watch.try_recv() {
        if matches!(&h, Happening::Sent(p) if p.contains("door_event")) {
            opened += 1;
        }
    }
    assert_eq!(opened, 0, "the door opened again after the restart");
}
