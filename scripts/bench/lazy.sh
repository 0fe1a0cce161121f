#!/usr/bin/env bash
# Lazy base layers benchmark: hoist against BuildKit (inside Debian's dockerd 20.10), side by
# side in one run.
#
# The base: an image of three layers of 100 MiB of random bytes each (on busybox), built and
# pushed once by hoist to a fresh docker-registry this script starts on 127.0.0.1. The
# workload: `FROM <base>` + a copy of one small file + a push to the same registry (a new
# repository every run), from a fresh state:
#   hoist     `COPY --link small /small`, `hoist build --push` with an empty --root: the base
#             layers are never downloaded; the push mounts them from the base's repository
#   BuildKit  `COPY small /small` (dockerd 20.10 has no --link), `docker build` then
#             `docker push`, after `docker builder prune -af` and removing the images: the
#             base is pulled and unpacked, the push mounts its layers as well
# Prints each run's wall time, the medians and the ratio hoist/BuildKit.
# Usage (root): scripts/bench/lazy.sh [RUNS]   (default 3; base image from
# localhost:5000/busybox:latest, ../../shared/tools/peers.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
BASE=${BENCH_BASE:-localhost:5000/busybox:latest}
DOCKER=/usr/bin/docker
for tool in docker-registry python3 curl; do
  command -v "$tool" >/dev/null || { echo "lazy.sh: $tool is not installed (run ../shared/tools/peers.sh)" >&2; exit 1; }
done
$DOCKER info >/dev/null 2>&1 || { echo "lazy.sh: dockerd is not running (run ../shared/tools/peers.sh)" >&2; exit 1; }
curl -sf "http://${BASE%%/*}/v2/" >/dev/null || { echo "lazy.sh: no registry serving $BASE" >&2; exit 1; }

cargo build --release --locked -q -p hoist-cli
HOIST=$PWD/target/release/hoist
W=$(mktemp -d /tmp/hoist-bench-lazy.XXXXXX)
REG_PID=""
cleanup() {
  [ -z "$REG_PID" ] || { kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; }
  $DOCKER images --format '{{.Repository}}:{{.Tag}}' | grep "^${HOST:-none}/" | xargs -r $DOCKER rmi -f >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

# A registry of our own, so that the 300 MiB base and the pushed copies go with it.
mkdir -p "$W/reg"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
  "$W/reg/storage" "$PORT" > "$W/reg/config.yml"
docker-registry serve "$W/reg/config.yml" > "$W/reg/log" 2>&1 &
REG_PID=$!
HOST=127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "http://$HOST/v2/" >/dev/null && break; sleep 0.1; done
curl -sf "http://$HOST/v2/" >/dev/null || { echo "lazy.sh: docker-registry did not start" >&2; exit 1; }

# --- the base, once ----------------------------------------------------------------------------
mkdir -p "$W/base" "$W/hoist" "$W/docker"
{
  printf 'FROM %s\n' "$BASE"
  for n in 1 2 3; do printf 'RUN head -c 104857600 /dev/urandom > /layer%d\n' $n; done
} > "$W/base/Dockerfile"
"$HOIST" --root "$W/base-state" build --progress quiet -o "type=registry,name=$HOST/big-base:1" "$W/base"
rm -rf "$W/base-state"
echo small > "$W/hoist/small"
cp "$W/hoist/small" "$W/docker/small"
printf 'FROM %s/big-base:1\nCOPY --link small /small\n' "$HOST" > "$W/hoist/Dockerfile"
printf 'FROM %s/big-base:1\nCOPY small /small\n' "$HOST" > "$W/docker/Dockerfile"

# --- runs -----------------------------------------------------------------------------------
docker_fresh() {
  $DOCKER builder prune -af >/dev/null
  $DOCKER images --format '{{.Repository}}:{{.Tag}}' | grep "^$HOST/" | xargs -r $DOCKER rmi -f >/dev/null 2>&1 || true
}
seconds() { # seconds COMMAND: wall time of one run
  local t0 t1
  t0=$(date +%s.%N); eval "$1" >/dev/null; t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)"
}
HOIST_T=(); DOCKER_T=()
for i in $(seq "$RUNS"); do
  rm -rf "$W/hoist-state"
  t=$(seconds "$HOIST --root $W/hoist-state build --progress quiet --push -t $HOST/app-hoist-$i $W/hoist")
  HOIST_T+=("$t")
  docker_fresh
  t=$(seconds "DOCKER_BUILDKIT=1 $DOCKER build -q --network=host -t $HOST/app-docker-$i $W/docker && $DOCKER push -q $HOST/app-docker-$i")
  DOCKER_T+=("$t")
  printf '  run %d: hoist %6.2f s   BuildKit %6.2f s\n' "$i" "${HOIST_T[-1]}" "${DOCKER_T[-1]}" >&2
done
# What hoist's state dir holds after its build: no base layer.
du -sh "$W/hoist-state" | sed 's/^/  hoist state dir after a run: /' >&2
rm -rf "$W/hoist-state"
docker_fresh

python3 - "${HOIST_T[*]}" "${DOCKER_T[*]}" <<'PY'
import statistics, sys
h = [float(x) for x in sys.argv[1].split()]
d = [float(x) for x in sys.argv[2].split()]
mh, md = statistics.median(h), statistics.median(d)
print("| workload | hoist s | BuildKit s | hoist/BuildKit |")
print("| --- | ---: | ---: | ---: |")
print(f"| FROM 3 x 100 MiB + COPY --link + push (median of {len(h)}) | {mh:.2f} | {md:.2f} | {mh/md:.2f} |")
PY
