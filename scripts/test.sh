#!/usr/bin/env bash
# The whole test suite: core tests, then end-to-end tests against the real mosquitto broker:
# Debian 12's 2.0.11 natively, 2.0.21 (Debian trixie) and 2.1.2 (Debian sid) from minimal
# Debian trees run with chroot. MQTTGUARD_MATRIX=native runs the native broker only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
cargo build --workspace --all-targets
export MQTTGUARD_PLUGIN="$PWD/target/debug/libmqttguard.so"
threads="${MQTTGUARD_TEST_THREADS:-4}"

echo "== mqttguard: core and end-to-end tests, native mosquitto ($(mosquitto -h | head -1 | cut -d' ' -f3))"
cargo test --workspace -- --test-threads="$threads"

matrix="${MQTTGUARD_MATRIX:-all}"
[ "$matrix" = native ] && exit 0

# suite : what the end-to-end run compares against
for entry in trixie:builtin sid:plugin-only; do
  suite=${entry%%:*}
  reference=${entry#*:}
  root="${MQTTGUARD_ROOTS:-/var/cache/mqttguard}/$suite"
  bash scripts/debian-tree.sh "$suite" "$root"
  version=$(chroot "$root" /usr/sbin/mosquitto -h 2>/dev/null | head -1 | cut -d' ' -f3 || true)
  echo "== mqttguard: end-to-end tests, mosquitto $version (Debian $suite, chroot)"
  if [ "$reference" = builtin ]; then
    MQTTGUARD_MOSQUITTO_ROOT="$root" cargo test -p mosquitto-test -- --test-threads="$threads"
  else
    # 2.1's own password/acl files decide differently by design (whole-level %c/%u, stricter
    # password lines): the plugin is held to the same 2.0 expectations instead.
    MQTTGUARD_MOSQUITTO_ROOT="$root" MQTTGUARD_NO_BUILTIN_REFERENCE=1 \
      cargo test -p mosquitto-test -- --test-threads="$threads" --skip builtin
  fi
done

# The examples (lint-clean), the Kubernetes manifests (offline validation) and the Debian
# container image built with podman and tested end to end (scripts/image.sh installs podman;
# it uses the debug build made above). MQTTGUARD_IMAGE=0 skips it.
if [ "${MQTTGUARD_IMAGE:-1}" != 0 ]; then
  echo "== mqttguard: examples, Kubernetes manifests, container image (podman)"
  bash scripts/image.sh --profile debug
fi

# Memory checking of the plugin's FFI: part of the end-to-end suite with the broker under
# valgrind memcheck, on 2.0.11 and 2.1.2 (about 3.5 minutes on 2 cores). MQTTGUARD_MEMCHECK=0
# skips it.
if [ "${MQTTGUARD_MEMCHECK:-1}" != 0 ]; then
  echo "== mqttguard: memcheck (valgrind) of the plugin, mosquitto 2.0.11 and 2.1.2"
  bash scripts/memcheck.sh
fi
