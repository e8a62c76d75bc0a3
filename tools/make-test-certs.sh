#!/bin/sh
# Makes throw-away certificates for the TLS tests.
#
#   tools/make-test-certs.sh DIR
#
# Writes into DIR (created if missing; files there are replaced):
#   ca.crt ca.key                 the test CA
#   server.crt server.key         signed by it; SAN IP:127.0.0.1, DNS:localhost
#   client.crt client.key         signed by it, for mutual TLS
#   expired.crt expired.key       like server.crt, but expired in 2020
#   wrongname.crt wrongname.key   signed by the CA; SAN DNS:wrong.example only
#   other-ca.crt other-ca.key     an unrelated CA
#
# EC P-256 keys, so it runs in well under a second. Quiet on success; on any
# failure prints openssl's output and exits non-zero.
set -eu

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
command -v openssl >/dev/null || { echo "openssl not installed" >&2; exit 1; }
dir=$1
mkdir -p "$dir"

# Everything is made in a scratch directory and moved into DIR at the end,
# so a failed run never leaves a half-made set that a later run would trust.
work=$(mktemp -d "$dir/.make-certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$work/log

run() {
  "$@" >>"$log" 2>&1 || {
    echo "make-test-certs: failed: $*" >&2
    cat "$log" >&2
    exit 1
  }
}

# One config for everything: req needs a distinguished_name section even
# with -subj, and 'openssl ca' (used only for the expired certificate,
# because only it can back-date) needs its database settings.
cat >"$work/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
[wrongname_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[ca]
default_ca = test_ca
[test_ca]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any_name
unique_subject = no
email_in_dn = no
copy_extensions = none
[any_name]
commonName = supplied
EOF
cnf=$work/openssl.cnf
: >"$work/index.txt"
echo 01 >"$work/serial"

key() {
  run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$work/$1.key"
}

# ca NAME CN: a self-signed CA.
ca() {
  key "$1"
  run openssl req -config "$cnf" -new -x509 -key "$work/$1.key" \
    -subj "/CN=$2" -days 3650 -sha256 -extensions ca_ext -out "$work/$1.crt"
}

# leaf NAME CN EXTSECTION: a key, a request, and a certificate for it
# signed by the test CA, valid from now.
leaf() {
  key "$1"
  run openssl req -config "$cnf" -new -key "$work/$1.key" -subj "/CN=$2" \
    -out "$work/$1.csr"
  run openssl x509 -req -in "$work/$1.csr" -CA "$work/ca.crt" \
    -CAkey "$work/ca.key" -set_serial "0x$(od -An -N8 -tx1 /dev/urandom |
      tr -d ' \n')" -days 3650 -sha256 -extfile "$cnf" -extensions "$3" \
    -out "$work/$1.crt"
}

ca ca "lev-redis test CA"
ca other-ca "lev-redis unrelated CA"
leaf server localhost server_ext
leaf client lev-redis-client client_ext
leaf wrongname wrong.example wrongname_ext

# OpenSSL 3.0's x509 has no -not_before/-not_after (3.4 adds them), so the
# back-dated certificate goes through 'openssl ca'.
key expired
run openssl req -config "$cnf" -new -key "$work/expired.key" \
  -subj "/CN=localhost" -out "$work/expired.csr"
run openssl ca -config "$cnf" -batch -notext -in "$work/expired.csr" \
  -cert "$work/ca.crt" -keyfile "$work/ca.key" \
  -startdate 20200101000000Z -enddate 20200102000000Z \
  -extfile "$cnf" -extensions server_ext -out "$work/expired.crt"

# Sanity checks, so a broken set fails here and not as a puzzling test.
run openssl verify -CAfile "$work/ca.crt" "$work/server.crt" \
  "$work/client.crt" "$work/wrongname.crt"
if openssl verify -CAfile "$work/ca.crt" "$work/expired.crt" \
     >>"$log" 2>&1; then
  echo "make-test-certs: expired.crt verifies" >&2; exit 1
fi

for f in ca other-ca server client expired wrongname; do
  chmod 600 "$work/$f.key"
  mv -f "$work/$f.key" "$work/$f.crt" "$dir/"
done
