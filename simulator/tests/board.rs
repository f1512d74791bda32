//! A simulated lock board on its pseudo-terminal, spoken to frame by frame as the gateway does:
//! the serial rules of PROTOCOL.md §5.3 that firmware must follow, checked byte for byte.

use std::time::Duration;

use bytes::BytesMut;
use firmware_protocol::*;
use simulator::serial::{BoardConfig, SerialKnob, spawn_bus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;
use tokio_util::codec::Decoder;

const ADDRESS: u8 = 3;

fn key() -> DeviceKey {
    DeviceSecret::from_bytes([0x22; 32]).tag_key()
}

fn device() -> DeviceId {
    DeviceId::new("board-3").expect("id")
}

/// The gateway's end of the line.
struct Master {
    port: tokio_serial::SerialStream,
    input: BytesMut,
    codec: FrameCodec,
    session: u32,
    counter: u32,
}

impl Master {
    fn envelope(&mut self, message: Downlink) -> Vec<u8> {
        self.counter += 1;
        self.sealed(self.counter, message)
    }

    fn sealed(&self, counter: u32, message: Downlink) -> Vec<u8> {
        Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: device(),
                session: self.session,
                counter,
            },
            message,
        }
        .seal_binary(&key())
        .expect("seals")
    }

    /// Writes one request and reads the board's answer: its wire bytes and what they say.
    async fn ask(&mut self, envelope: &[u8]) -> (Vec<u8>, Envelope<Uplink>) {
        let mut frame = BytesMut::new();
        Frame {
            address: ADDRESS,
            envelope: envelope.to_vec().into(),
        }
        .write_to(&mut frame)
        .expect("frames");
        self.port.write_all(&frame).await.expect("written");
        let mut buf = [0u8; 1024];
        loop {
            if let Some(frame) = self.codec.decode(&mut self.input).expect("decodes") {
                assert_eq!(frame.address, ADDRESS);
                let bytes = frame.envelope.to_vec();
                let answer = Unverified::parse_binary(&bytes)
                    .expect("parses")
                    .verify::<Uplink>(&device(), &key())
                    .expect("verifies");
                return (bytes, answer);
            }
            let n = tokio::time::timeout(Duration::from_secs(2), self.port.read(&mut buf))
                .await
                .expect("an answer in time")
                .expect("read");
            self.input.extend_from_slice(&buf[..n]);
        }
    }

    async fn poll(&mut self, ack_counter: u32) -> (Vec<u8>, Envelope<Uplink>) {
        self.send(Downlink::Poll(Poll { ack_counter })).await
    }

    /// A new request, with the next counter.
    async fn send(&mut self, message: Downlink) -> (Vec<u8>, Envelope<Uplink>) {
        let envelope = self.envelope(message);
        self.ask(&envelope).await
    }
}

fn unlock(id: u64, door: u16) -> Downlink {
    Downlink::Unlock(Unlock {
        command_id: CommandId::new(id).expect("id"),
        door,
        expires_at_ms: None,
    })
}

fn opened_by(answer: &Envelope<Uplink>) -> Option<(u16, u64)> {
    match &answer.message {
        Uplink::DoorEvent(DoorEvent {
            door,
            state: DoorMotion::Opened,
            cause: DoorCause::Commanded(id),
            ..
        }) => Some((*door, id.get())),
        _ => None,
    }
}

#[tokio::test]
async fn a_queued_event_whose_answer_was_lost_is_sent_again_after_later_answers() {
    let bus = spawn_bus(vec![BoardConfig {
        address: ADDRESS,
        device_id: device(),
        key: key(),
        doors: 4,
    }])
    .expect("a pseudo-terminal");
    let port = tokio_serial::new(bus.path(), 9600)
        .open_native_async()
        .expect("the port opens");
    let mut master = Master {
        port,
        input: BytesMut::new(),
        codec: FrameCodec::new(),
        session: 0,
        counter: 0,
    };
    // A board without a session answers a poll in session 0 with a hello.
    let (_, hello) = master.poll(0).await;
    assert!(matches!(hello.message, Uplink::Hello(_)), "{hello:?}");
    master.session = hello.header.session;
    master.counter = 0;

    // An unlock is answered by its ack at once; the door event waits for a poll.
    let (_, ack) = master.send(unlock(1, 1)).await;
    assert!(matches!(ack.message, Uplink::Ack(_)), "{ack:?}");
    let (_, event) = master.poll(0).await;
    assert_eq!(opened_by(&event), Some((1, 1)));
    assert!(event.header.counter > ack.header.counter);
    // Say that answer was lost on the line. Another command gets through, its ack numbered
    // after the lost event.
    let (_, ack2) = master.send(unlock(2, 2)).await;
    assert!(ack2.header.counter > event.header.counter);
    // The next poll still says "no queued uplink received": the lost event comes again, with a
    // counter above the ack's, so the gateway's replay guard accepts it.
    let (bytes, again) = master.poll(0).await;
    assert_eq!(opened_by(&again), Some((1, 1)));
    assert!(
        again.header.counter > ack2.header.counter,
        "{again:?} after {ack2:?}"
    );
    // The gateway repeats that poll byte for byte (its answer was lost too): the same answer.
    let repeat = master.sealed(master.counter, Downlink::Poll(Poll { ack_counter: 0 }));
    let (same, _) = master.ask(&repeat).await;
    assert_eq!(same, bytes, "a repeated poll gets the same answer");
    // Received now: the next poll says so and gets the second door's event, then a heartbeat.
    let (_, second) = master.poll(again.header.counter).await;
    assert_eq!(opened_by(&second), Some((2, 2)));
    let (_, heartbeat) = master.poll(second.header.counter).await;
    assert!(
        matches!(heartbeat.message, Uplink::Heartbeat(_)),
        "{heartbeat:?}"
    );

    // An older poll (a replay) is not answered.
    bus.turn(SerialKnob::CloseDoor(ADDRESS, 1)).await;
    let stale = master.sealed(1, Downlink::Poll(Poll { ack_counter: 0 }));
    let mut frame = BytesMut::new();
    Frame {
        address: ADDRESS,
        envelope: stale.into(),
    }
    .write_to(&mut frame)
    .expect("frames");
    master.port.write_all(&frame).await.expect("written");
    let mut buf = [0u8; 64];
    let silence =
        tokio::time::timeout(Duration::from_millis(300), master.port.read(&mut buf)).await;
    assert!(silence.is_err(), "an old poll is ignored");
    // The gateway restarted and lost the board's session: it polls in session 0 and the board
    // announces its current session again (not a new one: §7.1); the closing it had queued comes
    // at the next poll, numbered after the hello.
    let session = master.session;
    master.session = 0;
    let (_, hello) = master.poll(0).await;
    assert!(matches!(hello.message, Uplink::Hello(_)), "{hello:?}");
    assert_eq!(
        hello.header.session, session,
        "the same session, announced again"
    );
    assert!(hello.header.counter > heartbeat.header.counter);
    master.session = session;
    let (_, closed) = master.poll(heartbeat.header.counter).await;
    assert_eq!(closed.header.session, session);
    assert!(closed.header.counter > hello.header.counter);
    assert!(
        matches!(
            closed.message,
            Uplink::DoorEvent(DoorEvent {
                door: 1,
                state: DoorMotion::Closed,
                ..
            })
        ),
        "{closed:?}"
    );
}
