#!/usr/bin/env bash
# Export benchmark (issue 14): a RUN writing 272 MB of base64 text, built and pushed with gzip
# layers, from a fresh state each run:
#   hoist     hoist build --push (release build) into a new --root
#   BuildKit  DOCKER_BUILDKIT=1 docker build + docker push, after docker builder prune -af and
#             rmi of the previous image (dockerd compresses the layer on push)
# Both push to the registry on localhost:5000 (the layer is new random text each run, so no
# blob is ever there already). Median of RUNS runs each, the ratio hoist/BuildKit, hoist's
# peak RSS (/usr/bin/time -v) and the pushed layer sizes (gzip ratio of each tool).
# Usage (root, after ../shared/tools/peers.sh): scripts/bench/export.sh [RUNS]  (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
REGISTRY=${BENCH_REGISTRY:-localhost:5000}
BASE=${BENCH_BASE:-$REGISTRY/busybox:latest}
DOCKER=/usr/bin/docker
$DOCKER info >/dev/null 2>&1 || { echo "export.sh: dockerd is not running (run ../shared/tools/peers.sh)" >&2; exit 1; }
curl -sf "http://$REGISTRY/v2/" >/dev/null || { echo "export.sh: no registry on $REGISTRY" >&2; exit 1; }

cargo build --release --locked -q -p hoist-cli
HOIST=$PWD/target/release/hoist
W=$(mktemp -d /tmp/hoist-bench-export.XXXXXX)
trap 'rm -rf "$W"; $DOCKER rmi -f $REGISTRY/bench-export-docker:latest >/dev/null 2>&1 || true' EXIT
mkdir -p "$W/ctx"
# 204 MiB of random bytes as base64: 272 MiB of text (plus busybox's line breaks).
printf 'FROM %s\nRUN head -c 213909504 /dev/urandom | base64 > /big\n' "$BASE" > "$W/ctx/Dockerfile"

now() { date +%s.%N; }
layer_size() { # repository → size of the manifest's last layer
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/$1/manifests/latest" | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][-1]["size"])'
}

echo "load before: $(uptime)"
for i in $(seq "$RUNS"); do
  rm -rf "$W/state"
  start=$(now)
  /usr/bin/time -v -o "$W/time-$i" "$HOIST" --root "$W/state" build --progress quiet \
    --push -t "$REGISTRY/bench-export-hoist:latest" "$W/ctx" >/dev/null
  end=$(now)
  echo "hoist $(echo "$end - $start" | bc -l) $(awk -F': ' '/Maximum resident/ {print $2}' "$W/time-$i")" >> "$W/results"
  hoist_layer=$(layer_size bench-export-hoist)

  $DOCKER builder prune -af >/dev/null
  $DOCKER rmi -f "$REGISTRY/bench-export-docker:latest" >/dev/null 2>&1 || true
  start=$(now)
  DOCKER_BUILDKIT=1 $DOCKER build -q --network=host -t "$REGISTRY/bench-export-docker:latest" "$W/ctx" >/dev/null
  $DOCKER push -q "$REGISTRY/bench-export-docker:latest" >/dev/null
  end=$(now)
  echo "docker $(echo "$end - $start" | bc -l) 0" >> "$W/results"
  docker_layer=$(layer_size bench-export-docker)
  echo "run $i: $(tail -2 "$W/results" | tr '\n' ' ') layer bytes: hoist $hoist_layer, BuildKit $docker_layer"
done
echo "load after: $(uptime)"
python3 - "$W/results" <<'PY'
import statistics, sys
times, rss = {"hoist": [], "docker": []}, []
for line in open(sys.argv[1]):
    tool, secs, kib = line.split()
    times[tool].append(float(secs))
    if tool == "hoist":
        rss.append(int(kib))
h, d = statistics.median(times["hoist"]), statistics.median(times["docker"])
print(f"272 MB layer, build + push (gzip), median of {len(times['hoist'])}:")
print(f"  hoist {h:.2f} s, BuildKit (docker build + docker push) {d:.2f} s, hoist/BuildKit {h/d:.2f}")
print(f"  hoist peak RSS {max(rss)/1024:.1f} MiB (max over runs)")
PY
