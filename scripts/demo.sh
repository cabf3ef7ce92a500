#!/usr/bin/env bash
# The local demo: client certificates end to end on one machine, no Azure needed.
#
#   scripts/demo.sh            build, start everything, print curl commands, wait for Ctrl-C
#   scripts/demo.sh --check    the same, but run the curl commands, check the answers, stop
#
# What runs (every process is stopped on exit or Ctrl-C):
#   https://localhost:8443  handler front-end  (App Service stand-in, client certificate required)
#     -> 127.0.0.1:7072     handler            (the app: trusts .demo/ca.pem, outbound identity
#                                               .demo/outbound.p12, REMOTE_API_URL = the partner)
#   https://localhost:8444  handler front-end  (the partner API's TLS, client certificate required)
#     -> 127.0.0.1:7073     handler            (the partner: accepts only the app's certificate)
#
# Environment (all optional): HANDLER_BIN (use this binary, skip the release build),
# DEMO_DIR (.demo), DEMO_PORT (8443), DEMO_HANDLER_PORT (7072), DEMO_PARTNER_PORT (8444),
# DEMO_PARTNER_HANDLER_PORT (7073), DEMO_CHECK=1 (same as --check).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

check="${DEMO_CHECK:-0}"
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    -h | --help)
        sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "usage: scripts/demo.sh [--check]" >&2
        exit 2
        ;;
esac

dir="${DEMO_DIR:-.demo}"
port="${DEMO_PORT:-8443}"
handler_port="${DEMO_HANDLER_PORT:-7072}"
partner_port="${DEMO_PARTNER_PORT:-8444}"
partner_handler_port="${DEMO_PARTNER_HANDLER_PORT:-7073}"
outbound_cn="outbound.mtls-handler.local"

say() { printf '==> %s\n' "$*"; }

# --- 1. system packages -------------------------------------------------------------------
need_install=()
command -v curl >/dev/null || need_install+=(curl ca-certificates)
command -v openssl >/dev/null || need_install+=(openssl)
if [ -z "${HANDLER_BIN:-}" ]; then
    command -v pkg-config >/dev/null || need_install+=(pkg-config)
    if ! pkg-config --exists openssl 2>/dev/null; then need_install+=(libssl-dev); fi
    command -v cc >/dev/null || need_install+=(gcc libc6-dev)
