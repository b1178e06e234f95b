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
# Reports of an earlier run must not stand in for this one's.
rm -f .test-out/*.json
status=0
# Lint and format (biome.jsonc: recommended rules; each one turned off says why), then types
# (vitest strips types without checking them).
timed lint npm run --silent lint || status=$?
timed typecheck npm run --silent typecheck || status=$?
timed unit npx vitest run --project unit --reporter=default --reporter=json --outputFile.json=.test-out/unit.json || status=$?
# file-times: each integration file's time with its hooks (a kernel built in a beforeAll counts).
timed integration env FILE_TIMES_OUT=.test-out/integration-files.json npx vitest run --project integration --reporter=default --reporter=json --outputFile.json=.test-out/integration.json --reporter=./test/support/file-times.ts || status=$?
TEST_PHASES="${phases[*]}" node scripts/test-summary.mjs .test-out/unit.json .test-out/integration.json || status=$?
exit "$status"
