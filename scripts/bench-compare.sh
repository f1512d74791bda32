#!/usr/bin/env bash
# Compares the rental and command benchmarks of an earlier revision with the working tree's, on
# this machine, in one run: both are built (the earlier one in a worktree of its own), then run
# alternately ROUNDS times (before, after, after, before, ...), so that a noisy neighbour weighs on
# both alike. Prints each run's figures, then the medians side by side, each also relative to the
# bare PostgreSQL commit loop the rentals benchmark runs in the same round.
#
#   scripts/bench-compare.sh REV [ROUNDS]        (ROUNDS defaults to 4: an even number, so that
#                                                  each build runs first in a pair as often)
#
# Needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL; the defaults are the local servers).
# Knobs passed to both builds: rentals with MODES=fleet, LOCKERS=100, CONCURRENCY=16, SECONDS=10;
# commands with LOCKERS=500, RATE=1000, SECONDS=5, DOOR_MS=0.
set -euo pipefail

rev=${1:?usage: scripts/bench-compare.sh REV [ROUNDS]}
rounds=${2:-4}
root=$(git rev-parse --show-toplevel)
cd "$root"
short=$(git rev-parse --short "$rev")
work=${BENCH_COMPARE_DIR:-${TMPDIR:-/tmp}/locker-bench-compare}
mkdir -p "$work"
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
command -v python3 >/dev/null || { echo "bench-compare: python3 is missing (apt-get install python3)"; exit 1; }

# Builds the two benchmarks of the tree at $1 into the target directory $2; prints their paths.
build() {
    (cd "$1" && CARGO_TARGET_DIR=$2 cargo bench --locked --bench rentals --bench commands --no-run 2>&1) |
        sed -n 's/.*Executable benches\/\(rentals\|commands\)\.rs (\(.*\))/\1 \2/p'
}

before_src=$work/src-$short
if [ ! -d "$before_src" ]; then
    git worktree add --force --detach "$before_src" "$rev" >/dev/null
