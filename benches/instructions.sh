#!/usr/bin/env bash
# Instructions per request (not a test): callgrind counts the user-space instructions the
# release `handler` spends on cached /api/cert-info, and `examples/bare_warp.rs` on the same
# bytes, over 5,000 keep-alive requests after 500 unmeasured ones. Unlike wrk's req/s, the
# count does not move with the machine's load.
#
#   benches/instructions.sh [HANDLER_BINARY]    default: target/release/handler
#
# Needs valgrind, openssl, curl, python3. Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --quiet --bin handler --example bare_warp
handler=${1:-target/release/handler}
bare=target/release/examples/bare_warp
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" \
    -out "$work/ca.pem" -subj "/CN=Load CA" -days 2 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/client.key" \
    -out "$work/client.csr" -subj "/CN=api-client.contoso.com" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n' > "$work/ext.cnf"
openssl x509 -req -in "$work/client.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -out "$work/client.pem" -days 1 -extfile "$work/ext.cnf" 2>/dev/null
openssl x509 -in "$work/client.pem" -outform DER | base64 -w0 > "$work/header"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# measure NAME PORT PATH COMMAND...: instructions per request of COMMAND serving PATH.
measure() {
    local name=$1 port=$2 path=$3; shift 3
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.$name.%p" "$@" \
        >"$work/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 300); do
        curl -s -o /dev/null -m 1 "http://127.0.0.1:$port/" && break
        curl -s -o /dev/null -m 1 "http://127.0.0.1:$port/api/fixed" && break
        sleep 0.1
    done
    client "$port" "$path" 500
    callgrind_control -i on "$pid" >/dev/null 2>&1
    client "$port" "$path" 5000
    callgrind_control -i off "$pid" >/dev/null 2>&1
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"; wait "$pid" 2>/dev/null || true
    local total
    total=$(cat "$work"/cg."$name".* | awk '/^summary:|^totals:/ {s += $2} END {print s}')
    echo "$name: $((total / 5000)) instructions per request"
}
client() {
    python3 - "$1" "$2" "$3" "$work/header" <<'PY'
import http.client, sys
port, path, n, header = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), open(sys.argv[4]).read().strip()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("GET", path, headers={"X-ARR-ClientCert": header})
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"{path} answered {r.status}")
PY
}

hport=$(free_port)
FUNCTIONS_CUSTOMHANDLER_PORT=$hport CLIENT_CERT_CA_PATH="$work/ca.pem" RUST_LOG=warn \
    "$handler" >/dev/null 2>&1 &
hpid=$!
for _ in $(seq 1 200); do curl -s -o /dev/null -m 1 "http://127.0.0.1:$hport/" && break; sleep 0.05; done
curl -s -o "$work/body.json" -H "X-ARR-ClientCert: $(cat "$work/header")" "http://127.0.0.1:$hport/api/cert-info"
kill "$hpid"; wait "$hpid" 2>/dev/null || true

port=$(free_port)
FUNCTIONS_CUSTOMHANDLER_PORT=$port CLIENT_CERT_CA_PATH="$work/ca.pem" RUST_LOG=warn \
    measure handler "$port" /api/cert-info "$handler"
port=$(free_port)
measure bare_warp "$port" /api/fixed "$bare" "$port" "$work/body.json"
