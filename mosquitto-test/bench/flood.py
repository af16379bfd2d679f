#!/usr/bin/env python3
"""Login flood and password guessing against a real Mosquitto with mqttguard.

Measures, in one run per broker (see BENCHMARKS.md, "Under attack"):
  flood: N CONNECTs as one user with 65 KB wrong passwords, sent as fast as the sockets
         take them and left open; then a legitimate argon2id user connects from another
         loopback address. Reported: broker RSS growth (peak), the legitimate user's time to
         CONNACK, and how long the broker takes to exit after SIGTERM.
  guess: one address guesses one user's argon2id password as fast as it can for a few
         seconds while a publisher round-trips QoS 1 messages; reported: guesses answered,
         how many were hashed (not throttled), the publisher's worst round trip, and the
         real user's time to CONNACK from another address during the attack.

Usage: flood.py [--plugin PATH|builtin] [--root DEBIAN_TREE] [--connects 1500]
  --plugin builtin runs Mosquitto's own password_file/acl_file instead (with `$7$` lines), as
  the reference for what the broker itself costs under the same flood.
  --root runs the broker from a Debian tree with chroot (/var/cache/mqttguard/sid is 2.1.2),
  as the end-to-end suite does; without it the native /usr/sbin/mosquitto runs.
"""

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MQTTGUARD = os.environ.get("MQTTGUARD_CLI", os.path.join(REPO, "target", "release", "mqttguard"))


def mqtt_str(b):
    return struct.pack("!H", len(b)) + b


