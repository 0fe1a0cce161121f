#!/usr/bin/env bash
# Context transfer through a BuildKit session, side by side: `hoist build --addr docker-daemon`
# (hoist-session's fsutil sender over dockerd's /session) against the docker CLI's own
# BuildKit path (`DOCKER_BUILDKIT=1 docker build`), both on the running dockerd.
#
# The context holds N files (default 20000, 64 bytes each, 100 directories). The Dockerfile
# copies the whole context in one stage and exports one small file from another, so the time
# is the transfer and the copy, not the export. Three builds per tool, each its own context
# directory (a fresh copy for the daemon) with a nonce file, so no earlier run's cache
# answers: cold (the daemon has no copy), warm (nothing changed: all cached), one file
# touched (the daemon asks for that file only; the COPY runs again). Prints a markdown table.
#
# Usage: scripts/bench/session_context.sh [N]   (needs root, dockerd, a built hoist at
# $HOIST, default target/release/hoist, else target/debug/hoist)
set -euo pipefail
N=${1:-20000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HOIST=${HOIST:-$ROOT/target/release/hoist}
[ -x "$HOIST" ] || HOIST=$ROOT/target/debug/hoist
DOCKER=${DOCKER:-/usr/bin/docker}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

make_context() {
  local dir=$1
  mkdir -p "$dir"
  python3 - "$dir" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d" % i), "w") as f:
        f.write(("%064d" % i)[:63] + "\n")
PY
  # Content no earlier run had, so the daemon's COPY cache never answers for it.
  echo "$dir $(date +%s%N)" > "$dir/nonce"
  printf 'FROM scratch AS all\nCOPY . /ctx/\nFROM scratch\nCOPY --from=all /ctx/Dockerfile /\n' > "$dir/Dockerfile"
}

seconds() { # runs "$@", prints wall seconds
  local start end
  start=$(date +%s.%N)
  "$@" >"$WORK/log" 2>&1 || { cat "$WORK/log" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

hoist_build() { "$HOIST" --root "$WORK/hoist-state" build --addr docker-daemon --progress plain -o "type=local,dest=$WORK/out-h" "$1"; }
docker_build() { DOCKER_BUILDKIT=1 "$DOCKER" build --progress plain -o "type=local,dest=$WORK/out-d" "$1"; }

echo "| tool | cold s | warm s | one file touched s |"
echo "| --- | ---: | ---: | ---: |"
for tool in hoist docker; do
  ctx=$WORK/ctx-$tool
  make_context "$ctx"
  cold=$(seconds ${tool}_build "$ctx")
  warm=$(seconds ${tool}_build "$ctx")
  echo changed >> "$ctx/d007/f000007"
  touched=$(seconds ${tool}_build "$ctx")
  echo "| $tool | $cold | $warm | $touched |"
done
