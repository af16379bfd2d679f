#!/usr/bin/env bash
# Makes a demo CA (standing in for Step-CA or an in-house CA), a server certificate for
# localhost and client certificates whose CN is <device>.clients.mqtt.example.com, in ./certs.
# Usage: ./make-certs.sh [device ...]   (default: sensor-1 sensor-2 platform)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p certs && cd certs
days=30
if [ ! -f ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
    -out ca.crt -days "$days" -subj "/CN=Example Devices CA" 2>/dev/null
fi
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
  -out server.csr -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile server.ext -out server.crt 2>/dev/null
devices=("$@")
[ ${#devices[@]} -gt 0 ] || devices=(sensor-1 sensor-2 platform)
for d in "${devices[@]}"; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d.key" \
    -out "$d.csr" -subj "/CN=$d.clients.mqtt.example.com" 2>/dev/null
  openssl x509 -req -in "$d.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -out "$d.crt" 2>/dev/null
  echo "made certs/$d.crt (serial $(openssl x509 -in "$d.crt" -noout -serial | cut -d= -f2))"
done
rm -f ./*.csr server.ext
chmod 0644 ./*.crt ./*.key
