//! Accounts over HTTP: register, log in, tokens that expire or are forged, operators made by the
//! command line.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::api::problem;
use crate::helpers::{TestApp, spawn_app};

pub async fn register(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/v1/accounts"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("sent")
}

pub async fn log_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/v1/sessions"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("sent")
}

/// Registers a customer and logs in; returns the bearer token.
pub async fn customer(app: &TestApp, email: &str) -> String {
    assert_eq!(register(app, email, "a long password").await.status(), 201);
    token(app, email, "a long password").await
}

/// Makes an operator (as `admin create` does) and logs in; returns the bearer token.
pub async fn operator(app: &TestApp, email: &str) -> String {
    operator_as(app, email, locker_gateway::account::Role::Admin).await
}

/// Makes an operator with `role` and logs in; returns the bearer token.
pub async fn operator_as(
    app: &TestApp,
    email: &str,
    role: locker_gateway::account::Role,
) -> String {
    let accounts = locker_gateway::account::Accounts::new(
        app.storage.clone(),
        locker_gateway::account::PasswordCost::TEST,
        std::time::Duration::from_secs(3600),
    );
    accounts
        .register(email, "an operator password", role)
        .await
        .expect("operator made");
    token(app, email, "an operator password").await
}

pub async fn token(app: &TestApp, email: &str, password: &str) -> String {
    let response = log_in(app, email, password).await;
    assert_eq!(response.status(), 200);
    let session: Value = response.json().await.expect("a session");
    session["token"].as_str().expect("a token").to_owned()
}

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .get(app.url("/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent")
}

