#!/usr/bin/env bash
# Regenerates fuzz/seeds/: real and broken certificates, in every encoding the header may
# carry, and CRLs, made with the real openssl CLI. Private keys live in a temporary
# directory that is deleted on exit: only certificates and CRLs are written to seeds/.
# ca.pem, crl.pem and pinned.pem are also the fuzz target's fixed policy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf seeds
mkdir -p seeds

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$work/$1.key"; }
ext() { printf '%b' "$1" >"$work/ext.cnf"; }

# Root and issuing CA (the issuing CA names the root's CRL as its distribution point).
key root
openssl req -x509 -new -key "$work/root.key" -subj "/CN=Fuzz Root CA" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$work/root.pem" 2>/dev/null
key issuing
openssl req -new -key "$work/issuing.key" -subj "/CN=Fuzz Issuing CA" -out "$work/issuing.csr"
ext "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\ncrlDistributionPoints=URI:http://127.0.0.1:9/root.crl\n"
openssl x509 -req -in "$work/issuing.csr" -CA "$work/root.pem" -CAkey "$work/root.key" \
    -set_serial 0x1001 -days 1825 -extfile "$work/ext.cnf" -out "$work/issuing.pem" 2>/dev/null
cat "$work/root.pem" "$work/issuing.pem" >seeds/ca.pem

leaf_ext="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\ncrlDistributionPoints=URI:http://127.0.0.1:9/issuing.crl\nsubjectAltName=DNS:api-client.contoso.com\n"
serial=0x2000
leaf() { # name subject extensions
    serial=$((serial + 1))
    key "$1"
    openssl req -new -key "$work/$1.key" -subj "$2" -out "$work/$1.csr"
    ext "$3"
    openssl x509 -req -in "$work/$1.csr" -CA "$work/issuing.pem" -CAkey "$work/issuing.key" \
        -set_serial "$serial" -days 365 -extfile "$work/ext.cnf" -out "seeds/$1.pem" 2>/dev/null
}
leaf good "/CN=api-client.contoso.com" "$leaf_ext"
leaf revoked "/CN=api-client.contoso.com" "$leaf_ext"
leaf other-cn "/CN=someone-else.example" "$leaf_ext"
leaf server-only "/CN=api-client.contoso.com" "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
leaf two-cns "/CN=api-client.contoso.com/CN=evil.example" "$leaf_ext"
leaf ca-as-leaf "/CN=api-client.contoso.com" "basicConstraints=critical,CA:TRUE\n"
leaf no-eku "/O=Contoso/CN=api-client.contoso.com" "basicConstraints=critical,CA:FALSE\n"

# Self-signed: the pinned certificate, and an impostor with the allowlisted CN.
key pinned
openssl req -x509 -new -key "$work/pinned.key" -subj "/CN=pinned.example" -days 365 \
    -addext "extendedKeyUsage=clientAuth" -out seeds/pinned.pem 2>/dev/null
key impostor
openssl req -x509 -new -key "$work/impostor.key" -subj "/CN=api-client.contoso.com" -days 365 \
    -addext "extendedKeyUsage=clientAuth" -out seeds/impostor.pem 2>/dev/null

# CRLs: the issuing CA revokes "revoked"; the root revokes nothing.
crl() { # ca-name out revoke...
    local ca=$1 out=$2
    shift 2
    mkdir -p "$work/$ca-db"
    : >"$work/$ca-db/index.txt"
    echo 01 >"$work/$ca-db/crlnumber"
    cat >"$work/$ca-db/ca.cnf" <<CNF
[ ca ]
default_ca = d
[ d ]
database = $work/$ca-db/index.txt
crlnumber = $work/$ca-db/crlnumber
default_md = sha256
default_crl_days = 3650
CNF
    for r in "$@"; do
        openssl ca -config "$work/$ca-db/ca.cnf" -keyfile "$work/$ca.key" -cert "$work/$ca.pem" \
            -revoke "$r" 2>/dev/null
    done
    openssl ca -gencrl -config "$work/$ca-db/ca.cnf" -keyfile "$work/$ca.key" \
        -cert "$work/$ca.pem" -out "$out" 2>/dev/null
}
crl issuing "$work/issuing-crl.pem" seeds/revoked.pem
crl root "$work/root-crl.pem"
cat "$work/issuing-crl.pem" "$work/root-crl.pem" >seeds/crl.pem

# Every encoding of every certificate: DER, the header's base64, and broken variants.
for pem in seeds/*.pem; do
    name=$(basename "$pem" .pem)
    [ "$name" = crl ] && continue
    [ "$name" = ca ] && continue
    openssl x509 -in "$pem" -outform der -out "seeds/$name.der"
    base64 -w0 "seeds/$name.der" >"seeds/$name.b64"
    base64 -w 64 "seeds/$name.der" >"seeds/$name.b64-wrapped"
    head -c 200 "seeds/$name.der" >"seeds/$name.truncated.der"
    { cat "seeds/$name.der"; printf 'x'; } >"seeds/$name.trailing.der"
done
openssl crl -in "$work/issuing-crl.pem" -outform der -out seeds/issuing-crl.der
openssl crl -in "$work/root-crl.pem" -outform der -out seeds/root-crl.der
cat seeds/good.b64 seeds/pinned.b64 >seeds/two-certs.b64
printf '' >seeds/empty
ls seeds | wc -l
