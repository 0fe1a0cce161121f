#!/usr/bin/env bash
# Emulation overhead: a CPU-heavy RUN (sha256 of 256 MiB) built by hoist for linux/amd64 and
# linux/arm64 (QEMU through binfmt_misc), against the same command run directly in a chroot of
# the arm64 busybox (the kernel starts qemu-aarch64 itself: raw emulation), and against
# BuildKit inside dockerd (`DOCKER_BUILDKIT=1 docker build --platform linux/arm64`).
# The sha256 work is the same in every column; only how it is started differs.
# Prints wall times (hyperfine, 3 runs, no cache) and ratios. Run as root after
# scripts/quickstart.sh (it provides localhost:5000/busybox and the arm64 rootfs); dockerd
# must be running for the BuildKit column (it is skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${QUICKSTART_WORK:-/tmp/hoist-quickstart}
ROOTFS=$WORK/busybox-base/rootfs-arm64
[ -x "$ROOTFS/bin/busybox" ] || { echo "run scripts/quickstart.sh first" >&2; exit 1; }
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
cargo build --release --locked -q
HOIST=$PWD/target/release/hoist
B=$(mktemp -d /tmp/hoist-bench-XXXX); trap 'rm -rf "$B"' EXIT
# Busybox applets only: the chroot of the raw run has no /dev.
CMD='yes | head -c 268435456 | sha256sum > /sum'
mkdir -p "$B/ctx"
printf 'FROM localhost:5000/busybox:latest\nRUN %s\n' "$CMD" > "$B/ctx/Dockerfile"

json=$B/results.json
runs=(
  "hoist amd64|$HOIST --root $B/state build --no-cache --progress quiet --platform linux/amd64 -o type=cacheonly $B/ctx"
  "hoist arm64|$HOIST --root $B/state build --no-cache --progress quiet --platform linux/arm64 -o type=cacheonly $B/ctx"
  "raw qemu chroot arm64|chroot $ROOTFS /bin/sh -c '$CMD'"
)
# Debian's docker client (20.10) drives BuildKit in dockerd without the buildx plugin; these
# machines have no bridge, so builds use the host network.
DOCKER=/usr/bin/docker
if [ -x $DOCKER ] && $DOCKER info >/dev/null 2>&1; then
  runs+=("buildkit arm64|DOCKER_BUILDKIT=1 $DOCKER build -q --network=host --no-cache --platform linux/arm64 $B/ctx")
fi
args=()
for r in "${runs[@]}"; do args+=(--command-name "${r%%|*}" "${r#*|}"); done
hyperfine --runs 3 --warmup 1 --export-json "$json" "${args[@]}"
python3 - "$json" <<'PY'
import json, sys
res = {r["command"]: r["mean"] for r in json.load(open(sys.argv[1]))["results"]}
raw = res["raw qemu chroot arm64"]
print(f"\n{'run':28} {'mean s':>8} {'vs raw qemu':>12}")
for name, mean in res.items():
    print(f"{name:28} {mean:8.2f} {mean / raw:12.2f}")
if "buildkit arm64" in res:
    print(f"hoist arm64 / buildkit arm64: {res['hoist arm64'] / res['buildkit arm64']:.2f}")
PY
