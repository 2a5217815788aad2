#!/usr/bin/env bash
# make fuzz: runs every cargo-fuzz target (fuzz/fuzz_targets) for a bounded time and
# writes how many inputs each executed to target/fuzz/report.md.
#
#   FUZZ_SECONDS   seconds per target (default 60; CI runs 10)
#   FUZZ_TARGETS   space-separated subset (default: every target)
#   FUZZ_TARGET_DIR  cargo target dir of the fuzz build (default fuzz/target; a git
#                  worktree can point it at the main checkout's to reuse its build)
#
# Each run starts from the committed seeds (fuzz/corpus/<target>) and grows a working
# corpus under target/fuzz/corpus/<target>, so the committed one stays small. A crash
# stops the run with a non-zero exit and the input under target/fuzz/artifacts/<target>;
# once fixed, copy that file into fuzz/regressions/<target>/ so `make test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-envelope qr vc_jwt sd_jwt status_list uscc license_id http_json}"
work="$PWD/target/fuzz"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (once)"
  cargo install cargo-fuzz --locked --version 0.13.2
fi

# libFuzzer's sanitizer flags need a nightly compiler; without one, the stable compiler
# is told to accept them (RUSTC_BOOTSTRAP) and the address sanitizer is left out.
toolchain=()
sanitizer=(--sanitizer address)
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
  sanitizer=(--sanitizer none)
fi

mkdir -p "$work"
report="$work/report.md"
{
  echo "# credmesh fuzzing, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), ${seconds} s per target, compiler ${toolchain[*]:-stable (bootstrapped)}"
  echo
  echo "| target | executions | exec/s | corpus | crashes |"
  echo "|---|---:|---:|---:|---:|"
} >"$report"

cargo "${toolchain[@]}" fuzz build -O "${sanitizer[@]}"
status=0
for t in $targets; do
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  log="$work/$t.log"
  echo "fuzzing $t for ${seconds}s"
  if cargo "${toolchain[@]}" fuzz run -O "${sanitizer[@]}" "$t" "$corpus" -- \
      -max_total_time="$seconds" -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1; then
    crashes=0
  else
    crashes=1
    status=1
    echo "CRASH in $t: see $log and $artifacts" >&2
    tail -40 "$log" >&2
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  size=$(find "$corpus" -type f | wc -l)
  echo "| $t | ${runs:-?} | ${rate:-?} | $size | $crashes |" >>"$report"
done
cat "$report"
exit "$status"
