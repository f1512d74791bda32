//! A rolling upgrade: the three gateways stopped with SIGTERM and started again one at a time
//! while customers keep renting and picking up through any gateway (a client whose connection
//! is refused tries the next gateway, as a load balancer would; one lost on a connection the
//! stopping gateway closed is sent again with its `Idempotency-Key`). No request gets a 5xx, no
//! command is lost, every operation happens once, and the books agree with every answer.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::answers::{Answer, Asked, check, check_books, rental_of};
use crate::harness::{ANSWER_WITHIN, DOOR_LOCK_MS, Fleet, LEASE_SECS};
use crate::one_at_a_time;

/// What the clients saw besides the answers.
#[derive(Debug, Default)]
struct Seen {
    answers: Mutex<Vec<Answer>>,
    /// Connections refused (a gateway stopping or stopped): tried elsewhere.
    refused: AtomicUsize,
    /// Requests lost on a connection the gateway closed as it stopped (a keep-alive connection
    /// closed under a request: the client cannot know whether it was taken), sent again with the
    /// same `Idempotency-Key` to the next gateway, as a careful client does.
    resent: Mutex<Vec<String>>,
}

/// Sends what `request` builds (with `key` as its `Idempotency-Key`) to gateway `first`, then
/// to the next ones while the connection is refused or lost; an operation still in progress
/// elsewhere is asked again. `None` if no gateway answered for a while (the caller tries later).
async fn ask_any(
    fleet: &Fleet,
    seen: &Seen,
    first: usize,
    key: &str,
    asked: impl Fn(usize) -> Asked,
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder,
) -> Option<Answer> {
    for step in 0..12 {
        let gateway = (first + step) % 3;
        let sent = request(&fleet.http, gateway)
            .header("Idempotency-Key", key)
            .timeout(ANSWER_WITHIN)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = Some(response.status().as_u16());
                let body = response.json().await.unwrap_or(Value::Null);
                if body["code"] == "idempotency_in_progress" {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let answer = Answer {
                    asked: asked(gateway),
                    status,
                    body,
                };
                seen.answers.lock().expect("answers").push(answer.clone());
                return Some(answer);
            }
            Err(e) if e.is_connect() => {
                seen.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let lost = format!("gateway {}: {e:?}", gateway + 1);
                seen.resent.lock().expect("resent").push(lost);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    None
}

/// Customer `n` rents at one locker and picks up through another gateway, again and again,
/// until `stop`.
async fn keep_renting(fleet: &Fleet, seen: &Seen, token: &str, n: usize, stop: &AtomicBool) {
    let locker = fleet.ids[n % 18].clone();
    let mut round = n;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let rent = |http: &reqwest::Client, gateway: usize| {
            http.post(fleet.url(gateway, "/v1/rentals"))
                .bearer_auth(token)
                .json(&json!({ "device_id": locker, "size": "m" }))
        };
        let gateway = |gateway| Asked::Rent { gateway };
        let key = format!("rent-{n}-{round}");
        let started = loop {
            if let Some(answer) = ask_any(fleet, seen, round % 3, &key, gateway, rent).await {
                break answer;
            }
        };
        let Some(rental) = rental_of(&started).filter(|_| started.status == Some(201)) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // The customer puts something in and closes the door (the simulated person closes it
        // 100 ms after it opened) before coming back for it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Picked up through another gateway, until it has ended (each attempt with a key of its
        // own: a key names one attempt, whose answer it keeps).
        for attempt in 0.. {
            let end = |http: &reqwest::Client, gateway: usize| {
                http.post(fleet.url(gateway, &format!("/v1/rentals/{rental}/end")))
                    .bearer_auth(token)
            };
            let asked = |gateway| Asked::End { rental, gateway };
            let key = format!("end-{rental}-{attempt}");
            match ask_any(fleet, seen, (round + 1) % 3, &key, asked, end).await {
                // Not picked up yet (the locker offline, the door busy or jammed, no answer in
                // time): try again a little later, as the customer would.
                None => {}
                Some(answer)
                    if matches!(answer.status, Some(409 | 503 | 504))
                        && answer.body["code"] != "rental_not_active" => {}
                Some(_) => break,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[sqlx::test]
async fn gateways_stopped_and_started_one_at_a_time_lose_no_request(pool: PgPool) {
    let _one = one_at_a_time().await;
    let fleet = Fleet::start(pool.clone(), 20, "").await;
    let _admin = fleet.operator().await;
    let customers = fleet.customers(18).await;
    let seen = Seen::default();
    let stop = AtomicBool::new(false);
    let load = join_all(
        customers
            .iter()
            .enumerate()
            .map(|(n, c)| keep_renting(&fleet, &seen, &c.token, n, &stop)),
    );
    let upgrade = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for n in 0..3 {
            let before = seen.answers.lock().expect("answers").len();
            let status = fleet.signal(n, "-TERM").await;
            assert!(
                status.success(),
                "gateway {} stopped cleanly: {status}",
                n + 1
            );
            fleet.restart(n).await;
            // The others carried the load meanwhile, and the restarted one takes its share.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = seen.answers.lock().expect("answers").len();
            assert!(after > before + 10, "answers went on: {before} -> {after}");
        }
        stop.store(true, Ordering::Relaxed);
    };
    tokio::join!(load, upgrade);
    let limit = Duration::from_secs(LEASE_SECS)
        + Duration::from_millis(DOOR_LOCK_MS)
        + Duration::from_secs(10);
    fleet.settled(limit).await;
    let answers = seen.answers.lock().expect("answers").clone();
    let resent = seen.resent.lock().expect("resent").clone();
    let errors: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status.is_some_and(|s| s >= 500))
        .collect();
    assert!(errors.is_empty(), "5xx during the upgrade: {errors:?}");
    let tally = check(&pool, &answers).await;
    check_books(&pool).await;
    // No command left in flight or unknown: each was answered, or never sent.
    let lost: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, state FROM commands WHERE state NOT IN ('executed', 'refused', 'cancelled', 'expired')",
    )
    .fetch_all(&pool)
    .await
    .expect("commands");
    assert!(lost.is_empty(), "commands not settled: {lost:?}");
    let refused = seen.refused.load(Ordering::Relaxed);
    eprintln!(
        "upgrade: {tally:?}; {refused} connections refused and tried elsewhere; {} requests lost on a closing connection and sent again: {resent:?}",
        resent.len()
    );
    assert!(tally.opened > 30 && tally.ended > 30, "{tally:?}");
    // Every door opened and said so: no locker's event was lost with a stopping gateway (it
    // would read as a jam, or as a door that never opened).
    assert_eq!(tally.did_not_open, 0, "{tally:?}");
    assert_eq!(tally.continued, 0, "{tally:?}");
    fleet.stop_lockers();
}
