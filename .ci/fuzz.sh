#!/usr/bin/env bash
# Builds the cargo-fuzz targets under fuzz/ and runs each briefly from its committed corpus;
# a crash (a panic, an abort, a timeout) fails the run and leaves the input under fuzz/artifacts/.
#
# Usage: .ci/fuzz.sh [target]...   (default: every target)
# Environment:
#   FUZZ_SECONDS  how long each target runs (default 30)
#   FUZZ_JOBS     how many targets run at once (default: one per core)
#   FUZZ_RUN_WHEN a file: the targets run once it exists (default: right after the build), so
#                 that a build started early runs its targets when the machine has time for them
#
# Only stable Rust is at hand: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its unstable flags, and
# `--sanitizer none` leaves out AddressSanitizer, which safe Rust does not need to find panics.
# `--dev` builds without optimisations: a quarter of the build time of a release build, and still
# thousands of runs per second.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz not found" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
# Debug info only slows the build; a crash report names the input, which reproduces it.
export CARGO_PROFILE_DEV_DEBUG=0
FLAGS=(--dev --sanitizer none)

TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo fuzz list)
[ ${#TARGETS[@]} -gt 0 ] || { echo "fuzz: no targets" >&2; exit 1; }

SCRATCH=$(mktemp -d -t zenovay-fuzz.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT

start=$(date +%s)
cargo fuzz build "${FLAGS[@]}"
echo "fuzz targets built in $(( $(date +%s) - start )) s"
if [ -n "${FUZZ_RUN_WHEN:-}" ]; then
  until [ -e "$FUZZ_RUN_WHEN" ]; do sleep 1; done
  echo "fuzz targets started $(( $(date +%s) - start )) s after the build began"
fi

# One target per core at a time: each libFuzzer process runs on one thread for a fixed time.
JOBS=${FUZZ_JOBS:-$(nproc)}
run_target() {
  local target=$1 log="$SCRATCH/$1.log" status=0
  mkdir -p "$SCRATCH/$target"
  # New inputs go to the scratch directory (the first one); the committed corpus only seeds.
  cargo fuzz run "${FLAGS[@]}" "$target" "$SCRATCH/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=$?
  echo "== fuzz $target (${SECONDS_PER_TARGET} s)"
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz: $target failed; the input is under fuzz/artifacts/$target" >&2
    return 1
  fi
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
}

failed=0
for target in "${TARGETS[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
  run_target "$target" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
[ "$failed" -eq 0 ] || exit 1
echo "fuzzing took $(( $(date +%s) - start )) s"
