#!/usr/bin/env bash
# Builds libmqttguard.so and runs Mosquitto with it on examples/drop-in (127.0.0.1:1883).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
cargo build --release --lib
cd examples/drop-in
cat <<'MSG'

mqttguard demo: Mosquitto on 127.0.0.1:1883 with libmqttguard.so (Ctrl-C stops it).
In another shell:
  mosquitto_sub -h 127.0.0.1 -u demo -P demo-password -t 'sensors/#' -v
  mosquitto_pub -h 127.0.0.1 -u sensor1 -P sensor1-password -i sensor1 -t sensors/sensor1/temp -m 21.5
  mosquitto_pub -h 127.0.0.1 -u demo -P wrong -t demo/x -m refused     # not authorised
  mosquitto_sub -h 127.0.0.1 -u demo -P demo-password -t '#'           # refused: check_subscribe

MSG
exec mosquitto -c mosquitto.conf
