#!/usr/bin/env bash
# Registry transfer benchmark: hoist vs `skopeo copy`, pushing and pulling
#   - "big":  one 256 MiB layer (random bytes, uncompressed tar media type),
#   - "many": 300 small layers (~4 KiB each),
# between an OCI layout on disk and a local docker-registry (Debian's distribution server on
# 127.0.0.1, plain HTTP). Each transfer gets a fresh registry so neither tool finds blobs
# already there. Prints wall-clock seconds, the hoist/skopeo time ratio, and both tools'
# peak RSS from /usr/bin/time -v (hoist's must stay far below the blob size).
#
# hoist side: `hoist debug push-layout ROOT NAME REF` / `hoist debug pull-layout REF ROOT NAME`
# (ROOT/content is the OCI layout). skopeo side: `skopeo copy oci:ROOT/content:NAME docker://REF`
# and back. Usage: scripts/bench/registry.sh [HOIST_BINARY]   (default: release build)
set -euo pipefail
cd "$(dirname "$0")/../.."

HOIST="${1:-target/release/hoist}"
if [ ! -x "$HOIST" ]; then
  echo "building $HOIST (cargo build --release -p hoist-cli)" >&2
  cargo build --release -p hoist-cli >&2
fi
for tool in docker-registry skopeo python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "registry.sh: $tool is not installed" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/hoist-bench-registry.XXXXXX)"
REG_PID=""
stop_registry() {
  if [ -n "$REG_PID" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    REG_PID=""
  fi
}
cleanup() { stop_registry; rm -rf "$WORK"; }
trap cleanup EXIT

# Starts a fresh registry with its own storage; sets HOST.
start_registry() {
  stop_registry
  local dir port
  dir="$(mktemp -d "$WORK/reg.XXXXXX")"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
http:
  addr: 127.0.0.1:$port
  secret: bench
EOF
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  REG_PID=$!
  HOST="127.0.0.1:$port"
  for _ in $(seq 100); do
    if python3 - "$HOST" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen("http://%s/v2/" % sys.argv[1], timeout=1)
EOF
    sleep 0.1
  done
  echo "docker-registry did not start: $(cat "$dir/log")" >&2
  exit 1
}

# Writes an OCI layout at $1/content with image name $2 made of the layer files given.
make_layout() {
  python3 - "$@" <<'EOF'
import hashlib, json, os, sys
root, name, layers = sys.argv[1], sys.argv[2], sys.argv[3:]
layout = os.path.join(root, "content")
blobs = os.path.join(layout, "blobs", "sha256")
os.makedirs(blobs, exist_ok=True)
def put_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    d = h.hexdigest()
    os.replace(path, os.path.join(blobs, d))
    return "sha256:" + d, os.path.getsize(os.path.join(blobs, d))
def put_bytes(b):
    d = hashlib.sha256(b).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(b)
    return "sha256:" + d, len(b)
descs, diff_ids = [], []
for path in layers:
    digest, size = put_file(path)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
    diff_ids.append(digest)
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
cd, cs = put_bytes(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                       "layers": descs}).encode()
md, ms = put_bytes(manifest)
with open(os.path.join(layout, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(os.path.join(layout, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                              "annotations": {"org.opencontainers.image.ref.name": name}}]}, f)
EOF
}

# One tar holding one file of random bytes: $1 = path, $2 = size in bytes, $3 = file name.
make_tar() {
  local tmp
  tmp="$(mktemp -d "$WORK/tar.XXXXXX")"
  head -c "$2" /dev/urandom >"$tmp/$3"
  tar -C "$tmp" -cf "$1" "$3"
  rm -rf "$tmp"
}

echo "preparing images in $WORK" >&2
mkdir -p "$WORK/src"
make_tar "$WORK/src/big.tar" $((256 * 1024 * 1024)) payload
make_layout "$WORK/big" big "$WORK/src/big.tar"
many=()
for i in $(seq 1 300); do
  make_tar "$WORK/src/l$i.tar" 4096 "f$i"
  many+=("$WORK/src/l$i.tar")
done
make_layout "$WORK/many" many "${many[@]}"

# Runs a command under /usr/bin/time -v; sets SECS and RSS_KB.
measure() {
  local log="$WORK/time.log"
  if ! /usr/bin/time -v "$@" >"$WORK/cmd.out" 2>"$log"; then
    echo "failed: $*" >&2
    cat "$WORK/cmd.out" "$log" >&2
    exit 1
  fi
  SECS="$(python3 - "$log" <<'EOF'
import sys
for line in open(sys.argv[1]):
    if "Elapsed (wall clock)" in line:
        t = line.rsplit(" ", 1)[1].strip().split(":")
        secs = 0.0
        for part in t:
            secs = secs * 60 + float(part)
        print("%.2f" % secs)
EOF
)"
  RSS_KB="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")"
}

printf '%-6s %-5s %10s %10s %8s %14s %14s\n' image op hoist_s skopeo_s ratio hoist_rss_MiB skopeo_rss_MiB
for image in big many; do
  # push
  start_registry
  measure "$HOIST" debug push-layout "$WORK/$image" "$image" "$HOST/hoist/$image:v1"
  h_push="$SECS"; h_push_rss="$RSS_KB"
  start_registry
  measure skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/$image/content:$image" "docker://$HOST/skopeo/$image:v1"
  s_push="$SECS"; s_push_rss="$RSS_KB"
  # pull (from a registry holding the image, into empty layouts)
  measure skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/$image/content:$image" "docker://$HOST/src/$image:v1"
  rm -rf "$WORK/pull-hoist" "$WORK/pull-skopeo"
  measure "$HOIST" debug pull-layout "$HOST/src/$image:v1" "$WORK/pull-hoist" "$image"
  h_pull="$SECS"; h_pull_rss="$RSS_KB"
  mkdir -p "$WORK/pull-skopeo/content"
  measure skopeo copy --quiet --src-tls-verify=false "docker://$HOST/src/$image:v1" "oci:$WORK/pull-skopeo/content:$image"
  s_pull="$SECS"; s_pull_rss="$RSS_KB"
  for op in push pull; do
    if [ "$op" = push ]; then h="$h_push"; s="$s_push"; hr="$h_push_rss"; sr="$s_push_rss"
    else h="$h_pull"; s="$s_pull"; hr="$h_pull_rss"; sr="$s_pull_rss"; fi
    python3 -c "import sys; h,s,hr,sr=map(float,sys.argv[3:]); print('%-6s %-5s %10.2f %10.2f %8.2f %14.1f %14.1f' % (sys.argv[1], sys.argv[2], h, s, h/s if s else 0, hr/1024, sr/1024))" \
      "$image" "$op" "$h" "$s" "$hr" "$sr"
  done
done
