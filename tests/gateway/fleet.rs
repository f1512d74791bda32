//! Several gateways on one database and one external broker (a Mosquitto of the test's own): each
//! with its instance id, its lease and its own client ids, sharing the lockers' uplinks through a
//! shared subscription; and a broker that does not deliver shared subscriptions refused at start.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use locker_gateway::app::{App, StartError};
use locker_gateway::command::DoorResult;
use locker_gateway::mqtt::{ExternalBroker, SharedSubscriptionError};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{TestApp, WAIT, device, eventually, free_addr, test_config};
use crate::mosquitto::{Mosquitto, gateway_on_with, online_through, provision};
use locker_gateway::device::Provisioned;

/// A pool of its own on the test's database, as a gateway process of its own would have.
pub(crate) async fn own_pool(pool: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&crate::process::database_url(pool))
        .await
        .expect("connected")
}

/// `ids` provisioned (4 doors each), and a Mosquitto of the test's own that knows their
/// passwords, with the README's ACL.
pub(crate) async fn broker_for(pool: &PgPool, ids: &[&str]) -> (Mosquitto, Vec<Provisioned>) {
    let mut creds = Vec::new();
    for id in ids {
        creds.push(provision(pool, id).await);
    }
    let passwords: Vec<(&str, String)> = ids
        .iter()
        .zip(&creds)
        .map(|(id, c)| (*id, c.secret.mqtt_password()))
        .collect();
    (Mosquitto::start(&passwords, true).await, creds)
}

/// A simulated locker with 4 doors on `mosquitto`, adjusted by `adjust`, online in the books.
pub(crate) async fn online_locker(
    pool: &PgPool,
    mosquitto: &Mosquitto,
    c: &Provisioned,
    adjust: impl FnOnce(&mut simulator::mqtt::LockerConfig),
) -> simulator::mqtt::LockerHandle {
    let mut config = simulator::mqtt::LockerConfig::new(
        mosquitto.addr,
        simulator::mqtt::Credentials::from_secret(c.device_id, &c.secret),
    );
    config.doors = 4;
    adjust(&mut config);
    let handle = simulator::mqtt::spawn(config);
    let mut watch = handle.watch();
    online_through(pool, &mut watch, c.device_id.as_str()).await;
    handle
}

/// `GET /v1/gateways` of the gateway at `base` (`http://host:port`), as `token`.
async fn gateways_at(http: &reqwest::Client, base: &str, token: &str) -> Value {
    http.get(format!("{}/v1/gateways", base.trim_end_matches('/')))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json")
}

/// The verified uplinks a gateway's device link hands on, as (locker, session, counter).
type Seen = Arc<Mutex<HashSet<(String, u32, u32)>>>;

fn record_uplinks(app: &App) -> Seen {
    let seen = Seen::default();
    let mut uplinks = app.device_link().subscribe();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok(uplink) = uplinks.recv().await {
            let key = (uplink.device.to_string(), uplink.session, uplink.counter);
            record.lock().expect("not poisoned").insert(key);
        }
    });
    seen
}

fn count(seen: &Seen) -> usize {
    seen.lock().expect("not poisoned").len()
}

