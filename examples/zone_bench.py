#!/usr/bin/env python3
"""Large-zone benchmark: mirrordns against Knot DNS on the same data, one run.

Generates the zone with examples/zone_gen.rs (fixed seed), then for each
server, one at a time on 127.0.0.1:
  load      start of the process to the first answer for the zone
  rss       VmRSS while serving
  reload    the file edited (one A record, the serial) to the new answer served
  rss_ok    VmRSS after that reload
  rss_fail  VmRSS after a reload of a file that does not parse (old zone kept)
and for mirrordns `check` on the file: time and peak RSS (GNU time).

  cargo build --release --example zone_gen && cargo build --release
  python3 examples/zone_bench.py [--records 200000] [--repeat 3]

Everything listens on loopback high ports; every server is stopped by the
PID this script started.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGIN = "big.test."


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(port, name, qtype=1, timeout=0.02):
    """One UDP query; (rcode, answer rdata of the first A record or None)."""
    qid = os.getpid() & 0xFFFF
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    msg = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + wire + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(msg, ("127.0.0.1", port))
            data, _ = s.recvfrom(65535)
        except OSError:
            return None
    rcode = data[3] & 0x0F
    ancount = struct.unpack(">H", data[6:8])[0]
    at = 12 + len(wire) + 4
    for _ in range(ancount):
        # owner: a pointer (compressed) or labels
        while data[at] != 0 and data[at] < 0xC0:
            at += 1 + data[at]
        at += 2 if data[at] >= 0xC0 else 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[at:at + 10])
        at += 10
        if rtype == 1 and rdlen == 4:
            return rcode, ".".join(str(b) for b in data[at:at + 4])
        at += rdlen
    return rcode, None


def wait_for(port, name, want, deadline_s=120):
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        got = query(port, name)
        if got is not None and got[0] == 0 and (want is None or got[1] == want):
            return time.monotonic() - start
        time.sleep(0.005)
    raise RuntimeError(f"no answer {want} for {name} on port {port}")


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def settle(pid, seconds=1.0):
    """Waits until the process uses no CPU for a while (background work done)."""
    def cpu():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    last = cpu()
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = cpu()
        if now != last:
            quiet_since = time.monotonic()
            last = now
        elif time.monotonic() - quiet_since >= seconds:
            return


def edit(src, dst, old_addr, new_addr, serial_old, serial_new, broken=False):
    with open(src) as f:
        text = f.read()
    text = text.replace(old_addr, new_addr, 1).replace(str(serial_old), str(serial_new), 1)
    if broken:
        text += "this line is not valid {[\n"
    tmp = dst + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, dst)


class Mirrordns:
    name = "mirrordns"

    def __init__(self, binary, zone, work):
        self.binary, self.zone, self.work = binary, zone, work
        self.port = free_port()
        self.api = free_port()
        self.state = os.path.join(work, "state")
        self.token = os.path.join(work, "token")
        with open(self.token, "w") as f:
            f.write("zone-bench-token-0123456789\n")
        os.chmod(self.token, 0o600)

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--zones", self.zone, "--listen", f"127.0.0.1:{self.port}",
             "--api", f"127.0.0.1:{self.api}", "--state-dir", self.state,
             "--api-token-file", self.token],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.work, "log"), "a"))
        return self.proc.pid

    def reload(self):
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-X", "POST",
                        "-H", "Authorization: Bearer zone-bench-token-0123456789",
                        f"http://127.0.0.1:{self.api}/v1/reload"], check=False)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


class Knot:
    name = "knot"

    def __init__(self, master, work):
        self.work = work
        self.port = free_port()
        self.zone = os.path.join(work, "big.test.zone")
        shutil.copy(master, self.zone)
        self.conf = os.path.join(work, "knot.conf")
        with open(self.conf, "w") as f:
            f.write(f"""server:
    listen: 127.0.0.1@{self.port}
    rundir: {work}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: {work}/knot.sock
database:
    storage: {work}
template:
  - id: default
    storage: {work}
    zonefile-sync: -1
    journal-content: none
    semantic-checks: off
zone:
  - domain: {ORIGIN}
    file: big.test.zone
log:
  - target: stderr
    any: error
