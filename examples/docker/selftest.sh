#!/bin/sh
# Run by the Dockerfiles in the final image stage, as the image's user: the build fails unless
# the plugin and the `mqttguard` command load there and the default configuration is used and
# lint-clean. POSIX sh (Alpine's busybox and Debian's dash).
set -eu
fail() { echo "mqttguard image self-test: $*" >&2; exit 1; }

for f in /usr/lib/libmqttguard.so /usr/bin/mqttguard; do
  [ -f "$f" ] || fail "$f is missing"
  # Missing libraries ("not found"), and on musl also unresolved symbols such as
  # __sprintf_chk from a glibc build ("symbol not found", "Error relocating").
  out=$(ldd "$f" 2>&1) || fail "ldd $f failed: $out"
  if echo "$out" | grep -Eqi 'not found|error relocating|error loading'; then
    fail "$f would not load here: $out"
  fi
done
mqttguard --version >/dev/null || fail "mqttguard does not run"

# The default configuration passes the linter with no warning (exit 0).
mqttguard lint --acl /mosquitto/config/acl --passwd /mosquitto/config/passwd \
  --config /mosquitto/config/mqttguard.toml || fail "mqttguard lint on the default configuration"

# The broker loads the plugin with the default configuration; a Unix socket replaces the TCP
# listener so that the build needs no port.
tmp=$(mktemp -d)
sed -e 's|^listener 1883$|listener 0 '"$tmp"'/mqtt.sock|' -e 's|^persistence true$|persistence false|' \
  /mosquitto/config/mosquitto.conf > "$tmp/mosquitto.conf"
grep -q "^listener 0 $tmp/mqtt.sock" "$tmp/mosquitto.conf" || fail "no 'listener 1883' in the default mosquitto.conf"
mosquitto -c "$tmp/mosquitto.conf" > "$tmp/log" 2>&1 &
pid=$!
i=0
while ! grep -q 'mqttguard: loaded' "$tmp/log" && kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
  sleep 0.1
  i=$((i + 1))
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
cat "$tmp/log"
grep -q 'mqttguard: loaded' "$tmp/log" || fail "mosquitto did not load /usr/lib/libmqttguard.so"
rm -rf "$tmp"
echo "mqttguard image self-test: passed"
