#!/usr/bin/env bash
# Builds the deployable zip for a Linux (x86_64) Functions app:
#
#   scripts/package.sh [OUTPUT.zip]        default: target/deploy/mtls-handler.zip
#
# The zip holds exactly what the Functions host needs at the app root: the release `handler`
# binary (executable), host.json and one folder per function with its function.json. It also
# checks that `.funcignore` leaves the same set for `func azure functionapp publish`.
# Deploy it with `az functionapp deployment source config-zip` (see README, Deployment).
#
# The binary is portable across the Functions Linux images (Debian 11/12, Ubuntu 24.04, ...):
# feature `portable` compiles OpenSSL from source and links it statically, and
# `cargo zigbuild --target x86_64-unknown-linux-gnu.2.28` links against glibc 2.28's symbol
# versions. cargo-zigbuild and zig come from PyPI, pinned (scripts/tools.sh); OpenSSL's build
# needs perl and make. scripts/check-portable.sh then refuses a binary that needs a shared
# libssl/libcrypto or a glibc newer than 2.28.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

target_dir="${CARGO_TARGET_DIR:-target}"
out="${1:-$target_dir/deploy/mtls-handler.zip}"
glibc="2.28"
target="x86_64-unknown-linux-gnu"
functions=(health cert-info outbound-mtls)
say() { printf '==> %s\n' "$*"; }

# --- build --------------------------------------------------------------------------------
tools="$(scripts/tools.sh zigbuild)"
export PATH="$tools:$PATH"
say "cargo zigbuild --release --locked --features portable --bin handler --target $target.$glibc"
cargo zigbuild --release --locked --features portable --bin handler --target "$target.$glibc"
bin="$target_dir/$target/release/handler"

# An x86-64 ELF executable: magic 7f 45 4c 46, class 64-bit, e_machine 0x3e.
header="$(od -An -tx1 -N20 "$bin" | tr -d ' \n')"
if [ "${header:0:10}" != "7f454c4602" ] || [ "${header:36:4}" != "3e00" ]; then
    echo "$bin is not an x86-64 Linux executable" >&2
    exit 1
fi

# No shared libssl/libcrypto, nothing newer than GLIBC_2.28.
scripts/check-portable.sh "$bin" "$glibc"

# --- .funcignore agrees with the package ------------------------------------------------
# Top-level entries `func azure functionapp publish` would upload: everything at the app root
# (tracked files plus the copied binary) that no .funcignore pattern matches.
patterns=()
while IFS= read -r line || [ -n "$line" ]; do
    line="${line%%#*}"
    line="$(printf '%s' "$line" | sed 's/[[:space:]]*$//; s#^/##; s#/$##')"
    [ -n "$line" ] && patterns+=("$line")
done <.funcignore
published=()
while IFS= read -r entry; do
    ignored=0
    for p in "${patterns[@]}"; do
        # shellcheck disable=SC2053 # the pattern is a glob on purpose
        if [[ "$entry" == $p ]]; then
            ignored=1
            break
        fi
    done
    [ "$ignored" = 0 ] && published+=("$entry")
done < <({ git ls-files 2>/dev/null || ls -A; } | cut -d/ -f1 | sort -u; echo handler)
expected="$(printf '%s\n' handler host.json "${functions[@]}" | sort -u)"
actual="$(printf '%s\n' "${published[@]}" | sort -u)"
if [ "$expected" != "$actual" ]; then
    echo ".funcignore does not match the package:" >&2
    diff <(echo "$expected") <(echo "$actual") | sed -n 's/^> /  would also be published: /p; s/^< /  would be missing: /p' >&2
    exit 1
fi

# --- zip ----------------------------------------------------------------------------------
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$bin" "$stage/handler"
install -m 0644 host.json "$stage/host.json"
for f in "${functions[@]}"; do
    mkdir -p "$stage/$f"
    install -m 0644 "$f/function.json" "$stage/$f/function.json"
done

mkdir -p "$(dirname "$out")"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
rm -f "$out_abs"
if command -v zip >/dev/null; then
    (cd "$stage" && zip -q -X -r "$out_abs" handler host.json "${functions[@]}")
else
    # Unix permissions go in the high 16 bits of external_attr, so `handler` stays executable.
    python3 - "$stage" "$out_abs" <<'PY'
import os, sys, zipfile
stage, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for root, dirs, files in os.walk(stage):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            arc = os.path.relpath(path, stage)
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(path).st_mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
PY
fi

say "wrote $out"
python3 - "$out_abs" <<'PY'
import stat, sys, zipfile
for i in zipfile.ZipFile(sys.argv[1]).infolist():
    print(f"    {stat.filemode(i.external_attr >> 16)} {i.file_size:>10} {i.filename}")
PY
