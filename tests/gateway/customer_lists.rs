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
