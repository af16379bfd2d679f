#!/usr/bin/env python3
"""SIGHUP with many connected argon2id clients: Mosquitto re-authenticates every connected
client on reload, so without mqttguard's credential cache a reload with 10,000 argon2id
clients would stall the broker for minutes (and on 2.1 could drop clients).

    ulimit -n 20000
    python3 mosquitto-test/bench/sighup.py                                  # 2.0.11 (native)
    python3 mosquitto-test/bench/sighup.py --root /var/cache/mqttguard/sid  # 2.1.2
    python3 mosquitto-test/bench/sighup.py --clients 1000                   # quicker

Every client is a distinct user (u0..u9999) whose password-file line is the same argon2id
hash as `mqttguard passwd` writes by default (m=19456 KiB, t=2, p=1): each first connect is a
full argon2id verification (about 14 ms), which is what fills the credential cache. The first
connects are paced to 64 in flight (the plugin queues at most 256 verifications on 2.1).
Clients use keep-alive 0 so they stay idle. Then:

- a probe user's credential is cached (one warm connect), a QoS 1 publisher starts a
  round-trip loop, SIGHUP is sent, and a new connection as the probe user connects and
  publishes at QoS 1: "new client answered" is the time from the signal to its PUBACK;
- the worst QoS 1 round trip of the running publisher over the 3 s after the signal;
- how many of the idle clients are still connected 3 s after the signal (a closed socket
  reads EOF).
Not part of the test suite; loopback only; the broker is started and stopped by its pid.
"""
import argparse
import os
import resource
import select
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flood  # noqa: E402  (packet helpers and the broker runner)

PW = b"sighup-bench-pw"


def connect_packet(client_id, username):
    payload = flood.mqtt_str(client_id.encode()) + flood.mqtt_str(username.encode()) + \
        flood.mqtt_str(PW)
    # Clean session, username and password; keep-alive 0: idle clients are never timed out.
    vh = flood.mqtt_str(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 0)
    body = vh + payload
    return bytes([0x10]) + flood.varint(len(body)) + body


def publish_qos1(topic, mid):
    body = flood.mqtt_str(topic.encode()) + struct.pack("!H", mid) + b"x"
    return bytes([0x32]) + flood.varint(len(body)) + body


def read_packet(s, deadline):
    head = flood.read_exact(s, 1, deadline)
    length, mult = 0, 1
    while True:
        b = flood.read_exact(s, 1, deadline)[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return head[0], flood.read_exact(s, length, deadline) if length else b""


def connect(port, client_id, user, timeout=60.0):
    s = flood.open_conn(port)
    s.sendall(connect_packet(client_id, user))
    return s, flood.connack(s, timeout)


def puback_round_trip(s, topic, mid):
    t0 = time.time()
    s.sendall(publish_qos1(topic, mid))
    deadline = t0 + 30
    while True:
        kind, body = read_packet(s, deadline)
        if kind >> 4 == 4 and struct.unpack("!H", body[:2])[0] == mid:
            return time.time() - t0


def connect_all(port, n, in_flight=64):
    """Connects u0..u{n-1}, at most `in_flight` CONNACKs outstanding; returns the sockets."""
    done, pending, refused = [], {}, 0
    poller = select.poll()
    next_user = 0
    while next_user < n or pending:
        while next_user < n and len(pending) < in_flight:
            s = flood.open_conn(port)
            s.sendall(connect_packet(f"c{next_user}", f"u{next_user}"))
            s.setblocking(False)
            pending[s.fileno()] = s
            poller.register(s, select.POLLIN)
            next_user += 1
        for fd, _ in poller.poll(1000):
            s = pending.pop(fd)
            poller.unregister(fd)
            s.setblocking(True)
            code = flood.connack(s, 5)
            if code == 0:
                done.append(s)
            else:
                refused += 1
                s.close()
    return done, refused


def still_connected(socks):
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            alive += 1 if s.recv(1) else 0
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    return alive


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=None, help="Debian tree to chroot into (2.1.2: sid)")
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--plugin", default=os.path.join(flood.REPO, "target/release/libmqttguard.so"))
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.clients + 1000
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            sys.exit(f"need {want} open files (ulimit -n), have {soft}/{hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    line = flood.argon2id_line("x", PW.decode()).split(":", 1)[1]
    users = [f"u{i}" for i in range(args.clients)] + ["probe", "pinger"]
    passwd = "".join(f"{u}:{line}\n" for u in users)
    acl = "pattern readwrite x/%u\n"
    b = flood.Broker(args.plugin, args.root, passwd, acl)
    try:
        t0 = time.time()
        socks, refused = connect_all(b.port, args.clients)
        first = time.time() - t0
        print(f"broker {b.version}: {len(socks)} clients connected ({refused} refused) in "
              f"{first:.1f} s ({first / max(1, len(socks)) * 1000:.1f} ms each)", flush=True)
        # Cache the probe's and the pinger's credentials.
        probe, code = connect(b.port, "probe-warm", "probe")
        assert code == 0, code
        probe.close()
        pinger, code = connect(b.port, "pinger", "pinger")
        assert code == 0, code
        puback_round_trip(pinger, "x/pinger", 1)
        worst = [0.0]
        stop = threading.Event()

        def ping():
            mid = 2
            while not stop.is_set():
                worst[0] = max(worst[0], puback_round_trip(pinger, "x/pinger", mid))
                mid = mid % 60000 + 2
                time.sleep(0.005)

        t = threading.Thread(target=ping)
        t.start()
        signalled = time.time()
        b.proc.send_signal(signal.SIGHUP)
        s, code = connect(b.port, "probe", "probe")
        assert code == 0, code
        puback_round_trip(s, "x/probe", 1)
        answered = time.time() - signalled
        time.sleep(3)
        stop.set()
        t.join()
        alive = still_connected(socks)
        reloaded = b.log().count("reloaded")
        print(f"SIGHUP: new client's QoS 1 publish answered {answered * 1000:.0f} ms after the "
              f"signal; worst QoS 1 round trip of a running publisher {worst[0] * 1000:.0f} ms; "
              f"{alive} of {len(socks)} clients still connected; plugin reloaded: "
              f"{'yes' if reloaded else 'no'}")
        for x in socks:
            x.close()
    finally:
        b.close()


if __name__ == "__main__":
    main()
