//! Requests generated from the OpenAPI document, for every operation, as an anonymous client, a
//! customer and an operator: valid-looking ones and invalid ones (path parameters that do not
//! parse, query parameters of the wrong type or with control characters, bodies of the wrong
//! shape, types, size or media type). No answer may be a 5xx, and every answer's status must be
//! documented for its operation, with a problem document for every error, and its body (success
//! or error) must match the documented schema.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, spawn_app_with};

/// How many variants of each operation, per caller.
const VARIANTS: usize = 8;

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// A value for `schema`: plausible when `wrong` is false, of the wrong type when true.
fn value_for(doc: &Value, schema: &Value, wrong: bool, rng: &mut StdRng, depth: u32) -> Value {
    let schema = resolve(doc, schema);
    if let Some(first) = schema
        .get("oneOf")
        .or_else(|| schema.get("allOf"))
        .and_then(Value::as_array)
        .and_then(|o| o.first())
    {
        return value_for(doc, first, wrong, rng, depth + 1);
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null")
            .to_owned(),
        _ if schema.get("properties").is_some() => "object".into(),
        _ => "string".into(),
    };
    if wrong {
        return match kind.as_str() {
            "string" => json!(rng.random_range(-5i64..100_000)),
            "integer" | "number" => json!("x\u{0}"),
            "boolean" => json!("yes"),
            "array" => json!({ "not": "a list" }),
            _ => json!([1, 2]),
        };
    }
    match kind.as_str() {
        "string" => {
            if let Some(first) = schema
                .get("enum")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
            {
                return first.clone();
            }
            match schema.get("format").and_then(Value::as_str) {
                Some("uuid") => json!(uuid::Uuid::now_v7()),
                Some("date-time") => json!("2026-12-04T12:00:00Z"),
                _ if schema.get("pattern").is_some() => json!("1.00"),
                _ => json!(format!("fz{}", rng.random_range(0..1000))),
            }
        }
        "integer" => json!(rng.random_range(0..5)),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "array" if depth < 4 => {
            json!([value_for(doc, &schema["items"], false, rng, depth + 1)])
        }
        "object" if depth < 4 => {
            let mut object = serde_json::Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (name, property) in properties {
                    object.insert(
                        name.clone(),
                        value_for(doc, property, false, rng, depth + 1),
                    );
                }
            }
            Value::Object(object)
        }
        _ => Value::Null,
    }
}

/// A path parameter's value for variant `n`.
fn path_value(parameter: &Value, n: usize, rng: &mut StdRng) -> String {
    let schema = &parameter["schema"];
    match n % 4 {
        0 => match (
            schema["type"].as_str(),
            schema["format"].as_str(),
            parameter["name"].as_str(),
        ) {
            (_, Some("uuid"), _) => uuid::Uuid::now_v7().to_string(),
            (Some("integer"), ..) => rng.random_range(0..6).to_string(),
            (_, _, Some("code")) => "no_such_route".into(),
            _ => "lk-1".into(),
        },
        1 => "not-a-valid-value".into(),
        2 => "99999999999999999999".into(),
        _ => "a%00b".into(),
    }
}

/// A query string for variant `n` of the documented query parameters.
fn query_for(doc: &Value, parameters: &[Value], n: usize, rng: &mut StdRng) -> String {
    let mut pairs = Vec::new();
    for parameter in parameters.iter().filter(|p| p["in"] == "query") {
        let name = parameter["name"].as_str().unwrap_or("q");
        let required = parameter["required"].as_bool().unwrap_or(false);
        let value = match n % 4 {
            0 if !required => continue,
            0 | 1 => match value_for(doc, &parameter["schema"], false, rng, 0) {
                Value::String(s) => s,
                other => other.to_string(),
            },
            2 => "-1".into(),
            _ => "x%0Ay".into(),
        };
        pairs.push(format!("{name}={value}"));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// The body of variant `n`: (content type, bytes).
fn body_for(doc: &Value, schema: &Value, n: usize, rng: &mut StdRng) -> (&'static str, Vec<u8>) {
    let json_of = |v: Value| {
        (
            "application/json",
            serde_json::to_vec(&v).unwrap_or_default(),
        )
    };
    match n {
        0 | 1 => json_of(value_for(doc, schema, false, rng, 0)),
        2 => json_of(json!({})),
        3 => {
            let mut body = value_for(doc, schema, false, rng, 0);
            if let Some(object) = body.as_object_mut() {
                for value in object.values_mut() {
                    *value = json!(rng.random_range(-1000i64..1000));
                }
            }
            json_of(body)
        }
        4 => ("application/json", b"{\"unfinished\":".to_vec()),
        5 => {
            let mut body = value_for(doc, schema, false, rng, 0);
            if let Some(object) = body.as_object_mut() {
                for value in object.values_mut() {
                    if value.is_string() {
                        *value = json!("\u{0}x".repeat(3000));
                    }
                }
            }
            json_of(body)
        }
        6 => ("text/plain", b"hello".to_vec()),
        _ => json_of(json!([null, 1, "two"])),
    }
}

/// Whether an answer's body is what its documented response says: nothing for a response
/// without content, else JSON of the documented media type matching its schema.
fn body_as_documented(
    doc: &Value,
    documented: &Value,
    content_type: &str,
    text: &str,
) -> Result<(), String> {
    let Some(content) = documented.get("content") else {
        return if text.is_empty() {
            Ok(())
        } else {
            Err("a body where none is documented".into())
        };
    };
    let media = content_type.split(';').next().unwrap_or("").trim();
    let schema = &content[media]["schema"];
    if !schema.is_object() {
        return Err(format!("content type {media} is not documented"));
    }
    let body: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))?;
    crate::contract::check(doc, schema, &body, "body").map_err(|e| format!("{e}; body: {body}"))
}

