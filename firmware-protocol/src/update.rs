//! Firmware updates (PROTOCOL.md §11): the offer, the chunks a locker asks for, the go-ahead to
//! install and the locker's reports.
//!
//! ```text
//! gateway                                   locker
//!   update_offer(id, version, size, sha256, signature, chunk_size) ──►
//!        ◄── chunk_request(id, index)     (index 0, or where it stopped: resume)
//!   chunk(id, index, crc32, data) ──►      (checked, written to the spare slot)
//!        ◄── chunk_request(id, index + 1) … until the last chunk
//!        ◄── update_report(id, downloaded)  (whole image's SHA-256 and signature hold)
//!   install(id) ──►                         (only inside a maintenance window, no command in flight)
//!        ◄── update_report(id, installing)  then reboot into the new image
//!        ◄── hello …  update_report(id, installed | rolled_back)
//! ```
//!
//! A locker answers an offer of an update it has finished with that update's last report, so a
//! gateway that lost an answer (or a locker that lost its power) simply offers again.

use serde::{Deserialize, Serialize};

use crate::binary::Reader;
use crate::error::{DecodeError, InvalidMessage};

/// Smallest chunk a locker may ask for, in bytes.
pub const MIN_CHUNK: u16 = 16;
/// Largest chunk on MQTT (its base64 text fits a JSON body), in bytes.
pub const MAX_CHUNK: u16 = 32 * 1024;
/// Largest chunk on a serial line (its body fits a frame), in bytes.
pub const MAX_BINARY_CHUNK: u16 = 1000;
/// Largest image a locker can be offered, in bytes (16 MiB).
pub const MAX_IMAGE: u32 = 16 * 1024 * 1024;

/// The CRC-32 (ISO-HDLC, the one of zlib and Ethernet) a [`Chunk`] carries of its data.
pub fn chunk_crc(data: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data)
}

/// An offer of a firmware image to a locker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOffer {
    /// Names this update on this locker, `1..`: the same id offered again resumes it.
    pub update_id: u32,
    /// The image's version, 1 to 32 printable ASCII.
    pub version: String,
    /// The image's size in bytes, `1..=MAX_IMAGE`.
    pub size: u32,
    /// SHA-256 of the whole image (JSON: 64 lowercase hex digits).
    #[serde(with = "hex_array")]
    pub sha256: [u8; 32],
    /// The vendor's Ed25519 signature of the manifest (`crate::image::manifest`) of version,
    /// size and hash (JSON: 128 lowercase hex digits).
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
    /// Bytes per chunk, `MIN_CHUNK..=MAX_CHUNK`, at most the `max_chunk` of the locker's hello;
    /// every chunk but the last is this long.
    pub chunk_size: u16,
}

impl UpdateOffer {
    /// How many chunks the image has.
    pub fn chunk_count(&self) -> u32 {
        self.size.div_ceil(u32::from(self.chunk_size.max(1)))
    }

    /// The length of chunk `index`, `None` past the last.
    pub fn chunk_len(&self, index: u32) -> Option<usize> {
        let start = u64::from(index) * u64::from(self.chunk_size);
        let end = (start + u64::from(self.chunk_size)).min(u64::from(self.size));
        (start < u64::from(self.size)).then(|| (end - start) as usize)
    }

    /// The message the signature covers.
    pub fn manifest(&self) -> Result<Vec<u8>, crate::image::ImageError> {
        crate::image::manifest(&self.version, u64::from(self.size), &self.sha256)
    }
}

/// A locker asks for one chunk of an offered image (the first, the next, or, after a reconnect
/// or a power cut, the one after its last good chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRequest {
    /// The offer's id.
    pub update_id: u32,
    /// The chunk wanted, `0..chunk_count`.
    pub index: u32,
}

/// One chunk of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The offer's id.
    pub update_id: u32,
    /// Which chunk: bytes `index * chunk_size ..` of the image.
    pub index: u32,
    /// [`chunk_crc`] of `data`: the locker checks it on receipt and again after writing to flash.
    pub crc32: u32,
    /// The bytes, `1..=MAX_CHUNK` (JSON: standard base64 with padding).
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// Install the downloaded image now (the locker reboots into it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Install {
    /// The offer's id.
    pub update_id: u32,
}

/// Why a locker refused an offer or an install, or why an update failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateFailure {
    /// The signature does not hold under any vendor key the locker trusts.
    BadSignature = 1,
    /// The downloaded image's SHA-256 is not the offer's.
    BadHash = 2,
    /// The image does not fit the locker's spare slot.
    TooLarge = 3,
    /// Not now (a door is being opened, power is low): offer or install again later.
    Busy = 4,
    /// Writing or reading back the flash failed.
    FlashError = 5,
    /// An install or a chunk for an update the locker does not hold.
    UnknownUpdate = 6,
}

impl UpdateFailure {
    /// Every reason, in code order.
    pub const ALL: [Self; 6] = [
        Self::BadSignature,
        Self::BadHash,
        Self::TooLarge,
        Self::Busy,
        Self::FlashError,
        Self::UnknownUpdate,
    ];

    /// The reason's byte on the wire.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The reason for a wire byte.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

/// Where an update stands on a locker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum UpdateStatus {
    /// The offer (or install) was not taken, for this reason; nothing changed on the locker.
    Refused(UpdateFailure),
    /// The whole image is in the spare slot and its hash and signature hold: ready to install.
    Downloaded,
    /// Rebooting into the new image now.
    Installing,
    /// The new image booted and confirmed itself; the locker runs it.
    Installed,
    /// The update was given up, for this reason (the old image still runs).
    Failed(UpdateFailure),
    /// The new image did not confirm itself; the boot loader went back to the old one.
    RolledBack,
}

