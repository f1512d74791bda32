//! `GET /metrics`: Prometheus text format. Counters and histograms are recorded where things
//! happen (`metrics` macros); gauges that the database knows (lockers online, outbox lag, pool
//! use) are read when scraped. Names carry units and `_total`; no label names a user.
//!
//! The endpoint has no login: serve it to your monitoring network only (a reverse proxy rule),
//! like `/livez` and `/readyz`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::ApiState;
use super::error::ApiError;
use crate::storage::on_pool;

/// Latency buckets, seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();

fn process() -> &'static metrics_process::Collector {
    PROCESS.get_or_init(metrics_process::Collector::default)
}

/// The process's Prometheus recorder, installed on first use; `None` if another recorder was
/// installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    super::metric_help::describe_all(process());
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Counts each routed request by method, route template and status, with its latency.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("locker_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("locker_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The scrape.
pub async fn scrape(State(state): State<ApiState>) -> Response {
    let Some(handle) = handle() else {
        return ApiError::Unavailable("no metrics recorder in this process".into()).into_response();
    };
    process().collect();
    const ONLINE: &str = "SELECT count(*) FROM devices WHERE online";
    const OLDEST: &str = "SELECT min(occurred_at) FROM outbox WHERE published_at IS NULL";
    let read: Result<(i64, Option<chrono::DateTime<chrono::Utc>>), sqlx::Error> =
        on_pool!(&state.storage, |pool| async {
            let online = sqlx::query_scalar(ONLINE).fetch_one(pool).await?;
            let oldest = sqlx::query_scalar(OLDEST).fetch_one(pool).await?;
            Ok((online, oldest))
        }
        .await);
    if let Ok((online, oldest)) = read {
        metrics::gauge!("locker_lockers_online").set(online as f64);
        let lag = oldest.map_or(0.0, |at| {
            (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        metrics::gauge!("locker_outbox_lag_seconds").set(lag);
    }
    let (size, idle, most) = state.storage.connections();
    let (size, idle) = (f64::from(size), idle as f64);
    metrics::gauge!("locker_db_pool_connections", "state" => "in_use").set(size - idle);
    metrics::gauge!("locker_db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("locker_db_pool_max_connections").set(f64::from(most));
    metrics::gauge!("locker_commands_in_flight").set(state.commands.in_flight() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
