#!/usr/bin/env bash
# Load benchmark (not a test): throughput of cached /api/cert-info against a bare warp route
# that returns fixed JSON, cold start to the first answer on GET /, and idle RSS.
#
#   benches/load.sh [--duration SECONDS] [--rounds N] [--connections N] [--partners N] [--also HANDLER]...
#                   [--header-format arr|xfcc|rfc9440|pem-urlencoded]
#
# --header-format sends the certificate as that front end does (CLIENT_CERT_HEADER_FORMAT on
# the handlers): base64 DER in X-ARR-ClientCert (default), an XFCC element with Hash and Cert,
# an RFC 9440 Client-Cert byte sequence, or URL-encoded PEM in X-Client-Certificate.
#
# --partners N: the handlers decide by a partners document of N partners (CLIENT_CERT_PARTNERS_PATH,
# each a CN and a DNS name bound to the CA; the load certificate is one of them) instead of the
# flat settings.
#
# Measures the release build (target/release/handler, system OpenSSL); each `--also PATH`
# adds another handler binary measured in the same run, in the same rounds (e.g. the portable
# package's: --also target/x86_64-unknown-linux-gnu/release/handler).
# Needs wrk, openssl, curl, python3. Everything listens on 127.0.0.1 and stops by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

duration=10 rounds=3 connections=32 partners=0 format=arr
handlers=(target/release/handler)
while [ $# -gt 0 ]; do
    case "$1" in
        --also) handlers+=("$2"); shift 2 ;;
        --partners) partners=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --header-format) format=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

cargo build --release --quiet --bin handler --example bare_warp
bare=target/release/examples/bare_warp
for h in "${handlers[@]}"; do
    [ -x "$h" ] || { echo "$h: not an executable" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A CA and a partner certificate made with the openssl CLI (independent of the code under test).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" \
    -out "$work/ca.pem" -subj "/CN=Load CA" -days 2 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/client.key" \
    -out "$work/client.csr" -subj "/CN=api-client.contoso.com" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n' > "$work/ext.cnf"
openssl x509 -req -in "$work/client.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -out "$work/client.pem" -days 1 -extfile "$work/ext.cnf" 2>/dev/null
# The certificate header as the chosen front end sends it: "Name: value".
header=$(python3 - "$work/client.pem" "$format" <<'PY'
import base64, hashlib, ssl, sys, urllib.parse
pem = open(sys.argv[1]).read()
der = ssl.PEM_cert_to_DER_cert(pem)
fmt = sys.argv[2]
if fmt == "arr":
    print("X-ARR-ClientCert: " + base64.b64encode(der).decode())
elif fmt == "xfcc":
    cert = urllib.parse.quote(pem, safe="")
    print(f'X-Forwarded-Client-Cert: Hash={hashlib.sha256(der).hexdigest()};Cert="{cert}"')
elif fmt == "rfc9440":
    print("Client-Cert: :" + base64.b64encode(der).decode() + ":")
elif fmt == "pem-urlencoded":
    print("X-Client-Certificate: " + urllib.parse.quote(pem, safe=""))
else:
    sys.exit(f"unknown header format {fmt}")
PY
)
header_env=(CLIENT_CERT_HEADER_FORMAT="$format")
[ "$format" = pem-urlencoded ] && header_env+=(CLIENT_CERT_HEADER=X-Client-Certificate)
echo "header format: $format"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 500); do curl -fs "http://127.0.0.1:$1/" -o /dev/null -m 1 2>/dev/null && return 0
        curl -s "http://127.0.0.1:$1/api/fixed" -o /dev/null -m 1 2>/dev/null && return 0; sleep 0.02; done
    echo "nothing listens on $1" >&2; exit 1
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

partner_env=()
if [ "$partners" -gt 0 ]; then
    fingerprint=$(openssl x509 -in "$work/ca.pem" -noout -fingerprint -sha256 | cut -d= -f2)
    python3 - "$partners" "$fingerprint" > "$work/partners.json" <<'PY'
