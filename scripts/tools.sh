#!/usr/bin/env bash
# Installs the pinned Python-packaged tools the package build and its tests use, each in its
# own virtual environment under the cargo target directory (never on the system), and prints
# that environment's bin directory:
#
#   scripts/tools.sh zigbuild     cargo-zigbuild + ziglang (scripts/package.sh's linker)
#   scripts/tools.sh azure-cli    the Azure CLI (tests/package/readme_az.sh)
#
# An environment that already has the pinned versions is reused; anything else is rebuilt.
# Needs python3 with venv and a reachable PyPI.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Pins. ziglang 0.17.1 is the newest the pinned cargo-zigbuild was checked with.
CARGO_ZIGBUILD_VERSION=0.24.1
ZIGLANG_VERSION=0.17.1
AZURE_CLI_VERSION=2.91.0

tool="${1:-}"
case "$tool" in
    zigbuild) pins=("cargo-zigbuild==$CARGO_ZIGBUILD_VERSION" "ziglang==$ZIGLANG_VERSION") ;;
    azure-cli) pins=("azure-cli==$AZURE_CLI_VERSION") ;;
    *)
        echo "usage: scripts/tools.sh zigbuild|azure-cli" >&2
        exit 2
        ;;
esac

target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/tools/$tool"
stamp="$venv/.pins"
want="$(printf '%s\n' "${pins[@]}")"

if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x "$venv/bin/python" ]; then
    echo "==> installing ${pins[*]} into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
    printf '%s\n' "$want" >"$stamp"
fi

(cd "$venv/bin" && pwd)
