#!/usr/bin/env bash
# The portability guard for the deployable binary:
#
#   scripts/check-portable.sh BINARY [MAX_GLIBC]      MAX_GLIBC defaults to 2.28
#
# Fails (exit 1) when BINARY needs a shared libssl/libcrypto (the Functions images ship
# different OpenSSL versions, Debian 11 only 1.1) or a glibc symbol version newer than
# MAX_GLIBC (Debian 10 has 2.28, Debian 11 2.31). Prints what it found either way.
# scripts/package.sh runs it on every build; CI runs it through tests/package/debian11.sh.
set -euo pipefail

bin="${1:?usage: scripts/check-portable.sh BINARY [MAX_GLIBC]}"
max="${2:-2.28}"

command -v readelf >/dev/null || {
    echo "readelf not found (Debian package binutils)" >&2
    exit 1
}
[ -f "$bin" ] || {
    echo "$bin: no such file" >&2
    exit 1
}

needed="$(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')"
newest="$(readelf -V "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n 1)"
echo "$bin needs: $(echo "${needed:-nothing dynamic}" | tr '\n' ' ')(newest glibc symbol version: ${newest:-none})"

failed=0
if printf '%s\n' "$needed" | grep -Eq '^lib(ssl|crypto)\.'; then
    echo "FAIL: $bin links a shared OpenSSL: $(printf '%s\n' "$needed" | grep -E '^lib(ssl|crypto)\.' | tr '\n' ' ')" >&2
    echo "      build it with scripts/package.sh (feature \"portable\": OpenSSL vendored and static)" >&2
    failed=1
fi
if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$newest" "$max" | sort -V | tail -n 1)" != "$max" ]; then
    echo "FAIL: $bin needs GLIBC_$newest, newer than GLIBC_$max" >&2
    echo "      link with cargo zigbuild --target x86_64-unknown-linux-gnu.$max" >&2
    failed=1
fi
[ "$failed" = 0 ] && echo "ok: no shared OpenSSL, glibc <= $max"
exit "$failed"
