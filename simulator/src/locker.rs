//! A simulated locker's firmware: the protocol logic a real locker runs, with doors and sensors
//! modelled in memory. Transport-free: it takes received envelopes and returns the uplinks to send,
//! so the MQTT and serial simulators (and tests) wrap the same behaviour.
//!
//! Time is the locker's uptime in milliseconds, passed in by the caller, so tests are exact.

use firmware_protocol::{
    Ack, Alarm, AlarmKind, CommandGuard, CommandId, CommandResult, Configure, DecodeError,
    DeviceId, DeviceKey, Direction, DoorCause, DoorEvent, DoorMotion, DoorOutcome, DoorSensor,
    DoorStatus, Downlink, Envelope, Header, Heartbeat, Hello, PROTOCOL_VERSION, RefuseReason,
    StateReport, UnlockDoor, Unverified, Uplink, Verdict,
};

/// How many command outcomes the simulated firmware remembers (the protocol asks for at least 16).
pub const RECENT_CAPACITY: usize = 32;

pub use crate::knobs::{Faults, Settings};
use crate::updater::Updater;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Door {
    open: bool,
    locked: bool,
    occupied: Option<bool>,
}

/// One simulated locker.
#[derive(Debug, Clone)]
pub struct SimLocker {
    device_id: DeviceId,
    key: DeviceKey,
    firmware: String,
    serial_no: String,
    doors: Vec<Door>,
    settings: Settings,
    /// Knobs a test or the demo turns.
    pub faults: Faults,
    /// The firmware updater (its flash slot survives reboots); `None`: takes no updates.
    pub updater: Option<Updater>,
    guard: Option<CommandGuard>,
    /// What the doors of the last executed unlocks did (reported from protocol version 2 on).
    door_results: std::collections::VecDeque<UnlockDoor>,
    protocol: u8,
    up_counter: u32,
    executions: u64,
}

impl SimLocker {
    /// A locker with `door_count` closed, locked, empty doors.
    pub fn new(device_id: DeviceId, key: DeviceKey, door_count: u16) -> Self {
        let door = Door {
            open: false,
            locked: true,
            occupied: Some(false),
        };
        Self {
            device_id,
            key,
            firmware: format!("sim-{}", env!("CARGO_PKG_VERSION")),
            serial_no: format!("SIM-{device_id}"),
            doors: vec![door; usize::from(door_count)],
            settings: Settings::default(),
            faults: Faults::default(),
            updater: None,
            guard: None,
            door_results: std::collections::VecDeque::new(),
            protocol: PROTOCOL_VERSION,
            up_counter: 0,
            executions: 0,
        }
    }

    /// The locker's device id.
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The locker's tag key.
    pub fn key(&self) -> &DeviceKey {
        &self.key
    }

    /// The current settings.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// The outcomes of the last commands, oldest first (what a state report lists).
    pub fn recent(&self) -> Vec<Ack> {
        self.guard
            .as_ref()
            .map(CommandGuard::recent)
            .unwrap_or_default()
    }

    /// The current session, if connected.
    pub fn session(&self) -> Option<u32> {
        self.guard.as_ref().map(CommandGuard::session)
    }

    /// How many times a relay has been pulsed: a repeated command must not move it.
    pub fn executions(&self) -> u64 {
        self.executions
    }

    /// Whether `door` (1-based) is open.
    pub fn is_open(&self, door: u16) -> bool {
        self.door(door).is_some_and(|d| d.open)
    }

    fn door(&self, door: u16) -> Option<&Door> {
        self.doors.get(usize::from(door).checked_sub(1)?)
    }

    fn door_mut(&mut self, door: u16) -> Option<&mut Door> {
        self.doors.get_mut(usize::from(door).checked_sub(1)?)
    }

    /// Gives a message held back (a slow answer, a queued event) the current session and the
    /// next uplink counter, as a locker that only now sends it would.
    pub fn restamp(&mut self, envelope: &mut Envelope<Uplink>) {
        self.up_counter = self.up_counter.wrapping_add(1);
        envelope.header.counter = self.up_counter;
        envelope.header.session = self.session().unwrap_or(0);
    }

    /// The counter of the last uplink this locker numbered.
    pub fn last_counter(&self) -> u32 {
        self.up_counter
    }

