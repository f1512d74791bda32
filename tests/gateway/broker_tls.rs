//! MQTT over TLS on the embedded broker (issue 21): throwaway certificates made with rcgen, a
//! real listener, lockers connecting as rumqttc clients.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use locker_gateway::broker::RegistryAuthenticator;
use locker_gateway::broker::{BrokerError, BrokerSettings, EmbeddedBroker, Revocations};
use locker_gateway::config::MqttsListener;
use locker_gateway::device::DeviceRegistry;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, TlsConfiguration, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sqlx::PgPool;

use crate::helpers::{WAIT, free_addr};
use crate::test_broker::{Client, provision};

/// An authority that signs a server certificate for 127.0.0.1 and client certificates.
pub(crate) struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Authority {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Self { cert, key }
    }

    /// A certificate with these subject alternative names, and its key (PEM).
    pub(crate) fn issue(&self, names: Vec<SanType>) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = names;
        let key = KeyPair::generate().expect("key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    }

    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }
}

pub(crate) fn server_names() -> Vec<SanType> {
    vec![SanType::IpAddress("127.0.0.1".parse().expect("ip"))]
}

fn client_name(id: &str) -> Vec<SanType> {
    vec![SanType::DnsName(id.try_into().expect("dns name"))]
}

pub(crate) struct Files {
    dir: PathBuf,
}

impl Files {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("mqtts-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        Self { dir }
    }

    pub(crate) fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.join(name);
        // Written beside and renamed, as a certificate manager does.
        let partial = self.dir.join(format!("{name}.new"));
        std::fs::write(&partial, pem).expect("write");
        std::fs::rename(&partial, &path).expect("rename");
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct TlsBroker {
    _broker: EmbeddedBroker,
    tls: SocketAddr,
    registry: DeviceRegistry,
}

async fn start(pool: PgPool, listener: impl Fn(SocketAddr) -> MqttsListener) -> TlsBroker {
    let registry = DeviceRegistry::new(pool);
    for _ in 0..20 {
        let tls = free_addr();
        let mut settings = BrokerSettings::on(free_addr());
        settings.tls = Some(listener(tls));
        let auth = RegistryAuthenticator::new(registry.clone(), tokio::runtime::Handle::current());
        match EmbeddedBroker::start(settings, auth, Revocations::default()) {
            Ok(broker) => {
                return TlsBroker {
                    _broker: broker,
                    tls,
                    registry,
                };
            }
            Err(BrokerError::Bind { .. }) => continue,
            Err(e) => panic!("broker did not start: {e}"),
        }
    }
    panic!("no free port after 20 tries");
}

/// The broker with a server certificate of `ca` written into `files`, and locker `tls-1`.
async fn start_signed_by(
    pool: PgPool,
    ca: &Authority,
    files: &Files,
    client_ca: Option<PathBuf>,
) -> (TlsBroker, String) {
    let (server_cert, server_key) = ca.issue(server_names());
    let cert = files.write("server.pem", &server_cert);
    let key = files.write("server.key", &server_key);
    let broker = start(pool, |addr| MqttsListener {
        addr,
        cert: cert.clone(),
        key: key.clone(),
        client_ca: client_ca.clone(),
        client_cert_required: false,
    })
    .await;
    let one = provision(&broker.registry, "tls-1", 4).await;
    (broker, one.secret.mqtt_password())
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("certs")
}

/// A TLS client configuration trusting `ca`, with a client certificate if given.
fn client_tls(ca: &str, client: Option<&(String, String)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca) {
        roots.add(cert).expect("root");
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_bytes())
                .expect("key")
                .expect("a key");
            builder
                .with_client_auth_cert(certs(cert), key)
                .expect("client auth")
        }
    };
    Arc::new(config)
}