#[sqlx::test]
async fn gateways_with_their_own_ids_share_the_lockers_of_one_broker(pool: PgPool) {
    let ids = ["lk-1", "lk-2", "lk-3", "lk-4"];
    let (mosquitto, creds) = broker_for(&pool, &ids).await;
    // Two gateways, each with its own id, one Redis prefix (their door locks are shared).
    let prefix = format!("test-{}:", uuid::Uuid::new_v4());
    let a = gateway_on_with(&mosquitto, own_pool(&pool).await, |c| {
        c.redis_prefix = prefix.clone();
    })
    .await;
    let b = gateway_on_with(&mosquitto, own_pool(&pool).await, |c| {
        c.redis_prefix = prefix.clone();
    })
    .await;
    let (seen_a, seen_b) = (record_uplinks(&a), record_uplinks(&b));
    let mut lockers = Vec::new();
    for c in &creds {
        let heartbeat = |l: &mut simulator::mqtt::LockerConfig| {
            l.heartbeat = Duration::from_millis(300);
        };
        lockers.push(online_locker(&pool, &mosquitto, c, heartbeat).await);
    }
    // The broker hands each uplink to one of the two: both get a share, none gets one twice.
    eventually("both gateways receive uplinks", || async {
        count(&seen_a) >= 5 && count(&seen_b) >= 5
    })
    .await;
    {
        let (seen_a, seen_b) = (seen_a.lock().expect("a"), seen_b.lock().expect("b"));
        let both: Vec<_> = seen_a.intersection(&seen_b).collect();
        assert!(
            both.is_empty(),
            "uplinks that reached both gateways: {both:?}"
        );
    }
    // Each message reached one gateway only: a gateway that got every uplink would refuse, as a
    // replay, each one the other recorded first (about as many as were accepted). Some are
    // refused still when consecutive uplinks of one locker reach the two gateways and are
    // written out of order: the anti-replay window (below) is what accepts those.
    let stats = [a.device_link().stats(), b.device_link().stats()];
    let accepted: u64 = stats.iter().map(|s| s.accepted()).sum();
    let replayed: u64 = stats.iter().map(|s| s.replayed()).sum();
    assert!(
        accepted >= 10 && replayed * 10 < accepted,
        "{replayed} of {accepted} uplinks refused as replays"
    );
    // Any gateway commands any locker; the answers reach whichever gateway the broker picks, and
    // the waiting request learns them either way.
    for id in ids {
        for (gateway, door) in [(&a, 1), (&b, 2), (&a, 3), (&b, 4)] {
            let outcome = gateway
                .commands()
                .unlock(device(id), door)
                .await
                .unwrap_or_else(|e| panic!("unlock of {id} door {door}: {e}"));
            assert_eq!(outcome.door, Some(DoorResult::Opened), "{id} door {door}");
        }
    }
    // Operators see both gateways and their leases; each says who it is in /readyz.
    let a = TestApp::around(a, pool.clone());
    let token = crate::accounts::operator(&a, "ops@example.com").await;
    let listed = gateways_at(&a.http, &a.url(""), &token).await;
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|g| g["state"] == "live" && g["broker"] == "external"),
        "{listed:?}"
    );
    assert_eq!(
        listed.iter().filter(|g| g["this_gateway"] == true).count(),
        1
    );
    let ready: Value = a
        .http
        .get(format!("http://{}/readyz", b.http_addr()))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["lease"], "held");
    let b_id = ready["gateway"].as_str().expect("an id").to_owned();
    assert!(
        listed
            .iter()
            .any(|g| g["id"] == b_id.as_str() && g["this_gateway"] == false)
    );
    for handle in lockers {
        handle.stop();
    }
    b.run_until_stopped(async {}).await;
    a.app.run_until_stopped(async {}).await;
}

#[sqlx::test]
async fn a_second_gateway_with_the_same_id_or_beside_an_embedded_broker_refuses(pool: PgPool) {
    let mosquitto = Mosquitto::start(&[], true).await;
    let first = gateway_on_with(&mosquitto, own_pool(&pool).await, |c| {
        c.gateway_id = "gw-east".into();
    })
    .await;
    let url = crate::mosquitto::gateway_url(&mosquitto);
    let same_id = locker_gateway::Config {
        external_broker: Some(ExternalBroker::parse(&url).expect("url")),
        gateway_id: "gw-east".into(),
        ..test_config(free_addr())
    };
    let refused = App::with_pool(&same_id, own_pool(&pool).await).await;
    let Err(e) = refused else {
        panic!("a second gateway with the id gw-east started")
    };
    let said = e.to_string();
    assert!(
        said.contains("\"gw-east\"") && said.contains("LOCKER_GATEWAY_ID"),
        "{said}"
    );
    // A gateway with its own embedded broker runs alone: refused beside a live fleet gateway.
    let embedded = test_config(free_addr());
    let refused = App::with_pool(&embedded, own_pool(&pool).await).await;
    let Err(e) = refused else {
        panic!("a gateway with an embedded broker started beside a fleet")
    };
    assert!(
        e.to_string()
            .contains("this one keeps its lockers on an embedded broker"),
        "{e}"
    );
    first.run_until_stopped(async {}).await;
    // Once the first stopped, its id is free at once.
    let again = App::with_pool(&same_id, own_pool(&pool).await)
        .await
        .expect("the id is free after a clean stop");
    again.run_until_stopped(async {}).await;
}

