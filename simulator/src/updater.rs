//! A simulated locker's firmware updater (PROTOCOL.md §11.2): the spare flash slot, the offer's
//! checks, chunks written and read back, resume after a power cut, install and rollback, with
//! fault knobs. Pure: the MQTT and serial drivers call it through [`crate::locker::SimLocker`].

use std::collections::BTreeSet;

use firmware_protocol::update::chunk_crc;
use firmware_protocol::{
    Chunk, ChunkRequest, UpdateFailure, UpdateOffer, UpdateReport, UpdateStatus, Uplink, image,
};

/// Tries of one chunk before the update fails with `flash_error`.
const TRIES: u8 = 3;

/// Ways the simulated updater misbehaves on purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateFaults {
    /// Chunks (by index) whose first write to flash reads back wrong: asked for again.
    pub corrupt_chunks: BTreeSet<u32>,
    /// The new image does not confirm itself after the install: the boot loader rolls back.
    pub fail_boot: bool,
    /// The locker loses its power after this many more chunks are written (the driver reboots
    /// it; the slot and its progress survive in flash).
    pub power_cut_after: Option<u32>,
}

#[derive(Debug, Clone)]
enum Slot {
    Empty,
    Downloading {
        offer: UpdateOffer,
        next: u32,
        tries: u8,
        image: Vec<u8>,
    },
    Downloaded {
        offer: UpdateOffer,
    },
    Installing {
        offer: UpdateOffer,
    },
    Finished(UpdateReport),
}

/// The updater of one locker: what its flash keeps across reboots.
#[derive(Debug, Clone)]
pub struct Updater {
    keys: Vec<[u8; 32]>,
    max_chunk: u16,
    capacity: u32,
    slot: Slot,
    /// The report of an install finished by the last boot, sent once after its `hello`.
    boot_report: Option<UpdateReport>,
    /// Set by `install`: the driver reboots the locker after sending the answer.
    reboot: bool,
    /// Knobs a test turns.
    pub faults: UpdateFaults,
}

impl Updater {
    /// An updater trusting `keys` (Ed25519 public keys), taking chunks of up to `max_chunk`
    /// bytes into a spare slot of `capacity` bytes.
    pub fn new(keys: Vec<[u8; 32]>, max_chunk: u16, capacity: u32) -> Self {
        Self {
            keys,
            max_chunk,
            capacity,
            slot: Slot::Empty,
            boot_report: None,
            reboot: false,
            faults: UpdateFaults::default(),
        }
    }

    /// What `hello` announces.
    pub fn max_chunk(&self) -> u16 {
        self.max_chunk
    }

    /// The next chunk wanted, while downloading (for tests and the demo's display).
    pub fn progress(&self) -> Option<(u32, u32)> {
        match &self.slot {
            Slot::Downloading { offer, next, .. } => Some((*next, offer.chunk_count())),
            _ => None,
        }
    }

    fn report(offer: &UpdateOffer, status: UpdateStatus) -> UpdateReport {
        UpdateReport {
            update_id: offer.update_id,
            version: offer.version.clone(),
            status,
        }
    }

    /// The answer to an offer, given the version the locker runs.
    pub fn offer(&mut self, offer: UpdateOffer, running: &str) -> Uplink {
        match &self.slot {
            Slot::Downloading {
                offer: held, next, ..
            } if held.update_id == offer.update_id => {
                return request(held.update_id, *next);
            }
            Slot::Downloaded { offer: held } | Slot::Installing { offer: held }
                if held.update_id == offer.update_id =>
            {
                return Uplink::UpdateReport(Self::report(held, UpdateStatus::Downloaded));
            }
            Slot::Finished(report) if report.update_id == offer.update_id => {
                return Uplink::UpdateReport(report.clone());
            }
            _ => {}
        }
        let refuse =
            |reason| Uplink::UpdateReport(Self::report(&offer, UpdateStatus::Refused(reason)));
        if offer.size > self.capacity || offer.chunk_size > self.max_chunk {
            return refuse(UpdateFailure::TooLarge);
        }
        let signed = offer.manifest().is_ok_and(|manifest| {
            self.keys
                .iter()
                .any(|key| image::verify(key, &manifest, &offer.signature).is_ok())
        });
        if !signed {
            return refuse(UpdateFailure::BadSignature);
        }
        if offer.version == running {
            let report = Self::report(&offer, UpdateStatus::Installed);
            self.slot = Slot::Finished(report.clone());
            return Uplink::UpdateReport(report);
        }
        let id = offer.update_id;
        self.slot = Slot::Downloading {
            image: Vec::with_capacity(offer.size as usize),
            offer,
            next: 0,
            tries: 0,
        };
        request(id, 0)
    }