    /// Whether to answer an authenticated serial `poll` with this header: a new one or the
    /// gateway's repeat of the last (PROTOCOL.md §5.3); `false` without a session.
    pub fn accept_poll(&mut self, header: &Header) -> bool {
        self.guard
            .as_mut()
            .is_some_and(|g| g.check_poll(header) == firmware_protocol::Verdict::Execute)
    }

    fn up(&mut self, message: Uplink) -> Envelope<Uplink> {
        self.up_counter = self.up_counter.wrapping_add(1);
        Envelope {
            header: Header {
                direction: Direction::Up,
                device_id: self.device_id,
                session: self.session().unwrap_or(0),
                counter: self.up_counter,
            },
            message,
        }
    }

    /// Starts a new session (a connect or a power-up) and returns its `hello`. `session` must be
    /// new and non-zero, as the protocol requires; the caller picks it (random in the demo, fixed
    /// in tests).
    pub fn connect(&mut self, session: u32, uptime_ms: u64) -> Envelope<Uplink> {
        // A reconnect keeps the outcomes of earlier commands (RAM survives); see `reboot`.
        match self.guard.as_mut() {
            Some(guard) => guard.renew(session),
            None => {
                self.guard = Some(CommandGuard::speaking(
                    self.protocol,
                    session,
                    RECENT_CAPACITY,
                ))
            }
        }
        self.up_counter = 0;
        self.hello(session, uptime_ms)
    }

    fn hello(&mut self, session: u32, uptime_ms: u64) -> Envelope<Uplink> {
        self.up(Uplink::Hello(Hello {
            protocol_version: self
                .guard
                .as_ref()
                .map_or(self.protocol, CommandGuard::version),
            firmware: self.firmware.clone(),
            serial_no: self.serial_no.clone(),
            door_count: self.doors.len() as u16,
            session,
            uptime_ms,
            max_chunk: self.updater.as_ref().map(Updater::max_chunk),
        }))
    }

    /// The protocol version the firmware speaks from its next power-up on (the newest,
    /// [`PROTOCOL_VERSION`], unless told otherwise): announced in `hello`; version 2 keeps a
    /// downlink window, version 1 accepts only a counter above the last.
    pub fn speak(&mut self, version: u8) {
        self.protocol = version;
    }

    /// Runs firmware `version` (what its `hello` announces).
    pub fn run_firmware(&mut self, version: &str) {
        self.firmware = version.to_owned();
    }

    /// A power cycle: everything in RAM is gone (session, counters, remembered outcomes); the
    /// locker is disconnected until [`SimLocker::connect`].
    pub fn reboot(&mut self) {
        // An image being installed boots (and confirms itself, or is rolled back).
        if let Some(version) = self.updater.as_mut().and_then(Updater::boot) {
            self.firmware = version;
        }
        self.guard = None;
        self.door_results.clear();
        self.up_counter = 0;
    }

