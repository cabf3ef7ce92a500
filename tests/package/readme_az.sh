#!/usr/bin/env bash
# Runs every `az` command in README.md with the real Azure CLI (pinned, installed into a
# virtual environment under the target directory by scripts/tools.sh) and no login; see
# tests/package/readme_az.py.
#
#   tests/package/readme_az.sh [README]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

bin=$(scripts/tools.sh azure-cli)
exec python3 tests/package/readme_az.py "$bin/az" "${1:-README.md}"
