//! The read side of the registry, for operators: find devices, one device with its doors.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::storage::{Storage, on_pool};

/// A device as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DeviceView {
    /// The device id.
    pub id: String,
    /// Its model.
    pub model: String,
    /// How many doors it has.
    pub door_count: i32,
    /// Connected now.
    pub online: bool,
    /// When it was revoked, if it was (revocation is final).
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last sent anything.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Firmware version from its last hello.
    pub firmware: Option<String>,
    /// Serial number from its last hello.
    pub serial_no: Option<String>,
    /// For a lock board on a serial line: the gateway holding the line (absent on MQTT).
    pub serial_gateway: Option<String>,
    /// When it was provisioned.
    pub created_at: DateTime<Utc>,
}

/// What one door's sensors last said.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DoorView {
    /// The door number.
    pub door: i32,
    /// Its size class.
    pub size_class: String,
    /// `open`, `closed` or `unknown` (never guessed).
    pub sensor: String,
    /// Whether the lock is engaged, if the locker says.
    pub locked: Option<bool>,
    /// Whether something is inside, if the locker has that sensor.
    pub occupied: Option<bool>,
    /// When the locker last said so.
    pub state_at: Option<DateTime<Utc>>,
    /// Nobody knows what the door last did (a jam, an unknown outcome): a person should look.
    pub suspect: bool,
    /// Not rented or sold from until an operator puts it back in service.
    pub out_of_service: bool,
}

/// One device with its doors.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceDetail {
    /// The device.
    pub device: DeviceView,
    /// Its doors, door 1 first.
    pub doors: Vec<DoorView>,
}

/// Which devices to list.
#[derive(Debug, Clone, Default)]
pub struct DeviceSearch {
    /// Ids starting with this.
    pub prefix: Option<String>,
    /// Ids containing this, in any case.
    pub fragment: Option<String>,
    /// Only those with an alarm not yet resolved (`true`) or without (`false`).
    pub open_alarms: Option<bool>,
    /// Only online (`true`) or offline (`false`) ones.
    pub online: Option<bool>,
    /// Only this model.
    pub model: Option<String>,
    /// Only lockers on MQTT ([`Transport::Mqtt`]) or on a serial line ([`Transport::Serial`]).
    pub transport: Option<Transport>,
    /// Only lock boards on a serial line held by this gateway.
    pub serial_gateway: Option<String>,
    /// The order: by id (the default) or by when they were last seen.
    pub order: Order,
    /// Ids after this one (the next page, by id).
    pub after: Option<String>,
    /// Rows to skip (the next page, by last seen).
    pub offset: i64,
    /// At most this many.
    pub limit: i64,
}

/// How a locker reaches the gateways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Over MQTT, through the broker.
    Mqtt,
    /// A lock board on a serial line of one gateway.
    Serial,
}

/// The order of a device list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// By id.
    #[default]
    Id,
    /// Last seen first (never seen last), then by id.
    LastSeen,
}

/// The search's statement: the filters, then `$6`, the id condition (a prefix, or a fragment the
/// trigram index serves on PostgreSQL), then the order.
macro_rules! search_sql {
    ($id:literal, $order:literal) => {
        concat!(
            "SELECT id, model, door_count, online, revoked_at, last_seen_at, firmware, serial_no,
                    serial_gateway, created_at
             FROM devices
             WHERE ($1 IS NULL OR online = $1) AND ($2 IS NULL OR model = $2)
               AND ($3 IS NULL OR id > $3)
               AND ($4 IS NULL OR $4 = EXISTS (SELECT 1 FROM alarms a
                    WHERE a.device_id = devices.id AND a.state <> 'resolved'))
               AND ($7 IS NULL OR $7 = (serial_gateway IS NOT NULL))
               AND ($8 IS NULL OR serial_gateway = $8)
               AND ",
            $id,
            $order,
            " LIMIT $5 OFFSET $9"
        )
    };
}

/// The statements, by (fragment, order).
const SEARCH: [[&str; 2]; 2] = [
    [
        search_sql!(
            "($6 IS NULL OR substr(id, 1, length($6)) = $6)",
            " ORDER BY id"
        ),
        search_sql!(
            "($6 IS NULL OR substr(id, 1, length($6)) = $6)",
            " ORDER BY last_seen_at IS NULL, last_seen_at DESC, id"
        ),
    ],
    [
        search_sql!("lower(id) LIKE $6 ESCAPE '\\'", " ORDER BY id"),
        search_sql!(
            "lower(id) LIKE $6 ESCAPE '\\'",
            " ORDER BY last_seen_at IS NULL, last_seen_at DESC, id"
        ),
    ],
];

const ONE: &str = "SELECT id, model, door_count, online, revoked_at, last_seen_at, firmware,
            serial_no, serial_gateway, created_at
     FROM devices WHERE id = $1";

const DOORS: &str = "SELECT door, size_class, sensor, locked, occupied, state_at, suspect,
            out_of_service
     FROM doors WHERE device_id = $1 ORDER BY door";

/// Devices matching `search`, by id.
pub async fn search(
    storage: &Storage,
    search: &DeviceSearch,
) -> Result<Vec<DeviceView>, sqlx::Error> {
    // A fragment as a LIKE pattern: its own `%`, `_` and `\` taken literally.
    let (statement, id) = match &search.fragment {
        Some(fragment) => {
            let escaped: String = fragment
                .to_lowercase()
                .chars()
                .flat_map(|c| match c {
                    '%' | '_' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            (SEARCH[1], Some(format!("%{escaped}%")))
        }
        None => (SEARCH[0], search.prefix.clone()),
    };
    let statement = statement[usize::from(search.order == Order::LastSeen)];
    let serial = search.transport.map(|t| t == Transport::Serial);
    Ok(on_pool!(storage, |pool| {
        // Not kept as a prepared statement: PostgreSQL plans each search for its own pattern
        // (a generic plan would not know a fragment's selectivity, and scans).
        sqlx::query_as(statement)
            .persistent(search.fragment.is_none())
            .bind(search.online)
            .bind(&search.model)
            .bind(&search.after)
            .bind(search.open_alarms)
            .bind(search.limit)
            .bind(&id)
            .bind(serial)
            .bind(&search.serial_gateway)
            .bind(search.offset)
            .fetch_all(pool)
            .await?
    }))
}

/// One device with its doors.
pub async fn get(storage: &Storage, id: &str) -> Result<Option<DeviceDetail>, sqlx::Error> {
    let found: Option<(DeviceView, Vec<DoorView>)> = on_pool!(storage, |pool| {
        match sqlx::query_as(ONE).bind(id).fetch_optional(pool).await? {
            None => None,
            Some(device) => Some((
                device,
                sqlx::query_as(DOORS).bind(id).fetch_all(pool).await?,
            )),
        }
    });
    Ok(found.map(|(device, doors)| DeviceDetail { device, doors }))
}
