//! The gateway's clients of an external broker over TLS (`mqtts://`): rustls with the *ring*
//! provider (no C toolchain beyond a compiler), the configured authorities (or the system's
//! store), and a client certificate where the broker wants one.

use std::sync::Arc;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ExternalBroker;
use crate::config::BrokerTls;

/// Why TLS to the broker cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("TLS to the MQTT broker: {0}")]
pub struct TlsError(String);

/// The certificates in a PEM text (none if it holds none).
pub fn pem_certificates(pem: &[u8]) -> std::io::Result<Vec<CertificateDer<'static>>> {
    rustls_pemfile::certs(&mut &pem[..]).collect()
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    pem_certificates(pem).map_err(|e| TlsError(format!("a certificate does not parse: {e}")))
}

/// The crypto provider of every TLS connection of the gateway: *ring*, which has no
/// post-quantum key exchange (hence rustls's deprecation note) but builds with a C compiler
/// alone; aws-lc-rs, which has one, needs cmake.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `tls`.
pub fn client_config(tls: &BrokerTls) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca {
        Some(pem) => {
            for cert in certificates(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError(format!("a CA certificate is not usable: {e}")))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TlsError(
                    "no CA: set LOCKER_MQTT_CA_FILE (the system's store is empty)".into(),
                ));
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_root_certificates(roots);
    match &tls.client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
                .map_err(|e| TlsError(format!("the client key does not parse: {e}")))?
                .ok_or_else(|| TlsError("no private key in the client key file".into()))?;
            builder
                .with_client_auth_cert(certificates(cert)?, key)
                .map_err(|e| TlsError(format!("the client certificate: {e}")))
        }
    }
}

/// Options of a client `client_id` of `broker`: its login, and TLS for `mqtts://`.
pub fn options(broker: &ExternalBroker, client_id: String) -> Result<MqttOptions, TlsError> {
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    if let Some((user, pass)) = &broker.credentials {
        options.set_credentials(user.clone(), pass.clone());
    }
    if let Some(tls) = &broker.tls {
        let config = client_config(tls)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(config),
        )));
    }
    Ok(options)
}
