//! Named points in the middle of a sale where the crash tests stop the gateway. With
//! `LOCKER_TEST_PAUSE_AT=<point>` in its environment, the gateway appends the point's name to
//! `LOCKER_TEST_PAUSE_FILE` when a request gets there and then waits forever; the test SIGKILLs
//! it there, starts it again, and checks that what was left in between is finished or undone.
//! Not a setting, and not in a release: the points exist only in a build with the `test-hooks`
//! feature, which the test command turns on ([`ENABLED`]); without it a point is nothing, and
//! the variable changes nothing:
//!
//! ```
//! // Set before anything reads it (the variable is read once).
//! unsafe { std::env::set_var("LOCKER_TEST_PAUSE_AT", "rental.created") };
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
//! let passed = runtime.block_on(async {
//!     let point = locker_gateway::pause::point("rental.created");
//!     tokio::time::timeout(std::time::Duration::from_millis(200), point).await
//! });
//! // A build without `test-hooks` (every release) passes the point; one with it stops there.
//! assert_eq!(passed.is_ok(), !locker_gateway::pause::ENABLED);
//! ```
//!
//! Without the variable (read once) a point costs one comparison.
//!
//! The points, in the order a sale passes them:
//! - `rental.created`: the rental and its hold are committed; the unlock is not sent.
//! - `rental.unlocked`: the locker opened the door; the rental is not yet active.
//! - `rental.ending`: the rental is claimed for its end; the door is not opened.
//! - `rental.picked_up`: the door opened for pickup; the fee is not taken.
//! - `order.paid`: the order is charged and its stock taken; the unlock is not sent.
//! - `order.unlocked`: the locker opened the door; the order is not yet completed.

use std::sync::OnceLock;

/// Every point, for tests to walk through.
pub const POINTS: &[&str] = &[
    "rental.created",
    "rental.unlocked",
    "rental.ending",
    "rental.picked_up",
    "order.paid",
    "order.unlocked",
];

/// Whether this build has the pause points (the `test-hooks` feature).
pub const ENABLED: bool = cfg!(feature = "test-hooks");

fn configured() -> Option<&'static (String, Option<String>)> {
    if !ENABLED {
        return None;
    }
    static PAUSE: OnceLock<Option<(String, Option<String>)>> = OnceLock::new();
    PAUSE
        .get_or_init(|| {
            let point = std::env::var("LOCKER_TEST_PAUSE_AT").ok()?;
            Some((point, std::env::var("LOCKER_TEST_PAUSE_FILE").ok()))
        })
        .as_ref()
}

/// Passes `point`, or stops there forever if the test said so.
pub async fn point(name: &'static str) {
    let Some((at, file)) = configured() else {
        return;
    };
    if at != name {
        return;
    }
    tracing::warn!(point = name, "paused for a crash test");
    if let Some(file) = file {
        use std::io::Write;
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|mut f| writeln!(f, "{name}"));
        if let Err(e) = written {
            tracing::error!(error = %e, file, "cannot say where the gateway paused");
        }
    }
    std::future::pending::<()>().await;
}