impl UpdateStatus {
    /// The status's byte on the wire (its reason, if any, follows).
    pub const fn code(self) -> u8 {
        match self {
            Self::Refused(_) => 1,
            Self::Downloaded => 2,
            Self::Installing => 3,
            Self::Installed => 4,
            Self::Failed(_) => 5,
            Self::RolledBack => 6,
        }
    }

    /// Whether the update is over on the locker (installed, failed or rolled back).
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Installed | Self::Failed(_) | Self::RolledBack)
    }
}

/// A locker's report on an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// The offer's id.
    pub update_id: u32,
    /// The offered version (1 to 32 printable ASCII).
    pub version: String,
    /// Where it stands.
    #[serde(flatten)]
    pub status: UpdateStatus,
}

pub(crate) fn validate_offer(m: &UpdateOffer) -> Result<(), InvalidMessage> {
    check(m.update_id != 0, "update_id")?;
    check((1..=MAX_IMAGE).contains(&m.size), "size")?;
    check(
        (MIN_CHUNK..=MAX_CHUNK).contains(&m.chunk_size),
        "chunk_size",
    )?;
    crate::validate::check_text(&m.version, "version")
}

pub(crate) fn validate_chunk(m: &Chunk) -> Result<(), InvalidMessage> {
    check(m.update_id != 0, "update_id")?;
    check(
        !m.data.is_empty() && m.data.len() <= usize::from(MAX_CHUNK),
        "data",
    )
}

pub(crate) fn validate_report(m: &UpdateReport) -> Result<(), InvalidMessage> {
    check(m.update_id != 0, "update_id")?;
    crate::validate::check_text(&m.version, "version")
}

fn check(ok: bool, field: &'static str) -> Result<(), InvalidMessage> {
    ok.then_some(()).ok_or(InvalidMessage::OutOfRange(field))
}

pub(crate) fn write_offer(m: &UpdateOffer, out: &mut Vec<u8>) {
    out.extend_from_slice(&m.update_id.to_be_bytes());
    crate::binary::put_text(out, &m.version);
    out.extend_from_slice(&m.size.to_be_bytes());
    out.extend_from_slice(&m.sha256);
    out.extend_from_slice(&m.signature);
    out.extend_from_slice(&m.chunk_size.to_be_bytes());
}

pub(crate) fn read_offer(r: &mut Reader<'_>) -> Result<UpdateOffer, DecodeError> {
    Ok(UpdateOffer {
        update_id: r.u32()?,
        version: r.text()?,
        size: r.u32()?,
        sha256: r.array()?,
        signature: r.array()?,
        chunk_size: r.u16()?,
    })
}

pub(crate) fn write_chunk(m: &Chunk, out: &mut Vec<u8>) {
    let data = &m.data[..m.data.len().min(usize::from(MAX_BINARY_CHUNK))];
    out.extend_from_slice(&m.update_id.to_be_bytes());
    out.extend_from_slice(&m.index.to_be_bytes());
    out.extend_from_slice(&m.crc32.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

pub(crate) fn read_chunk(r: &mut Reader<'_>) -> Result<Chunk, DecodeError> {
    let update_id = r.u32()?;
    let index = r.u32()?;
    let crc32 = r.u32()?;
    let len = usize::from(r.u16()?);
    Ok(Chunk {
        update_id,
        index,
        crc32,
        data: r.take(len)?.to_vec(),
    })
}

pub(crate) fn write_report(m: &UpdateReport, out: &mut Vec<u8>) {
    out.extend_from_slice(&m.update_id.to_be_bytes());
    crate::binary::put_text(out, &m.version);
    out.push(m.status.code());
    out.push(match m.status {
        UpdateStatus::Refused(reason) | UpdateStatus::Failed(reason) => reason.code(),
        _ => 0,
    });
}

pub(crate) fn read_report(r: &mut Reader<'_>) -> Result<UpdateReport, DecodeError> {
    let update_id = r.u32()?;
    let version = r.text()?;
    let (code, reason) = (r.u8()?, r.u8()?);
    let reason = || {
        UpdateFailure::from_code(reason).ok_or(DecodeError::UnknownCode {
            field: "reason",
            value: reason,
        })
    };
    let status = match code {
        1 => UpdateStatus::Refused(reason()?),
        2 => UpdateStatus::Downloaded,
        3 => UpdateStatus::Installing,
        4 => UpdateStatus::Installed,
        5 => UpdateStatus::Failed(reason()?),
        6 => UpdateStatus::RolledBack,
        value => {
            return Err(DecodeError::UnknownCode {
                field: "status",
                value,
            });
        }
    };
    Ok(UpdateReport {
        update_id,
        version,
        status,
    })
}

/// Fixed-size byte arrays as lowercase hex in JSON.
mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; N];
        hex::decode_to_slice(text.as_bytes(), &mut out)
            .map_err(|_| D::Error::custom(format!("expected {} hex digits", 2 * N)))?;
        Ok(out)
    }
}

/// Bytes as standard base64 (with padding) in JSON.
mod base64_bytes {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|_| D::Error::custom("expected base64"))
    }
}
