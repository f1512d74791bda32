//! The bus's counter task: takes the next block of a board's poll counters from the database
//! ahead of need, so the line's timing loop does not wait for it. A block is taken in the
//! locker's turn, like a command's counter: whatever was queued for the board before it has lower
//! counters and is already in the bus's queue, which the line empties before it polls.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use firmware_protocol::DeviceId;
use tokio::sync::mpsc;

use super::BusStats;
use super::poll::POLL_COUNTERS;
use crate::link::downlink::Downlinks;
use crate::storage::Storage;

/// Take the next block of this board's poll counters in this session.
#[derive(Debug)]
pub(super) struct Ask {
    /// The board's place on the bus.
    pub index: usize,
    /// The board.
    pub device: DeviceId,
    /// Its session.
    pub session: u32,
}

/// A block taken (`None`: the session is no longer the board's, or the database failed).
#[derive(Debug)]
pub(super) struct Refill {
    /// The board's place on the bus.
    pub index: usize,
    /// The session the block belongs to.
    pub session: u32,
    /// The counters.
    pub counters: Option<Range<u32>>,
}

/// Answers `asks` until the bus stops asking.
pub(super) async fn keep(
    (storage, downlinks): (Storage, Downlinks),
    mut asks: mpsc::Receiver<Ask>,
    refills: mpsc::Sender<Refill>,
    stats: Arc<BusStats>,
) {
    while let Some(Ask {
        index,
        device,
        session,
    }) = asks.recv().await
    {
        let taken = {
            let _turn = downlinks.turn(&device).await;
            crate::command::store::reserve_counters(&storage, &device, session, POLL_COUNTERS).await
        };
        let counters = match taken {
            Ok(Some(first)) => {
                stats.counter_blocks.fetch_add(1, Ordering::Relaxed);
                Some(first..first.saturating_add(POLL_COUNTERS))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, %device, "cannot take poll counters ahead");
                None
            }
        };
        let refill = Refill {
            index,
            session,
            counters,
        };
        if refills.send(refill).await.is_err() {
            return;
        }
    }
}