#[sqlx::test]
async fn a_customer_registers_logs_in_and_is_known_by_the_token(pool: PgPool) {
    let app = spawn_app(pool).await;
    let made = register(&app, "Ann@Example.com", "a long password").await;
    assert_eq!(made.status(), 201);
    let user: Value = made.json().await.expect("user");
    assert_eq!(user["role"], "user");
    assert!(user.get("password_hash").is_none() && user.get("password").is_none());
    // The same email in other letters is the same account.
    let again = register(&app, "ann@example.com", "another long password").await;
    problem(again, 409, "email_taken").await;
    let token = token(&app, "ann@example.com", "a long password").await;
    let response = me(&app, &token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("me");
    assert_eq!(body["id"], user["id"]);
    assert_eq!(body["email"], "Ann@Example.com");
}

#[sqlx::test]
async fn wrong_passwords_and_bad_fields_are_refused(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    problem(
        register(&app, "not-an-email", "a long password").await,
        422,
        "validation_failed",
    )
    .await;
    let short = problem(
        register(&app, "b@example.com", "short").await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(short["errors"][0]["field"], "password");
    // A field the server owns is refused, never applied.
    let sneaky = app
        .http
        .post(app.url("/v1/accounts"))
        .json(&json!({ "email": "c@example.com", "password": "a long password", "role": "admin" }))
        .send()
        .await
        .expect("sent");
    let body = problem(sneaky, 422, "validation_failed").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("role"),
        "{body}"
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(users, 0, "nothing was written");
    assert_eq!(
        register(&app, "d@example.com", "a long password")
            .await
            .status(),
        201
    );
    let wrong = log_in(&app, "d@example.com", "the wrong password").await;
    assert_eq!(
        wrong
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    problem(wrong, 401, "unauthorized").await;
    problem(
        log_in(&app, "nobody@example.com", "a long password").await,
        401,
        "unauthorized",
    )
    .await;
}

#[sqlx::test]
async fn missing_forged_and_expired_tokens_are_refused(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let token = customer(&app, "e@example.com").await;
    assert_eq!(me(&app, &token).await.status(), 200);
    let none = app.http.get(app.url("/v1/me")).send().await.expect("sent");
    problem(none, 401, "unauthorized").await;
    let forged = format!("lgw_{}", "0".repeat(64));
    problem(me(&app, &forged).await, 401, "unauthorized").await;
    problem(me(&app, "garbage").await, 401, "unauthorized").await;
    sqlx::query("UPDATE api_tokens SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .expect("expire");
    problem(me(&app, &token).await, 401, "unauthorized").await;
}

#[sqlx::test]
async fn the_first_operator_is_made_on_the_command_line(pool: PgPool) {
    use std::io::Write;
    let app = spawn_app(pool.clone()).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
        .args(["admin", "create", "--email", "ops@example.com"])
        .env("DATABASE_URL", crate::process::database_url(&pool))
        .env("LOCKER_ARGON2_MEMORY_KIB", "64")
        .env("LOCKER_ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"an operator password\n")
        .expect("password written");
    let output = child.wait_with_output().expect("finished");
    assert!(output.status.success(), "{output:?}");
    let token = token(&app, "ops@example.com", "an operator password").await;
    let body: Value = me(&app, &token).await.json().await.expect("me");
    assert_eq!(body["role"], "admin");
    // Another operator with a narrower role; an unknown role is refused before anything.
    for (role, ok) in [("technician", true), ("user", false), ("root", false)] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
            .args([
                "admin",
                "create",
                "--email",
                &format!("{role}@example.com"),
                "--role",
                role,
            ])
            .env("DATABASE_URL", crate::process::database_url(&pool))
            .env("LOCKER_ARGON2_MEMORY_KIB", "64")
            .env("LOCKER_ARGON2_ITERATIONS", "1")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let mut stdin = child.stdin.take().expect("stdin");
        // A refused role ends the process before it reads: the pipe may be closed already.
        let written = stdin.write_all(b"an operator password\n");
        assert!(
            written.is_ok() || !ok,
            "{role}: the password was not taken: {written:?}"
        );
        drop(stdin);
        let output = child.wait_with_output().expect("finished");
        assert_eq!(output.status.success(), ok, "{role}: {output:?}");
    }
    let technician = self::token(&app, "technician@example.com", "an operator password").await;
    let body: Value = me(&app, &technician).await.json().await.expect("me");
    assert_eq!(body["role"], "technician");
}

/// The id of the account behind `token`.
pub async fn me_id(app: &TestApp, token: &str) -> String {
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

/// The accounts contract, on either storage: register (an email once, whatever its case), log
/// in, a token that names its user, wrong passwords refused, tokens that expire and are purged.
async fn accounts_keep_their_contract(storage: locker_gateway::storage::Storage) {
    use locker_gateway::account::{AccountError, Accounts, PasswordCost, Role};
    let accounts = Accounts::on(
        storage.clone(),
        PasswordCost::TEST,
        std::time::Duration::from_secs(60),
    );
    let user = accounts
        .register("Ada@Example.com", "a long password", Role::User)
        .await
        .expect("registered");
    assert!(matches!(
        accounts
            .register("ada@example.COM", "another password", Role::User)
            .await,
        Err(AccountError::EmailTaken)
    ));
    let session = accounts
        .log_in("ada@example.com", "a long password")
        .await
        .expect("logged in");
    assert_eq!(session.user.id, user.id);
    let known = accounts
        .authenticate(&session.token)
        .await
        .expect("storage");
    assert_eq!(known.map(|u| (u.id, u.role)), Some((user.id, Role::User)));
    assert!(matches!(
        accounts.log_in("ada@example.com", "a wrong password").await,
        Err(AccountError::InvalidCredentials)
    ));
    let forged = format!("lgw_{}", "0".repeat(64));
    assert_eq!(accounts.authenticate(&forged).await.expect("storage"), None);
    // A token that lapses is refused, then purged.
    let brief = Accounts::on(
        storage,
        PasswordCost::TEST,
        std::time::Duration::from_millis(50),
    );
    let short = brief
        .log_in("ada@example.com", "a long password")
        .await
        .expect("logged in");
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(
        brief.authenticate(&short.token).await.expect("storage"),
        None
    );
    assert_eq!(brief.purge_expired_tokens().await.expect("purged"), 1);
    assert!(
        accounts
            .authenticate(&session.token)
            .await
            .expect("storage")
            .is_some()
    );
}

#[sqlx::test]
async fn accounts_keep_their_contract_on_postgresql(pool: PgPool) {
    accounts_keep_their_contract(locker_gateway::storage::Storage::Postgres(pool)).await;
}

#[tokio::test]
async fn accounts_keep_their_contract_on_sqlite() {
    let (storage, _dir) = crate::helpers::sqlite().await;
    accounts_keep_their_contract(storage).await;
}
