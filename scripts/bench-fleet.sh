#!/usr/bin/env bash
# Benchmark: a fleet of 1, 2 and 3 gateways (release builds) behind one Mosquitto, sharing
# LOCKERS simulated lockers that each send a heartbeat every HEARTBEAT_SECS. For each fleet size
# it prints: the time from the simulator's start until every locker is online in PostgreSQL (a
# storm of LOCKERS connecting at once), then over MEASURE_SECS the uplinks written per second
# (against the rate offered), and the CPU seconds each gateway spent per 1,000 uplinks. Uses a
# throwaway database on DATABASE_URL's server and Redis keys under bench-fleet-PID:.
#
#   LOCKERS=2000 HEARTBEAT_SECS=2 MEASURE_SECS=20 GATEWAY_COUNTS="1 2 3" scripts/bench-fleet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

lockers="${LOCKERS:-2000}"
heartbeat="${HEARTBEAT_SECS:-2}"
measure="${MEASURE_SECS:-20}"
counts="${GATEWAY_COUNTS:-1 2 3}"
server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
database="locker_bench_fleet_$$"
export DATABASE_URL="$server_url/$database"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export LOCKER_REDIS_PREFIX="bench-fleet-$$:"
ensure_postgres "$DATABASE_URL"
ensure_redis "$REDIS_URL"
command -v mosquitto >/dev/null && command -v mosquitto_passwd >/dev/null \
  || die "mosquitto is not installed (Debian: apt-get install mosquitto)"
command -v psql >/dev/null || die "psql is needed (Debian: apt-get install postgresql-client)"
need=$(( lockers + 1024 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  die "the open-file limit is $hard; $lockers lockers need $need"
fi
ulimit -n "$need"

cargo build --release --locked --workspace --bins
gateway=target/release/locker-gateway
simulator=target/release/simulator
work=$(mktemp -d)
chmod 755 "$work" # Mosquitto started as root reads its files as the user mosquitto
pids=()
stop_all() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
cleanup() {
  stop_all
  kill "${broker_pid:-}" 2>/dev/null || true
  psql -q "$server_url/postgres" -c "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
sql() { psql -qtA "$DATABASE_URL" -c "$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks_per_sec=$(getconf CLK_TCK)

psql -q "$server_url/postgres" -c "CREATE DATABASE $database" >/dev/null
"$gateway" migrate >/dev/null
say "provisioning $lockers lockers"
"$gateway" device add-many --prefix bench- --count "$lockers" --doors 4 > "$work/credentials.jsonl"
start_mosquitto "$work" "$work/credentials.jsonl"
broker_pid=$mosquitto_pid
mqtt_port=$mosquitto_port
export LOCKER_MQTT_BROKER="mqtt://gateway:$mosquitto_password@127.0.0.1:$mqtt_port"
export LOCKER_HEARTBEAT_SECS="$heartbeat" RUST_LOG="${RUST_LOG:-error}"

offered=$(( lockers / heartbeat ))
printf '\n| gateways | all %s online after | uplinks written/s (offered %s/s) | CPU s per 1,000 uplinks, each gateway |\n|---|---|---|---|\n' "$lockers" "$offered"
for count in $counts; do
  sql "UPDATE devices SET online = false" >/dev/null
  gateway_pids=()
  for n in $(seq 1 "$count"); do
    port=$(free_port)
    LOCKER_GATEWAY_ID="bench-gw-$n" LOCKER_HTTP_ADDR="127.0.0.1:$port" \
      "$gateway" serve 2>"$work/gw-$n.log" &
    pids+=($!)
    gateway_pids+=($!)
    for _ in $(seq 1 150); do
      port_open 127.0.0.1 "$port" && break
      kill -0 "${gateway_pids[-1]}" 2>/dev/null || { tail -5 "$work/gw-$n.log" >&2; die "gateway bench-gw-$n stopped"; }
      sleep 0.2
    done
  done
  started=$(date +%s.%N)
  "$simulator" run --broker "127.0.0.1:$mqtt_port" --credentials "$work/credentials.jsonl" \
    --doors 4 --heartbeat-secs "$heartbeat" --connect-rate 0 --report-secs 60 \
    >"$work/simulator.out" 2>"$work/simulator.log" &
  pids+=($!)
  online_after=""
  for _ in $(seq 1 1200); do
    if [ "$(sql "SELECT count(*) FROM devices WHERE online")" -ge "$lockers" ]; then
      online_after=$(echo "$(date +%s.%N) - $started" | bc)
      break
    fi
    sleep 0.1
  done
  [ -n "$online_after" ] || online_after="not all in 120 s"
  sleep "$heartbeat"
  before=$(sql "SELECT coalesce(sum(up_counter), 0) FROM devices")
  cpu_before=()
  for pid in "${gateway_pids[@]}"; do cpu_before+=("$(cpu_ticks "$pid")"); done
  sleep "$measure"
  after=$(sql "SELECT coalesce(sum(up_counter), 0) FROM devices")
  written=$(( after - before ))
  per_sec=$(( written / measure ))
  cpu=""
  for i in "${!gateway_pids[@]}"; do
    ticks=$(( $(cpu_ticks "${gateway_pids[$i]}") - ${cpu_before[$i]} ))
    cpu+="$(echo "scale=3; $ticks / $ticks_per_sec / ($written / 1000)" | bc) "
  done
  printf '| %s | %s s | %s | %s|\n' "$count" "$(printf '%.1f' "$online_after")" "$per_sec" "$cpu"
  stop_all
  sleep 2
done
