#!/usr/bin/env bash
# Makes every certificate the TLS tests use, signed by one test CA (valid 100 years; CA:TRUE and
# the key identifiers, which Python 3.13's strict X.509 checks want).  Test only: the keys are
# public.  Run from this folder: bash make.sh (needs openssl 1.1.1 or later).
#   ca.pem      the test CA
#   server.pem  localhost, dmr.example.test (the name used through the test proxy), 127.0.0.1
#   other.pem   other.example.test only: a certificate for another name
#   expired.pem server.pem's names, valid 2000-01-01 to 2001-01-01 only (openssl ca -startdate/-enddate)
#   client.pem  a client certificate (clientAuth) for mutual TLS
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -new -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 36500 -config ca.cnf
sign() {   # sign NAME EXTENSIONS CN: NAME.key and NAME.pem, 100 years from now
  openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$tmp/$1.csr" -subj "/CN=$3"
  openssl x509 -req -in "$tmp/$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -CAserial "$tmp/ca.srl" \
    -out "$1.pem" -days 36500 -extfile server.cnf -extensions "$2"
}
sign server v3_server localhost
sign other v3_other other.example.test
sign client v3_client "dmr_client test client"
# The expired one: `openssl x509 -req` has no start date before OpenSSL 3.4; `openssl ca` has.
openssl req -new -newkey rsa:2048 -nodes -keyout expired.key -out "$tmp/expired.csr" -subj "/CN=localhost"
touch "$tmp/index.txt"
cat > "$tmp/ca.cnf" <<CONF
[ca]
default_ca = test_ca
[test_ca]
database = $tmp/index.txt
new_certs_dir = $tmp
rand_serial = yes
default_md = sha256
policy = any
[any]
commonName = supplied
CONF
openssl ca -batch -notext -config "$tmp/ca.cnf" -cert ca.pem -keyfile ca.key -in "$tmp/expired.csr" \
  -out expired.pem -startdate 20000101000000Z -enddate 20010101000000Z -extfile server.cnf -extensions v3_server
