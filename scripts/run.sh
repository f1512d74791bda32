#!/usr/bin/env bash
# Runs the gateway with simulated lockers (`locker-gateway demo`): makes sure PostgreSQL answers
# (starting the system's cluster if it is stopped), builds, and runs until Ctrl-C. The demo
# prints the HTTP address, the demo operator's password (first start) and curl commands to try.
#
#   DATABASE_URL      default postgres://postgres@127.0.0.1:5432/lockers (created if missing)
#   REDIS_URL         default redis://127.0.0.1:6379 (door locks for rentals)
#   LOCKER_MQTT_ADDR  default 127.0.0.1:11883
#   LOCKER_HTTP_ADDR  default 127.0.0.1:18080
#   DEMO_LOCKERS      how many simulated lockers, default 5
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lockers}"
export LOCKER_MQTT_ADDR="${LOCKER_MQTT_ADDR:-127.0.0.1:11883}"
export LOCKER_HTTP_ADDR="${LOCKER_HTTP_ADDR:-127.0.0.1:18080}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
ensure_postgres "$DATABASE_URL"
ensure_redis "$REDIS_URL"

cargo build --locked --workspace --bins
exec target/debug/locker-gateway demo --lockers "${DEMO_LOCKERS:-5}"
