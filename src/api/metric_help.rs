//! What each metric means: the `# HELP` lines of `/metrics`, written once when the recorder is
//! installed, with the process's own metrics (CPU seconds, resident memory, open file
//! descriptors, threads: `metrics-process`) and `locker_build_info`.

use metrics::{describe_counter, describe_gauge, describe_histogram};

/// A metric's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution.
    Histogram,
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric the gateway records: name, kind, help.
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "locker_audit_write_failures_total",
        Counter,
        "Operator actions whose audit entry could not be written.",
    ),
    (
        "locker_broker_logins_total",
        Counter,
        "Logins to the embedded broker, by result.",
    ),
    (
        "locker_broker_hook_calls_total",
        Counter,
        "Calls of a broker's HTTP hooks (authenticate, authorize), by result.",
    ),
    (
        "locker_mqtts_reloads_total",
        Counter,
        "Times the TLS listener's changed certificate files were loaded again, by outcome.",
    ),
    (
        "locker_mqtts_handshakes_failed_total",
        Counter,
        "TLS handshakes on the embedded broker's TLS listener that failed.",
    ),
    (
        "locker_mqtts_certificate_refused_total",
        Counter,
        "Logins refused because the client certificate names another client id.",
    ),
    (
        "locker_broker_refused_total",
        Counter,
        "Broker operations refused by the per-locker rules, by reason.",
    ),
    (
        "locker_broker_rights_total",
        Counter,
        "Changes to the external broker's clients and rights (dynamic security), by result.",
    ),
    (
        "locker_cache_requests_total",
        Counter,
        "Cache lookups, by result (hit, miss, error).",
    ),
    (
        "locker_command_conflicts_total",
        Counter,
        "Answers that contradicted a command's recorded outcome.",
    ),
    (
        "locker_commands_total",
        Counter,
        "Commands sent to lockers, by result.",
    ),
    (
        "locker_devices_provisioned_total",
        Counter,
        "Devices registered.",
    ),
    (
        "locker_door_lock_lost_total",
        Counter,
        "Door locks that expired before their work was done.",
    ),
    (
        "locker_downlinks_dropped_total",
        Counter,
        "Downlinks that could not be queued to a transport.",
    ),
    (
        "locker_events_published_total",
        Counter,
        "Outbox events delivered.",
    ),
    (
        "locker_door_mark_failures_total",
        Counter,
        "Doors whose state after a maintenance unlock (jammed, opened) could not be written.",
    ),
    (
        "locker_firmware_offers_total",
        Counter,
        "Firmware update offers sent to lockers (first offers and offers again to resume).",
    ),
    (
        "locker_firmware_chunks_total",
        Counter,
        "Firmware image chunks sent, each answering a locker's chunk request.",
    ),
    (
        "locker_firmware_installs_total",
        Counter,
        "Install orders sent to lockers holding a downloaded image, inside their maintenance window.",
    ),
    (
        "locker_firmware_reports_total",
        Counter,
        "Lockers' update reports recorded, by the state they left the update in (state).",
    ),
    (
        "locker_webhook_attempts_total",
        Counter,
        "Webhook delivery attempts, by outcome (delivered, retry, failed: the last attempt failed).",
    ),
    (
        "locker_webhook_record_failures_total",
        Counter,
        "Webhook attempts whose answer could not be written back (tried again when the claim lapses).",
    ),
    (
        "locker_webhook_claim_failures_total",
        Counter,
        "Times the webhook deliverer could not claim due deliveries.",
    ),
    (
        "locker_external_broker_errors_total",
        Counter,
        "Errors of the connection to an external broker.",
    ),
    (
        "locker_gateway_lease_lost_total",
        Counter,
        "Times another gateway took this gateway's lease (it stops).",
    ),
    (
        "locker_http_accept_errors_total",
        Counter,
        "HTTP connections that could not be accepted.",
    ),
    (
        "locker_http_errors_total",
        Counter,
        "HTTP problem documents answered, by code.",
    ),
    (
        "locker_http_idempotent_replays_total",
        Counter,
        "Requests answered from an Idempotency-Key's stored answer.",
    ),
    (
        "locker_http_rate_limited_total",
        Counter,
        "Requests refused by a rate limit, by scope.",
    ),
    (
        "locker_http_requests_total",
        Counter,
        "HTTP requests, by method, route and status.",
    ),
    (
        "locker_order_reconciliations_total",
        Counter,
        "Orders settled by the reconciler, by outcome.",
    ),
    (
        "locker_payment_webhooks_refused_total",
        Counter,
        "Payment webhook deliveries refused, by reason.",
    ),
    (
        "locker_rental_reconciliations_total",
        Counter,
        "Rentals settled by the reconciler, by outcome.",
    ),
    (
        "locker_serial_announce_failures_total",
        Counter,
        "Failed writes of which boards are on this gateway's serial lines (retried).",
    ),
    (
        "locker_serial_bytes_flushed_total",
        Counter,
        "Serial bytes dropped while waiting for a silent line.",
    ),
    (
        "locker_serial_bytes_skipped_total",
        Counter,
        "Serial bytes skipped while looking for a frame.",
    ),
    (
        "locker_serial_frames_dropped_total",
        Counter,
        "Serial frames dropped, by reason.",
    ),
    (
        "locker_serial_port_errors_total",
        Counter,
        "Serial port failures (the port is reopened).",
    ),
    (
        "locker_serial_relay_refused_total",
        Counter,
        "Messages on a board's down topic not passed to its line, by reason.",
    ),
    (
        "locker_serial_relayed_total",
        Counter,
        "Board downlinks relayed through the broker (published; passed to the line).",
    ),
    (
        "locker_serial_requests_total",
        Counter,
        "Serial requests, by result (answered, retry, unanswered).",
    ),
    (
        "locker_uplinks_accepted_total",
        Counter,
        "Uplinks verified and applied.",
    ),
    (
        "locker_rate_limit_store_errors_total",
        Counter,
        "Checks of the fleet's shared rate limits that Redis did not answer (local limits only).",
    ),
    (
        "locker_fleet_turn_failures_total",
        Counter,
        "Locker turns that could not be taken in the fleet (Redis failed, or it was not free within 3 s): sent without it.",
    ),
    (
        "locker_fleet_turns_total",
        Counter,
        "Downlinks sent in a fleet, by whether the locker needed its turn (`taken`: protocol version 1) or keeps a downlink window (`not_needed`: version 2).",
    ),
    (
        "locker_fleet_turn_unacked_total",
        Counter,
        "Locker turns given up before the broker acknowledged what was sent in them (2 s).",
    ),
    (
        "locker_commands_orphaned_total",
        Counter,
        "Commands in flight nobody waits for any more (this gateway's previous run, or a gateway whose lease expired), marked unknown to be asked about.",
    ),
    (
        "locker_uplinks_parked_total",
        Counter,
        "Uplinks of a session not known yet, looked at again shortly after (another gateway may be recording its hello).",
    ),
    (
        "locker_uplinks_rejected_total",
        Counter,
        "Uplinks dropped, by reason.",
    ),
    (
        "locker_wallet_conflicts_total",
        Counter,
        "Wallet changes retried after an optimistic-lock conflict.",
    ),
    (
        "locker_worker_errors_total",
        Counter,
        "Failed passes of background loops, by worker.",
    ),
    (
        "locker_worker_item_failures_total",
        Counter,
        "Items a background worker failed on, by worker.",
    ),
    (
        "locker_worker_panics_total",
        Counter,
        "Panics caught in background workers, by worker.",
    ),
    (
        "locker_worker_stuck_unannounced_total",
        Counter,
        "Notices of stuck items that could not be queued for the stuck list.",
    ),
    (
        "locker_worker_items_flagged_total",
        Counter,
        "Items a background worker flagged as stuck, by worker.",
    ),
    (
        "locker_commands_in_flight",
        Gauge,
        "Commands awaiting a locker's answer.",
    ),
    (
        "locker_db_pool_connections",
        Gauge,
        "Database connections open.",
    ),
    (
        "locker_db_pool_max_connections",
        Gauge,
        "Database connections allowed.",
    ),
    ("locker_lockers_online", Gauge, "Lockers online."),
    (
        "locker_outbox_lag_seconds",
        Gauge,
        "Age of the oldest undelivered outbox event.",
    ),
    (
        "locker_worker_items_stuck",
        Gauge,
        "Items this gateway's background workers hold as stuck, by worker.",
    ),
    (
        "locker_build_info",
        Gauge,
        "The gateway's version and protocol version (always 1).",
    ),
    (
        "locker_command_round_trip_seconds",
        Histogram,
        "From a command's send to its answer.",
    ),
    (
        "locker_http_request_duration_seconds",
        Histogram,
        "HTTP request latency, by method and route.",
    ),
    (
        "locker_uplink_batch_size",
        Histogram,
        "Uplinks handled per batch.",
    ),
    (
        "locker_uplink_handling_seconds",
        Histogram,
        "Time to handle one batch of uplinks.",
    ),
    (
        "locker_uplink_lag_seconds",
        Histogram,
        "From an uplink's receipt to its handling.",
    ),
];

/// Describes every metric (and the process's), and sets `locker_build_info`.
pub fn describe_all(process: &metrics_process::Collector) {
    for (name, kind, help) in METRICS {
        match kind {
            Counter => describe_counter!(*name, *help),
            Gauge => describe_gauge!(*name, *help),
            Histogram => describe_histogram!(*name, *help),
        }
    }
    process.describe();
    metrics::gauge!(
        "locker_build_info",
        "version" => crate::VERSION,
        "protocol" => firmware_protocol::PROTOCOL_VERSION.to_string()
    )
    .set(1.0);
}
