//! Checks a response against the OpenAPI document: its status documented, its body matching
//! the schema (no undocumented field).

use serde_json::Value;

/// Resolves a `$ref` to `#/components/schemas/...`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// Whether `value` matches `schema`, with where it does not. Covers what utoipa emits: `$ref`,
/// `type` (one or several), `properties`/`required`/`additionalProperties`, `items`, `oneOf`,
/// `allOf`, `enum`, `const`, `contentSchema` (a string holding JSON).
pub fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        return if options.iter().any(|o| check(doc, o, value, at).is_ok()) {
            Ok(())
        } else {
            Err(format!("{at}: {value} matches none of oneOf"))
        };
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            check(doc, part, value, at)?;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(format!("{at}: {value} is not {constant}"));
    }
    // A string holding JSON (the protocol's envelope body): its content is checked too.
    if let (Some(content), Some(text)) = (schema.get("contentSchema"), value.as_str()) {
        let inner: Value =
            serde_json::from_str(text).map_err(|e| format!("{at}: not JSON ({e}): {text}"))?;
        check(doc, content, &inner, &format!("{at}(content)"))?;
    }
    match schema.get("type") {
        Some(Value::String(t)) if !type_matches(t, value) => {
            return Err(format!("{at}: {value} is not of type {t}"));
        }
        Some(Value::Array(types))
            if !types
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, value)) =>
        {
            return Err(format!("{at}: {value} is not of types {types:?}"));
        }
        _ => {}
    }
    if let (Some(object), Some(properties)) = (
        value.as_object(),
        schema.get("properties").and_then(Value::as_object),
    ) {
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(required) {
                return Err(format!("{at}: required field `{required}` is missing"));
            }
        }
        for (key, field) in object {
            let Some(field_schema) = properties.get(key) else {
                return Err(format!("{at}: field `{key}` is not documented"));
            };
            check(doc, field_schema, field, &format!("{at}.{key}"))?;
        }
    }
    if let (Some(items), Some(schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, schema, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The gateway's OpenAPI document.
pub async fn openapi(app: &crate::helpers::TestApp) -> Value {
    app.http
        .get(app.url("/v1/openapi.json"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("the OpenAPI document")
}

/// Checks one response against the documented operation `method path`.
pub async fn conforms(doc: &Value, method: &str, path: &str, response: reqwest::Response) {
    let status = response.status().as_u16().to_string();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("a body");
    let operation = &doc["paths"][path][method];
    assert!(
        operation.is_object(),
        "{method} {path} is not in the OpenAPI document"
    );
    let documented = &operation["responses"][&status];
    assert!(
        documented.is_object(),
        "{method} {path} answered {status}, which is not documented"
    );
    if status == "204" {
        assert!(text.is_empty(), "{method} {path}: a 204 with a body");
        assert!(
            documented.get("content").is_none(),
            "{method} {path}: 204 documented with content"
        );
        return;
    }
    let body: Value = serde_json::from_str(&text).expect("a JSON body");
    let media = content_type.split(';').next().unwrap_or("").trim();
    let schema = &documented["content"][media]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status}: content type {media} is not documented"
    );
    if let Err(e) = check(doc, schema, &body, "body") {
        panic!("{method} {path} {status} drifted from its schema: {e}\nbody: {body}");
    }
}
