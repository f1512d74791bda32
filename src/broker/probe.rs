//! Proof that a listener is ours. `rumqttd` binds its address itself and only logs a bind failure,
//! and between checking that a port is free and binding it another process may take it (tests on
//! one machine do). So after starting, the broker logs in to its own address with a one-time token
//! that only its own authenticator recognises: if the token comes back, the listener is ours.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;

use super::{AuthFuture, Authenticator};

/// A one-time token, and whether a login with it has been seen.
#[derive(Debug)]
pub struct Probe {
    token: String,
    seen: Mutex<bool>,
    signal: Condvar,
}

impl Probe {
    /// A fresh token.
    pub fn new() -> Arc<Self> {
        let mut bytes = [0u8; 12];
        rand::rng().fill_bytes(&mut bytes);
        Arc::new(Self {
            token: format!("probe-{}", hex::encode(bytes)),
            seen: Mutex::new(false),
            signal: Condvar::new(),
        })
    }

    fn mark(&self) {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = true;
            self.signal.notify_all();
        }
    }

    fn take(&self, wait: Duration) -> bool {
        let Ok(guard) = self.seen.lock() else {
            return false;
        };
        match self.signal.wait_timeout_while(guard, wait, |seen| !*seen) {
            Ok((mut seen, _)) => std::mem::replace(&mut *seen, false),
            Err(_) => false,
        }
    }

    /// The CONNECT packet of a probe login, for MQTT 3.1.1 (`level` 4) or 5.
    fn connect_packet(&self, level: u8) -> Vec<u8> {
        let field = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, 0b1100_0010, 0, 10];
        if level == 5 {
            body.push(0); // no properties
        }
        field(&mut body, &self.token);
        field(&mut body, &self.token);
        field(&mut body, "probe");
        let mut packet = vec![0x10];
        let mut len = body.len();
        loop {
            let mut byte = (len % 128) as u8;
            len /= 128;
            if len > 0 {
                byte |= 0x80;
            }
            packet.push(byte);
            if len == 0 {
                break;
            }
        }
        packet.extend_from_slice(&body);
        packet
    }

    /// Logs in to `addr` until this probe's own authenticator sees it (`true`), `give_up` says to
    /// stop, or `within` passes.
    pub fn confirm(
        &self,
        addr: SocketAddr,
        level: u8,
        within: Duration,
        give_up: impl Fn() -> bool,
    ) -> bool {
        let deadline = Instant::now() + within;
        let packet = self.connect_packet(level);
        while Instant::now() < deadline && !give_up() {
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                if stream.write_all(&packet).is_ok() && self.take(Duration::from_millis(500)) {
                    // Read the CONNACK before closing (a close with it unread resets the
                    // connection, which the broker logs as an error), on a thread of its own:
                    // the broker's start does not wait for it.
                    std::thread::spawn(move || {
                        let _ = stream.read(&mut [0u8; 4]);
                    });
                    return true;
                }
                let _ = stream.read(&mut [0u8; 8]);
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        false
    }
}

/// An authenticator that recognises its probe's token (admitting it: it leaves at once) and passes
/// every other login on to `inner`.
pub struct Probing {
    /// The probe.
    pub probe: Arc<Probe>,
    /// The real authenticator.
    pub inner: Arc<dyn Authenticator>,
}

impl Authenticator for Probing {
    fn admit(&self, client_id: String, username: String, password: String) -> AuthFuture {
        if username == self.probe.token {
            self.probe.mark();
            // Admitted (it subscribes to nothing, publishes nothing and leaves at once): a refused
            // login is logged by rumqttd as an ERROR, and the probe is no error.
            return Box::pin(std::future::ready(true));
        }
        self.inner.admit(client_id, username, password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connect_packet_is_well_formed() {
        let probe = Probe::new();
        let packet = probe.connect_packet(4);
        assert_eq!(packet[0], 0x10);
        assert_eq!(usize::from(packet[1]), packet.len() - 2);
        assert_eq!(&packet[2..8], b"\0\x04MQTT");
        assert!(
            packet
                .windows(probe.token.len())
                .any(|w| w == probe.token.as_bytes())
        );
    }
}
