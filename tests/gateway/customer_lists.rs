//! What a customer finds without knowing ids: their own rentals, newest first, by state, a page at
//! a time; and a logout that makes the token useless.

use serde_json::{Value, json};

use crate::api::problem;
use crate::command_helpers::online_locker;
use crate::helpers::in_both_modes;
use crate::rentals::{funded, plan, rent};

in_both_modes! {
    async fn a_customer_lists_their_rentals_and_logs_out(backend: Backend) {
        let app = backend.spawn().await;
        plan(&app).await;
        let _locker = online_locker(&app, "lk-1").await;
        let (token, _) = funded(&app, "r@example.com", 10_000).await;
        let (other, _) = funded(&app, "o@example.com", 10_000).await;
        let mut ids = Vec::new();
        for door in 1..=3 {
            let made: Value = rent(&app, &token, json!({ "device_id": "lk-1", "door": door }))
                .await
                .json()
                .await
                .expect("rental");
            ids.push(made["id"].as_str().expect("id").to_owned());
        }
        let theirs = rent(&app, &other, json!({ "device_id": "lk-1", "door": 4 })).await;
        assert_eq!(theirs.status(), 201);
        let ended = app
            .http
            .post(app.url(&format!("/v1/rentals/{}/end", ids[0])))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent");
        assert_eq!(ended.status(), 200);
        let list = |query: &'static str| {
            let (http, url, token) = (app.http.clone(), app.url(&format!("/v1/rentals{query}")), token.clone());
            async move {
                http.get(url).bearer_auth(token).send().await.expect("sent")
            }
        };
        let all: Value = list("").await.json().await.expect("page");
        let listed: Vec<&str> = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|r| r["id"].as_str())
            .collect();
        assert_eq!(listed, [ids[2].as_str(), ids[1].as_str(), ids[0].as_str()], "own, newest first");
        let active: Value = list("?state=active").await.json().await.expect("page");
        assert_eq!(active["items"].as_array().map(Vec::len), Some(2));
        let ended: Value = list("?state=ended").await.json().await.expect("page");
        assert_eq!(ended["items"][0]["id"], ids[0].as_str());
        assert!(ended["items"][0]["bill"].is_object(), "an ended rental shows its bill");
        // Pages.
        let first: Value = list("?limit=2").await.json().await.expect("page");
        assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
        let next = first["next"].as_str().expect("next").to_owned();
        let second: Value = app
            .http
            .get(app.url(&format!("/v1/rentals?limit=2&before={next}")))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("page");
        assert_eq!(second["items"][0]["id"], ids[0].as_str());
        assert!(second["next"].is_null());
        problem(list("?state=lost").await, 422, "validation_failed").await;
        problem(list("?limit=0").await, 422, "validation_failed").await;
        // Logout: the token works no more.
        let out = app
            .http
            .delete(app.url("/v1/sessions/current"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent");
        assert_eq!(out.status(), 204);
        problem(list("").await, 401, "unauthorized").await;
    }
}

in_both_modes! {
    /// Operators find a customer by part of the email (any case), a page at a time; `%` and `_`
    /// are plain characters; customers may not search.
    async fn operators_find_accounts_by_email(backend: Backend) {
        let app = backend.spawn().await;
        let admin = crate::accounts::operator(&app, "ops@example.com").await;
        let (customer, id) = funded(&app, "Jane.Doe@example.com", 0).await;
        let _ = funded(&app, "john@example.org", 0).await;
        let find = |query: &str| {
            let (http, url, admin) = (app.http.clone(), app.url(&format!("/v1/users?{query}")), admin.clone());
            async move { http.get(url).bearer_auth(admin).send().await.expect("sent") }
        };
        let found: Value = find("email=jane.DOE").await.json().await.expect("page");
        assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
        assert_eq!(found["items"][0]["id"], id.to_string());
        let all: Value = find("email=example&limit=2").await.json().await.expect("page");
        assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
        let rest: Value = find(&format!(
            "email=example&limit=2&after={}",
            all["next"].as_str().expect("next")
        ))
        .await
        .json()
        .await
        .expect("page");
        assert_eq!(rest["items"].as_array().map(Vec::len), Some(1));
        let wildcard: Value = find("email=%25").await.json().await.expect("page");
        assert_eq!(wildcard["items"].as_array().map(Vec::len), Some(0), "% is a character");
        problem(find("email=").await, 422, "validation_failed").await;
        let refused = app
            .http
            .get(app.url("/v1/users?email=example"))
            .bearer_auth(&customer)
            .send()
            .await
            .expect("sent");
        problem(refused, 403, "forbidden").await;
    }
}

