#!/usr/bin/env bash
# Build benchmark: hoist against BuildKit (inside Debian's dockerd: `DOCKER_BUILDKIT=1 docker
# build --network=host`) and buildah (`buildah bud --isolation chroot`), side by side in one run.
#
# Workloads (each built cold with --no-cache, then rebuilt with nothing changed):
#   parallel  four independent stages of `RUN sleep 1` joined by COPY --from in a final stage
#   context   a context of 20 000 files of 1 KiB, `COPY . /app`
#   big       one RUN writing a 200 MiB generated (compressible) file: one layer
# and the export of `big` with gzip: the cached image pushed to a fresh, empty registry with
# its 200 MiB layer compressed on the way (hoist: force-compression=true; dockerd: docker push
# compresses the layer it stores uncompressed; buildah: buildah push, gzip).
#
# Every builder keeps its result in its own store with uncompressed layers, as the peers'
# stores hold them (hoist: its state dir through type=image,compression=uncompressed;
# BuildKit: dockerd's image store; buildah: containers-storage); gzip is paid at export, in
# the export row. hoist's default type=image (gzip layers) is timed too, on its own line.
# Base image:
# localhost:5000/busybox:latest from ../../shared/tools/peers.sh (or scripts/quickstart.sh).
# Prints mean wall times (hyperfine) and the ratios hoist/BuildKit and hoist/buildah.
# Usage (root): scripts/bench/build.sh [RUNS]   (default 3 runs after a warm-up)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
BASE=${BENCH_BASE:-localhost:5000/busybox:latest}
DOCKER=/usr/bin/docker
for tool in hyperfine buildah docker-registry python3 curl; do
  command -v "$tool" >/dev/null || { echo "build.sh: $tool is not installed (run ../shared/tools/peers.sh)" >&2; exit 1; }
done
$DOCKER info >/dev/null 2>&1 || { echo "build.sh: dockerd is not running (run ../shared/tools/peers.sh)" >&2; exit 1; }
curl -sf "http://${BASE%%/*}/v2/" >/dev/null || { echo "build.sh: no registry serving $BASE" >&2; exit 1; }