""")

    def start(self):
        self.proc = subprocess.Popen(["knotd", "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.work, "log"), "a"))
        return self.proc.pid

    def reload(self):
        subprocess.run(["knotc", "-c", self.conf, "-b", "zone-reload", ORIGIN],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def first_a(yaml_path):
    """A name with a single A record, its address, and the serial."""
    serial = None
    with open(yaml_path) as f:
        for line in f:
            if line.startswith("soa:"):
                serial = int(line.split("serial:")[1].split(",")[0])
            if ": {type: A, value: " in line and not line.startswith("    "):
                owner = line.split(":")[0].strip()
                addr = line.split("value: ")[1].rstrip("}\n")
                return owner + "." + ORIGIN, addr, serial
    raise RuntimeError("no single A record found")


def measure(server, source, target, name, addr, serial):
    shutil.copy(source, target)
    t0 = time.monotonic()
    pid = server.start()
    load = wait_for(server.port, name, addr)
    load = time.monotonic() - t0
    settle(pid)
    rss = rss_mb(pid)
    new_addr = "198.51.100.77"
    edit(source, target, addr, new_addr, serial, serial + 1)
    t0 = time.monotonic()
    server.reload()
    wait_for(server.port, name, new_addr)
    reload = time.monotonic() - t0
    settle(pid)
    rss_ok = rss_mb(pid)
    edit(source, target, addr, "198.51.100.78", serial, serial + 2, broken=True)
    server.reload()
    settle(pid, 2.0)
    still = query(server.port, name)
    rss_fail = rss_mb(pid)
    server.stop()
    assert still is not None and still[1] == new_addr, f"{server.name} kept the old zone: {still}"
    return {"load": load, "rss": rss, "reload": reload, "rss_ok": rss_ok, "rss_fail": rss_fail}


def check_peak(binary, zone):
    out = subprocess.run(["/usr/bin/time", "-v", binary, "check", zone],
                         capture_output=True, text=True)
    peak = wall = None
    for line in out.stderr.splitlines():
        if "Maximum resident set size" in line:
            peak = int(line.split()[-1]) / 1024
        if "Elapsed (wall clock)" in line:
            parts = line.split()[-1].split(":")
            wall = float(parts[-1]) + 60 * float(parts[-2])
    return {"check": wall, "check_peak": peak, "ok": out.returncode == 0}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, default=200000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--mirrordns", default=os.path.join(ROOT, "target/release/mirrordns"))
    p.add_argument("--gen", default=os.path.join(ROOT, "target/release/examples/zone_gen"))
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="zone-bench-")
    subprocess.run([args.gen, str(args.records), ORIGIN, work], check=True)
    yaml_src = os.path.join(work, "big.test.yaml")
    zone_src = os.path.join(work, "big.test.zone")
    name, addr, serial = first_a(yaml_src)
    print(f"zone: {args.records} records, YAML {os.path.getsize(yaml_src) / 1e6:.1f} MB, "
          f"master file {os.path.getsize(zone_src) / 1e6:.1f} MB; probe {name} A {addr}")
    results = {"mirrordns": [], "knot": []}
    checks = []
    for rep in range(args.repeat):
        for kind in ("knot", "mirrordns"):
            d = os.path.join(work, f"{kind}-{rep}")
            os.makedirs(d)
            if kind == "knot":
                server = Knot(zone_src, d)
                r = measure(server, zone_src, server.zone, name, addr, serial)
            else:
                target = os.path.join(d, "big.test.yaml")
                server = Mirrordns(args.mirrordns, target, d)
                r = measure(server, yaml_src, target, name, addr, serial)
            results[kind].append(r)
            print(rep, kind, {k: round(v, 3) for k, v in r.items()}, flush=True)
        c = check_peak(args.mirrordns, yaml_src)
        checks.append(c)
        print(rep, "mirrordns check", c, flush=True)
    print()
    print("| | mirrordns (median, min-max) | Knot (median, min-max) | ratio of medians |")
    print("|---|---|---|---|")
    rows = [("load (start to first answer), s", "load", 3), ("RSS while serving, MB", "rss", 0),
            ("reload (edit to new answer), s", "reload", 3), ("RSS after a good reload, MB", "rss_ok", 0),
            ("RSS after a failed reload, MB", "rss_fail", 0)]
    for label, key, digits in rows:
        ours = [r[key] for r in results["mirrordns"]]
        theirs = [r[key] for r in results["knot"]]
        fmt = lambda v: f"{v:.{digits}f}" if digits else f"{v:.0f}"
        print(f"| {label} | {fmt(statistics.median(ours))} ({fmt(min(ours))}-{fmt(max(ours))}) "
              f"| {fmt(statistics.median(theirs))} ({fmt(min(theirs))}-{fmt(max(theirs))}) "
              f"| {statistics.median(ours) / statistics.median(theirs):.2f} |")
    peaks = [c["check_peak"] for c in checks]
    walls = [c["check"] for c in checks]
    knot_rss = statistics.median(r["rss"] for r in results["knot"])
    print(f"| `check`: time, s; peak RSS, MB | {statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}); "
          f"{statistics.median(peaks):.0f} ({min(peaks):.0f}-{max(peaks):.0f}) | - | "
          f"peak / Knot's serving RSS: {statistics.median(peaks) / knot_rss:.2f} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
