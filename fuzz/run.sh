#!/usr/bin/env bash
# Bounded fuzzing of the scanning pipeline: installs cargo-fuzz when
# missing, builds both targets, and runs each for a fixed time from the
# seed messages in fuzz/seeds. A crash fails the run and leaves its input
# in fuzz/artifacts/<target>/.
#
#   FUZZ_CONTENT_SECS   time for the `content` target (no DNS)   [60]
#   FUZZ_PIPELINE_SECS  time for the `pipeline` target (all stages) [30]
#
# cargo-fuzz needs nightly-only compiler flags (coverage instrumentation);
# the stable toolchain accepts them with RUSTC_BOOTSTRAP=1. No sanitizer
# (`-s none`): mxgate's own code is safe Rust, so what fuzzing finds in it
# is panics, hangs and memory blow-ups, which libFuzzer sees without one.
# The price: a memory error inside a dependency's unsafe code (zip, the
# zlib port) would go unseen. In exchange the cold build takes 6 min
# instead of 8.7, and a run makes about 3.5 times as many executions.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
cargo fuzz build -O -s none
run() { # target seconds
  local corpus log rc=0
  corpus=$(mktemp -d)
  log=$(mktemp)
  cp seeds/* "$corpus/"
  echo "fuzz: $1 for $2 s"
  cargo fuzz run -O -s none "$1" "$corpus" -- -max_total_time="$2" -max_len=65536 -rss_limit_mb=4096 -timeout=30 \
    >"$log" 2>&1 || rc=$?
  grep -E '^#[0-9]+ +DONE|^Done' "$log" || true
  if [[ $rc != 0 ]]; then
    grep -E -A30 'ERROR|panicked' "$log" | head -60
    echo "fuzz: $1 failed (exit $rc)"
  fi
  rm -rf "$corpus" "$log"
  return "$rc"
}
run content "${FUZZ_CONTENT_SECS:-60}"
run pipeline "${FUZZ_PIPELINE_SECS:-30}"
echo "fuzz: no crash"
