#!/usr/bin/env bash
# `make bench`: release-mode benchmarks, each figure beside its reference measured in the
# same run. The report is written to target/bench/report.md and report.json. A benchmark
# never fails the build: a step that fails is named at the end and its figures are
# reported as not measured; this exits non-zero only when nothing could be measured.
#
# Settings (environment) of the parts that run longer on request: CREDMESH_LOAD_SECONDS,
# CREDMESH_LOAD_CONCURRENCY, CREDMESH_LOAD_CONFIGS (tests/benches/load.rs),
# CREDMESH_BENCH_REDIS_REQUESTS (redis-benchmark GETs, default 200000),
# CREDMESH_CALLGRIND_SCALE (scripts/bench_callgrind.py), and those of each bench.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench
rm -f target/bench/load.json target/bench/redis-benchmark.txt target/bench/instructions.json
# The test servers, redis-benchmark (redis-tools) and valgrind.
scripts/install-deps.sh bench
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

failed=()
# bench <log name> <command…>: runs it, its output also in target/bench/<log name>.
bench() {
  local log=$1
  shift
  if ! "$@" 2>&1 | tee "target/bench/$log"; then
    echo "bench step failed: $*" >&2
    failed+=("$log")
  fi
}

# PostgreSQL and Redis: the test servers named by CREDMESH_TEST_*, or else started as
# scripts/test.sh starts them (and stopped at the end if this run started them).
if [ -z "${CREDMESH_TEST_POSTGRES_URL:-}" ] || [ -z "${CREDMESH_TEST_REDIS_URL:-}" ]; then
  started_here=0
  if [ ! -f target/test-env/env ]; then started_here=1; fi
  if scripts/test-env.sh start >/dev/null; then
    if [ "$started_here" = 1 ]; then trap 'scripts/test-env.sh stop' EXIT; fi
    # shellcheck disable=SC1091
    source target/test-env/env
  else
    echo "the test servers did not start: PostgreSQL and Redis figures are skipped" >&2
  fi
fi

bench credential.txt cargo bench -p credmesh-credential --bench credential -- --noplot
bench token.txt cargo bench -p credmesh-auth --bench token -- --noplot
# License registrations beside a raw INSERT loop, on SQLite and (with the test servers) on
# PostgreSQL; a custom harness, its table is appended to the report.
bench license.txt cargo bench -p credmesh-license --bench registrations
# Inspection planning decisions with 10,000 and 1,000,000 past inspections.
bench inspection.txt cargo bench -p credmesh-inspection --bench planning
# The verify gateway at 64 streams beside a raw-verify tonic server and an empty RPC.
bench verify.txt cargo bench -p credmesh-verify --bench verify
# Memory and start-up of the release binary: credmesh dev and each credmesh serve.
bench build.txt cargo build --release -p credmesh
CREDMESH_BIN="$target_dir/release/credmesh" \
  bench footprint.txt cargo bench -p credmesh-e2e --bench footprint
# The load generator: identity, license and verify as credmesh serve processes, on SQLite
# and PostgreSQL, with the in-process cache and Redis (target/bench/load.json).
CREDMESH_BIN="$target_dir/release/credmesh" \
  bench load.txt cargo bench -p credmesh-e2e --bench load
# The Redis reference: GET at 64 clients on the test server.
if [ -n "${CREDMESH_TEST_REDIS_URL:-}" ] && command -v redis-benchmark >/dev/null; then
  redis_addr=${CREDMESH_TEST_REDIS_URL#*://}
  redis_addr=${redis_addr##*@}
  redis_addr=${redis_addr%%/*}
  redis_n=${CREDMESH_BENCH_REDIS_REQUESTS:-200000}
  redis_cmd=(redis-benchmark -h "${redis_addr%:*}" -p "${redis_addr##*:}" -t get -n "$redis_n" -c 64 -q)
  { echo "\$ ${redis_cmd[*]}"; "${redis_cmd[@]}" 2>&1 | tr '\r' '\n' | grep -v '^ *$' | tail -n 3; } \
    >target/bench/redis-benchmark.txt || failed+=(redis-benchmark.txt)
  cat target/bench/redis-benchmark.txt
fi
# Instructions per operation of the hot paths under callgrind (target/bench/instructions.json).
bench callgrind.txt python3 scripts/bench_callgrind.py

status=0
python3 scripts/bench_report.py || status=$?
if [ ${#failed[@]} -gt 0 ]; then
  echo "bench steps that failed (their figures are not measured): ${failed[*]}" >&2
  { echo; echo "Steps that failed (see target/bench/<step>): ${failed[*]}"; } >> target/bench/report.md
fi
exit "$status"