fi
if [ "${#need_install[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "missing: ${need_install[*]}; install them with your package manager" >&2
        exit 1
    fi
    sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then
            sudo_cmd=(sudo)
        else
            echo "missing: ${need_install[*]}; run as root or install sudo" >&2
            exit 1
        fi
    fi
    say "installing ${need_install[*]}"
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${need_install[@]}"
fi

# --- 2. the binary ------------------------------------------------------------------------
if [ -n "${HANDLER_BIN:-}" ]; then
    bin="$HANDLER_BIN"
else
    command -v cargo >/dev/null || {
        echo "cargo not found: install Rust from https://rustup.rs" >&2
        exit 1
    }
    say "cargo build --release (the first build takes a few minutes)"
    cargo build --release
    # Where host.json expects it, so `func start` works too.
    cp target/release/handler ./handler
    bin="./handler"
fi

# --- 3. certificates ----------------------------------------------------------------------
"$bin" dev-certs --out "$dir" >/dev/null
say "demo certificates in $dir (kept between runs; delete the folder to regenerate)"

# --- 4. processes -------------------------------------------------------------------------
logs="$dir/logs"
mkdir -p "$logs"
pids=()
names=()
cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 130' INT TERM

start() {
    local name="$1"
    shift
    "$@" >"$logs/$name.log" 2>&1 &
    pids+=("$!")
    names+=("$name")
}

wait_port() {
    local name="$1" port="$2" pid="$3" i
    for i in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$name exited; its log ($logs/$name.log):" >&2
            cat "$logs/$name.log" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "$name did not listen on port $port within 30 s; see $logs/$name.log" >&2
    exit 1
}

tls=(--tls-cert "$dir/server.pem" --tls-key "$dir/server.key")

# The partner API: this same handler, accepting only the app's own certificate, behind a
# front end that requires a client certificate in the TLS handshake.
start partner env -i PATH="$PATH" RUST_LOG=info \
    FUNCTIONS_CUSTOMHANDLER_PORT="$partner_handler_port" \
    ALLOWED_CLIENT_CERT_COMMON_NAMES="$outbound_cn" \
    CLIENT_CERT_CA_PATH="$dir/ca.pem" \
    "$bin"
start partner-front-end env -i PATH="$PATH" "$bin" front-end \
    --listen "127.0.0.1:$partner_port" --backend "http://127.0.0.1:$partner_handler_port" \
    "${tls[@]}" --mode required

# The app, and the App Service stand-in in front of it.
start handler env -i PATH="$PATH" RUST_LOG=info \
    FUNCTIONS_CUSTOMHANDLER_PORT="$handler_port" \
    CLIENT_CERT_CA_PATH="$dir/ca.pem" \
    OUTBOUND_CLIENT_CERT_PATH="$dir/outbound.p12" \
    REMOTE_API_URL="https://localhost:$partner_port/api/cert-info" \
    REMOTE_API_CA_PATH="$dir/ca.pem" \
    REMOTE_API_TIMEOUT_SECONDS=10 \
    "$bin"
start front-end env -i PATH="$PATH" "$bin" front-end \
    --listen "127.0.0.1:$port" --backend "http://127.0.0.1:$handler_port" \
    "${tls[@]}" --mode required

wait_port partner "$partner_handler_port" "${pids[0]}"
wait_port partner-front-end "$partner_port" "${pids[1]}"
wait_port handler "$handler_port" "${pids[2]}"
wait_port front-end "$port" "${pids[3]}"

# --- 5. the commands ----------------------------------------------------------------------
url="https://localhost:$port"
base="curl --cacert $dir/ca.pem"
pem="--cert $dir/client.pem --key $dir/client.key"
p12="--cert-type P12 --cert $dir/client.p12:"
untrusted="--cert $dir/untrusted.pem --key $dir/untrusted.key"
expired="--cert $dir/expired.pem --key $dir/expired.key"

# name | curl arguments | expected status | expected "code" (or - )
commands=(
    "cert-info (PEM pair)|$pem $url/api/cert-info|200|-"
    "cert-info (PKCS#12)|$p12 $url/api/cert-info|200|-"
    "outbound-mtls (the app calls the partner with outbound.p12)|$pem $url/api/outbound-mtls|200|-"
    "health|$pem $url/api/health|200|-"
    "rejected: self-signed certificate with the allowed name|$untrusted $url/api/cert-info|403|untrusted_chain"
    "rejected: expired certificate|$expired $url/api/cert-info|403|expired"
)

if [ "$check" != 1 ]; then
    echo
    say "running (logs in $logs/). Try:"
    for entry in "${commands[@]}"; do
        IFS='|' read -r title args status code <<<"$entry"
        echo
        if [ "$code" = "-" ]; then expect="$status"; else expect="$status $code"; fi
        echo "# $title: expect $expect"
        echo "$base $args"
    done
    echo
    echo "# rejected in the TLS handshake: no client certificate"
    echo "$base $url/api/health"
    echo
    echo "# why a certificate is accepted or not:"
    echo "CLIENT_CERT_CA_PATH=$dir/ca.pem $bin inspect $dir/expired.pem"
    echo
    say "Ctrl-C stops everything"
    # Returns when a process dies (then cleanup stops the others) or on Ctrl-C.
    set +e
    wait -n "${pids[@]}"
    echo "a demo process exited; logs in $logs/" >&2
    exit 1
fi

# --check: run every command and compare.
failures=0
body="$(mktemp)"
for entry in "${commands[@]}"; do
    IFS='|' read -r title args status code <<<"$entry"
    # shellcheck disable=SC2086 # $args is a list of words on purpose
    got="$(curl -sS --max-time 20 --cacert "$dir/ca.pem" -o "$body" -w '%{http_code}' $args || true)"
    got_code="$(sed -n 's/.*"code":"\([a-z_]*\)".*/\1/p' "$body")"
    if [ "$got" = "$status" ] && { [ "$code" = "-" ] || [ "$got_code" = "$code" ]; }; then
        echo "ok    $title: $got${got_code:+ $got_code}"
    else
        echo "FAIL  $title: got $got $(cat "$body"), expected $status ${code#-}"
        failures=$((failures + 1))
    fi
done
if curl -sS --max-time 20 --cacert "$dir/ca.pem" -o /dev/null "$url/api/health" 2>/dev/null; then
    echo "FAIL  no client certificate: the TLS handshake succeeded"
    failures=$((failures + 1))
else
    echo "ok    no client certificate: rejected in the TLS handshake"
fi
rm -f "$body"
if [ "$failures" -gt 0 ]; then
    echo "demo check: $failures failure(s); logs in $logs/" >&2
    for name in "${names[@]}"; do
        echo "--- $name" >&2
        tail -n 20 "$logs/$name.log" >&2
    done
    exit 1
fi
echo "demo check: all passed"
