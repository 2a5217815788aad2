#!/usr/bin/env bash
# `make bench`: release-mode benchmarks, each figure beside its reference measured in the
# same run. The report is written to target/bench/report.md and report.json. A benchmark
# never fails the build; this exits non-zero only when nothing could be measured.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench
cargo bench -p credmesh-credential --bench credential -- --noplot 2>&1 | tee target/bench/credential.txt
cargo bench -p credmesh-auth --bench token -- --noplot 2>&1 | tee target/bench/token.txt
python3 scripts/bench_report.py
