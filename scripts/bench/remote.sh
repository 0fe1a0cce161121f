#!/usr/bin/env bash
# hoist through hoistd (`hoist build --addr unix://…`: local context sent through the
# session, image kept in hoistd's state dir) against the embedded engine (`hoist build`), on
# the workloads of scripts/bench/build.sh:
#   parallel  four independent stages of `RUN sleep 1` joined by COPY --from in a final stage
#   context   a context of 20 000 files of 1 KiB, `COPY . /app`
#   big       one RUN writing a 200 MiB generated (compressible) file: one layer
# each built cold (--no-cache; through hoistd also a fresh session shared key, so the whole
# context is sent again) and cached (nothing changed). Cold builds alternate between the two
# sides, run by run (the disk of a VM drifts over minutes; both sides see the same drift),
# each after a `sync` and a second's pause; their median is taken. Cached builds go through
# hyperfine (mean, after one warm-up run: the first build after the cold ones is slower on
# either side). No output on either side (the result stays in the build cache): hoistd
# keeps no image without --push, and an output streamed back through the session would time
# the export, not the build. Prints the times and the ratios hoistd/embedded as a markdown
# table.
# Base image: localhost:5000/busybox:latest from ../../shared/tools/peers.sh.
# Usage (root): scripts/bench/remote.sh [RUNS]   (default 3 runs after a warm-up)
# PROFILE=debug uses target/debug binaries instead of building release ones.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
BASE=${BENCH_BASE:-localhost:5000/busybox:latest}
PROFILE=${PROFILE:-release}
for tool in hyperfine python3 curl; do
  command -v "$tool" >/dev/null || { echo "remote.sh: $tool is not installed" >&2; exit 1; }
done
curl -sf "http://${BASE%%/*}/v2/" >/dev/null || { echo "remote.sh: no registry serving $BASE" >&2; exit 1; }
if [ "$PROFILE" = release ]; then cargo build --release --locked -q -p hoist-cli -p hoistd; fi
HOIST=$PWD/target/$PROFILE/hoist
HOISTD=$PWD/target/$PROFILE/hoistd
W=$(mktemp -d /tmp/hoist-bench-remote.XXXXXX)
DAEMON_PID=""
cleanup() {
  [ -z "$DAEMON_PID" ] || { kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null || true; }
  rm -rf "$W"
}
trap cleanup EXIT

# localhost:5000 is plain http for both.
printf '[registry."%s"]\nhttp = true\n' "${BASE%%/*}" > "$W/registries.toml"
"$HOISTD" --root "$W/hoistd-state" --config "$W/registries.toml" --addr "unix://$W/d.sock" 2> "$W/hoistd.log" &
DAEMON_PID=$!
for _ in $(seq 300); do grep -q '^hoistd: worker ' "$W/hoistd.log" && break; sleep 0.1; done
grep -q '^hoistd: worker ' "$W/hoistd.log" || { echo "remote.sh: hoistd did not start" >&2; cat "$W/hoistd.log" >&2; exit 1; }

mkdir -p "$W/parallel" "$W/context/files" "$W/big"
{
  for s in 1 2 3 4; do printf 'FROM %s AS s%d\nRUN sleep 1 && echo %d > /out%d\n\n' "$BASE" $s $s $s; done
  printf 'FROM %s\n' "$BASE"
  for s in 1 2 3 4; do printf 'COPY --from=s%d /out%d /\n' $s $s; done
} > "$W/parallel/Dockerfile"
printf 'FROM %s\nCOPY . /app\n' "$BASE" > "$W/context/Dockerfile"
python3 - "$W/context/files" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(100):
    os.makedirs(f"{root}/d{d:03}", exist_ok=True)
    for f in range(200):
        with open(f"{root}/d{d:03}/f{f:03}", "wb") as fh:
            fh.write((f"{d:03}/{f:03} ".encode() * 128)[:1024])
PY
printf 'FROM %s\nRUN seq 1 40000000 | head -c 209715200 > /big\n' "$BASE" > "$W/big/Dockerfile"

