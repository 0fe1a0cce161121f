#!/usr/bin/env bash
# Cold context, first time: the `context` workload of build.sh (20 000 files of 1 KiB in 100
# directories, `COPY . /app` on busybox) built once from nothing remembered, against BuildKit
# (inside Debian's dockerd 20.10) and a plain `tar -c | tar -x` copy of the same directory.
#   hoist     a fresh, empty --root every run (the base image is fetched too),
#             -o type=image,compression=uncompressed as in build.sh
#   BuildKit  `docker builder prune -af` before every run (no build cache, no context
#             transferred before; the base image stays in dockerd's image store)
#   tar|tar   `tar -C ctx -c . | tar -C fresh -x`, page cache warm like the builders'
# Prints each run's wall time, the medians and the ratios hoist/BuildKit and hoist/tar.
# Usage (root): scripts/bench/cold_context.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
BASE=${BENCH_BASE:-localhost:5000/busybox:latest}
DOCKER=/usr/bin/docker
$DOCKER info >/dev/null 2>&1 || { echo "cold_context.sh: dockerd is not running (run ../shared/tools/peers.sh)" >&2; exit 1; }
curl -sf "http://${BASE%%/*}/v2/" >/dev/null || { echo "cold_context.sh: no registry serving $BASE" >&2; exit 1; }

cargo build --release --locked -q -p hoist-cli
HOIST=$PWD/target/release/hoist
W=$(mktemp -d /tmp/hoist-bench-cold.XXXXXX)
cleanup() {
  $DOCKER rmi -f bench-cold-context >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/context/files"
printf 'FROM %s\nCOPY . /app\n' "$BASE" > "$W/context/Dockerfile"
python3 - "$W/context/files" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d:03}", exist_ok=True)
    for f in range(200):
        with open(f"{root}/d{d:03}/f{f:03}", "wb") as fh:
            fh.write((f"{d:03}/{f:03} ".encode() * 128)[:1024])
PY
# Older than hoist's 2 s "racy" window, as a real checkout is.
sleep 2
$DOCKER pull -q "$BASE" >/dev/null

seconds() { # seconds COMMAND: wall time of one run
  local t0 t1
  t0=$(date +%s.%N); eval "$1" >/dev/null; t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)"
}
H=(); D=(); T=()
for i in $(seq "$RUNS"); do
  rm -rf "$W/hoist-state" "$W/tar-out"; mkdir -p "$W/tar-out"; sync
  H+=("$(seconds "$HOIST --root $W/hoist-state build --progress quiet -o type=image,name=bench-cold-context,compression=uncompressed $W/context")")
  $DOCKER builder prune -af >/dev/null; $DOCKER rmi -f bench-cold-context >/dev/null 2>&1 || true; sync
  D+=("$(seconds "DOCKER_BUILDKIT=1 $DOCKER build -q --network=host -t bench-cold-context $W/context")")
  sync
  T+=("$(seconds "tar -C $W/context -c . | tar -C $W/tar-out -x")")
  printf '  run %d: hoist %5.2f s   BuildKit %5.2f s   tar|tar %5.2f s\n' "$i" "${H[-1]}" "${D[-1]}" "${T[-1]}" >&2
done
rm -rf "$W/hoist-state"
python3 - "${H[*]}" "${D[*]}" "${T[*]}" <<'PY'
import statistics, sys
h, d, t = ([float(x) for x in a.split()] for a in sys.argv[1:4])
mh, md, mt = (statistics.median(x) for x in (h, d, t))
print("| workload | hoist s | BuildKit s | tar\\|tar s | hoist/BuildKit | hoist/tar |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
print(f"| 20,000-file context, first build (median of {len(h)}) | {mh:.2f} | {md:.2f} | {mt:.2f} | {mh/md:.2f} | {mh/mt:.2f} |")
PY
