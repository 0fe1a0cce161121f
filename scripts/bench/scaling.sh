#!/usr/bin/env bash
# Scaling table (issue 14): how hoist's and BuildKit's costs grow with the work, side by side
# in one run; BuildKit is the one inside Debian's dockerd 20.10 (`DOCKER_BUILDKIT=1 docker
# build --network=host`). Rows:
#   context N files, cold    a context of N small files (1 KiB, 200 per directory), `COPY . /app`
#                            on busybox: hoist from a fresh, empty --root (the base image is
#                            fetched too); BuildKit after `docker builder prune -af`
#   context N files, cached  the same build again, nothing changed (same state)
#   50 RUN steps, cold       a Dockerfile of STEPS `RUN echo i > /fi` steps, one layer each
#   50 RUN steps, cached     the same build again
#   layer of S MiB           one RUN writing S MiB (`head -c S /dev/zero`), cold, from a fresh
#                            state: the RUN, the diff, the layer's tar and digest, the store
# Every hoist build outputs `-o type=image,name=…,compression=uncompressed` (layers kept as
# dockerd's image store keeps them, as build.sh does); gzip is measured by export.sh.
# Each row is the median of RUNS runs; the table gives both tools' seconds, the ratio
# hoist/BuildKit, and each tool's seconds per unit of work (per 1,000 files, per step, per
# 100 MiB), so a cost that grows faster than the work shows as a growing per-unit column.
#
# Sizes by environment, for a quick run:
#   SCALING_FILES   file counts          (default "2000 20000 200000")
#   SCALING_STEPS   RUN steps             (default 50; "" leaves the rows out)
#   SCALING_LAYERS  layer sizes in MiB    (default "50 500 2048")
# e.g. SCALING_FILES="2000 20000" SCALING_LAYERS="50 200" scripts/bench/scaling.sh 1
# Usage (root, after ../shared/tools/peers.sh): scripts/bench/scaling.sh [RUNS]  (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
FILES=${SCALING_FILES-2000 20000 200000}
STEPS=${SCALING_STEPS-50}
LAYERS=${SCALING_LAYERS-50 500 2048}
BASE=${BENCH_BASE:-localhost:5000/busybox:latest}
DOCKER=/usr/bin/docker
$DOCKER info >/dev/null 2>&1 || { echo "scaling.sh: dockerd is not running (run ../shared/tools/peers.sh)" >&2; exit 1; }
curl -sf "http://${BASE%%/*}/v2/" >/dev/null || { echo "scaling.sh: no registry serving $BASE" >&2; exit 1; }

cargo build --release --locked -q -p hoist-cli
HOIST=$PWD/target/release/hoist
W=$(mktemp -d /tmp/hoist-bench-scaling.XXXXXX)
cleanup() {
  $DOCKER rmi -f bench-scaling >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT
$DOCKER pull -q "$BASE" >/dev/null

# --- contexts -----------------------------------------------------------------------------
for n in $FILES; do
  mkdir -p "$W/files-$n/files"
  printf 'FROM %s\nCOPY . /app\n' "$BASE" > "$W/files-$n/Dockerfile"
  python3 - "$W/files-$n/files" "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d, f = divmod(i, 200)
    if f == 0:
        os.makedirs(f"{root}/d{d:04}", exist_ok=True)
    with open(f"{root}/d{d:04}/f{f:03}", "wb") as fh:
        fh.write((f"{d:04}/{f:03} ".encode() * 128)[:1024])
PY
done
if [ -n "$STEPS" ]; then
  mkdir -p "$W/steps"
  { printf 'FROM %s\n' "$BASE"; for i in $(seq "$STEPS"); do printf 'RUN echo %d > /f%d\n' "$i" "$i"; done; } \
    > "$W/steps/Dockerfile"
fi
for mib in $LAYERS; do
  mkdir -p "$W/layer-$mib"
  # No `yes | head`: a RUN under hoist's built-in runtime inherits SIGPIPE ignored, so
  # `yes` never ends (see docs/benchmarks.md); a file of zero bytes costs the RUN least.
  printf 'FROM %s\nRUN head -c %d /dev/zero > /big\n' "$BASE" $((mib << 20)) > "$W/layer-$mib/Dockerfile"
done
# Older than hoist's 2 s "racy" window, as a real checkout is.
sleep 2

seconds() { # seconds COMMAND: wall time of one run
  local t0 t1
  t0=$(date +%s.%N); eval "$1" >/dev/null; t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)"
}
hoist_build() { seconds "$HOIST --root $W/hoist-state build --progress quiet -o type=image,name=bench-scaling,compression=uncompressed $W/$1"; }
docker_build() { seconds "DOCKER_BUILDKIT=1 $DOCKER build -q --network=host -t bench-scaling $W/$1"; }
fresh() { # no state left from any earlier build on either side
  rm -rf "$W/hoist-state"
  $DOCKER builder prune -af >/dev/null; $DOCKER rmi -f bench-scaling >/dev/null 2>&1 || true
  sync
}

# ROW|UNITS|UNIT NAME|tool|seconds, one line per measurement
OUT=$W/results
record() { echo "$1|$2|$3|$4|$5" >> "$OUT"; printf '  %-34s %-8s %7.2f s\n' "$1" "$4" "$5" >&2; }
cold_and_cached() { # cold_and_cached DIR ROW-PREFIX UNITS UNIT
  local i h d
  for i in $(seq "$RUNS"); do
    fresh
    h=$(hoist_build "$1"); d=$(docker_build "$1")
    record "$2, cold" "$3" "$4" hoist "$h"; record "$2, cold" "$3" "$4" BuildKit "$d"
    h=$(hoist_build "$1"); d=$(docker_build "$1")
    record "$2, cached" "$3" "$4" hoist "$h"; record "$2, cached" "$3" "$4" BuildKit "$d"
  done
}

echo "load before: $(uptime)" >&2
for n in $FILES; do cold_and_cached "files-$n" "context of $n files" "$(python3 -c "print($n / 1000)")" "1,000 files"; done
[ -z "$STEPS" ] || cold_and_cached steps "$STEPS RUN steps" "$STEPS" step
for mib in $LAYERS; do
  for i in $(seq "$RUNS"); do
    fresh
    record "layer of $mib MiB, cold" "$(python3 -c "print($mib / 100)")" "100 MiB" hoist "$(hoist_build "layer-$mib")"
    record "layer of $mib MiB, cold" "$(python3 -c "print($mib / 100)")" "100 MiB" BuildKit "$(docker_build "layer-$mib")"
  done
done
fresh
echo "load after: $(uptime)" >&2

python3 - "$OUT" "$RUNS" <<'PY'
import statistics, sys
rows, order = {}, []
for line in open(sys.argv[1]):
    row, units, unit, tool, secs = line.rstrip("\n").split("|")
    if row not in rows:
        order.append(row)
        rows[row] = {"units": float(units), "unit": unit, "hoist": [], "BuildKit": []}
    rows[row][tool].append(float(secs))
print(f"Median of {sys.argv[2]} run(s) per row; per-unit columns in seconds.\n")
print("| workload | hoist s | BuildKit s | hoist/BuildKit | hoist per unit | BuildKit per unit |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for row in order:
    r = rows[row]
    h, d = statistics.median(r["hoist"]), statistics.median(r["BuildKit"])
    u = r["units"]
    print(f"| {row} | {h:.2f} | {d:.2f} | {h/d:.2f} | {h/u:.3f} / {r['unit']} | {d/u:.3f} / {r['unit']} |")
PY
