//! The accounts' and the wallets' stores, called directly, on both backends (the store contract
//! suite): accounts registered once per email, logged in, tokens checked and revoked; every
//! movement of money written with its ledger entry, refused when it would break a balance, the
//! books adding up after each; a payment event applied once; a debt paid from a top-up.

use locker_gateway::account::{AccountError, Accounts, PasswordCost, Role};
use locker_gateway::money::Currency;
use locker_gateway::storage::Storage;
use locker_gateway::wallet::{Movement, WalletError, Wallets, store};
use uuid::Uuid;

use crate::helpers::{in_both_modes, on_storage};

fn accounts(storage: &Storage) -> Accounts {
    Accounts::on(
        storage.clone(),
        PasswordCost::TEST,
        std::time::Duration::from_secs(3600),
    )
}

/// available + held of the wallet, and the sums of its ledger's deltas.
async fn books(storage: &Storage, user: Uuid) -> ((i64, i64), (i64, i64)) {
    on_storage!(storage, |pool| {
        let balance: (i64, i64) =
            sqlx::query_as("SELECT available, held FROM wallets WHERE user_id = $1")
                .bind(user)
                .fetch_one(pool)
                .await
                .expect("a wallet");
        let sums: (i64, i64) = sqlx::query_as(
            "SELECT CAST(coalesce(sum(l.available_delta), 0) AS BIGINT),
                    CAST(coalesce(sum(l.held_delta), 0) AS BIGINT)
             FROM ledger l JOIN wallets w ON w.id = l.wallet_id WHERE w.user_id = $1",
        )
        .bind(user)
        .fetch_one(pool)
        .await
        .expect("sums");
        (balance, sums)
    })
}

in_both_modes! {
    /// Accounts: one per email (any case), a log-in gives a token that authenticates until it
    /// is revoked; a wrong password gives nothing.
    async fn accounts_are_registered_once_and_tokens_checked(backend: Backend) {
        let storage = backend.storage();
        let accounts = accounts(&storage);
        let user = accounts
            .register("st-a@example.com", "correct horse battery", Role::User)
            .await
            .expect("registered");
        assert!(locker_gateway::account::exists(&storage, user.id).await.expect("read"));
        assert!(!locker_gateway::account::exists(&storage, Uuid::now_v7()).await.expect("read"));
        let again = accounts
            .register("ST-A@example.com", "correct horse battery", Role::User)
            .await;
        assert!(matches!(again, Err(AccountError::EmailTaken)), "{again:?}");
        assert!(accounts.log_in("st-a@example.com", "wrong horse battery").await.is_err());
        let session = accounts
            .log_in("st-a@example.com", "correct horse battery")
            .await
            .expect("logged in");
        let who = accounts.authenticate(&session.token).await.expect("read").expect("known");
        assert_eq!(who.id, user.id);
        assert!(accounts.revoke_token(&session.token).await.expect("revoked"));
        assert!(accounts.authenticate(&session.token).await.expect("read").is_none());
        assert!(!accounts.revoke_token(&session.token).await.expect("read"), "once");
        assert_eq!(accounts.purge_expired_tokens().await.expect("purged"), 0);
    }
}

in_both_modes! {
    /// Wallets: top-up, hold, capture, release, charge, refund and adjustment each move the
    /// balance with one ledger entry; what would go below zero is refused and writes nothing;
    /// the ledger always adds up to the balance.
    async fn every_movement_is_written_with_its_ledger_entry(backend: Backend) {
        let storage = backend.storage();
        let user = accounts(&storage)
            .register("st-w@example.com", "correct horse battery", Role::User)
            .await
            .expect("registered")
            .id;
        let wallets = Wallets::on(storage.clone(), Currency::default());
        assert!(store::find(&storage, user).await.expect("read").is_none(), "no wallet yet");
        let steps: [(Movement, (i64, i64)); 7] = [
            (Movement::top_up(10_000).for_("card"), (10_000, 0)),
            (Movement::hold(3_000).for_("rental"), (7_000, 3_000)),
            (Movement::capture(1_000).for_("fee"), (7_000, 2_000)),
            (Movement::release(2_000).for_("rental over"), (9_000, 0)),
            (Movement::charge(500).for_("order"), (8_500, 0)),
            (Movement::refund(500).for_("order cancelled"), (9_000, 0)),
            (Movement::adjustment(-1_000).for_("correction"), (8_000, 0)),
        ];
        for (movement, expected) in steps {
            let balance = wallets.change(user, &movement).await.expect("moved");
            assert_eq!((balance.available, balance.held), expected, "{movement:?}");
            let (stored, sums) = books(&storage, user).await;
            assert_eq!(stored, expected);
            assert_eq!(sums, expected, "the ledger adds up after {movement:?}");
        }
        for refused in [
            Movement::hold(8_001),
            Movement::charge(8_001),
            Movement::capture(1),
            Movement::release(1),
        ] {
            let result = wallets.change(user, &refused).await;
            assert!(result.is_err(), "{refused:?} must be refused");
        }
        assert!(matches!(
            wallets.change(user, &Movement::hold(8_001)).await,
            Err(WalletError::InsufficientFunds { .. })
        ));
        assert_eq!(books(&storage, user).await, ((8_000, 0), (8_000, 0)), "nothing written");
        let ledger = wallets.ledger(user, None, 100).await.expect("a ledger");
        assert_eq!(ledger.len(), 7);
        assert_eq!(ledger[0].kind, "adjustment", "newest first");
        let older = wallets.ledger(user, Some(ledger[0].id), 2).await.expect("a page");
        assert_eq!(older.len(), 2);
        assert_eq!(older[0].id, ledger[1].id);
        assert_eq!(wallets.balance(user).await.expect("read").available, 8_000);
        assert!(matches!(
            wallets.top_up(user, 0, "nothing").await,
            Err(WalletError::Invalid(_))
        ));
    }
}

