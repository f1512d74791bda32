//! A serial bus's settings, and the compact form they take in one setting
//! (`LOCKER_SERIAL_BUSES`, or `serial_buses` in the file):
//!
//! ```text
//! /dev/ttyUSB0@9600,8N1=1:cab-1-b1,2:cab-1-b2;/dev/ttyUSB1@19200?timeout_ms=400&gap_ms=20=1:cab-2-b1
//! ```
//!
//! Buses are separated by `;`. Each is `path[@baud[,framing]][?options]=address:device,...`; the
//! baud rate defaults to 9600 and the framing (data bits, parity `N`/`E`/`O`, stop bits) to
//! `8N1`. Options, `&`-separated, set this bus's `timeout_ms`, `gap_ms`, `retries`, `poll_ms` and
//! `offline_polls`; a bus without them takes the defaults it is given (the
//! `LOCKER_SERIAL_*` settings).

use std::time::Duration;

use firmware_protocol::DeviceId;

/// Parity bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// None.
    None,
    /// Even.
    Even,
    /// Odd.
    Odd,
}

/// One bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSettings {
    /// The port's path (`/dev/ttyUSB0`).
    pub path: String,
    /// Bits per second.
    pub baud: u32,
    /// Data bits, 5 to 8.
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
    /// The boards: address and device.
    pub boards: Vec<(u8, DeviceId)>,
    /// How long a board may take to answer (`LOCKER_SERIAL_TIMEOUT_MS`, 200).
    pub timeout: Duration,
    /// Least silence between frames (`LOCKER_SERIAL_GAP_MS`, 50).
    pub gap: Duration,
    /// Tries after the first when a request has no answer (`LOCKER_SERIAL_RETRIES`, 2).
    pub retries: u32,
    /// How often each board is polled at least (`LOCKER_SERIAL_POLL_MS`, 1000).
    pub poll_every: Duration,
    /// Polls in a row without an answer after which a board is offline
    /// (`LOCKER_SERIAL_OFFLINE_POLLS`, 3).
    pub offline_after: u32,
}

impl BusSettings {
    /// A bus at `path` with the protocol's defaults and no boards.
    pub fn new(path: &str) -> Self {
        Self {
            path: path.to_owned(),
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            boards: Vec::new(),
            timeout: Duration::from_millis(200),
            gap: Duration::from_millis(50),
            retries: 2,
            poll_every: Duration::from_millis(1000),
            offline_after: 3,
        }
    }

    /// The least time one round of polls of `boards` boards takes on this line: each poll and
    /// its heartbeat (about `POLL_EXCHANGE_BYTES` together) plus a gap after each.
    pub fn poll_round(&self, boards: usize) -> Duration {
        (self.transmit_time(POLL_EXCHANGE_BYTES) + self.gap) * boards as u32
    }

    /// How long `bytes` take on the line (start bit, data, parity, stop bits per byte).
    pub fn transmit_time(&self, bytes: usize) -> Duration {
        let per_byte = 1
            + u64::from(self.data_bits)
            + u64::from(self.parity != Parity::None)
            + u64::from(self.stop_bits);
        Duration::from_micros(bytes as u64 * per_byte * 1_000_000 / u64::from(self.baud.max(1)))
    }
}

/// A poll frame and a four-door board's heartbeat frame, together (bytes on the line).
pub const POLL_EXCHANGE_BYTES: usize = 115;

/// Why the buses setting is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// One bus's `?name=value&...` options.
fn bus_options(bus: &mut BusSettings, options: &str) -> Result<(), SettingsError> {
    for option in options.split('&').map(str::trim).filter(|o| !o.is_empty()) {
        let (name, value) = option
            .split_once('=')
            .ok_or_else(|| SettingsError(format!("option `{option}` is not name=value")))?;
        let number = |low: u64, high: u64| {
            value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (low..=high).contains(n))
                .ok_or_else(|| {
                    SettingsError(format!(
                        "option {name}: `{value}` is not a whole number from {low} to {high}"
                    ))
                })
        };
        match name.trim() {
            "timeout_ms" => bus.timeout = Duration::from_millis(number(10, 10_000)?),
            "gap_ms" => bus.gap = Duration::from_millis(number(0, 10_000)?),
            "retries" => bus.retries = number(0, 10)? as u32,
            "poll_ms" => bus.poll_every = Duration::from_millis(number(10, 600_000)?),
            "offline_polls" => bus.offline_after = number(1, 100)? as u32,
            other => {
                return Err(SettingsError(format!(
                    "unknown option `{other}` (known: timeout_ms, gap_ms, retries, poll_ms, offline_polls)"
                )));
            }
        }
    }
    Ok(())
}

