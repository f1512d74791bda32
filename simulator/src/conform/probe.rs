//! What the cases need of a transport: sealing downlinks as the gateway does, sending them, and
//! the one answer the device gives within the wait. A serial line ([`super::SerialProbe`]) and an
//! MQTT broker ([`super::MqttProbe`]) each implement it.

use std::time::Duration;

use firmware_protocol::{DeviceKey, Downlink, Envelope, Uplink};

/// The tool's end of a transport to one device.
pub(crate) trait Probe: Send {
    /// The device's session as last announced (0: none known).
    fn session(&self) -> u32;
    fn set_session(&mut self, session: u32);
    /// The highest downlink counter used in the session.
    fn counter(&self) -> u32;
    fn set_counter(&mut self, counter: u32);
    /// The device's tag key.
    fn key(&self) -> DeviceKey;
    /// The bytes on the wire of `message` sealed with `key` for `session` and `counter`.
    fn seal_with(&self, key: &DeviceKey, session: u32, counter: u32, message: Downlink) -> Vec<u8>;
    /// Sends `bytes`; the device's answer, if one came within the wait.
    async fn send(&mut self, bytes: &[u8]) -> Result<Option<Envelope<Uplink>>, String>;
    /// A note in the log.
    fn note(&mut self, text: &str);
    /// The bytes exchanged since the last call.
    fn take_log(&mut self) -> Vec<String>;
    /// The slowest answer so far.
    fn slowest(&self) -> Duration;
    /// The wait for an answer.
    fn wait(&self) -> Duration;

    /// `message` in the current session with `counter`.
    fn seal(&self, counter: u32, message: Downlink) -> Vec<u8> {
        self.seal_with(&self.key(), self.session(), counter, message)
    }

    /// `message` in the current session with the next counter.
    fn next(&mut self, message: Downlink) -> Vec<u8> {
        let counter = self.counter() + 1;
        self.set_counter(counter);
        self.seal(counter, message)
    }

    /// Sends `bytes` and expects an answer.
    async fn ask(&mut self, bytes: &[u8], what: &str) -> Result<Envelope<Uplink>, String> {
        let wait = self.wait();
        self.send(bytes)
            .await?
            .ok_or_else(|| format!("no answer to {what} within {} ms", wait.as_millis()))
    }

    /// Sends `bytes` and expects no answer.
    async fn silent(&mut self, bytes: &[u8], what: &str) -> Result<(), String> {
        match self.send(bytes).await? {
            None => Ok(()),
            Some(answer) => Err(format!(
                "{what} was answered ({}); it must be ignored",
                answer.message.message_type().name()
            )),
        }
    }
}
