//! Whole exchanges on a serial line, kept in `vectors/vectors.json` beside the single-message
//! vectors: the sequences of PROTOCOL.md §7.7 (power-up, an unlock and its polls, a lost ack, a
//! lost event, a reboot) and negative ones (a used counter, another session, a wrong tag, a
//! replay, noise), each step the bytes on the line and, for the gateway's steps, what a board must
//! do with them. Made from the code like the other vectors, and replayed here through the crate's
//! `CommandGuard` and in `c_exchanges.rs` through the C library's guard.

use firmware_protocol::*;
use serde::{Deserialize, Serialize};

use crate::helpers::{command_id, device};
use crate::vector_messages::SESSION;

/// The bus address of every exchange.
pub const ADDRESS: u8 = 7;
/// The session after the reboot, and the one a wrong-session step names.
const REBOOTED: u32 = 0x5EED_0002;
const OTHER: u32 = 0x5EED_0003;

/// One exchange: a board from power-up on, and what passes on its line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub name: String,
    pub about: String,
    /// The protocol version the board announces.
    pub protocol_version: u8,
    pub steps: Vec<Step>,
}

/// One step: who sent it, the bytes on the line (hex), what they are, and for a gateway step what
/// the board does: `hello` (answers with a hello), `execute` (a command, executed), `repeat` (an
/// exact repeat, answered with the stored result), `answer` (a request, answered), `refuse:REASON`
/// (a command refused), `ignore` (no answer). A board step's `expect` is empty, `lost` (it never
/// reaches the gateway) or `power_cut` (no bytes: the board loses power and its RAM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub from: String,
    pub expect: String,
    pub note: String,
    pub bytes: String,
}

struct Builder {
    key: DeviceKey,
    steps: Vec<Step>,
}

fn downlink_note(m: &Downlink) -> String {
    match m {
        Downlink::Unlock(u) => format!("unlock id {} door {}", u.command_id, u.door),
        Downlink::Configure(c) => format!("configure id {}", c.command_id),
        Downlink::QueryState(q) => format!("query_state id {}", q.query_id),
        Downlink::Ping => "ping".into(),
        Downlink::Poll(p) => format!("poll ack_counter {}", p.ack_counter),
        Downlink::UpdateOffer(o) => format!("update_offer id {} {}", o.update_id, o.version),
        Downlink::Chunk(c) => format!("chunk id {} index {}", c.update_id, c.index),
        Downlink::Install(i) => format!("install id {}", i.update_id),
    }
}

fn uplink_note(m: &Uplink) -> String {
    match m {
        Uplink::Hello(h) => format!(
            "hello version {} doors {}",
            h.protocol_version, h.door_count
        ),
        Uplink::Heartbeat(_) => "heartbeat".into(),
        Uplink::Ack(a) => match a.result {
            CommandResult::Executed => format!("ack id {} executed", a.command_id),
            CommandResult::Refused(r) => format!("ack id {} refused {}", a.command_id, r.name()),
        },
        Uplink::DoorEvent(e) => format!("door_event door {} {:?} {:?}", e.door, e.state, e.cause),
        Uplink::Alarm(a) => format!("alarm {:?}", a.kind),
        Uplink::StateReport(r) => {
            format!("state_report id {} recent {}", r.query_id, r.recent.len())
        }
        Uplink::Pong => "pong".into(),
        Uplink::ChunkRequest(c) => format!("chunk_request id {} index {}", c.update_id, c.index),
        Uplink::UpdateReport(r) => format!("update_report id {} {:?}", r.update_id, r.status),
    }
}

fn frame(key: &DeviceKey, address: u8, header: Header, message: impl Payload) -> Vec<u8> {
    let sealed = Envelope { header, message }
        .seal_binary(key)
        .expect("seals");
    Frame {
        address,
        envelope: sealed.into(),
    }
    .to_bytes()
    .expect("frames")
    .to_vec()
}

impl Builder {
    fn new() -> Self {
        let mut secret = [0u8; 32];
        for (i, b) in secret.iter_mut().enumerate() {
            *b = i as u8;
        }
        Self {
            key: DeviceSecret::from_bytes(secret).tag_key(),
            steps: Vec::new(),
        }
    }

