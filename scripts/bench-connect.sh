#!/usr/bin/env bash
# Benchmark: N simulated lockers connect to the gateway's embedded broker (default 10,000).
# Prints: time until every locker has its CONNACK (simulator side) and until the gateway has every
# one online in PostgreSQL, gateway memory per connected locker, and gateway CPU at idle while the
# lockers send heartbeats. Uses a throwaway database on the PostgreSQL of DATABASE_URL's server.
#
#   LOCKERS=10000 CONNECT_RATE=1000 HEARTBEAT_SECS=60 IDLE_SECS=60 scripts/bench-connect.sh
#   (CONNECT_RATE: new connections per second, 0 for all at once)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

lockers="${LOCKERS:-10000}"
heartbeat="${HEARTBEAT_SECS:-60}"
idle="${IDLE_SECS:-60}"
server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
database="locker_bench_$$"
export DATABASE_URL="$server_url/$database"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export LOCKER_REDIS_PREFIX="bench-$$:"
ensure_postgres "$DATABASE_URL"
ensure_redis "$REDIS_URL"
command -v psql >/dev/null || die "psql is needed to create and drop the benchmark database"

# One file descriptor per connection in each process (gateway, simulator), plus some.
need=$(( lockers + 1024 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  die "the open-file limit is $hard; $lockers lockers need $need (raise the hard limit: ulimit -Hn, /etc/security/limits.conf)"
fi
ulimit -n "$need"

cargo build --release --locked --workspace --bins
gateway=target/release/locker-gateway
simulator=target/release/simulator
work=$(mktemp -d)
cleanup() {
  kill "${simulator_pid:-}" "${gateway_pid:-}" 2>/dev/null || true
  mkdir -p target/bench && cp "$work"/*.log "$work"/*.out target/bench/ 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$server_url/postgres" -c "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mqtt_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 21883)
export LOCKER_MQTT_ADDR="127.0.0.1:$mqtt_port" LOCKER_HEARTBEAT_SECS="$heartbeat" RUST_LOG="${RUST_LOG:-error}"

say "provisioning $lockers lockers"
"$gateway" migrate >/dev/null
"$gateway" device add-many --prefix bench- --count "$lockers" --doors 12 > "$work/credentials.jsonl"

"$gateway" serve 2>"$work/gateway.log" &
gateway_pid=$!
wait_for gateway 127.0.0.1 "$mqtt_port" 100
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
online() { psql -qtA "$DATABASE_URL" -c "SELECT count(*) FROM devices WHERE online"; }
sleep 1
rss_before=$(rss_kb "$gateway_pid")

start=$(date +%s.%N)
"$simulator" run --broker "$LOCKER_MQTT_ADDR" --credentials "$work/credentials.jsonl" \
  --heartbeat-secs "$heartbeat" --connect-rate "${CONNECT_RATE:-1000}" --report-secs 3600 > "$work/simulator.out" 2>"$work/simulator.log" &
simulator_pid=$!
last=0; stalled=0
while [ "$(online)" -lt "$lockers" ]; do
  kill -0 "$gateway_pid" 2>/dev/null || die "the gateway died: $(tail -5 "$work/gateway.log")"
  kill -0 "$simulator_pid" 2>/dev/null || die "the simulator died: $(tail -5 "$work/simulator.log")"
  sleep 0.1
  now=$(online)
  if [ "$now" -eq "$last" ]; then stalled=$((stalled + 1)); else stalled=0; last=$now; fi
  # Lost hellos are asked for again at the lockers' next heartbeat: allow three intervals.
  [ "$stalled" -lt $(( heartbeat * 30 )) ] || die "stuck at $now of $lockers online for $(( heartbeat * 3 )) s (logs in target/bench/)"
done
end=$(date +%s.%N)
connected_line=$(grep -m1 'all .* connected' "$work/simulator.out" || echo "(simulator did not report)")
sleep 2
rss_after=$(rss_kb "$gateway_pid")

ticks_per_sec=$(getconf CLK_TCK)
t0=$(cpu_ticks "$gateway_pid")
sleep "$idle"
t1=$(cpu_ticks "$gateway_pid")

echo
echo "lockers:                     $lockers (heartbeat every ${heartbeat} s)"
echo "simulator:                   $connected_line"
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
echo "all online in PostgreSQL:    $(calc "$end - $start") s after the simulator started"
printf 'gateway memory:              %d MiB before, %d MiB with every locker connected\n' $((rss_before / 1024)) $((rss_after / 1024))
echo "memory per connected locker: $(calc "($rss_after - $rss_before) / $lockers") KiB"
echo "gateway CPU at idle:         $(calc "100 * ($t1 - $t0) / $ticks_per_sec / $idle") % of one core over $idle s of heartbeats"
