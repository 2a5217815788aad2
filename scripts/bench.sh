#!/usr/bin/env bash
# `make bench`: release-mode benchmarks; criterion reports land under target/criterion
# and a summary under target/bench/. A benchmark never fails the build; this script
# exits non-zero only when it could not measure.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench
{
  echo "# credmesh benchmarks"
  echo
  echo "- time: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- cores: $(nproc)"
  echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo
} > target/bench/report.md
cargo bench -p credmesh-credential --bench credential -- --noplot 2>&1 | tee target/bench/credential.txt
grep -E '^[a-z_/ 0-9-]+ +time:' -A0 target/bench/credential.txt >> target/bench/report.md || true
echo "report: target/bench/report.md"
