#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test target (unit, integration, doc tests),
# and the deployable package's checks (tests/package/).
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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked 2>&1 | tee "$log"

# The deployable package: the portable build with its readelf guard (scripts/package.sh), the
# zip started in a Debian 11 root (skipped where chroot is not permitted), and every az
# command of the README against the real Azure CLI. Their `test result:` lines count below.
section "scripts/package.sh, then the package on Debian 11"
package="${CARGO_TARGET_DIR:-target}/deploy/mtls-handler.zip"
scripts/package.sh "$package"
tests/package/debian11.sh "$package" 2>&1 | tee -a "$log"

section "README: every az command with the real Azure CLI, not logged in"
tests/package/readme_az.sh 2>&1 | tee -a "$log"

# One closing line for the whole suite (cargo prints one summary per test binary, the last
# of which is the doc tests').
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "\nall checks passed\n%d passed, %d failed\n", p, f }' "$log"
