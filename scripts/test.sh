#!/usr/bin/env bash
# The test command (README "Run the tests"): installs what the tests need on a fresh Debian 12
# machine, then runs exactly what a developer runs locally: fmt, clippy and the whole suite.
# Idempotent. Tests that need root or a peer tool skip with a message when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

export HOIST_CONFORMANCE="${HOIST_CONFORMANCE:-$(cd .. && pwd)/shared/conformance}"
[ -d "$HOIST_CONFORMANCE" ] || echo "note: $HOIST_CONFORMANCE is absent: conformance runners will skip"

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Conformance runners (tests named *conformance*) print their pass counts, so they run
# apart with --nocapture; everything else runs quietly.
cargo test --workspace --locked -- --skip conformance 2>&1 | tee target/test.log
cargo test --workspace --locked conformance -- --nocapture 2>&1 | tee -a target/test.log
grep -E ': [0-9]+/[0-9]+ passed$' target/test.log | grep -v '^test ' | sort -u || true
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "hoist: %d passed, %d failed, %d skipped\n", p, f, i }' target/test.log
