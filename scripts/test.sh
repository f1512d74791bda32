#!/usr/bin/env bash
# The whole test suite: checks that PostgreSQL and Redis answer (starting them from the system's
# installation when they are installed but stopped), then runs every test of the workspace.
#
#   DATABASE_URL  default postgres://postgres@127.0.0.1:5432/test
#   REDIS_URL     default redis://127.0.0.1:6379
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# host and port of a URL such as scheme://user:pass@host:port/db
url_host() { local rest="${1#*://}"; rest="${rest##*@}"; rest="${rest%%/*}"; printf '%s' "${rest%%:*}"; }
url_port() { local rest="${1#*://}"; rest="${rest##*@}"; rest="${rest%%/*}"
  case "$rest" in *:*) printf '%s' "${rest##*:}" ;; *) printf '%s' "$2" ;; esac; }
redacted() { printf '%s' "$1" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#'; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
is_local() { case "$1" in 127.*|localhost|::1|\[::1\]) return 0 ;; *) return 1 ;; esac; }
wait_for() { # wait_for NAME HOST PORT
  for _ in $(seq 1 50); do port_open "$2" "$3" && return 0; sleep 0.2; done
  die "$1 was started but does not answer on $2:$3"
}

pg_host=$(url_host "$DATABASE_URL"); pg_port=$(url_port "$DATABASE_URL" 5432)
if ! port_open "$pg_host" "$pg_port"; then
  if is_local "$pg_host" && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    say "PostgreSQL is not answering on $pg_host:$pg_port; starting the system's cluster"
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_for PostgreSQL "$pg_host" "$pg_port"
  else
    die "PostgreSQL does not answer at $(redacted "$DATABASE_URL") and is not installed here; install it (Debian: apt-get install postgresql) or set DATABASE_URL"
  fi
fi

redis_host=$(url_host "$REDIS_URL"); redis_port=$(url_port "$REDIS_URL" 6379)
if ! port_open "$redis_host" "$redis_port"; then
  if is_local "$redis_host" && command -v redis-server >/dev/null; then
    say "Redis is not answering on $redis_host:$redis_port; starting redis-server"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >/dev/null
    wait_for Redis "$redis_host" "$redis_port"
  else
    die "Redis does not answer at $(redacted "$REDIS_URL") and is not installed here; install it (Debian: apt-get install redis-server) or set REDIS_URL"
  fi
fi

say "PostgreSQL at $(redacted "$DATABASE_URL"), Redis at $(redacted "$REDIS_URL")"

# An implementation of the tag and CRC written apart from the Rust code checks the test vectors.
if command -v python3 >/dev/null; then
  python3 firmware-protocol/vectors/check_vectors.py
else
  say "python3 not found: the independent vector check did not run (the Rust vector tests still do)"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets --locked "$@" 2>&1 | tee "$log" || status=$?
if [ "$status" -eq 0 ]; then
  cargo test --workspace --doc --locked 2>&1 | tee -a "$log" || status=$?
fi
passed=$(grep -Eo '^test result: .* [0-9]+ passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* [0-9]+ failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  say "error: no test ran"
  status=1
fi
echo "summary: $passed passed, $failed failed"
exit "$status"
