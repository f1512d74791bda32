//! The audit log on either storage: every entry kept with who, what and how it ended; read
//! newest first, filtered and paged.

use locker_gateway::account::{Accounts, PasswordCost, Role};
use locker_gateway::audit::{Filter, Outcome, list, record};
use locker_gateway::storage::Storage;
use serde_json::json;
use sqlx::PgPool;

async fn entries_are_kept_and_read_back(storage: Storage) {
    let accounts = Accounts::on(
        storage.clone(),
        PasswordCost::TEST,
        std::time::Duration::from_secs(60),
    );
    let admin = accounts
        .register("op@example.com", "a long password", Role::Admin)
        .await
        .expect("operator");
    let long_action = "x".repeat(300);
    record(
        &storage,
        Some(&admin),
        "device.provision",
        Some("lk-1"),
        Outcome::Ok,
        json!({}),
    )
    .await
    .expect("recorded");
    record(
        &storage,
        Some(&admin),
        "door.unlock",
        Some("lk-1/3"),
        Outcome::Refused,
        json!({ "reason": "offline" }),
    )
    .await
    .expect("recorded");
    record(
        &storage,
        None,
        &long_action,
        None,
        Outcome::Failed,
        json!({ "error": "boom" }),
    )
    .await
    .expect("recorded, truncated");
    let all = list(
        &storage,
        &Filter {
            limit: 10,
            ..Filter::default()
        },
    )
    .await
    .expect("listed");
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![&long_action[..128], "door.unlock", "device.provision"],
        "newest first"
    );
    assert_eq!(all[1].actor_id, Some(admin.id));
    assert_eq!(all[1].actor_email.as_deref(), Some("op@example.com"));
    assert_eq!(all[1].detail["reason"], "offline");
    assert_eq!(all[1].target.as_deref(), Some("lk-1/3"));
    let listed = |filter: Filter| {
        let storage = storage.clone();
        async move { list(&storage, &filter).await.expect("listed") }
    };
    let refused = listed(Filter {
        outcome: Some("refused".into()),
        limit: 10,
        ..Filter::default()
    })
    .await;
    assert_eq!(refused.len(), 1);
    let by_admin = listed(Filter {
        actor_id: Some(admin.id),
        limit: 10,
        ..Filter::default()
    })
    .await;
    assert_eq!(by_admin.len(), 2);
    let by_action = listed(Filter {
        action: Some("device.provision".into()),
        limit: 10,
        ..Filter::default()
    })
    .await;
    assert_eq!(by_action.len(), 1);
    let first_page = listed(Filter {
        limit: 2,
        ..Filter::default()
    })
    .await;
    let next = listed(Filter {
        before: first_page.last().map(|e| e.id),
        limit: 2,
        ..Filter::default()
    })
    .await;
    assert_eq!(
        next.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        vec!["device.provision"]
    );
}

#[sqlx::test]
async fn entries_are_kept_and_read_back_on_postgresql(pool: PgPool) {
    entries_are_kept_and_read_back(Storage::Postgres(pool)).await;
}

#[tokio::test]
async fn entries_are_kept_and_read_back_on_sqlite() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    entries_are_kept_and_read_back(storage).await;
}