/// A broker that accepts every connection and subscription and delivers nothing (as NATS's MQTT
/// side does with `$share/…`): CONNACK, SUBACK granted, PUBACK, PINGRESP.
async fn deaf_broker() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let mut head = [0u8; 1];
                    if socket.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let (mut length, mut shift) = (0usize, 0);
                    loop {
                        let mut byte = [0u8; 1];
                        if socket.read_exact(&mut byte).await.is_err() || shift > 21 {
                            return;
                        }
                        length |= usize::from(byte[0] & 0x7f) << shift;
                        shift += 7;
                        if byte[0] & 0x80 == 0 {
                            break;
                        }
                    }
                    let mut body = vec![0u8; length];
                    if socket.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let id = body.get(..2).map(|b| [b[0], b[1]]).unwrap_or([0, 0]);
                    let answer = match head[0] >> 4 {
                        1 => vec![0x20, 0x02, 0x00, 0x00],
                        8 => vec![0x90, 0x03, id[0], id[1], 0x01],
                        3 if head[0] & 0x06 != 0 => {
                            let topic_len = usize::from(u16::from_be_bytes(id));
                            let pid = body.get(2 + topic_len..4 + topic_len).unwrap_or(&[0, 0]);
                            vec![0x40, 0x02, pid[0], pid[1]]
                        }
                        12 => vec![0xd0, 0x00],
                        _ => continue,
                    };
                    if socket.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[sqlx::test]
async fn a_broker_that_does_not_deliver_shared_subscriptions_is_refused_at_start(pool: PgPool) {
    let addr = deaf_broker().await;
    let config = locker_gateway::Config {
        external_broker: Some(ExternalBroker::parse(&format!("mqtt://{addr}")).expect("url")),
        ..test_config(free_addr())
    };
    let started = tokio::time::Instant::now();
    let refused = App::with_pool(&config, pool.clone()).await;
    let Err(StartError::SharedSubscriptions(SharedSubscriptionError::NotDelivered { .. })) =
        &refused
    else {
        panic!(
            "expected a refusal for shared subscriptions, got {:?}",
            refused.map(|_| ())
        );
    };
    let said = refused.err().expect("an error").to_string();
    assert!(
        said.contains("does not support shared subscriptions"),
        "{said}"
    );
    assert!(started.elapsed() < WAIT + Duration::from_secs(5));
    // Nothing was left behind: no lease taken.
    let leases: i64 = sqlx::query_scalar("SELECT count(*) FROM gateways")
        .fetch_one(&pool)
        .await
        .expect("counted");
    assert_eq!(leases, 0);
}

