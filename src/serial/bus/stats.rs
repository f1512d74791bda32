//! What a bus did, counted.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a bus did, for tests, benchmarks and logs.
#[derive(Debug, Default)]
pub struct BusStats {
    /// Frames written (first tries and retries).
    pub written: AtomicU64,
    /// Requests answered.
    pub answered: AtomicU64,
    /// Tries that had no answer in time.
    pub timeouts: AtomicU64,
    /// Requests given up after every retry.
    pub unanswered: AtomicU64,
    /// Polls sent.
    pub polls: AtomicU64,
    /// Whole frames from a board other than the one asked.
    pub unexpected: AtomicU64,
    /// Times the port was opened (the first time included).
    pub opened: AtomicU64,
    /// Candidate frames dropped as noise (bad CRC, impossible length, bad address).
    pub bad_frames: AtomicU64,
    /// Bytes skipped while looking for a frame.
    pub skipped_bytes: AtomicU64,
    /// Whole frames from the board asked that answer some other request (one given up on).
    pub not_the_answer: AtomicU64,
    /// Bytes read and dropped while waiting for the line to fall silent (after a timeout, and
    /// when the port opens).
    pub flushed_bytes: AtomicU64,
    /// Times poll counters were taken from the database (a block of them each time).
    pub counter_blocks: AtomicU64,
    /// Of those, the blocks the line's task had to wait for (none was ready: a board's first
    /// poll in a session, or a command used up the block); the others were taken ahead by the
    /// bus's counter task, off the line's timing loop.
    pub counter_blocks_waited: AtomicU64,
}

impl BusStats {
    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
