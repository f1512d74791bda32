//! Wallets: concurrent changes apply once or not at all, and the ledger always adds up. The
//! contract is written once and run against both storages: a real PostgreSQL (fleet mode) and a
//! SQLite file (edge mode).

use std::collections::HashMap;

use locker_gateway::money::Currency;
use locker_gateway::storage::Storage;
use locker_gateway::wallet::{Movement, WalletError, Wallets};
use sqlx::PgPool;
use uuid::Uuid;

async fn user(pool: &PgPool) -> Uuid {
    user_on(&Storage::Postgres(pool.clone())).await
}

/// A customer registered on `storage`.
pub async fn user_on(storage: &Storage) -> Uuid {
    let accounts = locker_gateway::account::Accounts::on(
        storage.clone(),
        locker_gateway::account::PasswordCost::TEST,
        std::time::Duration::from_secs(60),
    );
    accounts
        .register(
            "w@example.com",
            "a long password",
            locker_gateway::account::Role::User,
        )
        .await
        .expect("user")
        .id
}

/// available + held, and the sum of the ledger.
pub async fn books(storage: &Storage, user: Uuid) -> (i64, i64, i64, i64) {
    const BOOKS: &str = "SELECT w.available, w.held,
                CAST(coalesce((SELECT sum(available_delta + held_delta) FROM ledger l
                               WHERE l.wallet_id = w.id), 0) AS BIGINT),
                (SELECT count(*) FROM ledger l WHERE l.wallet_id = w.id)
         FROM wallets w WHERE w.user_id = $1";
    crate::helpers::on_storage!(storage, |pool| sqlx::query_as(BOOKS)
        .bind(user)
        .fetch_one(pool)
        .await
        .expect("books"))
}

/// What the wallet API says of a user's books: (available, held, sum of the ledger, entries).
async fn books_of(wallets: &Wallets, user: Uuid) -> (i64, i64, i64, i64) {
    let balance = wallets.balance(user).await.expect("balance");
    let ledger = wallets.ledger(user, None, 100_000).await.expect("ledger");
    let sum = ledger
        .iter()
        .map(|e| e.available_delta + e.held_delta)
        .sum();
    (balance.available, balance.held, sum, ledger.len() as i64)
}

#[sqlx::test]
async fn a_thousand_concurrent_changes_apply_once_or_leave_no_trace(pool: PgPool) {
    let user = user(&pool).await;
    let wallets = Wallets::new(pool.clone(), Currency::default());
    a_thousand_concurrent_changes(&wallets, user).await;
    // The database's own sums agree with what the API says.
    let (available, held, sum, _) = books(&pool.clone().into(), user).await;
    assert_eq!(available + held, sum);
}

#[tokio::test]
async fn on_sqlite_a_thousand_concurrent_changes_apply_once_or_leave_no_trace() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    let user = user_on(&storage).await;
    let wallets = Wallets::on(storage, Currency::default());
    a_thousand_concurrent_changes(&wallets, user).await;
}

async fn a_thousand_concurrent_changes(wallets: &Wallets, user: Uuid) {
    wallets
        .change(user, &Movement::top_up(100_000))
        .await
        .expect("funded");
    wallets
        .change(user, &Movement::hold(20_000))
        .await
        .expect("held");
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..1000 {
        let wallets = wallets.clone();
        tasks.spawn(async move {
            let (kind, movement) = match n % 4 {
                0 => ("top_up", Movement::top_up(100)),
                1 => ("hold", Movement::hold(200)),
                2 => ("capture", Movement::capture(50)),
                _ => ("release", Movement::release(50)),
            };
            (kind, wallets.change(user, &movement).await)
        });
    }
    let mut applied: HashMap<&str, i64> = HashMap::new();
    let mut busy = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task") {
            (kind, Ok(_)) => *applied.entry(kind).or_default() += 1,
            (_, Err(WalletError::Busy)) => busy += 1,
            (_, Err(e)) => panic!("unexpected failure: {e}"),
        }
    }
    let n = |k| applied.get(k).copied().unwrap_or(0);
    let (available, held, ledger_sum, entries) = books_of(wallets, user).await;
    assert_eq!(
        entries,
        2 + n("top_up") + n("hold") + n("capture") + n("release")
    );
    assert_eq!(
        entries - 2 + busy,
        1000,
        "every change either applied or refused"
    );
    assert_eq!(
        available,
        100_000 - 20_000 + 100 * n("top_up") - 200 * n("hold") + 50 * n("release")
    );
    assert_eq!(
        held,
        20_000 + 200 * n("hold") - 50 * n("capture") - 50 * n("release")
    );
    assert_eq!(available + held, ledger_sum, "the ledger adds up");
    assert!(available >= 0 && held >= 0);
    assert!(n("top_up") > 0 && n("hold") > 0, "{applied:?}, busy {busy}");
}

