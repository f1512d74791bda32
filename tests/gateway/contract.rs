//! The OpenAPI document against what the handlers really return: every documented operation is
//! called, and its status and body must be documented and match the schema.

use serde_json::Value;
use sqlx::PgPool;

pub use crate::contract_check::{check, conforms, openapi};

#[sqlx::test]
async fn every_documented_operation_answers_as_documented(pool: PgPool) {
    let app = crate::helpers::spawn_app_with(pool, |c| {
        c.broker_hook_secret = Some("contract-hook-secret".into());
    })
    .await;
    let doc = openapi(&app).await;
    // Each operation, as a client calls it; adding a route means adding it here, and a
    // documented route missing here fails below.
    let account = serde_json::json!({ "email": "f@example.com", "password": "a long password" });
    let token = crate::accounts::customer(&app, "g@example.com").await;
    let admin = crate::accounts::operator(&app, "ops@example.com").await;
    let leaving = crate::accounts::customer(&app, "leaving@example.com").await;
    app.provision("lk-1", 4).await;
    app.provision("lk-2", 4).await;
    let queued = app
        .app
        .commands()
        .queue(
            crate::helpers::device("lk-1"),
            locker_gateway::command::Command::Unlock { door: 1 },
            std::time::Duration::from_secs(600),
        )
        .await
        .expect("queued");
    let as_admin = |method: reqwest::Method, path: &str| {
        app.http.request(method, app.url(path)).bearer_auth(&admin)
    };
    use reqwest::Method;
    let me: Value = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("me");
    let user_id = me["id"].as_str().expect("id").to_owned();
    let product = crate::orders::product(&app, &admin, "contract-1", "1.50").await;
    let calls: Vec<(&str, &str, reqwest::RequestBuilder)> = vec![
        (
            "post",
            "/v1/devices",
            as_admin(Method::POST, "/v1/devices")
                .json(&serde_json::json!({ "id": "lk-3", "door_count": 2 })),
        ),
        ("get", "/v1/devices", as_admin(Method::GET, "/v1/devices")),
        (
            "get",
            "/v1/devices/{id}",
            as_admin(Method::GET, "/v1/devices/lk-1"),
        ),
        (
            "get",
            "/v1/devices/{id}/commands",
            as_admin(Method::GET, "/v1/devices/lk-1/commands"),
        ),
        (
            "post",
            "/v1/devices/{id}/commands/{command_id}/cancel",
            as_admin(
                Method::POST,
                &format!("/v1/devices/lk-1/commands/{queued}/cancel"),
            ),
        ),
        (
            "post",
            "/v1/devices/{id}/doors/{door}/unlock",
            as_admin(Method::POST, "/v1/devices/lk-2/doors/1/unlock")
                .json(&serde_json::json!({ "reason": "contract" })),
        ),
        (
            "post",
            "/v1/devices/{id}/configure",
            as_admin(Method::POST, "/v1/devices/lk-2/configure")
                .json(&crate::device_settings::settings(60, "contract")),
        ),
        (
            "post",
            "/v1/devices/{id}/rotate",
            as_admin(Method::POST, "/v1/devices/lk-1/rotate").json(&serde_json::json!({})),
        ),
        (
            "post",
            "/v1/devices/{id}/revoke",
            as_admin(Method::POST, "/v1/devices/lk-1/revoke"),
        ),
        ("get", "/v1/audit", as_admin(Method::GET, "/v1/audit")),
        ("get", "/v1/alarms", as_admin(Method::GET, "/v1/alarms?state=open")),
        ("get", "/v1/overview", as_admin(Method::GET, "/v1/overview")),
        (
            "post",
            "/v1/devices/import",
            as_admin(Method::POST, "/v1/devices/import")
                .header("content-type", "text/csv")
                .body("id,doors,model,size_classes\ncontract-csv,2,m,s\n"),
        ),
        (
            "post",
            "/v1/devices/{id}/doors/{door}/service",
            as_admin(Method::POST, "/v1/devices/lk-1/doors/1/service")
                .json(&serde_json::json!({ "reason": "hinge replaced" })),
        ),
        (
            "post",
            "/v1/alarms/{id}/acknowledge",
            as_admin(Method::POST, "/v1/alarms/1/acknowledge"),
        ),
        (
            "post",
            "/v1/alarms/{id}/resolve",
            as_admin(Method::POST, "/v1/alarms/1/resolve")
                .json(&serde_json::json!({ "resolution": "done" })),
        ),
        (
            "get",
            "/v1/users",
            as_admin(Method::GET, "/v1/users?email=example"),
        ),
        (
            "put",
            "/v1/users/{id}/role",
            as_admin(Method::PUT, "/v1/users/00000000-0000-7000-8000-000000000009/role")
                .json(&serde_json::json!({ "role": "viewer" })),
        ),
        (
            "get",
            "/v1/admin/rentals",
            as_admin(Method::GET, "/v1/admin/rentals?device_id=lk-1&state=active&limit=5"),
        ),
        (
            "get",
            "/v1/admin/orders",
            as_admin(Method::GET, "/v1/admin/orders?state=paid"),
        ),
        (
            "get",
            "/v1/admin/stuck",
            as_admin(Method::GET, "/v1/admin/stuck"),
        ),
        ("get", "/v1/gateways", as_admin(Method::GET, "/v1/gateways")),
        (
            "get",
            "/v1/wallet",
            app.http.get(app.url("/v1/wallet")).bearer_auth(&token),
        ),
        (
            "get",
            "/v1/wallet/ledger",
            app.http
                .get(app.url("/v1/wallet/ledger"))
                .bearer_auth(&token),
        ),
        (
            "post",
            "/v1/wallets/{user_id}/top-ups",
            as_admin(Method::POST, &format!("/v1/wallets/{user_id}/top-ups"))
                .json(&serde_json::json!({ "amount": "5.00" })),
        ),
        (
            "post",
            "/v1/plans",
            as_admin(Method::POST, "/v1/plans").json(&crate::plans::plan_body("m", "M")),
        ),
        (
            "get",
            "/v1/plans",
            app.http.get(app.url("/v1/plans")).bearer_auth(&token),
        ),
        (
            "post",
            "/v1/rentals",
            app.http
                .post(app.url("/v1/rentals"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "device_id": "lk-2" })),
        ),
        (
            "get",
            "/v1/rentals/{id}",
            app.http
                .get(app.url(&format!("/v1/rentals/{}", uuid::Uuid::now_v7())))
                .bearer_auth(&token),
        ),
        (
            "post",
            "/v1/rentals/{id}/open",
            app.http
                .post(app.url(&format!("/v1/rentals/{}/open", uuid::Uuid::now_v7())))
                .bearer_auth(&token),
        ),
        (
            "post",
            "/v1/rentals/{id}/end",
            app.http
                .post(app.url(&format!("/v1/rentals/{}/end", uuid::Uuid::now_v7())))
                .bearer_auth(&token),
        ),
        (
            "post",
            "/v1/admin/rentals/{id}/end",
            as_admin(
                Method::POST,
                &format!("/v1/admin/rentals/{}/end", uuid::Uuid::now_v7()),
            ),
        ),
        (
            "post",
            "/v1/admin/rentals/{id}/cancel",
            as_admin(
                Method::POST,
                &format!("/v1/admin/rentals/{}/cancel", uuid::Uuid::now_v7()),
            ),
        ),
        (
            "post",
            "/v1/admin/rentals/{id}/refund",
            as_admin(
                Method::POST,
                &format!("/v1/admin/rentals/{}/refund", uuid::Uuid::now_v7()),
            )
            .json(&serde_json::json!({})),
        ),
        (
            "post",
            "/v1/products",
            as_admin(Method::POST, "/v1/products").json(
                &serde_json::json!({ "sku": "contract-2", "name": "Water", "price": "1.00" }),
            ),
        ),
        (
            "get",
            "/v1/products",
            app.http.get(app.url("/v1/products")).bearer_auth(&token),
        ),
        (
            "patch",
            "/v1/products/{id}",
            as_admin(Method::PATCH, &format!("/v1/products/{product}"))
                .json(&serde_json::json!({ "price": "1.75" })),
        ),
        (
            "put",
            "/v1/devices/{id}/doors/{door}/stock",
            as_admin(Method::PUT, "/v1/devices/lk-2/doors/2/stock").json(
                &serde_json::json!({ "items": [{ "product_id": product, "qty": 4 }] }),
            ),
        ),
        (
            "get",
            "/v1/devices/{id}/stock",
            as_admin(Method::GET, "/v1/devices/lk-2/stock"),
        ),
        (
            "get",
            "/v1/devices/{id}/availability",
            app.http
                .get(app.url("/v1/devices/lk-2/availability"))
                .bearer_auth(&token),
        ),
        (
            "post",
            "/v1/orders",
            app.http.post(app.url("/v1/orders")).bearer_auth(&token).json(
                &serde_json::json!({ "device_id": "lk-2", "items": [{ "product_id": product, "qty": 1 }] }),
            ),
        ),
        (
            "get",
            "/v1/orders/{id}",
            app.http
                .get(app.url(&format!("/v1/orders/{}", uuid::Uuid::now_v7())))
                .bearer_auth(&token),
        ),
        ("post", "/v1/broker/authenticate", {
            app.http
                .post(app.url("/v1/broker/authenticate"))
                .bearer_auth("contract-hook-secret")
                .json(&serde_json::json!({
                    "clientid": "lk-2", "username": "lk-2", "password": "wrong"
                }))
        }),
        ("post", "/v1/broker/authorize", {
            app.http
                .post(app.url("/v1/broker/authorize"))
                .bearer_auth("contract-hook-secret")
                .json(&serde_json::json!({
                    "clientid": "lk-2", "username": "lk-2", "topic": "lockers/lk-2/up",
                    "action": "publish"
                }))
        }),
        ("post", "/v1/payments/webhook", {
            let event = serde_json::json!({
                "event_id": "evt_c", "user_id": user_id, "amount": "1.00", "currency": "EUR"
            });
            let (bytes, signature) = crate::wallets_api::signed(&event, "test-webhook-secret");
            app.http
                .post(app.url("/v1/payments/webhook"))
                .header("content-type", "application/json")
                .header("x-payment-signature", signature)
                .body(bytes)
        }),
        ("get", "/livez", app.http.get(app.url("/livez"))),
        ("get", "/readyz", app.http.get(app.url("/readyz"))),
        (
            "post",
            "/v1/accounts",
            app.http.post(app.url("/v1/accounts")).json(&account),
        ),
        (
            "post",
            "/v1/sessions",
            app.http.post(app.url("/v1/sessions")).json(&account),
        ),
        (
            "get",
            "/v1/me",
            app.http.get(app.url("/v1/me")).bearer_auth(&token),
        ),
        (
            "get",
            "/v1/orders",
            app.http
                .get(app.url("/v1/orders?state=paid"))
                .bearer_auth(&token),
        ),
        (
            "get",
            "/v1/rentals",
            app.http
                .get(app.url("/v1/rentals?state=ended&limit=10"))
                .bearer_auth(&token),
        ),
        (
            "put",
            "/v1/me/password",
            app.http
                .put(app.url("/v1/me/password"))
                .bearer_auth(&token)
                .json(&serde_json::json!({
                    "current_password": "a long password", "new_password": "another long password"
                })),
        ),
        (
            "delete",
            "/v1/me",
            app.http.delete(app.url("/v1/me")).bearer_auth(&leaving),
        ),
        // Last: the token works no more after it.
        (
            "delete",
            "/v1/sessions/current",
            app.http
                .delete(app.url("/v1/sessions/current"))
                .bearer_auth(&token),
        ),
    ];
    let mut calls = calls;
    calls.extend(crate::contract_console::calls(&app, &admin).await);
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (method.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut called: Vec<(String, String)> = calls
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    called.sort();
    assert_eq!(
        documented, called,
        "the documented operations and the ones this test calls differ"
    );
    for (method, path, request) in calls {
        let response = request.send().await.expect("sent");
        conforms(&doc, method, path, response).await;
    }
    // A drifted body is caught: the checker refuses an undocumented field.
    let livez =
        &doc["paths"]["/livez"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    let drifted = serde_json::json!({ "status": "alive", "version": "1", "uptime": 5 });
    assert!(check(&doc, livez, &drifted, "body").is_err());
}
