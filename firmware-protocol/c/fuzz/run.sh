#!/usr/bin/env bash
# Fuzzes the C library with libFuzzer (clang; Debian: apt-get install clang) for SECONDS seconds
# (default 60), growing corpus/ with every input that reaches new code. Not part of the test
# command, which replays corpus/ under the sanitizers (tests/protocol/c_library.rs).
#   ./run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
command -v clang >/dev/null || { echo "run.sh: clang is missing (apt-get install clang)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
clang -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I../include ../src/*.c fuzz_locker.c -o "$out/fuzz_locker"
if [ -z "$(ls -A corpus)" ]; then python3 seed.py; fi
"$out/fuzz_locker" -max_total_time="${1:-60}" -max_len=2400 corpus
