#!/usr/bin/env bash
# Instructions per ACL check inside the broker: Mosquitto under callgrind, 2,000 messages from
# one publisher to one subscriber (4,002 ACL checks: a WRITE and a READ per message), built-in
# acl_file vs mqttguard, with the publisher's matching rule last among 10 or 100,000 rules.
#   bash mosquitto-test/bench/callgrind.sh        (needs valgrind; about 2 minutes)
# Prints the inclusive instruction count of mosquitto_acl_check and the count per check.
# The built-in 100,000-rule case is left out: at ~285 instructions per rule per check it would
# run for hours under callgrind.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
plugin=${MQTTGUARD_PLUGIN:-$root/target/release/libmqttguard.so}
[ -f "$plugin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mosquitto_passwd -b -c "$work/passwd" pub pw >/dev/null
mosquitto_passwd -b "$work/passwd" sub pw >/dev/null
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
def acl(rules):
    out = ["user sub", "topic read sensors/#", "user pub"]
    out += [f"topic write plant/pub/line{r}/+" for r in range(rules - 1)]
    out.append("topic write sensors/1/temp")
    for u in range(100):
        out.append(f"user u{u}")
        out += [f"topic readwrite x/{u}/{r}" for r in range(10)]
    return "\n".join(out) + "\n"
open(f"{d}/acl10", "w").write(acl(10))
open(f"{d}/acl100k", "w").write(acl(100_000))
PY
N=2000
run() {
  local mode=$1 acl=$2 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local conf=$work/$mode-$acl.conf log=$work/$mode-$acl.log out=$work/cg.$mode.$acl
  { echo "listener $port 127.0.0.1"; echo "user root"; echo "allow_anonymous false"; echo "log_dest stderr"
    if [ "$mode" = builtin ]; then echo "password_file $work/passwd"; echo "acl_file $work/$acl"
    else echo "plugin $plugin"; echo "plugin_opt_password_file $work/passwd"; echo "plugin_opt_acl_file $work/$acl"; fi
  } > "$conf"
  valgrind --tool=callgrind --callgrind-out-file="$out" mosquitto -c "$conf" > "$log" 2>&1 &
  local vp=$!
  for _ in $(seq 1 900); do grep -q "version .* running" "$log" && break; sleep 0.2; done
  mosquitto_sub -p "$port" -u sub -P pw -t 'sensors/#' -C $N -W 300 > /dev/null &
  local sp=$!
  sleep 2
  seq $N | mosquitto_pub -p "$port" -u pub -P pw -t sensors/1/temp -l -q 0
  wait $sp
  kill -INT $vp; wait $vp || true
  local ir calls
  ir=$(callgrind_annotate --threshold=100 --inclusive=yes "$out" 2>/dev/null | grep -E '\?\?\?:mosquitto_acl_check ' | head -1 | awk '{gsub(",","",$1); print $1}')
  calls=$((2 * N + 2))
  echo "| $mode | $acl | $ir | $((ir / calls)) |"
}
echo "| broker | policy | Ir in mosquitto_acl_check | per check |"
echo "|---|---|---|---|"
run builtin acl10
run plugin acl10
run plugin acl100k