    fn push(&mut self, from: &str, expect: &str, note: String, bytes: &[u8]) {
        self.steps.push(Step {
            from: from.into(),
            expect: expect.into(),
            note,
            bytes: hex::encode(bytes),
        });
    }

    /// The frame of a downlink sealed with `key`.
    fn down_with(&self, key: &DeviceKey, session: u32, counter: u32, m: &Downlink) -> Vec<u8> {
        let header = Header {
            direction: Direction::Down,
            device_id: device("lk-0001"),
            session,
            counter,
        };
        frame(key, ADDRESS, header, m.clone())
    }

    fn gateway(&mut self, expect: &str, session: u32, counter: u32, m: Downlink) -> Vec<u8> {
        let bytes = self.down_with(&self.key.clone(), session, counter, &m);
        let note = format!(
            "{}, session {session:#010x} counter {counter}",
            downlink_note(&m)
        );
        self.push("gateway", expect, note, &bytes);
        bytes
    }

    fn raw(&mut self, expect: &str, note: &str, bytes: &[u8]) {
        self.push("gateway", expect, note.into(), bytes);
    }

    fn board(&mut self, expect: &str, session: u32, counter: u32, m: Uplink) {
        let header = Header {
            direction: Direction::Up,
            device_id: device("lk-0001"),
            session,
            counter,
        };
        let note = format!(
            "{}, session {session:#010x} counter {counter}",
            uplink_note(&m)
        );
        let bytes = frame(&self.key, ADDRESS, header, m);
        self.push("board", expect, note, &bytes);
    }

    fn power_cut(&mut self) {
        self.push(
            "board",
            "power_cut",
            "the board loses power: its session, counters, queue and outcomes are gone".into(),
            &[],
        );
    }

    /// Power-up: a poll naming session 0, answered with a hello.
    fn power_up(&mut self, session: u32) {
        self.gateway("hello", 0, 1, poll(0));
        self.board("", session, 1, hello(session));
    }

    fn done(self, name: &str, about: &str) -> Exchange {
        Exchange {
            name: name.into(),
            about: about.into(),
            protocol_version: 2,
            steps: self.steps,
        }
    }
}

fn poll(ack_counter: u32) -> Downlink {
    Downlink::Poll(Poll { ack_counter })
}

fn unlock(id: u64) -> Downlink {
    Downlink::Unlock(Unlock {
        command_id: command_id(id),
        door: 3,
        expires_at_ms: None,
    })
}

fn hello(session: u32) -> Uplink {
    Uplink::Hello(Hello {
        protocol_version: 2,
        firmware: "1.0.0".into(),
        serial_no: "SN-0001".into(),
        door_count: 4,
        session,
        uptime_ms: 1_000,
        max_chunk: None,
    })
}

fn doors(door_3_open: bool) -> Vec<DoorStatus> {
    (1..=4)
        .map(|door| {
            let open = door_3_open && door == 3;
            DoorStatus {
                sensor: if open {
                    DoorSensor::Open
                } else {
                    DoorSensor::Closed
                },
                locked: !open,
                occupied: None,
            }
        })
        .collect()
}

fn heartbeat(door_3_open: bool) -> Uplink {
    Uplink::Heartbeat(Heartbeat {
        uptime_ms: 2_000,
        doors: doors(door_3_open),
        signal: None,
    })
}

fn ack(id: u64, result: CommandResult) -> Uplink {
    Uplink::Ack(Ack {
        command_id: command_id(id),
        result,
    })
}

fn opened(id: u64) -> Uplink {
    Uplink::DoorEvent(DoorEvent {
        door: 3,
        state: DoorMotion::Opened,
        cause: DoorCause::Commanded(command_id(id)),
        uptime_ms: 1_500,
    })
}

const EXECUTED: CommandResult = CommandResult::Executed;

fn refused(reason: RefuseReason) -> CommandResult {
    CommandResult::Refused(reason)
}

