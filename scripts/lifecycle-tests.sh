#!/usr/bin/env bash
# Runs the process-lifecycle tests (signals, kills, timeouts, bad guests: whatever starts
# processes and must leave none behind) N times in a row, default 10, and stops at the
# first red round: a flake is found here, before landing. Run `bash scripts/test.sh` once
# first (host setup, the suite's kernel in the test cache).
# Usage: bash scripts/lifecycle-tests.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
export TESTCONTAINERS_RYUK_DISABLED=true
npm run build >/dev/null
# "default build": the build suite's interrupted boot test starts from that install.
pattern='SIGTERM|SIGINT|interrupt|kill|panic|never answers|DestroySandbox|ttrpc deadline|hangup|bad input|broken bundle|default build'
units=(core-children core-cleanup runtime-vm kernel-source)
suites=(boot-e2e agent-host agent-init image-errors rootfs-errors runtime-cli initrd build)
for i in $(seq 1 "$rounds"); do
  t0=$SECONDS
  npx vitest run --project unit $(printf "test/unit/%s.test.ts " "${units[@]}")
  npx vitest run --project integration $(printf "test/integration/%s.test.ts " "${suites[@]}") -t "$pattern"
  echo "lifecycle round $i/$rounds: green ($((SECONDS - t0)) s)"
done
