//! Three gateways as processes: rentals, pickups and maintenance unlocks through each gateway for
//! lockers whose answers reach another (the broker shares the lockers' uplinks among the
//! gateways); two gateways commanding one locker at once (a version 1 and a version 2 locker);
//! a gateway killed with `kill -9` during a storm of rentals, then restarted. Every answer is
//! checked against the final rows.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;
use sqlx::PgPool;

use crate::answers::{Answer, Asked, ask, check, check_books, rental_of};
use crate::harness::{DOOR_LOCK_MS, Fleet, LEASE_SECS, speaks};
use crate::one_at_a_time;

/// Lockers that rent doors (`lk-01` … `lk-18`); `lk-19` (protocol version 2) and `lk-20`
/// (version 1) are for maintenance.
const RENTING: usize = 18;

/// Customer `n` rents a door of size `m` at locker `n % RENTING` through gateway `gateway`.
async fn rent(fleet: &Fleet, token: &str, customer: usize, gateway: usize) -> Answer {
    let locker = &fleet.ids[customer % RENTING];
    let request = fleet
        .http
        .post(fleet.url(gateway, "/v1/rentals"))
        .bearer_auth(token)
        .json(&json!({ "device_id": locker, "size": "m" }));
    ask(Asked::Rent { gateway }, request).await
}

#[sqlx::test]
async fn three_gateways_serve_every_locker_and_lose_nothing_when_one_is_killed(pool: PgPool) {
    let _one = one_at_a_time().await;
    let fleet = Fleet::start(pool.clone(), 20, "").await;
    let admin = fleet.operator().await;
    let customers = fleet.customers(36).await;
    let mut answers = Vec::new();

    // Rentals through every gateway, two customers per locker: the lockers' answers reach
    // whichever gateway the broker hands them to.
    let first = join_all(
        customers
            .iter()
            .enumerate()
            .map(|(n, c)| rent(&fleet, &c.token, n, n % 3)),
    )
    .await;
    for answer in &first {
        assert_eq!(answer.status, Some(201), "{answer:?}");
    }
    answers.extend(first.iter().cloned());

    // Two gateways commanding one locker at once, and the third too: a version 1 locker (lk-20,
    // one gateway at a time through its turn) and a version 2 one (lk-19, all at once).
    assert_eq!((speaks(20), speaks(19)), (1, 2));
    let unlocks = join_all(["lk-20", "lk-19"].into_iter().flat_map(|locker| {
        let fleet = &fleet;
        let admin = &admin;
        (0..3).map(move |gateway| async move {
            let path = format!("/v1/devices/{locker}/doors/{}/unlock", gateway + 1);
            fleet
                .http
                .post(fleet.url(gateway, &path))
                .bearer_auth(admin)
                .json(&json!({ "reason": "fleet test" }))
                .send()
                .await
                .expect("sent")
        })
    }))
    .await;
    for response in unlocks {
        assert_eq!(response.status(), 200, "a maintenance unlock");
        let result: serde_json::Value = response.json().await.expect("json");
        let command = result["command_id"].as_i64().expect("a command id");
        let state: String = sqlx::query_scalar("SELECT state FROM commands WHERE id = $1")
            .bind(command)
            .fetch_one(&pool)
            .await
            .expect("command");
        assert_eq!(state, "executed", "told executed: {result}");
    }

    // Pickups of half the rentals, each through another gateway than the one that started it.
    let ends = join_all(first.iter().take(18).enumerate().map(|(n, started)| {
        let rental = rental_of(started).expect("started");
        let gateway = (n + 1) % 3;
        let request = fleet
            .http
            .post(fleet.url(gateway, &format!("/v1/rentals/{rental}/end")))
            .bearer_auth(&customers[n].token);
        ask(Asked::End { rental, gateway }, request)
    }))
    .await;
    for answer in &ends {
        assert_eq!(answer.status, Some(200), "{answer:?}");
    }
    answers.extend(ends);

    // A storm of rentals through all three gateways; gateway 3 is killed in the middle of it.
    // (Uplinks the broker had handed to gateway 3 and it had not written are lost with it: an
    // opening event among them leaves its rental "did not open" on another gateway, cancelled
    // with its hold released, as the books say; see the README on a gateway that dies.)
    let storm = join_all(
        customers
            .iter()
            .enumerate()
            .map(|(n, c)| rent(&fleet, &c.token, n + 7, n % 3)),
    );
    let kill = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        fleet.signal(2, "-KILL").await;
        Instant::now()
    };
    let (storm, killed_at) = tokio::join!(storm, kill);
    let lost = storm.iter().filter(|a| a.status.is_none()).count();
    answers.extend(storm);

    // What gateway 3 had in flight is settled by the others: its lease expires, then its door
    // locks, then they ask the lockers.
    let limit = Duration::from_secs(LEASE_SECS)
        + Duration::from_millis(DOOR_LOCK_MS)
        + Duration::from_secs(10);
    fleet
        .settled(limit.saturating_sub(killed_at.elapsed()))
        .await;
    // Restarted, it serves again, with the others.
    fleet.restart(2).await;
    let again = join_all(
        customers
            .iter()
            .enumerate()
            .skip(30)
            .map(|(n, c)| rent(&fleet, &c.token, n + 11, n % 3)),
    )
    .await;
    for answer in &again {
        assert!(
            matches!(answer.status, Some(201 | 409)),
            "after the restart: {answer:?}"
        );
    }
    answers.extend(again);
    fleet.settled(limit).await;

    let tally = check(&pool, &answers).await;
    check_books(&pool).await;
    // No door jams here. A "did not open" comes only from an opening event lost with the killed
    // gateway, and only at a version 1 locker: a version 2 locker's state report says what its
    // door did (`door_results`), so the gateway that asks learns it.
    for answer in answers.iter().filter(|a| a.body["code"] == "door_jammed") {
        let rental = rental_of(answer).expect("named");
        let locker: String = sqlx::query_scalar("SELECT device_id FROM rentals WHERE id = $1")
            .bind(rental)
            .fetch_one(&pool)
            .await
            .expect("rental");
        let n: usize = locker["lk-".len()..].parse().expect("numbered");
        assert_eq!(
            speaks(n),
            1,
            "{locker} (protocol version 2) answered {answer:?}"
        );
    }
    eprintln!("fleet: {tally:?}; {lost} requests lost with the killed gateway");
    assert!(tally.opened >= 36 + 6, "{tally:?}");
    assert_eq!(tally.ended, 18, "{tally:?}");
    assert!(tally.by_gateway.iter().all(|&n| n >= 12), "{tally:?}");
    fleet.stop_lockers();
}