#[sqlx::test]
async fn a_change_beyond_the_balance_is_refused_and_writes_nothing(pool: PgPool) {
    let user = user(&pool).await;
    let wallets = Wallets::new(pool.clone(), Currency::default());
    a_change_beyond_the_balance_is_refused(&wallets, user).await;
    // Even a writer that skipped the checks is stopped by the database.
    let negative = sqlx::query("UPDATE wallets SET available = -1 WHERE user_id = $1")
        .bind(user)
        .execute(&pool)
        .await;
    assert!(negative.is_err(), "the CHECK refuses a negative balance");
}

#[tokio::test]
async fn on_sqlite_a_change_beyond_the_balance_is_refused_and_writes_nothing() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    let wallets = Wallets::on(storage.clone(), Currency::default());
    let user = user_on(&storage).await;
    a_change_beyond_the_balance_is_refused(&wallets, user).await;
    let Storage::Sqlite(pool) = &storage else {
        panic!("a SQLite storage")
    };
    let negative = sqlx::query("UPDATE wallets SET available = -1 WHERE user_id = $1")
        .bind(user)
        .execute(pool)
        .await;
    assert!(negative.is_err(), "the CHECK refuses a negative balance");
    let unbalanced = sqlx::query(
        "INSERT INTO ledger (wallet_id, kind, available_delta, held_delta, available_after, held_after)
         SELECT id, 'top_up', 0, 0, 0, 0 FROM wallets",
    )
    .execute(pool)
    .await;
    assert!(
        unbalanced.is_err(),
        "the CHECK refuses an entry that moves nothing"
    );
}

async fn a_change_beyond_the_balance_is_refused(wallets: &Wallets, user: Uuid) {
    wallets
        .change(user, &Movement::top_up(500))
        .await
        .expect("funded");
    let err = wallets
        .change(user, &Movement::hold(501))
        .await
        .expect_err("too much");
    assert!(
        matches!(
            err,
            WalletError::InsufficientFunds {
                needed: 501,
                have: 500
            }
        ),
        "{err}"
    );
    let err = wallets
        .change(user, &Movement::capture(1))
        .await
        .expect_err("nothing held");
    assert!(
        matches!(err, WalletError::InsufficientFunds { .. }),
        "{err}"
    );
    assert_eq!(books_of(wallets, user).await, (500, 0, 500, 1));
    // A debt (a rental that cost more than there was), then a top-up pays it first.
    let owing = wallets
        .change_many_with(
            user,
            |_| Ok((Vec::new(), 100)),
            |_| Box::pin(async { Ok(()) }),
        )
        .await
        .expect("debt");
    assert_eq!(owing.debt, 100);
    let balance = wallets
        .top_up(user, 300, "payment p-1")
        .await
        .expect("topped up");
    assert_eq!((balance.available, balance.debt), (700, 0));
    assert_eq!(books_of(wallets, user).await, (700, 0, 700, 3));
}

/// A payment-provider event tops up once, on either storage: a second delivery is refused by
/// the database with everything it would have written.
async fn a_payment_event_is_applied_once(storage: Storage) {
    use locker_gateway::wallet::store::payment_seen;
    let user = user_on(&storage).await;
    let wallets = Wallets::on(storage.clone(), Currency::default());
    assert!(!payment_seen(&storage, "evt-1").await.expect("read"));
    let apply = || {
        wallets.top_up_with(user, 500, "payment evt-1", |work| {
            Box::pin(async move { Ok(work.record_payment("evt-1", 500).await?) })
        })
    };
    let first = apply().await.expect("applied");
    assert_eq!(first.available, 500);
    assert!(payment_seen(&storage, "evt-1").await.expect("read"));
    match apply().await {
        Err(WalletError::Storage(sqlx::Error::Database(e))) if e.is_unique_violation() => {}
        other => panic!("a second delivery was not refused: {other:?}"),
    }
    assert_eq!(
        books_of(&wallets, user).await,
        (500, 0, 500, 1),
        "the refused delivery left nothing"
    );
}

#[sqlx::test]
async fn a_payment_event_is_applied_once_on_postgresql(pool: PgPool) {
    a_payment_event_is_applied_once(Storage::Postgres(pool)).await;
}

#[tokio::test]
async fn a_payment_event_is_applied_once_on_sqlite() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    a_payment_event_is_applied_once(storage).await;
}