/// Every exchange, in the order of the file.
pub fn build() -> Vec<Exchange> {
    let s = SESSION;
    let mut all = Vec::new();

    let mut b = Builder::new();
    b.power_up(s);
    b.gateway("answer", s, 2, poll(0));
    b.board("", s, 2, heartbeat(false));
    all.push(b.done("power_up", "A board powers up: the gateway's poll names session 0 (it knows none), the board answers with a hello opening session S, numbered 1; the next poll is answered with a heartbeat."));

    let mut b = Builder::new();
    b.power_up(s);
    b.gateway("execute", s, 5, unlock(42));
    b.board("", s, 2, ack(42, EXECUTED));
    b.gateway("answer", s, 6, poll(0));
    b.board("", s, 3, opened(42));
    b.gateway("answer", s, 7, poll(3));
    b.board("", s, 4, heartbeat(true));
    all.push(b.done("unlock_and_polls", "An unlock (the gateway's counters need not be consecutive), its ack, the door's opening fetched by a poll and acknowledged by the next poll's ack_counter, then a heartbeat."));

    let mut b = Builder::new();
    b.power_up(s);
    let sent = b.gateway("execute", s, 5, unlock(42));
    b.board("lost", s, 2, ack(42, EXECUTED));
    b.raw(
        "repeat",
        "the same bytes again (the gateway's wait ran out)",
        &sent,
    );
    b.board("", s, 3, ack(42, EXECUTED));
    all.push(b.done("lost_ack", "The ack is lost; the gateway sends the same bytes; the board answers from its recent outcomes with the next uplink counter and does not pulse again."));

    let mut b = Builder::new();
    b.power_up(s);
    b.gateway("execute", s, 5, unlock(42));
    b.board("", s, 2, ack(42, EXECUTED));
    let asked = b.gateway("answer", s, 6, poll(0));
    b.board("lost", s, 3, opened(42));
    b.raw(
        "answer",
        "the same poll again (its answer was lost)",
        &asked,
    );
    b.board("", s, 3, opened(42));
    b.gateway("answer", s, 7, poll(3));
    b.board("", s, 4, heartbeat(true));
    all.push(b.done("lost_event", "A door event answering a poll is lost; the gateway repeats the poll's bytes; the board sends the same event with the same counter (nothing went out since), then drops it once a poll's ack_counter reaches it."));

    let mut b = Builder::new();
    b.power_up(s);
    let sent = b.gateway("execute", s, 5, unlock(43));
    b.power_cut();
    b.raw(
        "hello",
        "the same bytes again: the board has no session, so it opens a new one",
        &sent,
    );
    b.board("", REBOOTED, 1, hello(REBOOTED));
    b.gateway(
        "answer",
        REBOOTED,
        1,
        Downlink::QueryState(QueryState { query_id: 7 }),
    );
    b.board(
        "",
        REBOOTED,
        2,
        Uplink::StateReport(StateReport {
            query_id: 7,
            doors: doors(true),
            recent: vec![],
            door_results: vec![],
        }),
    );
    all.push(b.done("reboot", "The board loses power right after pulsing door 3 for command 43. Its next answer is a hello for a new session; the gateway asks with query_state, finds 43 unknown to the board and records it as unknown, never sending it again."));

    let mut b = Builder::new();
    b.power_up(s);
    let first = b.gateway("execute", s, 5, unlock(44));
    b.board("", s, 2, ack(44, EXECUTED));
    b.gateway("refuse:stale_counter", s, 5, unlock(45));
    b.board("", s, 3, ack(45, refused(RefuseReason::StaleCounter)));
    b.gateway("refuse:wrong_session", OTHER, 6, unlock(46));
    b.board("", s, 4, ack(46, refused(RefuseReason::WrongSession)));
    let wrong = DeviceSecret::from_bytes([0x5a; 32]).tag_key();
    let forged = b.down_with(&wrong, s, 7, &unlock(47));
    b.raw(
        "refuse:bad_tag",
        "unlock id 47 door 3, session 0x5eed0001 counter 7, tagged with another key",
        &forged,
    );
    b.board("", s, 5, ack(47, refused(RefuseReason::BadTag)));
    b.raw(
        "repeat",
        "unlock id 44's bytes replayed: an exact repeat, answered from memory",
        &first,
    );
    b.board("", s, 6, ack(44, EXECUTED));
    b.gateway("ignore", s, 5, Downlink::Ping);
    b.gateway("hello", 0, 8, Downlink::Ping);
    b.board("", s, 7, hello(s));
    let forged = b.down_with(&wrong, s, 9, &poll(0));
    b.raw(
        "ignore",
        "poll, session 0x5eed0001 counter 9, tagged with another key",
        &forged,
    );
    all.push(b.done("refusals", "A used counter under a new command id, another session, another key, a replayed command (answered from memory, not executed), a request with a used counter (ignored), a ping naming another session (the board announces its current session again), a poll with a wrong tag (ignored)."));

    let mut b = Builder::new();
    b.power_up(s);
    let good = b.down_with(&b.key.clone(), s, 2, &poll(0));
    let mut noisy = vec![0x00, 0xA5, 0x5A, 0xFF, 0xFF, 0x13, 0xA5];
    noisy.extend_from_slice(&good);
    b.raw(
        "answer",
        "junk, a false start with an impossible length, then poll counter 2, in one burst",
        &noisy,
    );
    b.board("", s, 2, heartbeat(false));
    let mut bad_crc = b.down_with(&b.key.clone(), s, 3, &poll(0));
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x01;
    b.raw(
        "ignore",
        "poll counter 3 with its CRC's last bit flipped",
        &bad_crc,
    );
    let mut elsewhere = b.down_with(&b.key.clone(), s, 3, &poll(0));
    elsewhere[4] = ADDRESS + 1;
    let crc = firmware_protocol::frame::crc16(&elsewhere[2..elsewhere.len() - 2]).to_le_bytes();
    let at = elsewhere.len() - 2;
    elsewhere[at..].copy_from_slice(&crc);
    b.raw("ignore", "poll counter 3 addressed to board 8", &elsewhere);
    let whole = b.down_with(&b.key.clone(), s, 3, &poll(0));
    b.raw(
        "ignore",
        "the first 10 bytes of poll counter 3, then silence longer than the gap",
        &whole[..10],
    );
    b.raw("answer", "poll counter 3, whole", &whole);
    b.board("", s, 3, heartbeat(false));
    all.push(b.done("noise", "Noise before a frame, a bad CRC, a frame for another board and half a frame cut by a silent gap: only whole, valid frames for the board are answered. Each gateway step is followed by a silent gap."));
    all
}

