#!/usr/bin/env bash
# The test command: set up the host, then run unit and integration tests and
# print one closing line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
phases=()
# Runs "$@" and records its wall time as phase $1.
timed() {
  local name=$1 t0=$SECONDS rc=0
  shift
  "$@" || rc=$?
  phases+=("$name=$((SECONDS - t0))")
  return "$rc"
}
timed setup bash scripts/setup-host.sh
# No registry is reachable: testcontainers must not pull its Ryuk reaper.
export TESTCONTAINERS_RYUK_DISABLED=true
mkdir -p .test-out
status=0
timed unit npx vitest run --project unit --reporter=default --reporter=json --outputFile.json=.test-out/unit.json || status=$?
timed integration npx vitest run --project integration --reporter=default --reporter=json --outputFile.json=.test-out/integration.json || status=$?
TEST_PHASES="${phases[*]}" node scripts/test-summary.mjs .test-out/unit.json .test-out/integration.json || status=$?
exit "$status"
