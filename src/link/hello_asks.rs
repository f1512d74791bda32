//! When a locker whose session this gateway does not know may be asked for its `hello` again: at
//! most once per heartbeat interval (its next heartbeat after a lost answer asks again), and at
//! most every 10 s. Bounded: old entries are forgotten when the map grows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use firmware_protocol::{DeviceId, Direction, Downlink, Envelope, Header};

/// Asked at most this often, whatever the heartbeat.
const AT_MOST_EVERY: Duration = Duration::from_secs(10);

/// Who was asked when.
#[derive(Debug)]
pub(super) struct HelloAsks {
    asked: HashMap<DeviceId, Instant>,
    every: Duration,
}

impl Default for HelloAsks {
    fn default() -> Self {
        Self {
            asked: HashMap::new(),
            every: AT_MOST_EVERY,
        }
    }
}

impl HelloAsks {
    /// Asks at most once per `heartbeat` (a little less, so each heartbeat may ask).
    pub(super) fn every_heartbeat(heartbeat: Duration) -> Self {
        Self {
            asked: HashMap::new(),
            every: heartbeat
                .mul_f64(0.9)
                .clamp(Duration::from_millis(200), AT_MOST_EVERY),
        }
    }

    /// Whether `device` may be asked now; if so, it counts as asked.
    pub(super) fn may_ask(&mut self, device: DeviceId) -> bool {
        let now = Instant::now();
        let every = self.every;
        if self
            .asked
            .get(&device)
            .is_some_and(|at| now.duration_since(*at) < every)
        {
            return false;
        }
        if self.asked.len() > 10_000 {
            self.asked.retain(|_, at| now.duration_since(*at) < every);
        }
        self.asked.insert(device, now);
        true
    }
}

/// A `ping` for session 0, which a locker answers with a `hello` (PROTOCOL.md §7.1).
pub(super) fn ping(device: DeviceId) -> Envelope<Downlink> {
    Envelope {
        header: Header {
            direction: Direction::Down,
            device_id: device,
            session: 0,
            counter: 0,
        },
        message: Downlink::Ping,
    }
}
