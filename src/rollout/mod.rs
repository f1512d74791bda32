//! The rollout engine: firmware campaigns carried out (PROTOCOL.md §11). Each step it starts the
//! waves a campaign's thresholds allow, stops a campaign past its error threshold, offers the
//! image to the lockers of started waves and tells downloaded ones to install inside the
//! maintenance window when they have no command in flight. Lockers ask for chunks at their own
//! pace: each `chunk_request` is answered from the image (kept in memory while a campaign runs);
//! each `update_report` is recorded. Every gateway may run it: its statements
//! (`firmware::updates`) change only the state they expect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use firmware_protocol::update::{MAX_BINARY_CHUNK, MAX_CHUNK, chunk_crc};
use firmware_protocol::{
    Chunk, DeviceId, DeviceKey, Direction, Downlink, Envelope, Header, Install, UpdateOffer, Uplink,
};

use crate::command::outlet::Outlet;
use crate::command::store::next_counter;
use crate::device::DeviceRegistry;
use crate::firmware::plan::{self, Next, Thresholds};
use crate::firmware::updates::{self, Running};
use crate::firmware::{StoredImage, image_bytes};
use crate::storage::Storage;

mod tick;

pub use tick::run;
use tick::window_open;

/// How the engine paces itself.
#[derive(Debug, Clone, Copy)]
pub struct RolloutSettings {
    /// Offers sent per campaign and step.
    pub offers_per_step: i64,
    /// Installs sent per campaign and step.
    pub installs_per_step: i64,
    /// A locker that refused `busy` is offered again after this.
    pub busy_retry: Duration,
    /// An offered locker silent this long is offered again (it resumes where it stopped).
    pub quiet_after: Duration,
    /// Bytes per chunk on a serial line (PROTOCOL.md §11.3: 256 keeps an unlock's extra wait
    /// at 433 ms at 9600 baud).
    pub serial_chunk: u16,
    /// A locker told to install that has not reported within this has failed (`no_report`).
    pub install_timeout: Duration,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        Self {
            offers_per_step: 200,
            installs_per_step: 200,
            busy_retry: Duration::from_secs(60),
            quiet_after: Duration::from_secs(30),
            serial_chunk: 256,
            install_timeout: Duration::from_secs(900),
        }
    }
}

/// The engine and the locker side's answers (see the module's documentation).
#[derive(Clone)]
pub struct Rollout {
    storage: Storage,
    downlinks: Arc<dyn Outlet>,
    registry: DeviceRegistry,
    settings: RolloutSettings,
    /// Images of running campaigns, by campaign.
    images: Arc<Mutex<HashMap<i64, Arc<StoredImage>>>>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stepped {
    /// Campaigns running.
    pub campaigns: usize,
    /// Offers sent.
    pub offers: usize,
    /// Installs sent.
    pub installs: usize,
}

impl Rollout {
    /// An engine writing to `storage` and sending through `downlinks`.
    pub fn new(
        storage: Storage,
        downlinks: Arc<dyn Outlet>,
        registry: DeviceRegistry,
        settings: RolloutSettings,
    ) -> Self {
        Self {
            storage,
            downlinks,
            registry,
            settings,
            images: Arc::default(),
        }
    }

    /// The image of campaign `campaign`, from memory or the database.
    async fn image(&self, campaign: i64) -> Result<Option<Arc<StoredImage>>, sqlx::Error> {
        if let Some(image) = self
            .images
            .lock()
            .ok()
            .and_then(|m| m.get(&campaign).cloned())
        {
            return Ok(Some(image));
        }
        let Some(campaign_row) = crate::firmware::campaign::get(&self.storage, campaign).await?
        else {
            return Ok(None);
        };
        let Some(image) = image_bytes(&self.storage, campaign_row.image_id).await? else {
            return Ok(None);
        };
        let image = Arc::new(image);
        if let Ok(mut images) = self.images.lock() {
            images.insert(campaign, image.clone());
        }
        Ok(Some(image))
    }

