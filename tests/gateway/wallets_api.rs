//! Wallets over HTTP: balances and ledger, operators' top-ups, the payment webhook.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::accounts::{customer, me_id, operator};
use crate::api::problem;
use crate::helpers::{TestApp, in_both_modes, on_storage};

async fn wallet(app: &TestApp, token: &str) -> Value {
    let response = app
        .http
        .get(app.url("/v1/wallet"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("wallet")
}

pub fn signed(body: &Value, secret: &str) -> (Vec<u8>, String) {
    let bytes = serde_json::to_vec(body).expect("json");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(&bytes);
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    (bytes, signature)
}

pub async fn webhook(app: &TestApp, body: &Value, secret: &str) -> reqwest::Response {
    let (bytes, signature) = signed(body, secret);
    app.http
        .post(app.url("/v1/payments/webhook"))
        .header("content-type", "application/json")
        .header("x-payment-signature", signature)
        .body(bytes)
        .send()
        .await
        .expect("sent")
}

in_both_modes! {
    /// An operator tops up (refused amounts leave no trace, every attempt audited); the customer sees the balance and the ledger.
    async fn an_operator_tops_up_and_the_customer_sees_balance_and_ledger(backend: Backend) {
        let app = backend.spawn().await;
        let user = customer(&app, "c@example.com").await;
        let admin = operator(&app, "ops@example.com").await;
        let empty = wallet(&app, &user).await;
        assert_eq!(
            (
                &empty["available"],
                &empty["held"],
                &empty["debt"],
                &empty["currency"]
            ),
            (
                &json!("0.00"),
                &json!("0.00"),
                &json!("0.00"),
                &json!("EUR")
            )
        );
        let id = me_id(&app, &user).await;
        let path = format!("/v1/wallets/{id}/top-ups");
        let top_up = |token: String, body: Value| {
            app.http
                .post(app.url(&path))
                .bearer_auth(token)
                .json(&body)
                .send()
        };
        let done = top_up(
            admin.clone(),
            json!({ "amount": "20.00", "reference": "cash desk 1" }),
        )
        .await
        .expect("sent");
        assert_eq!(done.status(), 200);
        assert_eq!(wallet(&app, &user).await["available"], "20.00");
        for bad in [
            json!({ "amount": "1.234" }),
            json!({ "amount": "-5" }),
            json!({ "amount": "0" }),
            json!({ "amount": 20.5 }),
        ] {
            let refused = top_up(admin.clone(), bad.clone()).await.expect("sent");
            problem(refused, 422, "invalid_amount").await;
        }
        problem(
            top_up(user.clone(), json!({ "amount": "5.00" }))
                .await
                .expect("sent"),
            403,
            "forbidden",
        )
        .await;
        let nobody = app
            .http
            .post(app.url(&format!("/v1/wallets/{}/top-ups", uuid::Uuid::now_v7())))
            .bearer_auth(&admin)
            .json(&json!({ "amount": "5.00" }))
            .send()
            .await
            .expect("sent");
        problem(nobody, 404, "not_found").await;
        let ledger: Value = app
            .http
            .get(app.url("/v1/wallet/ledger"))
            .bearer_auth(&user)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("ledger");
        let items = ledger["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "refused top-ups left no trace");
        assert_eq!(items[0]["kind"], "top_up");
        assert_eq!(items[0]["available_delta"], "20.00");
        assert_eq!(items[0]["reference"], "cash desk 1");
        let audited: i64 = on_storage!(&app.storage, |pool| sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = 'wallet.top_up'"
        )
        .fetch_one(pool)
        .await
        .expect("count"));
        // The top-up, four refused amounts (a JSON number too: it is read as an amount and refused
        // by the handler) and the unknown user (the customer's try is audited as a forbidden route).
        assert_eq!(audited, 6, "every operator attempt, refused ones too");
    }
}

in_both_modes! {
    /// The payment webhook is signed and applies each event once, even delivered twice at once.
    async fn the_payment_webhook_is_signed_and_applies_each_event_once(backend: Backend) {
        let app = backend.spawn().await;
        let user = customer(&app, "p@example.com").await;
        let id = me_id(&app, &user).await;
        let event = json!({ "event_id": "evt_1", "user_id": id, "amount": "15.50", "currency": "EUR" });
        let first = webhook(&app, &event, "test-webhook-secret").await;
        assert_eq!(first.status(), 200);
        let first: Value = first.json().await.expect("receipt");
        assert_eq!(first["applied"], true);
        let again: Value = webhook(&app, &event, "test-webhook-secret")
            .await
            .json()
            .await
            .expect("receipt");
        assert_eq!(again["applied"], false);
        assert_eq!(wallet(&app, &user).await["available"], "15.50");
        // Delivered twice at once: still applied once.
        let twin = json!({ "event_id": "evt_2", "user_id": id, "amount": "1.00", "currency": "EUR" });
        let (a, b) = tokio::join!(
            webhook(&app, &twin, "test-webhook-secret"),
            webhook(&app, &twin, "test-webhook-secret")
        );
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
        assert_eq!(wallet(&app, &user).await["available"], "16.50");
        problem(
            webhook(&app, &event, "wrong-secret").await,
            401,
            "unauthorized",
        )
        .await;
        let unsigned = app
            .http
            .post(app.url("/v1/payments/webhook"))
            .json(&event)
            .send()
            .await
            .expect("sent");
        problem(unsigned, 401, "unauthorized").await;
        let dollars =
            json!({ "event_id": "evt_3", "user_id": id, "amount": "1.00", "currency": "USD" });
        problem(
            webhook(&app, &dollars, "test-webhook-secret").await,
            422,
            "validation_failed",
        )
        .await;
        let events: i64 = on_storage!(&app.storage, |pool| sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE event_type = 'wallet.topped_up'"
        )
        .fetch_one(pool)
        .await
        .expect("count"));
        assert_eq!(events, 2);
        let (available, held, sum, _) =
            crate::wallets::books(&app.storage, id.parse().expect("uuid")).await;
        assert_eq!(available + held, sum);
    }
}
