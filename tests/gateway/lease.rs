//! One gateway per database until several can share one: a second gateway on the same database
//! refuses to start and names the first; one killed with SIGKILL blocks its successor no longer
//! than its lease. Real processes.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::helpers::free_addr;
use crate::process::{GatewayProcess, database_url};

/// Runs a second `serve` on the database of `pool` until it exits (or 20 s): its exit status and
/// what it said.
fn second_gateway(pool: &PgPool) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_locker-gateway"))
        .arg("serve")
        .env("DATABASE_URL", database_url(pool))
        .env("REDIS_URL", crate::helpers::redis_url())
        .env(
            "LOCKER_REDIS_PREFIX",
            format!("test-{}:", uuid::Uuid::new_v4()),
        )
        .env("LOCKER_MQTT_ADDR", free_addr().to_string())
        .env("LOCKER_HTTP_ADDR", free_addr().to_string())
        .env("LOCKER_GATEWAY_LEASE_SECS", "2")
        .env("LOCKER_LOG_FORMAT", "text")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gateway binary starts");
    let started = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let output = child.wait_with_output().expect("output");
            return (
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            );
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            return (None, String::from_utf8_lossy(&output.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[sqlx::test]
async fn a_second_gateway_on_one_database_refuses_and_a_killed_one_is_succeeded(pool: PgPool) {
    let mut first = GatewayProcess::start(&pool, None).await;
    let refused_pool = pool.clone();
    let (status, said) = tokio::task::spawn_blocking(move || second_gateway(&refused_pool))
        .await
        .expect("joined");
    assert_ne!(status, Some(0), "the second gateway must not run: {said}");
    assert!(status.is_some(), "the second gateway kept running: {said}");
    assert!(
        said.contains("another gateway is running on this database")
            && said.contains(&format!("http {}", first.http)),
        "names the other gateway and says why: {said}"
    );
    // The first one is killed without a chance to give its lease up: a successor starts within
    // the lease (2 s here) and a margin.
    first.kill();
    let killed_at = Instant::now();
    let successor = GatewayProcess::start(&pool, None).await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(8),
        "the successor waited {:?}",
        killed_at.elapsed()
    );
    drop(successor);
}

#[sqlx::test]
async fn a_gateway_whose_lease_was_taken_stops_by_itself(pool: PgPool) {
    let app = crate::helpers::spawn_app(pool.clone()).await;
    // Another gateway took the lease (this one could not renew it in time).
    sqlx::query("UPDATE gateways SET process = 'another gateway'")
        .execute(&pool)
        .await
        .expect("taken");
    let run = app.app.run_until_stopped(std::future::pending());
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the gateway stopped by itself");
}
