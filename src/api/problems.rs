//! `GET /problems/{code}`: what each problem `code` means and what to do about it. Every problem
//! document's `type` is `/problems/{code}` (relative to the gateway, as RFC 9457 allows), so a
//! developer who meets one can read its explanation.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// Every problem code the API answers with: code, HTTP status, what it means.
pub const CODES: &[(&str, u16, &str)] = &[
    (
        "bad_request",
        400,
        "The request could not be read: the body is not JSON, or a path or query parameter does not parse. Nothing was done.",
    ),
    (
        "validation_failed",
        422,
        "Some fields are wrong or missing; `errors` names each one and says why. Nothing was done.",
    ),
    (
        "invalid_amount",
        422,
        "An amount is not written as the API's amount grammar (a string of digits, at most the currency's decimals, no sign or exponent) or is above LOCKER_MAX_AMOUNT; `errors` names the field.",
    ),
    (
        "balance_limit",
        422,
        "The wallet would hold more than LOCKER_MAX_BALANCE. Nothing was written.",
    ),
    (
        "unauthorized",
        401,
        "No valid bearer token: log in with POST /v1/sessions.",
    ),
    (
        "forbidden",
        403,
        "Your account's role does not allow this: the operation's document says who may (*Who may*).",
    ),
    (
        "own_role",
        409,
        "An admin tried to change their own role: another admin must do it, so a fleet always keeps one.",
    ),
    (
        "alarm_resolved",
        409,
        "The alarm is resolved already: it cannot be acknowledged or resolved again. A new alarm of its kind at its door opens a new one.",
    ),
    (
        "csrf_failed",
        403,
        "A state-changing request authenticated by the console's session cookie came without the session's CSRF token (the `X-CSRF-Token` header, or the form's `csrf` field). Nothing was done. Requests with a bearer token need none.",
    ),
    ("not_found", 404, "No such thing, or it is not yours."),
    (
        "no_such_route",
        404,
        "No such route; the OpenAPI document at /v1/openapi.json lists them.",
    ),
    (
        "method_not_allowed",
        405,
        "The route exists but not with this method.",
    ),
    (
        "payload_too_large",
        413,
        "The body is larger than LOCKER_HTTP_BODY_LIMIT.",
    ),
    (
        "unsupported_media_type",
        415,
        "Send the body as application/json.",
    ),
    (
        "request_timeout",
        408,
        "The body did not arrive within LOCKER_HTTP_BODY_TIMEOUT_SECS.",
    ),
    (
        "rate_limited",
        429,
        "Too many requests; wait the Retry-After seconds.",
    ),
    (
        "unavailable",
        503,
        "A dependency does not answer, or the gateway is stopping. Try again.",
    ),
    (
        "internal",
        500,
        "A bug or an unexpected failure; it is logged. Nothing you sent was wrong.",
    ),
    (
        "device_timeout",
        504,
        "The locker did not answer a command in time; the command's outcome is unknown until the locker is asked (see the command's state).",
    ),
    (
        "outcome_unknown",
        504,
        "The locker did not answer the unlock in time. Whether the door opened is not known yet; the locker is being asked, and `subject` names the rental or order and its state now. It is settled by the locker's answer: never charged for a door that did not open.",
    ),
    (
        "device_offline",
        503,
        "The locker is not connected. Nothing was sent or charged.",
    ),
    ("device_exists", 409, "A device with this id exists."),
    (
        "device_revoked",
        409,
        "The device is revoked; it can never log in again.",
    ),
    (
        "invalid_device",
        422,
        "The device's id or settings are not valid.",
    ),
    ("invalid_command", 422, "The command is not valid."),
    (
        "refused_by_device",
        409,
        "The locker refused the command, for the reason in `detail`. Nothing was charged.",
    ),
    (
        "overloaded",
        503,
        "Too many commands are awaiting answers; nothing was sent or charged. Try again shortly.",
    ),
    (
        "door_jammed",
        409,
        "The lock pulsed but the door did not open. Nothing was charged.",
    ),
    (
        "door_busy",
        409,
        "Another request is opening this door right now. Try again.",
    ),
    (
        "door_rented",
        409,
        "The door is rented; its content is the renter's.",
    ),
    (
        "bad_signature",
        422,
        "The firmware image's signature does not hold under any configured vendor key (a changed byte, another version or size, an unknown key), or only under a retired one. Nothing was stored.",
    ),
    (
        "version_exists",
        409,
        "A firmware image of this version was uploaded before; versions are never replaced. Upload it under a new version.",
    ),
    (
        "updating",
        409,
        "The locker is installing new firmware (a campaign told it to); nothing was sent. Try again once it is back: its update report ends the install.",
    ),
    (
        "no_lockers",
        422,
        "No locker matches the campaign's target: lockers must have announced update support, be of a model the image fits, run another version and be in no other update.",
    ),
    (
        "campaign_state",
        409,
        "The campaign is not in a state that allows this (pause a running one, resume a paused one, cancel one that has not ended).",
    ),
    (
        "door_occupied",
        409,
        "A bulk unlock left this door shut: it is rented or stocked. Send `override_occupied` to open it anyway (the audit log records it).",
    ),
    (
        "no_free_door",
        409,
        "Every matching door is rented, out of service or open.",
    ),
    (
        "no_such_door",
        422,
        "The locker has no door of that number. Nothing was stored or sent.",
    ),
    (
        "no_such_size",
        422,
        "None of the locker's doors is of that size class.",
    ),
    ("no_plan", 422, "No price plan for the door's size class."),
    (
        "too_many_rentals",
        409,
        "You have the most running rentals allowed (LOCKER_MAX_ACTIVE_RENTALS).",
    ),
    (
        "unpaid_debt",
        402,
        "An unpaid debt blocks new rentals and orders; top up first.",
    ),
    (
        "insufficient_funds",
        402,
        "Not enough money in the wallet. Nothing was held or charged.",
    ),
    (
        "wallet_busy",
        409,
        "The wallet kept changing under this request; try again.",
    ),
    (
        "refused",
        409,
        "The change was refused by the work done with it; nothing was written.",
    ),
    (
        "rental_not_active",
        409,
        "The rental is not running (ended, cancelled, or being ended).",
    ),
    ("rental_settled", 409, "The rental was settled meanwhile."),
    (
        "not_refundable",
        422,
        "The refund cannot be made (more than the fee left, or not ended).",
    ),
    (
        "not_cancellable",
        409,
        "Only a queued command not yet sent can be cancelled.",
    ),
    (
        "account_busy",
        409,
        "The account cannot be deleted while a rental runs or an order waits for its door.",
    ),
    ("email_taken", 409, "An account with this email exists."),
    (
        "idempotency_key_reused",
        422,
        "This Idempotency-Key was used with a different request.",
    ),
    (
        "idempotency_in_progress",
        409,
        "The first request with this Idempotency-Key is still running.",
    ),
    (
        "invalid_order",
        422,
        "Not a valid order (no items, too many, a product twice, a quantity out of range).",
    ),
    ("unknown_product", 422, "No such product."),
    ("product_withdrawn", 422, "The product is no longer sold."),
    (
        "out_of_stock",
        409,
        "Not enough of an item behind one usable door.",
    ),
    ("order_settled", 409, "The order was settled meanwhile."),
    ("sku_taken", 409, "A product with this SKU exists."),
];

