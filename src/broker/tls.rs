//! MQTT over TLS on the embedded broker: rustls (the *ring* provider) in front of a listener of
//! the patched rumqttd, through its stream acceptor (`vendor/rumqttd/PATCHES.md`), so that:
//! - the certificate and key are loaded once, and again when their files change (checked at most
//!   once a second, on a connection's arrival; a new file that does not load is logged and
//!   counted, and the last good one stays in use), without a restart;
//! - each handshake runs in its connection's own task, within the connect timeout, never in the
//!   accept loop: a client that stalls its handshake delays nobody;
//! - a locker may present a client certificate signed by the configured authority (or must, when
//!   required); a certificate must name, as a DNS subject alternative name, the client id its
//!   holder logs in with, or the connection is closed before the broker registers it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rumqttd::{Accepted, ClientIdCheck, StreamAcceptor};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::config::MqttsListener;

/// How often, at most, the files are looked at for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// Why the TLS listener cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("MQTT over TLS: {0}")]
pub struct ListenerTlsError(String);

/// The TLS settings of the listener, reloaded when its files change.
pub struct ListenerTls {
    settings: MqttsListener,
    current: Mutex<Loaded>,
}

struct Loaded {
    config: Arc<ServerConfig>,
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
}

fn read(path: &Path) -> Result<Vec<u8>, ListenerTlsError> {
    std::fs::read(path)
        .map_err(|e| ListenerTlsError(format!("cannot read {}: {e}", path.display())))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ListenerTlsError> {
    let certs = crate::mqtt::tls::pem_certificates(&read(path)?)
        .map_err(|e| ListenerTlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ListenerTlsError(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

impl ListenerTls {
    /// Loads the certificate, key and client authority; fails naming the file that does not.
    pub fn load(settings: MqttsListener) -> Result<Arc<Self>, ListenerTlsError> {
        let config = Arc::new(server_config(&settings)?);
        let stamps = stamps(&settings);
        Ok(Arc::new(Self {
            settings,
            current: Mutex::new(Loaded {
                config,
                stamps,
                checked: Instant::now(),
            }),
        }))
    }

    /// The configuration to accept a connection with: loaded again first if a file changed.
    fn current(&self) -> Arc<ServerConfig> {
        let mut loaded = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.checked.elapsed() >= RELOAD_CHECK {
            loaded.checked = Instant::now();
            let now = stamps(&self.settings);
            if now != loaded.stamps {
                loaded.stamps = now;
                match server_config(&self.settings) {
                    Ok(config) => {
                        loaded.config = Arc::new(config);
                        metrics::counter!("locker_mqtts_reloads_total", "outcome" => "loaded")
                            .increment(1);
                        tracing::info!("MQTT over TLS: certificate files loaded again");
                    }
                    Err(e) => {
                        metrics::counter!("locker_mqtts_reloads_total", "outcome" => "failed")
                            .increment(1);
                        tracing::error!(error = %e, "MQTT over TLS: the changed files do not load; the previous certificate stays in use");
                    }
                }
            }
        }
        loaded.config.clone()
    }

    /// The acceptor for the broker's listener: a TLS handshake in the connection's task.
    pub fn acceptor(self: &Arc<Self>) -> StreamAcceptor {
        let tls = self.clone();
        Arc::new(move |tcp| {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            Box::pin(async move {
                let stream = acceptor.accept(tcp).await.inspect_err(|e| {
                    metrics::counter!("locker_mqtts_handshakes_failed_total").increment(1);
                    tracing::info!(error = %e, "MQTT over TLS: handshake failed");
                })?;
                let client_id_check = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| names_client(cert.clone().into_owned()));
                Ok(Accepted {
                    stream: Box::new(stream),
                    client_id_check,
                })
            })
        })
    }
}

/// The check that a client certificate names the client id logging in.
fn names_client(cert: CertificateDer<'static>) -> ClientIdCheck {
    Box::new(move |client_id: &str| {
        let named = ServerName::try_from(client_id).is_ok_and(|name| {
            webpki::EndEntityCert::try_from(&cert)
                .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
        });
        if !named {
            metrics::counter!("locker_mqtts_certificate_refused_total").increment(1);
            tracing::warn!(
                client_id,
                "MQTT over TLS: the client certificate names another client"
            );
        }
        named
    })
}

fn stamps(settings: &MqttsListener) -> Vec<Option<SystemTime>> {
    let mut files: Vec<&PathBuf> = vec![&settings.cert, &settings.key];
    files.extend(settings.client_ca.iter());
    files
        .into_iter()
        .map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .collect()
}

fn server_config(settings: &MqttsListener) -> Result<ServerConfig, ListenerTlsError> {
    let chain = certificates(&settings.cert)?;
    let key_pem = read(&settings.key)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| ListenerTlsError(format!("{}: {e}", settings.key.display())))?
        .ok_or_else(|| {
            ListenerTlsError(format!("{}: no private key in it", settings.key.display()))
        })?;
    let provider = crate::mqtt::tls::provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenerTlsError(e.to_string()))?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| ListenerTlsError(format!("{}: {e}", ca.display())))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            let verifier = if settings.client_cert_required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| ListenerTlsError(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| ListenerTlsError(format!("{}: {e}", settings.cert.display())))
}
