#!/usr/bin/env bash
# Runs the gateway with simulated lockers: makes sure PostgreSQL answers (starting the system's
# cluster if it is stopped), registers demo lockers once, starts the gateway and the simulator,
# and stops both on Ctrl-C.
#
#   DATABASE_URL      default postgres://postgres@127.0.0.1:5432/lockers (created if missing)
#   LOCKER_MQTT_ADDR  default 127.0.0.1:11883
#   LOCKER_HTTP_ADDR  default 127.0.0.1:18080
#   DEMO_LOCKERS      how many simulated lockers, default 5
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/lockers}"
export LOCKER_MQTT_ADDR="${LOCKER_MQTT_ADDR:-127.0.0.1:11883}"
export LOCKER_HTTP_ADDR="${LOCKER_HTTP_ADDR:-127.0.0.1:18080}"
lockers="${DEMO_LOCKERS:-5}"
ensure_postgres "$DATABASE_URL"

cargo build --locked --workspace --bins
gateway=target/debug/locker-gateway
simulator=target/debug/simulator

demo=target/demo
credentials="$demo/credentials.jsonl"
mkdir -p "$demo"
if [ ! -s "$credentials" ] || [ "$(wc -l < "$credentials")" -lt "$lockers" ]; then
  say "registering $lockers demo lockers (credentials in $credentials)"
  "$gateway" device add-many --prefix "demo-$(date +%s)-" --count "$lockers" --doors 12 > "$credentials"
fi

"$gateway" serve &
gateway_pid=$!
trap 'kill "$gateway_pid" "${simulator_pid:-}" 2>/dev/null; wait 2>/dev/null' EXIT INT TERM
mqtt_host="${LOCKER_MQTT_ADDR%:*}"; mqtt_port="${LOCKER_MQTT_ADDR##*:}"
for _ in $(seq 1 100); do
  port_open "$mqtt_host" "$mqtt_port" && break
  kill -0 "$gateway_pid" 2>/dev/null || die "the gateway stopped; see its message above"
  sleep 0.1
done

"$simulator" run --broker "$LOCKER_MQTT_ADDR" --credentials "$credentials" --lockers "$lockers" --heartbeat-secs 10 &
simulator_pid=$!
say "gateway on $LOCKER_MQTT_ADDR (HTTP API on http://$LOCKER_HTTP_ADDR, curl http://$LOCKER_HTTP_ADDR/readyz) with $lockers simulated lockers; try: $gateway device list (Ctrl-C stops)"
wait "$gateway_pid"
