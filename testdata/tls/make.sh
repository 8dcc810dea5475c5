#!/usr/bin/env bash
# Makes the test CA and the loopback server certificate the TLS tests use (valid 100 years;
# CA:TRUE and the key identifiers, which Python 3.13's strict X.509 checks want).  Test only:
# the keys are public.  Run from this folder: bash make.sh
set -euo pipefail
openssl req -x509 -new -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 36500 -config ca.cnf
openssl req -new -newkey rsa:2048 -nodes -keyout server.key -out server.csr -config server.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 36500 \
  -extfile server.cnf -extensions v3_server
rm -f server.csr ca.srl
