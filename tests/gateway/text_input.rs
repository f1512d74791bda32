//! Text from outside with control characters is refused with 422 naming the field, on both
//! backends, anonymous requests too; nothing is stored.

use serde_json::json;

use crate::accounts::operator;
use crate::api::problem;
use crate::helpers::in_both_modes;
use crate::rentals::scalar;

in_both_modes! {
    /// A NUL in a login, a registration, a plan's name, a product; a newline in a query string.
    async fn control_characters_are_refused_with_422_naming_the_field(backend: Backend) {
        let app = backend.spawn().await;
        let post = |path: &str, token: Option<&str>, body: serde_json::Value| {
            let mut request = app.http.post(app.url(path)).json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let login = post(
            "/v1/sessions",
            None,
            json!({ "email": "a\u{0}@example.com", "password": "whatever-password" }),
        )
        .await
        .expect("sent");
        let body = problem(login, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "email");
        let register = post(
            "/v1/accounts",
            None,
            json!({ "email": "b@example.com", "password": "pass\u{0}word-long-enough" }),
        )
        .await
        .expect("sent");
        let body = problem(register, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "password");
        let users: i64 = scalar(&app, "SELECT count(*) FROM users").await;
        assert_eq!(users, 0, "nothing stored");
        let admin = operator(&app, "ops@example.com").await;
        let mut plan = crate::plans::plan_body("m", "Med\u{0}ium");
        plan["size_class"] = json!("m");
        let refused = post("/v1/plans", Some(&admin), plan).await.expect("sent");
        let body = problem(refused, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "name");
        let product = post(
            "/v1/products",
            Some(&admin),
            json!({ "sku": "cola", "name": "Cola\u{7f}", "price": "2.50" }),
        )
        .await
        .expect("sent");
        problem(product, 422, "validation_failed").await;
        let plans: i64 = scalar(&app, "SELECT count(*) FROM price_plans").await;
        let products: i64 = scalar(&app, "SELECT count(*) FROM products").await;
        assert_eq!((plans, products), (0, 0), "nothing stored");
        let listed = app
            .http
            .get(app.url("/v1/audit?action=a%0Ab"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("sent");
        problem(listed, 400, "bad_request").await;
    }
}

in_both_modes! {
    /// Optional texts the server once truncated or only matched (a rental's size, a refund's
    /// reason, a top-up's reference) have their limits in the schema, and a text beyond them is
    /// a 422 naming the field, before anything is looked up or stored.
    async fn texts_beyond_their_documented_limits_are_refused(backend: Backend) {
        let app = backend.spawn().await;
        let doc = crate::contract::openapi(&app).await;
        let schemas = &doc["components"]["schemas"];
        for (schema, field, max) in [
            ("NewRental", "size", 16),
            ("Refund", "reason", 200),
            ("TopUp", "reference", 200),
        ] {
            assert_eq!(
                schemas[schema]["properties"][field]["maxLength"], max,
                "{schema}.{field}: {}",
                schemas[schema]
            );
        }
        let admin = operator(&app, "ops@example.com").await;
        let customer = crate::accounts::customer(&app, "c@example.com").await;
        let some_id = uuid::Uuid::now_v7();
        for (path, token, body, field) in [
            (
                "/v1/rentals".to_owned(),
                &customer,
                json!({ "device_id": "lk-1", "size": "m".repeat(17) }),
                "size",
            ),
            (
                "/v1/rentals".to_owned(),
                &customer,
                json!({ "device_id": "lk-1", "size": "" }),
                "size",
            ),
            (
                format!("/v1/admin/rentals/{some_id}/refund"),
                &admin,
                json!({ "reason": "r".repeat(201) }),
                "reason",
            ),
            (
                format!("/v1/wallets/{some_id}/top-ups"),
                &admin,
                json!({ "amount": "5.00", "reference": "x".repeat(201) }),
                "reference",
            ),
        ] {
            let refused = app
                .http
                .post(app.url(&path))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("sent");
            let problem = problem(refused, 422, "validation_failed").await;
            assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
        }
        let rentals: i64 = scalar(&app, "SELECT count(*) FROM rentals").await;
        assert_eq!(rentals, 0, "nothing stored");
    }
}
