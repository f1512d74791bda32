//! The task that owns one serial port: requests from the downlinks first, a poll cycle between
//! them, one request outstanding, a gap between frames, retries with the same bytes, answers to
//! the device link, boards offline after polls without an answer, the port reopened with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::storage::Storage;
use bytes::{Bytes, BytesMut};
use chrono::Utc;
use firmware_protocol::{
    CommandId, DeviceId, DeviceKey, DoorCause, DoorEvent, Downlink, Encoding, Envelope,
    MessageType, Unverified, Uplink,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_serial::SerialPortBuilderExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::schedule::{Schedule, Step};
use super::{
    BoardProtocol, BusSettings, LockerFrames, Parity, SerialRequest, SerialRoute, SerialWork,
};
use crate::device::DeviceRegistry;
use crate::link::downlink::Downlinks;
use crate::link::{Inbound, InboundKind, Injector};

mod counters;
mod line;
mod poll;
mod stats;

pub use stats::BusStats;

/// One board as the bus sees it.
struct Board {
    address: u8,
    device: DeviceId,
    /// Its session, from its last `hello` (`None`: not known; polled in session 0).
    session: Option<u32>,
    /// The counter of the last queued uplink (door event, alarm) received in that session: the
    /// poll's `ack_counter` (PROTOCOL.md §5.3).
    last_queued: u32,
    /// Polls in a row without an answer.
    misses: u32,
    /// Downlink counters taken for polls and not used yet (taken `poll::POLL_COUNTERS` at a
    /// time, so an idle bus writes to the database once per that many polls, not once per poll).
    counters: std::ops::Range<u32>,
    /// The next block, taken ahead by the counter task, in this session.
    spare: Option<(u32, std::ops::Range<u32>)>,
    /// A block has been asked of the counter task and has not come yet.
    refilling: bool,
    /// The highest downlink counter sent to it in its session: a block that does not start above
    /// it is old for the board.
    last_sent: u32,
    key: Option<DeviceKey>,
}

/// A line the bus speaks on: a serial port, or anything that reads and writes bytes in order (a
/// serial-over-TCP converter, an in-memory pipe in tests).
pub trait Port: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Port for T {}

/// Opens the serial port at `settings.path` as configured.
pub fn open_tty(settings: &BusSettings) -> std::io::Result<tokio_serial::SerialStream> {
    let s = settings;
    let port = tokio_serial::new(&s.path, s.baud)
        .data_bits(match s.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        })
        .parity(match s.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(if s.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        })
        .open_native_async()?;
    Ok(port)
}

/// The things a bus needs besides its settings and its port.
#[derive(Clone)]
pub struct BusParts {
    /// The database.
    pub storage: Storage,
    /// The boards' credentials.
    pub registry: DeviceRegistry,
    /// Where the boards' downlinks are routed.
    pub downlinks: Downlinks,
    /// Where their answers go.
    pub injector: Injector,
    /// The gateway holding the line.
    pub line: super::LineOwner,
}

impl Board {
    /// The spare block, if it is still good for the board (its session, above every counter the
    /// board was sent): its first counter, the rest kept as the current block.
    fn spare_block(&mut self) -> Option<u32> {
        let (session, mut block) = self.spare.take()?;
        if self.session != Some(session) || block.start <= self.last_sent {
            return None;
        }
        let first = block.next();
        self.counters = block;
        first
    }
}

