#!/usr/bin/env bash
# Runs the deployable zip on Debian 11 (bullseye: glibc 2.31, OpenSSL 1.1 only), the image
# line Azure Functions gives a custom handler by default.
#
#   tests/package/debian11.sh [ZIP]        default: target/deploy/mtls-handler.zip
#
# A Debian 11 minbase root is made once with debootstrap, from the Debian mirror this
# machine's apt uses (DEBIAN_MIRROR overrides it), and cached in $DEBIAN11_ROOT (default
# /var/cache/mtls-handler/debian11-minbase; delete it to rebuild). Each run unzips the package
# into a fresh folder inside that root and starts `handler` there with chroot, inside a
# private mount namespace (`unshare --mount`) whose bind mounts add an /etc/hosts entry and
# swap the system CA store; nothing leaks into the cached root. Everything is driven from outside over
# loopback with curl; the partner API is the packaged binary itself on this machine
# (`handler front-end --mode required` in front of a handler that accepts only the app's
# certificate). Certificates are made with the openssl CLI.
#
# Needs root (chroot, mount). Where chroot is not permitted the checks are skipped with a
# message. Prints one line per check and a cargo-style `test result:` line that
# scripts/test.sh adds to its total.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

zip="${1:-${CARGO_TARGET_DIR:-target}/deploy/mtls-handler.zip}"
root="${DEBIAN11_ROOT:-/var/cache/mtls-handler/debian11-minbase}"
suite=debian11
started=$(date +%s)
passed=0 failed=0

summary() {
    local status=ok
    [ "$failed" -gt 0 ] && status=FAILED
    printf '\ntest result: %s. %d passed; %d failed; %d ignored; 0 measured; 0 filtered out; finished in %ds\n' \
        "$status" "$passed" "$failed" "${1:-0}" "$(($(date +%s) - started))"
}
skip() {
    echo "SKIPPED tests/package/debian11.sh: $*"
    summary 1
    exit 0
}
die() {
    echo "error: $*" >&2
    failed=$((failed + 1))
    summary
    exit 1
}
check() { # NAME CONDITION-RESULT(0/1) [DETAIL]
    if [ "$2" = 0 ]; then
        echo "test $suite::$1 ... ok"
        passed=$((passed + 1))
    else
        echo "test $suite::$1 ... FAILED${3:+: $3}"
        failed=$((failed + 1))
    fi
}

# --- can this machine run it? -----------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "needs root for chroot and mount (CI runs as root)"
chroot / /bin/true 2>/dev/null || skip "chroot is not permitted here"
unshare --mount --propagation private /bin/true 2>/dev/null ||
    skip "unshare --mount is not permitted here"
for tool in debootstrap unzip openssl curl jq readelf python3 flock; do
    command -v "$tool" >/dev/null || die "$tool not found (.ci/run installs it)"
done
[ -f "$zip" ] || die "$zip not found: run scripts/package.sh first"

# --- the cached Debian 11 root ----------------------------------------------------------
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    # The first non-security Debian archive in apt's sources (deb822 or one-line format).
    local uri
    uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' |
        grep -E '/debian/?$' | head -n 1)
    [ -n "$uri" ] || uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }' |
        grep -E '/debian/?$' | head -n 1)
    echo "${uri:-http://deb.debian.org/debian}"
}

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9
if [ ! -f "$root/.mtls-handler-root" ]; then
    mirror=$(debian_mirror)
    echo "==> debootstrap --variant=minbase --include=ca-certificates bullseye $root $mirror"
    rm -rf "$root.new"
    t0=$(date +%s)
    if ! debootstrap --variant=minbase --include=ca-certificates bullseye "$root.new" "$mirror" \
        >"$root.debootstrap.log" 2>&1; then
        tail -n 20 "$root.debootstrap.log" >&2
        rm -rf "$root.new"
        die "debootstrap failed (log: $root.debootstrap.log)"
    fi
    # What a container image has and minbase leaves out; /etc/pki is an empty mount point
    # for the RHEL-layout check below.
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root.new/etc/hosts"
    mkdir -p "$root.new/etc/pki"
    date -u +%FT%TZ >"$root.new/.mtls-handler-root"
    rm -rf "$root"
    mv "$root.new" "$root"
    echo "==> Debian 11 root ready in $(($(date +%s) - t0)) s"
