//! Operators refund completed orders (issue 23): part, then the rest, each with its ledger entry
//! and audited with the reason; never more than was paid, never an order not completed, only by
//! admins; the console's orders page offers it; on both backends.

use serde_json::{Value, json};

use crate::accounts::{operator, operator_as};
use crate::command_helpers::online_locker;
use crate::helpers::{TestApp, in_both_modes};
use crate::orders::{order, product, stock};
use crate::rentals::funded;

async fn refund(app: &TestApp, token: &str, id: &str, body: Value) -> (u16, Value) {
    let path = format!("/v1/admin/orders/{id}/refund");
    app.json(reqwest::Method::POST, &path, token, Some(&body))
        .await
}

async fn available(app: &TestApp, token: &str) -> String {
    let wallet = app.get_json("/v1/wallet", token).await;
    wallet["available"].as_str().expect("available").to_owned()
}

in_both_modes! {
async fn a_completed_order_is_refunded_in_parts_never_beyond_its_total(backend: Backend) {
    let app = backend.spawn().await;
    let admin = operator(&app, "ops@example.com").await;
    let support = operator_as(&app, "s@example.com", locker_gateway::account::Role::Support).await;
    let _locker = online_locker(&app, "vend-1").await;
    let cola = product(&app, &admin, "cola", "2.50").await;
    stock(&app, &admin, "vend-1", 2, json!([{ "product_id": cola, "qty": 3 }])).await;
    let (token, _) = funded(&app, "buyer@example.com", 1000).await;
    let placed = order(&app, &token, json!({ "device_id": "vend-1", "items": [{ "product_id": cola, "qty": 2 }] })).await;
    assert_eq!(placed.status(), 201);
    let placed: Value = placed.json().await.expect("order");
    let id = placed["id"].as_str().expect("id").to_owned();
    assert_eq!((placed["state"].as_str(), placed["total"].as_str()), (Some("completed"), Some("5.00")));
    assert_eq!(available(&app, &token).await, "5.00");

    let (status, _) = refund(&app, &support, &id, json!({ "amount": "1.00", "reason": "dented can" })).await;
    assert_eq!(status, 403, "support does not move money");
    let (status, refunded) = refund(&app, &admin, &id, json!({ "amount": "1.00", "reason": "dented can" })).await;
    assert_eq!((status, refunded["refunded"].as_str()), (200, Some("1.00")), "{refunded}");
    assert_eq!(available(&app, &token).await, "6.00");
    let (status, problem) = refund(&app, &admin, &id, json!({ "amount": "4.50" })).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("not_refundable")));
    assert_eq!(available(&app, &token).await, "6.00", "nothing moved");
    // Without an amount: the rest.
    let (status, rest) = refund(&app, &admin, &id, json!({ "reason": "customer complaint" })).await;
    assert_eq!((status, rest["refunded"].as_str()), (200, Some("5.00")));
    assert_eq!(available(&app, &token).await, "10.00");
    let (status, problem) = refund(&app, &admin, &id, json!({ "amount": "0.01" })).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("not_refundable")));
    let (status, _) = refund(&app, &admin, &uuid::Uuid::now_v7().to_string(), json!({})).await;
    assert_eq!(status, 404);
    // Each refund is in the ledger and the audit log with its reason.
    let ledger = app.get_json("/v1/wallet/ledger", &token).await;
    let refunds: Vec<&Value> = ledger["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["kind"] == "refund")
        .collect();
    assert_eq!(refunds.len(), 2, "{ledger}");
    let audit = app.get_json("/v1/audit?action=order.refund", &admin).await;
    let reasons: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .filter_map(|e| e["detail"]["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["customer complaint", "dented can"]);
}
}