fi
echo "building $short (before) and the working tree (after)..."
declare -A bin
# Cargo names the executables relative to the tree, or absolutely for a target directory given so.
absolute() { case $2 in /*) echo "$2" ;; *) echo "$1/$2" ;; esac; }
while read -r name path; do bin[before_$name]=$(absolute "$before_src" "$path"); done < <(build "$before_src" "$work/target-$short")
while read -r name path; do bin[after_$name]=$(absolute "$root" "$path"); done < <(build "$root" "$root/target")
for key in before_rentals before_commands after_rentals after_commands; do
    [ -x "${bin[$key]:-}" ] || { echo "bench-compare: the $key benchmark did not build"; exit 1; }
done

log=$work/runs-$(date +%Y%m%d-%H%M%S).log
: > "$log"
run() { # $1 = before|after, $2 = rentals|commands
    # The database settles between runs (checkpoints, autovacuum after the last run's writes):
    # without a pause, whichever build runs second in a pair is measured on a busier server.
    sleep "${SETTLE_SECS:-15}"
    local dir=$root
    [ "$1" = before ] && dir=$before_src
    echo "== $1 $2" | tee -a "$log"
    if [ "$2" = rentals ]; then
        (cd "$dir" && MODES=fleet LOCKERS=100 CONCURRENCY=16 SECONDS=10 "${bin[$1_$2]}" --bench) 2>&1 | tee -a "$log"
    else
        (cd "$dir" && LOCKERS=500 RATE=1000 SECONDS=5 DOOR_MS=0 "${bin[$1_$2]}" --bench) 2>&1 | tee -a "$log"
    fi
}
for round in $(seq 1 "$rounds"); do
    echo "### round $round of $rounds" | tee -a "$log"
    if [ $((round % 2)) -eq 1 ]; then order="before after"; else order="after before"; fi
    for build in $order; do run "$build" rentals; done
    for build in $order; do run "$build" commands; done
done

python3 - "$log" "$short" <<'EOF'
import re, statistics, sys
log, short = sys.argv[1], sys.argv[2]
runs, current = [], None
for line in open(log):
    m = re.match(r"== (before|after) (rentals|commands)", line)
    if m:
        current = {"build": m[1], "bench": m[2]}
        runs.append(current)
        continue
    if current is None:
        continue
    if m := re.search(r"rentals started \((\d+)/s\)", line):
        current["starts"] = float(m[1])
    if m := re.search(r"start p50 ([\d.]+) ms, p99 ([\d.]+) ms", line):
        current["start_p50"], current["start_p99"] = float(m[1]), float(m[2])
    if m := re.search(r"bare loop: (\d+) commits/s", line):
        current["bare"] = float(m[1])
    if m := re.search(r"/s for \d+ s: \d+ sent, \d+ executed \((\d+)/s\), p50 ([\d.]+) ms, p99 ([\d.]+) ms", line):
        current["cmd_rate"], current["cmd_p50"], current["cmd_p99"] = float(m[1]), float(m[2]), float(m[3])
    if m := re.search(r"highest sustained rate .*: (\d+) commands/s", line):
        current["best"] = float(m[1])
    if m := re.search(r"^\s+(\d+)/s offered: \d+ sent, \d+ executed \((\d+)/s\), p50 ([\d.]+) ms, p99 ([\d.]+) ms", line):
        step = m[1]
        current[f"step{step}_rate"], current[f"step{step}_p50"], current[f"step{step}_p99"] = float(m[2]), float(m[3]), float(m[4])
# Each command run is set against the bare loop of the rentals run of the same build and round.
bare = {}
for r in runs:
    if r["bench"] == "rentals" and "bare" in r:
        bare.setdefault(r["build"], []).append(r["bare"])
def med(build, bench, key):
    values = [r[key] for r in runs if r["build"] == build and r["bench"] == bench and key in r]
    return (statistics.median(values), len(values)) if values else (float("nan"), 0)
rows = [
    ("rental starts/s", "rentals", "starts", True),
    ("rental start p50 (ms)", "rentals", "start_p50", False),
    ("rental start p99 (ms)", "rentals", "start_p99", False),
    ("bare loop commits/s", "rentals", "bare", None),
    ("commands: p50 right after the warm-up, 1,000/s for 5 s (ms)", "commands", "cmd_p50", False),
    ("commands: p99 right after the warm-up (ms)", "commands", "cmd_p99", False),
    ("commands: p50 at 1,000/s offered (ms)", "commands", "step1000_p50", False),
    ("commands: p99 at 1,000/s offered (ms)", "commands", "step1000_p99", False),
    ("commands: executed/s at 1,500/s offered", "commands", "step1500_rate", True),
    ("commands: p50 at 1,500/s offered (ms)", "commands", "step1500_p50", False),
    ("commands: highest sustained rate (/s)", "commands", "best", True),
]
print(f"\nmedians of the runs ({short} = before; the working tree = after); per 1,000 bare commits/s where it is a rate")
print(f"| figure | before | after | after / before | before per 1k bare | after per 1k bare | ratio of those |")
print("|---|---|---|---|---|---|---|")
for label, bench, key, is_rate in rows:
    (b, nb), (a, na) = med("before", bench, key), med("after", bench, key)
    cells = [label, f"{b:.1f} ({nb} runs)", f"{a:.1f} ({na} runs)", f"{a / b:.2f}" if b else "-"]
    if is_rate:
        bb, ba = statistics.median(bare.get("before", [float("nan")])), statistics.median(bare.get("after", [float("nan")]))
        rb, ra = 1000 * b / bb, 1000 * a / ba
        cells += [f"{rb:.1f}", f"{ra:.1f}", f"{ra / rb:.2f}"]
    else:
        cells += ["", "", ""]
    print("| " + " | ".join(cells) + " |")
print(f"\nevery run's output: {log}")
EOF
