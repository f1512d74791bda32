//! The mode in force: edge (one gateway on a SQLite file) or fleet (PostgreSQL and Redis).

use super::Config;

impl Config {
    /// The mode in force: `LOCKER_MODE` if set, else `fleet` when `DATABASE_URL` or `REDIS_URL`
    /// is set and `edge` when neither is. Fleet mode needs both: a gateway on PostgreSQL without
    /// Redis would hold door locks in its own process, and two such gateways could open one door
    /// for two people, so that is refused; edge mode keeps everything in the process and a file,
    /// so the servers' settings must not be set.
    pub fn mode(&self) -> Result<Mode, ModeError> {
        let configured = (self.database_url.is_some(), self.redis_url.is_some());
        let mode = self.mode.unwrap_or(match configured {
            (false, false) => Mode::Edge,
            _ => Mode::Fleet,
        });
        match (mode, configured) {
            (Mode::Fleet, (true, true)) | (Mode::Edge, (false, false)) => Ok(mode),
            (Mode::Fleet, (true, false)) => Err(ModeError::FleetWithout("REDIS_URL")),
            (Mode::Fleet, (false, _)) => Err(ModeError::FleetWithout("DATABASE_URL")),
            (Mode::Edge, _) => Err(ModeError::EdgeWithServers),
        }
    }
}

/// Where the gateway keeps its state, and who else may share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One gateway (a cabinet's box, a laptop): SQLite and door locks in the process.
    Edge,
    /// Any number of gateways: PostgreSQL, and door locks in Redis.
    Fleet,
}

impl Mode {
    /// `edge` or `fleet`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edge => "edge",
            Self::Fleet => "fleet",
        }
    }
}

/// Why the configured mode cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    /// Fleet mode without one of its servers.
    #[error(
        "fleet mode needs DATABASE_URL and REDIS_URL, and {0} is not set: several gateways on one database must share their door locks in Redis (for a single gateway without servers, unset DATABASE_URL and REDIS_URL, or set LOCKER_MODE=edge)"
    )]
    FleetWithout(&'static str),
    /// Edge mode with servers configured.
    #[error(
        "LOCKER_MODE=edge keeps its data in a file and its door locks in the process; unset DATABASE_URL and REDIS_URL, or use LOCKER_MODE=fleet"
    )]
    EdgeWithServers,
}
