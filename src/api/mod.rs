//! The HTTP API (axum): versioned under `/v1`, JSON in and out, every error an RFC 9457 problem
//! document, the OpenAPI document generated from the handlers at `/v1/openapi.json`.
//!
//! The api parses and authenticates; the services decide. Each area has its own router, merged
//! here with one shared state.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod accounts;
pub mod admin_lists;
pub mod alarms;
pub mod amount;
pub mod asyncapi;
mod asyncapi_bodies;
pub mod audit;
pub mod auth;
pub mod broker_hooks;
pub mod bulk;
pub mod campaigns;
pub mod console;
pub mod conventions;
pub mod device_import;
pub mod device_settings;
pub mod devices;
pub mod door_service;
pub mod error;
pub mod firmware;
pub mod fleet_limits;
pub mod gateways;
pub mod health;
pub mod idempotency;
pub mod json;
pub mod limits;
pub mod metric_help;
pub mod metrics;
pub mod order_admin;
pub mod order_list;
pub mod orders;
pub mod overview;
pub mod plans;
pub mod problems;
pub mod products;
pub mod rental_admin;
pub mod rental_bill;
pub mod rental_list;
pub mod rentals;
pub mod server;
pub mod wallets;
pub mod webhooks;
pub mod workers;

pub use error::{ApiError, FieldError, Problem};
pub use json::Json;
pub use server::serve;

use crate::broker::ListenerHealth;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct ApiState(Arc<Parts>);

/// The parts of [`ApiState`].
pub struct Parts {
    /// Where the gateway's state lives.
    pub storage: crate::storage::Storage,
    /// Redis, if configured.
    pub redis: Option<redis::aio::ConnectionManager>,
    /// The embedded broker's listeners (none with an external broker).
    pub broker_listeners: Option<ListenerHealth>,
    /// Whether the gateway's MQTT subscription is in place.
    pub mqtt_ready: tokio::sync::watch::Receiver<bool>,
    /// This gateway's lease (its id; `/readyz` checks it is held).
    pub lease: crate::lease::Lease,
    /// Set when the gateway starts stopping: `/readyz` turns 503.
    pub draining: Arc<AtomicBool>,
    /// Accounts and tokens.
    pub accounts: crate::account::Accounts,
    /// The device registry.
    pub registry: crate::device::DeviceRegistry,
    /// Commands to lockers.
    pub commands: crate::command::CommandService,
    /// Largest request body (bytes).
    pub body_limit: usize,
    /// Rate limits per client IP and per user.
    pub limits: Arc<limits::RateLimits>,
    /// The same limits across the fleet, in Redis (fleet mode).
    pub fleet_limits: Option<fleet_limits::FleetLimits>,
    /// Wallets.
    pub wallets: crate::wallet::Wallets,
    /// Rentals.
    pub rentals: crate::rental::Rentals,
    /// Vending orders.
    pub orders: crate::order::Orders,
    /// Products, stock, availability.
    pub catalog: crate::order::Catalog,
    /// Cache-aside for read-mostly data.
    pub cache: crate::cache::Cache,
    /// The payment provider's webhook secret, if payments are configured.
    pub payment_webhook_secret: Option<String>,
    /// The hooks a broker asks over HTTP (`None`: off).
    pub broker_hooks: Option<broker_hooks::BrokerHooks>,
    /// Where "today" begins (`LOCKER_TIME_ZONE`).
    pub time_zone: chrono_tz::Tz,
    /// The vendors' firmware keys, the largest image.
    pub firmware: crate::config::FirmwareSettings,
    /// Jams in a row after which a door is out of service (`LOCKER_JAMS_OUT_OF_SERVICE`).
    pub jams_out_of_service: i32,
    /// What secrets the gateway must read back are sealed with (`LOCKER_SECRETS_KEY`).
    pub secrets_key: Option<crate::config::SecretsKey>,
}

impl std::ops::Deref for ApiState {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl ApiState {
    /// The state for `parts`.
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }

    /// Whether the gateway is stopping.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "locker-gateway",
        description = "Device gateway for smart lockers. Errors are RFC 9457 problem documents \
                       (application/problem+json) with a stable `code`."
    ),
    components(schemas(Problem, FieldError))
)]
struct ApiDoc;

