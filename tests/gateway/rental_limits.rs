//! The running-rentals limit holds under concurrency: one customer's parallel requests never get
//! more running rentals than `LOCKER_MAX_ACTIVE_RENTALS`, in both modes.

use serde_json::{Value, json};

use crate::command_helpers::online_locker;
use crate::helpers::in_both_modes;
use crate::rentals::{funded, money, plan, scalar};

in_both_modes! {
    /// Fifteen requests at once from one customer with money for all of them, three lockers of
    /// four doors: exactly three rentals (the limit), the rest refused with
    /// `too_many_rentals`, only three deposits held.
    async fn fifteen_parallel_rentals_of_one_customer_make_three(backend: Backend) {
        let app = backend
            .spawn_with(|config| {
                config.rate_limits.per_ip_per_minute = 100_000;
                config.rate_limits.per_user_per_minute = 100_000;
            })
            .await;
        plan(&app).await;
        let mut lockers = Vec::new();
        for id in ["lk-1", "lk-2", "lk-3", "lk-4"] {
            lockers.push(online_locker(&app, id).await);
        }
        let (token, user) = funded(&app, "greedy@example.com", 100_000).await;
        let mut requests = tokio::task::JoinSet::new();
        for n in 0..15 {
            let (http, url, token) = (app.http.clone(), app.url("/v1/rentals"), token.clone());
            requests.spawn(async move {
                let device = format!("lk-{}", n % 4 + 1);
                let response = http
                    .post(url)
                    .bearer_auth(token)
                    .json(&json!({ "device_id": device }))
                    .send()
                    .await
                    .expect("sent");
                let status = response.status().as_u16();
                let body: Value = response.json().await.expect("json");
                (status, body)
            });
        }
        let (mut rented, mut refused) = (0, 0);
        while let Some(joined) = requests.join_next().await {
            let (status, body) = joined.expect("task");
            match status {
                201 => rented += 1,
                409 => {
                    assert_eq!(body["code"], "too_many_rentals", "{body}");
                    refused += 1;
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!((rented, refused), (3, 12));
        let running: i64 = scalar(
            &app,
            "SELECT count(*) FROM rentals WHERE state IN ('pending', 'active', 'ending')",
        )
        .await;
        assert_eq!(running, 3);
        assert_eq!(money(&app, user).await, (100_000 - 3 * 2000, 3 * 2000));
    }
}
