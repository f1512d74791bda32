#!/usr/bin/env bash
# Code size of the C library for a Cortex-M0+ (Thumb, -Os), as a firmware would link it: prints
# text/data/bss per object and in all. Needs arm-none-eabi-gcc (Debian: gcc-arm-none-eabi).
# Not part of the test command.
set -euo pipefail
cd "$(dirname "$0")"
command -v arm-none-eabi-gcc >/dev/null \
  || { echo "size.sh: arm-none-eabi-gcc is missing (apt-get install gcc-arm-none-eabi)"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for f in src/*.c; do
  arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror -mcpu=cortex-m0plus -mthumb -Os \
    -ffunction-sections -fdata-sections -Iinclude -c "$f" -o "$out/$(basename "${f%.c}").o"
done
arm-none-eabi-size -t "$out"/*.o | sed "s|$out/||"
echo "(arm-none-eabi-gcc $(arm-none-eabi-gcc -dumpversion), -mcpu=cortex-m0plus -mthumb -Os)"
