#!/usr/bin/env bash
# Compression study for hoist's gzip layers (hoist-snapshot's parallel_gzip): throughput per
# core and ratio of the deflate implementations available as crates, on the 1 MiB pieces
# parallel_gzip compresses, for three kinds of layer content (64 MiB of each):
#   text        base64 of random bytes (the 272 MB layer of issue 14, cut to 64 MiB)
#   binaries    a tar of files from /usr/bin and /usr/lib
#   compressed  already-compressed files (.gz, .xz, .zst, .jpg, .png from /usr), random bytes
#               to make up 64 MiB
# The reference is what BuildKit in dockerd 20.10 pushes: each sample is built into a
# `FROM scratch` + `COPY` image (DOCKER_BUILDKIT=1 docker build) and `docker push`ed to the
# registry on localhost:5000; the pushed layer's size over the sample's is the ratio of Go's
# compress/gzip at DefaultCompression (level 6, BuildKit's default). GNU gzip -6 (zlib) too.
# Usage (root, after ../shared/tools/peers.sh): scripts/bench/compression.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${DEFLATE_BENCH_MIB:-64}
DOCKER=/usr/bin/docker
REGISTRY=${BENCH_REGISTRY:-localhost:5000}
W=$(mktemp -d /tmp/hoist-bench-compression.XXXXXX)
trap 'rm -rf "$W"' EXIT

cargo build --release --locked -q -p hoist-snapshot --example deflate_bench
BENCH=$PWD/target/release/examples/deflate_bench

# --- samples (pipes cut by head end in SIGPIPE) --------------------------------------------
set +o pipefail
head -c $((MIB * 3 / 4))M /dev/urandom | base64 | head -c ${MIB}M > "$W/text"
find /usr/bin /usr/lib -type f -size +4k 2>/dev/null | sort | head -c 2000000 \
  | tar -cf - -T - 2>/dev/null | head -c ${MIB}M > "$W/binaries" || true
find /usr -type f \( -name '*.gz' -o -name '*.xz' -o -name '*.zst' -o -name '*.jpg' -o -name '*.png' \) \
  -size +1k 2>/dev/null | sort | xargs -r cat 2>/dev/null | head -c ${MIB}M > "$W/compressed" || true
have=$(stat -c %s "$W/compressed")
set -o pipefail
[ "$have" -ge $((MIB << 20)) ] || head -c $(((MIB << 20) - have)) /dev/urandom >> "$W/compressed"
echo "samples (bytes): $(cd "$W" && stat -c '%n %s' text binaries compressed | tr '\n' ' ')"
echo "load: $(uptime)"

# --- crates -------------------------------------------------------------------------------
DEFLATE_BENCH_MIB=$MIB "$BENCH" "$W/text" "$W/binaries" "$W/compressed" | tee "$W/crates.tsv"

# --- references ---------------------------------------------------------------------------
echo
printf 'file\treference\tMB/s/core\tratio\n'
for s in text binaries compressed; do
  size=$(stat -c %s "$W/$s")
  start=$(date +%s.%N)
  gz=$(gzip -6 -c "$W/$s" | wc -c)
  end=$(date +%s.%N)
  python3 -c "import sys; s,g,t=int(sys.argv[1]),int(sys.argv[2]),float(sys.argv[3]); print(f'{sys.argv[4]}\tGNU gzip -6\t{s/1e6/t:.1f}\t{g/s:.4f}')" \
    "$size" "$gz" "$(echo "$end - $start" | bc -l)" "$s"
done
if $DOCKER info >/dev/null 2>&1 && curl -sf "http://$REGISTRY/v2/" >/dev/null; then
  for s in text binaries compressed; do
    size=$(stat -c %s "$W/$s")
    mkdir -p "$W/ctx-$s" && ln "$W/$s" "$W/ctx-$s/sample"
    printf 'FROM scratch\nCOPY sample /sample\n' > "$W/ctx-$s/Dockerfile"
    tag=$REGISTRY/hoist-bench-compression-$s:latest
    DOCKER_BUILDKIT=1 $DOCKER build -q -t "$tag" "$W/ctx-$s" >/dev/null
    $DOCKER push -q "$tag" >/dev/null
    layer=$(curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://$REGISTRY/v2/hoist-bench-compression-$s/manifests/latest" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["size"])')
    $DOCKER rmi -f "$tag" >/dev/null
    python3 -c "import sys; print(f'{sys.argv[1]}\tBuildKit/dockerd push (Go gzip 6)\t-\t{int(sys.argv[2])/int(sys.argv[3]):.4f}')" \
      "$s" "$layer" "$size"
  done
else
  echo "dockerd or the registry on $REGISTRY is not running: no BuildKit reference (run ../shared/tools/peers.sh)" >&2
fi
