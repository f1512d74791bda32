//! How a configuration shows itself: `Debug` with secrets masked, and the effective configuration
//! the gateway logs at start.

use super::BrokerRights;
use super::Config;

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(redact_url);
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("mqtt_addr", &self.mqtt_addr)
            .field("mqtt5_addr", &self.mqtt5_addr)
            .field("mqtts", &self.mqtts)
            .field("external_broker", &self.external_broker)
            .field("database_url", &url(&self.database_url))
            .field("redis_url", &url(&self.redis_url))
            .field("heartbeat", &self.heartbeat)
            .field("outbox_poll", &self.outbox_poll)
            .field("rollout_tick", &self.rollout_tick)
            .field("command_deadline", &self.command_deadline)
            .field("query_again", &self.query_again)
            .field("surface_unknown", &self.surface_unknown)
            .field("commands_in_flight", &self.commands_in_flight)
            .field("http_body_limit", &self.http_body_limit)
            .field("token_ttl", &self.token_ttl)
            .field("password_cost", &self.password_cost)
            .field("rate_limits", &self.rate_limits)
            .field("log_format", &self.log_format)
            .field("currency", &self.currency)
            .field("redis_prefix", &self.redis_prefix)
            .field("rentals", &self.rentals)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("cache_ttl", &self.cache_ttl)
            .field("serial_buses", &self.serial_buses)
            .field("gateway_id", &self.gateway_id)
            .field("shared_group", &self.shared_group)
            .field("broker_rights", &self.broker_rights)
            .field("secrets_key", &self.secrets_key)
            .field("webhooks", &self.webhooks)
            .field("time_zone", &self.time_zone)
            .field("firmware", &self.firmware)
            .field(
                "broker_hook_secret",
                &self.broker_hook_secret.as_ref().map(|_| "***"),
            )
            .field(
                "payment_webhook_secret",
                &self.payment_webhook_secret.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map_or("(not set)".to_owned(), redact_url);
        writeln!(f, "  http api      {}", self.http_addr)?;
        match &self.external_broker {
            Some(broker) => writeln!(
                f,
                "  mqtt broker   external, {broker:?}; lockers' rights kept by {}",
                match self.broker_rights {
                    BrokerRights::Operator => "the operator (password and ACL files)",
                    BrokerRights::Dynsec => "the gateways (dynamic security)",
                }
            )?,
            None => {
                writeln!(
                    f,
                    "  mqtt broker   {} (embedded, MQTT 3.1.1)",
                    self.mqtt_addr
                )?;
                if let Some(addr) = self.mqtt5_addr {
                    writeln!(f, "  mqtt 5        {addr}")?;
                }
                if let Some(tls) = &self.mqtts {
                    let clients = match (&tls.client_ca, tls.client_cert_required) {
                        (None, _) => "no client certificates",
                        (Some(_), false) => "client certificates optional",
                        (Some(_), true) => "client certificates required",
                    };
                    writeln!(f, "  mqtt over tls {} ({clients})", tls.addr)?;
                }
            }
        }
        let mode = match self.mode() {
            Ok(mode) => mode.as_str(),
            Err(_) => "(not valid)",
        };
        writeln!(f, "  mode          {mode}")?;
        writeln!(f, "  gateway id    {}", self.gateway_id)?;
        if self.external_broker.is_some() {
            writeln!(f, "  shared group  $share/{}/…", self.shared_group)?;
        }
        if mode == "edge" {
            writeln!(f, "  data          {}", self.sqlite_path().display())?;
        }
        writeln!(f, "  postgresql    {}", url(&self.database_url))?;
        writeln!(f, "  redis         {}", url(&self.redis_url))?;
        writeln!(f, "  heartbeat     {} s", self.heartbeat.as_secs())?;
        writeln!(
            f,
            "  commands      deadline {} ms, at most {} in flight, asked again after {} s, surfaced after {} s",
            self.command_deadline.as_millis(),
            self.commands_in_flight,
            self.query_again.as_secs(),
            self.surface_unknown.as_secs()
        )?;
        writeln!(f, "  outbox poll   {} ms", self.outbox_poll.as_millis())?;
        writeln!(f, "  rollout tick  {} ms", self.rollout_tick.as_millis())?;
        writeln!(
            f,
            "  http          body limit {} bytes, tokens valid {} s",
            self.http_body_limit,
            self.token_ttl.as_secs()
        )?;
        writeln!(
            f,
            "  rate limits   {}/min per IP, {}/min per user, trusted proxies {:?}",
            self.rate_limits.per_ip_per_minute,
            self.rate_limits.per_user_per_minute,
            self.rate_limits.trusted_proxies
        )?;
        writeln!(
            f,
            "  passwords     argon2id {} KiB, {} passes, {} lanes",
            self.password_cost.memory_kib,
            self.password_cost.iterations,
            self.password_cost.parallelism
        )?;
        writeln!(
            f,
            "  money         {} ({} decimals), at most {} an amount and {} a balance, payment webhook {}",
            self.currency.code,
            self.currency.exponent,
            self.currency.from_minor(self.currency.max_amount),
            self.currency.from_minor(self.currency.max_balance),
            if self.payment_webhook_secret.is_some() {
                "configured (secret masked)"
            } else {
                "off"
            }
        )?;
        write!(f, "  logs          {:?}", self.log_format)
    }
}

/// The URL with any password replaced by `***`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}
