//! What every test binary needs: how long to wait, a free port, the shared Redis, an HTTP
//! client, and a wait for a condition (never a fixed sleep).

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// The longest a test waits for something that should happen (a ceiling, not a sleep: loaded CI
/// machines with every test running in parallel can be slow).
pub const WAIT: Duration = Duration::from_secs(15);

/// A port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr")
}

/// The Redis the tests use (`REDIS_URL`, as `scripts/test.sh` sets it).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client")
}

/// Waits until `check` holds, polling.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}
