//! The broker's login check against the device registry.

use std::sync::Arc;

use firmware_protocol::DeviceId;

use super::{AuthFuture, Authenticator};
use crate::device::DeviceRegistry;

/// Admits a locker only with a known, unrevoked device id as username, the device's secret as
/// password, and the same device id as client id. The query runs on the gateway's runtime (the
/// broker calls from its own thread).
#[derive(Debug, Clone)]
pub struct RegistryAuthenticator {
    registry: DeviceRegistry,
    runtime: tokio::runtime::Handle,
}

impl RegistryAuthenticator {
    /// An authenticator that runs its queries on `runtime`.
    pub fn new(registry: DeviceRegistry, runtime: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(Self { registry, runtime })
    }
}

/// The outcome of one login, as counted in `locker_broker_logins_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    /// Admitted.
    Admitted,
    /// Client id and username differ.
    ClientIdMismatch,
    /// The username is not a device id, or no such device.
    UnknownDevice,
    /// The device is revoked.
    Revoked,
    /// Wrong password.
    BadPassword,
    /// The registry could not be asked: refused (fail closed).
    Unavailable,
}

impl LoginResult {
    /// A stable label.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Admitted => "admitted",
            Self::ClientIdMismatch => "client_id_mismatch",
            Self::UnknownDevice => "unknown_device",
            Self::Revoked => "revoked",
            Self::BadPassword => "bad_password",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Decides one login.
pub async fn check_login(
    registry: &DeviceRegistry,
    client_id: &str,
    username: &str,
    password: &str,
) -> LoginResult {
    if client_id != username {
        return LoginResult::ClientIdMismatch;
    }
    let Some(device) = DeviceId::new(username) else {
        return LoginResult::UnknownDevice;
    };
    let credentials = match registry.credentials(&device).await {
        Ok(Some(credentials)) => credentials,
        Ok(None) => return LoginResult::UnknownDevice,
        Err(e) => {
            tracing::error!(error = %e, %device, "device registry unavailable for a login");
            return LoginResult::Unavailable;
        }
    };
    if credentials.revoked {
        return LoginResult::Revoked;
    }
    if !credentials.admits(password.as_bytes()) {
        return LoginResult::BadPassword;
    }
    // Logging in with the new secret ends a rotation's grace period.
    if credentials.previous.is_some()
        && credentials.current.matches_password(password.as_bytes())
        && let Err(e) = registry.retire_previous_secret(device).await
    {
        tracing::warn!(error = %e, %device, "could not retire the previous secret");
    }
    LoginResult::Admitted
}

impl Authenticator for RegistryAuthenticator {
    fn admit(&self, client_id: String, username: String, password: String) -> AuthFuture {
        let registry = self.registry.clone();
        let task = self.runtime.spawn(async move {
            let result = check_login(&registry, &client_id, &username, &password).await;
            metrics::counter!("locker_broker_logins_total", "result" => result.kind()).increment(1);
            if result != LoginResult::Admitted {
                tracing::warn!(client_id = %client_id.escape_debug(), result = result.kind(), "MQTT login refused");
            }
            result == LoginResult::Admitted
        });
        Box::pin(async move { task.await.unwrap_or(false) })
    }
}