import json, sys
n, issuer = int(sys.argv[1]), sys.argv[2]
partners = [{"name": f"Partner {i}", "issuer": issuer,
             "match": [{"commonName": "api-client.contoso.com" if i == n // 2 else f"partner-{i}.example"},
                       {"dnsName": f"api.partner-{i}.example"}],
             "functions": ["cert-info"]} for i in range(n)]
print(json.dumps({"partners": partners}))
PY
    partner_env=(CLIENT_CERT_PARTNERS_PATH="$work/partners.json")
    echo "partners document: $partners partners, $(wc -c < "$work/partners.json") bytes"
fi

bport=$(free_port)
hports=() idle_rss=()
for i in "${!handlers[@]}"; do
    hport=$(free_port)
    env "${header_env[@]}" "${partner_env[@]}" FUNCTIONS_CUSTOMHANDLER_PORT=$hport CLIENT_CERT_CA_PATH="$work/ca.pem" RUST_LOG=warn "${handlers[$i]}" >"$work/handler$i.log" 2>&1 &
    hpid=$!; pids+=("$hpid")
    wait_port "$hport"
    sleep 1
    idle_rss+=("$(rss_kib "$hpid")")
    hports+=("$hport") hpids[$i]=$hpid
done

for i in "${!handlers[@]}"; do
    code=$(curl -s -o "$work/cert-info$i.json" -w '%{http_code}' -H "$header" "http://127.0.0.1:${hports[$i]}/api/cert-info")
    [ "$code" = 200 ] || { echo "cert-info answered $code; see $work/handler$i.log" >&2; cat "$work/handler$i.log" >&2; exit 1; }
done
# The baseline serves the very bytes cert-info answers, so both responses are the same size.
"$bare" "$bport" "$work/cert-info0.json" >/dev/null 2>&1 &
pids+=("$!")
wait_port "$bport"
echo "response body: $(wc -c < "$work/cert-info0.json") bytes"

rps() { wrk -t2 -c"$connections" -d"${duration}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
for i in "${!handlers[@]}"; do echo "handler $i: ${handlers[$i]}"; done
# Each handler is measured right after its own bare-warp run, and the order of the handlers
# rotates every round, so a change in machine load between runs biases neither.
echo "round  handler  bare_warp_rps  cert_info_rps  ratio"
declare -A ratios
n=${#handlers[@]}
for r in $(seq 1 "$rounds"); do
    for k in $(seq 0 $((n - 1))); do
        i=$(((r + k) % n))
        b=$(rps "http://127.0.0.1:$bport/api/fixed")
        h=$(rps -H "$header" "http://127.0.0.1:${hports[$i]}/api/cert-info")
        ratio=$(python3 -c "print(f'{$h/$b:.3f}')")
        ratios[$i]+="$ratio "
        printf '%5s  %7s  %13s  %13s  %5s\n' "$r" "$i" "$b" "$h" "$ratio"
    done
done
for i in "${!handlers[@]}"; do
    median=$(printf '%s\n' ${ratios[$i]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "handler $i (${handlers[$i]}): median cert-info/bare ratio $median;" \
        "RSS idle ${idle_rss[$i]} KiB, after load $(rss_kib "${hpids[$i]}") KiB"
done

# Cold start: from exec to the first HTTP answer on GET /, 20 times.
python3 - "$work/ca.pem" "${handlers[@]}" <<'PY'
import os, socket, statistics, subprocess, sys, time
ca, handlers = sys.argv[1], sys.argv[2:]
# Interleaved, so both binaries see the same machine load.
samples = {h: [] for h in handlers}
for i in range(20 * len(handlers)):
    handler = handlers[i % len(handlers)]
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    env = dict(os.environ, FUNCTIONS_CUSTOMHANDLER_PORT=str(port), CLIENT_CERT_CA_PATH=ca, RUST_LOG="warn")
    t0 = time.perf_counter()
    p = subprocess.Popen([handler], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + 5
    while time.perf_counter() < deadline:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=1)
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if c.recv(12).startswith(b"HTTP/1.1"):
                samples[handler].append((time.perf_counter() - t0) * 1000); c.close(); break
            c.close()
        except OSError:
            time.sleep(0.0002)
    p.terminate(); p.wait(timeout=5)
for handler, s in samples.items():
    s.sort()
    print(f"{handler}: cold start to first GET / answer: median {statistics.median(s):.1f} ms, "
          f"p90 {s[int(len(s)*0.9)-1]:.1f} ms, max {s[-1]:.1f} ms (n={len(s)})")
PY