/// The exchanges' part of PROTOCOL.md's vectors section.
pub fn render(exchanges: &[Exchange]) -> String {
    let mut out = String::from(
        "\n### Whole exchanges on a serial line\n\n\
         Each exchange starts from a board (address 7, device `lk-0001`, the secret above, protocol \
         version 2, 4 doors) that has just powered up. A gateway step's *board does* column is what \
         the board must do with it: `hello` (answer with a hello), `execute` (a command: execute it \
         and answer its ack), `repeat` (answer the stored result again, execute nothing), `answer` \
         (a request: answer it), `refuse:REASON` (answer ack refused), `ignore` (send nothing). A \
         board step marked `lost` never reaches the gateway. Every gateway step is followed by a \
         silent gap. `vectors.json` holds the same steps (`exchanges`); the crate's tests and the C \
         library's `test/exchange_test.c` replay them.\n",
    );
    for ex in exchanges {
        out.push_str(&format!("\n#### `{}`\n\n{}\n\n", ex.name, ex.about));
        out.push_str(
            "| # | from | board does | what | bytes on the line |\n|---|---|---|---|---|\n",
        );
        for (i, s) in ex.steps.iter().enumerate() {
            let does = match (s.from.as_str(), s.expect.as_str()) {
                ("board", "") => "",
                (_, e) => e,
            };
            let bytes = if s.bytes.is_empty() {
                "(none)".to_string()
            } else {
                format!("`{}`", s.bytes)
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                i + 1,
                s.from,
                does,
                s.note,
                bytes
            ));
        }
    }
    out
}
