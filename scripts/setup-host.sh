#!/usr/bin/env bash
# Installs everything osbuilder and its tests need on Debian 12, starts dockerd
# when none runs, then installs npm dependencies and builds. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node.js >= 20.15 with npm (Debian 12's own nodejs is 18: too old).
if ! command -v npm >/dev/null 2>&1 || ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 15) ? 0 : 1)' 2>/dev/null; then
  echo "setup: osbuilder needs Node.js >= 20.15 with npm (found: $(node --version 2>/dev/null || echo none)); install it first" >&2
  exit 1
fi

packages=(
  docker.io qemu-system-x86 e2fsprogs fdisk util-linux mmdebstrap debootstrap cpio
  zstd xz-utils lz4 gzip erofs-utils xfsprogs cryptsetup-bin busybox-static
  linux-source-6.1 build-essential flex bison bc libelf-dev libssl-dev dwarves kmod podman
  rsync ca-certificates iptables uidmap file musl-tools time pigz
  dpkg-dev fakeroot protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev
  # Other arches: cross compilers (agent, kernels), arm64 libraries, qemu-user.
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross musl-dev:arm64 libprotobuf-c-dev:arm64
  gcc-powerpc64le-linux-gnu gcc-s390x-linux-gnu qemu-user-static arch-test qemu-system-arm qemu-efi-aarch64
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  echo "setup: installing ${missing[*]}" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || "${sudo_cmd[@]}" dpkg --add-architecture arm64
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -o DPkg::Lock::Timeout=600 -y -q --no-install-recommends "${missing[@]}"
fi

# A Docker engine: start one when none answers.
if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd" >&2
  sudo_cmd=(); [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build
