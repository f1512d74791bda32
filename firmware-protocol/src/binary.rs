//! The binary body encoding, used on serial lines. All integers are big-endian; the byte tables
//! are in `PROTOCOL.md`. A reader tolerates bytes after the last field it knows (a newer firmware
//! may append fields) and ignores reserved bits, but never reads past the end.

use crate::envelope::MAX_BINARY_BODY;
use crate::error::{DecodeError, InvalidMessage};
use crate::message::*;

/// Reads fields off a body, failing with [`DecodeError::Truncated`] at its end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn text(&mut self) -> Result<String, DecodeError> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        // Printable ASCII is checked by `validate`; here only valid UTF-8 is needed.
        String::from_utf8(bytes.to_vec()).map_err(|_| InvalidMessage::OutOfRange("text").into())
    }

    fn command_id(&mut self) -> Result<CommandId, DecodeError> {
        Ok(CommandId::try_from(self.u64()?)?)
    }

    fn expiry(&mut self) -> Result<Option<u64>, DecodeError> {
        Ok(match self.u64()? {
            0 => None,
            ms => Some(ms),
        })
    }

    fn doors(&mut self) -> Result<Vec<DoorStatus>, DecodeError> {
        let count = usize::from(self.u16()?);
        if count > usize::from(MAX_DOORS) {
            return Err(InvalidMessage::OutOfRange("doors").into());
        }
        self.take(count)?.iter().map(|&b| door_status(b)).collect()
    }

    fn result(&mut self) -> Result<CommandResult, DecodeError> {
        match self.u8()? {
            0 => Ok(CommandResult::Executed),
            code => RefuseReason::from_code(code)
                .map(CommandResult::Refused)
                .ok_or(DecodeError::UnknownCode {
                    field: "result",
                    value: code,
                }),
        }
    }
}

pub(crate) fn put_text(out: &mut Vec<u8>, text: &str) {
    // Validation limits texts to 32 bytes; clamp so an unvalidated call cannot corrupt framing.
    let bytes = &text.as_bytes()[..text.len().min(usize::from(u8::MAX))];
    out.push(bytes.len() as u8);
    out.extend_from_slice(bytes);
}

fn put_doors(out: &mut Vec<u8>, doors: &[DoorStatus]) {
    let doors = &doors[..doors.len().min(usize::from(MAX_DOORS))];
    out.extend_from_slice(&(doors.len() as u16).to_be_bytes());
    out.extend(doors.iter().map(|d| door_byte(*d)));
}

fn put_result(out: &mut Vec<u8>, result: CommandResult) {
    out.push(match result {
        CommandResult::Executed => 0,
        CommandResult::Refused(reason) => reason.code(),
    });
}

