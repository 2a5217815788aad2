#!/usr/bin/env bash
# `make bench`: release-mode benchmarks, each figure beside its reference measured in the
# same run. The report is written to target/bench/report.md and report.json. A benchmark
# never fails the build; this exits non-zero only when nothing could be measured.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench
cargo bench -p credmesh-credential --bench credential -- --noplot 2>&1 | tee target/bench/credential.txt
cargo bench -p credmesh-auth --bench token -- --noplot 2>&1 | tee target/bench/token.txt
# License registrations beside a raw INSERT loop, on SQLite and (with the test servers) on
# PostgreSQL; a custom harness, its table is appended to the report.
if scripts/test-env.sh start >/dev/null 2>&1; then
  # shellcheck disable=SC1091
  source target/test-env/env
fi
cargo bench -p credmesh-license --bench registrations 2>&1 | tee target/bench/license.txt
python3 scripts/bench_report.py
{ echo; echo "## National scale"; echo; grep -E '^status lists for' target/bench/credential.txt; } >> target/bench/report.md || true
{ echo; echo "## License registrations"; echo; grep -E '^(\||license|without|goals)' target/bench/license.txt; } >> target/bench/report.md || true
# Inspection planning decisions with 10,000 and 1,000,000 past inspections.
cargo bench -p credmesh-inspection --bench planning 2>&1 | tee target/bench/inspection.txt
{ echo; echo "## Inspection planning"; echo; grep -E '^(\||inspection|goals)' target/bench/inspection.txt; } >> target/bench/report.md || true
# The verify gateway at 64 streams beside a raw-verify tonic server and an empty RPC.
cargo bench -p credmesh-verify --bench verify 2>&1 | tee target/bench/verify.txt
{ echo; echo "## Verify gateway"; echo; grep -E '^(\||goals)' target/bench/verify.txt; } >> target/bench/report.md || true
# Memory and start-up of the release binary: credmesh dev and each credmesh serve.
cargo build --release -p credmesh
CREDMESH_BIN="$PWD/target/release/credmesh" cargo bench -p credmesh-e2e --bench footprint 2>&1 | tee target/bench/footprint.txt
{ echo; echo "## Memory and start-up"; echo; grep -E '^\|' target/bench/footprint.txt; } >> target/bench/report.md || true
