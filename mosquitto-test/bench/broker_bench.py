#!/usr/bin/env python3
"""Broker benchmark: Mosquitto without ACL (the ceiling), with its built-in password_file and
acl_file, and with mqttguard on the same files, driven by the same workload in one run.

Not part of the test suite. Loopback only; every broker is started and stopped by its own pid.

    python3 mosquitto-test/bench/broker_bench.py [--quick] [--plugin PATH]

Throughput: 4 publishers (mosquitto_pub -l, QoS 0) each send N messages to sensors/<i>/temp;
2 subscribers on sensors/+/temp count what arrives. The rate is messages delivered per second
between the first publisher starting and the last subscriber finishing. Connect: N sequential
connects with $7$-101 and argon2id users, cold and warm (mqttguard's credential cache). Reload:
a SIGHUP with N idle clients connected (argon2id), timing how long a fresh connect+publish
takes right after it. Load: time from start to listening and VmRSS, with a 10,000-user policy.
"""
import argparse
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PW = "bench-pw"


def pbkdf2_line(password, iterations=101):
    salt = os.urandom(12)
    dk = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"


def argon2id_line(password):
    out = subprocess.run(
        [os.path.join(ROOT, "target/release/mqttguard"), "passwd", "--batch", password,
         "--create", "/dev/stdout", "x"], capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("x:$argon2id$"):
            return line[2:]
    # Fallback: write to a temp file.
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "p")
        subprocess.run([os.path.join(ROOT, "target/release/mqttguard"), "passwd", "--batch",
                        password, "--create", f, "x"], check=True, capture_output=True)
        return open(f).read().split(":", 1)[1].strip()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    def __init__(self, mode, files, plugin, extra=""):
        self.dir = tempfile.mkdtemp(prefix="mqttguard-bench-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        conf = [f"listener {self.port} 127.0.0.1", "max_queued_messages 0",
                "log_dest none", "user root"]
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        if mode == "none":
            conf.append("allow_anonymous true")
        elif mode == "builtin":
            conf += ["allow_anonymous false", f"password_file {self.dir}/passwd",
                     f"acl_file {self.dir}/acl"]
        else:
            conf += ["allow_anonymous false", f"plugin {plugin}",
                     f"plugin_opt_password_file {self.dir}/passwd",
                     f"plugin_opt_acl_file {self.dir}/acl"]
        conf.append(extra)
        with open(os.path.join(self.dir, "mosquitto.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(["mosquitto", "-c", os.path.join(self.dir, "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read().decode())
                time.sleep(0.01)
        self.load_seconds = time.monotonic() - self.started

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def cli(port, user, cid):
    args = ["-h", "127.0.0.1", "-p", str(port), "-i", cid]
    if user:
        args += ["-u", user, "-P", PW]
    return args


def throughput(broker, per_publisher, pub_users, sub_users):
    expected = per_publisher * len(pub_users)
    subs = [subprocess.Popen(["mosquitto_sub", *cli(broker.port, u, f"sub{i}"), "-t", "sensors/+/temp",
                              "-C", str(expected), "-W", "120", "-q", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            for i, u in enumerate(sub_users)]
    time.sleep(0.5)
    payload = ("21.5\n" * per_publisher).encode()
    start = time.monotonic()
    pubs = []
    for i, u in enumerate(pub_users):
        p = subprocess.Popen(["mosquitto_pub", *cli(broker.port, u, f"pub{i}"), "-t", f"sensors/{i}/temp",
                              "-l", "-q", "0"], stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        pubs.append(p)
    for p in pubs:
        p.stdin.write(payload)
        p.stdin.close()
    received = 0
    for s in subs:
        out, _ = s.communicate()
        received += out.count(b"\n")
    elapsed = time.monotonic() - start
    for p in pubs:
        p.wait()
    return received / elapsed, received, expected * len(sub_users)


def policies(scale):
    """(name, passwd, acl, publisher usernames, subscriber usernames)."""
    line = pbkdf2_line(PW)
    pubs = [f"pub{i}" for i in range(4)]
    subs = ["sub0", "sub1"]
    out = []
    # small: 10 users
    users = pubs + subs + [f"u{i}" for i in range(4)]
    acl = []
    for i, p in enumerate(pubs):
        acl += [f"user {p}", f"topic write sensors/{i}/temp"]
    for s in subs:
        acl += [f"user {s}", "topic read sensors/#"]
    out.append(("small", users, "\n".join(acl) + "\n", pubs, subs))
    # large: 10,000 users, 100,000 rules, each publisher 1,000 rules with the match last
    n_users, per_user, pub_rules = 10_000 // scale, 10, 1_000
    users = pubs + subs + [f"u{i}" for i in range(n_users - 6)]
    acl = []
    for u in users[6:]:
        acl.append(f"user {u}")
        acl += [f"topic readwrite site/{u}/{r}/#" for r in range(per_user)]
    for i, p in enumerate(pubs):
        acl.append(f"user {p}")
        acl += [f"topic write plant/{p}/line{r}/+" for r in range(pub_rules - 1)]
        acl.append(f"topic write sensors/{i}/temp")
    for s in subs:
        acl += [f"user {s}", "topic read sensors/#"]
    out.append(("large", users, "\n".join(acl) + "\n", pubs, subs))
    # pattern-heavy: 10,000 patterns; publishers and subscribers decided by patterns
    acl = [f"pattern read tenant{n}/%c/#" for n in range(10_000 // scale - 2)]
    acl += ["pattern write sensors/+/temp", "pattern read sensors/#"]
    out.append(("patterns", pubs + subs, "\n".join(acl) + "\n", pubs, subs))
    return [(n, "".join(f"{u}:{line}\n" for u in us), a, p, s) for n, us, a, p, s in out]


def connects(plugin, n):
    results = {}
    argon = argon2id_line(PW)
    p7 = pbkdf2_line(PW)
    for scheme, line in (("$7$-101", p7), ("argon2id", argon)):
        passwd = f"dev:{line}\n"
        files = {"passwd": passwd, "acl": "topic read x\n"}
        modes = ("builtin", "mqttguard") if scheme == "$7$-101" else ("mqttguard",)
        for mode in modes:
            b = Broker(mode, files, plugin)
            times = []
            for i in range(n):
                t = time.monotonic()
                subprocess.run(["mosquitto_pub", *cli(b.port, "dev", f"c{i}"), "-t", "x", "-m", "1",
                                "-q", "0"], check=True, stderr=subprocess.DEVNULL)
                times.append(time.monotonic() - t)
            b.stop()
            results[(scheme, mode)] = (times[0], sum(times[1:]) / max(1, n - 1))
    return results, argon


def reload_stall(plugin, argon, clients):
    b = Broker("mqttguard", {"passwd": f"dev:{argon}\n", "acl": "topic readwrite x\n"}, plugin,
               extra="max_connections -1")
    idle = [subprocess.Popen(["mosquitto_sub", *cli(b.port, "dev", f"idle{i}"), "-t", "x", "-q", "0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i in range(clients)]
    time.sleep(2 + clients / 200)
    # Warm connect so the probe itself is a cache hit.
    subprocess.run(["mosquitto_pub", *cli(b.port, "dev", "probe"), "-t", "x", "-m", "1"], check=True)
    t = time.monotonic()
    b.proc.send_signal(signal.SIGHUP)
    time.sleep(0.01)
    subprocess.run(["mosquitto_pub", *cli(b.port, "dev", "probe"), "-t", "x", "-m", "1"], check=True)
    stall = time.monotonic() - t
    alive = sum(1 for p in idle if p.poll() is None)
    for p in idle:
        p.kill()
        p.wait()
    b.stop()
    return stall, alive


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--plugin", default=os.path.join(ROOT, "target/release/libmqttguard.so"))
    args = ap.parse_args()
    if not os.path.exists(args.plugin):
        sys.exit(f"{args.plugin} not found: run `cargo build --release` first")
    scale = 10 if args.quick else 1
    per_pub = 5_000 if args.quick else 25_000

    print("## Throughput (4 publishers -> 2 subscribers on sensors/+/temp, QoS 0)\n")
    print("| policy | no ACL msg/s | built-in msg/s | mqttguard msg/s | built-in / ceiling | mqttguard / ceiling |")
    print("|---|---|---|---|---|---|")
    for name, passwd, acl, pubs, subs in policies(scale):
        rates = {}
        for mode in ("none", "builtin", "mqttguard"):
            b = Broker(mode, {"passwd": passwd, "acl": acl}, args.plugin)
            rate, got, want = throughput(b, per_pub, pubs if mode != "none" else [None] * 4,
                                         subs if mode != "none" else [None] * 2)
            b.stop()
            rates[mode] = rate
            if got != want:
                print(f"<!-- {name}/{mode}: {got} of {want} delivered -->")
        c = rates["none"]
        print(f"| {name} | {c:,.0f} | {rates['builtin']:,.0f} | {rates['mqttguard']:,.0f} | "
              f"{rates['builtin'] / c:.2f} | {rates['mqttguard'] / c:.2f} |")

    print("\n## Load (10,000 users, 100,000 rules, 100 patterns)\n")
    line = pbkdf2_line(PW)
    users = [f"u{i}" for i in range(10_000 // scale)]
    acl = []
    for u in users:
        acl.append(f"user {u}")
        acl += [f"topic readwrite site/{u}/{r}/#" for r in range(10)]
    acl += [f"pattern read p{n}/%c/#" for n in range(100)]
    files = {"passwd": "".join(f"{u}:{line}\n" for u in users), "acl": "\n".join(acl) + "\n"}
    print("| broker | start to listening (s) | VmRSS (MiB) |")
    print("|---|---|---|")
    # mqttguard also with the same password file and an empty ACL file: the difference is what
    # the ACL file costs.
    empty_acl = {"passwd": files["passwd"], "acl": "\n"}
    rss = {}
    for label, mode, f in (("none", "none", files), ("builtin", "builtin", files),
                           ("mqttguard, empty ACL file", "mqttguard", empty_acl),
                           ("mqttguard", "mqttguard", files)):
        b = Broker(mode, f, args.plugin)
        time.sleep(0.3)
        rss[label] = b.rss_kib() / 1024
        print(f"| {label} | {b.load_seconds:.3f} | {rss[label]:.1f} |")
        b.stop()
    print(f"\nRSS the ACL file adds to mqttguard: "
          f"{rss['mqttguard'] - rss['mqttguard, empty ACL file']:.1f} MiB")

    n = 20 if args.quick else 100
    print(f"\n## Connects ({n} sequential connect+publish+disconnect, mosquitto_pub)\n")
    results, argon = connects(args.plugin, n)
    print("| hash | broker | first connect (ms) | repeat connect, mean (ms) |")
    print("|---|---|---|---|")
    for (scheme, mode), (first, repeat) in results.items():
        print(f"| {scheme} | {mode} | {first * 1000:.1f} | {repeat * 1000:.1f} |")

    clients = 200 if args.quick else 1_000
    stall, alive = reload_stall(args.plugin, argon, clients)
    print(f"\n## SIGHUP with {clients} connected argon2id clients\n")
    print(f"connect+publish issued right after SIGHUP completed in {stall * 1000:.0f} ms; "
          f"{alive} of {clients} clients still connected")


if __name__ == "__main__":
    main()
