//! Simulated lock boards on one serial bus: a pseudo-terminal pair, the boards behind one end;
//! the gateway opens the other end's path exactly as it would `/dev/ttyUSB0`. Each board runs
//! the same firmware logic as a simulated MQTT locker ([`SimLocker`]) and the serial rules of
//! PROTOCOL.md §5.3: it speaks only when asked, answers a request in another session (or before
//! it has one) with a `hello` opening a new session, keeps its door events and alarms in a queue
//! and sends them one at a time in answer to polls (numbered when sent, again until a poll's
//! `ack_counter` covers them), else a heartbeat.
//!
//! The same boards can sit behind any byte stream instead ([`spawn_bus_on`]: an in-memory pipe).
//!
//! Knobs make the line and the boards misbehave: bit flips and dropped bytes at a rate, slow
//! boards, dead boards, a board answering for another address, a reboot.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use firmware_protocol::{Downlink, Envelope, Frame, FrameCodec, Unverified, Uplink};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::codec::Decoder;

use crate::SimLocker;

pub use setup::{BoardConfig, BoardEvent, SerialKnob};

mod setup;

/// The boards' end of a line.
trait Line: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Line for T {}

/// A running simulated bus.
pub struct SimulatedBus {
    /// The pseudo-terminal's path; empty for a bus on a stream.
    path: String,
    /// The directory holding the path's link, removed when the bus is dropped.
    dir: Option<std::path::PathBuf>,
    knobs: mpsc::Sender<SerialKnob>,
    events: mpsc::Receiver<BoardEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl SimulatedBus {
    /// The path the gateway opens (empty for a bus on a stream).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Turns a knob.
    pub async fn turn(&self, knob: SerialKnob) {
        let _ = self.knobs.send(knob).await;
    }

    /// The next thing a board did, if any happened.
    pub fn try_event(&mut self) -> Option<BoardEvent> {
        self.events.try_recv().ok()
    }

    /// Waits for the next thing a board did.
    pub async fn event(&mut self, within: Duration) -> Option<BoardEvent> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for SimulatedBus {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A new pseudo-terminal; its far end is reachable at `link` (a symbolic link, as
/// `/dev/serial/by-id/…` is). Returns our end.
fn plug(link: &std::path::Path) -> std::io::Result<Box<dyn Line>> {
    use tokio_serial::SerialPort;
    let (ours, theirs) = tokio_serial::SerialStream::pair()?;
    let name = theirs
        .name()
        .ok_or_else(|| std::io::Error::other("the pseudo-terminal has no name"))?;
    // The gateway opens the far end by its path, exclusively (as it opens a real port); the
    // pseudo-terminal lives as long as our end does.
    drop(theirs);
    let fresh = link.with_extension("new");
    let _ = std::fs::remove_file(&fresh);
    std::os::unix::fs::symlink(&name, &fresh)?;
    std::fs::rename(&fresh, link)?;
    Ok(Box::new(ours))
}

struct Board {
    locker: SimLocker,
    address: u8,
    /// Door events and alarms waiting for a poll, oldest first (numbered when first sent).
    queued: VecDeque<Envelope<Uplink>>,
    /// The queued uplink last sent, until a poll's `ack_counter` reaches its counter.
    in_flight: Option<Envelope<Uplink>>,
    dead: bool,
    slow: Duration,
    answer_as: Option<u8>,
    power_cut_after_next: bool,
    /// After its next executed command, this many answers are lost on the line.
    lose_after_next: Option<u32>,
    /// Answers still to be lost (the board acts on the requests; nothing reaches the gateway).
    answers_to_lose: u32,
    /// Doors open, and when they opened.
    opened_at: BTreeMap<u16, Instant>,
}

/// Door events and alarms a board keeps for polls.
const QUEUE_CAPACITY: usize = 32;

impl Board {
    fn uptime(&self, started: Instant) -> u64 {
        started.elapsed().as_millis() as u64
    }

    /// Keeps a door event or alarm for the next poll. When the queue is full the oldest door
    /// event makes room (alarms are kept), as PROTOCOL.md §5.3 asks of firmware.
    fn enqueue(&mut self, uplink: Envelope<Uplink>) {
        if self.queued.len() >= QUEUE_CAPACITY {
            match self
                .queued
                .iter()
                .position(|u| matches!(u.message, Uplink::DoorEvent(_)))
            {
                Some(oldest_event) => {
                    self.queued.remove(oldest_event);
                }
                None if matches!(uplink.message, Uplink::DoorEvent(_)) => return,
                None => {
                    self.queued.pop_front();
                }
            }
        }
        self.queued.push_back(uplink);
    }

    /// A power cut: RAM is gone, and what was queued with it.
    fn forget_queue(&mut self) {
        self.queued.clear();
        self.in_flight = None;
    }

    /// The board's answer to one frame addressed to it, if it answers.
    fn answer(&mut self, envelope: &[u8], started: Instant) -> Option<Envelope<Uplink>> {
        let uptime = self.uptime(started);
        let raw = Unverified::parse_binary(envelope).ok()?;
        let verified = raw
            .verify::<Downlink>(&self.locker.device_id(), self.locker.key())
            .ok();
        // A request before it has a session (just powered up): a new session, announced. (A
        // request naming another session is answered by the firmware logic below: a poll, ping
        // or query with the board's current session announced again, a command refused.)
        if verified.is_some() && self.locker.session().is_none() {
            let session = loop {
                let s: u32 = rand::random();
                if s != 0 {
                    break s;
                }
            };
            return Some(self.locker.connect(session, uptime));
        }
        if let Some(Envelope {
            header,
            message: Downlink::Poll(poll),
        }) = &verified
            && Some(header.session) == self.locker.session()
        {
            return self.answer_poll(header, poll.ack_counter, uptime);
        }
        let answers = self.locker.receive(&raw, uptime);
        let mut direct = None;
        for answer in answers {
            if answer.message.message_type().waits_for_poll() {
                self.enqueue(answer);
            } else if direct.is_none() {
                direct = Some(answer);
            }
        }
        direct
    }

    /// A poll: the uplink in flight until the gateway has it, then the next queued one, each
    /// numbered when it is sent (again, if anything else was sent since); else a heartbeat.
    fn answer_poll(
        &mut self,
        header: &firmware_protocol::Header,
        ack_counter: u32,
        uptime: u64,
    ) -> Option<Envelope<Uplink>> {
        if !self.locker.accept_poll(header) {
            return None; // an older poll: ignored
        }
        if self
            .in_flight
            .as_ref()
            .is_some_and(|u| u.header.counter <= ack_counter)
        {
            self.in_flight = None;
        }
        if self.in_flight.is_none() {
            self.in_flight = self.queued.pop_front();
            if let Some(uplink) = self.in_flight.as_mut() {
                self.locker.restamp(uplink);
            }
        } else if let Some(uplink) = self.in_flight.as_mut()
            && uplink.header.counter != self.locker.last_counter()
        {
            // Something else went out since: a fresh counter keeps the gateway's order.
            self.locker.restamp(uplink);
        }
        match &self.in_flight {
            Some(uplink) => Some(uplink.clone()),
            None => Some(self.locker.heartbeat(uptime)),
        }
    }
}

/// Starts a bus with these boards on a new pseudo-terminal; returns it with the path to open.
pub fn spawn_bus(boards: Vec<BoardConfig>) -> std::io::Result<SimulatedBus> {
    let dir = std::env::temp_dir().join(format!("locker-serial-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir)?;
    let link = dir.join("bus");
    let ours = plug(&link)?;
    let path = link.display().to_string();
    let mut bus = spawn(boards, ours, Some(link));
    bus.path = path;
    bus.dir = Some(dir);
    Ok(bus)
}

/// Starts a bus with these boards behind `line` (an in-memory pipe, say: the gateway speaks on
/// its other end). [`SerialKnob::Replug`] cuts such a line for good.
pub fn spawn_bus_on(
    boards: Vec<BoardConfig>,
    line: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
) -> SimulatedBus {
    spawn(boards, Box::new(line), None)
}

/// The boards' task on `ours`; `link`: the path to plug again after a replug.
fn spawn(
    boards: Vec<BoardConfig>,
    ours: Box<dyn Line>,
    link: Option<std::path::PathBuf>,
) -> SimulatedBus {
    let (knob_tx, mut knob_rx) = mpsc::channel(64);
    let (event_tx, event_rx) = mpsc::channel(1024);
    let mut boards: BTreeMap<u8, Board> = boards
        .into_iter()
        .map(|b| {
            (
                b.address,
                Board {
                    locker: SimLocker::new(b.device_id, b.key, b.doors),
                    address: b.address,
                    queued: VecDeque::new(),
                    in_flight: None,
                    dead: false,
                    slow: Duration::ZERO,
                    answer_as: None,
                    power_cut_after_next: false,
                    lose_after_next: None,
                    answers_to_lose: 0,
                    opened_at: BTreeMap::new(),
                },
            )
        })
        .collect();
    let task = tokio::spawn(async move {
        let mut ours = Some(ours);
        let started = Instant::now();
        let mut codec = FrameCodec::new();
        let mut input = BytesMut::with_capacity(4096);
        let (mut flip, mut loss) = (0.0f64, 0.0f64);
        let mut baud = 0u32;
        let mut close_after: Option<Duration> = None;
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                // Knobs first: one turned before a request applies to it.
                biased;
                knob = knob_rx.recv() => {
                    let Some(knob) = knob else { return };
                    match knob {
                        SerialKnob::FlipRate(r) => flip = r,
                        SerialKnob::DropRate(r) => loss = r,
                        SerialKnob::Dead(a, dead) => if let Some(b) = boards.get_mut(&a) { b.dead = dead },
                        SerialKnob::Slow(a, d) => if let Some(b) = boards.get_mut(&a) { b.slow = d },
                        SerialKnob::AnswerAs(a, other) => if let Some(b) = boards.get_mut(&a) { b.answer_as = other },
                        SerialKnob::Reboot(a) => if let Some(b) = boards.get_mut(&a) {
                            b.locker.reboot();
                            b.forget_queue();
                        },
                        SerialKnob::Updater(a, updater) => if let Some(b) = boards.get_mut(&a) {
                            b.locker.updater = Some(*updater);
                        },
                        SerialKnob::CloseDoor(a, door) => if let Some(b) = boards.get_mut(&a) {
                            let uptime = b.uptime(started);
                            for event in b.locker.close_door(door, uptime) {
                                b.enqueue(event);
                            }
                        },
                        SerialKnob::Jam(a, door) => if let Some(b) = boards.get_mut(&a) {
                            b.locker.faults.jammed_doors.insert(door);
                        },
                        SerialKnob::PowerCutAfterNextCommand(a) => if let Some(b) = boards.get_mut(&a) {
                            b.power_cut_after_next = true;
                        },
                        SerialKnob::LoseAnswersAfterNextCommand(a, n) => if let Some(b) = boards.get_mut(&a) {
                            b.lose_after_next = Some(n);
                        },
                        SerialKnob::Baud(b) => baud = b,
                        SerialKnob::Stall(d) => tokio::time::sleep(d).await,
                        SerialKnob::CloseAfter(after) => close_after = Some(after),
                        SerialKnob::DeadSensor(a, door) => if let Some(b) = boards.get_mut(&a) {
                            b.locker.faults.dead_sensors.insert(door);
                        },
                        SerialKnob::Replug(away) => {
                            // Both ends closed: the gateway's port fails; the path is gone.
                            drop(ours.take());
                            let Some(link) = &link else { continue };
                            let _ = std::fs::remove_file(link);
                            tokio::time::sleep(away).await;
                            match plug(link) {
                                Ok(port) => ours = Some(port),
                                Err(_) => return,
                            }
                            input.clear();
                        }
                    }
                }
                read = async {
                    match ours.as_mut() {
                        Some(port) => port.read(&mut buf).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let n = match read {
                        Ok(0) | Err(_) => {
                            // Nobody has the other end open right now: wait and read again.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                        Ok(n) => n,
                    };
                    input.extend_from_slice(&buf[..n]);
                    while let Ok(Some(frame)) = codec.decode(&mut input) {
                        let Some(board) = boards.get_mut(&frame.address) else { continue };
                        if board.dead {
                            continue;
                        }
                        // People close the doors they opened a while ago.
                        if let Some(after) = close_after {
                            let due: Vec<u16> = board
                                .opened_at
                                .iter()
                                .filter(|(_, at)| at.elapsed() >= after)
                                .map(|(door, _)| *door)
                                .collect();
                            for door in due {
                                board.opened_at.remove(&door);
                                let uptime = board.uptime(started);
                                for event in board.locker.close_door(door, uptime) {
                                    board.enqueue(event);
                                }
                            }
                        }
                        let executed_before = board.locker.executions();
                        let Some(answer) = board.answer(&frame.envelope, started) else { continue };
                        let executed = board.locker.executions() > executed_before;
                        if executed
                            && let Some(door) = unlocked_door(&frame.envelope)
                        {
                            board.opened_at.entry(door).or_insert_with(Instant::now);
                            let _ = event_tx.try_send(BoardEvent::Unlocked { address: board.address, door });
                        }
                        if executed && board.power_cut_after_next {
                            board.power_cut_after_next = false;
                            board.locker.reboot();
                            board.forget_queue();
                            continue;
                        }
                        // An update: a power cut loses the answer; an install reboots after it.
                        let updater = board.locker.updater.as_mut();
                        let (cut, install) = updater.map_or((false, false), |u| (u.power_cut_due(), u.take_reboot()));
                        if cut || install {
                            board.locker.reboot();
                            board.forget_queue();
                        }
                        if cut {
                            continue;
                        }
                        if board.answers_to_lose > 0 {
                            board.answers_to_lose -= 1;
                            continue;
                        }
                        if executed && let Some(n) = board.lose_after_next.take() {
                            board.answers_to_lose = n;
                        }
                        let Ok(envelope) = answer.seal_binary(board.locker.key()) else { continue };
                        let out = Frame {
                            address: board.answer_as.unwrap_or(board.address),
                            envelope: envelope.into(),
                        };
                        let mut bytes = BytesMut::new();
                        if out.write_to(&mut bytes).is_err() {
                            continue;
                        }
                        let mut wait = board.slow;
                        if baud > 0 {
                            // The request and the answer on a line at this speed.
                            let bytes = (frame.envelope.len() + 7 + bytes.len()) as u64;
                            wait += Duration::from_micros(bytes * 10 * 1_000_000 / u64::from(baud));
                        }
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                        }
                        let mut noisy = Vec::with_capacity(bytes.len());
                        for &byte in bytes.iter() {
                            if loss > 0.0 && rand::random::<f64>() < loss {
                                continue;
                            }
                            let byte = if flip > 0.0 && rand::random::<f64>() < flip {
                                byte ^ (1 << (rand::random::<u8>() % 8))
                            } else {
                                byte
                            };
                            noisy.push(byte);
                        }
                        let Some(port) = ours.as_mut() else { break };
                        if port.write_all(&noisy).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    SimulatedBus {
        path: String::new(),
        dir: None,
        knobs: knob_tx,
        events: event_rx,
        task,
    }
}

/// The door a frame's unlock names.
fn unlocked_door(envelope: &[u8]) -> Option<u16> {
    let raw = Unverified::parse_binary(envelope).ok()?;
    match raw.decode_unverified::<Downlink>().ok()?.message {
        Downlink::Unlock(unlock) => Some(unlock.door),
        _ => None,
    }
}
