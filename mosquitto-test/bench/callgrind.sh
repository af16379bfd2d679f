#!/usr/bin/env bash
# Instructions per ACL check inside the broker, every policy size in one run, beside Mosquitto
# without ACL, a do-nothing v5 plugin (the floor for any plugin) and the built-in acl_file.
#
#   cargo build --release && bash mosquitto-test/bench/callgrind.sh    (needs valgrind, cc;
#   about 10 minutes)
#
# Mosquitto runs under callgrind; one publisher sends N messages to sensors/pub/temp, two
# subscribers on sensors/# receive them: 3 ACL checks per message (a WRITE, two READs) plus
# the SUBSCRIBEs. The figure is the inclusive instruction count of all calls to the broker's
# mosquitto_acl_check (its dispatch plus the check) divided by the number of those calls, both
# read from the callgrind output.
#
# mqttguard runs twice per policy: as configured by default (the memo of recent allows answers
# the repeated questions: every check after the first few), and with `[acl] memo_decisions =
# false` (every check walks the rules: the cost of a question asked for the first time).
# POLICIES="small 1k" limits the policies; N_CONNECTS=0 skips the connect table.
#
# Policies (the publisher's matching rule is last in its list):
#   small      10 users with 3 rules each
#   1k         the publisher has 1,000 rules; 100 other users with 10 rules each
#   100k       the publisher has 100,000 rules; 100 other users with 10 rules each
#   patterns   10,000 `pattern` lines, the publisher decided by the last (`sensors/%u/temp`),
#              the subscribers by their own `user` rule
#   patterns-only  the same, with the subscribers allowed by a pattern too: every allow
#              reads the client id
# The built-in acl_file is run on small and 1k only: it visits every rule of the user (and
# every pattern), ~300 instructions each, so 100k and 10,000 patterns would take hours under
# callgrind (its cost shows in broker_bench.py's throughput table).
#
# Second table: repeat connects. One client connects first (for mqttguard: an argon2id
# verification that fills the credential cache), the counters are zeroed
# (callgrind_control -z), then N_CONNECTS sequential mosquitto_pub connect+publish+disconnect
# as the same user; figures are the instructions of handle__connect per connect and of the
# whole broker per connect, against an anonymous broker (allow_anonymous true, no plugin).
# The mqttguard broker also runs one ACL check per connect (the publish); the anonymous one
# none.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
plugin=${MQTTGUARD_PLUGIN:-$root/target/release/libmqttguard.so}
N=${N:-2000}
N_CONNECTS=${N_CONNECTS:-200}
cli=${MQTTGUARD_CLI:-$root/target/release/mqttguard}
[ -f "$plugin" ] || { echo "build first: cargo build --release" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The floor: a v5 plugin whose ACL callback answers SUCCESS, built here from this C.
cat > "$work/nothing.c" <<'C'
#include <stddef.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
static mosquitto_plugin_id_t *plugin_id;
static int acl(int event, void *data, void *userdata) {
    (void)event; (void)data; (void)userdata;
    return MOSQ_ERR_SUCCESS;
}
int mosquitto_plugin_version(int count, const int *versions) {
    (void)count; (void)versions;
    return 5;
}
int mosquitto_plugin_init(mosquitto_plugin_id_t *id, void **userdata, struct mosquitto_opt *opts, int count) {
    (void)userdata; (void)opts; (void)count;
    plugin_id = id;
    return mosquitto_callback_register(id, MOSQ_EVT_ACL_CHECK, acl, NULL, NULL);
}
int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int count) {
    (void)userdata; (void)opts; (void)count;
    return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, acl, NULL);
}
C
cc -O2 -shared -fPIC -o "$work/nothing.so" "$work/nothing.c"

mosquitto_passwd -b -c "$work/passwd" pub pw >/dev/null
mosquitto_passwd -b "$work/passwd" sub pw >/dev/null
python3 - "$work" <<'PY'
import sys
d = sys.argv[1]
def users(rules):
    out = ["user sub", "topic read sensors/#", "user pub"]
    out += [f"topic write plant/pub/line{r}/+" for r in range(rules - 1)]
    out.append("topic write sensors/pub/temp")
    for u in range(100):
        out.append(f"user u{u}")
        out += [f"topic readwrite x/{u}/{r}" for r in range(10)]
    return "\n".join(out) + "\n"
small = ["user sub", "topic read sensors/#", "user pub", "topic read cmd/pub/#",
         "topic write status/pub", "topic write sensors/pub/temp"]
for u in range(8):
    small += [f"user u{u}", f"topic read cmd/u{u}/#", f"topic write status/u{u}",
              f"topic write sensors/u{u}/temp"]
open(f"{d}/small", "w").write("\n".join(small) + "\n")
open(f"{d}/1k", "w").write(users(1000))
open(f"{d}/100k", "w").write(users(100_000))
patterns = ["user sub", "topic read sensors/#"]
patterns += [f"pattern write tenant{p}/%u/+" for p in range(9999)]
patterns.append("pattern write sensors/%u/temp")
open(f"{d}/patterns", "w").write("\n".join(patterns) + "\n")
# The same, but the subscribers too are allowed by a pattern, so every allow reads the
# client id (the memo keeps it in the entry and compares it on every check).
only = [f"pattern write tenant{p}/%u/+" for p in range(9999)]
only += ["pattern write sensors/%u/temp", "pattern read sensors/#"]
open(f"{d}/patterns-only", "w").write("\n".join(only) + "\n")
PY

