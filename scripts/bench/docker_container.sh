#!/usr/bin/env bash
# docker-container driver benchmark: what a builder in a Docker container costs.
#
#   bootstrap, cold   `hoist create --driver docker-container --bootstrap` with no hoistd
#                     image in the daemon: image assembled from hoistd + libraries, loaded,
#                     container created and started, first answer over the dial
#   bootstrap, warm   the same with the image already loaded (hoistd's digest checked)
#   inspect           status + Info + ListWorkers over `exec hoistd dial-stdio`
#   rebuild           a cached build of a URL context (RUN + COPY on busybox), pushed, on the
#                     docker-container builder and on the embedded engine
#   rm                container and volume removed
#
# Base image: localhost:5000/busybox:latest from ../../shared/tools/peers.sh; the context is
# served by python3's http.server on 127.0.0.1. HOIST: the hoist binary (hoistd beside it),
# default target/debug/hoist.
# Usage (root): scripts/bench/docker_container.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
HOIST=${HOIST:-$PWD/target/debug/hoist}
BASE=${BENCH_BASE:-localhost:5000/busybox:latest}
SOCK=/var/run/docker.sock
for tool in hyperfine python3 curl; do
  command -v "$tool" >/dev/null || { echo "docker_container.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$HOIST" ] && [ -x "$(dirname "$HOIST")/hoistd" ] || {
  echo "docker_container.sh: no $HOIST with hoistd beside it (cargo build -p hoist-cli -p hoistd)" >&2; exit 1; }
curl -sf --unix-socket $SOCK http://docker/_ping >/dev/null || { echo "docker_container.sh: no dockerd at $SOCK" >&2; exit 1; }
curl -sf "http://${BASE%%/*}/v2/" >/dev/null || { echo "docker_container.sh: no registry serving $BASE" >&2; exit 1; }

WORK=$(mktemp -d)
export HOIST_BUILDERS_DIR=$WORK/builders
VERSION=$("$HOIST" --version | awk '{print $2}')
IMAGE=hoist/hoistd:$VERSION
B=dcbench
cleanup() {
  "$HOIST" rm "$B" >/dev/null 2>&1 || true
  curl -s -X DELETE --unix-socket $SOCK "http://docker/images/$IMAGE" >/dev/null || true
  [ -n "${HTTP_PID:-}" ] && kill "$HTTP_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/ctx" "$WORK/srv"
printf 'FROM %s\nRUN echo hi > /hello\nCOPY a.txt /\n' "$BASE" > "$WORK/ctx/Dockerfile"
echo alpha > "$WORK/ctx/a.txt"
tar -C "$WORK/ctx" -cf "$WORK/srv/ctx.tar" Dockerfile a.txt
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$WORK/srv" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
HTTP_PID=$!
sleep 1
URL=http://127.0.0.1:$PORT/ctx.tar
TAG=${BASE%%/*}/hoist-bench-dc/x:1

rmimage="curl -s -X DELETE --unix-socket $SOCK http://docker/images/$IMAGE >/dev/null"
rmbuilder="$HOIST rm $B >/dev/null 2>&1 || true"
create="$HOIST create --name $B --driver docker-container --bootstrap"
hyperfine --runs "$RUNS" --prepare "$rmbuilder; $rmimage" -n "bootstrap, cold" "$create"
hyperfine --runs "$RUNS" --prepare "$rmbuilder" -n "bootstrap, warm" "$create"
hyperfine --runs "$RUNS" -n "inspect" "$HOIST inspect $B"
build="build --progress quiet -t $TAG --push $URL"
"$HOIST" --root "$WORK/state" $build >/dev/null
"$HOIST" build --builder $B --progress quiet -t "$TAG" --push "$URL" >/dev/null
hyperfine --runs "$RUNS" \
  -n "rebuild, docker-container" "$HOIST build --builder $B --progress quiet -t $TAG --push $URL" \
  -n "rebuild, embedded" "$HOIST --root $WORK/state $build"
hyperfine --runs "$RUNS" --prepare "$HOIST create --name $B --driver docker-container --bootstrap >/dev/null 2>&1 || true" \
  -n "rm" "$HOIST rm $B"