    /// The state of every door, as reported.
    pub fn door_states(&self) -> Vec<DoorStatus> {
        self.doors
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let dead = self.faults.dead_sensors.contains(&(i as u16 + 1));
                DoorStatus {
                    sensor: match (dead, d.open) {
                        (true, _) => DoorSensor::Unknown,
                        (false, true) => DoorSensor::Open,
                        (false, false) => DoorSensor::Closed,
                    },
                    locked: d.locked,
                    occupied: d.occupied,
                }
            })
            .collect()
    }

    /// A heartbeat to send now.
    pub fn heartbeat(&mut self, uptime_ms: u64) -> Envelope<Uplink> {
        let doors = self.door_states();
        self.up(Uplink::Heartbeat(Heartbeat {
            uptime_ms,
            doors,
            signal: Some(-60),
        }))
    }

    /// A user closes a door: it locks, and the sensor reports it.
    pub fn close_door(&mut self, door: u16, uptime_ms: u64) -> Vec<Envelope<Uplink>> {
        match self.door_mut(door) {
            Some(d) if d.open => {
                d.open = false;
                d.locked = true;
            }
            _ => return Vec::new(),
        }
        vec![self.up(Uplink::DoorEvent(DoorEvent {
            door,
            state: DoorMotion::Closed,
            cause: DoorCause::Uncommanded,
            uptime_ms,
        }))]
    }

    /// Someone forces a locked door open: an uncommanded opening and a `forced_open` alarm.
    pub fn force_open(&mut self, door: u16, uptime_ms: u64) -> Vec<Envelope<Uplink>> {
        match self.door_mut(door) {
            Some(d) if !d.open => d.open = true,
            _ => return Vec::new(),
        }
        let event = self.up(Uplink::DoorEvent(DoorEvent {
            door,
            state: DoorMotion::Opened,
            cause: DoorCause::Uncommanded,
            uptime_ms,
        }));
        let alarm = self.up(Uplink::Alarm(Alarm {
            kind: AlarmKind::ForcedOpen,
            door: Some(door),
            uptime_ms,
        }));
        vec![event, alarm]
    }

    /// Handles one received downlink (parsed, not yet verified) and returns what the locker sends
    /// back. Anything that fails verification is refused as the protocol says; nothing panics.
    pub fn receive(&mut self, raw: &Unverified<'_>, uptime_ms: u64) -> Vec<Envelope<Uplink>> {
        let mut answers = self.answer(raw, uptime_ms);
        if self.faults.drop_acks > 0 {
            let before = answers.len();
            answers.retain(|a| !matches!(a.message, Uplink::Ack(_)));
            let dropped = (before - answers.len()) as u32;
            self.faults.drop_acks = self.faults.drop_acks.saturating_sub(dropped);
        }
        answers
    }

    fn answer(&mut self, raw: &Unverified<'_>, uptime_ms: u64) -> Vec<Envelope<Uplink>> {
        let envelope = match raw.verify::<Downlink>(&self.device_id, &self.key) {
            Ok(envelope) => envelope,
            // Another device's, or a wrong tag: a command whose id can be read is refused
            // `bad_tag`; anything else is ignored (PROTOCOL.md §7.6, step 2).
            Err(DecodeError::BadTag | DecodeError::WrongDevice { .. }) => {
                return raw
                    .command_id_hint()
                    .map(|id| self.refuse(id, RefuseReason::BadTag))
                    .into_iter()
                    .collect();
            }
            Err(DecodeError::WrongDirection) => return Vec::new(),
            // The tag is good but the body cannot be decoded: a command whose id can be read is
            // answered `malformed` once its session and counter pass (steps 4 to 6).
            Err(_) => return self.malformed(raw),
        };
        let Some(guard) = self.guard.as_mut() else {
            return Vec::new(); // not connected: nothing to answer with
        };
        let command = envelope.message.command_id();
        match guard.check(&envelope.header, command) {
            Verdict::Repeat(result) => command
                .map(|id| {
                    self.up(Uplink::Ack(Ack {
                        command_id: id,
                        result,
                    }))
                })
                .into_iter()
                .collect(),
            // Not a command, and for another session: the gateway does not know this session
            // (its hello was lost); announce it again.
            Verdict::Refuse(RefuseReason::WrongSession) if command.is_none() => {
                let session = guard.session();
                vec![self.hello(session, uptime_ms)]
            }
            Verdict::Refuse(reason) => command
                .map(|id| self.refuse(id, reason))
                .into_iter()
                .collect(),
            Verdict::Execute => self.execute(envelope, uptime_ms),
        }
    }

    /// A command whose tag verified but whose body does not decode.
    fn malformed(&mut self, raw: &Unverified<'_>) -> Vec<Envelope<Uplink>> {
        let (Some(id), Some(guard)) = (raw.command_id_hint(), self.guard.as_mut()) else {
            return Vec::new(); // no id to name in an ack, or no session to answer in
        };
        let result = match guard.check(raw.header(), Some(id)) {
            Verdict::Execute => {
                let result = CommandResult::Refused(RefuseReason::Malformed);
                guard.record(id, raw.header().counter, result);
                result
            }
            Verdict::Repeat(result) => result,
            Verdict::Refuse(reason) => CommandResult::Refused(reason),
        };
        vec![self.up(Uplink::Ack(Ack {
            command_id: id,
            result,
        }))]
    }

    fn refuse(&mut self, command_id: CommandId, reason: RefuseReason) -> Envelope<Uplink> {
        self.up(Uplink::Ack(Ack {
            command_id,
            result: CommandResult::Refused(reason),
        }))
    }

    fn record(&mut self, id: CommandId, counter: u32, result: CommandResult) -> Envelope<Uplink> {
        if let Some(guard) = self.guard.as_mut() {
            guard.record(id, counter, result);
        }
        self.up(Uplink::Ack(Ack {
            command_id: id,
            result,
        }))
    }

    fn execute(&mut self, envelope: Envelope<Downlink>, uptime_ms: u64) -> Vec<Envelope<Uplink>> {
        let counter = envelope.header.counter;
        match envelope.message {
            Downlink::Unlock(unlock) => {
                let id = unlock.command_id;
                let refusal = if self.door(unlock.door).is_none() {
                    Some(RefuseReason::NoSuchDoor)
                } else if unlock.expires_at_ms.is_some_and(|at| uptime_ms > at) {
                    Some(RefuseReason::Expired)
                } else if self.faults.busy_doors.contains(&unlock.door) {
                    Some(RefuseReason::Busy)
                } else {
                    None
                };
                if let Some(reason) = refusal {
                    return vec![self.record(id, counter, CommandResult::Refused(reason))];
                }
                self.executions += 1;
                let jammed = self.faults.jammed_doors.contains(&unlock.door);
                let was_open = self.is_open(unlock.door);
                let mut out = vec![self.record(id, counter, CommandResult::Executed)];
                let door = match (jammed, was_open) {
                    (true, _) => DoorOutcome::NotOpened,
                    (false, true) => DoorOutcome::AlreadyOpen,
                    (false, false) => DoorOutcome::Opened,
                };
                if self.door_results.len() == RECENT_CAPACITY {
                    self.door_results.pop_front();
                }
                self.door_results.push_back(UnlockDoor {
                    command_id: id,
                    door,
                });
                if jammed {
                    out.push(self.up(Uplink::Alarm(Alarm {
                        kind: AlarmKind::Jammed,
                        door: Some(unlock.door),
                        uptime_ms: uptime_ms + u64::from(self.settings.open_window_ms),
                    })));
                } else if !was_open {
                    if let Some(d) = self.door_mut(unlock.door) {
                        d.open = true;
                        d.locked = false;
                    }
                    out.push(self.up(Uplink::DoorEvent(DoorEvent {
                        door: unlock.door,
                        state: DoorMotion::Opened,
                        cause: DoorCause::Commanded(id),
                        uptime_ms: uptime_ms + u64::from(self.settings.pulse_ms),
                    })));
                }
                out
            }
            Downlink::Configure(Configure {
                command_id,
                heartbeat_secs,
                open_window_ms,
                pulse_ms,
                ajar_alarm_secs,
                expires_at_ms,
            }) => {
                if expires_at_ms.is_some_and(|at| uptime_ms > at) {
                    let refused = CommandResult::Refused(RefuseReason::Expired);
                    return vec![self.record(command_id, counter, refused)];
                }
                self.settings = Settings {
                    heartbeat_secs,
                    open_window_ms,
                    pulse_ms,
                    ajar_alarm_secs,
                };
                vec![self.record(command_id, counter, CommandResult::Executed)]
            }
            Downlink::QueryState(query) => {
                let recent = self
                    .guard
                    .as_ref()
                    .map(CommandGuard::recent)
                    .unwrap_or_default();
                let doors = self.door_states();
                let door_results = match self.guard.as_ref().map(CommandGuard::version) {
                    Some(version) if version >= 2 => self.door_results.iter().copied().collect(),
                    _ => Vec::new(),
                };
                vec![self.up(Uplink::StateReport(StateReport {
                    query_id: query.query_id,
                    doors,
                    recent,
                    door_results,
                }))]
            }
            Downlink::Ping => vec![self.up(Uplink::Pong)],
            Downlink::Poll(_) => vec![self.heartbeat(uptime_ms)],
            Downlink::UpdateOffer(offer) => self.update(|u, running| Some(u.offer(offer, running))),
            Downlink::Chunk(chunk) => self.update(|u, _| u.chunk(chunk)),
            Downlink::Install(install) => {
                self.update(|u, running| Some(u.install(install.update_id, running)))
            }
        }
    }

    /// An update message handed to the updater; a locker without one (it announced no
    /// `max_chunk`) ignores it.
    fn update(
        &mut self,
        step: impl FnOnce(&mut Updater, &str) -> Option<Uplink>,
    ) -> Vec<Envelope<Uplink>> {
        let Some(updater) = self.updater.as_mut() else {
            return Vec::new();
        };
        step(updater, &self.firmware)
            .map(|uplink| self.up(uplink))
            .into_iter()
            .collect()
    }

    /// The report of an install the last power-up finished, once: sent after `hello` on MQTT.
    pub fn boot_report(&mut self) -> Option<Envelope<Uplink>> {
        let report = self.updater.as_mut()?.take_boot_report()?;
        Some(self.up(report))
    }
}
