#!/usr/bin/env bash
# Context transfer through a session: the docker CLI 20.10 (DOCKER_BUILDKIT=1) sending a
# 20,000-file context (100 dirs x 200 small files) to hoistd's Engine API front door and to
# dockerd, a first build and a rebuild after one file changed. Prints seconds per build.
#
# Usage: HOISTD=target/release/hoistd scripts/bench/context-transfer.sh
# Needs root, /usr/bin/docker; dockerd on /var/run/docker.sock for its column (skipped when
# down). The Dockerfile is `FROM scratch` + one COPY, so the time is the transfer's.
set -euo pipefail
HOISTD=${HOISTD:-target/debug/hoistd}
DOCKER=${DOCKER:-/usr/bin/docker}
work=$(mktemp -d /tmp/hoist-bench-ctx.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/ctx"
python3 - "$work/ctx" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d:03}")
    for f in range(200):
        with open(f"{root}/d{d:03}/f{f:03}", "w") as out:
            out.write(f"{d} {f}\n")
with open(f"{root}/Dockerfile", "w") as out:
    out.write("FROM scratch\nCOPY d042/f007 /f\n")
PY
"$HOISTD" --root "$work/state" --addr "unix://$work/h.sock" --engine-addr "unix://$work/e.sock" 2>"$work/hoistd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$work/e.sock" ] && break; sleep 0.1; done
run() { # host label
  local host=$1 label=$2 start end
  start=$(date +%s.%N)
  (cd "$work/ctx" && DOCKER_HOST=$host DOCKER_BUILDKIT=1 "$DOCKER" build -q -o "type=local,dest=$work/out-$label" . >/dev/null)
  end=$(date +%s.%N)
  printf '%-8s %-8s %6.2f s\n' "${host##*/}" "$label" "$(echo "$end - $start" | bc)"
}
for host in "unix://$work/e.sock" unix:///var/run/docker.sock; do
  if [ "$host" = unix:///var/run/docker.sock ] && ! "$DOCKER" -H "$host" info >/dev/null 2>&1; then
    echo "dockerd is down: its column is skipped"; continue
  fi
  # A fresh shared key per run: the CLI derives it from the context path.
  run "$host" first
  echo more >> "$work/ctx/d042/f007"
  run "$host" rebuild
done
grep ' context: ' "$work/hoistd.log" || true