# A cold build, on either side, builds a fresh copy of the context under a new path (made
# before it, not timed): through hoistd the session's shared key (from the context's
# canonical path) is new, so hoistd has no copy and receives every file; embedded, the engine
# has no stat-cache entry for the new path, so it reads and hashes every file. Each copy
# holds one file no earlier copy had (`fresh`), so neither side has a snapshot of that
# context yet: both start from nothing remembered about it.
echo 0 > "$W/n"
# The copies are kept until the end, not removed before the next one: ext4 allocates new
# inodes slowly among those freed seconds ago (its recently-deleted scan), which made either
# side's cold build of 20,000 files swing by 2x depending on what the last run removed.
fresh_copy() { echo "n=\$((\$(cat $W/n) + 1)) && echo \$n > $W/n && mkdir -p $W/cold && cp -a $W/$1 $W/cold/\$n && echo \$n > $W/cold/\$n/fresh && sync && sleep 1"; }
embedded_build() {
  local ctx=$W/$1
  [ "$2" != --no-cache ] || ctx="$W/cold/\$(cat $W/n)"
  echo "$HOIST --root $W/client-state --config $W/registries.toml build --progress quiet $2 $ctx"
}
remote_build() {
  local ctx=$W/$1
  [ "$2" != --no-cache ] || ctx="$W/cold/\$(cat $W/n)"
  echo "$HOIST --root $W/client-state build --addr unix://$W/d.sock --progress quiet $2 $ctx"
}
for wl in parallel context big; do
  for t in embedded remote; do eval "$("${t}_build" $wl '')" >/dev/null; done
done

declare -A MEAN
measure() { # measure NAME COMMAND: hyperfine's mean, in seconds, into MEAN[NAME]
  local name=$1; shift
  hyperfine --style none --warmup 1 --runs "$RUNS" --export-json "$W/h.json" "$@" >"$W/h.out" 2>&1 || {
    echo "remote.sh: '$name' failed: $*" >&2; tail -20 "$W/h.out" >&2; exit 1; }
  MEAN[$name]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$W/h.json")
  printf '  %-24s %8.2f s\n' "$name" "${MEAN[$name]}" >&2
}
# cold NAME: RUNS alternating cold builds of workload NAME, embedded and through hoistd
# (which goes first alternates too); each side's median into MEAN.
cold() {
  local wl=$1 i t first second
  local -A times=([embedded]="" [remote]="")
  for i in $(seq "$RUNS"); do
    if [ $((i % 2)) = 1 ]; then first=embedded second=remote; else first=remote second=embedded; fi
    for t in $first $second; do
      eval "$(fresh_copy "$wl")"
      local t0 t1; t0=$(date +%s.%N)
      eval "$("${t}_build" "$wl" --no-cache)" >/dev/null 2>"$W/h.out" || {
        echo "remote.sh: '$wl cold $t' failed" >&2; tail -20 "$W/h.out" >&2; exit 1; }
      t1=$(date +%s.%N)
      times[$t]+="$(python3 -c "print($t1 - $t0)") "
    done
  done
  for t in embedded remote; do
    MEAN["$wl cold $t"]=$(python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1].split()))' "${times[$t]}")
    printf '  %-24s %8.2f s  (runs: %s)\n' "$wl cold $t" "${MEAN[$wl cold $t]}" "${times[$t]}" >&2
  done
}
for wl in parallel context big; do
  cold "$wl"
  for t in embedded remote; do
    measure "$wl cached $t" "$("${t}_build" $wl '')"
  done
done
echo "  hoistd sessions that received the whole context: $(grep -c ' context: 2000[0-9] files received' "$W/hoistd.log")" >&2

{ for k in "${!MEAN[@]}"; do echo "$k=${MEAN[$k]}"; done; } | python3 -c '
import sys
m = {k: float(v) for k, v in (line.strip().split("=") for line in sys.stdin)}
print("| workload | embedded s | through hoistd s | hoistd/embedded |")
print("| --- | ---: | ---: | ---: |")
for wl in ("parallel", "context", "big"):
    for phase in ("cold", "cached"):
        e, r = m[f"{wl} {phase} embedded"], m[f"{wl} {phase} remote"]
        print(f"| {wl} {phase} | {e:.2f} | {r:.2f} | {r/e:.2f} |")
'
