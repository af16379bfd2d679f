#!/usr/bin/env bash
# Makes (once) a minimal Debian tree with mosquitto for the version matrix:
#   scripts/debian-tree.sh SUITE DIR
# Reused when DIR already holds a working mosquitto; rebuilt when it is broken.
set -euo pipefail
suite=$1
root=$2
# `mosquitto -h` exits non-zero (3) even when it works: read its output, not its status.
if [ -x "$root/usr/sbin/mosquitto" ] &&
   { chroot "$root" /usr/sbin/mosquitto -h 2>&1 || true; } | grep -q "mosquitto version"; then
  exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq debootstrap >/dev/null
}
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\) *$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
echo "mqttguard: building a Debian $suite tree with mosquitto in $root (a few minutes, once)"
rm -rf "$root.partial"
mkdir -p "$(dirname "$root")"
debootstrap --variant=minbase --include=mosquitto,mosquitto-clients "$suite" "$root.partial" "$mirror" \
  > "$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }
rm -rf "$root"
mv "$root.partial" "$root"
mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
