//! Domain events: written to the outbox in the transaction that causes them (see [`outbox`]),
//! delivered at least once afterwards.

pub mod batch;
pub mod outbox;
pub mod tail;

pub use outbox::{Append, Event};

/// The MQTT topic an event is published on.
pub fn event_topic(event_type: &str) -> String {
    format!("events/{event_type}")
}

/// Every event type the gateway writes, each published on MQTT as `events/{type}` (the AsyncAPI
/// document at `/v1/asyncapi.json` describes each one's data).
pub const TYPES: &[&str] = &[
    "device.provisioned",
    "device.revoked",
    "device.online",
    "device.offline",
    "device.unlocked",
    "device.locked",
    "alarm.forced_open",
    "alarm.door_ajar",
    "alarm.tamper",
    "alarm.power_loss",
    "alarm.jammed",
    "command.unknown",
    "rental.started",
    "rental.cancelled",
    "rental.ended",
    "order.created",
    "order.paid",
    "order.completed",
    "order.cancelled",
    "wallet.topped_up",
    "payment.captured",
    "payment.refunded",
    "worker.item_stuck",
    "firmware.uploaded",
    "firmware.campaign_created",
    "firmware.wave_started",
    "firmware.campaign_paused",
    "firmware.campaign_resumed",
    "firmware.campaign_cancelled",
    "firmware.campaign_stopped",
    "firmware.campaign_finished",
    "firmware.update_finished",
];
