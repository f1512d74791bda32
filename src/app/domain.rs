//! The domain builder: wallets, rentals, orders and the catalog over the storage, with door
//! locks and a cache where the mode keeps them.

use crate::cache::Cache;
use crate::command::CommandService;
use crate::config::Config;
use crate::lock::DoorLocks;
use crate::order::{Catalog, Orders};
use crate::rental::Rentals;
use crate::storage::Storage;
use crate::wallet::Wallets;

/// The services that sell doors and move money.
pub(super) struct Domain {
    pub wallets: Wallets,
    pub rentals: Rentals,
    pub orders: Orders,
    pub catalog: Catalog,
    pub cache: Cache,
}

/// Builds them. One gateway on SQLite holds its door locks and cache itself; gateways sharing
/// PostgreSQL share them in Redis (without Redis: no cache, and no rentals or orders).
pub(super) fn build(
    config: &Config,
    storage: &Storage,
    redis: Option<&redis::aio::ConnectionManager>,
    commands: &CommandService,
) -> Domain {
    let wallets = Wallets::new(storage.clone(), config.currency.clone());
    let (cache, locks) = match storage {
        Storage::Sqlite(_) => (
            Cache::in_process(config.cache_ttl),
            Some(DoorLocks::in_process()),
        ),
        Storage::Postgres(_) => (
            Cache::new(
                redis.cloned().filter(|_| !config.cache_ttl.is_zero()),
                &config.redis_prefix,
                config.cache_ttl,
            ),
            redis.map(|r| DoorLocks::new(r.clone(), config.redis_prefix.clone())),
        ),
    };
    let rentals = Rentals::new(
        storage.clone(),
        wallets.clone(),
        commands.clone(),
        locks.clone(),
        config.rentals.clone(),
        cache.clone(),
    );
    let catalog = Catalog::new(storage.clone(), cache.clone());
    let orders = Orders::new(
        storage.clone(),
        wallets.clone(),
        commands.clone(),
        locks,
        config.rentals.clone(),
        catalog.clone(),
    );
    Domain {
        wallets,
        rentals,
        orders,
        catalog,
        cache,
    }
}
