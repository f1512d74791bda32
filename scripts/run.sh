#!/usr/bin/env bash
# Runs the gateway with simulated lockers (`locker-demo`): five MQTT lockers and a
# cabinet of four serial lock boards, until Ctrl-C. The demo prints the HTTP address, the demo
# accounts' passwords (first start) and curl commands to try.
#
# Edge mode (the default, nothing but the Rust toolchain needed): one gateway, its state in the
# SQLite file data/gateway.sqlite, door locks in the process.
# Fleet mode: set DATABASE_URL and REDIS_URL (or LOCKER_MODE=fleet for the local defaults);
# PostgreSQL and Redis are started from the system's installation if they are stopped.
#
#   LOCKER_DATA_DIR   edge mode's data directory, default data
#   DATABASE_URL      fleet mode, e.g. postgres://postgres@127.0.0.1:5432/lockers (created if missing)
#   REDIS_URL         fleet mode, e.g. redis://127.0.0.1:6379
#   LOCKER_MQTT_ADDR  default 127.0.0.1:11883
#   LOCKER_HTTP_ADDR  default 127.0.0.1:18080
#   DEMO_LOCKERS      how many simulated MQTT lockers, default 5
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

export LOCKER_MQTT_ADDR="${LOCKER_MQTT_ADDR:-127.0.0.1:11883}"
export LOCKER_HTTP_ADDR="${LOCKER_HTTP_ADDR:-127.0.0.1:18080}"
if [ "${LOCKER_MODE:-}" = fleet ] || [ -n "${DATABASE_URL:-}" ] || [ -n "${REDIS_URL:-}" ]; then
    export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lockers}"
    export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
    ensure_postgres "$DATABASE_URL"
    ensure_redis "$REDIS_URL"
else
    export LOCKER_DATA_DIR="${LOCKER_DATA_DIR:-data}"
fi

cargo build --locked --workspace --bins
exec target/debug/locker-demo --lockers "${DEMO_LOCKERS:-5}"
