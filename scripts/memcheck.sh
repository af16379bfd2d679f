#!/usr/bin/env bash
# Memory checking of the plugin's FFI: runs a part of the end-to-end suite with every broker
# under valgrind memcheck (MQTTGUARD_VALGRIND=1, see mosquitto-test/src/broker.rs), against
# Debian 12's Mosquitto 2.0.11 and against 2.1.2 (Debian sid tree, chroot; valgrind is
# installed into the tree when missing), then summarises the memcheck reports:
# error contexts in total and with a frame in libmqttguard, definite leaks in total and with a
# frame in libmqttguard.
#
# Fails when a report has an error or a definite leak with a frame in libmqttguard, or when a
# broker's report is missing or unfinished. Tests that fail for another reason (under valgrind
# the broker is 20-50 times slower, and a few assertions depend on the broker answering within
# the client's 10 s acknowledgement timeout) are listed but do not fail this step: their
# assertions run without valgrind in the main suite.
#
#   MQTTGUARD_MEMCHECK_VERSIONS="native sid"   which brokers (native = 2.0.11, sid = 2.1.2)
#   MQTTGUARD_VALGRIND_LOGS=DIR                where reports are kept (default: a temp dir)
#   MQTTGUARD_TEST_THREADS                     test threads (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."

versions="${MQTTGUARD_MEMCHECK_VERSIONS:-native sid}"
threads="${MQTTGUARD_TEST_THREADS:-2}"
logs="${MQTTGUARD_VALGRIND_LOGS:-$(mktemp -d /tmp/mqttguard-memcheck-XXXXXX)}"
roots="${MQTTGUARD_ROOTS:-/var/cache/mqttguard}"

# The tests run under memcheck: every plugin callback (basic auth with each hash, delayed auth
# and its tickets on 2.1, throttling, ACL checks, reloads good and broken, client
# certificates, refused starts) and the reload soak, whose login churn includes logins that
# vanish while their verification is pending. About 3.5 minutes for both versions on 2 cores.
# Left out: tests whose assertions need the broker
# to answer within the client's 10 s timeout while it hashes costly argon2id parameters
# (m=32 MiB, t=12, or 100 logins at the default cost), or that count how many flood logins
# were hashed, which depends on relative speeds; under valgrind they fail for time alone.
# MQTTGUARD_MEMCHECK_ALL=1 runs them anyway (their failures are then listed, not fatal).
tests=(--test hardening --test plugin --test startup --test certs --test soak)
skips=(--skip builtin --skip argon2id_connect_storm_does_not_stop_a_publisher)
if [ "${MQTTGUARD_MEMCHECK_ALL:-0}" != 1 ]; then
  skips+=(
    --skip a_login_flood_does_bounded_work_and_does_not_starve_a_real_user
    --skip a_reconnect_with_the_same_id_is_answered_for_itself
    --skip a_verified_result_never_logs_in_another_connection
    --skip a_pending_login_is_judged_by_the_policy_in_force_when_answered
    --skip basic_auth_off_the_main_thread_is_answered_synchronously
  )
fi
# The soak's 40 reloads take about 90 s under valgrind; 16 exercise the same paths.
export MQTTGUARD_SOAK_RELOADS="${MQTTGUARD_SOAK_RELOADS:-16}"

command -v valgrind >/dev/null || apt-get install -y valgrind
cargo build -p mqttguard --lib
cargo build -p mosquitto-test --tests
# A debug build: full symbols for the plugin's frames.
export MQTTGUARD_PLUGIN="$PWD/target/debug/libmqttguard.so"

status=0
for v in $versions; do
  out="$logs/$v"
  rm -rf "$out"
  mkdir -p "$out"
  env=(MQTTGUARD_VALGRIND=1 MQTTGUARD_VALGRIND_LOGS="$out" MQTTGUARD_NO_BUILTIN_REFERENCE=1)
  if [ "$v" != native ]; then
    root="$roots/$v"
    # Made by scripts/debian-tree.sh (scripts/test.sh does it); not rebuilt from here.
    if [ ! -x "$root/usr/sbin/mosquitto" ]; then
      bash scripts/debian-tree.sh "$v" "$root"
    fi
    if ! chroot "$root" sh -c 'command -v valgrind' >/dev/null 2>&1; then
      chroot "$root" apt-get install -y valgrind >/dev/null 2>&1 ||
        { chroot "$root" apt-get update >/dev/null && chroot "$root" apt-get install -y valgrind >/dev/null; }
    fi
    env+=(MQTTGUARD_MOSQUITTO_ROOT="$root")
  fi
  start=$(date +%s)
  echo "== mqttguard: memcheck, mosquitto $v"
  if env "${env[@]}" cargo test -p mosquitto-test --no-fail-fast "${tests[@]}" -- \
      --test-threads="$threads" "${skips[@]}" >"$out/cargo-test.txt" 2>&1; then
    tests_ok=yes
  else
    tests_ok=no
  fi
  secs=$(( $(date +%s) - start ))
  grep -E '^test result|FAILED|failed' "$out/cargo-test.txt" | sed 's/^/   /' || true
  if [ ! -s "$out/summary.tsv" ]; then
    echo "   no memcheck report was written (see $out/cargo-test.txt)"
    status=1
    continue
  fi
  # summary.tsv: name version errors errors_ours leaks leaks_ours complete|incomplete
  awk -F'\t' -v v="$v" -v secs="$secs" '
    { n++; e+=$3; eo+=$4; l+=$5; lo+=$6; if ($7 != "complete") inc++; ver=$2 }
    END {
      printf "   mosquitto %s (%s): %d brokers, %d s; error contexts %d (libmqttguard %d), definite leaks %d (libmqttguard %d), unfinished reports %d\n",
        ver, v, n, secs, e, eo, l, lo, inc
    }' "$out/summary.tsv"
  ours=$(awk -F'\t' '$4 > 0 || $6 > 0 { print $1 }' "$out/summary.tsv")
  incomplete=$(awk -F'\t' '$7 != "complete" { print $1 }' "$out/summary.tsv")
  if [ -n "$ours" ]; then
    status=1
    echo "   errors or leaks in libmqttguard:"
    for name in $ours; do
      echo "   -- $out/$name.txt"
      sed 's/^/      /' "$out/$name.txt"
    done
  fi
  if [ -n "$incomplete" ]; then
    status=1
    echo "   unfinished reports (broker killed before the leak check): $incomplete"
  fi
  # Errors and leaks outside the plugin (the broker, its libraries): counted, not failed.
  others=$(awk -F'\t' '($3 > 0 || $5 > 0) && $4 == 0 && $6 == 0 { print $1 }' "$out/summary.tsv")
  if [ -n "$others" ]; then
    echo "   outside the plugin (not judged), by kind and innermost broker function:"
    for name in $others; do
      awk '/^[A-Za-z_]+: / { kind = $1 } /^    / && kind != "" && $0 !~ /vgpreload|libc\.so/ { print kind, $1; kind = "" }' \
        "$out/$name.txt"
    done | sort | uniq -c | sed 's/^/     /'
  fi
  [ "$tests_ok" = yes ] || echo "   (some tests failed under valgrind; see $out/cargo-test.txt)"
done
echo "memcheck reports: $logs"
exit $status