fi
flock -u 9
echo "==> Debian 11 root: $root ($(chroot "$root" ldd --version | head -n 1))"

# --- this run's folder inside the root --------------------------------------------------
run=$(mktemp -d "$root/tmp/mtls-handler-test.XXXXXX")
inroot="/tmp/$(basename "$run")"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

unzip -q "$zip" -d "$run/app"
app="$run/app/handler"

mode=$(stat -c %a "$app" 2>/dev/null)
check the_unzipped_handler_keeps_its_execute_bit "$([ "$mode" = 755 ]; echo $?)" "mode $mode"
guard=$(scripts/check-portable.sh "$app" 2.28 2>&1)
check the_packaged_handler_needs_no_shared_openssl_and_at_most_glibc_2_28 $? "$guard"

# --- certificates (openssl CLI) ---------------------------------------------------------
pki="$run/pki"
mkdir -p "$pki"
password='Debian 11 legacy p@ss'
outbound_cn=outbound.debian11.test
mkcert() { # NAME CN ISSUER(self|CA-NAME) EXTENSIONS
    local name=$1 cn=$2 issuer=$3 ext=$4
    openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -out "$pki/$name.csr" \
        -subj "/CN=$cn" 2>/dev/null
    printf '%b\n' "$ext" >"$pki/$name.ext"
    if [ "$issuer" = self ]; then
        openssl x509 -req -in "$pki/$name.csr" -signkey "$pki/$name.key" -days 2 \
            -extfile "$pki/$name.ext" -out "$pki/$name.pem" 2>/dev/null
    else
        openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$issuer.pem" -CAkey "$pki/$issuer.key" \
            -CAcreateserial -days 2 -extfile "$pki/$name.ext" -out "$pki/$name.pem" 2>/dev/null
    fi
}
ca_ext='basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign'
client_ext='basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'
mkcert ca "Debian 11 Test CA" self "$ca_ext"
mkcert partner-ca "Partner Root CA" self "$ca_ext"
mkcert client api-client.contoso.com ca "$client_ext"
mkcert impostor api-client.contoso.com self "$client_ext"
mkcert outbound "$outbound_cn" ca "$client_ext"
mkcert partner partner.test partner-ca \
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:partner.test'
# The app's identity: a password-protected PKCS#12 with RC2-40/3DES, as `-legacy` makes it.
openssl pkcs12 -export -legacy -in "$pki/outbound.pem" -inkey "$pki/outbound.key" \
    -certfile "$pki/ca.pem" -passout "pass:$password" -out "$pki/outbound.pfx" 2>/dev/null ||
    die "openssl pkcs12 -export -legacy failed (the host's OpenSSL needs its legacy provider)"
info=$(openssl pkcs12 -in "$pki/outbound.pfx" -info -noout -legacy -passin "pass:$password" 2>&1)
grep -q 'RC2' <<<"$info" && grep -q '3DES\|TripleDES\|des-ede3' <<<"$info" ||
    die "the test identity is not a legacy (RC2/3DES) PKCS#12: $info"
outbound_sha1=$(openssl x509 -in "$pki/outbound.pem" -noout -fingerprint -sha1 | cut -d= -f2 | tr -d :)
header() { openssl x509 -in "$pki/$1.pem" -outform DER | base64 -w0; }
client_header=$(header client)
impostor_header=$(header impostor)
# The partner's CA in a hashed directory (SSL_CERT_DIR) and appended to the system bundle.
mkdir -p "$pki/partner-dir"
cp "$pki/partner-ca.pem" "$pki/partner-dir/"
openssl rehash "$pki/partner-dir" 2>/dev/null || c_rehash "$pki/partner-dir" >/dev/null
cat "$root/etc/ssl/certs/ca-certificates.crt" "$pki/partner-ca.pem" >"$run/bundle-with-partner.pem"
printf '127.0.0.1\tlocalhost\n127.0.0.1\tpartner.test\n' >"$run/hosts"

