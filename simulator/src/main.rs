//! `simulator`: simulated lockers for demos and load.
//!
//! * `simulator run` connects simulated lockers (from a credentials file) to a broker and keeps
//!   them going: sessions, heartbeats, answers to commands. `--until-connected` makes it a
//!   connection benchmark.
//! * `simulator conform --serial PATH --address N --device ID` plays a scripted gateway against
//!   a lock board under test and runs the protocol's cases (see `simulator::conform`).
//! * `simulator transcript` prints one rental's worth of traffic between the gateway and a
//!   simulated locker, as MQTT payloads and as serial frames: what firmware authors see on the wire.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use firmware_protocol::{
    CommandId, DeviceId, DeviceSecret, Direction, Downlink, Envelope, Frame, Header, Payload,
    QueryState, Topic, Unlock, Unverified,
};
use simulator::SimLocker;
use simulator::mqtt::{Credentials, FleetStats, LockerConfig, Simulator};

/// Simulated smart lockers for the locker gateway.
#[derive(Debug, Parser)]
#[command(name = "simulator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a sample exchange (unlock, door events, state query) as MQTT payloads and serial frames.
    Transcript,
    /// Run simulated lockers against a broker until Ctrl-C, printing how many are connected.
    Run(RunOptions),
    /// Check a device under test against the protocol: a scripted gateway runs every case and
    /// prints each as passed or failed (with the bytes exchanged); exit code 0 when all passed.
    Conform(conform_cli::ConformOptions),
}

mod conform_cli;

#[derive(Debug, clap::Args)]
struct RunOptions {
    /// The broker (the gateway's LOCKER_MQTT_ADDR).
    #[arg(long, default_value = "127.0.0.1:11883")]
    broker: SocketAddr,
    /// Credentials file: one JSON object per line, as `locker-gateway device add --json` prints.
    #[arg(long)]
    credentials: String,
    /// Use only the first N credentials.
    #[arg(long)]
    lockers: Option<usize>,
    /// Doors per locker.
    #[arg(long, default_value_t = 12)]
    doors: u16,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 60)]
    heartbeat_secs: u64,
    /// Milliseconds each locker takes to answer a command (a slow door).
    #[arg(long, default_value_t = 0)]
    ack_delay_ms: u64,
    /// New connections per second while starting (0: all at once).
    #[arg(long, default_value_t = 1000)]
    connect_rate: u32,
    /// Exit as soon as every locker has connected, printing how long it took.
    #[arg(long)]
    until_connected: bool,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 5)]
    report_secs: u64,
    /// The protocol version the lockers speak: 2 (a downlink window: any gateway of a fleet
    /// sends at once) or 1 (counters in order: one gateway at a time).
    #[arg(long, default_value_t = firmware_protocol::PROTOCOL_VERSION,
          value_parser = clap::value_parser!(u8).range(1..=2))]
    protocol: u8,
    /// Every this many seconds, make one random locker misbehave: lose its connection (will
    /// fired), disconnect politely, send garbage, or send a heartbeat tagged with a wrong key;
    /// each then recovers. 0: never.
    #[arg(long, default_value_t = 0)]
    chaos_secs: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Transcript => transcript(),
        Command::Run(options) => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(run(options)),
            Err(e) => Err(format!("cannot start the runtime: {e}")),
        },
        Command::Conform(options) => match tokio::runtime::Runtime::new() {
            Ok(runtime) => match runtime.block_on(conform_cli::conform(options)) {
                Ok(code) => return ExitCode::from(code),
                Err(e) => Err(e),
            },
            Err(e) => Err(format!("cannot start the runtime: {e}")),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("simulator: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: RunOptions) -> Result<(), String> {
    let mut credentials =
        Credentials::read_file(&options.credentials).map_err(|e| e.to_string())?;
    if let Some(n) = options.lockers {
        credentials.truncate(n);
    }
    let Some(first) = credentials.first() else {
        return Err(format!("no credentials in {}", options.credentials));
    };
    let total = credentials.len() as u64;
    let stats = Arc::new(FleetStats::default());
    let mut template = LockerConfig::new(options.broker, first.clone());
    template.doors = options.doors;
    template.heartbeat = Duration::from_secs(options.heartbeat_secs.max(1));
    template.ack_delay = Duration::from_millis(options.ack_delay_ms);
    template.stats = stats.clone();
    template.protocol = options.protocol;
    let started = Instant::now();
    let mut fleet = Simulator::default();
    // Start in tenths of a second's worth, to keep to the connect rate.
    let batch = match options.connect_rate {
        0 => credentials.len(),
        rate => (rate as usize / 10).max(1),
    };
    for chunk in credentials.chunks(batch) {
        fleet
            .lockers
            .extend(Simulator::spawn(&template, chunk.to_vec()).lockers);
        if options.connect_rate > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "simulator: {total} lockers started against {}",
        options.broker
    );
    let mut report = tokio::time::interval(Duration::from_secs(options.report_secs.max(1)));
    let chaos_every = Duration::from_secs(options.chaos_secs.max(1));
    let mut chaos =
        tokio::time::interval_at(tokio::time::Instant::now() + chaos_every, chaos_every);
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    let mut announced = false;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = poll.tick() => {
                if !announced && stats.connected() >= total {
                    announced = true;
                    println!("all {total} lockers connected in {:.3} s", started.elapsed().as_secs_f64());
                    if options.until_connected {
                        return Ok(());
                    }
                }
            }
            _ = chaos.tick(), if options.chaos_secs > 0 => {
                let i = rand::random_range(0..fleet.lockers.len());
                misbehave(&fleet.lockers[i], &credentials[i]).await;
            }
            _ = report.tick() => eprintln!(
                "simulator: {}/{total} connected, {} connects, {} uplinks sent, {} downlinks received",
                stats.connected(),
                stats.connects(),
                stats.sent(),
                stats.received()
            ),
        }
    }
}

