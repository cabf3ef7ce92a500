#!/usr/bin/env bash
# Fuzzes the header parser and the whole validator with libFuzzer on the STABLE toolchain:
# coverage instrumentation comes from LLVM's sanitizer-coverage pass, which stable rustc
# runs with -Cpasses/-Cllvm-args (what cargo-fuzz passes too); no -Z flags, no nightly.
# No AddressSanitizer (that needs nightly): the crate forbids unsafe code, and panics,
# aborts, timeouts and out-of-memory are what we look for.
#
#   fuzz/run.sh [seconds]      default 60; the corpus grows in fuzz/corpus/ (git-ignored)
#
# Exits non-zero on a finding; the crashing input is saved in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-60}

export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# A target dir of its own: these flags differ from the main build's.
# No --locked: the main crate is a path dependency, so its Cargo.toml changes reach
# fuzz/Cargo.lock.
export CARGO_TARGET_DIR="$PWD/target"

# An explicit --target keeps RUSTFLAGS away from build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')

echo "==> building the fuzz target (stable rustc, sanitizer coverage)"
cargo build --release --bin validator --target "$host"

mkdir -p corpus/validator artifacts
echo "==> fuzzing for ${seconds}s (seeds: fuzz/seeds, corpus: fuzz/corpus/validator)"
"$CARGO_TARGET_DIR/$host/release/validator" corpus/validator seeds \
    -max_total_time="$seconds" \
    -max_len=20000 \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -artifact_prefix=artifacts/ \
    -print_final_stats=1 2>&1 | tee artifacts/last-run.log | grep -E '^(#[0-9]+ +(INITED|DONE|pulse))|stat::|==|panicked|Done ' || true
status=${PIPESTATUS[0]}
exit "$status"
