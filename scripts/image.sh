#!/usr/bin/env bash
# The examples and the container image, tested for real (run as root on Debian 12):
#   1. every example (and the image's default config) passes `mqttguard lint` with no warning;
#   2. the Kubernetes manifests validate offline (examples/kubernetes/validate.py);
#   3. the Debian image (Dockerfile.debian) is built with podman from a local Debian base
#      (debootstrap + podman import, made once) and the host's build of the plugin;
#   4. end-to-end against the running containers from the host, with mosquitto_pub/_sub:
#      the examples/drop-in and examples/step-ca configurations (TLS listener, client
#      certificates, revocation), the Kubernetes ConfigMap/Secret, and the image's default.
#
#   scripts/image.sh [--profile release|debug]     (default release; the test suite uses debug)
#
# Installs what it needs (podman, buildah, runc, debootstrap, mosquitto-clients, python3-venv).
# MQTTGUARD_ROOTS (default /var/cache/mqttguard) holds the base tree and the Python venv.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

profile=release
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=$2; shift 2 ;;
    *) echo "usage: scripts/image.sh [--profile release|debug]" >&2; exit 2 ;;
  esac
done
case $profile in release|debug) ;; *) echo "--profile: release or debug" >&2; exit 2 ;; esac

cache=${MQTTGUARD_ROOTS:-/var/cache/mqttguard}
release=bookworm                                  # the host's Debian and the image's
base=docker.io/library/debian:$release-slim       # the name Dockerfile.debian's FROM uses
image=localhost/mosquitto-mqttguard:test-$$
prefix=mqttguard-test-$$
export CONTAINERS_CONF=$repo/scripts/podman/containers.conf

