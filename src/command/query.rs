//! Asking a locker what became of commands whose answer was lost: a `QueryState` in its current
//! session; the `StateReport` settles them (see `store::settle_from_report`).

use firmware_protocol::{
    DeviceId, DeviceKey, Direction, Downlink, Envelope, Header, QueryState, Topic,
};
use sqlx::PgPool;

use super::store;
use crate::device::DeviceRegistry;
use crate::link::downlink::Downlinks;

/// Sends a `QueryState` to `device` in `session` (taking the session's next downlink counter).
pub async fn ask_state(
    pool: &PgPool,
    downlinks: &Downlinks,
    device: DeviceId,
    session: u32,
    key: &DeviceKey,
) -> Result<bool, sqlx::Error> {
    let Some(counter) = store::next_counter(pool, &device, session).await? else {
        return Ok(false);
    };
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
    match query.seal_json(key) {
        Ok(payload) => {
            tracing::info!(%device, session, "asking the locker about commands of unknown outcome");
            Ok(downlinks.send(Topic::down(device).to_string(), payload.into_bytes()))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot seal a query");
            Ok(false)
        }
    }
}

/// At start: marks the commands nobody waits for any more as unknown and asks each online locker
/// concerned about them.
pub async fn reconcile_at_start(
    pool: &PgPool,
    downlinks: &Downlinks,
) -> Result<usize, sqlx::Error> {
    let registry = DeviceRegistry::new(pool.clone());
    let devices = store::orphans_at_start(pool).await?;
    let mut asked = 0;
    for (device, session) in devices {
        let Ok(Some(credentials)) = registry.credentials(&device).await else {
            continue;
        };
        if ask_state(
            pool,
            downlinks,
            device,
            session,
            &credentials.current.tag_key,
        )
        .await?
        {
            asked += 1;
        }
    }
    Ok(asked)
}
