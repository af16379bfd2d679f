#!/usr/bin/env bash
# Installs what building and testing mqttguard needs on Debian (run as root).
# Idempotent: skips apt when everything is already there.
set -euo pipefail

# shellcheck source=scripts/packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/packages.sh"
ensure_debian_packages mosquitto mosquitto-clients mosquitto-dev libmosquitto-dev libclang-dev \
  clang pkg-config libssl-dev openssl ca-certificates debootstrap curl fail2ban
# The metrics test reads the Prometheus textfile with the official client's parser.
if ! python3 -c "import prometheus_client" >/dev/null 2>&1; then
  echo "mqttguard: installing the Python package prometheus-client"
  python3 -m pip install --quiet prometheus-client
fi
# Debian's fail2ban package starts its service; the tests only use fail2ban-regex.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet fail2ban 2>/dev/null; then
  systemctl stop fail2ban || true
fi
# The Debian package starts a system broker on port 1883; the demo needs that port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  systemctl stop mosquitto || true
fi

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "mqttguard: no Rust toolchain; installing rustup from Debian and the stable toolchain"
  apt-get install -y -qq rustup >/dev/null
  rustup default stable
fi
