//! The transport builder: the gateway's MQTT connections (to its embedded broker, or to an
//! external one) and its serial buses.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::StartError;
use crate::broker::{
    BrokerError, BrokerSettings, EmbeddedBroker, RegistryAuthenticator, Revocations,
};
use crate::config::Config;
use crate::device::DeviceRegistry;
use crate::link::DeviceLink;
use crate::link::downlink::Downlinks;
use crate::mqtt::{self, MqttRx, MqttTx};
use crate::storage::Storage;

/// The gateway's MQTT side.
pub(super) struct Mqtt {
    /// The embedded broker, if the gateway runs one.
    pub broker: Option<EmbeddedBroker>,
    /// The lockers' `up` and `status` messages.
    pub uplinks: MqttRx,
    /// Where events are published.
    pub events: MqttTx,
    /// Where revocations nudge a locker's `down` topic.
    pub nudges: MqttTx,
    /// Where downlinks leave.
    pub downlinks: MqttTx,
    /// Whether the uplink subscription is in place (always, with the embedded broker).
    pub ready: watch::Receiver<bool>,
    /// With an external broker: the uplinks' client's subscriptions to the `down` topics of the
    /// boards on this gateway's serial lines, which it relays to them (other gateways' downlinks).
    pub relay: Option<mqtt::Subscriptions>,
}

/// How long the start-up check of an external broker's shared subscriptions may take.
const PROBE_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// With an external broker: gives the gateways' user its rights first if the gateways keep the
/// broker's rights (dynamic security), then checks that it delivers shared subscriptions (a
/// fleet's gateways share the lockers' uplinks through them), refusing to start if not.
pub(super) async fn check_broker(config: &Config, storage: &Storage) -> Result<(), StartError> {
    let Some(external) = &config.external_broker else {
        return Ok(());
    };
    if let Some(rights) = broker_rights(
        config,
        storage,
        &TaskTracker::new(),
        CancellationToken::new(),
    ) {
        let result = rights.grant_gateway().await;
        rights.stop();
        result?;
        tracing::info!("the gateways' rights are granted on the broker (dynamic security)");
    }
    mqtt::check_shared_subscriptions(
        external,
        &config.gateway_id,
        &config.shared_group,
        PROBE_WITHIN,
    )
    .await?;
    tracing::info!(broker = ?external, "the external broker delivers shared subscriptions");
    Ok(())
}

/// Starts the embedded broker (lockers logging in with the registry's credentials, refused once
/// revoked) and links to it, or connects to the external broker the configuration names (its
/// clients run on `tasks` until `shutdown`: they stop last, after the outbox is flushed).
pub(super) fn connect(
    config: &Config,
    registry: &DeviceRegistry,
    revocations: &Revocations,
    tasks: &TaskTracker,
    (shutdown, uplinks_stop): (&CancellationToken, &CancellationToken),
) -> Result<Mqtt, StartError> {
    let Some(external) = &config.external_broker else {
        let mut settings = BrokerSettings::on(config.mqtt_addr);
        settings.v5_addr = config.mqtt5_addr;
        settings.tls = config.mqtts.clone();
        // Subscribed before any locker can connect: a hello sent the moment the listener opens
        // (lockers reconnecting after a restart) is never lost.
        settings.early_links = vec![("gateway-uplinks".to_owned(), DeviceLink::filters())];
        let auth = RegistryAuthenticator::new(registry.clone(), tokio::runtime::Handle::current());
        let broker = EmbeddedBroker::start(settings, auth, revocations.clone())?;
        let uplinks =
            mqtt::embedded(broker.link("gateway-uplinks")?, &[]).map_err(BrokerError::Link)?;
        let events = MqttTx::Embedded(broker.link("gateway-events")?.0);
        let nudges = MqttTx::Embedded(broker.link("gateway-revocations")?.0);
        let downlinks = MqttTx::Embedded(broker.link("gateway-downlinks")?.0);
        let (_, ready) = watch::channel(true);
        return Ok(Mqtt {
            broker: Some(broker),
            uplinks,
            events,
            nudges,
            downlinks,
            ready,
            relay: None,
        });
    };
    tracing::info!(broker = ?external, gateway = %config.gateway_id, group = %config.shared_group, "using an external MQTT broker");
    let gateway = config.gateway_id.as_str();
    let client = |role, filters, stop: &CancellationToken| {
        let client = mqtt::ExternalClient::of(gateway, role, filters);
        mqtt::external(external, client, tasks, stop.clone())
    };
    // Lockers' uplinks and status through the fleet's shared subscription: each message reaches
    // one of the gateways.
    let shared = DeviceLink::filters()
        .iter()
        .map(|filter| mqtt::shared(&config.shared_group, filter))
        .collect();
    // The uplinks' client stops with the device link (it unsubscribes and hands on what the
    // broker had sent before the link drains); the others publish until the very end.
    // It also takes the `down` topics of the boards on this gateway's serial lines, as their
    // buses start (`relay`).
    let uplinks_client = mqtt::ExternalClient::of(gateway, "uplinks", shared);
    let relay = uplinks_client.added.clone();
    let (_, uplinks, ready) = mqtt::external(external, uplinks_client, tasks, uplinks_stop.clone());
    let (events, _, _) = client("events", Vec::new(), shutdown);
    let (nudges, _, _) = client("control", Vec::new(), shutdown);
    let (downlinks, _, _) = client("downlinks", Vec::new(), shutdown);
    Ok(Mqtt {
        broker: None,
        uplinks,
        events,
        nudges,
        downlinks,
        ready,
        relay: Some(relay),
    })
}

