//! Helpers shared by the command tests.

use std::time::Duration;

use locker_gateway::command::CommandError;
use locker_gateway::device::Provisioned;
use simulator::mqtt::{Happening, Knob, expect};

use crate::helpers::{TestApp, WAIT, device, eventually, on_storage};
use locker_gateway::storage::Storage;

pub async fn online_locker(app: &TestApp, id: &str) -> simulator::mqtt::LockerHandle {
    online_locker_with_credentials(app, id).await.0
}

/// A provisioned locker, connected and online, with its credentials.
pub async fn online_locker_with_credentials(
    app: &TestApp,
    id: &str,
) -> (simulator::mqtt::LockerHandle, Provisioned) {
    let creds = app.provision(id, 4).await;
    let locker = app.locker(&creds, Duration::from_secs(3600));
    let mut watch = locker.watch();
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Connected { .. }).then_some(())
    })
    .await
    .expect("connected");
    eventually("online", || app.online(id)).await;
    (locker, creds)
}

pub async fn command_row(
    storage: &locker_gateway::storage::Storage,
    id: i64,
) -> (String, Option<String>, i32) {
    const ROW: &str = "SELECT state, door_result, attempts FROM commands WHERE id = $1";
    crate::helpers::on_storage!(storage, |pool| sqlx::query_as(ROW)
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("command row"))
}

/// Sends an unlock whose ack the locker loses, and waits until the locker has it and the
/// gateway has recorded it sent.
pub async fn unlock_with_lost_ack(
    app: &TestApp,
    locker: &simulator::mqtt::LockerHandle,
) -> tokio::task::JoinHandle<Result<locker_gateway::command::Outcome, CommandError>> {
    let mut watch = locker.watch();
    locker.turn(Knob::DropAcks(1)).await;
    let commands = app.app.commands().clone();
    let sending = tokio::spawn(async move { commands.unlock(device("lk-1"), 1).await });
    expect(&mut watch, WAIT, |h| {
        matches!(h, Happening::Received(_)).then_some(())
    })
    .await
    .expect("the locker received the unlock");
    // The gateway records the send just after it queues it: the locker may have it first.
    eventually("the unlock recorded as sent", || async {
        settled(&app.storage).await.2 >= 1
    })
    .await;
    sending
}

pub async fn settled(storage: &Storage) -> (String, Option<String>, i32) {
    const ONE: &str = "SELECT state, settled_by, attempts FROM commands";
    on_storage!(storage, |pool| sqlx::query_as(ONE)
        .fetch_one(pool)
        .await
        .expect("one command"))
}

pub async fn sending_id(storage: &Storage) -> i64 {
    const ID: &str = "SELECT id FROM commands";
    on_storage!(storage, |pool| sqlx::query_scalar(ID)
        .fetch_one(pool)
        .await
        .expect("id"))
}

/// An authenticated uplink crafted with the device's own key (as if its counter jumped ahead).
pub async fn inject_ack(
    app: &TestApp,
    secret: &firmware_protocol::DeviceSecret,
    counter: u32,
    ack: firmware_protocol::Ack,
) {
    use firmware_protocol::{Direction, Envelope, Header, Uplink};
    const SESSION: &str = "SELECT session FROM devices WHERE id = 'lk-1'";
    let session: i64 =
        crate::helpers::on_storage!(&app.storage, |pool| sqlx::query_scalar(SESSION)
            .fetch_one(pool)
            .await
            .expect("session"));
    let payload = Envelope {
        header: Header {
            direction: Direction::Up,
            device_id: device("lk-1"),
            session: session as u32,
            counter,
        },
        message: Uplink::Ack(ack),
    }
    .seal_json(&secret.tag_key())
    .expect("seals");
    let (mut injector, _) = app.link("injector");
    injector
        .publish("lockers/lk-1/up", payload.into_bytes())
        .expect("published");
}

pub async fn state_of(storage: &Storage, id: i64) -> String {
    const STATE: &str = "SELECT state FROM commands WHERE id = $1";
    on_storage!(storage, |pool| sqlx::query_scalar(STATE)
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("state"))
}