/// Starts the bus at `settings.path` (a serial port): routes its boards' downlinks to it and
/// spawns its task on `tasks`, until `shutdown`.
pub fn start(
    settings: BusSettings,
    parts: BusParts,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> Arc<BusStats> {
    start_on(settings, open_tty, parts, tasks, shutdown)
}

/// Starts a bus on the line `open` opens (again after it fails, with backoff).
pub fn start_on<P: Port>(
    settings: BusSettings,
    open: impl FnMut(&BusSettings) -> std::io::Result<P> + Send + 'static,
    parts: BusParts,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> Arc<BusStats> {
    let BusParts {
        storage,
        registry,
        downlinks,
        injector,
        line,
    } = parts;
    let (tx, rx) = mpsc::channel(256);
    // Update messages wait in their own queue: one chunk per board in flight at most.
    let (updates_tx, updates_rx) = mpsc::channel(settings.boards.len().max(1) * 2);
    let (asks, asked) = mpsc::channel(settings.boards.len().max(1));
    let (refilled, refills) = mpsc::channel(settings.boards.len().max(1));
    for (address, device) in &settings.boards {
        downlinks.route_serial(
            *device,
            SerialRoute {
                requests: tx.clone(),
                updates: updates_tx.clone(),
                address: *address,
            },
        );
    }
    let boards: Vec<DeviceId> = settings.boards.iter().map(|(_, device)| *device).collect();
    if let Some(relay) = &line.relay {
        for board in &boards {
            relay.add(firmware_protocol::Topic::down(*board).to_string());
        }
    }
    tasks.spawn(announce(
        storage.clone(),
        line.gateway,
        boards,
        shutdown.clone(),
    ));
    let stats = Arc::new(BusStats::default());
    tasks.spawn(counters::keep(
        (storage.clone(), downlinks.clone()),
        asked,
        refilled,
        stats.clone(),
    ));
    let schedule = Schedule::new(settings.boards.len(), settings.poll_every, Instant::now());
    let round = settings.poll_round(settings.boards.len());
    if round > settings.poll_every {
        tracing::warn!(
            path = %settings.path,
            boards = settings.boards.len(),
            baud = settings.baud,
            ?round,
            poll_every = ?settings.poll_every,
            "this line cannot poll every board as often as LOCKER_SERIAL_POLL_MS asks: each board will be polled about once a round"
        );
    }
    let task = Bus {
        boards: settings
            .boards
            .iter()
            .map(|(address, device)| Board {
                address: *address,
                device: *device,
                session: None,
                last_queued: 0,
                misses: 0,
                counters: 0..0,
                spare: None,
                refilling: false,
                last_sent: 0,
                key: None,
            })
            .collect(),
        settings,
        storage,
        registry,
        downlinks,
        injector,
        asks,
        refills,
        requests: rx,
        updates: updates_rx,
        protocol: Box::new(LockerFrames::default()),
        input: BytesMut::with_capacity(4096),
        stats: stats.clone(),
        last_answer: None,
        last_commanded: None,
        schedule,
    };
    tasks.spawn(task.run(open, shutdown));
    stats
}

/// Records `boards` as on `gateway`'s line, trying again every few seconds until it is written.
async fn announce(
    storage: Storage,
    gateway: String,
    boards: Vec<DeviceId>,
    shutdown: CancellationToken,
) {
    loop {
        match crate::device::lines::attach(&storage, &gateway, &boards).await {
            Ok(()) => return,
            Err(e) => {
                metrics::counter!("locker_serial_announce_failures_total").increment(1);
                tracing::warn!(error = %e, "cannot record the boards on this gateway's line; trying again");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

struct Bus {
    settings: BusSettings,
    storage: Storage,
    registry: DeviceRegistry,
    downlinks: Downlinks,
    injector: Injector,
    /// To the counter task: take the next block of a board's poll counters.
    asks: mpsc::Sender<counters::Ask>,
    /// From it: the blocks taken.
    refills: mpsc::Receiver<counters::Refill>,
    requests: mpsc::Receiver<SerialRequest>,
    /// Firmware update messages, sent when the schedule gives them the line
    /// (`Schedule::next_with`).
    updates: mpsc::Receiver<SerialRequest>,
    protocol: Box<dyn BoardProtocol>,
    boards: Vec<Board>,
    input: BytesMut,
    stats: Arc<BusStats>,
    /// The type of the last answer read (to know whether a board has more to say).
    last_answer: Option<MessageType>,
    /// The command the last answer reported a door event of, if it did.
    last_commanded: Option<CommandId>,
    schedule: Schedule,
}

/// Why the bus stopped speaking on its port.
enum Stop {
    /// Shutting down.
    Shutdown,
    /// The port failed: reopen it.
    Port(std::io::Error),
}

impl Bus {
    async fn run<P: Port>(
        mut self,
        mut open: impl FnMut(&BusSettings) -> std::io::Result<P>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let port = match open(&self.settings) {
                Ok(port) => {
                    self.stats.opened.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(path = %self.settings.path, "serial bus open");
                    backoff = Duration::from_millis(100);
                    port
                }
                Err(e) => {
                    tracing::warn!(error = %e, path = %self.settings.path, ?backoff, "cannot open the serial port; trying again");
                    self.all_offline().await;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            match self.speak(port, &shutdown).await {
                Stop::Shutdown => return,
                Stop::Port(e) => {
                    metrics::counter!("locker_serial_port_errors_total").increment(1);
                    tracing::warn!(error = %e, path = %self.settings.path, "the serial port failed; reopening it");
                    self.all_offline().await;
                    self.input.clear();
                }
            }
        }
    }

    /// Speaks on the open port as the [`Schedule`] says, until shutdown or a port error.
    async fn speak<P: Port>(&mut self, mut port: P, shutdown: &CancellationToken) -> Stop {
        // What the line holds from before (answers to requests of an earlier port, a board's
        // backlog) answers nothing asked now: flushed before the first request.
        self.input.clear();
        if let Err(e) = self.until_silent(&mut port).await {
            return Stop::Port(e);
        }
        // Every board at once when the port opens: a restarted gateway (or a replugged adapter)
        // has its boards online after one round.
        self.schedule.all_due(Instant::now());
        loop {
            if shutdown.is_cancelled() {
                return Stop::Shutdown;
            }
            let step = self.schedule.next_with(
                Instant::now(),
                !self.requests.is_empty(),
                !self.updates.is_empty(),
            );
            let result = match step {
                Step::Request => match self.requests.try_recv() {
                    Ok(request) => self.request(&mut port, request).await,
                    Err(_) => Ok(()),
                },
                Step::AfterCommand(board, command) => self.poll(&mut port, board, command).await,
                Step::Cycle(board) => self.poll(&mut port, board, None).await,
                // A firmware update exchange (a command that comes meanwhile waits for this one
                // exchange, never more).
                Step::Update => match self.updates.try_recv() {
                    Ok(update) => self.request(&mut port, update).await,
                    Err(_) => Ok(()),
                },
                Step::Wait(until) => {
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => return Stop::Shutdown,
                        request = self.requests.recv() => match request {
                            Some(request) => self.request(&mut port, request).await,
                            None => return Stop::Shutdown,
                        },
                        _ = tokio::time::sleep_until(until) => Ok(()),
                        Some(update) = self.updates.recv() => self.request(&mut port, update).await,
                    }
                }
            };
            if let Err(e) = result {
                return Stop::Port(e);
            }
        }
    }

    /// Does one queued request: a frame is sent (an answered command has its board polled next,
    /// to fetch its door event); a drain is scheduled like the poll after a command.
    async fn request<P: Port>(
        &mut self,
        port: &mut P,
        request: SerialRequest,
    ) -> std::io::Result<()> {
        let board = self
            .boards
            .iter()
            .position(|b| b.address == request.address);
        let envelope = match request.work {
            SerialWork::Send(envelope) => envelope,
            SerialWork::Drain => {
                if let Some(board) = board {
                    self.schedule.commanded(board, None);
                }
                return Ok(());
            }
        };
        let raw = Unverified::parse_binary(&envelope).ok();
        if let (Some(raw), Some(board)) = (&raw, board.and_then(|b| self.boards.get_mut(b))) {
            let header = raw.header();
            if header.counter >= board.counters.start {
                // Taken after the poll counters: once it is sent, the board refuses them as old.
                board.counters = 0..0;
            }
            if Some(header.session) == board.session {
                board.last_sent = board.last_sent.max(header.counter);
            }
        }
        let answered = self.exchange(port, request.address, &envelope).await?;
        let command = raw
            .and_then(|raw| raw.decode_unverified::<Downlink>().ok())
            .and_then(|envelope| envelope.message.command_id());
        if answered
            && command.is_some()
            && let Some(board) = board
        {
            self.schedule.commanded(board, command);
        }
        Ok(())
    }

    /// An answer from a board: learn its session and counter, and hand it to the link.
    async fn received(&mut self, address: u8, envelope: Bytes) {
        let Some(board) = self.boards.iter_mut().find(|b| b.address == address) else {
            return;
        };
        board.misses = 0;
        self.last_answer = None;
        if let Ok(raw) = Unverified::parse_binary(&envelope) {
            self.last_answer = Some(raw.message_type());
            let header = *raw.header();
            // A new session starts its uplink counters again (a board announcing its current
            // session again keeps its place).
            if Some(header.session) != board.session {
                board.session = Some(header.session);
                board.last_queued = 0;
                board.counters = 0..0;
                board.spare = None;
                board.last_sent = 0;
            }
            if raw.message_type().waits_for_poll() {
                board.last_queued = board.last_queued.max(header.counter);
            }
            if let Ok(Envelope {
                message:
                    Uplink::DoorEvent(DoorEvent {
                        cause: DoorCause::Commanded(id),
                        ..
                    }),
                ..
            }) = raw.decode_unverified::<Uplink>()
            {
                self.last_commanded = Some(id);
            }
        }
        let inbound = Inbound {
            device: board.device,
            kind: InboundKind::Up,
            payload: envelope,
            encoding: Encoding::Binary,
            received_at: Utc::now(),
        };
        if !self.injector.inject(inbound).await {
            tracing::warn!("the device link has stopped; a serial answer is dropped");
        }
    }
}
