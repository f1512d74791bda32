//! Serial boards in a fleet: a board hangs on one gateway's line, and a command through any
//! gateway of the fleet reaches it. The gateway holding the port relays the board's sealed
//! envelopes from its `down` topic on the shared broker to the line (the tags stay end to end);
//! what the board answers is recorded by that gateway and announced to the one waiting.

use std::time::Duration;

use locker_gateway::command::DoorResult;
use serde_json::{Value, json};
use simulator::serial::{BoardConfig, BoardEvent, SerialKnob, SimulatedBus, spawn_bus_on};
use sqlx::PgPool;

use crate::fleet::{broker_for, own_pool};
use crate::helpers::{TestApp, device, eventually};
use crate::mosquitto::{Mosquitto, gateway_on_with, provision};
use crate::mosquitto_server::{GATEWAY_PASSWORD, GATEWAY_USER};
use crate::rentals::{funded, money, plan, rent};
use firmware_protocol::{DeviceId, Direction, Downlink, Envelope, Header};
use locker_gateway::device::Provisioned;

async fn online(pool: &PgPool, id: &str) -> bool {
    sqlx::query_scalar("SELECT online FROM devices WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("device row")
}

/// The gateway recorded as having sent the last command of `kind` to `id`, and its state.
async fn last_command(pool: &PgPool, id: &str, kind: &str) -> (Option<String>, String) {
    sqlx::query_as(
        "SELECT gateway, state FROM commands WHERE device_id = $1 AND kind = $2
         ORDER BY id DESC LIMIT 1",
    )
    .bind(id)
    .bind(kind)
    .fetch_one(pool)
    .await
    .expect("a command")
}

/// A board `sb-1` on a line of gateway `holder`, and another gateway `other` (whose id is
/// `other_id`), on one Mosquitto of the test's own.
struct LineOnOneGateway {
    _mosquitto: Mosquitto,
    holder: TestApp,
    other: TestApp,
    other_id: String,
    bus: SimulatedBus,
    board: Provisioned,
}

async fn line_on_one_gateway(pool: &PgPool) -> LineOnOneGateway {
    let (mosquitto, _) = broker_for(pool, &[]).await;
    let mut holder = gateway_on_with(&mosquitto, own_pool(pool).await, |_| {}).await;
    let other_id = format!("other-{}", uuid::Uuid::new_v4().simple());
    let other = gateway_on_with(&mosquitto, own_pool(pool).await, |c| {
        c.gateway_id = other_id.clone();
    })
    .await;
    let board = provision(pool, "sb-1").await;
    let (gateway_end, boards_end) = tokio::io::duplex(4096);
    let bus = spawn_bus_on(
        vec![BoardConfig {
            address: 1,
            device_id: board.device_id,
            key: board.secret.tag_key(),
            doors: 4,
        }],
        boards_end,
    );
    bus.turn(SerialKnob::CloseAfter(Duration::from_secs(2)))
        .await;
    crate::serial_memory::attach_pipe(&mut holder, "memory=1:sb-1", gateway_end);
    eventually("the board online", || online(pool, "sb-1")).await;
    LineOnOneGateway {
        _mosquitto: mosquitto,
        holder: TestApp::around(holder, pool.clone()),
        other: TestApp::around(other, pool.clone()),
        other_id,
        bus,
        board,
    }
}

#[sqlx::test]
async fn a_rental_through_one_gateway_opens_a_door_on_another_gateways_line(pool: PgPool) {
    let LineOnOneGateway {
        _mosquitto,
        holder,
        other,
        other_id,
        mut bus,
        ..
    } = line_on_one_gateway(&pool).await;
    // A rental through the gateway that does not hold the line.
    plan(&other).await;
    let (token, customer) = funded(&other, "serial@example.com", 5000).await;
    let response = rent(&other, &token, json!({ "device_id": "sb-1", "size": "m" })).await;
    let status = response.status();
    let rental: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{rental}");
    assert_eq!(rental["state"], "active", "{rental}");
    let door = rental["door"].as_u64().expect("door") as u16;
    assert_eq!(
        bus.event(Duration::from_secs(5)).await,
        Some(BoardEvent::Unlocked { address: 1, door }),
        "the board on the other gateway's line pulsed the door"
    );
    assert_eq!(money(&other, customer).await, (3000, 2000));
    assert_eq!(
        last_command(&pool, "sb-1", "unlock").await,
        (Some(other_id.clone()), "executed".to_owned()),
        "sent by the gateway the request came to, answered through the one holding the line"
    );
    // The pickup, through the same gateway: the door opens again and the rental ends.
    eventually("the door closed again", || async {
        let sensor: Option<String> =
            sqlx::query_scalar("SELECT sensor FROM doors WHERE device_id = 'sb-1' AND door = $1")
                .bind(i32::from(door))
                .fetch_optional(&pool)
                .await
                .expect("doors");
        sensor.as_deref() == Some("closed")
    })
    .await;
    let rid = rental["id"].as_str().expect("id");
    let ended = other
        .http
        .post(other.url(&format!("/v1/rentals/{rid}/end")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    let status = ended.status();
    let ended: Value = ended.json().await.expect("json");
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["state"], "ended", "{ended}");
    assert_eq!(
        bus.event(Duration::from_secs(5)).await,
        Some(BoardEvent::Unlocked { address: 1, door })
    );
    let (available, held) = money(&other, customer).await;
    assert_eq!((available + held, held), (5000, 0), "the deposit came back");
    // A maintenance unlock through the other gateway's command service too.
    let outcome = other
        .app
        .commands()
        .unlock(device("sb-1"), 4)
        .await
        .expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    assert_eq!(
        bus.event(Duration::from_secs(5)).await,
        Some(BoardEvent::Unlocked {
            address: 1,
            door: 4
        })
    );
    // Again while it is still open: the board says so, through the gateway holding its line.
    let again = other
        .app
        .commands()
        .unlock(device("sb-1"), 4)
        .await
        .expect("executed");
    assert_eq!(again.door, Some(DoorResult::AlreadyOpen));
    other.app.run_until_stopped(async {}).await;
    holder.app.run_until_stopped(async {}).await;
}

/// The value of a counter with one label in a metrics text (0 if absent).
fn counter(metrics: &str, name: &str, reason: &str) -> u64 {
    let prefix = format!("{name}{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

fn unlock(device: &str, counter: u32) -> Envelope<Downlink> {
    Envelope {
        header: Header {
            direction: Direction::Down,
            device_id: DeviceId::new(device).expect("id"),
            session: 1,
            counter,
        },
        message: Downlink::Unlock(firmware_protocol::Unlock {
            command_id: firmware_protocol::CommandId::new(77).expect("id"),
            door: 2,
            expires_at_ms: None,
        }),
    }
}

#[sqlx::test]
async fn what_is_not_the_boards_downlink_is_not_relayed_to_its_line(pool: PgPool) {
    let LineOnOneGateway {
        _mosquitto,
        holder,
        other,
        mut bus,
        board,
        ..
    } = line_on_one_gateway(&pool).await;
    let key = board.secret.tag_key();
    let (ip, port) = (_mosquitto.addr.ip().to_string(), _mosquitto.addr.port());
    let mut options = rumqttc::MqttOptions::new("someone", ip, port);
    options.set_credentials(GATEWAY_USER, GATEWAY_PASSWORD);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 16);
    let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let wrong: Vec<(&str, Vec<u8>)> = vec![
        ("not_a_binary_envelope", b"\xff\x00 noise".to_vec()),
        (
            "not_a_binary_envelope",
            unlock("sb-1", 900)
                .seal_json(&key)
                .expect("sealed")
                .into_bytes(),
        ),
        (
            "other_device",
            unlock("sb-2", 901).seal_binary(&key).expect("sealed"),
        ),
        (
            "not_a_downlink",
            Envelope {
                header: Header {
                    direction: Direction::Up,
                    ..unlock("sb-1", 902).header
                },
                message: firmware_protocol::Uplink::Pong,
            }
            .seal_binary(&key)
            .expect("sealed"),
        ),
    ];
    let before = holder.metrics().await;
    for (_, payload) in &wrong {
        client
            .publish(
                "lockers/sb-1/down",
                rumqttc::QoS::AtLeastOnce,
                false,
                payload.clone(),
            )
            .await
            .expect("queued");
    }
    let name = "locker_serial_relay_refused_total";
    for reason in ["not_a_binary_envelope", "other_device", "not_a_downlink"] {
        let expected = wrong.iter().filter(|(r, _)| *r == reason).count() as u64;
        let from = counter(&before, name, reason);
        eventually(reason, || async {
            counter(&holder.metrics().await, name, reason) >= from + expected
        })
        .await;
    }
    assert_eq!(
        bus.event(Duration::from_millis(500)).await,
        None,
        "nothing of it reached the board"
    );
    poller.abort();
    other.app.run_until_stopped(async {}).await;
    holder.app.run_until_stopped(async {}).await;
}