/// The routes and their OpenAPI document, from one source: a handler is routed only through
/// `routes!`, which documents it.
pub fn routes() -> (axum::Router<ApiState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::livez))
        .routes(routes!(health::readyz))
        .routes(routes!(accounts::register))
        .routes(routes!(accounts::log_in))
        .routes(routes!(accounts::me, accounts::delete_me))
        .routes(routes!(accounts::change_password))
        .routes(routes!(accounts::log_out))
        .routes(routes!(accounts::find))
        .routes(routes!(accounts::set_role))
        .routes(routes!(alarms::list))
        .routes(routes!(overview::overview))
        .routes(routes!(door_service::back_in_service))
        .routes(routes!(device_import::import))
        .routes(routes!(alarms::acknowledge))
        .routes(routes!(alarms::resolve))
        .routes(routes!(devices::provision, devices::list))
        .routes(routes!(devices::get))
        .routes(routes!(devices::revoke))
        .routes(routes!(devices::rotate))
        .routes(routes!(devices::commands))
        .routes(routes!(devices::cancel))
        .routes(routes!(devices::unlock))
        .routes(routes!(device_settings::configure))
        .routes(routes!(bulk::unlock))
        .routes(routes!(bulk::configure))
        .routes(routes!(bulk::revoke))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::replay))
        .routes(routes!(audit::list))
        .routes(routes!(wallets::mine))
        .routes(routes!(wallets::ledger))
        .routes(routes!(wallets::top_up))
        .routes(routes!(wallets::webhook))
        .routes(routes!(plans::publish, plans::list))
        .routes(routes!(rentals::start, rental_list::list))
        .routes(routes!(rentals::get))
        .routes(routes!(rentals::reopen))
        .routes(routes!(rentals::end))
        .routes(routes!(rental_admin::admin_end))
        .routes(routes!(rental_admin::admin_cancel))
        .routes(routes!(rental_admin::admin_refund))
        .routes(routes!(products::create, products::list))
        .routes(routes!(products::update))
        .routes(routes!(products::set_stock))
        .routes(routes!(products::stock))
        .routes(routes!(products::availability))
        .routes(routes!(orders::place, order_list::list))
        .routes(routes!(orders::get))
        .routes(routes!(workers::stuck))
        .routes(routes!(gateways::list))
        .routes(routes!(broker_hooks::authenticate))
        .routes(routes!(broker_hooks::authorize))
        .routes(routes!(admin_lists::rentals))
        .routes(routes!(admin_lists::orders))
        .routes(routes!(order_admin::refund))
        .routes(routes!(firmware::upload, firmware::list))
        .routes(routes!(firmware::get))
        .routes(routes!(firmware::device_history))
        .routes(routes!(campaigns::create, campaigns::list))
        .routes(routes!(campaigns::get))
        .routes(routes!(campaigns::pause))
        .routes(routes!(campaigns::resume))
        .routes(routes!(campaigns::cancel))
        .split_for_parts();
    utoipa::Modify::modify(&conventions::Conventions, &mut openapi);
    (router, openapi)
}

/// The complete application: routes, `/v1/openapi.json` and `/v1/asyncapi.json`, the API
/// explorer at `/docs`, problem documents for unknown routes and methods, the body size limit.
pub fn app(state: ApiState) -> axum::Router {
    let body_limit = state.body_limit;
    let (router, mut openapi) = routes();
    if let Some(components) = openapi.components.as_mut() {
        // The amount grammar of the configured currency, not the two-decimal default.
        let pattern = state.wallets.currency().pattern();
        components
            .schemas
            .insert("Amount".to_owned(), amount::schema(&pattern).into());
    }
    let openapi = Arc::new(openapi);
    router
        .route(
            "/v1/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .route(
            "/v1/asyncapi.json",
            get(|| async { axum::Json(asyncapi::document()) }),
        )
        .merge(console::routes())
        // The API explorer: Swagger UI (bundled in the binary) reading the document above.
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::from("/v1/openapi.json")),
        )
        .route("/metrics", get(metrics::scrape))
        .route("/problems/{code}", get(problems::explain))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::per_ip,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
