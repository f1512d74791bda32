//! `locker-demo`: the gateway with simulated lockers and lock boards connected to it, for trying
//! the project on a laptop (`scripts/run.sh` runs it). Edge mode when nothing is configured;
//! fleet mode with `DATABASE_URL` and `REDIS_URL`. The configuration is the gateway's (file and
//! `LOCKER_*` variables). Its own binary, so the gateway itself does not carry the simulator.

use std::process::ExitCode;

use clap::Parser;
use locker_gateway::Config;
use locker_gateway::cli::{init_logging, shutdown_signal};

mod run;

/// The gateway with simulated lockers connected to it.
#[derive(Debug, Parser)]
#[command(name = "locker-demo", version, about)]
struct Args {
    /// A TOML configuration file (as the gateway's `--config`; LOCKER_CONFIG too).
    #[arg(long, env = "LOCKER_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// How many simulated lockers.
    #[arg(long, default_value_t = 5)]
    lockers: u16,
    /// A simulated person closes each door this many seconds after it opened (0: doors stay
    /// open until closed by hand), so the demo never runs out of doors.
    #[arg(long, default_value_t = 5)]
    close_after_secs: u64,
    /// Start over: delete the edge-mode SQLite file (accounts, devices, rentals, money) before
    /// starting. Refused in fleet mode (drop the database yourself).
    #[arg(long)]
    reset: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref(), |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("locker-demo: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("locker-demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        if args.reset {
            reset(&config)?;
        }
        let stop = shutdown_signal();
        let close_after = (args.close_after_secs > 0)
            .then(|| std::time::Duration::from_secs(args.close_after_secs));
        run::run(&config, (args.lockers, close_after), stop).await
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("locker-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--reset`: deletes edge mode's SQLite file (and its journal files).
fn reset(config: &Config) -> Result<(), String> {
    if config.database_url.is_some() {
        return Err(
            "--reset only deletes edge mode's SQLite file; in fleet mode drop and create \
             the database yourself"
                .into(),
        );
    }
    let path = config.sqlite_path();
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => eprintln!("locker-demo: deleted {}", file.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot delete {}: {e}", file.display())),
        }
    }
    Ok(())
}