step() { echo "== mqttguard image: $*"; }
fail() { echo "mqttguard image: FAILED: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "  ok: $*"; }

# --- what this needs -------------------------------------------------------------------------
# shellcheck source=scripts/packages.sh
source scripts/packages.sh
ensure_debian_packages podman buildah runc debootstrap mosquitto-clients openssl python3-venv
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi

work=$(mktemp -d /tmp/mqttguard-image.XXXXXX)
containers=()
cleanup() {
  for c in "${containers[@]}"; do podman rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  podman rmi -f "$image" >/dev/null 2>&1 || true
  # Client processes this script started in the background.
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

start=$SECONDS
if [ "$profile" = release ]; then
  cargo build --release --lib --bin mqttguard
else
  cargo build --lib --bin mqttguard
fi
mqttguard=$repo/target/$profile/mqttguard

# --- 1. the examples pass the linter ---------------------------------------------------------
# A password file is deployed 0600 (git keeps no modes, so a fresh clone has 0644): each
# example is linted as deployed, from a copy with that mode.
step "mqttguard lint on every example"
lint_clean() { # DIR: lints DIR's acl/passwd/mqttguard.toml that exist; must be clean
  local dir=$1 args=()
  [ -f "$dir/acl" ] && args+=(--acl "$dir/acl")
  [ -f "$dir/passwd" ] && args+=(--passwd "$dir/passwd")
  [ -f "$dir/mqttguard.toml" ] && args+=(--config "$dir/mqttguard.toml")
  local out
  if ! out=$(cd "$dir" && "$mqttguard" lint "${args[@]}" 2>&1); then
    echo "$out"
    fail "mqttguard lint $dir: not clean"
  fi
  echo "$out" | grep -q '^0 errors, 0 warnings$' || { echo "$out"; fail "lint $dir: unexpected output"; }
}
for example in drop-in step-ca docker/config; do
  mkdir -p "$work/lint/$example"
  cp -r "examples/$example/." "$work/lint/$example/"
  [ -f "$work/lint/$example/passwd" ] && chmod 0600 "$work/lint/$example/passwd"
  lint_clean "$work/lint/$example"
  ok "examples/$example: 0 errors, 0 warnings"
done
# The linter does warn here (so the check above can fail): the same password file 0644.
chmod 0644 "$work/lint/drop-in/passwd"
if (cd "$work/lint/drop-in" && "$mqttguard" lint --passwd passwd >/dev/null 2>&1); then
  fail "lint did not warn about a world-readable password file"
fi
ok "a world-readable password file is warned about"

# --- 2. the Kubernetes manifests -------------------------------------------------------------
step "Kubernetes manifests (offline validation)"
venv=$cache/venv-kubernetes-validate
if ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate==1.37.0
fi
"$venv/bin/python" examples/kubernetes/validate.py --self-test --extract "$work/k8s"
ok "examples/kubernetes validates"

# --- 3. the base and the image ---------------------------------------------------------------
t0=$SECONDS
mkdir -p "$cache"
exec 9>"$cache/image-base.lock"
flock 9    # one run makes the base; a concurrent one waits for it
if ! podman image exists "$base"; then
  tree=$cache/image-base-$release
  if [ ! -x "$tree/bin/sh" ]; then
    step "making the Debian $release base image with debootstrap (once)"
    rm -rf "$tree.partial"
    debootstrap --variant=minbase "$release" "$tree.partial" http://deb.debian.org/debian \
      > "$tree.log" 2>&1 || { tail -20 "$tree.log"; exit 1; }
    # As Debian's own slim images: security updates listed, no package lists kept.
    echo "deb http://deb.debian.org/debian-security $release-security main" >> "$tree.partial/etc/apt/sources.list"
    rm -rf "$tree.partial"/var/lib/apt/lists/* "$tree.partial"/var/cache/apt/*.bin
    rm -rf "$tree"
    mv "$tree.partial" "$tree"
  fi
  tar -C "$tree" --numeric-owner -c . | podman import --change 'CMD ["bash"]' - "$base" >/dev/null
  echo "  base image $base made in $((SECONDS - t0)) s"
fi
flock -u 9

step "building the Debian image (Dockerfile.debian, plugin from target/$profile)"
t0=$SECONDS
# Network for apt inside the build: the host's (no bridge is set up here).
podman build --network host -f Dockerfile.debian --build-arg PLUGIN_FROM=prebuilt \
  --build-arg PREBUILT_DIR="target/$profile" -t "$image" . > "$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log"; fail "podman build"; }
grep -q 'mqttguard image self-test: passed' "$work/build.log" || fail "the build did not run the self-test"
echo "  built in $((SECONDS - t0)) s"
ok "image built; its self-test (ldd, broker loads the plugin, default config lint-clean) passed"

# --- 4. end to end ---------------------------------------------------------------------------
t_e2e=$SECONDS
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# run NAME CONFIG_DIR [podman options...]: the image with CONFIG_DIR as /mosquitto/config, on the
# host's network (it listens on 127.0.0.1 only); waits for mqttguard's load line.
run() {
  local name=$prefix-$1 dir=$2
  shift 2
  chown -R 1883:1883 "$dir"
  podman run -d --name "$name" --network host -v "$dir:/mosquitto/config:ro" "$@" "$image" >/dev/null
  containers+=("$name")
  wait_log "$name" 'mqttguard: loaded'
}
wait_log() { # NAME PATTERN [COUNT]: until the container's log has COUNT lines matching PATTERN
  local name=$1 pattern=$2 count=${3:-1}
  for _ in $(seq 300); do
    [ "$(podman logs "$name" 2>&1 | grep -c -- "$pattern")" -ge "$count" ] && return 0
    podman container inspect -f '{{.State.Running}}' "$name" 2>/dev/null | grep -q true || break
    sleep 0.1
  done
  podman logs "$name" 2>&1 | tail -30
  fail "$name: no log line matching '$pattern'"
}
# conf SRC DST PORT: an example's mosquitto.conf for the image: the installed plugin, the given
# port, unbuffered logging.
conf() {
  sed -e 's|^plugin .*libmqttguard.so$|plugin /usr/lib/libmqttguard.so|' \
      -e "s|^listener [0-9]* 127.0.0.1$|listener $3 127.0.0.1|" \
      -e 's|^log_dest stdout$|log_dest stderr|' "$1" > "$2"
  grep -q "^listener $3 127.0.0.1$" "$2" || fail "$1: no loopback listener line"
  grep -q '^plugin /usr/lib/libmqttguard.so$' "$2" || fail "$1: no plugin line"
}

# Subscribers run in the background and write what they receive to a file; a subscriber is
# known to be subscribed once a sync message published after it started has arrived. Messages
# of one publisher reach a subscriber in order, so once a later marker has arrived, an earlier
# message that is not there was not delivered (no waiting for something not to happen).
sub_start() { # FILE mosquitto_sub options...
  local file=$1
  shift
  timeout 120 mosquitto_sub -q 1 -v "$@" > "$file" 2>&1 &
}
sub_sync() { # FILE TOPIC mosquitto_pub options (a publisher allowed on TOPIC, seen by the sub)
  local file=$1 topic=$2
  shift 2
  for i in $(seq 100); do
    timeout 20 mosquitto_pub -q 1 "$@" -t "$topic" -m "sync-$i" >/dev/null 2>&1 || true
    grep -q "^$topic sync-" "$file" && return 0
    sleep 0.1
  done
  cat "$file"
  fail "subscriber $file never received $topic"
}
wait_line() { # FILE LINE: until FILE has LINE (bounded)
  for _ in $(seq 200); do
    grep -qxF -- "$2" "$1" && return 0
    sleep 0.1
  done
  cat "$1"
  fail "$1: never received '$2'"
}
hup() { # NAME COUNT: SIGHUP, then until the COUNT-th reload line
  podman kill -s HUP "$1" >/dev/null
  wait_log "$1" 'mqttguard: reloaded' "$2"
}

# 4a. The drop-in example: passwords, ACL, check_subscribe, reload on SIGHUP.
step "end to end: examples/drop-in in the container"
d=$work/drop-in
mkdir -p "$d"
cp examples/drop-in/acl examples/drop-in/passwd examples/drop-in/mqttguard.toml "$d/"
chmod 0600 "$d/passwd"
port=$(free_port)
conf examples/drop-in/mosquitto.conf "$d/mosquitto.conf" "$port"
run drop-in "$d" --workdir /mosquitto/config
c=$prefix-drop-in
ok "plugin loaded: $(podman logs "$c" 2>&1 | grep -m1 'mqttguard: loaded')"

demo=(-h 127.0.0.1 -p "$port" -u demo -P demo-password)
sensor1=(-h 127.0.0.1 -p "$port" -u sensor1 -P sensor1-password -i sensor1)
sub_start "$work/demo.out" "${demo[@]}" -i demo-sub -t 'sensors/#' -t 'demo/#'
sub_sync "$work/demo.out" demo/sync "${demo[@]}" -i demo-pub
timeout 20 mosquitto_pub -q 1 "${sensor1[@]}" -t sensors/sensor1/temp -m 21.5
timeout 20 mosquitto_pub -q 1 "${sensor1[@]}" -t sensors/sensor2/temp -m forged   # denied: not its id
timeout 20 mosquitto_pub -q 1 "${sensor1[@]}" -t sensors/sensor1/secret -m hidden # demo may not read
timeout 20 mosquitto_pub -q 1 "${sensor1[@]}" -t sensors/sensor1/marker -m 1
wait_line "$work/demo.out" "sensors/sensor1/marker 1"
grep -qxF "sensors/sensor1/temp 21.5" "$work/demo.out" || fail "allowed publish not delivered"
ok "allowed publish delivered (sensor1 -> sensors/sensor1/temp -> demo)"
grep -q "forged" "$work/demo.out" && fail "denied publish (sensors/sensor2/temp by sensor1) delivered"
ok "denied publish not delivered (sensor1 may not write sensors/sensor2/...)"
grep -q "hidden" "$work/demo.out" && fail "delivery denied by 'topic deny sensors/+/secret' happened"
ok "denied delivery not made (demo may not read sensors/+/secret)"
wait_log "$c" 'mqttguard: denied write on "sensors/sensor2/temp"'
ok "the denial is in the broker log with its rule"

if out=$(timeout 20 mosquitto_pub -h 127.0.0.1 -p "$port" -u demo -P wrong-password -t demo/x -m x 2>&1); then
  fail "a wrong password was accepted"
fi
echo "$out" | grep -qi 'not authori' || fail "wrong password: unexpected answer: $out"
ok "wrong password refused ($out)"
if timeout 20 mosquitto_pub -h 127.0.0.1 -p "$port" -t public/x -m x >/dev/null 2>&1; then
  fail "an anonymous client was accepted (allow_anonymous false)"
fi
ok "anonymous client refused"

# check_subscribe = true: a filter demo can never read is refused (SUBACK 0x80).
out=$(timeout 20 mosquitto_sub "${demo[@]}" -i demo-hash -t '#' -C 1 -W 10 2>&1 || true)
echo "$out" | grep -qi 'denied' || fail "subscribe to # was not refused: $out"
ok "denied subscribe refused ($out)"
out=$(timeout 20 mosquitto_sub "${demo[@]}" -i demo-ok -t 'demo/#' -E 2>&1) || fail "allowed subscribe refused: $out"
ok "allowed subscribe granted"

# A policy change: the deny rule is removed, SIGHUP, and demo now receives .../secret.
sed -i '/^topic deny sensors\/+\/secret$/d' "$d/acl"
hup "$c" 1
timeout 20 mosquitto_pub -q 1 "${sensor1[@]}" -t sensors/sensor1/secret -m now-visible
timeout 20 mosquitto_pub -q 1 "${sensor1[@]}" -t sensors/sensor1/marker -m 2
wait_line "$work/demo.out" "sensors/sensor1/marker 2"
grep -qxF "sensors/sensor1/secret now-visible" "$work/demo.out" || fail "ACL change not in force after SIGHUP"
ok "ACL change picked up on SIGHUP (podman kill -s HUP)"
# A broken file on reload: refused with file:line, the previous policy stays in force.
printf 'topic raed x\n' >> "$d/acl"
podman kill -s HUP "$c" >/dev/null
wait_log "$c" 'acl:[0-9]*: invalid topic access type'
timeout 20 mosquitto_pub -q 1 "${sensor1[@]}" -t sensors/sensor1/temp -m 22
timeout 20 mosquitto_pub -q 1 "${sensor1[@]}" -t sensors/sensor1/marker -m 3
wait_line "$work/demo.out" "sensors/sensor1/marker 3"
grep -qxF "sensors/sensor1/temp 22" "$work/demo.out" || fail "previous policy lost after a broken reload"
ok "a broken ACL on SIGHUP is refused with file:line; the previous policy stays"
sed -i '$d' "$d/acl"
# A password change reaches the broker on SIGHUP too.
"$mqttguard" passwd "$d/passwd" demo --batch new-demo-password >/dev/null
hup "$c" 2
timeout 20 mosquitto_pub -h 127.0.0.1 -p "$port" -u demo -P demo-password -t demo/x -m x >/dev/null 2>&1 &&
  fail "old password still accepted after the change and SIGHUP"
timeout 20 mosquitto_pub -q 1 -h 127.0.0.1 -p "$port" -u demo -P new-demo-password -t demo/x -m x ||
  fail "new password refused after SIGHUP"
ok "password change picked up on SIGHUP"

# ---- file watching ([reload] watch = true): a policy change picked up without any signal -----
step "end to end: [reload] watch in the container (no SIGHUP)"
w=$work/watch
mkdir -p "$w"
cp examples/drop-in/acl examples/drop-in/passwd examples/drop-in/mqttguard.toml "$w/"
printf '\n[reload]\nwatch = true\n' >> "$w/mqttguard.toml"
chmod 0600 "$w/passwd"
wport=$(free_port)
conf examples/drop-in/mosquitto.conf "$w/mosquitto.conf" "$wport"
run watch "$w" --workdir /mosquitto/config
cw=$prefix-watch
wdemo=(-h 127.0.0.1 -p "$wport" -u demo -P demo-password)
wsensor1=(-h 127.0.0.1 -p "$wport" -u sensor1 -P sensor1-password -i sensor1)
sub_start "$work/watch.out" "${wdemo[@]}" -i demo-sub -t 'sensors/#' -t 'demo/#'
sub_sync "$work/watch.out" demo/sync "${wdemo[@]}" -i demo-pub
sed -i '/^topic deny sensors\/+\/secret$/d' "$w/acl"
wait_log "$cw" 'mqttguard: reloaded'
timeout 20 mosquitto_pub -q 1 "${wsensor1[@]}" -t sensors/sensor1/secret -m watched
timeout 20 mosquitto_pub -q 1 "${wsensor1[@]}" -t sensors/sensor1/marker -m w1
wait_line "$work/watch.out" "sensors/sensor1/marker w1"
grep -qxF "sensors/sensor1/secret watched" "$work/watch.out" || fail "ACL change not in force with watch"
ok "ACL change picked up by [reload] watch, without a signal"

# 4b. The certificate example through the container's TLS listener.
step "end to end: examples/step-ca (TLS, client certificates) in the container"
s=$work/step-ca
mkdir -p "$s"
cp examples/step-ca/acl examples/step-ca/mqttguard.toml examples/step-ca/revoked.txt \
   examples/step-ca/make-certs.sh "$s/"
(cd "$s" && bash make-certs.sh sensor-1 sensor-2 platform >/dev/null)
tport=$(free_port)
conf examples/step-ca/mosquitto.conf "$s/mosquitto.conf" "$tport"
run step-ca "$s" --workdir /mosquitto/config
c=$prefix-step-ca
ok "plugin loaded: $(podman logs "$c" 2>&1 | grep -m1 'mqttguard: loaded')"
tls() { # DEVICE: client options for DEVICE's certificate
  echo -h localhost -p "$tport" --cafile "$s/certs/ca.crt" --cert "$s/certs/$1.crt" --key "$s/certs/$1.key"
}
# shellcheck disable=SC2046
sub_start "$work/sensor1.out" $(tls sensor-1) -i sensor-1 -t 'devices/sensor-1/cmd/#'
# shellcheck disable=SC2046
sub_start "$work/platform.out" $(tls platform) -i platform:sub -t 'devices/#'
# shellcheck disable=SC2046
sub_sync "$work/sensor1.out" devices/sensor-1/cmd/sync $(tls platform) -i platform
# shellcheck disable=SC2046
sub_sync "$work/platform.out" devices/sensor-1/telemetry/sync $(tls sensor-1) -i sensor-1:pub
# shellcheck disable=SC2046
timeout 20 mosquitto_pub -q 1 $(tls platform) -i platform -t devices/sensor-1/cmd/reboot -m now
wait_line "$work/sensor1.out" "devices/sensor-1/cmd/reboot now"
ok "superuser certificate (platform) -> device command delivered over TLS"
# shellcheck disable=SC2046
timeout 20 mosquitto_pub -q 1 $(tls sensor-1) -i sensor-1:pub -t devices/sensor-2/telemetry/t -m forged
# shellcheck disable=SC2046
timeout 20 mosquitto_pub -q 1 $(tls sensor-1) -i sensor-1:pub -t devices/sensor-1/telemetry/t -m 20
wait_line "$work/platform.out" "devices/sensor-1/telemetry/t 20"
grep -q forged "$work/platform.out" && fail "sensor-1 could write sensor-2's telemetry"
ok "device writes its own telemetry; another device's is denied"
# shellcheck disable=SC2046
if timeout 20 mosquitto_pub $(tls sensor-2) -i sensor-1 -t devices/sensor-2/telemetry/t -m x >/dev/null 2>&1; then
  fail "sensor-2's certificate was accepted with client id sensor-1"
fi
ok "certificate with another device's client id refused"
if timeout 20 mosquitto_pub -h localhost -p "$tport" --cafile "$s/certs/ca.crt" -i anon -t x -m x >/dev/null 2>&1; then
  fail "a client without certificate was accepted (require_certificate true)"
fi
ok "client without certificate refused"
# Revocation: sensor-2's serial in revoked.txt, SIGHUP, and sensor-2 can no longer connect.
# shellcheck disable=SC2046
timeout 20 mosquitto_pub -q 1 $(tls sensor-2) -i sensor-2 -t devices/sensor-2/telemetry/t -m before ||
  fail "sensor-2 refused before its revocation"
openssl x509 -in "$s/certs/sensor-2.crt" -noout -serial | cut -d= -f2 >> "$s/revoked.txt"
hup "$c" 1
# shellcheck disable=SC2046
if timeout 20 mosquitto_pub -q 1 $(tls sensor-2) -i sensor-2 -t devices/sensor-2/telemetry/t -m after >/dev/null 2>&1; then
  fail "revoked certificate accepted after SIGHUP"
fi
ok "certificate revoked on SIGHUP is refused"

# 4c. The Kubernetes example's ConfigMap and Secret as the pods mount them, certificates in
# cert-manager's layout (tls.crt, tls.key, ca.crt), read-only root filesystem as there.
step "end to end: examples/kubernetes configuration in the container"
k=$work/k8s/mosquitto
mkdir -p "$k/certs"
cp "$s/certs/ca.crt" "$k/certs/ca.crt"
cp "$s/certs/server.crt" "$k/certs/tls.crt"
cp "$s/certs/server.key" "$k/certs/tls.key"
chmod 0640 "$k/certs/"* "$k/auth/"*
chown -R 1883:1883 "$k"
kport=$(free_port)
kport2=$(free_port)
sed -i -e "s|^listener 8883$|listener $kport 127.0.0.1|" -e "s|^listener 8884$|listener $kport2 127.0.0.1|" \
  "$k/config/mosquitto.conf"
podman run --rm --network host --read-only -v "$k/config:/mosquitto/config:ro" \
  -v "$k/auth:/mosquitto/auth:ro" "$image" mqttguard lint --acl /mosquitto/config/acl \
  --passwd /mosquitto/auth/passwd --config /mosquitto/config/mqttguard.toml > "$work/k8s-lint" 2>&1 ||
  { cat "$work/k8s-lint"; fail "the Kubernetes ConfigMap/Secret are not lint-clean"; }
grep -qx '0 errors, 0 warnings' "$work/k8s-lint" || { cat "$work/k8s-lint"; fail "k8s lint output"; }
ok "Kubernetes ConfigMap/Secret: mqttguard lint in the image: 0 errors, 0 warnings"
podman run -d --name "$prefix-k8s" --network host --read-only \
  -v "$k/config:/mosquitto/config:ro" -v "$k/auth:/mosquitto/auth:ro" -v "$k/certs:/mosquitto/certs:ro" \
  "$image" mosquitto -c /mosquitto/config/mosquitto.conf >/dev/null
containers+=("$prefix-k8s")
wait_log "$prefix-k8s" 'mqttguard: loaded'
ktls=(-h localhost --cafile "$k/certs/ca.crt")
sub_start "$work/ops.out" "${ktls[@]}" -p "$kport2" -u ops -P ops-password -i ops-sub -t 'devices/+/telemetry/#'
sub_sync "$work/ops.out" devices/sensor-1/telemetry/sync "${ktls[@]}" -p "$kport" \
  --cert "$s/certs/sensor-1.crt" --key "$s/certs/sensor-1.key" -i sensor-1
ok "device certificate on 8883 publishes telemetry; ops (password, 8884) receives it"
if timeout 20 mosquitto_pub "${ktls[@]}" -p "$kport2" -u ingest -P wrong -t x -m x >/dev/null 2>&1; then
  fail "k8s: wrong password accepted"
fi
ok "k8s: wrong password refused"

# 4d. The image as shipped: its default configuration and CMD (no network needed).
step "end to end: the image's default configuration"
podman run -d --name "$prefix-default" --network none "$image" >/dev/null
containers+=("$prefix-default")
wait_log "$prefix-default" 'mqttguard: loaded: password_file /mosquitto/config/passwd'
[ "$(podman exec "$prefix-default" id -u)" = 1883 ] || fail "the image does not run as uid 1883"
ok "default config loads the plugin; the broker runs as the non-root user 1883"

echo "== mqttguard image: end to end $((SECONDS - t_e2e)) s, whole script $((SECONDS - start)) s"
echo "image: $passed passed, 0 failed"