/// One door in one byte: bits 0–1 sensor (0 unknown, 1 closed, 2 open), bit 2 locked, bits 3–4
/// item sensor (0 none fitted, 1 empty, 2 occupied), bits 5–7 reserved (sent 0, ignored).
pub fn door_byte(door: DoorStatus) -> u8 {
    let sensor = match door.sensor {
        DoorSensor::Unknown => 0,
        DoorSensor::Closed => 1,
        DoorSensor::Open => 2,
    };
    let occupied = match door.occupied {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    sensor | (u8::from(door.locked) << 2) | (occupied << 3)
}

/// The door for a byte made by [`door_byte`].
pub fn door_status(byte: u8) -> Result<DoorStatus, DecodeError> {
    let sensor = match byte & 0b11 {
        0 => DoorSensor::Unknown,
        1 => DoorSensor::Closed,
        2 => DoorSensor::Open,
        value => {
            return Err(DecodeError::UnknownCode {
                field: "door.sensor",
                value,
            });
        }
    };
    let occupied = match (byte >> 3) & 0b11 {
        0 => None,
        1 => Some(false),
        2 => Some(true),
        value => {
            return Err(DecodeError::UnknownCode {
                field: "door.occupied",
                value,
            });
        }
    };
    Ok(DoorStatus {
        sensor,
        locked: byte & 0b100 != 0,
        occupied,
    })
}

pub(crate) fn write_downlink(msg: &Downlink, out: &mut Vec<u8>) {
    match msg {
        Downlink::Unlock(m) => {
            out.extend_from_slice(&m.command_id.get().to_be_bytes());
            out.extend_from_slice(&m.door.to_be_bytes());
            out.extend_from_slice(&m.expires_at_ms.unwrap_or(0).to_be_bytes());
        }
        Downlink::QueryState(m) => out.extend_from_slice(&m.query_id.to_be_bytes()),
        Downlink::Configure(m) => {
            out.extend_from_slice(&m.command_id.get().to_be_bytes());
            out.extend_from_slice(&m.heartbeat_secs.to_be_bytes());
            out.extend_from_slice(&m.open_window_ms.to_be_bytes());
            out.extend_from_slice(&m.pulse_ms.to_be_bytes());
            out.extend_from_slice(&m.ajar_alarm_secs.to_be_bytes());
            out.extend_from_slice(&m.expires_at_ms.unwrap_or(0).to_be_bytes());
        }
        Downlink::Ping => {}
        Downlink::Poll(m) => out.extend_from_slice(&m.ack_counter.to_be_bytes()),
        Downlink::UpdateOffer(m) => crate::update::write_offer(m, out),
        Downlink::Chunk(m) => crate::update::write_chunk(m, out),
        Downlink::Install(m) => out.extend_from_slice(&m.update_id.to_be_bytes()),
    }
}

pub(crate) fn read_downlink(ty: MessageType, body: &[u8]) -> Result<Downlink, DecodeError> {
    let mut r = Reader::new(body);
    let msg = match ty {
        MessageType::Unlock => Downlink::Unlock(Unlock {
            command_id: r.command_id()?,
            door: r.u16()?,
            expires_at_ms: r.expiry()?,
        }),
        MessageType::QueryState => Downlink::QueryState(QueryState { query_id: r.u32()? }),
        MessageType::Configure => Downlink::Configure(Configure {
            command_id: r.command_id()?,
            heartbeat_secs: r.u16()?,
            open_window_ms: r.u16()?,
            pulse_ms: r.u16()?,
            ajar_alarm_secs: r.u16()?,
            expires_at_ms: r.expiry()?,
        }),
        MessageType::Ping => Downlink::Ping,
        MessageType::Poll => Downlink::Poll(Poll {
            ack_counter: r.u32()?,
        }),
        MessageType::UpdateOffer => Downlink::UpdateOffer(crate::update::read_offer(&mut r)?),
        MessageType::Chunk => Downlink::Chunk(crate::update::read_chunk(&mut r)?),
        MessageType::Install => Downlink::Install(Install {
            update_id: r.u32()?,
        }),
        _ => return Err(DecodeError::WrongDirection),
    };
    msg.validate()?;
    Ok(msg)
}

pub(crate) fn write_uplink(msg: &Uplink, out: &mut Vec<u8>) {
    match msg {
        Uplink::Hello(m) => {
            out.push(m.protocol_version);
            put_text(out, &m.firmware);
            put_text(out, &m.serial_no);
            out.extend_from_slice(&m.door_count.to_be_bytes());
            out.extend_from_slice(&m.session.to_be_bytes());
            out.extend_from_slice(&m.uptime_ms.to_be_bytes());
            // Appended (an older reader ignores it): the locker takes updates.
            if let Some(max_chunk) = m.max_chunk {
                out.extend_from_slice(&max_chunk.to_be_bytes());
            }
        }
        Uplink::Heartbeat(m) => {
            out.extend_from_slice(&m.uptime_ms.to_be_bytes());
            out.push(m.signal.unwrap_or(i8::MIN) as u8);
            put_doors(out, &m.doors);
        }
        Uplink::Ack(m) => {
            out.extend_from_slice(&m.command_id.get().to_be_bytes());
            put_result(out, m.result);
        }
        Uplink::DoorEvent(m) => {
            out.extend_from_slice(&m.door.to_be_bytes());
            out.push(match m.state {
                DoorMotion::Opened => 1,
                DoorMotion::Closed => 2,
            });
            let command = match m.cause {
                DoorCause::Commanded(id) => id.get(),
                DoorCause::Uncommanded => 0,
            };
            out.extend_from_slice(&command.to_be_bytes());
            out.extend_from_slice(&m.uptime_ms.to_be_bytes());
        }
        Uplink::Alarm(m) => {
            out.push(m.kind.code());
            out.extend_from_slice(&m.door.unwrap_or(0).to_be_bytes());
            out.extend_from_slice(&m.uptime_ms.to_be_bytes());
        }
        Uplink::StateReport(m) => {
            let start = out.len();
            out.extend_from_slice(&m.query_id.to_be_bytes());
            put_doors(out, &m.doors);
            let recent = &m.recent[..m.recent.len().min(MAX_RECENT)];
            out.push(recent.len() as u8);
            for ack in recent {
                out.extend_from_slice(&ack.command_id.get().to_be_bytes());
                put_result(out, ack.result);
            }
            // Protocol version 2, appended (a version 1 reader ignores it): what the doors of
            // executed unlocks did.
            let results = &m.door_results[..m.door_results.len().min(MAX_RECENT)];
            // As many of the newest as the body has room for (a locker of many doors with full
            // lists would not fit otherwise): the gateway reads the sensor for the others.
            let room = MAX_BINARY_BODY.saturating_sub(out.len() - start + 1) / 9;
            let results = &results[results.len().saturating_sub(room)..];
            if !results.is_empty() {
                out.push(results.len() as u8);
                for result in results {
                    out.extend_from_slice(&result.command_id.get().to_be_bytes());
                    out.push(result.door.code());
                }
            }
        }
        Uplink::Pong => {}
        Uplink::ChunkRequest(m) => {
            out.extend_from_slice(&m.update_id.to_be_bytes());
            out.extend_from_slice(&m.index.to_be_bytes());
        }
        Uplink::UpdateReport(m) => crate::update::write_report(m, out),
    }
}

pub(crate) fn read_uplink(ty: MessageType, body: &[u8]) -> Result<Uplink, DecodeError> {
    let mut r = Reader::new(body);
    let msg = match ty {
        MessageType::Hello => Uplink::Hello(Hello {
            protocol_version: r.u8()?,
            firmware: r.text()?,
            serial_no: r.text()?,
            door_count: r.u16()?,
            session: r.u32()?,
            uptime_ms: r.u64()?,
            max_chunk: match r.rest().is_empty() {
                true => None,
                false => Some(r.u16()?).filter(|n| *n != 0),
            },
        }),
        MessageType::Heartbeat => {
            let uptime_ms = r.u64()?;
            let signal = match r.u8()? as i8 {
                i8::MIN => None,
                dbm => Some(dbm),
            };
            Uplink::Heartbeat(Heartbeat {
                uptime_ms,
                doors: r.doors()?,
                signal,
            })
        }
        MessageType::Ack => Uplink::Ack(Ack {
            command_id: r.command_id()?,
            result: r.result()?,
        }),
        MessageType::DoorEvent => {
            let door = r.u16()?;
            let state = match r.u8()? {
                1 => DoorMotion::Opened,
                2 => DoorMotion::Closed,
                value => {
                    return Err(DecodeError::UnknownCode {
                        field: "state",
                        value,
                    });
                }
            };
            let cause = match r.u64()? {
                0 => DoorCause::Uncommanded,
                id => DoorCause::Commanded(CommandId::try_from(id)?),
            };
            Uplink::DoorEvent(DoorEvent {
                door,
                state,
                cause,
                uptime_ms: r.u64()?,
            })
        }
        MessageType::Alarm => {
            let code = r.u8()?;
            let kind = AlarmKind::from_code(code).ok_or(DecodeError::UnknownCode {
                field: "kind",
                value: code,
            })?;
            let door = match r.u16()? {
                0 => None,
                door => Some(door),
            };
            Uplink::Alarm(Alarm {
                kind,
                door,
                uptime_ms: r.u64()?,
            })
        }
        MessageType::StateReport => {
            let query_id = r.u32()?;
            let doors = r.doors()?;
            let count = usize::from(r.u8()?);
            if count > MAX_RECENT {
                return Err(InvalidMessage::OutOfRange("recent").into());
            }
            let mut recent = Vec::with_capacity(count);
            for _ in 0..count {
                recent.push(Ack {
                    command_id: r.command_id()?,
                    result: r.result()?,
                });
            }
            let mut door_results = Vec::new();
            if !r.rest().is_empty() {
                let count = usize::from(r.u8()?);
                if count > MAX_RECENT {
                    return Err(InvalidMessage::OutOfRange("door_results").into());
                }
                for _ in 0..count {
                    let command_id = r.command_id()?;
                    let door = DoorOutcome::from_code(r.u8()?)
                        .ok_or(InvalidMessage::OutOfRange("door_results"))?;
                    door_results.push(UnlockDoor { command_id, door });
                }
            }
            Uplink::StateReport(StateReport {
                query_id,
                doors,
                recent,
                door_results,
            })
        }
        MessageType::Pong => Uplink::Pong,
        MessageType::ChunkRequest => Uplink::ChunkRequest(ChunkRequest {
            update_id: r.u32()?,
            index: r.u32()?,
        }),
        MessageType::UpdateReport => Uplink::UpdateReport(crate::update::read_report(&mut r)?),
        _ => return Err(DecodeError::WrongDirection),
    };
    msg.validate()?;
    Ok(msg)
}
