//! The tool's end of a serial line: it seals requests as the gateway does, sends them, and takes
//! the one answer the board gives within the wait, checking that it is a whole frame from the
//! board's address whose tag verifies, that it came in time, and that no second answer follows.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use firmware_protocol::{
    DeviceId, DeviceKey, Direction, Downlink, Envelope, Frame, FrameCodec, Header, Unverified,
    Uplink,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;
use tokio_util::codec::Decoder;

use super::Target;
use super::probe::Probe;

/// How long the tool listens after an answer for a second one (a board answers once).
const SECOND_ANSWER: Duration = Duration::from_millis(30);

/// A scripted gateway on one serial port, talking to one board.
pub struct SerialProbe {
    port: tokio_serial::SerialStream,
    address: u8,
    device: DeviceId,
    key: DeviceKey,
    wait: Duration,
    codec: FrameCodec,
    input: BytesMut,
    session: u32,
    counter: u32,
    /// The bytes exchanged since the log was last taken.
    log: Vec<String>,
    slowest: Duration,
}

impl SerialProbe {
    /// Opens the port at `path` (9600 baud, 8N1) for the board at `address`.
    pub fn open(path: &str, address: u8, target: &Target) -> Result<Self, String> {
        let port = tokio_serial::new(path, 9600)
            .open_native_async()
            .map_err(|e| format!("cannot open {path}: {e}"))?;
        Ok(Self {
            port,
            address,
            device: target.device_id,
            key: target.key.clone(),
            wait: target.wait,
            codec: FrameCodec::new(),
            input: BytesMut::with_capacity(2048),
            session: 0,
            counter: 0,
            log: Vec::new(),
            slowest: Duration::ZERO,
        })
    }

    /// The board's address.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// Waits a gap's worth and forgets whatever arrived.
    pub async fn quiet(&mut self, gap: Duration) {
        let _ = self.frame_within(gap).await;
        self.input.clear();
    }

    /// The next whole frame within `within`.
    async fn frame_within(&mut self, within: Duration) -> Result<Option<Frame>, String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut buf = [0u8; 512];
        loop {
            if let Ok(Some(frame)) = self.codec.decode(&mut self.input) {
                let mut bytes = BytesMut::new();
                let _ = frame.write_to(&mut bytes);
                self.log.push(format!("< {}", hex::encode(&bytes)));
                return Ok(Some(frame));
            }
            match tokio::time::timeout_at(deadline, self.port.read(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => tokio::time::sleep(Duration::from_millis(5)).await,
                Ok(Ok(n)) => self.input.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => return Err(format!("cannot read the port: {e}")),
            }
        }
    }

    /// Checks an answer's address and tag and reads it.
    fn read_answer(&mut self, frame: &Frame) -> Result<Envelope<Uplink>, String> {
        if frame.address != self.address {
            return Err(format!(
                "an answer from address {} to a request for {}",
                frame.address, self.address
            ));
        }
        let raw = Unverified::parse_binary(&frame.envelope)
            .map_err(|e| format!("the answer's envelope does not parse: {e}"))?;
        let answer = raw
            .verify::<Uplink>(&self.device, &self.key)
            .map_err(|e| format!("the answer does not verify: {e}"))?;
        self.log.push(format!(
            "# {} session {} counter {}",
            answer.message.message_type().name(),
            answer.header.session,
            answer.header.counter
        ));
        Ok(answer)
    }
}

impl Probe for SerialProbe {
    fn session(&self) -> u32 {
        self.session
    }

    fn set_session(&mut self, session: u32) {
        self.session = session;
    }

    fn counter(&self) -> u32 {
        self.counter
    }

    fn set_counter(&mut self, counter: u32) {
        self.counter = counter;
    }

    fn key(&self) -> DeviceKey {
        self.key.clone()
    }

    /// The frame of `message` sealed for `session` and `counter` with `key`.
    fn seal_with(&self, key: &DeviceKey, session: u32, counter: u32, message: Downlink) -> Vec<u8> {
        let envelope = Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: self.device,
                session,
                counter,
            },
            message,
        };
        let sealed = envelope
            .seal_binary(key)
            .expect("the tool's own messages are valid");
        Frame {
            address: self.address,
            envelope: sealed.into(),
        }
        .to_bytes()
        .expect("the tool's own frames fit")
        .to_vec()
    }

    /// Sends `bytes` and returns the board's answer, if one came within the wait.
    async fn send(&mut self, bytes: &[u8]) -> Result<Option<Envelope<Uplink>>, String> {
        self.input.clear();
        self.log.push(format!("> {}", hex::encode(bytes)));
        self.port
            .write_all(bytes)
            .await
            .map_err(|e| format!("cannot write to the port: {e}"))?;
        let sent = Instant::now();
        let Some(frame) = self.frame_within(self.wait).await? else {
            self.log.push("< (nothing)".into());
            return Ok(None);
        };
        self.slowest = self.slowest.max(sent.elapsed());
        let answer = self.read_answer(&frame)?;
        if let Some(second) = self.frame_within(SECOND_ANSWER).await? {
            return Err(format!(
                "answered twice: a second frame ({} bytes) followed the answer",
                second.envelope.len()
            ));
        }
        Ok(Some(answer))
    }

    fn note(&mut self, text: &str) {
        self.log.push(format!("# {text}"));
    }

    fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    fn slowest(&self) -> Duration {
        self.slowest
    }

    fn wait(&self) -> Duration {
        self.wait
    }
}