/// The device row's uplink window: (highest counter, bitmap).
pub(crate) async fn window(pool: &PgPool, id: &str) -> firmware_protocol::ReplayWindow {
    let (highest, bits): (Option<i64>, i64) =
        sqlx::query_as("SELECT up_counter, up_window FROM devices WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .expect("a device");
    firmware_protocol::ReplayWindow::restore(highest.unwrap_or(0) as u32, bits as u64)
}

#[sqlx::test]
async fn a_gateway_killed_with_sigkill_leaves_the_lockers_uplinks_to_the_others(pool: PgPool) {
    use crate::process::GatewayProcess;
    let ids = ["lk-1", "lk-2", "lk-3"];
    let (mosquitto, creds) = broker_for(&pool, &ids).await;
    let prefix = format!("test-{}:", uuid::Uuid::new_v4());
    let env = |id: &str| {
        vec![
            (
                "LOCKER_MQTT_BROKER",
                crate::mosquitto::gateway_url(&mosquitto),
            ),
            ("LOCKER_GATEWAY_ID", id.to_owned()),
            ("LOCKER_REDIS_PREFIX", prefix.clone()),
        ]
    };
    // (Both "listen" on the broker's address: that is where a gateway on it is reached.)
    let mut a = GatewayProcess::start_with(&pool, mosquitto.addr, free_addr(), &env("gw-a")).await;
    let b = GatewayProcess::start_with(&pool, mosquitto.addr, free_addr(), &env("gw-b")).await;
    let mut lockers = Vec::new();
    for c in &creds {
        let heartbeat = |l: &mut simulator::mqtt::LockerConfig| {
            l.heartbeat = Duration::from_millis(150);
        };
        lockers.push(online_locker(&pool, &mosquitto, c, heartbeat).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Gateway A dies without a word. What the broker had handed it and it had not written is
    // lost with it; everything after goes to B.
    a.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut after_kill = Vec::new();
    for id in ids {
        after_kill.push(window(&pool, id).await.highest());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (id, from) in ids.iter().zip(after_kill) {
        let now = window(&pool, id).await;
        assert!(
            now.highest() >= from + 8,
            "{id}: B records its heartbeats ({from} -> {})",
            now.highest()
        );
        assert!(
            now.has_seen_all_between(from, now.highest()),
            "{id}: an uplink after the kill was lost (counters {from}..{}, window {:064b})",
            now.highest(),
            now.bits()
        );
    }
    // Operators see A's lease expire (2 s here), B's live.
    let b_app = crate::helpers::http_client();
    let accounts = locker_gateway::account::Accounts::new(
        locker_gateway::storage::Storage::Postgres(pool.clone()),
        locker_gateway::account::PasswordCost::TEST,
        Duration::from_secs(3600),
    );
    accounts
        .register(
            "ops@example.com",
            "an operator password",
            locker_gateway::account::Role::Admin,
        )
        .await
        .expect("operator made");
    let session: Value = b_app
        .post(format!("http://{}/v1/sessions", b.http))
        .json(
            &serde_json::json!({ "email": "ops@example.com", "password": "an operator password" }),
        )
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let token = session["token"].as_str().expect("a token").to_owned();
    eventually("A's lease expired", || async {
        let listed = gateways_at(&b_app, &format!("http://{}", b.http), &token).await;
        let state = |id: &str| {
            listed
                .as_array()
                .and_then(|l| l.iter().find(|g| g["id"] == id))
                .map(|g| g["state"].clone())
        };
        state("gw-a") == Some(Value::from("expired")) && state("gw-b") == Some(Value::from("live"))
    })
    .await;
    for handle in lockers {
        handle.stop();
    }
    drop(b);
}

#[sqlx::test]
async fn rate_limits_hold_across_the_fleet(pool: PgPool) {
    let mosquitto = Mosquitto::start(&[], true).await;
    let prefix = format!("test-{}:", uuid::Uuid::new_v4());
    let adjust = |c: &mut locker_gateway::Config| {
        c.redis_prefix = prefix.clone();
        c.rate_limits.per_ip_per_minute = 4;
    };
    let a = gateway_on_with(&mosquitto, own_pool(&pool).await, adjust).await;
    let b = gateway_on_with(&mosquitto, own_pool(&pool).await, adjust).await;
    let http = crate::helpers::http_client();
    let mut statuses = Vec::new();
    for gateway in [&a, &b, &a, &b, &a, &b] {
        let response = http
            .get(format!("http://{}/v1/me", gateway.http_addr()))
            .send()
            .await
            .expect("sent");
        statuses.push(response.status().as_u16());
    }
    // Four for the client across both gateways, not four at each (without a token: 401).
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429], "{statuses:?}");
    b.run_until_stopped(async {}).await;
    a.run_until_stopped(async {}).await;
}

#[sqlx::test]
async fn two_gateways_commanding_one_locker_at_once_are_never_refused_as_stale(pool: PgPool) {
    let (mosquitto, creds) = broker_for(&pool, &["lk-1"]).await;
    let prefix = format!("test-{}:", uuid::Uuid::new_v4());
    let adjust = |config: &mut locker_gateway::Config| config.redis_prefix = prefix.clone();
    let a = gateway_on_with(&mosquitto, own_pool(&pool).await, adjust).await;
    let b = gateway_on_with(&mosquitto, own_pool(&pool).await, adjust).await;
    let closing = |l: &mut simulator::mqtt::LockerConfig| {
        l.close_after = Some(Duration::from_millis(20));
        l.protocol = 1;
    };
    let handle = online_locker(&pool, &mosquitto, &creds[0], closing).await;
    // Each gateway takes the locker's next counter and sends through its own connection: the
    // locker (protocol version 1, so the gateways take its turn) refuses a counter below one it has accepted, so whichever
    // message arrives second must never carry the lower counter.
    for round in 0..30u16 {
        let (through_a, through_b) = tokio::join!(
            a.commands().unlock(device("lk-1"), 1 + round % 2),
            b.commands().unlock(device("lk-1"), 3 + round % 2),
        );
        assert!(
            through_a.is_ok() && through_b.is_ok(),
            "round {round}: {through_a:?} {through_b:?}"
        );
    }
    handle.stop();
    b.run_until_stopped(async {}).await;
    a.run_until_stopped(async {}).await;
}
