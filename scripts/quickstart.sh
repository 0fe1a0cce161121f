#!/usr/bin/env bash
# The README's quickstart: builds hoist and runs it on the multi-platform example.
#
# Status: `hoist build` does not exist yet (see the README's feature table), so for now this
# shows what the frontend makes of the cross-compilation example: the parsed AST and the typed
# instructions per stage. When the build engine lands, this becomes
#   hoist build --platform linux/amd64,linux/arm64 -t localhost:5000/example --push examples/cross-compile
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
hoist=target/release/hoist
echo "== hoist debug parse examples/cross-compile/Dockerfile"
"$hoist" debug parse examples/cross-compile/Dockerfile
echo
echo "== hoist debug instructions examples/cross-compile/Dockerfile"
"$hoist" debug instructions examples/cross-compile/Dockerfile