/// The `type` URI of a problem code.
pub fn type_uri(code: &str) -> String {
    format!("/problems/{code}")
}

/// Explains one problem code (plain text).
pub async fn explain(Path(code): Path<String>) -> Response {
    match CODES.iter().find(|(c, _, _)| *c == code) {
        Some((code, status, meaning)) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{code} (HTTP {status})\n\n{meaning}\n"),
        )
            .into_response(),
        None => ApiError::NotFound("problem code").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code written in the API's sources (`code: "…"` and the fixed ones of `ApiError`)
    /// is explained.
    #[test]
    fn every_code_the_api_answers_with_is_explained() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
        let mut missing = Vec::new();
        let mut files = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(dir)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src/api") {
                let path = entry.expect("entry").path();
                match path.extension() {
                    None if path.is_dir() => dirs.push(path),
                    Some(ext) if ext == "rs" => files.push(path),
                    _ => {}
                }
            }
        }
        for path in files {
            let text = std::fs::read_to_string(&path).expect("source");
            for marker in ["code: \"", "=> \""] {
                for piece in text.split(marker).skip(1) {
                    let code: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    let closed = piece[code.len()..].starts_with('"');
                    if code.is_empty() || !closed || !code.contains('_') && code.len() < 5 {
                        continue;
                    }
                    if marker == "=> \"" && !path.ends_with("error.rs") {
                        continue;
                    }
                    if !CODES.iter().any(|(c, _, _)| *c == code) {
                        missing.push(format!("{code} ({})", path.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "codes without an explanation: {missing:?}"
        );
    }
}
