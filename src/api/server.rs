//! The HTTP server: an accept loop of our own over hyper, because `axum::serve` can neither time
//! out a slow client nor bound connections. A request head must arrive within
//! [`HttpServer::header_timeout`] (that also closes a keep-alive connection left idle that long),
//! a body within [`HttpServer::body_timeout`] (a 408 problem document, see
//! [`super::json::Json`]), and at most [`HttpServer::max_connections`] are open at once (the
//! next waits in the kernel's backlog until one closes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::config::HttpServer;

/// How long a request body may take to arrive, as a request extension (read by the JSON
/// extractor).
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// How the server stops: `stop` ends accepting and lets the requests in flight finish;
/// `cut_off` (when they took too long) drops the connections still open, so that no request
/// runs on once the gateway's pools are closed.
#[derive(Debug, Clone, Default)]
pub struct Stopping {
    /// Stop accepting; finish what is in flight.
    pub stop: CancellationToken,
    /// Drop what is still in flight.
    pub cut_off: CancellationToken,
}

/// Serves `app` on `listener` until `stopping.stop`, then lets requests in flight finish until
/// `stopping.cut_off`; `tasks` ends when no connection is left. Returns the bound address.
pub fn serve(
    listener: TcpListener,
    app: axum::Router,
    settings: HttpServer,
    tasks: &TaskTracker,
    stopping: Stopping,
) -> std::io::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    tasks.spawn(accept_loop(listener, app, settings, stopping));
    tracing::info!(%addr, "HTTP API listening");
    Ok(addr)
}

async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    settings: HttpServer,
    stopping: Stopping,
) {
    let shutdown = stopping.stop;
    let mut connections = tokio::task::JoinSet::new();
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was taken: wait a
                    // little rather than spin.
                    metrics::counter!("locker_http_accept_errors_total").increment(1);
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = app.clone();
        let body_timeout = BodyTimeout(settings.body_timeout);
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(body_timeout);
            let mut router = router.clone();
            tower_service::Service::call(&mut router, request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "HTTP connection ended with an error");
            }
            drop(permit);
        });
        // Forget the connections that have ended.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = stopping.cut_off.cancelled() => {
            tracing::warn!(connections = connections.len(), "HTTP connections cut off");
            connections.abort_all();
        }
    }
    while connections.join_next().await.is_some() {}
}