/// Starts the configured serial buses: their boards' downlinks routed to their bus, their
/// answers into the device link like any uplink.
pub(super) fn serial_buses(
    config: &Config,
    link: &DeviceLink,
    (storage, registry, downlinks): (&Storage, &DeviceRegistry, &Downlinks),
    line: &crate::serial::LineOwner,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> Vec<Arc<crate::serial::BusStats>> {
    let mut serial = Vec::with_capacity(config.serial_buses.len());
    for bus in &config.serial_buses {
        let Some(injector) = link.injector() else {
            break;
        };
        let parts = crate::serial::BusParts {
            storage: storage.clone(),
            registry: registry.clone(),
            downlinks: downlinks.clone(),
            injector,
            line: line.clone(),
        };
        serial.push(crate::serial::start(
            bus.clone(),
            parts,
            tasks,
            shutdown.clone(),
        ));
    }
    serial
}

/// Forgets the boards the books put on this gateway's lines that its configuration no longer
/// has (their buses record the others again as they start); a failure is logged, not fatal.
pub(super) async fn release_boards_elsewhere(config: &Config, storage: &Storage) {
    let kept: Vec<_> = config
        .serial_buses
        .iter()
        .flat_map(|bus| bus.boards.iter().map(|(_, device)| *device))
        .collect();
    match crate::device::lines::release_others(storage, &config.gateway_id, &kept).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            boards = n,
            "boards no longer on this gateway's serial lines"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read which boards were on this gateway's lines")
        }
    }
}

/// With `LOCKER_BROKER_RIGHTS=dynsec`: the keeper of the broker's clients and rights, its control
/// client connected on `tasks` until `stop`.
pub(super) fn broker_rights(
    config: &Config,
    storage: &Storage,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Option<crate::background::broker_rights::BrokerRights> {
    use crate::config::BrokerRights as Rights;
    let (Rights::Dynsec, Some(external), Some(key)) = (
        config.broker_rights,
        &config.external_broker,
        &config.secrets_key,
    ) else {
        return None;
    };
    let user = external
        .credentials
        .as_ref()
        .map(|(user, _)| user.clone())
        .unwrap_or_default();
    let dynsec = mqtt::dynsec::Dynsec::connect(external, &config.gateway_id, tasks, stop.clone());
    Some(crate::background::broker_rights::BrokerRights::new(
        dynsec,
        storage.clone(),
        key.clone(),
        user,
        stop,
    ))
}
