#!/usr/bin/env bash
# A local fleet on one machine: a Mosquitto of its own (on a free port, with a password file and
# the README's ACL), PostgreSQL and Redis from the system's installation, GATEWAYS gateways sharing
# them (each with its own LOCKER_GATEWAY_ID and HTTP port, lockers' uplinks shared through
# $share/locker-gateways/...), and LOCKERS simulated lockers on the broker. Prints where each
# gateway answers and an operator login; Ctrl-C stops everything and drops the fleet's database.
#
#   GATEWAYS      how many gateways, default 3
#   LOCKERS       how many simulated lockers, default 20
#   DATABASE_URL  the PostgreSQL server to use (a database locker_fleet_PID is made on it and
#                 dropped at the end), default postgres://postgres@127.0.0.1:5432/postgres
#   REDIS_URL     default redis://127.0.0.1:6379 (keys under fleet-PID:)
#
# Try: kill -9 one gateway's process, and watch the others carry on (GET /v1/gateways shows its
# lease expire after LOCKER_GATEWAY_LEASE_SECS, 15 s by default).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

gateways="${GATEWAYS:-3}"
lockers="${LOCKERS:-20}"
server_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
server_url="${server_url%/*}"
database="locker_fleet_$$"
export DATABASE_URL="$server_url/$database"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export LOCKER_REDIS_PREFIX="fleet-$$:"
ensure_postgres "$DATABASE_URL"
ensure_redis "$REDIS_URL"
command -v mosquitto >/dev/null && command -v mosquitto_passwd >/dev/null \
  || die "mosquitto is not installed; the fleet's broker is a Mosquitto 2 (Debian: apt-get install mosquitto)"
command -v psql >/dev/null || die "psql is needed to drop the fleet's database at the end (Debian: apt-get install postgresql-client)"

cargo build --locked --workspace --bins
gateway=target/debug/locker-gateway
simulator=target/debug/simulator
work=$(mktemp -d)
chmod 755 "$work" # Mosquitto started as root reads its files as the user mosquitto
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$server_url/postgres" -c "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

secret() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

say "database $database, lockers' credentials and the broker's password file in $work"
"$gateway" migrate >/dev/null
"$gateway" device add-many --prefix fleet- --count "$lockers" --doors 8 > "$work/credentials.jsonl"

# The broker: the gateways' login, one login per locker, each locker only its own topics.
gateway_password=$(secret)
mosquitto_passwd -c -b "$work/passwd" gateway "$gateway_password" 2>/dev/null
sed -E 's/.*"device_id":"([^"]+)".*"mqtt_password":"([^"]+)".*/\1 \2/' "$work/credentials.jsonl" |
  while read -r id password; do mosquitto_passwd -b "$work/passwd" "$id" "$password" 2>/dev/null; done
cat > "$work/acl" <<'ACL'
user gateway
topic readwrite #

pattern write lockers/%u/up
pattern write lockers/%u/status
pattern read lockers/%u/down
ACL
mqtt_port=$(free_port)
cat > "$work/mosquitto.conf" <<CONF
listener $mqtt_port 127.0.0.1
allow_anonymous false
password_file $work/passwd
acl_file $work/acl
persistence false
log_dest stderr
log_type error
CONF
mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
pids+=($!)
wait_for Mosquitto 127.0.0.1 "$mqtt_port"

export LOCKER_MQTT_BROKER="mqtt://gateway:$gateway_password@127.0.0.1:$mqtt_port"
export LOCKER_HEARTBEAT_SECS="${LOCKER_HEARTBEAT_SECS:-10}"
export RUST_LOG="${RUST_LOG:-warn}"
http_ports=()
for n in $(seq 1 "$gateways"); do
  port=$(free_port)
  LOCKER_GATEWAY_ID="gw-$n" LOCKER_HTTP_ADDR="127.0.0.1:$port" \
    "$gateway" serve 2>"$work/gw-$n.log" &
  pids+=($!)
  http_ports+=("$port")
  wait_for "gateway gw-$n" 127.0.0.1 "$port" 150
done

"$simulator" run --broker "127.0.0.1:$mqtt_port" --credentials "$work/credentials.jsonl" \
  --doors 8 --heartbeat-secs "$LOCKER_HEARTBEAT_SECS" --report-secs 30 2>"$work/simulator.log" &
pids+=($!)

admin_password=$(secret)
printf '%s\n' "$admin_password" | "$gateway" admin create --email admin@fleet.local >/dev/null

echo
echo "A fleet of $gateways gateways on one Mosquitto (127.0.0.1:$mqtt_port), PostgreSQL and Redis:"
for n in $(seq 1 "$gateways"); do
  echo "  gw-$n  http://127.0.0.1:${http_ports[$((n - 1))]}   (log: $work/gw-$n.log)"
done
echo "  $lockers simulated lockers fleet-0001 … ; operator admin@fleet.local / $admin_password"
echo
echo "  TOKEN=\$(curl -s -H 'content-type: application/json' \\"
echo "    -d '{\"email\":\"admin@fleet.local\",\"password\":\"$admin_password\"}' \\"
echo "    http://127.0.0.1:${http_ports[0]}/v1/sessions | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')"
echo "  curl -s -H \"Authorization: Bearer \$TOKEN\" http://127.0.0.1:${http_ports[0]}/v1/gateways"
echo "  curl -s -X POST -H \"Authorization: Bearer \$TOKEN\" -H 'content-type: application/json' \\"
echo "    -d '{\"reason\":\"try\"}' http://127.0.0.1:${http_ports[1 % gateways]}/v1/devices/fleet-0001/doors/1/unlock"
echo
echo "Ctrl-C stops the fleet."
wait