    /// The answer to a chunk: the next request, a report, or nothing (another update's).
    pub fn chunk(&mut self, chunk: Chunk) -> Option<Uplink> {
        let Slot::Downloading {
            offer,
            next,
            tries,
            image,
        } = &mut self.slot
        else {
            return match &self.slot {
                Slot::Downloaded { offer } if offer.update_id == chunk.update_id => Some(
                    Uplink::UpdateReport(Self::report(offer, UpdateStatus::Downloaded)),
                ),
                Slot::Finished(report) if report.update_id == chunk.update_id => {
                    Some(Uplink::UpdateReport(report.clone()))
                }
                _ => None,
            };
        };
        if chunk.update_id != offer.update_id {
            return None;
        }
        let good = chunk.index == *next
            && offer.chunk_len(chunk.index) == Some(chunk.data.len())
            && chunk_crc(&chunk.data) == chunk.crc32;
        // Written to flash and read back: a corrupted write fails the same check.
        let written_wrong = good && self.faults.corrupt_chunks.remove(&chunk.index);
        if chunk.index == *next && (!good || written_wrong) {
            *tries += 1;
            if *tries >= TRIES {
                let report = Self::report(offer, UpdateStatus::Failed(UpdateFailure::FlashError));
                self.slot = Slot::Finished(report.clone());
                return Some(Uplink::UpdateReport(report));
            }
        }
        if !good || written_wrong {
            return Some(request(offer.update_id, *next));
        }
        image.extend_from_slice(&chunk.data);
        *next += 1;
        *tries = 0;
        if let Some(left) = self.faults.power_cut_after.as_mut() {
            *left = left.saturating_sub(1);
        }
        if *next < offer.chunk_count() {
            return Some(request(offer.update_id, *next));
        }
        let offer = offer.clone();
        let report = if image::digest(image) == offer.sha256 {
            self.slot = Slot::Downloaded {
                offer: offer.clone(),
            };
            Self::report(&offer, UpdateStatus::Downloaded)
        } else {
            let report = Self::report(&offer, UpdateStatus::Failed(UpdateFailure::BadHash));
            self.slot = Slot::Finished(report.clone());
            report
        };
        Some(Uplink::UpdateReport(report))
    }

    /// Whether the power-cut fault is due now (the driver then reboots the locker).
    pub fn power_cut_due(&mut self) -> bool {
        if self.faults.power_cut_after == Some(0) {
            self.faults.power_cut_after = None;
            return true;
        }
        false
    }

    /// The answer to an install; a downloaded image makes the driver reboot into it
    /// ([`Updater::take_reboot`]).
    pub fn install(&mut self, update_id: u32, running: &str) -> Uplink {
        match &self.slot {
            Slot::Downloaded { offer } if offer.update_id == update_id => {
                let offer = offer.clone();
                self.reboot = true;
                let report = Self::report(&offer, UpdateStatus::Installing);
                self.slot = Slot::Installing { offer };
                Uplink::UpdateReport(report)
            }
            Slot::Finished(report) if report.update_id == update_id => {
                Uplink::UpdateReport(report.clone())
            }
            _ => Uplink::UpdateReport(UpdateReport {
                update_id,
                version: running.to_owned(),
                status: UpdateStatus::Refused(UpdateFailure::UnknownUpdate),
            }),
        }
    }

    /// Whether an install asked for a reboot (asked once).
    pub fn take_reboot(&mut self) -> bool {
        std::mem::take(&mut self.reboot)
    }

    /// A power-up: an image being installed confirms itself (the version the locker now runs is
    /// returned) or, with the `fail_boot` fault, is rolled back.
    pub fn boot(&mut self) -> Option<String> {
        let Slot::Installing { offer } = &self.slot else {
            return None;
        };
        let offer = offer.clone();
        let (status, runs) = if self.faults.fail_boot {
            (UpdateStatus::RolledBack, None)
        } else {
            (UpdateStatus::Installed, Some(offer.version.clone()))
        };
        let report = Self::report(&offer, status);
        self.boot_report = Some(report.clone());
        self.slot = Slot::Finished(report);
        runs
    }

    /// The report of the install the last boot finished, once (sent after `hello` on MQTT).
    pub fn take_boot_report(&mut self) -> Option<Uplink> {
        self.boot_report.take().map(Uplink::UpdateReport)
    }
}

fn request(update_id: u32, index: u32) -> Uplink {
    Uplink::ChunkRequest(ChunkRequest { update_id, index })
}
