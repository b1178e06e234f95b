#!/usr/bin/env bash
# The main job: set up the host, then build, boot-test and install the default
# Kata guest artifacts. Arguments go to `osbuilder build` (default: --prefix ./out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
[ $# -gt 0 ] || set -- --prefix ./out
exec node dist/cli/index.js build "$@"
