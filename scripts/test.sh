#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test target (unit, integration, doc tests).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
    printf '\n==> %s\n' "$*"
}

section "cargo fmt --all -- --check"
cargo fmt --all -- --check

section "cargo clippy --all-targets --locked -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

section "cargo test --locked"
cargo test --locked

section "all checks passed"