cargo build --release --locked -q -p hoist-cli
HOIST=$PWD/target/release/hoist
W=$(mktemp -d /tmp/hoist-bench-build.XXXXXX)
REG_PID=""
stop_registry() { [ -z "$REG_PID" ] || { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; REG_PID=""; }; }
cleanup() {
  stop_registry
  buildah rmi -f bench-parallel bench-context bench-big >/dev/null 2>&1 || true
  $DOCKER rmi -f bench-parallel bench-context bench-big >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

# --- contexts -----------------------------------------------------------------------------
mkdir -p "$W/parallel" "$W/context/files" "$W/big"
{
  for s in 1 2 3 4; do printf 'FROM %s AS s%d\nRUN sleep 1 && echo %d > /out%d\n\n' "$BASE" $s $s $s; done
  printf 'FROM %s\n' "$BASE"
  for s in 1 2 3 4; do printf 'COPY --from=s%d /out%d /\n' $s $s; done
} > "$W/parallel/Dockerfile"
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
# 200 MiB of decimal numbers: compressible like real text/binaries, cheap to generate.
printf 'FROM %s\nRUN seq 1 40000000 | head -c 209715200 > /big\n' "$BASE" > "$W/big/Dockerfile"

# --- one command per tool and workload -----------------------------------------------------
hoist_build() { echo "$HOIST --root $W/hoist-state build --progress quiet $2 -o type=image,name=bench-$1,compression=uncompressed $W/$1"; }
docker_build() { echo "DOCKER_BUILDKIT=1 $DOCKER build -q --network=host $2 -t bench-$1 $W/$1 >/dev/null"; }
buildah_build() { echo "buildah bud -q --isolation chroot --layers $2 -t bench-$1 $W/$1 >/dev/null"; }

# Warm up: every tool has the base image locally and has built each workload once.
$DOCKER pull -q "$BASE" >/dev/null
buildah pull -q --tls-verify=false "$BASE" >/dev/null
for wl in parallel context big; do
  for t in hoist docker buildah; do eval "$("${t}_build" $wl '')" >/dev/null; done
done

declare -A MEAN
measure() { # measure NAME COMMAND...: hyperfine's mean, in seconds, into MEAN[NAME]
  local name=$1; shift
  hyperfine --style none --runs "$RUNS" --export-json "$W/h.json" "$@" >/dev/null 2>&1 || {
    echo "build.sh: '$name' failed: $*" >&2; exit 1; }
  MEAN[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$W/h.json")
  printf '  %-26s %8.2f s\n' "$name" "${MEAN[$name]}" >&2
}
for wl in parallel context big; do
  for t in hoist docker buildah; do
    measure "$wl cold $t" "$("${t}_build" $wl --no-cache)"
    measure "$wl cached $t" "$("${t}_build" $wl '')"
  done
done

# hoist's default image output: the cold build and the layer's gzip together.
measure "big cold hoist-gzip" "$HOIST --root $W/hoist-state build --progress quiet --no-cache -o type=image,name=bench-big-gzip,compression=gzip,force-compression=true $W/big"

# --- gzip export of the 200 MiB layer to a fresh registry ----------------------------------
start_registry() { # a fresh, empty registry; sets HOST
  stop_registry
  local dir port
  dir=$(mktemp -d "$W/reg.XXXXXX")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
    "$dir/storage" "$port" > "$dir/config.yml"
  docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
  REG_PID=$!
  HOST=127.0.0.1:$port
  for _ in $(seq 100); do curl -sf "http://$HOST/v2/" >/dev/null && return 0; sleep 0.1; done
  echo "build.sh: docker-registry did not start" >&2; exit 1
}
export_once() { # export_once TOOL: seconds to push bench-big, gzip-compressed, to a fresh registry
  start_registry
  local cmd
  case $1 in
    hoist) cmd="$HOIST --root $W/hoist-state build --progress quiet -o type=registry,name=$HOST/big,compression=gzip,force-compression=true $W/big" ;;
    docker) $DOCKER tag bench-big "$HOST/big"; cmd="$DOCKER push -q $HOST/big" ;;
    buildah) cmd="buildah push -q --tls-verify=false --compression-format gzip bench-big docker://$HOST/big" ;;
  esac
  local t0 t1
  t0=$(date +%s.%N); eval "$cmd" >/dev/null; t1=$(date +%s.%N)
  [ "$1" != docker ] || $DOCKER rmi "$HOST/big" >/dev/null
  python3 -c "print($t1 - $t0)"
}
for t in hoist docker buildah; do
  total=0
  for _ in $(seq "$RUNS"); do total=$(python3 -c "print($total + $(export_once $t))"); done
  MEAN["big export $t"]=$(python3 -c "print($total / $RUNS)")
  printf '  %-26s %8.2f s\n' "big export $t" "${MEAN["big export $t"]}" >&2
done

# --- table ----------------------------------------------------------------------------------
{
  for k in "${!MEAN[@]}"; do echo "$k=${MEAN[$k]}"; done
} | python3 -c '
import sys
m = dict(line.strip().split("=") for line in sys.stdin)
m = {k: float(v) for k, v in m.items()}
rows = [(wl, phase) for wl in ("parallel", "context", "big") for phase in ("cold", "cached")] + [("big", "export")]
print(f"| workload | hoist s | BuildKit s | buildah s | hoist/BuildKit | hoist/buildah |")
print(f"| --- | ---: | ---: | ---: | ---: | ---: |")
for wl, phase in rows:
    h, d, b = (m[f"{wl} {phase} {t}"] for t in ("hoist", "docker", "buildah"))
    print(f"| {wl} {phase} | {h:.2f} | {d:.2f} | {b:.2f} | {h/d:.2f} | {h/b:.2f} |")
mib = 200
g, c = m["big cold hoist-gzip"], m["big cold docker"]
print(f"\nhoist big cold with its default gzip image output (build + gzip): {g:.2f} s ({g/c:.2f}x BuildKit cold build)")
h, d = m["big export hoist"], m["big export docker"]
print(f"gzip export throughput: hoist {mib/h:.0f} MiB/s, BuildKit/dockerd {mib/d:.0f} MiB/s ({d/h:.2f}x)")
'
