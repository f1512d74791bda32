//! Webhooks: operators subscribe an HTTPS endpoint to event types; every event the outbox
//! publishes is written once per matching endpoint ([`fan_out`], in the unit of work that marks
//! the event published, so none is lost or doubled), then delivered by the deliverer (`background::webhooks`):
//! signed ([`signature`]), retried with backoff, each attempt's answer kept in the delivery log,
//! which operators read and from which they replay a delivery. This module owns the `webhooks`
//! and `webhook_deliveries` tables.

mod attempts;
mod store;

pub use attempts::{Due, claim, delivered, endpoints_of, forget_settled, not_delivered};
pub use store::{Delivery, DeliveryFilter, Endpoint, NewEndpoint, WebhookError};
pub use store::{create, deliveries, fan_out, list, remove, replay};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "locker-signature";

/// The event families an endpoint may subscribe to as `family.*`.
pub const FAMILIES: &[&str] = &[
    "alarm", "command", "device", "order", "payment", "rental", "wallet", "worker",
];

/// Whether the event type `event_type` is named by `pattern`: the type itself, its family
/// (`alarm.*`) or everything (`*`).
pub fn matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix(".*") {
        _ if pattern == "*" => true,
        Some(family) => event_type
            .strip_prefix(family)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == event_type,
    }
}

/// Whether `pattern` names something: `*`, a known family with `.*`, or a known event type.
pub fn is_pattern(pattern: &str) -> bool {
    pattern == "*"
        || pattern
            .strip_suffix(".*")
            .is_some_and(|family| FAMILIES.contains(&family))
        || crate::events::TYPES.contains(&pattern)
}

/// The signature of `body` sent at `timestamp` (Unix seconds) with `secret`: the
/// `locker-signature` header's value, `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
/// A receiver computes the same over the raw body and compares in constant time, and refuses a
/// timestamp more than a few minutes old (a replayed delivery).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Whether `url` may receive deliveries: `https://`, or `http://` to the loopback address only
/// (a receiver on the gateway's own machine). `Err` says why not.
pub fn check_url(url: &str) -> Result<(), &'static str> {
    if url.len() > 500 {
        return Err("at most 500 characters");
    }
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Err("not a URL");
    };
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err("a URL with a host"),
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err("https:// (plain http only to the loopback address)"),
        _ => Err("an https:// URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_name_types_families_or_everything() {
        assert!(matches("alarm.*", "alarm.forced_open"));
        assert!(!matches("alarm.*", "alarms.x"));
        assert!(!matches("alarm.*", "device.online"));
        assert!(matches("rental.ended", "rental.ended"));
        assert!(!matches("rental.ended", "rental.started"));
        assert!(matches("*", "worker.item_stuck"));
        assert!(is_pattern("device.*") && is_pattern("order.paid") && is_pattern("*"));
        assert!(!is_pattern("devices.*") && !is_pattern("order.eaten") && !is_pattern(""));
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{}' | openssl dgst -sha256 -hmac whsec_test
        let signed = signature("whsec_test", 1_700_000_000, b"{}");
        assert_eq!(
            signed,
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        assert_ne!(signed, signature("whsec_other", 1_700_000_000, b"{}"));
        assert_ne!(signed, signature("whsec_test", 1_700_000_001, b"{}"));
    }

    #[test]
    fn only_https_or_loopback_http_receives() {
        assert!(check_url("https://hooks.example.com/locker").is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(check_url("http://[::1]:9000/hook").is_ok());
        assert!(check_url("http://localhost/hook").is_ok());
        assert!(check_url("http://hooks.example.com/").is_err());
        assert!(check_url("ftp://hooks.example.com/").is_err());
        assert!(check_url("not a url").is_err());
    }
}
