#!/usr/bin/env bash
# Installs the Debian packages and Rust components the tests use. Idempotent; a partly failing
# `apt-get update` (one index that will not download) does not stop it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(docker-registry skopeo umoci podman runc apache2-utils openssl busybox-static qemu-user-static curl git openssh-server openssh-client docker.io)
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
# kubectl checks hoist-testkit's in-process Kubernetes API server; Debian's kubernetes-client
# only when no kubectl is on PATH already (a missing one makes those tests skip).
if ! command -v kubectl >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null 2>&1 \
      || { apt-get update -qq || true; apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null 2>&1; } \
      || echo "install-deps: could not install kubernetes-client (the kubectl checks will skip)"
  else
    echo "install-deps: not root, cannot install kubernetes-client (the kubectl checks will skip)"
  fi
fi
# A distribution registry started by the Debian package would hold port 5000 for nothing.
systemctl disable --now docker-registry >/dev/null 2>&1 || true
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null 2>&1 || true
done

# Base images for the end-to-end tests (hoist_testkit::images) come from Debian's
# busybox-static for each architecture: the foreign architectures must be known to dpkg, and
# the .debs are downloaded once into a cache (HOIST_TEST_DEBS overrides where).
if [ "$(id -u)" -eq 0 ]; then
  added=
  for a in arm64 armhf; do
    dpkg --print-foreign-architectures | grep -qx "$a" || { dpkg --add-architecture "$a"; added=1; }
  done
  [ -z "$added" ] || apt-get update -qq || echo "install-deps: apt-get update failed in part; going on"
  debs=${HOIST_TEST_DEBS:-/var/cache/hoist-test/debs}
  mkdir -p "$debs"
  for a in amd64 arm64 armhf; do
    if ! ls "$debs"/busybox-static_*_"$a".deb >/dev/null 2>&1; then
      ( cd "$debs" && apt-get download -qq "busybox-static:$a" >/dev/null 2>&1 ) \
        || { apt-get update -qq || true; ( cd "$debs" && apt-get download -qq "busybox-static:$a" >/dev/null ); } \
        || echo "install-deps: could not download busybox-static:$a (tests needing it will skip)"
    fi
  done
  # QEMU user emulation for foreign-architecture RUN steps: binfmt_misc handlers with the
  # F flag (the interpreter is opened at registration, so it works inside any rootfs).
  mountpoint -q /proc/sys/fs/binfmt_misc \
    || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
    || echo "install-deps: cannot mount binfmt_misc (emulated RUN steps will skip)"
  if [ -w /proc/sys/fs/binfmt_misc/register ]; then
    for q in aarch64 arm ppc64le s390x riscv64; do
      conf=/usr/lib/binfmt.d/qemu-$q.conf
      [ -e "/proc/sys/fs/binfmt_misc/qemu-$q" ] || [ ! -f "$conf" ] && continue
      # Debian's files already end in the F flag; add it when one does not.
      line=$(grep -v '^#' "$conf" | head -n1)
      case "${line##*:}" in *F*) ;; *) line="${line}F" ;; esac
      printf '%s' "$line" > /proc/sys/fs/binfmt_misc/register \
        || echo "install-deps: could not register qemu-$q in binfmt_misc"
    done
  fi
fi

# Docker's daemon (Debian's docker.io 20.10, whose builder is BuildKit 0.8): the peer of the
# docker CLI and dockerd-BuildKit tests, and the host of docker-container builders. These
# machines have no bridge, so it runs with host networking only. Started once, detached from
# this script (its own session, no inherited descriptors), left running for the tests.
if [ "$(id -u)" -eq 0 ] && [ -x /usr/sbin/dockerd ] && ! /usr/bin/docker info >/dev/null 2>&1; then
  log=${HOIST_DOCKERD_LOG:-/var/log/hoist-test-dockerd.log}
  setsid nohup /usr/sbin/dockerd --iptables=false --bridge=none </dev/null >"$log" 2>&1 &
  for _ in $(seq 150); do /usr/bin/docker info >/dev/null 2>&1 && break; sleep 0.2; done
  /usr/bin/docker info >/dev/null 2>&1 \
    || echo "install-deps: dockerd did not start (see $log); tests that need it will skip"
fi
