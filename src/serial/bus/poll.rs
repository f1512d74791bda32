//! Polling the boards of a bus: a poll in the board's session (counters taken in blocks), again
//! while the board answers with what it had queued, and offline after polls without an answer.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use chrono::Utc;
use firmware_protocol::{
    CommandId, DeviceId, Direction, Downlink, Encoding, Envelope, Header, MessageType, Poll,
};
use tokio::time::Instant;

use super::{Bus, Port};
use crate::link::{Inbound, InboundKind};

/// Polls in a row to one board while it answers with what it had queued.
const DRAIN_POLLS: usize = 8;

/// Poll counters taken from the database at once (see `Board::counters`).
pub(super) const POLL_COUNTERS: u32 = 16;

impl Bus {
    /// Polls one board, again while it answers with uplinks it had queued (door events, alarms),
    /// so they never pile up behind one poll each; after a command, only until that command's
    /// door event has come (the rest waits for the cycle).
    pub(super) async fn poll<P: Port>(
        &mut self,
        port: &mut P,
        index: usize,
        until: Option<CommandId>,
    ) -> std::io::Result<()> {
        for _ in 0..DRAIN_POLLS {
            self.last_answer = None;
            self.last_commanded = None;
            self.poll_once(port, index).await?;
            if !self.last_answer.is_some_and(MessageType::waits_for_poll) {
                break;
            }
            if until.is_some() && self.last_commanded == until {
                break;
            }
        }
        Ok(())
    }