# --- processes ----------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits (at most 20 s) until PORT answers GET / or the process PID exits.
wait_ready() { # NAME PID PORT
    local deadline=$(($(date +%s) + 20))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        curl -fs -m 1 -o /dev/null "http://127.0.0.1:$3/" && return 0
        if ! kill -0 "$2" 2>/dev/null; then
            wait "$2"
            echo "$1 exited with status $? before answering; its log:" >&2
            sed 's/^/    /' "$run/$1.log" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "$1 did not answer GET / within 20 s; its log:" >&2
    sed 's/^/    /' "$run/$1.log" >&2
    return 1
}
# Starts the packaged handler inside the Debian 11 root. LAYOUT of the system CA store:
# stock (Debian's bundle), debian (Debian's bundle + the partner CA), rhel (only
# /etc/pki/tls/certs/ca-bundle.crt, with the partner CA). Sets $port.
start_in_root() { # NAME LAYOUT [VAR=VALUE...]
    local name=$1 layout=$2
    shift 2
    port=$(free_port)
    unshare --mount --propagation private -- /bin/sh -c '
        set -e
        root=$1 hosts=$2 layout=$3 bundle=$4 appdir=$5
        shift 5
        mount --bind "$hosts" "$root/etc/hosts"
        mount -t proc proc "$root/proc" 2>/dev/null || true
        case "$layout" in
            debian) mount --bind "$bundle" "$root/etc/ssl/certs/ca-certificates.crt" ;;
            rhel)
                mount -t tmpfs tmpfs "$root/etc/ssl"
                mount -t tmpfs tmpfs "$root/etc/pki"
                mkdir -p "$root/etc/pki/tls/certs"
                cp "$bundle" "$root/etc/pki/tls/certs/ca-bundle.crt" ;;
        esac
        # In the app root, as the Functions host starts a custom handler (the handler checks
        # the function folders there).
        exec chroot "$root" /usr/bin/env -i -C "$appdir" "$@"
    ' sh "$root" "$run/hosts" "$layout" "$run/bundle-with-partner.pem" "$inroot/app" \
        PATH=/usr/bin:/bin RUST_LOG=info FUNCTIONS_CUSTOMHANDLER_PORT="$port" \
        CLIENT_CERT_CA_PATH="$inroot/pki/ca.pem" \
        OUTBOUND_CLIENT_CERT_PATH="$inroot/pki/outbound.pfx" \
        OUTBOUND_CLIENT_CERT_PASSWORD="$password" \
        REMOTE_API_URL="https://partner.test:$partner_port/api/cert-info" \
        REMOTE_API_TIMEOUT_SECONDS=10 \
        "$@" "$inroot/app/handler" >"$run/$name.log" 2>&1 &
    pids+=("$!")
    wait_ready "$name" "$!" "$port"
}
# Waits (at most 20 s) until the outbound certificate is no longer loading; prints health.
outbound_settled() { # PORT
    local deadline=$(($(date +%s) + 20)) body
    while [ "$(date +%s)" -lt "$deadline" ]; do
        body=$(curl -s -m 2 "http://127.0.0.1:$1/api/health")
        case "$(jq -r '.outboundCertificate.state' <<<"$body" 2>/dev/null)" in
            ready | unavailable) break ;;
        esac
        sleep 0.05
    done
    echo "$body"
}
# GET PATH on PORT with the client header NAME (or none); prints "STATUS BODY".
get() { # PORT PATH [HEADER-VALUE]
    curl -s -m 15 -o "$run/body" -w '%{http_code}' ${3:+-H "X-ARR-ClientCert: $3"} "http://127.0.0.1:$1$2"
    printf ' %s' "$(cat "$run/body")"
}

# The partner API on this machine: the packaged binary's own front end and policy.
partner_backend=$(free_port)
FUNCTIONS_CUSTOMHANDLER_PORT=$partner_backend CLIENT_CERT_CA_PATH="$pki/ca.pem" \
    ALLOWED_CLIENT_CERT_COMMON_NAMES="$outbound_cn" RUST_LOG=warn "$app" >"$run/partner.log" 2>&1 &
pids+=("$!")
wait_ready partner "$!" "$partner_backend" || die "the partner API did not start"
partner_port=$(free_port)
"$app" front-end --listen "127.0.0.1:$partner_port" --backend "http://127.0.0.1:$partner_backend" \
    --tls-cert "$pki/partner.pem" --tls-key "$pki/partner.key" --mode required \
    >"$run/partner-front-end.log" 2>&1 &
pids+=("$!")
# The front end asks for a client certificate, so wait for it to accept TCP (at most 20 s).
deadline=$(($(date +%s) + 20))
until (exec 3<>"/dev/tcp/127.0.0.1/$partner_port") 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || die "the partner's front end did not listen within 20 s"
    sleep 0.05
