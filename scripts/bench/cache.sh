#!/usr/bin/env bash
# Cache export benchmark (issue 13): how long carrying the cache costs next to pushing.
#
# Workloads, each timed against a fresh, empty registry (so every blob is uploaded), from a
# warm state where the build itself is cached (the RUN does not run again; only the export
# is paid):
#   max     `hoist build --cache-to type=registry,mode=max` of a build whose intermediate
#           stage writes a 200 MiB layer (the final image holds 20 bytes of it), vs
#   push    `hoist build --push` of an image whose one layer is that same 200 MiB layer:
#           the cache export must not take noticeably longer than pushing the layer once.
#   inline  dockerd's BuildKit inline cache (`DOCKER_BUILDKIT=1 docker build --build-arg
#           BUILDKIT_INLINE_CACHE=1` + `docker push`) vs hoist's `--cache-to type=inline
#           --push`, both of the 200 MiB image, both gzip.
# The layer is 200 MiB of decimal numbers (compressible like real files), as build.sh's.
# Base image: localhost:5000/busybox:latest from ../../shared/tools/peers.sh.
# Prints mean wall times and the ratios, and `uptime` (the machine may be shared).
# Usage (root): scripts/bench/cache.sh [RUNS]   (default 3; HOIST=path overrides the binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
BASE=${BENCH_BASE:-localhost:5000/busybox:latest}
DOCKER=/usr/bin/docker
for tool in docker-registry python3 curl; do
  command -v "$tool" >/dev/null || { echo "cache.sh: $tool is not installed (run ../shared/tools/peers.sh)" >&2; exit 1; }
done
$DOCKER info >/dev/null 2>&1 || { echo "cache.sh: dockerd is not running (run ../shared/tools/peers.sh)" >&2; exit 1; }
curl -sf "http://${BASE%%/*}/v2/" >/dev/null || { echo "cache.sh: no registry serving $BASE" >&2; exit 1; }

if [ -z "${HOIST:-}" ]; then
  cargo build --release --locked -q -p hoist-cli
  HOIST=$PWD/target/release/hoist
fi
W=$(mktemp -d /tmp/hoist-bench-cache.XXXXXX)
REG_PID=""
stop_registry() { [ -z "$REG_PID" ] || { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; REG_PID=""; }; }
cleanup() {
  stop_registry
  $DOCKER rmi -f bench-cache-big >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/inter" "$W/big"
RUN_BIG='RUN seq 1 40000000 | head -c 209715200 > /big'
printf 'FROM %s AS build\n%s\nRUN wc -c < /big > /size\nFROM %s\nCOPY --from=build /size /size\n' \
  "$BASE" "$RUN_BIG" "$BASE" > "$W/inter/Dockerfile"
printf 'FROM %s\n%s\n' "$BASE" "$RUN_BIG" > "$W/big/Dockerfile"

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
  echo "cache.sh: docker-registry did not start" >&2; exit 1
}

H="$HOIST --root $W/hoist-state build --progress quiet"
command_for() { # command_for WORKLOAD: the command, against $HOST
  case $1 in
    max) echo "$H -o type=cacheonly --cache-to type=registry,ref=$HOST/cache:max,mode=max $W/inter" ;;
    push) echo "$H --push -t $HOST/big:push $W/big" ;;
    inline-hoist) echo "$H --cache-to type=inline --push -t $HOST/big:inline $W/big" ;;
    inline-docker) echo "DOCKER_BUILDKIT=1 $DOCKER build -q --network=host --build-arg BUILDKIT_INLINE_CACHE=1 -t $HOST/big:inline $W/big && $DOCKER push -q $HOST/big:inline" ;;
  esac
}
once() { # once WORKLOAD: seconds, against a fresh registry
  start_registry
  local cmd t0 t1
  cmd=$(command_for "$1")
  t0=$(date +%s.%N); eval "$cmd" >/dev/null; t1=$(date +%s.%N)
  [ "$1" != inline-docker ] || $DOCKER rmi "$HOST/big:inline" >/dev/null
  python3 -c "print($t1 - $t0)"
}

# Warm up: every build has run once, its layer compressed once (hoist keeps the gzip copy
# as a store variant; dockerd compresses again on every push to a new registry).
$DOCKER pull -q "$BASE" >/dev/null
for wl in max push inline-hoist inline-docker; do once "$wl" >/dev/null; done

declare -A MEAN
for wl in max push inline-hoist inline-docker; do
  total=0
  for _ in $(seq "$RUNS"); do total=$(python3 -c "print($total + $(once "$wl"))"); done
  MEAN[$wl]=$(python3 -c "print($total / $RUNS)")
  printf '  %-14s %8.2f s\n' "$wl" "${MEAN[$wl]}" >&2
done

python3 - "${MEAN[max]}" "${MEAN[push]}" "${MEAN[inline-hoist]}" "${MEAN[inline-docker]}" <<'PY'
import sys
mx, push, ih, idk = map(float, sys.argv[1:])
print("| workload | seconds | ratio |")
print("| --- | ---: | ---: |")
print(f"| hoist --cache-to registry mode=max (200 MiB intermediate layer) | {mx:.2f} | {mx/push:.2f} of --push |")
print(f"| hoist --push of the 200 MiB layer | {push:.2f} | 1.00 |")
print(f"| hoist --cache-to type=inline --push | {ih:.2f} | {ih/idk:.2f} of dockerd |")
print(f"| dockerd BuildKit inline cache build + push | {idk:.2f} | 1.00 |")
PY
echo "uptime: $(uptime)"
