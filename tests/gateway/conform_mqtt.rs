//! The conformance tool over MQTT (`simulator conform --mqtt`), on a Mosquitto of the test's own
//! with the README's ACL, logged in as the gateway: the simulator's locker and the C library's
//! example MQTT locker pass every case (their reboot included); a locker that misbehaves fails.

use std::sync::Arc;
use std::time::Duration;

use firmware_protocol::{DeviceId, DeviceSecret};
use simulator::conform::{Reboot, Report, Target, Verdict, run_mqtt};
use simulator::mqtt::{Credentials, Knob, LockerConfig, LockerHandle};

use crate::c_build::{Process, example};
use crate::mosquitto_server::{GATEWAY_PASSWORD, GATEWAY_USER, Mosquitto};

const ID: &str = "conform-1";

fn secret() -> DeviceSecret {
    DeviceSecret::from_bytes([0x42; 32])
}

fn target(reboot: Option<Reboot>) -> Target {
    Target {
        device_id: DeviceId::new(ID).expect("id"),
        key: secret().tag_key(),
        door: 2,
        wait: Duration::from_millis(500),
        reboot,
    }
}

async fn broker() -> Mosquitto {
    Mosquitto::start(&[(ID, secret().mqtt_password())], true).await
}

async fn conform(mosquitto: &Mosquitto, target: Target) -> Report {
    let login = Some((GATEWAY_USER.to_owned(), GATEWAY_PASSWORD.to_owned()));
    run_mqtt(&mosquitto.addr.to_string(), login, target)
        .await
        .expect("the tool logs in")
}

fn simulated(mosquitto: &Mosquitto) -> Arc<LockerHandle> {
    let credentials = Credentials::from_secret(DeviceId::new(ID).expect("id"), &secret());
    let mut config = LockerConfig::new(mosquitto.addr, credentials);
    config.doors = 4;
    Arc::new(simulator::mqtt::spawn(config))
}

#[tokio::test]
async fn the_simulated_mqtt_locker_passes_every_case() {
    let mosquitto = broker().await;
    let locker = simulated(&mosquitto);
    let power = locker.clone();
    let reboot: Reboot = Box::new(move || {
        let power = power.clone();
        Box::pin(async move {
            power.turn(Knob::Reboot).await;
            Ok(())
        })
    });
    let report = conform(&mosquitto, target(Some(reboot))).await;
    let text = report.to_text();
    eprintln!("{text}");
    assert!(report.passed(), "{text}");
    assert_eq!(report.cases.len(), 16, "{text}");
}

#[tokio::test]
async fn the_c_mqtt_locker_passes_every_case() {
    let mosquitto = broker().await;
    let exe = example("mqtt_locker", &["mosquitto"]);
    let port = mosquitto.addr.port().to_string();
    let hex = secret().mqtt_password();
    let args: Vec<String> = ["127.0.0.1", &port, "-", ID, &hex, "4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let env = [("LP_EXAMPLE_RECONNECT_MS", "200")];
    let start = {
        let (exe, args) = (exe.clone(), args.clone());
        move || {
            let (exe, args) = (exe.clone(), args.clone());
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Process::start(&exe, &args, &env).await
            }
        }
    };
    let locker = Arc::new(tokio::sync::Mutex::new(start().await));
    let power = locker.clone();
    let reboot: Reboot = Box::new(move || {
        let (power, start) = (power.clone(), start.clone());
        Box::pin(async move {
            let mut locker = power.lock().await;
            locker.child.kill().await.map_err(|e| e.to_string())?;
            *locker = start().await;
            Ok(())
        })
    });
    let report = conform(&mosquitto, target(Some(reboot))).await;
    let text = report.to_text();
    assert!(report.passed(), "{text}");
    assert_eq!(report.cases.len(), 16, "{text}");
}

#[tokio::test]
async fn a_locker_that_loses_its_acks_fails_with_the_payloads_exchanged() {
    let mosquitto = broker().await;
    let locker = simulated(&mosquitto);
    // Connected and announced before the tool looks: it asks for the session.
    tokio::time::sleep(Duration::from_millis(500)).await;
    locker.turn(Knob::DropAcks(1000)).await;
    let report = conform(&mosquitto, target(None)).await;
    assert_eq!(report.exit_code(), 1, "{}", report.to_text());
    let unlock = report
        .cases
        .iter()
        .find(|c| c.name == "unlock")
        .expect("an unlock case");
    assert!(
        matches!(&unlock.verdict, Verdict::Failed(why) if why.contains("no answer")),
        "{:?}",
        unlock.verdict
    );
    assert!(
        unlock
            .exchanged
            .iter()
            .any(|l| l.starts_with("> {\"version\":1")),
        "{:?}",
        unlock.exchanged
    );
    assert!(matches!(
        report.cases.last().map(|c| &c.verdict),
        Some(Verdict::NotRun(_))
    ));
}
