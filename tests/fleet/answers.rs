//! Every API answer of a fleet test, kept, and checked against the final rows: an answer never
//! contradicts the books.

use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::harness::ANSWER_WITHIN;

/// What was asked, and through which gateway (0-based).
#[derive(Debug, Clone)]
pub enum Asked {
    /// A customer's rental at a locker.
    Rent { gateway: usize },
    /// A customer's pickup (the end of a rental).
    End { rental: Uuid, gateway: usize },
}

/// One answer: its status (`None`: the connection was lost, as with a gateway killed) and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub asked: Asked,
    pub status: Option<u16>,
    pub body: Value,
}

/// Sends `request` and keeps what came back.
pub async fn ask(asked: Asked, request: reqwest::RequestBuilder) -> Answer {
    match request.timeout(ANSWER_WITHIN).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or(Value::Null);
            Answer {
                asked,
                status: Some(status),
                body,
            }
        }
        Err(_) => Answer {
            asked,
            status: None,
            body: Value::Null,
        },
    }
}

/// The rental an answer names: the body's id (201, 200), the problem's subject (504), or the id
/// in a problem's detail ("(rental … cancelled)").
pub fn rental_of(answer: &Answer) -> Option<Uuid> {
    let body = &answer.body;
    let text = body["id"]
        .as_str()
        .or_else(|| body["subject"]["id"].as_str())
        .map(str::to_owned)
        .or_else(|| {
            let detail = body["detail"].as_str()?;
            let at = detail.find("(rental ")? + "(rental ".len();
            Some(detail.get(at..at + 36)?.to_owned())
        })?;
    text.parse().ok()
}

async fn state_of(pool: &PgPool, rental: Uuid) -> (String, Option<String>, Vec<String>) {
    sqlx::query_as(
        "SELECT r.state, c.door_result, r.flags FROM rentals r
         LEFT JOIN commands c ON c.id = r.start_command WHERE r.id = $1",
    )
    .bind(rental)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("rental {rental} is in the books: {e}"))
}

/// What the answers came to, by kind, for the test's report.
#[derive(Debug, Default)]
pub struct Tally {
    pub opened: usize,
    pub did_not_open: usize,
    pub not_known_yet: usize,
    pub refused_before_charging: usize,
    pub no_answer: usize,
    pub ended: usize,
    pub continued: usize,
    /// The codes of the rentals that did not open.
    pub why_not: Vec<String>,
    /// Answers (of any kind) each gateway gave.
    pub by_gateway: [usize; 3],
}

/// Checks every answer against the final rows (call once nothing is pending any more).
pub async fn check(pool: &PgPool, answers: &[Answer]) -> Tally {
    let mut tally = Tally::default();
    for answer in answers {
        let code = answer.body["code"].as_str().unwrap_or("");
        let (Asked::Rent { gateway } | Asked::End { gateway, .. }) = answer.asked;
        if answer.status.is_some() {
            tally.by_gateway[gateway] += 1;
        }
        let rental = rental_of(answer);
        match (&answer.asked, answer.status) {
            (_, None) => tally.no_answer += 1,
            (Asked::Rent { .. }, Some(201)) => {
                let id = rental.expect("a started rental has an id");
                let (state, door, flags) = state_of(pool, id).await;
                assert!(
                    state == "active" || state == "ended",
                    "{answer:?}: told opened, the books say {state}"
                );
                assert!(
                    door.as_deref() == Some("opened") || flags.iter().any(|f| f == "already_open"),
                    "{answer:?}: told opened, its door result is {door:?}"
                );
                tally.opened += 1;
            }
            (Asked::Rent { .. }, Some(504)) => {
                assert_eq!(code, "outcome_unknown", "{answer:?}");
                let id = rental.expect("a rental not known yet is named");
                let (state, _, _) = state_of(pool, id).await;
                assert!(
                    ["active", "ended", "cancelled"].contains(&state.as_str()),
                    "{answer:?}: not known yet, then {state}"
                );
                tally.not_known_yet += 1;
            }
            (Asked::Rent { .. }, Some(409 | 503))
                if [
                    "door_jammed",
                    "refused_by_device",
                    "device_offline",
                    "overloaded",
                ]
                .contains(&code) =>
            {
                let id = rental.expect("a rental that did not open is named");
                let (state, _, _) = state_of(pool, id).await;
                assert_eq!(state, "cancelled", "{answer:?}: told it did not open");
                tally.did_not_open += 1;
                tally.why_not.push(code.to_owned());
            }
            (Asked::Rent { .. }, Some(402 | 409 | 503)) => {
                // Refused before any money moved (no free door, the door busy, too many
                // rentals, the locks unavailable): no rental of it exists to check.
                assert!(
                    [
                        "no_free_door",
                        "door_busy",
                        "too_many_rentals",
                        "insufficient_funds",
                        "unavailable"
                    ]
                    .contains(&code),
                    "{answer:?}"
                );
                tally.refused_before_charging += 1;
            }
            (Asked::End { rental, .. }, Some(200)) => {
                let (state, _, _) = state_of(pool, *rental).await;
                assert_eq!(state, "ended", "{answer:?}: told ended");
                tally.ended += 1;
            }
            (Asked::End { rental, .. }, Some(504)) => {
                let (state, _, _) = state_of(pool, *rental).await;
                assert!(state == "ended" || state == "active", "{answer:?}: {state}");
                tally.not_known_yet += 1;
            }
            (Asked::End { rental, .. }, Some(409 | 503)) => {
                // The rental continued; it is still running unless a later pickup ended it.
                let (state, _, _) = state_of(pool, *rental).await;
                let ended_later = answers.iter().any(|a| {
                    matches!(a.asked, Asked::End { rental: r, .. } if r == *rental)
                        && a.status == Some(200)
                });
                assert!(
                    state == "active" || (state == "ended" && ended_later),
                    "{answer:?}: told the rental continues, the books say {state}"
                );
                tally.continued += 1;
            }
            (_, Some(status)) => panic!("an answer no client should get ({status}): {answer:?}"),
        }
    }
    tally
}

/// The books' own invariants: no door rented twice, nothing left half done, and every wallet
/// equal to its ledger with exactly its running rentals' deposits held.
pub async fn check_books(pool: &PgPool) {
    let doubled: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT device_id, door, count(*) FROM rentals WHERE state IN ('active', 'ending')
         GROUP BY device_id, door HAVING count(*) > 1",
    )
    .fetch_all(pool)
    .await
    .expect("rentals");
    assert!(doubled.is_empty(), "doors rented twice: {doubled:?}");
    let wallets: Vec<(Uuid, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT w.user_id, w.available, w.held,
                CAST(coalesce((SELECT sum(available_delta + held_delta) FROM ledger l
                               WHERE l.wallet_id = w.id), 0) AS BIGINT),
                CAST(coalesce((SELECT sum(deposit_held) FROM rentals r
                               WHERE r.user_id = w.user_id
                                 AND r.state IN ('pending', 'active', 'ending')), 0) AS BIGINT)
         FROM wallets w",
    )
    .fetch_all(pool)
    .await
    .expect("wallets");
    assert!(!wallets.is_empty());
    for (user, available, held, ledger, deposits) in wallets {
        assert_eq!(
            available + held,
            ledger,
            "{user}: the wallet is not its ledger"
        );
        assert_eq!(
            held, deposits,
            "{user}: held is not its running rentals' deposits"
        );
    }
}