    /// One poll: in the board's session with its next counter if it has one, else in session 0
    /// (it answers with a `hello`).
    async fn poll_once<P: Port>(&mut self, port: &mut P, index: usize) -> std::io::Result<()> {
        self.schedule.polled(index, Instant::now());
        let Some(board) = self.boards.get_mut(index) else {
            return Ok(());
        };
        let device = board.device;
        if board.key.is_none() {
            board.key = match self.registry.credentials(&device).await {
                Ok(Some(c)) if !c.revoked => Some(c.current.tag_key.clone()),
                _ => None,
            };
        }
        let Some(key) = board.key.clone() else {
            return Ok(()); // not registered, or revoked: never polled
        };
        // Blocks taken ahead, before the queue is emptied: what was queued before a block was
        // taken is in the queue by then, and goes out before the poll that uses the block.
        self.take_refills();
        // Requests waiting go first (a person may be waiting at a door); one to this board
        // makes the poll take fresh counters after it.
        while let Ok(request) = self.requests.try_recv() {
            self.request(port, request).await?;
        }
        let Some(board) = self.boards.get_mut(index) else {
            return Ok(());
        };
        let known = board.session;
        let (mut session, mut counter) = (0, 0);
        let mut earlier = Vec::new();
        let next = board.counters.next().or_else(|| board.spare_block());
        match (known, next) {
            // A counter taken with the others before: everything queued before them was sent
            // then, and what was queued since has higher counters and follows the poll.
            (Some(known), Some(next)) => (session, counter) = (known, next),
            _ => {
                // The locker's turn: counters reach it in order, commands and polls alike. What
                // is queued when the poll takes its counters has lower ones and goes first; what
                // is queued after has higher ones and follows the poll (sent before it, it would
                // make the board ignore the poll as old).
                let _turn = self.downlinks.turn(&device).await;
                if let Some(known) = known {
                    match crate::command::store::reserve_counters(
                        &self.storage,
                        &device,
                        known,
                        POLL_COUNTERS,
                    )
                    .await
                    {
                        Ok(Some(first)) => {
                            self.stats.counter_blocks.fetch_add(1, Ordering::Relaxed);
                            self.stats
                                .counter_blocks_waited
                                .fetch_add(1, Ordering::Relaxed);
                            (session, counter) = (known, first);
                            if let Some(board) = self.boards.get_mut(index) {
                                board.counters =
                                    first.saturating_add(1)..first.saturating_add(POLL_COUNTERS);
                            }
                        }
                        Ok(None) => {} // the session is not (yet) recorded: ask for a hello
                        Err(e) => {
                            tracing::warn!(error = %e, %device, "cannot take poll counters");
                            return Ok(());
                        }
                    }
                }
                while let Ok(request) = self.requests.try_recv() {
                    earlier.push(request);
                }
            }
        }
        for request in earlier {
            self.request(port, request).await?;
        }
        let Some(board) = self.boards.get(index) else {
            return Ok(());
        };
        let ack_counter = board.last_queued;
        self.ask_ahead(index);
        let poll = Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: device,
                session,
                counter,
            },
            message: Downlink::Poll(Poll { ack_counter }),
        };
        let Ok(sealed) = poll.seal_binary(&key) else {
            return Ok(());
        };
        self.stats.polls.fetch_add(1, Ordering::Relaxed);
        let answered = self
            .exchange(port, self.boards[index].address, &sealed)
            .await?;
        if !answered {
            self.missed(index).await;
        }
        Ok(())
    }

    /// Takes the blocks the counter task has brought as the boards' spares.
    fn take_refills(&mut self) {
        while let Ok(refill) = self.refills.try_recv() {
            let Some(board) = self.boards.get_mut(refill.index) else {
                continue;
            };
            board.refilling = false;
            if let Some(counters) = refill.counters
                && board.session == Some(refill.session)
            {
                board.spare = Some((refill.session, counters));
            }
        }
    }

    /// Asks the counter task for a board's next block once half of this one is used, so it is
    /// there before the board needs it.
    fn ask_ahead(&mut self, index: usize) {
        let Some(board) = self.boards.get_mut(index) else {
            return;
        };
        let Some(session) = board.session else {
            return;
        };
        if board.refilling
            || board.spare.is_some()
            || board.counters.len() as u32 > POLL_COUNTERS / 2
        {
            return;
        }
        let ask = super::counters::Ask {
            index,
            device: board.device,
            session,
        };
        // A full queue: the task is busy with other boards; asked again at the next poll.
        if self.asks.try_send(ask).is_ok() {
            board.refilling = true;
        }
    }

    /// A poll without an answer; enough in a row and the board is offline.
    async fn missed(&mut self, index: usize) {
        let offline_after = self.settings.offline_after;
        let Some(board) = self.boards.get_mut(index) else {
            return;
        };
        board.misses += 1;
        let device = board.device;
        let offline = if board.misses >= offline_after {
            board.session.take()
        } else {
            None
        };
        if offline.is_some() {
            tracing::warn!(%device, address = board.address, "a serial board stopped answering");
        }
        self.tell(device, offline).await;
    }

    /// The port is gone: every board is offline until it answers again.
    pub(super) async fn all_offline(&mut self) {
        let mut gone = Vec::new();
        for board in &mut self.boards {
            board.misses = 0;
            if let Some(session) = board.session.take() {
                gone.push((board.device, session));
            }
        }
        for (device, session) in gone {
            let news = Inbound {
                device,
                kind: InboundKind::Unanswered {
                    offline: Some(session),
                },
                payload: Bytes::new(),
                encoding: Encoding::Binary,
                received_at: Utc::now(),
            };
            if !self.injector.inject(news).await {
                tracing::warn!("the device link has stopped; a board's silence is not recorded");
            }
        }
    }

    /// Hands the link a poll `device` did not answer (in order with its answers; the link writes
    /// it, never this task).
    async fn tell(&mut self, device: DeviceId, offline: Option<u32>) {
        let news = Inbound {
            device,
            kind: InboundKind::Unanswered { offline },
            payload: Bytes::new(),
            encoding: Encoding::Binary,
            received_at: Utc::now(),
        };
        if !self.injector.inject(news).await {
            tracing::warn!("the device link has stopped; a board's silence is not recorded");
        }
    }
}
