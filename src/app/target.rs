//! Where the configuration says the gateway's state is.

use crate::config::{Config, Mode, ModeError, redact_url};
use crate::storage::Target;

/// The storage `config` names: PostgreSQL at `DATABASE_URL`, or, without one (or with
/// `LOCKER_MODE=edge`), the SQLite file in the data directory; `LOCKER_MODE=fleet` without
/// `DATABASE_URL` is refused. Whether the whole mode can run (Redis too) is the gateway's to
/// check ([`Config::mode`]); administrative commands need only the database.
pub fn storage_target(config: &Config) -> Result<Target, ModeError> {
    let url = match (config.mode, config.database_url.as_deref()) {
        (Some(Mode::Edge), _) => None,
        (Some(Mode::Fleet), None) => return Err(ModeError::FleetWithout("DATABASE_URL")),
        (_, url) => url,
    };
    Ok(match url {
        Some(url) => Target::Postgres {
            url: url.to_owned(),
            shown: redact_url(url),
        },
        None => Target::Sqlite {
            dir: config.data_dir.clone(),
            file: config.sqlite_path(),
        },
    })
}
