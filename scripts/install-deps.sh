#!/usr/bin/env bash
# Installs the Debian packages and Rust components the tests use. Idempotent; a partly failing
# `apt-get update` (one index that will not download) does not stop it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(docker-registry skopeo umoci podman runc apache2-utils openssl busybox-static qemu-user-static curl)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: not root, cannot install: ${missing[*]} (tests that need them will skip)"
  else
    apt-get update -qq || echo "install-deps: apt-get update failed in part; going on"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update -qq || true; apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
fi
# A distribution registry started by the Debian package would hold port 5000 for nothing.
systemctl disable --now docker-registry >/dev/null 2>&1 || true
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null 2>&1 || true
done
