#!/usr/bin/env bash
# `make test`: start the real backends, run every test, run the third-party interop
# checks, stop the backends — also when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

started_here=0
if [ ! -f target/test-env/env ]; then started_here=1; fi
# Stop the servers started here; on a failure, first show the log of any server that
# died, and end with how much disk and memory were left: a build killed for want of
# either fails with little else to go on, and CI keeps only the last lines.
finish() {
  local status=$? disk mem
  if [ "$status" -ne 0 ]; then scripts/test-env.sh diagnose || true; fi
  if [ "$started_here" = 1 ]; then scripts/test-env.sh stop || true; fi
  if [ "$status" -ne 0 ]; then
    disk=$(df -Pk . 2>/dev/null | awk 'NR==2 {printf "%.1f GiB", $4/1048576}')
    mem=$(awk '/MemAvailable/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null)
    echo "error: make test failed (exit $status) with ${disk:-?} of disk and ${mem:-?} of memory available" >&2
  fi
  exit "$status"
}
trap finish EXIT
scripts/test-env.sh start
# shellcheck disable=SC1091
source target/test-env/env
export CREDMESH_PYTHON="$PWD/.tools/venv/bin/python"
# make deps installed Chromium: the scan-page browser test must run, not skip.
export CREDMESH_REQUIRE_CHROMIUM=1

# A clean checkout (CI) builds everything once: incremental compilation's cache would
# only cost time and about 3 GB of disk there. Every crate the workspace and the fuzz
# targets need is fetched first, with more retries than cargo's default, so a registry
# hiccup is retried where it happens instead of failing a build half an hour in.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
export CARGO_NET_RETRY="${CARGO_NET_RETRY:-10}"
cargo fetch --locked
# The fuzz crate's lock follows the workspace's path crates; cargo brings it up to
# date here, as its build would.
cargo fetch --manifest-path fuzz/Cargo.toml

# The end-to-end tests run the real binary; test runners build only test targets.
cargo build -p credmesh

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --failure-output final
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast
fi

# CI builds once and tests once: the workspace's debug build (about 2.7 GB) is not used
# past this point, and the fuzz builds that follow need about as much again.
if [ -n "${CI:-}" ]; then rm -rf target/debug; fi

# The fuzz targets' committed seeds and past crashes, replayed (stable compiler); in CI
# also a short fuzzing run of every target (make fuzz runs them longer).
CARGO_TARGET_DIR="$PWD/fuzz/target" cargo test --manifest-path fuzz/Cargo.toml --lib
if [ -n "${CI:-}" ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-10}" scripts/fuzz.sh
fi

# The protos, the public contract: documented, and unbroken since published.
scripts/proto-contract.sh check

# The Helm chart and the plain manifests (make helm-test).
scripts/helm-test.sh