    /// Sends `message` to `device` in `session`, taking the session's next counter under the
    /// locker's turn. Whether it was queued.
    async fn send(
        &self,
        device: DeviceId,
        session: u32,
        key: &DeviceKey,
        message: Downlink,
    ) -> Result<bool, sqlx::Error> {
        let _turn = self.downlinks.turns().turn(&device).await;
        let Some(counter) = next_counter(&self.storage, &device, session).await? else {
            return Ok(false);
        };
        let envelope = Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: device,
                session,
                counter,
            },
            message,
        };
        match self.downlinks.deliver(&envelope, key, None) {
            Ok(_) => Ok(true),
            Err(e) => {
                tracing::error!(error = %e, %device, "cannot seal a firmware update message");
                Ok(false)
            }
        }
    }

    async fn key(&self, device: &DeviceId) -> Option<DeviceKey> {
        match self.registry.credentials(device).await {
            Ok(Some(credentials)) => Some(credentials.current.tag_key),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, %device, "cannot read a locker's key");
                None
            }
        }
    }

    /// The offer of update `update_id` in chunks of at most `max_chunk` (the locker's) bytes.
    fn offer_of(
        &self,
        device: &DeviceId,
        update_id: u32,
        image: &StoredImage,
        max_chunk: u16,
    ) -> UpdateOffer {
        let transport = if self.downlinks.is_serial(device) {
            self.settings.serial_chunk.min(MAX_BINARY_CHUNK)
        } else {
            MAX_CHUNK
        };
        UpdateOffer {
            update_id,
            version: image.version.clone(),
            size: image.bytes.len() as u32,
            sha256: image.sha256,
            signature: image.signature,
            chunk_size: max_chunk
                .min(transport)
                .max(firmware_protocol::update::MIN_CHUNK),
        }
    }

    /// The offer of update `update_id` of `campaign` to `device`, and the key to seal it with;
    /// `None` if the image or the key cannot be had.
    async fn prepared(
        &self,
        device: &DeviceId,
        update_id: i64,
        campaign: i64,
        max_chunk: u16,
    ) -> Result<Option<(UpdateOffer, DeviceKey)>, sqlx::Error> {
        let (Ok(id), Some(image), Some(key)) = (
            u32::try_from(update_id),
            self.image(campaign).await?,
            self.key(device).await,
        ) else {
            return Ok(None);
        };
        Ok(Some((self.offer_of(device, id, &image, max_chunk), key)))
    }

    /// Offers update `update_id` of `campaign` to `device`.
    async fn offer(
        &self,
        device: DeviceId,
        session: u32,
        update_id: i64,
        campaign: i64,
        max_chunk: u16,
    ) -> Result<bool, sqlx::Error> {
        let Some((offer, key)) = self
            .prepared(&device, update_id, campaign, max_chunk)
            .await?
        else {
            return Ok(false);
        };
        if !updates::offered(
            &self.storage,
            update_id,
            offer.chunk_size,
            offer.chunk_count(),
        )
        .await?
        {
            return Ok(false);
        }
        metrics::counter!("locker_firmware_offers_total").increment(1);
        self.send(device, session, &key, Downlink::UpdateOffer(offer))
            .await
    }

    /// One step of every running campaign.
    pub async fn step(&self) -> Result<Stepped, sqlx::Error> {
        let campaigns = updates::running(&self.storage).await?;
        let mut stepped = Stepped {
            campaigns: campaigns.len(),
            ..Stepped::default()
        };
        for campaign in &campaigns {
            // One failing campaign never stops the others.
            match self.step_campaign(campaign).await {
                Ok((offers, installs)) => {
                    stepped.offers += offers;
                    stepped.installs += installs;
                }
                Err(e) => {
                    tracing::error!(error = %e, campaign = campaign.id, "a campaign's step failed")
                }
            }
        }
        if let Ok(mut images) = self.images.lock() {
            images.retain(|id, _| campaigns.iter().any(|c| c.id == *id));
        }
        Ok(stepped)
    }

    async fn step_campaign(&self, campaign: &Running) -> Result<(usize, usize), sqlx::Error> {
        // A locker that never reported after its install has failed: its wave can settle.
        let deadline = chrono::Duration::from_std(self.settings.install_timeout)
            .unwrap_or(chrono::Duration::MAX);
        let overdue =
            updates::installs_overdue(&self.storage, campaign.id, Utc::now() - deadline).await?;
        if overdue > 0 {
            metrics::counter!("locker_firmware_reports_total", "state" => "no_report")
                .increment(overdue as u64);
        }
        let tallies = updates::tallies(&self.storage, campaign).await?;
        let thresholds = Thresholds {
            success: campaign.success_pct.clamp(0, 100) as u8,
            error: campaign.error_pct.clamp(0, 100) as u8,
        };
        let mut campaign = campaign.clone();
        match plan::next(&tallies, campaign.wave_count.max(0) as usize, thresholds) {
            Next::StartWave(n) => {
                // Started here: its lockers are offered at once. Started by another engine, or
                // the campaign paused meanwhile: the next step sees it.
                if !updates::start_wave(&self.storage, campaign.id, n as i32).await? {
                    return Ok((0, 0));
                }
                campaign.waves_started = n as i32 + 1;
            }
            Next::Stop { wave, failed } => {
                let why = format!(
                    "wave {} failed {failed}%, above the error threshold of {}%",
                    wave + 1,
                    thresholds.error
                );
                updates::end(&self.storage, campaign.id, Some(why)).await?;
                return Ok((0, 0));
            }
            Next::Done => {
                updates::end(&self.storage, campaign.id, None).await?;
                return Ok((0, 0));
            }
            Next::Wait => {}
        }
        let now = Utc::now();
        let ago = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or_default();
        let due = updates::due_offers(
            &self.storage,
            &campaign,
            ago(self.settings.busy_retry),
            ago(self.settings.quiet_after),
            self.settings.offers_per_step,
        )
        .await?;
        let mut offers = 0;
        for d in due {
            let (Ok(device), Ok(session)) = (
                DeviceId::new(&d.device_id).ok_or(()),
                u32::try_from(d.session),
            ) else {
                continue;
            };
            let max_chunk = u16::try_from(d.update_chunk).unwrap_or(MAX_CHUNK);
            if self
                .offer(device, session, d.update_id, campaign.id, max_chunk)
                .await?
            {
                offers += 1;
            }
        }
        let installs = if window_open(&campaign) {
            self.installs(&campaign).await?
        } else {
            0
        };
        Ok((offers, installs))
    }

    async fn installs(&self, campaign: &Running) -> Result<usize, sqlx::Error> {
        let due =
            updates::due_installs(&self.storage, campaign.id, self.settings.installs_per_step)
                .await?;
        let mut sent = 0;
        for d in due {
            let (Some(device), Ok(session), Ok(id)) = (
                DeviceId::new(&d.device_id),
                u32::try_from(d.session),
                u32::try_from(d.update_id),
            ) else {
                continue;
            };
            let Some(key) = self.key(&device).await else {
                continue;
            };
            // Commands are refused from here on, until the locker reports.
            if updates::installing(&self.storage, d.update_id).await?
                && self
                    .send(
                        device,
                        session,
                        &key,
                        Downlink::Install(Install { update_id: id }),
                    )
                    .await?
            {
                metrics::counter!("locker_firmware_installs_total").increment(1);
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// What a verified uplink means for updates: a chunk request is answered, a report recorded,
    /// and a hello from a locker with an update under way offers it again (it resumes, or
    /// answers with its report).
    pub async fn uplink(&self, device: DeviceId, session: u32, key: &DeviceKey, uplink: &Uplink) {
        let done = match uplink {
            Uplink::ChunkRequest(request) => self.chunk(device, session, key, request).await,
            Uplink::UpdateReport(report) => {
                match updates::reported(
                    &self.storage,
                    i64::from(report.update_id),
                    &device,
                    report.status,
                )
                .await
                {
                    Ok(Some(state)) => {
                        metrics::counter!("locker_firmware_reports_total", "state" => state)
                            .increment(1);
                        Ok(())
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Uplink::Hello(hello) => match hello.max_chunk {
                Some(max_chunk) => self.resume(device, session, max_chunk).await,
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = done {
            tracing::error!(error = %e, %device, "a firmware update uplink was not handled");
        }
    }

    async fn chunk(
        &self,
        device: DeviceId,
        session: u32,
        key: &DeviceKey,
        request: &firmware_protocol::ChunkRequest,
    ) -> Result<(), sqlx::Error> {
        let id = i64::from(request.update_id);
        let Some(serving) = updates::chunk_asked(&self.storage, id, &device, request.index).await?
        else {
            return Ok(());
        };
        let Some(image) = self.image(serving.campaign_id).await? else {
            return Ok(());
        };
        let size = serving.chunk_size.max(1) as usize;
        let start = (request.index as usize).saturating_mul(size);
        let Some(data) = image
            .bytes
            .get(start..(start + size).min(image.bytes.len()))
        else {
            return Ok(()); // past the end: not a chunk of this image
        };
        if data.is_empty() {
            return Ok(());
        }
        let chunk = Chunk {
            update_id: request.update_id,
            index: request.index,
            crc32: chunk_crc(data),
            data: data.to_vec(),
        };
        if self
            .send(device, session, key, Downlink::Chunk(chunk))
            .await?
        {
            metrics::counter!("locker_firmware_chunks_total").increment(1);
        }
        Ok(())
    }

    async fn resume(
        &self,
        device: DeviceId,
        session: u32,
        max_chunk: u16,
    ) -> Result<(), sqlx::Error> {
        let Some(active) = updates::active_for(&self.storage, &device).await? else {
            return Ok(());
        };
        if matches!(active.state.as_str(), "offered" | "downloading") {
            // It resumes where it stopped.
            let (update, campaign) = (active.update_id, active.campaign_id);
            return self
                .offer(device, session, update, campaign, max_chunk)
                .await
                .map(drop);
        }
        // Downloaded or installing: the same offer again, answered with where the locker stands
        // (a serial board cannot speak first: after an install's reboot this is how its report
        // comes).
        let prepared = self
            .prepared(&device, active.update_id, active.campaign_id, max_chunk)
            .await?;
        let Some((mut offer, key)) = prepared else {
            return Ok(());
        };
        if let Ok(size) = u16::try_from(active.chunk_size)
            && size > 0
        {
            offer.chunk_size = size;
        }
        self.send(device, session, &key, Downlink::UpdateOffer(offer))
            .await
            .map(drop)
    }
}