/// Connects over TLS as locker `id`; Ok once the broker answered CONNACK with success.
async fn connect_tls(
    addr: SocketAddr,
    id: &str,
    password: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<AsyncClient, String> {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_credentials(id, password);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    let (client, mut events) = AsyncClient::new(options, 16);
    let result = tokio::time::timeout(WAIT, async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    return if ack.code == rumqttc::ConnectReturnCode::Success {
                        Ok(())
                    } else {
                        Err(format!("refused: {:?}", ack.code))
                    };
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .map_err(|_| "no CONNACK in time".to_string())?;
    result?;
    // Keep the connection served while the test holds the client.
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    Ok(client)
}

#[sqlx::test]
async fn lockers_connect_over_tls_and_a_certificate_must_name_its_holder(pool: PgPool) {
    let files = Files::new();
    let ca = Authority::new("locker-test-ca");
    let client_ca = files.write("ca.pem", &ca.pem());
    let (broker, password) = start_signed_by(pool, &ca, &files, Some(client_ca)).await;
    let two = provision(&broker.registry, "tls-2", 4).await;

    // With its password alone (client certificates are optional here).
    connect_tls(broker.tls, "tls-1", &password, client_tls(&ca.pem(), None))
        .await
        .expect("a locker connects over TLS");
    // With a certificate naming it.
    let its_own = ca.issue(client_name("tls-1"));
    connect_tls(
        broker.tls,
        "tls-1",
        &password,
        client_tls(&ca.pem(), Some(&its_own)),
    )
    .await
    .expect("a certificate naming the locker");
    // Another device's certificate, with the right password: refused.
    let others = ca.issue(client_name("tls-2"));
    let refused = connect_tls(
        broker.tls,
        "tls-1",
        &password,
        client_tls(&ca.pem(), Some(&others)),
    )
    .await;
    assert!(
        refused.is_err(),
        "a certificate naming tls-2 logged in as tls-1"
    );
    // That certificate is fine for its own device.
    connect_tls(
        broker.tls,
        "tls-2",
        &two.secret.mqtt_password(),
        client_tls(&ca.pem(), Some(&others)),
    )
    .await
    .expect("tls-2 with its own certificate");
    // A certificate from another authority: the handshake fails.
    let stranger = Authority::new("someone-else").issue(client_name("tls-1"));
    let refused = connect_tls(
        broker.tls,
        "tls-1",
        &password,
        client_tls(&ca.pem(), Some(&stranger)),
    )
    .await;
    assert!(refused.is_err(), "a certificate of an unknown authority");
    // Plain MQTT on the TLS port: no CONNACK.
    let plain = Client::connect(broker.tls, "tls-1", "tls-1", &password, None).await;
    assert!(plain.is_err(), "plaintext on the TLS port");
}

#[sqlx::test]
async fn a_client_that_stalls_its_handshake_delays_nobody(pool: PgPool) {
    let files = Files::new();
    let ca = Authority::new("locker-test-ca");
    let (broker, password) = start_signed_by(pool, &ca, &files, None).await;
    // Ten clients open a connection and never say a word, a half-sent ClientHello among them.
    let mut stalled = Vec::new();
    for i in 0..10 {
        let mut socket = tokio::net::TcpStream::connect(broker.tls)
            .await
            .expect("tcp");
        if i == 0 {
            use tokio::io::AsyncWriteExt;
            socket
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
                .await
                .expect("partial hello");
        }
        stalled.push(socket);
    }
    // A locker still gets in, while they hang (upstream's listener handshook in its accept loop,
    // with no time limit: it would wait for them forever).
    connect_tls(broker.tls, "tls-1", &password, client_tls(&ca.pem(), None))
        .await
        .expect("a locker connects past stalled handshakes");
    drop(stalled);
}

#[sqlx::test]
async fn a_renewed_certificate_is_used_without_a_restart(pool: PgPool) {
    let files = Files::new();
    let old_ca = Authority::new("old-ca");
    let (broker, password) = start_signed_by(pool, &old_ca, &files, None).await;
    let new_ca = Authority::new("new-ca");
    assert!(
        connect_tls(
            broker.tls,
            "tls-1",
            &password,
            client_tls(&new_ca.pem(), None)
        )
        .await
        .is_err(),
        "the new authority does not know the old certificate"
    );
    // Renewed: a certificate of the new authority, written in place.
    let (renewed_cert, renewed_key) = new_ca.issue(server_names());
    write_later(&files, &renewed_cert, &renewed_key);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let attempt = connect_tls(
            broker.tls,
            "tls-1",
            &password,
            client_tls(&new_ca.pem(), None),
        )
        .await;
        if attempt.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate was not taken: {attempt:?}",
            attempt = attempt.err()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A broken file afterwards: the last good certificate stays in use.
    files.write("server.pem", "not a certificate");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    connect_tls(
        broker.tls,
        "tls-1",
        &password,
        client_tls(&new_ca.pem(), None),
    )
    .await
    .expect("the last good certificate still serves");
}

/// Writes the renewed pair with a modification time surely after the first one's.
fn write_later(files: &Files, cert: &str, key: &str) {
    std::thread::sleep(Duration::from_millis(20));
    files.write("server.key", key);
    files.write("server.pem", cert);
}