/// One fault, then recovery.
async fn misbehave(locker: &simulator::mqtt::LockerHandle, credentials: &Credentials) {
    use simulator::mqtt::Knob;
    match rand::random_range(0..4u8) {
        0 => {
            eprintln!(
                "simulator: chaos: {} loses its connection",
                locker.device_id
            );
            locker.turn(Knob::Drop).await;
            locker.turn(Knob::Reconnect).await;
        }
        1 => {
            eprintln!(
                "simulator: chaos: {} disconnects politely",
                locker.device_id
            );
            locker.turn(Knob::Disconnect).await;
            locker.turn(Knob::Reconnect).await;
        }
        2 => {
            eprintln!("simulator: chaos: {} sends garbage", locker.device_id);
            locker
                .turn(Knob::SendRaw(b"{\"version\":1,\"garbage\":true".to_vec()))
                .await;
        }
        _ => {
            eprintln!(
                "simulator: chaos: {} sends a heartbeat with a wrong key",
                locker.device_id
            );
            locker
                .turn(Knob::UseKey(
                    DeviceSecret::from_bytes(rand::random()).tag_key(),
                ))
                .await;
            locker.turn(Knob::Heartbeat).await;
            locker.turn(Knob::UseKey(credentials.tag_key.clone())).await;
        }
    }
}

fn show<M: Payload>(
    envelope: &Envelope<M>,
    key: &firmware_protocol::DeviceKey,
) -> Result<(), String> {
    let d = envelope.header.device_id;
    let topic = match envelope.header.direction {
        Direction::Down => Topic::down(d),
        Direction::Up => Topic::up(d),
    };
    let json = envelope.seal_json(key).map_err(|e| e.to_string())?;
    let frame = Frame {
        address: 7,
        envelope: envelope.seal_binary(key).map_err(|e| e.to_string())?.into(),
    }
    .to_bytes()
    .map_err(|e| e.to_string())?;
    let arrow = match envelope.header.direction {
        Direction::Down => "gateway -> locker",
        Direction::Up => "locker -> gateway",
    };
    println!("{arrow}: {:?}", envelope.message);
    println!("  mqtt   {topic}  {json}");
    println!("  serial {}\n", hex(&frame));
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn transcript() -> Result<(), String> {
    let device = DeviceId::new("lk-0001").ok_or("bad device id")?;
    let key = DeviceSecret::from_bytes([0x42; 32]).tag_key();
    let mut locker = SimLocker::new(device, key.clone(), 4);
    let mut uptime = 5_000;
    let hello = locker.connect(0x5EED_0001, uptime);
    show(&hello, &key)?;
    let mut counter = 0;
    let mut send = |locker: &mut SimLocker, message: Downlink, uptime: u64| -> Result<(), String> {
        counter += 1;
        let envelope = Envelope {
            header: Header {
                direction: Direction::Down,
                device_id: device,
                session: hello.header.session,
                counter,
            },
            message,
        };
        show(&envelope, &key)?;
        let json = envelope.seal_json(&key).map_err(|e| e.to_string())?;
        let raw = Unverified::parse_json(json.as_bytes()).map_err(|e| e.to_string())?;
        for answer in locker.receive(&raw, uptime) {
            show(&answer, &key)?;
        }
        Ok(())
    };
    let command_id = CommandId::new(42).ok_or("bad command id")?;
    send(
        &mut locker,
        Downlink::Unlock(Unlock {
            command_id,
            door: 3,
            expires_at_ms: None,
        }),
        uptime,
    )?;
    uptime += 20_000;
    for event in locker.close_door(3, uptime) {
        show(&event, &key)?;
    }
    send(
        &mut locker,
        Downlink::QueryState(QueryState { query_id: 1 }),
        uptime,
    )?;
    Ok(())
}
