//! Serial buses attached to a running gateway on a line of the caller's choosing.

use std::sync::Arc;

use super::App;
use crate::serial::{BusParts, BusSettings, BusStats, Port};

impl App {
    /// Starts a bus of lock boards on the line `open` opens (again, with backoff, after it
    /// fails): a serial-over-TCP converter, or an in-memory pipe in tests; the buses of
    /// `LOCKER_SERIAL_BUSES` are serial ports and start with the gateway. Its boards' downlinks
    /// are routed to it and their answers go to the device link like any uplink. `None` if the
    /// device link has stopped.
    pub fn attach_serial_bus<P: Port>(
        &mut self,
        settings: BusSettings,
        open: impl FnMut(&BusSettings) -> std::io::Result<P> + Send + 'static,
    ) -> Option<Arc<BusStats>> {
        let parts = BusParts {
            storage: self.storage.clone(),
            registry: self.registry.clone(),
            downlinks: self.downlinks.clone(),
            injector: self.link.injector()?,
            line: self.line.clone(),
        };
        let stats =
            crate::serial::start_on(settings, open, parts, &self.tasks, self.shutdown.clone());
        self.serial.push(stats.clone());
        Some(stats)
    }
}
