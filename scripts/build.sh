#!/usr/bin/env bash
# The main job: set up the host, then build the default Kata guest artifacts
# (debian image with systemd, busybox initrd with the agent as init, the guest
# kernel), boot-test every pair under QEMU and install them under
# <prefix>/usr/share/kata-containers as Kata's release does.
# Usage: bash scripts/build.sh [prefix] [osbuilder build options…]   (default prefix ./out)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
prefix=$(realpath -m "${1:-./out}")
shift || true
exec node dist/cli/index.js build --prefix "$prefix" "$@"