in_both_modes! {
    /// A payment event is seen once; a debt is paid first from the next top-up.
    async fn payments_are_applied_once_and_debts_paid_first(backend: Backend) {
        let storage = backend.storage();
        let user = accounts(&storage)
            .register("st-p@example.com", "correct horse battery", Role::User)
            .await
            .expect("registered")
            .id;
        let wallets = Wallets::on(storage.clone(), Currency::default());
        wallets.top_up(user, 1_000, "first").await.expect("topped up");
        assert!(!store::payment_seen(&storage, "evt-1").await.expect("read"));
        // A debt of 300 beyond what the wallet had, then a top-up of 1,000 pays it first.
        let balance = wallets
            .change_many_with(
                user,
                |_| Ok((vec![Movement::charge(1_000).for_("rental")], 300)),
                |_| Box::pin(async { Ok(()) }),
            )
            .await
            .expect("charged with a debt");
        assert_eq!((balance.available, balance.debt), (0, 300));
        let balance = wallets
            .top_up_with(user, 1_000, "payment evt-1", |work| {
                Box::pin(async move { Ok(work.record_payment("evt-1", 1_000).await?) })
            })
            .await
            .expect("topped up");
        assert_eq!((balance.available, balance.debt), (700, 0));
        assert!(store::payment_seen(&storage, "evt-1").await.expect("read"));
        let twice = wallets
            .top_up_with(user, 1_000, "payment evt-1", |work| {
                Box::pin(async move { Ok(work.record_payment("evt-1", 1_000).await?) })
            })
            .await;
        assert!(twice.is_err(), "the same payment event is applied once");
        assert_eq!(books(&storage, user).await.0, (700, 0), "nothing written the second time");
    }
}

in_both_modes! {
    /// A password change keeps the token it was made with and ends the others; an erased
    /// account keeps no email, no password and no token.
    async fn a_password_change_ends_other_tokens_and_erasure_ends_all(backend: Backend) {
        let storage = backend.storage();
        let accounts = accounts(&storage);
        let user = accounts
            .register("st-e@example.com", "correct horse battery", Role::User)
            .await
            .expect("registered");
        let here = accounts.log_in("st-e@example.com", "correct horse battery").await.expect("in");
        let there = accounts.log_in("st-e@example.com", "correct horse battery").await.expect("in");
        let wrong = accounts
            .change_password(&user, "wrong horse battery", "staple battery horse", &here.token)
            .await;
        assert!(matches!(wrong, Err(AccountError::Invalid { field: "current_password", .. })), "{wrong:?}");
        accounts
            .change_password(&user, "correct horse battery", "staple battery horse", &here.token)
            .await
            .expect("changed");
        assert!(accounts.authenticate(&here.token).await.expect("read").is_some(), "kept");
        assert!(accounts.authenticate(&there.token).await.expect("read").is_none(), "ended");
        assert!(accounts.log_in("st-e@example.com", "correct horse battery").await.is_err());
        accounts.log_in("st-e@example.com", "staple battery horse").await.expect("the new one");
        accounts.erase(user.id).await.expect("erased");
        assert!(accounts.authenticate(&here.token).await.expect("read").is_none());
        assert!(accounts.log_in("st-e@example.com", "staple battery horse").await.is_err());
        let email: String = on_storage!(&storage, |pool| sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
            .bind(user.id)
            .fetch_one(pool)
            .await
            .expect("kept for the books"));
        assert!(email.starts_with("deleted-"), "{email}");
    }
}