def varint(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def connect_packet(client_id, username=None, password=None):
    flags = 0x02
    payload = mqtt_str(client_id.encode())
    if username is not None:
        flags |= 0x80
        payload += mqtt_str(username.encode())
    if password is not None:
        flags |= 0x40
        payload += mqtt_str(password)
    vh = mqtt_str(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
    body = vh + payload
    return bytes([0x10]) + varint(len(body)) + body


def open_conn(port, source=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_exact(s, n, deadline):
    buf = b""
    while len(buf) < n:
        s.settimeout(max(0.01, deadline - time.time()))
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def connack(s, timeout=30.0):
    """Returns the CONNACK code, or None if the broker closed without one."""
    deadline = time.time() + timeout
    try:
        head = read_exact(s, 2, deadline)
        rest = read_exact(s, head[1], deadline)
        return rest[1]
    except (ConnectionError, socket.timeout, OSError):
        return None


def login(port, client_id, user, pw, source=None):
    """(CONNACK code, seconds) for one login."""
    t0 = time.time()
    s = open_conn(port, source)
    s.sendall(connect_packet(client_id, user, pw))
    code = connack(s)
    return s, code, time.time() - t0


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


SCHEME = ["argon2id"]


def argon2id_line(user, pw):
    """A line as `mqttguard passwd` writes it by default (argon2id m=19456 KiB, t=2); with
    `--plugin builtin`, a `$7$` line (1000 iterations) that Mosquitto's own file reads."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "pw")
        out = subprocess.run([MQTTGUARD, "passwd", "--scheme", SCHEME[0], "-c", "-b", pw, path,
                              user],
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"mqttguard passwd failed: {out.stderr}")
        with open(path) as f:
            return f.read().strip()


class Broker:
    def __init__(self, plugin, root, passwd, acl, toml=""):
        self.root = root
        base = os.path.join(root, "tmp") if root else None
        self.dir = tempfile.mkdtemp(prefix="mqttguard-flood-", dir=base)
        inside = (lambda p: "/" + os.path.relpath(p, root)) if root else (lambda p: p)
        if plugin != "builtin":
            shutil.copy(plugin, os.path.join(self.dir, "libmqttguard.so"))
        for name, text in (("passwd", passwd), ("acl", acl), ("mqttguard.toml", toml)):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        os.chmod(os.path.join(self.dir, "passwd"), 0o600)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        d = inside(self.dir)
        conf = (f"listener {self.port} 127.0.0.1\nallow_anonymous false\n"
                f"user root\npersistence false\nlog_dest file {d}/log\nlog_type all\n")
        if plugin == "builtin":
            conf += f"password_file {d}/passwd\nacl_file {d}/acl\n"
        else:
            conf += (f"plugin {d}/libmqttguard.so\nplugin_opt_password_file {d}/passwd\n"
                     f"plugin_opt_acl_file {d}/acl\nplugin_opt_config {d}/mqttguard.toml\n")
        with open(os.path.join(self.dir, "mosquitto.conf"), "w") as f:
            f.write(conf)
        cmd = (["chroot", root, "/usr/sbin/mosquitto"] if root else ["mosquitto"]) + [
            "-c", f"{d}/mosquitto.conf"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                if "running" in self.log():
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            sys.exit("broker did not start:\n" + self.log())
        self.version = next((l.split("version ")[1].split()[0] for l in self.log().splitlines()
                             if "mosquitto version" in l), "?")

    def log(self):
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def sigterm_seconds(self):
        t0 = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return float("inf")
        return time.time() - t0

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def flood(args, plugin):
    passwd = argon2id_line("admin", "admin-pw") + "\n" + argon2id_line("carol", "carol-pw") + "\n"
    b = Broker(plugin, args.root, passwd, "user carol\ntopic readwrite carol/#\n")
    try:
        pid = b.proc.pid  # chroot(1) execs mosquitto: the same pid
        before = rss_kib(pid)
        peak = [before]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(pid))
                time.sleep(0.02)
        sampler = threading.Thread(target=sample)
        sampler.start()
        big = b"x" * 65_000
        socks = []
        t0 = time.time()
        for i in range(args.connects):
            try:
                s = open_conn(b.port)
                s.sendall(connect_packet(f"f{i}", "admin", big))
                socks.append(s)
            except OSError:
                pass
        sent = time.time() - t0
        s, code, took = login(b.port, "carol", "carol", b"carol-pw", source="127.0.0.2")
        time.sleep(1.0)
        stop.set()
        sampler.join()
        s.close()
        refused = sum(1 for l in b.log().splitlines() if "denied connect" in l)
        term = b.sigterm_seconds()
        for s in socks:
            s.close()
        return {
            "broker": b.version,
            "connects": len(socks),
            "sent_s": round(sent, 2),
            "rss_growth_mib": round((peak[0] - before) / 1024, 1),
            "legit_code": code,
            "legit_connack_s": round(took, 3),
            "sigterm_exit_s": round(term, 2),
            "denial_lines": refused,
        }
    finally:
        b.close()


def guess(args, plugin):
    passwd = (argon2id_line("admin", "admin-pw") + "\n" + argon2id_line("app", "app-pw") + "\n")
    b = Broker(plugin, args.root, passwd,
               "user app\ntopic readwrite app/#\nuser admin\ntopic readwrite admin/#\n",
               "[log]\ndenials_per_second = 100000\n")
    try:
        pub, code, _ = login(b.port, "pub", "app", b"app-pw")
        assert code == 0, f"app login refused: {code}"
        worst = [0.0]
        stop = threading.Event()

        def publisher():
            pkid = 1
            while not stop.is_set():
                t0 = time.time()
                body = mqtt_str(b"app/tick") + struct.pack("!H", pkid) + b"x"
                pub.sendall(bytes([0x32]) + varint(len(body)) + body)
                try:
                    read_exact(pub, 4, time.time() + 30)
                except (ConnectionError, socket.timeout, OSError):
                    worst[0] = float("inf")
                    return
                worst[0] = max(worst[0], time.time() - t0)
                pkid = pkid % 65535 + 1
                time.sleep(0.01)
        t = threading.Thread(target=publisher)
        t.start()
        answered = 0
        t0 = time.time()
        real = None
        while time.time() - t0 < args.guess_seconds:
            s, code, _ = login(b.port, "g", "admin", f"guess-{answered}".encode())
            s.close()
            answered += 1
            if real is None and time.time() - t0 > args.guess_seconds / 2:
                s2, code2, took = login(b.port, "admin-real", "admin", b"admin-pw",
                                        source="127.0.0.2")
                s2.close()
                real = (code2, round(took, 3))
        stop.set()
        t.join()
        log = b.log()
        hashed = sum(1 for l in log.splitlines()
                     if "denied connect" in l and "wrong password" in l)
        throttled = sum(1 for l in log.splitlines() if "denied connect" in l and "throttled" in l)
        return {
            "broker": b.version,
            "guesses_answered": answered,
            "guesses_per_s": round(answered / args.guess_seconds, 1),
            "hashed": hashed,
            "throttled": throttled,
            "publisher_worst_rtt_ms": round(worst[0] * 1000, 1),
            "real_user_code": real[0] if real else None,
            "real_user_connack_s": real[1] if real else None,
        }
    finally:
        b.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin", default=os.path.join(REPO, "target", "release", "libmqttguard.so"))
    ap.add_argument("--root", default=None)
    ap.add_argument("--connects", type=int, default=1500)
    ap.add_argument("--guess-seconds", type=float, default=6.0)
    ap.add_argument("--only", choices=["flood", "guess"], default=None)
    args = ap.parse_args()
    if args.plugin == "builtin":
        SCHEME[0] = "pbkdf2"
    if args.only in (None, "flood"):
        print("flood:", flood(args, args.plugin), flush=True)
    if args.only in (None, "guess"):
        print("guess:", guess(args, args.plugin), flush=True)


if __name__ == "__main__":
    main()