done

# --- the checks -----------------------------------------------------------------------
echo "==> handler in Debian 11 with a legacy password-protected PFX identity, partner at https://partner.test:$partner_port"
if start_in_root main stock REMOTE_API_CA_PATH="$inroot/pki/partner-ca.pem"; then
    main=$port
    r=$(get "$main" /)
    check the_handler_starts_in_debian_11_and_answers_the_readiness_probe \
        "$([ "${r%% *}" = 200 ]; echo $?)" "$r"
    health=$(outbound_settled "$main")
    r=$(get "$main" /api/health)
    check health_answers_200_in_debian_11 "$([ "${r%% *}" = 200 ]; echo $?)" "$r"
    check a_legacy_password_protected_pfx_loads_as_the_outbound_identity \
        "$([ "$(jq -r '.outboundCertificate.state + " " + .outboundCertificate.thumbprint' <<<"$health")" = "ready $outbound_sha1" ]; echo $?)" \
        "health: $health"
    accepted=$(get "$main" /api/cert-info "$client_header")
    check cert_info_accepts_a_client_certificate_chaining_to_the_ca_path \
        "$([ "${accepted%% *}" = 200 ]; echo $?)" "$accepted"
    rejected=$(get "$main" /api/cert-info "$impostor_header")
    check cert_info_rejects_a_self_signed_impostor_with_the_allowed_name \
        "$([ "${rejected%% *}" = 403 ] && [ "$(jq -r .code <<<"${rejected#* }")" = untrusted_chain ]; echo $?)" "$rejected"
    r=$(get "$main" /api/outbound-mtls "$client_header")
    check the_legacy_pfx_identity_calls_the_mtls_partner_by_host_name \
        "$([ "${r%% *}" = 200 ] && [ "$(jq -r .certificateThumbprint <<<"${r#* }")" = "$outbound_sha1" ]; echo $?)" "$r"
else
    check the_handler_starts_in_debian_11_and_answers_the_readiness_probe 1 "see the log above"
fi

# The same package on this machine (Debian 12, OpenSSL 3) gives the same answers.
host_port=$(free_port)
FUNCTIONS_CUSTOMHANDLER_PORT=$host_port CLIENT_CERT_CA_PATH="$pki/ca.pem" RUST_LOG=warn \
    "$app" >"$run/host.log" 2>&1 &
pids+=("$!")
if wait_ready host "$!" "$host_port" && [ -n "${main:-}" ]; then
    same=0
    for h in "$client_header" "$impostor_header" ""; do
        [ "$(get "$main" /api/cert-info "$h")" = "$(get "$host_port" /api/cert-info "$h")" ] || same=1
    done
    [ "$(get "$main" /)" = "$(get "$host_port" /)" ] || same=1
    check cert_info_and_readiness_answer_the_same_in_debian_11_as_on_this_host "$same"
fi

# Where the trust for the partner's server certificate comes from.
trust_case() { # NAME LAYOUT EXPECTED-STATUS [VAR=VALUE...]
    local name=$1 layout=$2 want=$3
    shift 3
    if start_in_root "$name" "$layout" "$@"; then
        outbound_settled "$port" >/dev/null
        local r
        r=$(get "$port" /api/outbound-mtls "$client_header")
        if [ "$want" = 200 ]; then
            check "the_partner_is_trusted_through_$name" "$([ "${r%% *}" = 200 ]; echo $?)" "$r"
        else
            check "the_partner_is_not_trusted_$name" \
                "$([ "${r%% *}" = "$want" ] && [ "$(jq -r .code <<<"${r#* }")" = remote_tls_failed ]; echo $?)" "$r"
        fi
    else
        check "$name" 1 "did not start"
    fi
}
trust_case the_debian_system_bundle debian 200
trust_case the_rhel_system_bundle rhel 200
trust_case ssl_cert_file stock 200 SSL_CERT_FILE="$inroot/pki/partner-ca.pem"
trust_case ssl_cert_dir stock 200 SSL_CERT_DIR="$inroot/pki/partner-dir"
trust_case without_its_ca_anywhere stock 502

if [ "$failed" -gt 0 ]; then
    echo "logs of the failed run:"
    for f in "$run"/*.log; do
        echo "--- $(basename "$f")"
        tail -n 20 "$f"
    done
fi
summary
[ "$failed" = 0 ]
