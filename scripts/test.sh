#!/usr/bin/env bash
# The whole test suite: core tests and end-to-end tests against the real mosquitto broker.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
cargo build --workspace --all-targets
export MQTTGUARD_PLUGIN="$PWD/target/debug/libmqttguard.so"
cargo test --workspace -- --test-threads="${MQTTGUARD_TEST_THREADS:-4}"
