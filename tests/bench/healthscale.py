#!/usr/bin/env python3
"""Health checks at scale: lbd's master against HAProxy's checker.

N backends listen on 127.1.x.y (one port, many addresses), served by a few
processes of this script (--serve) that accept, stamp the time of every
accept per backend, and close.  Then, interleaved (lbd, haproxy, lbd, ...),
each checker runs alone against all N at interval 2s with +-10% jitter; over
a window after its first interval we sample its CPU (sum_exec_runtime of all
its threads from /proc/PID/task/*/schedstat, in ns; utime+stime as a check)
and count the checks: Tcp ActiveOpens of /proc/net/snmp, i.e. connect()s.
Backend accepts cannot count HAProxy's checks: it connects with
TCP_QUICKACK off and resets before the handshake's last ACK, so the backend
never accepts (lbd completes the handshake, so its accepts give the gaps).
As root the whole run moves into a network namespace of its own (unshare
--net) so that the counter holds only these checks.  Per checker: CPU per check, checks
per second, and every gap between two accepts of one backend against
interval +- jitter.

    python3 tests/bench/healthscale.py --backends 256 --seconds 10 --rounds 2

Bounded: each phase lasts interval + --seconds + start/stop; every process
started here is tracked by PID and stopped on exit.
"""

import argparse
import array
import glob
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import lbdtest  # noqa: E402  (render_config, identity)
import syncap  # noqa: E402  (SYNs on lo)

PER_SERVER = 4000	# listeners per --serve process: far under 20 000 fds