async fn send(
    app: &TestApp,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&'static str, Vec<u8>)>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let mut request = app.http.request(method, app.url(url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    request.send().await.expect("sent")
}

#[sqlx::test]
async fn generated_requests_get_documented_answers_and_never_a_5xx(pool: PgPool) {
    let app = spawn_app_with(pool, |config| {
        config.rate_limits.per_ip_per_minute = 1_000_000;
        config.rate_limits.per_user_per_minute = 1_000_000;
    })
    .await;
    app.provision("lk-1", 4).await;
    let customer = crate::accounts::customer(&app, "fz-customer@example.com").await;
    let operator = crate::accounts::operator(&app, "fz-ops@example.com").await;
    let doc = crate::contract::openapi(&app).await;
    let mut rng = StdRng::seed_from_u64(17);
    let mut failures = Vec::new();
    let mut sent = 0;
    let mut succeeded = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let parameters: Vec<Value> = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let body_schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            for (who, token) in [
                ("anonymous", None),
                ("customer", Some(customer.as_str())),
                ("operator", Some(operator.as_str())),
            ] {
                // A logout or an account's deletion would end the sessions the other requests use.
                let ends_session =
                    (path == "/v1/sessions/current" || path == "/v1/me") && method == "delete";
                if ends_session && token.is_some() {
                    continue;
                }
                for n in 0..VARIANTS {
                    let mut url = path.clone();
                    for parameter in parameters.iter().filter(|p| p["in"] == "path") {
                        let name = parameter["name"].as_str().unwrap_or("");
                        let value = path_value(parameter, n, &mut rng);
                        url = url.replace(&format!("{{{name}}}"), &value);
                    }
                    url.push_str(&query_for(&doc, &parameters, n, &mut rng));
                    let body = body_schema
                        .is_object()
                        .then(|| body_for(&doc, body_schema, n, &mut rng));
                    let response = send(&app, method, &url, token, body).await;
                    sent += 1;
                    let status = response.status().as_u16();
                    let content_type = response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let what = format!("{} {url} as {who}: {status}", method.to_uppercase());
                    let documented = &operation["responses"][status.to_string()];
                    if (200..300).contains(&status) {
                        succeeded.insert(format!("{} {path}", method.to_uppercase()));
                    }
                    let text = response.text().await.unwrap_or_default();
                    if status >= 500 {
                        failures.push(format!("{what}: a server error"));
                    } else if !documented.is_object() {
                        failures.push(format!("{what}: not documented"));
                    } else if status >= 400 && !content_type.starts_with("application/problem+json")
                    {
                        failures.push(format!("{what}: not a problem document ({content_type})"));
                    } else if let Err(e) =
                        body_as_documented(&doc, documented, &content_type, &text)
                    {
                        failures.push(format!("{what}: {e}"));
                    }
                }
            }
        }
    }
    assert!(sent > 500, "only {sent} requests");
    // The generated requests also succeed often enough for their bodies to be checked.
    assert!(
        succeeded.len() >= 15,
        "only {} operations answered a generated request with success: {succeeded:?}",
        succeeded.len()
    );
    failures.sort();
    failures.dedup();
    assert!(
        failures.is_empty(),
        "{} of {sent} answers broke the document:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
