//! What the gateway does with what a locker said, once the device link has verified it: the
//! handler the composition root gives the link. The link (a transport) authenticates, checks
//! freshness and keeps each locker's order; everything that touches the books (presence, doors,
//! alarms, command answers, the commands a new session sends) is done here, through the stores
//! of the modules that own those tables.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use firmware_protocol::{DeviceId, DeviceKey, Envelope, SessionChange, Uplink, UplinkGuard};

use crate::command::Progress;
pub use crate::command::store::Arrival;

mod batch;
mod recorder;

pub use recorder::Recorder;

/// An uplink that passed every check that needs no database: parsed, tag verified, fresh.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The locker.
    pub device: DeviceId,
    /// What it said.
    pub envelope: Envelope<Uplink>,
    /// What it does to the locker's session, as the link's replay guard saw it.
    pub change: SessionChange,
    /// The locker's current tag key (to seal what is sent back to it).
    pub key: DeviceKey,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// In what order the locker's uplinks arrive (see [`Arrival`]).
    pub arrival: Arrival,
}

impl Verified {
    /// It is a `hello`.
    pub fn is_hello(&self) -> bool {
        matches!(self.envelope.message, Uplink::Hello(_))
    }
}

/// Why a verified uplink was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotWritten {
    /// The database fenced it: its session or counter was accepted before (by another gateway,
    /// or before a restart).
    Fenced,
    /// It could not be written (logged where it failed).
    Failed,
}

/// Per uplink of a batch: the commands it settled, or why it was not recorded.
pub type Written = Result<Vec<(i64, Progress)>, NotWritten>;

/// What the device link hands over, and when. Every method is called on the locker's shard, in
/// the order of the locker's messages.
pub trait Handler: Send + Sync + 'static {
    /// The replay guard of `device` as the books have it (its session and highest counter).
    fn guard(
        &self,
        device: &DeviceId,
    ) -> impl Future<Output = Result<UplinkGuard, sqlx::Error>> + Send;

    /// Records a `hello` (a session starting, or announced again) on its own: `false` if the
    /// books fenced it (that session, or a later one, was recorded before).
    fn hello(&self, hello: &Verified) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// Records verified uplinks other than hellos in one unit of work, all or nothing.
    fn write(
        &self,
        batch: &[Verified],
    ) -> impl Future<Output = Result<Vec<Written>, sqlx::Error>> + Send;

    /// After an uplink was recorded: whoever waits for the commands it `settled` is told, and a
    /// hello sends what waited for the locker (errors are logged here: the uplink stands).
    fn recorded(
        &self,
        uplink: &Verified,
        settled: Vec<(i64, Progress)>,
    ) -> impl Future<Output = ()> + Send;

    /// A last will naming `session`: `true` if it ended the locker's current session.
    fn last_will(
        &self,
        device: &DeviceId,
        session: u32,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;

    /// A serial board did not answer a poll; `offline`: the session that ends with it.
    fn unanswered(
        &self,
        device: &DeviceId,
        offline: Option<u32>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Marks offline the lockers silent for longer than `timeout`; how many.
    fn sweep(&self, timeout: Duration) -> impl Future<Output = Result<usize, sqlx::Error>> + Send;
}
