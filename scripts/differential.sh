#!/usr/bin/env bash
# Differential build: hoist and dockerd's BuildKit build the same Dockerfile, and the results
# are compared. Prints one line per case: `CASE same`, or `CASE differs: ...` naming each
# difference.
#
#   scripts/differential.sh DIR...
#
# A case is a directory: the context is DIR/context when that exists, else DIR; the Dockerfile
# is DIR/Dockerfile (else CONTEXT/Dockerfile); optional DIR/build-flags holds extra build flags,
# one per line (`--build-arg=A=1`, `--target=x`), given to both builders.
#
# Compared, ignoring timestamps and ids:
#   config  Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes, and the
#           history's created_by texts (hoist `-o type=oci`; docker `build -t` then `save`)
#   files   the `-o type=tar` exports: paths, types, modes, owners, symlink targets, contents
#           by sha256 (mtimes ignored)
#   run     whether the build succeeded, and the RUN steps' output lines (`--progress=plain`)
#           of the tar build alone, made with `--no-cache` so every RUN step runs once (the
#           image builds log to hoist-oci.log and docker-image.log, not compared)
#
# Top-level empty `dev`, `proc` and `sys` directories in only one export are not differences:
# they are the runtime's mount points, which dockerd 20.10's BuildKit leaves in a RUN's layer
# when the base image lacks them (current BuildKit's stub cleaner, like hoist, removes them).
#
# Base images: `FROM busybox`/`alpine` (and `--from=`) are rewritten in a copy of the
# Dockerfile to $DIFF_BASE (default localhost:5000/busybox:latest, which
# `bash /work/shared/tools/peers.sh` sets up with a registry and dockerd), since neither
# builder reaches the internet. Needs root, dockerd (`docker info`), python3.
#
# Environment: HOIST (the hoist binary; default target/debug/hoist), DIFF_BASE, DIFF_WORK
# (scratch dir, default a temp dir removed at exit), DOCKER (default /usr/bin/docker: dockerd
# 20.10's own client, whose `DOCKER_BUILDKIT=1 build` needs no buildx plugin).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
HOIST=${HOIST:-$here/../target/debug/hoist}
DOCKER=${DOCKER:-/usr/bin/docker}
DIFF_BASE=${DIFF_BASE:-localhost:5000/busybox:latest}
[ $# -gt 0 ] || { echo "usage: $0 CASE-DIR..." >&2; exit 2; }
[ -x "$HOIST" ] || { echo "no hoist binary at $HOIST (cargo build -p hoist-cli, or set HOIST)" >&2; exit 2; }
"$DOCKER" info >/dev/null 2>&1 || { echo "dockerd is not running (bash /work/shared/tools/peers.sh)" >&2; exit 2; }
if [ -n "${DIFF_WORK:-}" ]; then work=$DIFF_WORK; mkdir -p "$work"; else
  work=$(mktemp -d -t hoist-differential.XXXXXX); trap 'rm -rf "$work"' EXIT
fi
export HOIST_ROOT=${HOIST_ROOT:-$work/hoist-root}

status=0
for case in "$@"; do
  case=${case%/}; name=$(basename "$case")
  ctx=$case; [ -d "$case/context" ] && ctx=$case/context
  ctx=$(cd "$ctx" && pwd -P)
  df=$case/Dockerfile; [ -f "$df" ] || df=$ctx/Dockerfile
  out=$work/$name; rm -rf "$out"; mkdir -p "$out"
  flags=(); [ -f "$case/build-flags" ] && mapfile -t flags < <(grep -v '^\s*$' "$case/build-flags")
  # The same Dockerfile for both, its plain Docker Hub bases pointing at the local registry.
  sed -E "s#(^[[:space:]]*FROM[[:space:]]+(--platform=[^[:space:]]+[[:space:]]+)?|--from=)(docker\.io/)?(library/)?(busybox|alpine)(:[^[:space:]]+)?([[:space:]]|\$)#\1$DIFF_BASE\7#I" \
    "$df" > "$out/Dockerfile"
  tag=hoist-differential/$(echo "$name" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._\n-' '-'):latest

  "$HOIST" build --progress=plain --no-cache "${flags[@]}" -f "$out/Dockerfile" -o "type=tar,dest=$out/hoist.tar" "$ctx" >"$out/hoist.log" 2>&1
  echo $? > "$out/hoist.rc"
  if [ "$(cat "$out/hoist.rc")" = 0 ]; then
    "$HOIST" build --progress=plain "${flags[@]}" -f "$out/Dockerfile" -o "type=oci,dest=$out/hoist-oci.tar" "$ctx" >"$out/hoist-oci.log" 2>&1
  fi
  DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain --no-cache --network=host "${flags[@]}" -f "$out/Dockerfile" \
    -o "type=tar,dest=$out/docker.tar" "$ctx" >"$out/docker.log" 2>&1
  echo $? > "$out/docker.rc"
  if [ "$(cat "$out/docker.rc")" = 0 ]; then
    DOCKER_BUILDKIT=1 "$DOCKER" build --progress=plain --no-cache --network=host "${flags[@]}" -f "$out/Dockerfile" \
      -t "$tag" "$ctx" >"$out/docker-image.log" 2>&1 \
      && "$DOCKER" save -o "$out/docker-image.tar" "$tag" >/dev/null 2>&1
    "$DOCKER" rmi -f "$tag" >/dev/null 2>&1
  fi
  python3 "$here/differential_compare.py" "$name" "$out" || status=1
done
exit $status
