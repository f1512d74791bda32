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

. scripts/lib.sh
ensure_postgres "$DATABASE_URL"
ensure_redis "$REDIS_URL"
# The external-broker tests start their own Mosquitto on a free port (never the shared one).
command -v mosquitto >/dev/null && command -v mosquitto_passwd >/dev/null \
  || die "mosquitto is not installed; the external-broker tests need it (Debian: apt-get install mosquitto)"

# The C library's tests and examples (firmware-protocol/c) build with the system's C compiler;
# the MQTT locker example links libmosquitto.
ensure_package "command -v cc >/dev/null" gcc "the C library's tests build with it"
ensure_package "[ -f /usr/include/mosquitto.h ]" libmosquitto-dev \
  "the example MQTT locker (firmware-protocol/c/examples) links it"
# The console's browser tests drive Debian's Chromium through its WebDriver.
ensure_package "command -v chromium >/dev/null" chromium "the console's browser tests run in it"
ensure_package "command -v chromedriver >/dev/null" chromium-driver \
  "the console's browser tests drive Chromium with it"

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
# The process tests run the workspace's binaries, the demo's too (another package's, which
# `cargo test` alone does not build as an executable): built first, with the same features.
cargo build --workspace --bins --locked --features locker-gateway/test-hooks 2>&1 | tee "$log" || status=$?
if [ "$status" -eq 0 ]; then
  cargo test --workspace --all-targets --locked --features locker-gateway/test-hooks "$@" 2>&1 | tee -a "$log" || status=$?
fi
if [ "$status" -eq 0 ]; then
  cargo test --workspace --doc --locked 2>&1 | tee -a "$log" || status=$?
fi
# The embedded broker's patches (vendor/rumqttd/PATCHES.md): a crate outside the workspace.
if [ "$status" -eq 0 ]; then
  CARGO_TARGET_DIR="$PWD/target" cargo test --manifest-path vendor/rumqttd/Cargo.toml \
    --no-default-features --lib --locked 2>&1 | tee -a "$log" || status=$?
fi
passed=$(grep -Eo '^test result: .* [0-9]+ passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^test result: .* [0-9]+ failed' "$log" | grep -Eo '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  say "error: no test ran"
  status=1
fi
echo "summary: $passed passed, $failed failed"
exit "$status"