# Sums the calls to a function (mosquitto_acl_check unless given) and their inclusive cost
# from a callgrind file.
count='
import re, sys
names, calls, cost, target = {}, 0, 0, False
lines = open(sys.argv[1]).read().splitlines()
i = 0
while i < len(lines):
    m = re.match(r"cfn=\((\d+)\)(?: (.*))?$", lines[i])
    if m:
        if m.group(2):
            names[m.group(1)] = m.group(2)
        target = names.get(m.group(1)) == (sys.argv[2] if len(sys.argv) > 2 else "mosquitto_acl_check")
    elif lines[i].startswith("calls=") and target:
        calls += int(lines[i].split("=")[1].split()[0])
        cost += int(lines[i + 1].split()[1])
        i += 1
    elif re.match(r"fn=\((\d+)\) (.*)$", lines[i]):
        m = re.match(r"fn=\((\d+)\) (.*)$", lines[i])
        names[m.group(1)] = m.group(2)
    i += 1
print(calls, cost)
'

run() {
  local mode=$1 acl=$2 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local conf=$work/$mode-$acl.conf log=$work/$mode-$acl.log out=$work/cg.$mode.$acl
  { echo "listener $port 127.0.0.1"; echo "user root"; echo "log_dest stderr"
    case $mode in
      no-acl) echo "allow_anonymous true" ;;
      do-nothing) echo "allow_anonymous true"; echo "plugin $work/nothing.so" ;;
      built-in) echo "allow_anonymous false"; echo "password_file $work/passwd"; echo "acl_file $work/$acl" ;;
      mqttguard) echo "allow_anonymous false"; echo "plugin $plugin"
                 echo "plugin_opt_password_file $work/passwd"; echo "plugin_opt_acl_file $work/$acl" ;;
      mqttguard-no-memo) echo "allow_anonymous false"; echo "plugin $plugin"
                 echo "plugin_opt_password_file $work/passwd"; echo "plugin_opt_acl_file $work/$acl"
                 echo "plugin_opt_config $work/no-memo.toml" ;;
    esac
  } > "$conf"
  valgrind --tool=callgrind --callgrind-out-file="$out" mosquitto -c "$conf" > "$log" 2>&1 &
  local vp=$!
  for _ in $(seq 1 900); do grep -q "version .* running" "$log" && break; sleep 0.2; done
  local subs=()
  for s in 1 2; do
    mosquitto_sub -p "$port" -i "sub$s" -u sub -P pw -t 'sensors/#' -C "$N" -W 600 > /dev/null &
    subs+=($!)
  done
  sleep 3
  seq "$N" | mosquitto_pub -p "$port" -i pub -u pub -P pw -t sensors/pub/temp -l -q 0
  local rc=0
  for p in "${subs[@]}"; do wait "$p" || rc=1; done
  kill -INT $vp; wait $vp || true
  [ $rc = 0 ] || { echo "| $mode | $acl | subscriber did not receive $N messages | | |"; return; }
  local calls ir
  read -r calls ir < <(python3 -c "$count" "$out")
  echo "| $mode | $acl | $calls | $ir | $((ir / calls)) |"
}
echo "| broker | policy | calls | Ir in mosquitto_acl_check | Ir per check |"
echo "|---|---|---|---|---|"
run no-acl -
run do-nothing -
for policy in ${POLICIES:-small 1k}; do
  case $policy in small|1k) run built-in "$policy" ;; esac
done
printf '[acl]\nmemo_decisions = false\n' > "$work/no-memo.toml"
for policy in ${POLICIES:-small 1k 100k patterns patterns-only}; do run mqttguard "$policy"; done
for policy in ${POLICIES:-small 1k 100k patterns patterns-only}; do run mqttguard-no-memo "$policy"; done

# Repeat connects.
"$cli" passwd -c -b pw "$work/argon" dev >/dev/null 2>&1
printf "user dev\ntopic readwrite x\n" > "$work/conn.acl"
connects() {
  local mode=$1 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local conf=$work/conn-$mode.conf log=$work/conn-$mode.log out=$work/cg.conn.$mode
  { echo "listener $port 127.0.0.1"; echo "user root"; echo "log_dest stderr"
    if [ "$mode" = anonymous ]; then echo "allow_anonymous true"
    else echo "allow_anonymous false"; echo "plugin $plugin"
         echo "plugin_opt_password_file $work/argon"; echo "plugin_opt_acl_file $work/conn.acl"; fi
  } > "$conf"
  valgrind --tool=callgrind --callgrind-out-file="$out" mosquitto -c "$conf" > "$log" 2>&1 &
  local vp=$!
  for _ in $(seq 1 900); do grep -q "version .* running" "$log" && break; sleep 0.2; done
  local auth=()
  [ "$mode" = anonymous ] || auth=(-u dev -P pw)
  mosquitto_pub -p "$port" "${auth[@]}" -i warm -t x -m 1
  sleep 1
  callgrind_control -z $vp > /dev/null 2>&1
  for i in $(seq "$N_CONNECTS"); do mosquitto_pub -p "$port" "${auth[@]}" -i "c$i" -t x -m 1; done
  kill -INT $vp; wait $vp || true
  local calls ir total
  read -r calls ir < <(python3 -c "$count" "$out" handle__connect)
  total=$(grep -E "^(summary|totals):" "$out" | head -1 | awk '{print $2}')
  echo "| $mode | $calls | $((ir / calls)) | $((total / calls)) |"
}
[ "$N_CONNECTS" = 0 ] && exit 0
echo
echo "| broker | connects | Ir in handle__connect per connect | Ir in the broker per connect |"
echo "|---|---|---|---|"
connects anonymous
connects mqttguard-argon2id
