#!/bin/sh
# Regenerate the localhost test certificates in protocols/certs/ with the
# openssl CLI: a self-signed test CA and a leaf certificate signed by it for
# DNS:localhost, IP:127.0.0.1 and IP:::1.  Both use ECDSA P-256 (fast
# handshakes) and are valid for 100 years, so the committed files never expire
# during a test run.  The CA's private key is deleted at the end: nobody can
# sign another certificate with this CA, so trusting ca.pem in a test trusts
# exactly the one leaf below.
#
# Usage: sh tests/make_certs.sh   (from anywhere; writes protocols/certs/)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/protocols/certs"
days=36500
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/ca.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
O = testservers
CN = testservers test CA (do not trust outside tests)
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF

cat >"$tmp/leaf.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
O = testservers
CN = localhost
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/ca.key"
openssl req -new -x509 -sha256 -days "$days" -key "$tmp/ca.key" \
    -config "$tmp/ca.cnf" -set_serial 1 -out "$out/ca.pem"

openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/leaf.key.sec1"
openssl pkcs8 -topk8 -nocrypt -in "$tmp/leaf.key.sec1" -out "$out/localhost-key.pem"
openssl req -new -sha256 -key "$out/localhost-key.pem" -config "$tmp/leaf.cnf" -out "$tmp/leaf.csr"
openssl x509 -req -sha256 -days "$days" -in "$tmp/leaf.csr" \
    -CA "$out/ca.pem" -CAkey "$tmp/ca.key" -set_serial 2 \
    -extfile "$tmp/leaf.cnf" -extensions v3_leaf -out "$out/localhost.pem"

chmod 644 "$out/localhost-key.pem"

# One file with the key and the certificate, like CPython's keycert.pem.
cat "$out/localhost-key.pem" "$out/localhost.pem" >"$out/localhost-keycert.pem"

openssl verify -CAfile "$out/ca.pem" "$out/localhost.pem"
