//! What every operation of the OpenAPI document shares, added in one place so that no operation
//! can leave it out: the `bearer` security scheme, the `Idempotency-Key` header (with its schema)
//! on each POST, the roles an operator operation needs (its 403 and a line of its description),
//! and the problem answers any operation can give: 400 (a path or query parameter
//! that does not parse), 401 (an operation that needs a token), 429 (rate limits), 503 (the
//! gateway is stopping or a dependency is down), and for an operation with a body 413, 415 and
//! 422.

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use crate::account::Capability;

/// The modifier.
pub struct Conventions;

/// A problem answer with `description`.
fn problem(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
        .into()
}

/// What an operator must be allowed to do to call `method path` (the extractors of `auth`: 403
/// for others), or `None` for an operation open to customers or anonymous callers. One table, so
/// that the document names the roles each operation needs; a test calls every operation with
/// every role and checks it against this.
pub fn needs(method: &str, path: &str) -> Option<Capability> {
    use Capability::*;
    const TABLE: &[(&str, &str, Capability)] = &[
        ("get", "/v1/users", Read),
        ("get", "/v1/audit", Read),
        ("get", "/v1/alarms", Read),
        ("get", "/v1/overview", Read),
        ("post", "/v1/alarms/{id}/acknowledge", DoorService),
        ("post", "/v1/alarms/{id}/resolve", DoorService),
        ("get", "/v1/gateways", Read),
        ("get", "/v1/admin/rentals", Read),
        ("get", "/v1/admin/orders", Read),
        ("get", "/v1/admin/stuck", Read),
        ("get", "/v1/devices", Read),
        ("get", "/v1/devices/{id}", Read),
        ("get", "/v1/devices/{id}/commands", Read),
        ("get", "/v1/devices/{id}/stock", Read),
        ("post", "/v1/devices/{id}/doors/{door}/unlock", DoorService),
        ("post", "/v1/devices/{id}/doors/{door}/service", DoorService),
        (
            "post",
            "/v1/devices/{id}/commands/{command_id}/cancel",
            DoorService,
        ),
        ("post", "/v1/devices", Manage),
        ("post", "/v1/devices/import", Manage),
        ("post", "/v1/devices/{id}/rotate", Manage),
        ("post", "/v1/devices/{id}/configure", Manage),
        ("put", "/v1/devices/{id}/doors/{door}/stock", Manage),
        ("post", "/v1/plans", Manage),
        ("post", "/v1/products", Manage),
        ("patch", "/v1/products/{id}", Manage),
        ("post", "/v1/admin/rentals/{id}/end", Manage),
        ("post", "/v1/admin/rentals/{id}/cancel", Manage),
        ("post", "/v1/admin/rentals/{id}/refund", Money),
        ("post", "/v1/admin/orders/{id}/refund", Money),
        ("post", "/v1/wallets/{user_id}/top-ups", Money),
        ("post", "/v1/devices/{id}/revoke", Revoke),
        ("post", "/v1/bulk/unlock", DoorService),
        ("post", "/v1/bulk/configure", Manage),
        ("post", "/v1/bulk/revoke", Revoke),
        ("get", "/v1/webhooks", Read),
        ("get", "/v1/webhooks/{id}/deliveries", Read),
        ("post", "/v1/webhooks", Manage),
        ("delete", "/v1/webhooks/{id}", Manage),
        (
            "post",
            "/v1/webhooks/{id}/deliveries/{delivery}/replay",
            Manage,
        ),
        ("put", "/v1/users/{id}/role", Accounts),
        ("post", "/v1/firmware", Firmware),
        ("get", "/v1/firmware", Read),
        ("get", "/v1/firmware/{id}", Read),
        ("get", "/v1/devices/{id}/firmware", Read),
        ("post", "/v1/firmware/campaigns", Firmware),
        ("get", "/v1/firmware/campaigns", Read),
        ("get", "/v1/firmware/campaigns/{id}", Read),
        ("post", "/v1/firmware/campaigns/{id}/pause", Firmware),
        ("post", "/v1/firmware/campaigns/{id}/resume", Firmware),
        ("post", "/v1/firmware/campaigns/{id}/cancel", Firmware),
    ];
    TABLE
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, capability)| *capability)
}

/// Adds the problem answers every operation can give, unless it documents them itself.
fn common_answers(operation: &mut Operation, is_post: bool, needs: Option<Capability>) {
    let has_body = operation.request_body.is_some();
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut answers: Vec<(&str, &str)> = vec![
        (
            "400",
            "`bad_request`: a path or query parameter, or the body's JSON, does not parse",
        ),
        ("429", "`rate_limited`: too many requests; see Retry-After"),
        (
            "503",
            "`unavailable`: the gateway is stopping or a dependency does not answer",
        ),
    ];
    if secured {
        answers.push(("401", "`unauthorized`: no valid bearer token"));
    }
    if let Some(capability) = needs {
        let who = capability.roles();
        operation.responses.responses.insert(
            "403".to_owned(),
            problem(&format!("`forbidden`: only {who} may do this")),
        );
        let said = operation.description.get_or_insert_with(String::new);
        if !said.is_empty() {
            said.push_str("\n\n");
        }
        said.push_str(&format!("**Who may:** {who}."));
    }
    let queried = operation.parameters.as_ref().is_some_and(|p| {
        p.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Query))
    });
    if queried || has_body {
        answers.push((
            "422",
            "`validation_failed` (or `invalid_amount`): a field or query parameter is wrong or out of range; `errors` names it",
        ));
    }
    if is_post {
        answers.push((
            "409",
            "`idempotency_in_progress`: the first request with this Idempotency-Key still runs (or a conflict of the operation's own)",
        ));
    }
    if has_body {
        answers.push((
            "413",
            "`payload_too_large`: the body is over LOCKER_HTTP_BODY_LIMIT",
        ));
        answers.push(("415", "`unsupported_media_type`: send application/json"));
        answers.push(("408", "`request_timeout`: the body did not arrive in time"));
    }
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(description));
    }
}

impl utoipa::Modify for Conventions {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "broker_hook",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("LOCKER_BROKER_HOOK_SECRET, sent by the broker"))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if let Some(post) = item.post.as_mut() {
                let header = ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .description(Some(
                        "Makes a retry safe: the same key and request within 24 hours gets the \
                         first answer (with Idempotent-Replayed: true) without doing the work \
                         again; a different request with the key is a 422, and the key while \
                         the first request runs a 409. Per user; ignored on anonymous requests.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(SchemaType::Type(Type::String))
                            .min_length(Some(1))
                            .max_length(Some(255))
                            .pattern(Some("^[\\x21-\\x7E]+$")),
                    ))
                    .build();
                post.parameters.get_or_insert_with(Vec::new).push(header);
            }
            if let Some(post) = item.post.as_mut() {
                common_answers(post, true, needs("post", path));
            }
            for (method, operation) in [
                ("get", item.get.as_mut()),
                ("put", item.put.as_mut()),
                ("patch", item.patch.as_mut()),
                ("delete", item.delete.as_mut()),
            ] {
                if let Some(operation) = operation {
                    common_answers(operation, false, needs(method, path));
                }
            }
        }
    }
}
