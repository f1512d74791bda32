//! The gateway's link to an external broker over TLS (`mqtts://`), with a CA file and a client
//! certificate, as a broker that wants one (AWS IoT Core) requires: certificates made by the
//! test (`openssl`), a Mosquitto of the test's own with a TLS listener that requires a client
//! certificate (and a plain one for the simulated lockers, whose TLS is the broker's matter).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use locker_gateway::app::{App, StartError};
use locker_gateway::command::DoorResult;
use locker_gateway::config::BrokerTls;
use locker_gateway::mqtt::ExternalBroker;
use sqlx::PgPool;

use crate::fleet::{online_locker, own_pool};
use crate::helpers::{WAIT, device, free_addr, test_config};
use crate::mosquitto::{Mosquitto, provision};
use crate::mosquitto_server::{GATEWAY_PASSWORD, GATEWAY_USER};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs (Debian: apt-get install openssl)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`; a second,
/// unrelated CA (`other-ca.crt`).
fn certificates(dir: &Path) {
    std::fs::create_dir_all(dir).expect("dir");
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let (keyfile, certfile) = (format!("{ca}.key"), format!("{ca}.crt"));
        let mut args = vec!["req", "-x509"];
        args.extend(key);
        args.extend([
            "-keyout",
            &keyfile,
            "-out",
            &certfile,
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ]);
        openssl(dir, &args);
    }
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .expect("ext");
    for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=gateway")] {
        let (keyfile, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let mut args = vec!["req"];
        args.extend(key);
        args.extend(["-keyout", &keyfile, "-out", &csr, "-subj", subject]);
        openssl(dir, &args);
        let mut sign = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
        ];
        let extensions = format!("{name}.ext");
        sign.extend(["-extfile", &extensions]);
        openssl(dir, &sign);
    }
    // Mosquitto started as root reads its files as the user mosquitto.
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let _ = std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644));
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
}

fn pem(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).expect("pem")
}

async fn gateway(pool: &PgPool, broker: ExternalBroker) -> Result<App, StartError> {
    let config = locker_gateway::Config {
        external_broker: Some(broker),
        ..test_config(free_addr())
    };
    App::with_pool(&config, own_pool(pool).await).await
}

#[sqlx::test]
async fn the_gateway_speaks_to_its_broker_over_tls_with_a_client_certificate(pool: PgPool) {
    let dir: PathBuf = std::env::temp_dir().join(format!("tls-test-{}", uuid::Uuid::new_v4()));
    certificates(&dir);
    let tls_addr = free_addr();
    let listener = format!(
        "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        tls_addr.port(),
        dir.join("ca.crt").display(),
        dir.join("server.crt").display(),
        dir.join("server.key").display(),
    );
    let locker = provision(&pool, "tls-1").await;
    let password = locker.secret.mqtt_password();
    let mosquitto = Mosquitto::start_with(&[("tls-1", password)], true, &listener).await;
    let url = format!("mqtts://{GATEWAY_USER}:{GATEWAY_PASSWORD}@{tls_addr}");
    let with = |ca: &str, client: bool| {
        let mut broker = ExternalBroker::parse(&url).expect("url");
        broker.tls = Some(BrokerTls {
            ca: Some(pem(&dir, ca)),
            client: client.then(|| (pem(&dir, "client.crt"), pem(&dir, "client.key"))),
        });
        broker
    };
    // Without the client certificate the broker refuses the handshake; with a CA that did not
    // sign the broker's certificate the gateway refuses the broker: neither starts.
    for (ca, client, case) in [
        ("ca.crt", false, "no client certificate"),
        ("other-ca.crt", true, "another CA"),
    ] {
        match gateway(&pool, with(ca, client)).await {
            Err(StartError::SharedSubscriptions(e)) => println!("{case}: {e}"),
            Err(other) => panic!("{case}: refused otherwise: {other}"),
            Ok(_) => panic!("{case}: the gateway started"),
        }
    }
    // With both, it starts, takes the lockers' uplinks and sends their commands over TLS.
    let app = gateway(&pool, with("ca.crt", true))
        .await
        .expect("starts over TLS");
    assert!(app.wait_mqtt_ready(WAIT).await, "subscribed over TLS");
    let handle = online_locker(&pool, &mosquitto, &locker, |_| {}).await;
    let outcome = app
        .commands()
        .unlock(device("tls-1"), 2)
        .await
        .expect("executed");
    assert_eq!(outcome.door, Some(DoorResult::Opened));
    handle.stop();
    app.run_until_stopped(async {}).await;
    let _ = std::fs::remove_dir_all(&dir);
}
