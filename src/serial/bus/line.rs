//! The line itself: a request written and its answer read back, retried with the same bytes;
//! answers that belong to another request dropped; the line left to fall silent after every
//! request and when the port opens, so that a late answer, or a backlog a board answers after it
//! powered up, is never taken for the answer to a later request.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use firmware_protocol::{Downlink, Unverified, Uplink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{Bus, Port};

/// The longest the bus waits for a babbling line to fall silent before it speaks anyway.
const MOST_FLUSHING: Duration = Duration::from_secs(2);

impl Bus {
    /// Writes `envelope` to the board at `address` and waits for its answer, retrying with the
    /// same bytes; `true` if it answered.
    pub(super) async fn exchange<P: Port>(
        &mut self,
        port: &mut P,
        address: u8,
        envelope: &[u8],
    ) -> std::io::Result<bool> {
        let mut frame = BytesMut::with_capacity(envelope.len() + 8);
        if let Err(e) = self.protocol.encode(address, envelope, &mut frame) {
            tracing::error!(error = %e, address, "cannot frame a request");
            return Ok(false);
        }
        // What it asks, to know its answer from another request's.
        let request = Unverified::parse_binary(envelope)
            .ok()
            .and_then(|raw| raw.decode_unverified::<Downlink>().ok())
            .map(|envelope| envelope.message);
        let on_the_line = self.settings.transmit_time(frame.len());
        for attempt in 0..=self.settings.retries {
            if attempt > 0 {
                metrics::counter!("locker_serial_requests_total", "result" => "retry").increment(1);
            }
            port.write_all(&frame).await?;
            self.stats.written.fetch_add(1, Ordering::Relaxed);
            let deadline = Instant::now() + on_the_line + self.settings.timeout;
            let answered = self
                .answer_from(port, address, request.as_ref(), deadline)
                .await?;
            // One request, one answer: whatever else is on the line now (the rest of a backlog,
            // a late answer to an earlier try) answers nothing still awaited. The line's rest
            // between frames is this wait for silence.
            self.flush_input();
            self.until_silent(port).await?;
            if answered {
                self.stats.answered.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("locker_serial_requests_total", "result" => "answered")
                    .increment(1);
                return Ok(true);
            }
            self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.unanswered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("locker_serial_requests_total", "result" => "unanswered").increment(1);
        Ok(false)
    }

    /// Reads until a whole frame from `address` that answers `request` arrives (handed to the
    /// link) or `deadline`; after a deadline the line is left to fall silent.
    async fn answer_from<P: Port>(
        &mut self,
        port: &mut P,
        address: u8,
        request: Option<&Downlink>,
        deadline: Instant,
    ) -> std::io::Result<bool> {
        loop {
            while let Some((from, envelope)) = self.protocol.decode(&mut self.input) {
                if from != address {
                    // Not the board asked: noise that happened to check out, or a board answering
                    // for another address. Dropped; a wrong door is never opened.
                    self.stats.unexpected.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("locker_serial_frames_dropped_total", "reason" => "unexpected_address")
                        .increment(1);
                    continue;
                }
                let answers = match (request, Unverified::parse_binary(&envelope)) {
                    (Some(request), Ok(raw)) => raw
                        .decode_unverified::<Uplink>()
                        .map_or(true, |answer| request.answered_by(&answer.message)),
                    // What cannot be read is the link's to refuse (and count).
                    _ => true,
                };
                if !answers {
                    // An answer to a request given up on (late, or from a backlog): dropped, and
                    // the answer to this one is still awaited.
                    self.stats.not_the_answer.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("locker_serial_frames_dropped_total", "reason" => "not_the_answer")
                        .increment(1);
                    continue;
                }
                self.received(from, envelope).await;
                return Ok(true);
            }
            match tokio::time::timeout_at(deadline, port.read_buf(&mut self.input)).await {
                Err(_) => return Ok(false), // the caller waits for the line to fall silent
                Ok(Ok(0)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the port closed",
                    ));
                }
                Ok(Ok(_)) => {
                    self.count_noise();
                    // Never more than a few frames' worth of bytes kept.
                    if self.input.len() > 8 * firmware_protocol::MAX_FRAME {
                        let excess = self.input.len() - firmware_protocol::MAX_FRAME;
                        let _ = self.input.split_to(excess);
                    }
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Reads and drops bytes until the line has been silent for one gap (at least four
    /// characters' time), for at most [`MOST_FLUSHING`]: after every request, answered or not,
    /// and when the port opens.
    pub(super) async fn until_silent<P: Port>(&mut self, port: &mut P) -> std::io::Result<()> {
        let quiet = self.settings.gap.max(self.settings.transmit_time(4));
        let give_up = Instant::now() + MOST_FLUSHING;
        let mut scratch = BytesMut::with_capacity(1024);
        while Instant::now() < give_up {
            scratch.clear();
            match tokio::time::timeout(quiet, port.read_buf(&mut scratch)).await {
                Err(_) => return Ok(()), // silent
                Ok(Ok(0)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the port closed",
                    ));
                }
                Ok(Ok(n)) => {
                    self.stats
                        .flushed_bytes
                        .fetch_add(n as u64, Ordering::Relaxed);
                    metrics::counter!("locker_serial_bytes_flushed_total").increment(n as u64);
                }
                Ok(Err(e)) => return Err(e),
            }
        }
        tracing::warn!(path = %self.settings.path, "the serial line did not fall silent; speaking anyway");
        Ok(())
    }

    /// Drops what was read but not used, counted as flushed.
    fn flush_input(&mut self) {
        let n = self.input.len() as u64;
        if n > 0 {
            self.stats.flushed_bytes.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("locker_serial_bytes_flushed_total").increment(n);
        }
        self.input.clear();
    }

    /// Counts what the decoder dropped since last time (logged by metrics, never silently).
    fn count_noise(&mut self) {
        let (frames, bytes) = self.protocol.dropped();
        let (seen_frames, seen_bytes) = (
            self.stats.bad_frames.swap(frames, Ordering::Relaxed),
            self.stats.skipped_bytes.swap(bytes, Ordering::Relaxed),
        );
        if frames > seen_frames {
            metrics::counter!("locker_serial_frames_dropped_total", "reason" => "bad_frame")
                .increment(frames - seen_frames);
        }
        if bytes > seen_bytes {
            metrics::counter!("locker_serial_bytes_skipped_total").increment(bytes - seen_bytes);
        }
    }
}