def backend_addr(i):
    """The i-th backend's address: 127.1.0.1 .. 127.1.x.250."""
    return "127.1.%d.%d" % (i // 250, i % 250 + 1)


# -- the backends (--serve) ----------------------------------------------------

def serve(first, count, port, out):
    """Listens on backends first..first+count-1; on SIGTERM writes
    (index, CLOCK_REALTIME ns) pairs of every accept to out and exits."""
    ep = select.epoll()
    socks = {}
    for i in range(first, first + count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((backend_addr(i), port))
        s.listen(64)
        s.setblocking(False)
        socks[s.fileno()] = (s, i)
        ep.register(s.fileno(), select.EPOLLIN)
    idx, stamps = array.array("I"), array.array("Q")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("READY", flush=True)
    while not stop:
        try:
            events = ep.poll(0.2)
        except InterruptedError:
            continue
        now = time.time_ns()
        for fd, _ in events:
            s, i = socks[fd]
            for _ in range(16):	# bounded: a few queued checks per listener
                try:
                    c, _ = s.accept()
                except OSError:
                    break
                c.close()
                idx.append(i)
                stamps.append(now)
    write_stamps(out, idx, stamps)


def capture(port, out):
    """Stamps every SYN sent to a backend (syncap.py); on SIGTERM writes
    (index, CLOCK_REALTIME ns) pairs to out."""
    s = syncap.open_syn_socket(port)
    s.settimeout(0.2)
    idx, stamps = array.array("I"), array.array("Q")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("READY", flush=True)
    for i, t in syncap.probes(s, lambda: bool(stop)):
        idx.append(i)
        stamps.append(t)
    write_stamps(out, idx, stamps)
    with open(out + ".drops", "w") as f:
        f.write("%d\n" % syncap.drops(s))


def write_stamps(path, idx, stamps):
    """(backend index, ns) pairs as read_stamps reads them: a count, then
    the indexes, then the stamps."""
    with open(path, "wb") as f:
        f.write(len(idx).to_bytes(8, "little"))
        idx.tofile(f)
        stamps.tofile(f)


def read_stamps(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        idx, stamps = array.array("I"), array.array("Q")
        idx.fromfile(f, n)
        stamps.fromfile(f, n)
    return idx, stamps


class Backends:
    def __init__(self, n, tmp):
        self.n, self.tmp, self.procs, self.drops = n, tmp, [], 0
        for attempt in range(5):
            self.port = lbdtest.free_port()
            if self._start():
                return
            self.stop()
        raise SystemExit("backends: could not bind %d addresses" % n)

    def _start(self):
        self.procs, self.outs = [], []
        for first in range(0, self.n, PER_SERVER):
            out = os.path.join(self.tmp, "accepts-%d.bin" % first)
            p = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(first),
                 str(min(PER_SERVER, self.n - first)), str(self.port), out],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            self.procs.append(p)
            self.outs.append(out)
        out = os.path.join(self.tmp, "syns.bin")
        self.procs.append(subprocess.Popen(
            [sys.executable, __file__, "--capture", str(self.port), out],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE))
        self.outs.append(out)
        for p in self.procs:
            r, _, _ = select.select([p.stdout], [], [], 60)
            if not r or not p.stdout.readline().startswith(b"READY"):
                return False
        return True

    def stop_servers(self):
        """Takes every backend away at once (the capture goes on)."""
        for p in self.procs[:-1]:
            p.send_signal(signal.SIGTERM)
        for p in self.procs[:-1]:
            p.wait(30)

    def stop(self):
        """Stops the servers and the capture; returns every accept and every
        SYN as two {backend: [ns...]}."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        seen, syns = {}, {}
        for p, out in zip(self.procs, getattr(self, "outs", [])):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.returncode == 0 and os.path.exists(out):
                idx, stamps = read_stamps(out)
                into = syns if out.endswith("syns.bin") else seen
                for i, t in zip(idx, stamps):
                    into.setdefault(i, []).append(t)
                if os.path.exists(out + ".drops"):
                    with open(out + ".drops") as f:
                        self.drops = int(f.read())
        self.procs = []
        return seen, syns


# -- CPU ------------------------------------------------------------------------

def cpu_ns(pid):
    """(sum_exec_runtime of every thread in ns, utime+stime in ns)."""
    run = 0
    for path in glob.glob("/proc/%d/task/*/schedstat" % pid):
        try:
            with open(path) as f:
                run += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return run, ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


# -- the checkers -----------------------------------------------------------------

def lbd_config(tmp, n, port, per_service, interval_ms, jitter_ms):
    run = os.path.join(tmp, "lbd-run")
    services = []
    for s in range(0, n, per_service):
        rows = [("b%d" % i, "%s:%d" % (backend_addr(i), port), 1)
                for i in range(s, min(n, s + per_service))]
        health = {"interval": lbdtest.q("%dms" % interval_ms),
                  "timeout": lbdtest.q("1s")}
        if jitter_ms is not None:
            health["jitter"] = lbdtest.q("%dms" % jitter_ms)
        services.append({"name": "s%d" % (s // per_service),
                         "listen": ["127.0.0.1:%d" % lbdtest.free_port()],
                         "backends": rows, "health": health})
    return lbdtest.render_config(run, services, workers=1)


def haproxy_config(n, port, interval_ms):
    lines = ["global", "    nbthread 1", "    maxconn 1000",
             "    spread-checks 10",	# +-10% on each interval, as lbd
             "defaults", "    mode tcp", "    timeout connect 1s",
             "    timeout client 10s", "    timeout server 10s",
             "    timeout check 1s",
             # HAProxy refuses to run without a listener.
             "frontend fe", "    bind 127.0.0.1:%d" % lbdtest.free_port(),
             "    default_backend all", "backend all"]
    lines += ["    server b%d %s:%d check inter %dms"
              % (i, backend_addr(i), port, interval_ms) for i in range(n)]
    return "\n".join(lines) + "\n"


class Checker:
    def __init__(self, kind, args, tmp, port):
        self.kind, self.proc = kind, None
        os.makedirs(os.path.join(tmp, "lbd-run"), mode=0o755, exist_ok=True)
        os.chmod(tmp, 0o755)
        self.conf = os.path.join(tmp, kind + ".conf")
        self.err = os.path.join(tmp, kind + ".stderr")
        with open(self.conf, "w") as f:
            if kind == "lbd":
                f.write(lbd_config(tmp, args.backends, port, args.per_service,
                                   args.interval_ms, args.jitter_ms))
            else:
                f.write(haproxy_config(args.backends, port, args.interval_ms))
        if kind == "lbd":
            self.argv = [os.path.join(args.build, "lbd"), "-d", "-f", self.conf]
        else:
            self.argv = [args.haproxy, "-db", "-f", self.conf]

    def start(self):
        with open(self.err, "ab") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        return self.proc.pid

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def active_opens():
    """Tcp ActiveOpens of this network namespace: every connect()."""
    with open("/proc/net/snmp") as f:
        rows = [l.split() for l in f if l.startswith("Tcp:")]
    return int(rows[1][rows[0].index("ActiveOpens")])


def into_netns():
    """As root, re-runs this script in a network namespace of its own."""
    if os.environ.get("HEALTHSCALE_NETNS"):
        return
    env = dict(os.environ, HEALTHSCALE_NETNS="1")
    os.execvpe("unshare", ["unshare", "--net", "--", sys.executable,
                           os.path.abspath(__file__)] + sys.argv[1:], env)


def phase(kind, args, tmp, backends):
    """Runs one checker alone; returns its window's figures."""
    c = Checker(kind, args, tmp, backends.port)
    pid = c.start()
    try:
        # Every backend's first check lands within one interval of start.
        time.sleep(args.interval_ms / 1000 + 0.5)
        if c.proc.poll() is not None:
            raise SystemExit("%s exited: see %s" % (kind, c.err))
        t0, cpu0, o0 = time.time_ns(), cpu_ns(pid), active_opens()
        time.sleep(args.seconds)
        t1, cpu1, o1 = time.time_ns(), cpu_ns(pid), active_opens()
        rss = 0
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
    finally:
        c.stop()
    return {"kind": kind, "t0": t0, "t1": t1, "run_ns": cpu1[0] - cpu0[0],
            "tick_ns": cpu1[1] - cpu0[1], "rss_kb": rss, "opens": o1 - o0,
            }


def down_storm(args, tmp, backends):
    """lbd alone; then every backend goes away at once.  Counts lbd's log
    lines from then on (one DOWN per backend, one "no backend up" per
    service, nothing else expected) and the master's CPU meanwhile."""
    c = Checker("lbd", args, tmp, backends.port)
    pid = c.start()
    try:
        time.sleep(args.interval_ms / 1000 + 0.5)
        with open(c.err, "rb") as f:
            mark = len(f.read())
        cpu0, t0 = cpu_ns(pid)[0], time.monotonic()
        backends.stop_servers()
        # fall (3) failures, each interval + jitter apart, and some more.
        time.sleep(4 * (args.interval_ms + args.jitter_eff) / 1000 + 1)
        cpu1, t1 = cpu_ns(pid)[0], time.monotonic()
    finally:
        c.stop()
    with open(c.err, "rb") as f:
        lines = f.read()[mark:].decode(errors="replace").splitlines()
    down = [l for l in lines if " is DOWN " in l]
    names = {l.split(" is DOWN ")[0].split()[-1] for l in down}
    none_up = [l for l in lines if "has no backend up" in l]
    other = [l for l in lines if l not in down and l not in none_up
             and not re.search(r"stopp(ing|ed)|exited|worker", l)]
    out = ("down storm: %d backends gone at once: %d DOWN lines for %d distinct "
          "backends, %d 'no backend up' lines (%d services), %d other lines; "
          "master CPU %.0f ms over %.1f s" % (
              args.backends, len(down), len(names), len(none_up),
              -(-args.backends // args.per_service), len(other),
              (cpu1 - cpu0) / 1e6, t1 - t0))
    return [out] + ["  other: " + l for l in other[:5]]


def gaps_in(seen, t0, t1):
    """Every gap (ns) between two accepts of one backend within [t0, t1]."""
    out = []
    for stamps in seen.values():
        w = sorted(t for t in stamps if t0 <= t <= t1)
        out += [b - a for a, b in zip(w, w[1:])]
    return out


def report(args, phases, seen, syns):
    lo = (args.interval_ms - args.jitter_eff) / 1000
    hi = (args.interval_ms + args.jitter_eff) / 1000
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print("# healthscale.py %s, %s UTC, %d cpus, %s, load average %s" % (
        " ".join(sys.argv[1:]), time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        os.cpu_count(), subprocess.run([args.haproxy, "-v"], capture_output=True,
                                       text=True).stdout.split(" - ")[0].strip(),
        load))
    print("backends %d, interval %dms, jitter +-%dms (allowed gap %.3f..%.3fs), "
          "window %ds per phase" % (args.backends, args.interval_ms,
                                    args.jitter_eff, lo, hi, args.seconds))
    print("gaps: between two SYNs to one backend; outside: gaps not within the "
          "allowed range; missed: backends with no SYN in the window")
    print("%-8s %8s %8s %8s %8s %10s %11s %8s %8s %7s %6s %8s" % (
        "checker", "checks", "syns", "accepted", "per_s", "cpu_us/chk",
        "tick_us/chk", "gap_min", "gap_max", "outside", "missed", "rss_kb"))
    per_kind = {}
    for ph in phases:
        n = ph["opens"]
        acc = sum(1 for st in seen.values() for t in st if ph["t0"] <= t <= ph["t1"])
        nsyn = sum(1 for st in syns.values() for t in st if ph["t0"] <= t <= ph["t1"])
        gaps = gaps_in(syns, ph["t0"], ph["t1"])
        secs = (ph["t1"] - ph["t0"]) / 1e9
        outside = sum(1 for g in gaps if not lo * 1e9 <= g <= hi * 1e9)
        # A backend with no accept for longer than the top of the window.
        quiet = sum(1 for i in range(args.backends)
                    if not any(ph["t0"] <= t <= ph["t1"] for t in syns.get(i, ())))
        cpu = ph["run_ns"] / n / 1000 if n else float("nan")
        tick = ph["tick_ns"] / n / 1000 if n else float("nan")
        per_kind.setdefault(ph["kind"], []).append(cpu)
        print("%-8s %8d %8d %8d %8.1f %10.2f %11.2f %8.3f %8.3f %7d %6d %8d" % (
            ph["kind"], n, nsyn, acc, n / secs, cpu, tick,
            min(gaps) / 1e9 if gaps else 0, max(gaps) / 1e9 if gaps else 0,
            outside, quiet, ph["rss_kb"]))
    if "lbd" in per_kind and "haproxy" in per_kind:
        a = statistics.median(per_kind["lbd"])
        b = statistics.median(per_kind["haproxy"])
        print("median cpu per check: lbd %.2fus, haproxy %.2fus, lbd/haproxy %.2f"
              % (a, b, a / b))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--capture":
        capture(int(sys.argv[2]), sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", type=int, default=256)
    ap.add_argument("--per-service", type=int, default=0,
                    help="backends per lbd service (default: all in one, "
                    "as HAProxy's one backend)")
    ap.add_argument("--seconds", type=float, default=10.0,
                    help="sampling window per phase")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--interval-ms", type=int, default=2000)
    ap.add_argument("--jitter-ms", type=int, default=None,
                    help="lbd's health jitter (default: lbd's own, 10%%)")
    ap.add_argument("--only", default="lbd,haproxy")
    ap.add_argument("--build", default=os.environ.get(
        "LBD_BUILD", os.path.join(ROOT, "build")))
    ap.add_argument("--haproxy", default=shutil.which("haproxy") or "haproxy")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--down", action="store_true",
                    help="then take every backend away at once under lbd "
                    "and count its log lines")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("healthscale: needs root (a network namespace of its "
                         "own, and a packet socket to see every SYN)")
    into_netns()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    args.per_service = min(args.per_service or args.backends, args.backends)
    args.jitter_eff = (args.jitter_ms if args.jitter_ms is not None
                       else args.interval_ms // 10)
    kinds = args.only.split(",")
    tmp = tempfile.mkdtemp(prefix="healthscale-")
    backends = Backends(args.backends, tmp)
    phases, storm = [], []
    try:
        for _ in range(args.rounds):
            for kind in kinds:
                phases.append(phase(kind, args, tmp, backends))
        storm = down_storm(args, tmp, backends) if args.down else []
    finally:
        seen, syns = backends.stop()
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)
    report(args, phases, seen, syns)
    if backends.drops:
        print("capture: the packet socket dropped %d packets: a gap around a "
              "lost SYN looks twice as long" % backends.drops)
    for line in storm:
        print(line)


if __name__ == "__main__":
    main()
