//! A running simulated locker's handle, a fleet of them, and waiting for what they report.

use std::time::Duration;

use firmware_protocol::DeviceId;
use tokio::sync::{broadcast, mpsc};

use super::{Credentials, Happening, Knob, LockerConfig, spawn};

/// A running simulated locker.
#[derive(Debug)]
pub struct LockerHandle {
    /// Its device id.
    pub device_id: DeviceId,
    pub(super) knobs: mpsc::Sender<Knob>,
    pub(super) happenings: broadcast::Sender<Happening>,
    pub(super) task: tokio::task::JoinHandle<()>,
}

impl LockerHandle {
    /// Turns a knob.
    pub async fn turn(&self, knob: Knob) {
        let _ = self.knobs.send(knob).await;
    }

    /// What it does from now on.
    pub fn watch(&self) -> broadcast::Receiver<Happening> {
        self.happenings.subscribe()
    }

    /// Stops it abruptly (as a power cut).
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Waits until `watch` reports something that `want` accepts, or `timeout` passes.
pub async fn expect<T>(
    watch: &mut broadcast::Receiver<Happening>,
    timeout: Duration,
    mut want: impl FnMut(&Happening) -> Option<T>,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, watch.recv()).await {
            Ok(Ok(happening)) => {
                if let Some(found) = want(&happening) {
                    return Some(found);
                }
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
        }
    }
}

/// A fleet of simulated lockers.
#[derive(Debug, Default)]
pub struct Simulator {
    /// One handle per locker.
    pub lockers: Vec<LockerHandle>,
}

impl Simulator {
    /// Starts one locker per credentials entry, all with `template`'s settings.
    pub fn spawn(template: &LockerConfig, credentials: Vec<Credentials>) -> Self {
        let lockers = credentials
            .into_iter()
            .map(|credentials| {
                spawn(LockerConfig {
                    credentials,
                    ..template.clone()
                })
            })
            .collect();
        Self { lockers }
    }
}
