#!/usr/bin/env bash
# Soak benchmark (not a test): sustained concurrent load on the real release `handler`,
# mixing accepted, rejected, revoked and malformed certificates, with revocation checking
# on, a deliberately tiny validation cache (so validations and evictions keep happening),
# and /api/outbound-mtls pointed at a loopback upstream that accepts TCP and never answers.
#
#   benches/soak.sh [--duration SECONDS] [--quick] [--connections N]
#
# Default 180 s; --quick is 20 s. Reports: inbound answers by status (the inbound path
# must give zero 5xx), outbound answers, p50/p99 latency of the inbound mix, and the
# handler's RSS after warm-up versus at the end. Exits non-zero on any inbound 5xx or
# socket error storm. Needs wrk, openssl, curl, python3; everything is on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration=180 connections=32
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --quick) duration=20; shift ;;
        --connections) connections=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

cargo build --release --quiet --bin handler
handler=target/release/handler

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- PKI with the openssl CLI (keys stay in $work and are deleted) ---
key() { openssl ecparam -name prime256v1 -genkey -noout -out "$work/$1.key"; }
key ca
openssl req -x509 -new -key "$work/ca.key" -subj "/CN=Soak CA" -days 2 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -out "$work/ca.pem" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n' >"$work/ext.cnf"
key leaf # one key for every leaf: generation speed, not realism
issue() { # name cn serial
    openssl req -new -key "$work/leaf.key" -subj "/CN=$2" -out "$work/$1.csr"
    openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -set_serial "$3" \
        -days 1 -extfile "$work/ext.cnf" -out "$work/$1.pem" 2>/dev/null
}
b64() { openssl x509 -in "$1" -outform DER | base64 -w0; }
unique=24
for i in $(seq 1 "$unique"); do issue "good$i" api-client.contoso.com "$((1000 + i))"; done
issue revoked api-client.contoso.com 999
issue stranger someone-else.example 998
openssl req -x509 -new -key "$work/leaf.key" -subj "/CN=api-client.contoso.com" -days 1 \
    -addext extendedKeyUsage=clientAuth -out "$work/impostor.pem" 2>/dev/null
mkdir -p "$work/db"; : >"$work/db/index.txt"; echo 01 >"$work/db/crlnumber"
printf '[ca]\ndefault_ca=d\n[d]\ndatabase=%s\ncrlnumber=%s\ndefault_md=sha256\ndefault_crl_days=2\n' \
    "$work/db/index.txt" "$work/db/crlnumber" >"$work/db/ca.cnf"
openssl ca -config "$work/db/ca.cnf" -keyfile "$work/ca.key" -cert "$work/ca.pem" \
    -revoke "$work/revoked.pem" 2>/dev/null
openssl ca -gencrl -config "$work/db/ca.cnf" -keyfile "$work/ca.key" -cert "$work/ca.pem" \
    -out "$work/crl.pem" 2>/dev/null
# The app's own outbound certificate (PEM cert + key) for /api/outbound-mtls.
cat "$work/good1.pem" "$work/leaf.key" >"$work/outbound.pem"

# --- the upstream that never answers, and the handler ---
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
uport=$(free_port)
python3 - "$uport" <<'PY' &
import socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(512)
held = []
while True:
    c, _ = s.accept()
    held.append(c)          # accept, read nothing, answer nothing
    if len(held) > 2000:
        held.pop(0).close()
PY
pids+=("$!")
hport=$(free_port)
FUNCTIONS_CUSTOMHANDLER_PORT=$hport RUST_LOG=error \
    CLIENT_CERT_CA_PATH="$work/ca.pem" CLIENT_CERT_CRL_PATH="$work/crl.pem" \
    CLIENT_CERT_CACHE_SIZE=8 \
    REMOTE_API_URL="https://127.0.0.1:$uport/" REMOTE_API_TIMEOUT_SECONDS=2 \
    OUTBOUND_CLIENT_CERT_PATH="$work/outbound.pem" \
    "$handler" >"$work/handler.log" 2>&1 &
hpid=$!; pids+=("$hpid")
for _ in $(seq 1 500); do curl -fs "http://127.0.0.1:$hport/" -o /dev/null -m 1 2>/dev/null && break; sleep 0.02; done
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-ARR-ClientCert: $(b64 "$work/good1.pem")" \
    "http://127.0.0.1:$hport/api/cert-info")
