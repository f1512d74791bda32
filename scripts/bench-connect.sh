#!/usr/bin/env bash
# Benchmark: LOCKERS simulated lockers (default 10,000) connect all at once, side by side in one
# run, to the gateway's embedded broker and to an external Mosquitto that this script starts on a
# free port (never the shared one), with the same simulator and the same gateway build. For each
# broker it prints: the time until every locker has its CONNACK (simulator side) and until the
# gateway has every one online in PostgreSQL; memory per connected locker (the gateway's, and
# Mosquitto's for the external broker); the same after WAVES waves in which half the fleet drops
# (SIGKILL: its wills fire) and reconnects; CPU at idle while the lockers send heartbeats. Then
# the ratios embedded / Mosquitto. Uses a throwaway database on DATABASE_URL's server.
#
#   LOCKERS=10000 HEARTBEAT_SECS=60 IDLE_SECS=60 WAVES=5 BROKERS="embedded mosquitto" \
#     CONNECT_RATE=0 SIMULATORS=2 scripts/bench-connect.sh
#   (CONNECT_RATE: new connections per second for each simulator, 0: all at once)
#
# Memory is measured at rest, SETTLE_SECS (default 12) after the last locker came online (the
# gateway gives freed heap back every 10 s). GATEWAY_ENV adds environment variables to the
# gateway's (an allocator to try: GATEWAY_ENV="LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
# GATEWAY_WRAPPER runs it under a tool (GATEWAY_WRAPPER="heaptrack -o /tmp/gateway"); the
# memory figures are then those of the wrapper's process.
#
# The fleet is split over SIMULATORS processes (an even number), the k-th connecting to
# 127.0.0.(k+1): one loopback address gives about 28,000 source ports, so 50,000 lockers need at
# least two (SIMULATORS=6 keeps each process under 10,000 connections). For that the brokers
# listen on 0.0.0.0 while the benchmark runs (logins are still checked). The soft open-file
# limit is raised to what the fleet needs (the hard limit too where allowed: root).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

lockers="${LOCKERS:-10000}"
heartbeat="${HEARTBEAT_SECS:-60}"
idle="${IDLE_SECS:-60}"
waves="${WAVES:-5}"
brokers="${BROKERS:-embedded mosquitto}"
rate="${CONNECT_RATE:-0}"
limit="${ONLINE_LIMIT_SECS:-600}"
settle="${SETTLE_SECS:-12}"
server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
database="locker_bench_$$"
export DATABASE_URL="$server_url/$database"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export LOCKER_REDIS_PREFIX="bench-$$:"
ensure_postgres "$DATABASE_URL"
ensure_redis "$REDIS_URL"
command -v psql >/dev/null || die "psql is needed to create and drop the benchmark database"
case " $brokers " in *" mosquitto "*)
  command -v mosquitto >/dev/null && command -v mosquitto_passwd >/dev/null \
    || die "mosquitto is not installed (Debian: apt-get install mosquitto)" ;;
esac

# One file descriptor per connection in each process (gateway or broker, simulator), plus some.
need=$(( lockers + 1024 ))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
  ulimit -Hn "$need" 2>/dev/null \
    || die "the open-file limit is $hard; $lockers lockers need $need (raise the hard limit: ulimit -Hn, /etc/security/limits.conf)"
fi
ulimit -n "$need"

