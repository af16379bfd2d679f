#!/usr/bin/env python3
"""Automatic reload ([reload] watch = true): latency and idle cost, on a real broker.

  latency: a kubelet-style volume (timestamped dir, ..data symlink, file symlinks through it)
           is swapped N times; reported is the time from the swap to the plugin's "reloaded"
           log line (median and worst).
  idle:    the broker's CPU time (utime+stime from /proc) over a quiet period, with watching
           on and with it off, and the broker's CPU per second.

Usage: watch.py [--plugin PATH] [--root DEBIAN_TREE] [--swaps 20] [--idle-seconds 30]
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Volume:
    def __init__(self, base, files):
        self.dir = tempfile.mkdtemp(prefix="mqttguard-watch-", dir=base)
        self.gen = 0
        data = self._generation(files)
        os.symlink(data, os.path.join(self.dir, "..data"))
        for name in files:
            os.symlink(f"..data/{name}", os.path.join(self.dir, name))

    def _generation(self, files):
        self.gen += 1
        name = f"..2026_11_30_00_00_{self.gen:02d}.{self.gen}"
        os.mkdir(os.path.join(self.dir, name))
        for f, text in files.items():
            with open(os.path.join(self.dir, name, f), "w") as fh:
                fh.write(text)
        return name

    def swap(self, files):
        old = os.readlink(os.path.join(self.dir, "..data"))
        new = self._generation(files)
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(new, tmp)
        os.rename(tmp, os.path.join(self.dir, "..data"))
        shutil.rmtree(os.path.join(self.dir, old))


def start(plugin, root, watch):
    base = os.path.join(root, "tmp") if root else None
    inside = (lambda p: "/" + os.path.relpath(p, root)) if root else (lambda p: p)
    acl = "user alice\ntopic readwrite a/#\n"
    vol = Volume(base, {"acl": acl, "mqttguard.toml": f"[reload]\nwatch = {watch}\n"})
    shutil.copy(plugin, os.path.join(vol.dir, "libmqttguard.so"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = inside(vol.dir)
    conf = os.path.join(vol.dir, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n"
                f"persistence false\nlog_dest file {d}/log\nlog_type all\n"
                f"plugin {d}/libmqttguard.so\nplugin_opt_acl_file {d}/acl\n"
                f"plugin_opt_config {d}/mqttguard.toml\n")
    cmd = (["chroot", root, "/usr/sbin/mosquitto"] if root else ["mosquitto"]) + [
        "-c", inside(conf)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = os.path.join(vol.dir, "log")
    deadline = time.time() + 10
    while time.time() < deadline:
        if os.path.exists(log) and "running" in open(log, errors="replace").read():
            break
        time.sleep(0.05)
    else:
        sys.exit("broker did not start")
    return vol, proc, log, acl


def reloads(log):
    return open(log, errors="replace").read().count("mqttguard: reloaded")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plugin", default=os.path.join(REPO, "target", "release", "libmqttguard.so"))
    ap.add_argument("--root", default=None)
    ap.add_argument("--swaps", type=int, default=20)
    ap.add_argument("--idle-seconds", type=float, default=30)
    args = ap.parse_args()

    vol, proc, log, acl = start(args.plugin, args.root, "true")
    try:
        latencies = []
        for n in range(args.swaps):
            before = reloads(log)
            t0 = time.time()
            vol.swap({"acl": acl + f"topic read n/{n}\n",
                      "mqttguard.toml": "[reload]\nwatch = true\n"})
            while reloads(log) <= before:
                if time.time() - t0 > 10:
                    sys.exit("no reload within 10 s")
                time.sleep(0.005)
            latencies.append(time.time() - t0)
            time.sleep(0.3)
        print(f"latency: swaps={len(latencies)} median={statistics.median(latencies):.3f}s "
              f"max={max(latencies):.3f}s", flush=True)
        c0 = cpu_seconds(proc.pid)
        time.sleep(args.idle_seconds)
        on = cpu_seconds(proc.pid) - c0
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(vol.dir, ignore_errors=True)
    vol, proc, log, acl = start(args.plugin, args.root, "false")
    try:
        c0 = cpu_seconds(proc.pid)
        time.sleep(args.idle_seconds)
        off = cpu_seconds(proc.pid) - c0
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(vol.dir, ignore_errors=True)
    print(f"idle CPU over {args.idle_seconds:.0f} s: watch on {on:.3f} s "
          f"({on / args.idle_seconds * 1000:.2f} ms/s), watch off {off:.3f} s "
          f"({off / args.idle_seconds * 1000:.2f} ms/s)", flush=True)


if __name__ == "__main__":
    main()
