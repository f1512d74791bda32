//! Operator roles, enforced by the API: every operation the document marks for operators is
//! called with a customer's token and each operator role's, and answers 403 exactly to the roles
//! its document does not name; refusals are audited; an admin changes roles, never their own.

use locker_gateway::account::Role;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::accounts::{customer, operator_as};
use crate::contract::openapi;
use crate::helpers::{TestApp, spawn_app};

const ROLES: [(&str, Role); 4] = [
    ("viewer", Role::Viewer),
    ("technician", Role::Technician),
    ("support", Role::Support),
    ("admin", Role::Admin),
];

/// The path with every parameter filled in: uuids for ids, 1 for numbers.
fn concrete(path: &str) -> String {
    path.replace("{id}", "00000000-0000-7000-8000-000000000001")
        .replace("{user_id}", "00000000-0000-7000-8000-000000000002")
        .replace("{door}", "1")
        .replace("{command_id}", "1")
        .replace("{delivery}", "1")
}

async fn call(app: &TestApp, method: &str, path: &str, token: &str) -> u16 {
    let url = app.url(&concrete(path));
    let request = match method {
        "get" => app.http.get(url),
        "post" => app.http.post(url).json(&json!({})),
        "put" => app.http.put(url).json(&json!({})),
        "patch" => app.http.patch(url).json(&json!({})),
        "delete" => app.http.delete(url),
        other => panic!("no {other} operations expected"),
    };
    request
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

#[sqlx::test]
async fn every_operator_operation_refuses_exactly_the_roles_its_document_leaves_out(pool: PgPool) {
    let app = spawn_app(pool).await;
    let doc = openapi(&app).await;
    let mut tokens = vec![("customer", customer(&app, "c@example.com").await)];
    for (name, role) in ROLES {
        tokens.push((
            name,
            operator_as(&app, &format!("{name}@example.com"), role).await,
        ));
    }
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let Some(forbidden) = operation["responses"]["403"]["description"].as_str() else {
                continue;
            };
            // (A 403 of another kind, such as a customer asking for every product, is not a
            // role's.)
            let Some(who) = forbidden.strip_prefix("`forbidden`: only ") else {
                continue;
            };
            let description = operation["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&format!(
                    "**Who may:** {}",
                    who.trim_end_matches(" may do this")
                )),
                "{method} {path}: its description does not say who may"
            );
            for (name, token) in &tokens {
                let allowed = *name != "customer" && who.contains(name);
                let status = call(&app, method, path, token).await;
                if allowed {
                    assert!(
                        status != 403 && status != 401,
                        "{method} {path} refused a {name} ({status}); the document says {who}"
                    );
                } else {
                    assert_eq!(
                        status, 403,
                        "{method} {path} let a {name} through; the document says {who}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 25 * 5,
        "only {checked} calls made: operations lost their 403?"
    );
    // Each refusal was audited with the role that tried.
    let refused: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE outcome = 'refused' AND detail->>'role' = 'viewer'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert!(refused >= 10, "{refused} refusals of the viewer audited");
}

#[sqlx::test]
async fn roles_are_what_the_rules_say(pool: PgPool) {
    let app = spawn_app(pool).await;
    let viewer = operator_as(&app, "v@example.com", Role::Viewer).await;
    let technician = operator_as(&app, "t@example.com", Role::Technician).await;
    let support = operator_as(&app, "s@example.com", Role::Support).await;
    // A viewer reads; a technician opens doors but provisions nothing; support provisions but
    // tops up no wallet and revokes nothing.
    assert_eq!(call(&app, "get", "/v1/devices", &viewer).await, 200);
    let provision = json!({ "id": "lk-roles", "door_count": 4 });
    let post = |token: &str, path: &str, body: &Value| {
        app.http
            .post(app.url(path))
            .bearer_auth(token.to_owned())
            .json(body)
            .send()
    };
    assert_eq!(
        post(&technician, "/v1/devices", &provision)
            .await
            .expect("sent")
            .status(),
        403
    );
    assert_eq!(
        post(&support, "/v1/devices", &provision)
            .await
            .expect("sent")
            .status(),
        201
    );
    let me: Value = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(&support)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("me");
    assert_eq!(me["role"], "support");
    let top_up = json!({ "amount": "10.00", "reason": "goodwill" });
    let user = me["id"].as_str().expect("id");
    let path = format!("/v1/wallets/{user}/top-ups");
    assert_eq!(
        post(&support, &path, &top_up).await.expect("sent").status(),
        403
    );
    assert_eq!(
        post(&support, "/v1/devices/lk-roles/revoke", &json!({}))
            .await
            .expect("sent")
            .status(),
        403
    );
}

async fn id_of(app: &TestApp, token: &str) -> String {
    let me: Value = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("me");
    me["id"].as_str().expect("id").to_owned()
}

#[sqlx::test]
async fn an_admin_changes_an_operators_role_never_their_own_nor_a_customers(pool: PgPool) {
    let app = spawn_app(pool).await;
    let admin = operator_as(&app, "a@example.com", Role::Admin).await;
    let support = operator_as(&app, "s@example.com", Role::Support).await;
    let customer_token = customer(&app, "c@example.com").await;
    let (admin_id, support_id, customer_id) = (
        id_of(&app, &admin).await,
        id_of(&app, &support).await,
        id_of(&app, &customer_token).await,
    );
    let set = |token: &str, id: &str, role: &str| {
        app.http
            .put(app.url(&format!("/v1/users/{id}/role")))
            .bearer_auth(token.to_owned())
            .json(&json!({ "role": role }))
            .send()
    };
    let changed = set(&admin, &support_id, "viewer").await.expect("sent");
    assert_eq!(changed.status(), 200);
    let user: Value = changed.json().await.expect("user");
    assert_eq!(user["role"], "viewer");
    // The token they hold now carries the new role: no more provisioning.
    let provision = json!({ "id": "lk-demoted", "door_count": 2 });
    let refused = app
        .http
        .post(app.url("/v1/devices"))
        .bearer_auth(&support)
        .json(&provision)
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 403);
    let own = set(&admin, &admin_id, "viewer").await.expect("sent");
    assert_eq!(own.status(), 409);
    let body: Value = own.json().await.expect("problem");
    assert_eq!(body["code"], "own_role");
    assert_eq!(
        set(&admin, &customer_id, "admin")
            .await
            .expect("sent")
            .status(),
        404
    );
    assert_eq!(
        set(&admin, &support_id, "user")
            .await
            .expect("sent")
            .status(),
        422
    );
    // Only an admin changes roles; the change is audited.
    assert_eq!(
        set(&support, &admin_id, "viewer")
            .await
            .expect("sent")
            .status(),
        403
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'user.role' AND outcome = 'ok'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(audited, 1);
}