[ "$code" = 200 ] || { echo "cert-info answered $code" >&2; cat "$work/handler.log" >&2; exit 1; }

# --- the request mix (wrk Lua): every request takes the next entry ---
{
    echo 'local mix = {'
    for i in $(seq 1 "$unique"); do echo "  {'/api/cert-info', '$(b64 "$work/good$i.pem")'},"; done
    echo "  {'/api/cert-info', '$(b64 "$work/revoked.pem")'},"
    echo "  {'/api/cert-info', '$(b64 "$work/stranger.pem")'},"
    echo "  {'/api/cert-info', '$(b64 "$work/impostor.pem")'},"
    echo "  {'/api/cert-info', '$(b64 "$work/good2.pem" | cut -c1-300)'},"
    echo "  {'/api/cert-info', 'not base64 at all !!!'},"
    echo "  {'/api/cert-info', '$(b64 "$work/good3.pem")AAAA'},"
    echo "  {'/api/cert-info', nil},"
    echo "  {'/api/health', nil},"
    echo '}'
    cat <<'LUA'
local i = 0
counts = {}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) i = math.random(#mix); counts = {} end
function request()
  i = i % #mix + 1
  local e = mix[i]
  local h = {}
  if e[2] then h["X-ARR-ClientCert"] = e[2] end
  return wrk.format("GET", e[1], h)
end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("counts")) do total[s] = (total[s] or 0) + n end
  end
  local line = "statuses:"
  for s, n in pairs(total) do line = line .. " " .. s .. "=" .. n end
  print(line)
  print(string.format("latency_us: p50=%d p90=%d p99=%d max=%d",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
  print(string.format("errors: connect=%d read=%d write=%d timeout=%d status=%d",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status))
end
LUA
} >"$work/mix.lua"
cat >"$work/outbound.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status) counts[status] = (counts[status] or 0) + 1 end
function done()
  local total = {}
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("counts")) do total[s] = (total[s] or 0) + n end
  end
  local line = "outbound statuses:"
  for s, n in pairs(total) do line = line .. " " .. s .. "=" .. n end
  print(line)
end
LUA

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
: >"$work/rss.txt"
( while kill -0 "$hpid" 2>/dev/null; do echo "$(date +%s) $(rss_kib "$hpid")" >>"$work/rss.txt"; sleep 2; done ) &
pids+=("$!")

echo "==> soak: ${duration}s, ${connections} connections inbound mix + 4 outbound (upstream never answers)"
start=$(date +%s)
wrk -t2 -c4 -d"${duration}s" --timeout 10s -s "$work/outbound.lua" \
    -H "X-ARR-ClientCert: $(b64 "$work/good1.pem")" \
    "http://127.0.0.1:$hport/api/outbound-mtls" >"$work/outbound.out" 2>&1 &
opid=$!; pids+=("$opid")
wrk -t2 -c"$connections" -d"${duration}s" --timeout 10s --latency -s "$work/mix.lua" \
    "http://127.0.0.1:$hport/" >"$work/inbound.out" 2>&1
wait "$opid" || true
grep -E 'Requests/sec|statuses|latency_us|errors' "$work/inbound.out"
grep -E 'outbound statuses' "$work/outbound.out" || cat "$work/outbound.out"

# RSS: the sample after warm-up (20% of the run, at least 10 s) versus the last sample.
warm=$(( start + (duration / 5 > 10 ? duration / 5 : 10) ))
rss_warm=$(awk -v w="$warm" '$1 >= w {print $2; exit}' "$work/rss.txt")
rss_end=$(tail -1 "$work/rss.txt" | awk '{print $2}')
rss_max=$(awk 'BEGIN{m=0} $2>m {m=$2} END{print m}' "$work/rss.txt")
echo "rss_kib: after_warmup=${rss_warm} end=${rss_end} max=${rss_max}"

inbound_5xx=$({ grep -oE ' 5[0-9]{2}=[0-9]+' "$work/inbound.out" || true; } | awk -F= '{s+=$2} END{print s+0}')
echo "inbound_5xx=${inbound_5xx}"
if ! kill -0 "$hpid" 2>/dev/null; then echo "the handler died" >&2; tail -20 "$work/handler.log" >&2; exit 1; fi
[ "$inbound_5xx" = 0 ] || { echo "FAIL: the inbound path answered 5xx" >&2; exit 1; }