fn framing(text: &str) -> Result<(u8, Parity, u8), SettingsError> {
    let bytes = text.as_bytes();
    let bad = || SettingsError(format!("framing `{text}` is not like 8N1"));
    if bytes.len() != 3 {
        return Err(bad());
    }
    let data = match bytes[0] {
        b'5'..=b'8' => bytes[0] - b'0',
        _ => return Err(bad()),
    };
    let parity = match bytes[1] {
        b'N' | b'n' => Parity::None,
        b'E' | b'e' => Parity::Even,
        b'O' | b'o' => Parity::Odd,
        _ => return Err(bad()),
    };
    let stop = match bytes[2] {
        b'1' => 1,
        b'2' => 2,
        _ => return Err(bad()),
    };
    Ok((data, parity, stop))
}

/// Reads the buses setting (see the module's documentation), each bus starting from the
/// protocol's defaults. Empty: no buses.
pub fn parse_buses(text: &str) -> Result<Vec<BusSettings>, SettingsError> {
    parse_buses_with(text, &BusSettings::new(""))
}

/// [`parse_buses`], each bus starting from `defaults` (its timing settings; path, line and
/// boards come from the text).
pub fn parse_buses_with(
    text: &str,
    defaults: &BusSettings,
) -> Result<Vec<BusSettings>, SettingsError> {
    let mut buses: Vec<BusSettings> = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        // The board list is after the last `=` (options before it may hold `=` too).
        let (port, boards) = part
            .rsplit_once('=')
            .ok_or_else(|| SettingsError(format!("`{part}`: no `=address:device` list")))?;
        let (port, options) = match port.split_once('?') {
            Some((port, options)) => (port, Some(options)),
            None => (port, None),
        };
        let (path, line) = match port.split_once('@') {
            Some((path, line)) => (path.trim(), Some(line.trim())),
            None => (port.trim(), None),
        };
        if path.is_empty() {
            return Err(SettingsError(format!("`{part}`: no port path")));
        }
        let mut bus = BusSettings {
            path: path.to_owned(),
            boards: Vec::new(),
            ..defaults.clone()
        };
        if let Some(options) = options {
            bus_options(&mut bus, options)?;
        }
        if let Some(line) = line {
            let (baud, framed) = match line.split_once(',') {
                Some((baud, framed)) => (baud, Some(framed)),
                None => (line, None),
            };
            bus.baud = baud
                .parse()
                .ok()
                .filter(|b| (300..=4_000_000).contains(b))
                .ok_or_else(|| SettingsError(format!("`{baud}` is not a baud rate")))?;
            if let Some(framed) = framed {
                (bus.data_bits, bus.parity, bus.stop_bits) = framing(framed)?;
            }
        }
        for board in boards.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            let (address, device) = board
                .split_once(':')
                .ok_or_else(|| SettingsError(format!("`{board}` is not address:device")))?;
            let address: u8 = address
                .trim()
                .parse()
                .ok()
                .filter(|a| (1..=247).contains(a))
                .ok_or_else(|| SettingsError(format!("address `{address}` is not 1 to 247")))?;
            let device = DeviceId::new(device.trim())
                .ok_or_else(|| SettingsError(format!("`{device}` is not a device id")))?;
            if bus.boards.iter().any(|(a, _)| *a == address) {
                return Err(SettingsError(format!("address {address} twice on {path}")));
            }
            let elsewhere = buses
                .iter()
                .chain(std::iter::once(&bus))
                .any(|b| b.boards.iter().any(|(_, d)| *d == device));
            if elsewhere {
                return Err(SettingsError(format!("device {device} on two buses")));
            }
            bus.boards.push((address, device));
        }
        if bus.boards.is_empty() {
            return Err(SettingsError(format!("{path}: no boards")));
        }
        if buses.iter().any(|b| b.path == bus.path) {
            return Err(SettingsError(format!("{path} listed twice")));
        }
        buses.push(bus);
    }
    Ok(buses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bus_may_set_its_own_timing_over_the_defaults() {
        let mut defaults = BusSettings::new("");
        defaults.timeout = Duration::from_millis(300);
        defaults.retries = 4;
        let buses = parse_buses_with(
            "/dev/ttyUSB0@19200?timeout_ms=500&gap_ms=20&poll_ms=3000=1:cab-1;/dev/ttyUSB1=2:cab-2",
            &defaults,
        )
        .expect("valid");
        assert_eq!(buses[0].baud, 19200);
        assert_eq!(buses[0].timeout, Duration::from_millis(500));
        assert_eq!(buses[0].gap, Duration::from_millis(20));
        assert_eq!(buses[0].poll_every, Duration::from_millis(3000));
        assert_eq!(buses[0].retries, 4, "not set: the default given");
        assert_eq!(buses[0].boards.len(), 1);
        assert_eq!(buses[1].timeout, Duration::from_millis(300));
        assert_eq!(buses[1].path, "/dev/ttyUSB1");
        for (text, says) in [
            ("/dev/x?timeout_ms=5=1:a", "timeout_ms"),
            ("/dev/x?speed=5=1:a", "unknown option `speed`"),
            ("/dev/x?retries=1:a", "not name=value"),
            ("/dev/x?gap_ms=-1=1:a", "gap_ms"),
        ] {
            let error = parse_buses(text).expect_err(text).to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_round_of_sixteen_polls_at_9600_baud_takes_seconds() {
        let bus = &parse_buses("/dev/ttyUSB0=1:cab-1").expect("valid")[0];
        let round = bus.poll_round(16);
        // 115 bytes at 10 bits = 120 ms, plus a 50 ms gap, 16 times.
        assert!(
            round > Duration::from_millis(2650) && round < Duration::from_millis(2800),
            "{round:?}"
        );
    }

    #[test]
    fn buses_read_from_one_line() {
        let buses = parse_buses("/dev/ttyUSB0@19200,8E2=1:cab-1,2:cab-2; /dev/ttyUSB1=7:cab-3")
            .expect("valid");
        assert_eq!(buses.len(), 2);
        assert_eq!(
            (
                buses[0].baud,
                buses[0].data_bits,
                buses[0].parity,
                buses[0].stop_bits
            ),
            (19200, 8, Parity::Even, 2)
        );
        assert_eq!(buses[0].boards.len(), 2);
        assert_eq!((buses[1].baud, buses[1].parity), (9600, Parity::None));
        assert_eq!(buses[1].boards[0].0, 7);
        assert!(parse_buses("").expect("empty").is_empty());
    }

    #[test]
    fn wrong_buses_are_refused_with_what_is_wrong() {
        for (text, says) in [
            ("/dev/ttyUSB0", "no `=address:device`"),
            ("/dev/ttyUSB0=0:cab-1", "not 1 to 247"),
            ("/dev/ttyUSB0=248:cab-1", "not 1 to 247"),
            ("/dev/ttyUSB0=1:cab 1", "not a device id"),
            ("/dev/ttyUSB0=1:a,1:b", "twice"),
            ("/dev/a=1:x;/dev/b=2:x", "two buses"),
            ("/dev/ttyUSB0@fast=1:a", "not a baud rate"),
            ("/dev/ttyUSB0@9600,9X1=1:a", "not like 8N1"),
            ("/dev/ttyUSB0=", "no boards"),
        ] {
            let error = parse_buses(text).expect_err(text).to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_frame_takes_its_bits_on_the_line() {
        let bus = BusSettings::new("/dev/x");
        // 10 bits a byte at 9600 baud: 100 bytes take about 104 ms.
        assert_eq!(bus.transmit_time(100).as_millis(), 104);
    }
}
