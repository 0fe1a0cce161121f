#!/usr/bin/env bash
# The README's quickstart: hoist's main job on an example, a multi-platform build pushed to a
# registry as one image index, on a fresh Debian 12 machine whose only outside source is
# Debian's package archive. Run it as root (RUN steps execute in namespaces).
#
#   1. installs what it needs (scripts/install-deps.sh: docker-registry, qemu-user-static
#      registered in binfmt_misc, busybox-static .debs for amd64, arm64 and armhf);
#   2. starts a registry on 127.0.0.1:$REGISTRY_PORT (5000) unless one answers there;
#   3. builds a busybox base image for linux/amd64, linux/arm64, linux/arm/v7 with hoist itself
#      (examples/busybox-base) and pushes it;
#   4. builds examples/emulated (its RUN executes in each architecture, under QEMU where
#      foreign) and examples/cross-compile (its builder stage runs once, natively) for the same
#      three platforms, pushes them, and shows the index and what each platform's image holds.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${REGISTRY_PORT:-5000}
REG=localhost:$PORT
PLATFORMS=linux/amd64,linux/arm64,linux/arm/v7
WORK=${QUICKSTART_WORK:-/tmp/hoist-quickstart}
DEBS=${HOIST_TEST_DEBS:-/var/cache/hoist-test/debs}

[ "$(id -u)" -eq 0 ] || { echo "quickstart: run as root (RUN steps use Linux namespaces)" >&2; exit 1; }
bash scripts/install-deps.sh
cargo build --release --locked -q
hoist() { target/release/hoist --root "$WORK/state" "$@"; }
mkdir -p "$WORK"

if ! curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null; then
  cat > "$WORK/registry.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $WORK/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
YML
  nohup docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.2; done
  echo "== registry started on 127.0.0.1:$PORT (log: $WORK/registry.log)"
fi

echo "== unpacking busybox-static for each architecture"
base=$WORK/busybox-base
rm -rf "$base" && mkdir -p "$base" && cp examples/busybox-base/Dockerfile "$base/"
applets=$(/bin/busybox --list)
for pair in amd64:amd64 arm64:arm64 arm:armhf; do
  arch=${pair%%:*} deb_arch=${pair#*:}
  deb=$(ls "$DEBS"/busybox-static_*_"$deb_arch".deb | head -n1)
  root=$base/rootfs-$arch
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$WORK/deb-$arch"
  dpkg-deb -x "$deb" "$WORK/deb-$arch"
  cp "$WORK/deb-$arch/bin/busybox" "$root/bin/busybox"
  for applet in $applets; do [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp"
done

echo "== hoist build --platform $PLATFORMS -t $REG/busybox:latest --push (base image)"
hoist build --progress plain --platform "$PLATFORMS" -t "$REG/busybox:latest" --push "$base"

for example in emulated cross-compile; do
  image=$REG/hoist-example/$example:latest
  echo
  echo "== hoist build --platform $PLATFORMS -t $image --push examples/$example"
  hoist build --progress plain --platform "$PLATFORMS" --build-arg "BASE=$REG/busybox:latest" \
    -t "$image" --push "examples/$example"
  echo
  echo "== hoist imagetools inspect $image"
  hoist imagetools inspect "$image"
  echo "== what each platform's image holds (-o type=local, fully cached this time)"
  rm -rf "$WORK/out-$example"
  hoist build --progress quiet --platform "$PLATFORMS" --build-arg "BASE=$REG/busybox:latest" \
    -o "type=local,dest=$WORK/out-$example" "examples/$example"
  for f in "$WORK/out-$example"/*/*.txt; do
    echo "${f#"$WORK/out-$example/"}: $(cat "$f")"
  done
done
