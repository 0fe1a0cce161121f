#!/usr/bin/env bash
# The gateway's cost: `hoist build --addr` sent as buildx sends it (HOIST_BUILD_VIA_GATEWAY=1:
# Control.Solve with an empty frontend, then LLBBridge Ping/Solve/Return) against the direct
# `dockerfile.v0` Solve, on hoistd and — as the peer — on the BuildKit inside dockerd (the
# same client, `--addr docker-daemon --network host`), side by side in one run.
# Workloads (local context through the session, no output: the result stays in the cache):
#   parallel  four independent stages of `RUN sleep 1` joined by COPY --from, cold
#             (--no-cache) and cached
#   small     one COPY of one file, cached: the per-build overhead of the extra calls
# Prints mean wall times (hyperfine) and the ratios gateway/direct per daemon.
# Base image: localhost:5000/busybox:latest from ../../shared/tools/peers.sh.
# Usage (root): scripts/bench/gateway.sh [RUNS]   (default 5 runs after a warm-up)
# PROFILE=debug uses target/debug binaries instead of building release ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
BASE=${BENCH_BASE:-localhost:5000/busybox:latest}
PROFILE=${PROFILE:-release}
for tool in hyperfine python3 curl; do
  command -v "$tool" >/dev/null || { echo "gateway.sh: $tool is not installed" >&2; exit 1; }
done
curl -sf "http://${BASE%%/*}/v2/" >/dev/null || { echo "gateway.sh: no registry serving $BASE" >&2; exit 1; }
/usr/bin/docker info >/dev/null 2>&1 || { echo "gateway.sh: dockerd is not running" >&2; exit 1; }
if [ "$PROFILE" = release ]; then cargo build --release --locked -q -p hoist-cli -p hoistd; fi
HOIST=$PWD/target/$PROFILE/hoist
HOISTD=$PWD/target/$PROFILE/hoistd
W=$(mktemp -d /tmp/hoist-bench-gateway.XXXXXX)
DAEMON_PID=""
cleanup() {
  [ -z "$DAEMON_PID" ] || { kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null || true; }
  rm -rf "$W"
}
trap cleanup EXIT

printf '[registry."%s"]\nhttp = true\n' "${BASE%%/*}" > "$W/registries.toml"
"$HOISTD" --root "$W/hoistd-state" --config "$W/registries.toml" --addr "unix://$W/d.sock" 2> "$W/hoistd.log" &
DAEMON_PID=$!
for _ in $(seq 300); do grep -q '^hoistd: worker ' "$W/hoistd.log" && break; sleep 0.1; done
grep -q '^hoistd: worker ' "$W/hoistd.log" || { echo "gateway.sh: hoistd did not start" >&2; cat "$W/hoistd.log" >&2; exit 1; }

mkdir -p "$W/parallel" "$W/small"
{
  for s in 1 2 3 4; do printf 'FROM %s AS s%d\nRUN sleep 1 && echo %d > /out%d\n\n' "$BASE" $s $s $s; done
  printf 'FROM %s\n' "$BASE"
  for s in 1 2 3 4; do printf 'COPY --from=s%d /out%d /\n' $s $s; done
} > "$W/parallel/Dockerfile"
printf 'FROM %s\nCOPY a.txt /\n' "$BASE" > "$W/small/Dockerfile"
echo small > "$W/small/a.txt"

addr() { case $1 in hoistd) echo "unix://$W/d.sock";; dockerd) echo "docker-daemon:///var/run/docker.sock";; esac; }
build() { # build DAEMON PATH(direct|gateway) WORKLOAD FLAGS
  local env=""
  [ "$2" = direct ] || env="HOIST_BUILD_VIA_GATEWAY=1 "
  echo "env ${env}$HOIST --root $W/client-state build --addr $(addr "$1") --network host --progress quiet $4 $W/$3"
}
for d in hoistd dockerd; do for p in direct gateway; do for wl in parallel small; do
  eval "$(build $d $p $wl '')" >/dev/null
done; done; done

declare -A MEAN
measure() { # measure NAME COMMAND: hyperfine's mean, in seconds, into MEAN[NAME]
  local name=$1; shift
  hyperfine --style none --runs "$RUNS" --export-json "$W/h.json" "$@" >/dev/null 2>&1 || {
    echo "gateway.sh: '$name' failed: $*" >&2; exit 1; }
  MEAN[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$W/h.json")
  printf '  %-28s %8.3f s\n' "$name" "${MEAN[$name]}" >&2
}
for d in hoistd dockerd; do for p in direct gateway; do
  measure "$d parallel cold $p" "$(build $d $p parallel --no-cache)"
  measure "$d parallel cached $p" "$(build $d $p parallel '')"
  measure "$d small cached $p" "$(build $d $p small '')"
done; done
echo "  gateway builds hoistd served: $(grep -c '^hoistd: gateway Return ' "$W/hoistd.log")" >&2

{ for k in "${!MEAN[@]}"; do echo "$k=${MEAN[$k]}"; done; } | python3 -c '
import sys
m = {k: float(v) for k, v in (line.strip().split("=") for line in sys.stdin)}
print("| workload | hoistd direct s | hoistd gateway s | gateway/direct | dockerd direct s | dockerd gateway s | gateway/direct |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for wl in ("parallel cold", "parallel cached", "small cached"):
    row = [wl]
    for d in ("hoistd", "dockerd"):
        a, b = m[f"{d} {wl} direct"], m[f"{d} {wl} gateway"]
        row += [f"{a:.3f}", f"{b:.3f}", f"{b/a:.2f}"]
    print("| " + " | ".join(row) + " |")
'
