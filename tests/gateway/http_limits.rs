//! Slow and idle HTTP clients: a request head or body that does not arrive in time, and an idle
//! keep-alive connection, are closed; `/livez` keeps answering meanwhile.

use std::time::Duration;

use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::spawn_app_with;

/// Reads until the server closes the connection (whatever it said before); `false` if it is still
/// open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[sqlx::test]
async fn slow_and_idle_connections_are_closed_in_time_while_livez_answers(pool: PgPool) {
    let app = spawn_app_with(pool, |config| {
        config.http_server.header_timeout = Duration::from_secs(1);
        config.http_server.body_timeout = Duration::from_secs(1);
        config.rate_limits.per_ip_per_minute = 100_000;
    })
    .await;
    let mut sockets = Vec::new();
    for n in 0..300 {
        let mut stream = TcpStream::connect(app.app.http_addr())
            .await
            .expect("connect");
        match n % 3 {
            0 => {} // connected, says nothing
            1 => stream
                .write_all(b"GET /livez HTTP/1.1\r\nHost: gateway\r\n")
                .await
                .expect("half a head"),
            _ => stream
                .write_all(
                    b"POST /v1/sessions HTTP/1.1\r\nHost: gateway\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"email\"",
                )
                .await
                .expect("a head and part of a body"),
        }
        sockets.push(stream);
    }
    // A keep-alive connection that asked once and then went quiet.
    let mut keep_alive = TcpStream::connect(app.app.http_addr())
        .await
        .expect("connect");
    keep_alive
        .write_all(b"GET /livez HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .expect("request");
    let mut first = [0u8; 12];
    keep_alive.read_exact(&mut first).await.expect("answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    // Meanwhile the gateway answers (a client that keeps no idle connection of its own: the
    // server closes idle ones, which is the point).
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let live = fresh.get(app.url("/livez")).send().await.expect("sent");
    assert_eq!(live.status(), 200);
    // Every one of them is closed within a few timeouts.
    let mut still_open = 0;
    for stream in sockets.iter_mut() {
        if !closed_within(stream, Duration::from_secs(5)).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "connections the server kept");
    assert!(
        closed_within(&mut keep_alive, Duration::from_secs(5)).await,
        "an idle keep-alive connection is closed"
    );
    let live = fresh.get(app.url("/livez")).send().await.expect("sent");
    assert_eq!(live.status(), 200);
}

#[sqlx::test]
async fn a_body_that_does_not_arrive_in_time_is_a_408_problem(pool: PgPool) {
    let app = spawn_app_with(pool, |config| {
        config.http_server.body_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(app.app.http_addr())
        .await
        .expect("connect");
    stream
        .write_all(
            b"POST /v1/sessions HTTP/1.1\r\nHost: gateway\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        )
        .await
        .expect("sent");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
}
