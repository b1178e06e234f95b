#!/usr/bin/env bash
# The main job: set up the host, then build the default Kata guest artifacts
# (debian image with systemd, busybox initrd with the agent as init) and lay
# them out under <prefix>/usr/share/kata-containers as Kata's release does.
# Usage: bash scripts/build.sh [prefix]   (default ./out)
# Interim composition of the stage commands until `osbuilder build` (issue 6)
# adds the kernel, the boot test, the cache and the manifest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
prefix=$(realpath -m "${1:-./out}")
osb() { node dist/cli/index.js "$@"; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
share="$prefix/usr/share/kata-containers"
mkdir -p "$share"
osb rootfs debian -o "$work/debian" --bootstrap-base
osb image "$work/debian" -o "$share/kata-debian-bookworm.image"
osb rootfs busybox -o "$work/busybox" --agent-init --bootstrap-base
osb initrd "$work/busybox" -o "$share/kata-busybox-bookworm.initrd"
ln -sfn kata-debian-bookworm.image "$share/kata-containers.img"
ln -sfn kata-busybox-bookworm.initrd "$share/kata-containers-initrd.img"
ls -l "$share"