cargo build --release --locked --workspace --bins
gateway=target/release/locker-gateway
simulator=target/release/simulator
work=$(mktemp -d)
chmod 755 "$work" # Mosquitto started as root reads its files as the user mosquitto
pids=()
stop_all() { kill -9 "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
cleanup() {
  stop_all
  kill "${broker_pid:-}" 2>/dev/null || true
  mkdir -p target/bench && cp "$work"/*.log target/bench/ 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$server_url/postgres" -c "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
sql() { psql -qtA "$DATABASE_URL" -c "$1"; }
online() { sql "SELECT count(*) FROM devices WHERE online"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
now() { date +%s.%N; }
ticks_per_sec=$(getconf CLK_TCK)

say "provisioning $lockers lockers"
psql -q "$server_url/postgres" -c "CREATE DATABASE $database" >/dev/null
"$gateway" migrate >/dev/null
"$gateway" device add-many --prefix bench- --count "$lockers" --doors 12 > "$work/credentials.jsonl"
simulators="${SIMULATORS:-2}"
[ $(( simulators % 2 )) -eq 0 ] && [ "$simulators" -ge 2 ] && [ "$simulators" -le 200 ] \
  || die "SIMULATORS must be an even number from 2 to 200"
split -n "l/$simulators" -d -a 3 "$work/credentials.jsonl" "$work/part-"
parts=("$work"/part-*)
# The second half of the simulators is the half that drops and comes back in each wave.
second=$(( simulators / 2 ))
half=0
for k in $(seq 0 $(( second - 1 ))); do half=$(( half + $(wc -l < "${parts[$k]}") )); done

# wait_online COUNT STALL_SECS: until at least COUNT lockers are online; prints the seconds
# taken, or "not all (N of COUNT after S s)" when no new locker came online for STALL_SECS or
# the whole wait passed ONLINE_LIMIT_SECS (default 600).
wait_online() {
  local from last=0 stalled=0 n
  from=$(now)
  while n=$(online); [ "$n" -lt "$1" ]; do
    kill -0 "$gateway_pid" 2>/dev/null || die "the gateway died: $(tail -5 "$work/gateway-$broker.log")"
    if [ "$n" -le "$last" ]; then stalled=$((stalled + 1)); else stalled=0; last=$n; fi
    if [ "$stalled" -ge $(( $2 * 10 )) ] || [ "$(calc "($(now) - $from > $limit)" 0)" = 1 ]; then
      printf 'not all (%s of %s after %s s)' "$n" "$1" "$(calc "$(now) - $from" 0)"
      return
    fi
    sleep 0.1
  done
  calc "$(now) - $from" 2
}
# wait_offline COUNT: until at most COUNT lockers are online (wills delivered), at most 60 s.
wait_offline() {
  for _ in $(seq 1 600); do [ "$(online)" -le "$1" ] && return 0; sleep 0.1; done
  say "warning: more than $1 lockers still online 60 s after their simulator was killed"
}
sims=()
simulate() { # simulate K: the K-th part of the fleet, through 127.0.0.(K+1)
  "$simulator" run --broker "127.0.0.$(( $1 + 1 )):$port" --credentials "${parts[$1]}" \
    --heartbeat-secs "$heartbeat" --connect-rate "$rate" --report-secs 3600 \
    > "$work/simulator-$1.out" 2>"$work/simulator-$1-$broker.log" &
  pids+=($!)
  sims[$1]=$!
}

results=()
for broker in $brokers; do
  sql "UPDATE devices SET online = false" >/dev/null
  http_port=$(free_port)
  export LOCKER_HTTP_ADDR="127.0.0.1:$http_port" LOCKER_HEARTBEAT_SECS="$heartbeat" RUST_LOG="${RUST_LOG:-error}"
  unset LOCKER_MQTT_BROKER LOCKER_MQTT_ADDR
  broker_pid=""
  case "$broker" in
    embedded)
      port=$(free_port)
      export LOCKER_MQTT_ADDR="0.0.0.0:$port" ;;
    mosquitto)
      start_mosquitto "$work" "$work/credentials.jsonl" 0.0.0.0
      broker_pid=$mosquitto_pid
      port=$mosquitto_port
      export LOCKER_MQTT_BROKER="mqtt://gateway:$mosquitto_password@127.0.0.1:$port" ;;
    *) die "unknown broker $broker (embedded or mosquitto)" ;;
  esac
  env ${GATEWAY_ENV:-} ${GATEWAY_WRAPPER:-} "$gateway" serve 2>"$work/gateway-$broker.log" &
  gateway_pid=$!
  pids+=("$gateway_pid")
  wait_for gateway 127.0.0.1 "$http_port" 150
  wait_for broker 127.0.0.1 "$port" 150
  sleep 1
  rss_before=$(rss_kb "$gateway_pid")
  broker_rss_before=$([ -n "$broker_pid" ] && rss_kb "$broker_pid" || echo 0)

  say "$broker: $lockers lockers connecting"
  for k in $(seq 0 $(( simulators - 1 ))); do simulate "$k"; done
  online_s=$(wait_online "$lockers" $(( heartbeat * 3 )))
  sleep "$settle"
  rss_after=$(rss_kb "$gateway_pid")
  broker_rss_after=$([ -n "$broker_pid" ] && rss_kb "$broker_pid" || echo 0)

  wave_times=""
  case "$online_s" in not*) say "$broker: $online_s; no waves" ;; *)
  for w in $(seq 1 "$waves"); do
    for k in $(seq "$second" $(( simulators - 1 ))); do
      kill -9 "${sims[$k]}" 2>/dev/null || true
      wait "${sims[$k]}" 2>/dev/null || true
    done
    wait_offline "$half"
    for k in $(seq "$second" $(( simulators - 1 ))); do simulate "$k"; done
    wave_times+="$(wait_online "$lockers" $(( heartbeat * 3 ))) "
  done ;; esac
  sleep "$settle"
  rss_waves=$(rss_kb "$gateway_pid")
  broker_rss_waves=$([ -n "$broker_pid" ] && rss_kb "$broker_pid" || echo 0)

  t0=$(cpu_ticks "$gateway_pid")
  b0=$([ -n "$broker_pid" ] && cpu_ticks "$broker_pid" || echo 0)
  sleep "$idle"
  t1=$(cpu_ticks "$gateway_pid")
  b1=$([ -n "$broker_pid" ] && cpu_ticks "$broker_pid" || echo 0)

  per_locker=$(calc "($rss_after - $rss_before) / $lockers")
  per_locker_waves=$(calc "($rss_waves - $rss_before) / $lockers")
  broker_per=$(calc "($broker_rss_after - $broker_rss_before) / $lockers")
  broker_per_waves=$(calc "($broker_rss_waves - $broker_rss_before) / $lockers")
  cpu=$(calc "100 * ($t1 - $t0) / $ticks_per_sec / $idle")
  broker_cpu=$(calc "100 * ($b1 - $b0) / $ticks_per_sec / $idle")
  case "$online_s" in not*) ;; *) eval "online_$broker=$online_s" ;; esac
  case "$online_s" in not*) shown=$online_s ;; *) shown="$online_s s" ;; esac
  results+=("| $broker | $shown | $wave_times| $per_locker KiB (+ broker $broker_per) | $per_locker_waves KiB (+ broker $broker_per_waves) | $(calc "$per_locker_waves / ($per_locker > 0 ? $per_locker : 1)" 2) × | $cpu % (+ broker $broker_cpu %) |")
  say "measured: ${results[-1]}"
  stop_all
  [ -z "$broker_pid" ] || { kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; }
  broker_pid=""
  sleep 2
done

echo
echo "$lockers lockers, $simulators simulators connecting at ${rate:-0}/s each (0: all at once), heartbeat every $heartbeat s; $waves waves of $(( lockers - half )) reconnecting; CPU over $idle s of heartbeats"
echo
echo "| broker | all online in PostgreSQL | each wave, all online again (s) | gateway memory per locker | after the waves | waves / first | CPU at idle (% of a core) |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
if [ -n "${online_embedded:-}" ] && [ -n "${online_mosquitto:-}" ]; then
  echo
  echo "embedded / Mosquitto, time until all online: $(calc "$online_embedded / $online_mosquitto" 2) ×"
fi