in_both_modes! {
    /// A customer changes their password (other sessions end) and deletes their account (login
    /// gone, the ledger kept); not while a rental runs.
    async fn a_customer_changes_the_password_and_deletes_the_account(backend: Backend) {
        let app = backend.spawn().await;
        plan(&app).await;
        let _locker = online_locker(&app, "lk-1").await;
        let (token, id) = funded(&app, "leaving@example.com", 5000).await;
        let other_session = crate::accounts::token(&app, "leaving@example.com", "a long password").await;
        let change = |current: &str, new: &str| {
            let body = json!({ "current_password": current, "new_password": new });
            let (http, url, token) = (app.http.clone(), app.url("/v1/me/password"), token.clone());
            async move { http.put(url).bearer_auth(token).json(&body).send().await.expect("sent") }
        };
        let wrong = change("not it", "a brand new password").await;
        let body = problem(wrong, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "current_password");
        assert_eq!(change("a long password", "a brand new password").await.status(), 204);
        let me = |token: String| {
            let (http, url) = (app.http.clone(), app.url("/v1/me"));
            async move { http.get(url).bearer_auth(token).send().await.expect("sent") }
        };
        assert_eq!(me(token.clone()).await.status(), 200, "this session goes on");
        problem(me(other_session).await, 401, "unauthorized").await;
        let relogin = crate::accounts::log_in(&app, "leaving@example.com", "a brand new password").await;
        assert_eq!(relogin.status(), 200);
        // Not while a rental runs.
        let rented: Value = rent(&app, &token, json!({ "device_id": "lk-1" })).await.json().await.expect("rental");
        let delete = || {
            let (http, url, token) = (app.http.clone(), app.url("/v1/me"), token.clone());
            async move { http.delete(url).bearer_auth(token).send().await.expect("sent") }
        };
        problem(delete().await, 409, "account_busy").await;
        let ended = app
            .http
            .post(app.url(&format!("/v1/rentals/{}/end", rented["id"].as_str().expect("id"))))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent");
        assert_eq!(ended.status(), 200);
        assert_eq!(delete().await.status(), 204);
        let gone = crate::accounts::log_in(&app, "leaving@example.com", "a brand new password").await;
        assert_eq!(gone.status(), 401);
        let (available, _) = crate::rentals::money(&app, id).await;
        assert_eq!(available, 5000, "the wallet and its ledger are kept");
    }
}

in_both_modes! {
    /// Operators list every rental by locker, user, state and time; customers may not.
    async fn operators_list_every_rental_with_filters(backend: Backend) {
        let app = backend.spawn().await;
        plan(&app).await;
        let _a = online_locker(&app, "lk-1").await;
        let _b = online_locker(&app, "lk-2").await;
        let admin = crate::accounts::operator(&app, "ops@example.com").await;
        let (ann, ann_id) = funded(&app, "ann@example.com", 10_000).await;
        let (bob, _) = funded(&app, "bob@example.com", 10_000).await;
        let before_all = chrono::Utc::now();
        assert_eq!(rent(&app, &ann, json!({ "device_id": "lk-1" })).await.status(), 201);
        assert_eq!(rent(&app, &ann, json!({ "device_id": "lk-2" })).await.status(), 201);
        assert_eq!(rent(&app, &bob, json!({ "device_id": "lk-2" })).await.status(), 201);
        let find = |query: String| {
            let (http, url, admin) = (app.http.clone(), app.url(&format!("/v1/admin/rentals{query}")), admin.clone());
            async move { http.get(url).bearer_auth(admin).send().await.expect("sent") }
        };
        let count = |page: Value| page["items"].as_array().map_or(0, Vec::len);
        assert_eq!(count(find(String::new()).await.json().await.expect("page")), 3);
        assert_eq!(count(find("?device_id=lk-2".into()).await.json().await.expect("page")), 2);
        assert_eq!(count(find(format!("?user_id={ann_id}")).await.json().await.expect("page")), 2);
        assert_eq!(count(find("?state=ended".into()).await.json().await.expect("page")), 0);
        let since = before_all.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        assert_eq!(count(find(format!("?since={since}")).await.json().await.expect("page")), 3);
        assert_eq!(count(find(format!("?until={since}")).await.json().await.expect("page")), 0);
        let refused = app
            .http
            .get(app.url("/v1/admin/rentals"))
            .bearer_auth(&ann)
            .send()
            .await
            .expect("sent");
        problem(refused, 403, "forbidden").await;
        let orders: Value = app
            .http
            .get(app.url("/v1/admin/orders?state=paid"))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("page");
        assert_eq!(count(orders), 0);
    }
}
