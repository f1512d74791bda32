//! Asking a locker what became of commands whose answer was lost: a `QueryState` in its current
//! session; the `StateReport` settles them (see `store::settle_from_report`).

use firmware_protocol::{DeviceId, DeviceKey, Direction, Downlink, Envelope, Header, QueryState};

use super::outlet::Outlet;
use super::store;
use crate::device::DeviceRegistry;
use crate::storage::{Storage, on_pool};
use crate::worker::Items;

/// Sends a `QueryState` to `device` in `session` (taking the session's next downlink counter).
pub async fn ask_state(
    storage: &Storage,
    downlinks: &dyn Outlet,
    device: DeviceId,
    session: u32,
    key: &DeviceKey,
) -> Result<bool, sqlx::Error> {
    // The locker's turn until the query is queued.
    let _turn = downlinks.turns().turn(&device).await;
    let Some(counter) = store::next_counter(storage, &device, session).await? else {
        return Ok(false);
    };
    crate::device::counters::state_asked(storage, &device, chrono::Utc::now()).await?;
    let query = Envelope {
        header: Header {
            direction: Direction::Down,
            device_id: device,
            session,
            counter,
        },
        message: Downlink::QueryState(QueryState {
            query_id: rand::random(),
        }),
    };
    match downlinks.deliver(&query, key, None) {
        Ok(_) => {
            tracing::info!(%device, session, "asking the locker about commands of unknown outcome");
            Ok(true)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot seal a query");
            Ok(false)
        }
    }
}

/// At start of gateway `me`: marks the commands nobody waits for any more (its previous run's,
/// and those of gateways whose lease expired; never a live gateway's) as unknown and asks each
/// online locker concerned about them.
pub async fn reconcile_at_start(
    storage: &Storage,
    downlinks: &dyn Outlet,
    items: &Items,
    me: &str,
) -> Result<usize, sqlx::Error> {
    let devices = store::orphans_at_start(storage, me).await?;
    ask_each(storage, downlinks, items, devices).await
}

/// Asks each of these lockers, in its session, about its commands; returns how many were asked.
/// A locker that cannot be asked never stops the others: `items` logs and counts it, backs it
/// off and flags it if it keeps failing.
async fn ask_each(
    storage: &Storage,
    downlinks: &dyn Outlet,
    items: &Items,
    devices: impl IntoIterator<Item = (DeviceId, u32)>,
) -> Result<usize, sqlx::Error> {
    let registry = DeviceRegistry::new(storage.clone());
    let mut asked = 0;
    for (device, session) in devices {
        let item = format!("device {device}");
        let ask = async {
            // A device removed meanwhile has nobody to ask.
            let credentials = registry.credentials(&device).await;
            let Some(credentials) = credentials.map_err(|e| e.to_string())? else {
                return Ok::<_, String>(false);
            };
            let key = &credentials.current.tag_key;
            ask_state(storage, downlinks, device, session, key)
                .await
                .map_err(|e| e.to_string())
        };
        if items.attempt(&item, ask).await == Some(true) {
            asked += 1;
        }
    }
    Ok(asked)
}

/// Asks again the online lockers that have not answered a query about their unknown commands for
/// `ask_again`, and tells operators (`command.unknown`, reason `no_report`) about commands still
/// unknown after `surface_after`. Returns how many lockers were asked.
pub async fn retry_unknown(
    storage: &Storage,
    downlinks: &dyn Outlet,
    items: &Items,
    (ask_again, surface_after): (std::time::Duration, std::time::Duration),
) -> Result<usize, sqlx::Error> {
    const TO_ASK: &str = "SELECT d.id, d.session FROM devices d
         WHERE d.online AND d.session IS NOT NULL
           AND (d.state_asked_at IS NULL OR d.state_asked_at < $1)
           AND EXISTS (SELECT 1 FROM commands c WHERE c.device_id = d.id AND c.state = 'unknown'
                       AND c.surfaced_at IS NULL)
         ORDER BY d.id LIMIT 200";
    let asked_before = crate::storage::before(chrono::Utc::now(), ask_again);
    let rows: Vec<(String, i64)> = on_pool!(storage, |pool| sqlx::query_as(TO_ASK)
        .bind(asked_before)
        .fetch_all(pool)
        .await?);
    let devices = rows
        .into_iter()
        .filter_map(|(id, session)| Some((DeviceId::new(&id)?, u32::try_from(session).ok()?)));
    let asked = ask_each(storage, downlinks, items, devices).await?;
    store::surface_stale_unknown(storage, surface_after).await?;
    Ok(asked)
}
