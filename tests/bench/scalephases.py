"""scale.py's phases after the rates: health check CPU, a reload under held
connections (with lbstat's time, the segment size and RSS at that scale),
and idle connections beyond one worker's descriptors.

Each returns rows of scale.HEAD: metric, backends, lbd, HAProxy,
lbd/HAProxy, lbd vs fewest, HAProxy vs fewest, target, detail.
"""
import math
import os
import signal
import socket
import statistics
import subprocess
import threading
import time

import bench
from bench import log
from scaleprocs import PORTS, Scaled, started

HOLD_PER_PROC = 9000  # idle connections per holder process (< 20 000 fds)


def row(metric, count, lbd="-", hap="-", target="", detail="", rel=None,
        met=None):
    """met: whether lbd meets the target (None: not judged)."""
    if rel is None:
        rel = "%.2fx" % (lbd / hap) if isinstance(lbd, float) and \
            isinstance(hap, float) and hap else "-"
    return [metric, str(count), fmt(lbd), fmt(hap), rel, "", "", target,
            {True: "yes", False: "NO", None: ""}[met], detail]


def at_most(a, b):
    """a <= b when both are figures, else None (not judged)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a <= b
    return None


def fmt(v):
    if isinstance(v, float):
        return "%.1f" % v if v < 100 else "%.0f" % v
    return str(v)


def on_cpu_ns(pids):
    """Time on CPU of every thread of pids, from schedstat: utime+stime at
    nanosecond resolution (ticks of 10 ms are too coarse for a few
    thousand checks)."""
    total = 0
    for path in bench.thread_files(pids, "schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


# ------------------------------------------------------------ health checks

def checker_cpu(env, kind, count, notes):
    """(CPU µs per check, checks/s) of lbd's master or of HAProxy (all of
    it: it carries no traffic meanwhile).  The CPU is taken over one
    window, the checks (connect calls, by perf) over a second one, so that
    perf's cost stays out of the CPU figure."""
    b = Scaled(env, kind, "roundrobin", count, PORTS[kind])
    why = started(b, notes)
    if why:
        return why, None
    try:
        time.sleep(interval_s(env.args.interval) + 0.5)  # checks under way
        pids = [b.proc.pid] if kind == "lbd" else b.pids()
        c0, t0 = on_cpu_ns(pids), time.monotonic()
        time.sleep(env.args.health_window)
        cpu = (on_cpu_ns(pids) - c0) / (time.monotonic() - t0)
        rate = connect_rate(env, pids, b.name)
        b.check_alive("health", notes)
    finally:
        b.__exit__()
    if not rate:
        rate = count / interval_s(env.args.interval)
        notes.append("%s: checks not counted (perf missing?): taken as "
                     "%.0f/s" % (b.name, rate))
    return cpu / 1e3 / rate, rate


def connect_rate(env, pids, name):
    """connect(2) calls per second of pids over a window, or None."""
    counter = bench.SyscallCounter(pids, os.path.join(
        env.tmp, "perf-%s-connect.txt" % name), "syscalls:sys_enter_connect")
    t0 = time.monotonic()
    time.sleep(env.args.health_window / 2)
    n = counter.stop()
    return n / (time.monotonic() - t0) if n else None


def healthscale(env, count, notes):
    """Rows from healthscale.py (the checker's own benchmark: CPU per
    check and every gap between two checks of a backend), or None when it
    is not there or gives no table."""
    path = env.args.healthscale
    if not path or not os.path.exists(path):
        return None
    w = max(4, int(env.args.health_window))
    rc, out = bench.run_cmd([bench.PY, path, "--backends", str(count),
                             "--per-service", str(count), "--seconds",
                             str(w), "--rounds", "1", "--build",
                             os.path.dirname(env.lbd)], 8 * w + 120)
    got = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 12 and f[0] in ("lbd", "haproxy"):
            got[f[0]] = f
    if len(got) < 2:
        notes.append("healthscale.py %d backends gave no table (rc %s): %s" %
                     (count, rc, out.strip()[-300:].replace("\n", " | ")))
        return None
    lbd, hap = got["lbd"], got["haproxy"]
    return [row("health: checker CPU us/check", count, float(lbd[5]),
                float(hap[5]), "<= HAProxy", "healthscale.py, %d s" % w,
                met=float(lbd[5]) <= float(hap[5])),
            row("health: checks/s", count, float(lbd[4]), float(hap[4]),
                "%d/s" % (count / interval_s(env.args.interval))),
            row("health: gaps outside interval+-jitter, missed", count,
                "%s, %s" % (lbd[9], lbd[10]), "%s, %s" % (hap[9], hap[10]),
                "0, 0", "gaps %s..%s s" % (lbd[7], lbd[8]), rel="-",
                met=lbd[9] == "0" and lbd[10] == "0")]


def run_health(env, notes):
    rows = []
    for count in env.args.health_counts:
        more = healthscale(env, count, notes)
        if more:
            rows += more
            continue
        res = {k: checker_cpu(env, k, count, notes)
               for k in ("lbd", "haproxy")}
        (lcpu, lrate), (hcpu, hrate) = res["lbd"], res["haproxy"]
        rows.append(row("health: checker CPU us/check", count, lcpu, hcpu,
                        "<= HAProxy", met=at_most(lcpu, hcpu)))
        rows.append(row("health: checks/s (connect calls)", count,
                        lrate if lrate else "-", hrate if hrate else "-",
                        "%d/s" % (count / interval_s(env.args.interval))))
    return rows


def interval_s(text):
    unit = text.lstrip("0123456789.")
    return float(text[:len(text) - len(unit)]) * {"ms": 1e-3, "s": 1.0,
                                                  "m": 60.0}.get(unit, 1.0)


# ------------------------------------------------------------------- reload

class Prober(threading.Thread):
    """Short connections to 127.0.0.1:port one after another until
    stopped (at most `limit` s): counts the answered and the failed ones
    by kind.  A refused connect during a reload is a defect."""

    REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"

    def __init__(self, port, limit):
        super().__init__(daemon=True)
        self.port, self.limit = port, limit
        self.halt = threading.Event()
        self.ok, self.failed = 0, {}

    def one(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), 2.0)
        except OSError as e:
            return type(e).__name__
        try:
            s.settimeout(2.0)
            s.sendall(self.REQUEST)
            answer = s.makefile("rb").read(4096)
        except OSError as e:
            return type(e).__name__
        finally:
            s.close()
        return None if answer.startswith(b"HTTP/1.1 200") else "bad answer"

    def run(self):
        end = time.monotonic() + self.limit
        while not self.halt.is_set() and time.monotonic() < end:
            why = self.one()
            if why is None:
                self.ok += 1
            else:
                self.failed[why] = self.failed.get(why, 0) + 1

    def stop(self):
        self.halt.set()
        self.join(10)


def new_workers(b, gen, limit=10.0):
    """Seconds from now until lbstat shows a worker of generation gen
    running, and until one has accepted a connection; None if not within
    limit.  Each poll costs one lbstat -j (filtered to one backend)."""
    t0, run_at, acc_at = time.monotonic(), None, None
    while time.monotonic() - t0 < limit and acc_at is None:
        snap = b.lbstat("bench/b1", timeout=5) or {}
        now = time.monotonic() - t0
        mine = [w for w in snap.get("workers", [])
                if w.get("generation") == gen and w.get("state") == "running"]
        if mine and run_at is None:
            run_at = now
        if any(w.get("accepted", 0) > 0 for w in mine):
            acc_at = now
    return run_at, acc_at


def lbstat_ms(b, args, n=5):
    """Median and max wall ms of n lbstat runs (output to /dev/null), or
    the reason lbstat failed."""
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        r = subprocess.run([b.env.lbstat, "-s", b.statsfile()] + args,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=30)
        times.append((time.monotonic() - t0) * 1e3)
        if r.returncode != 0:
            return "failed", r.stderr.decode(errors="replace")[-200:]
    return statistics.median(times), "max %.1f" % max(times)


def sizes(b, count, rows):
    """lbstat's time, the segment's size and the RSS of lbd's processes."""
    for label, args in (("table", []), ("-j", ["-j"]), ("-p", ["-p"])):
        m, detail = lbstat_ms(b, args)
        rows.append(row("lbstat %s ms (median of 5)" % label, count, m,
                        target="<= 100", detail=detail,
                        met=at_most(m, 100.0)))
    st = os.stat(b.statsfile())
    rows.append(row("stats segment MiB", count, st.st_size / 2.0 ** 20,
                    detail="%.1f MiB allocated" % (st.st_blocks * 512 /
                                                   2.0 ** 20)))
    master = bench.memory_kb([b.proc.pid])[0] / 1024.0
    workers = [bench.memory_kb([p])[0] / 1024.0 for p in b.pids()
               if p != b.proc.pid]
    rows.append(row("RSS master MiB", count, master))
    rows.append(row("RSS per worker MiB", count, max(workers or [0.0]),
                    detail="workers %s" % "/".join("%.1f" % w
                                                  for w in workers)))


def reload_under_load(b, pool, args, rows):
    """SIGHUP while pool holds connections and a prober connects."""
    snap = b.lbstat("bench/b1") or {}
    gen = snap.get("generation", 0) + 1
    prober = Prober(b.port, 60)
    prober.start()
    time.sleep(0.5)
    os.kill(b.proc.pid, signal.SIGHUP)
    run_at, acc_at = new_workers(b, gen)
    time.sleep(0.5)
    prober.stop()
    held = sum(pool.held)
    ok, sampled = pool.probe(min(1000, held), 10)
    n = args.reload_backends
    ms = lambda t: "-" if t is None else t * 1e3  # noqa: E731
    rows.append(row("reload: new worker accepting ms", n, ms(acc_at),
                    target="<= 200", met=bool(at_most(ms(acc_at), 200.0)),
                    detail="running at %s ms; polled with "
                    "lbstat" % fmt(ms(run_at))))
    rows.append(row("reload: failed connects", n, sum(prober.failed.values()),
                    target="0", met=not prober.failed,
                    detail="of %d by one client in a loop %s" % (
                        prober.ok + sum(prober.failed.values()),
                        prober.failed or "")))
    rows.append(row("reload: held conns answering", n, "%d/%d" % (ok, sampled),
                    target="all", met=ok == sampled > 0,
                    detail="sample of the %d held" % held))


def run_reload(env, notes):
    """lbd over reload_backends backends holding reload_conns connections:
    lbstat, segment and RSS first, then the reload."""
    a, rows = env.args, []
    b = Scaled(env, "lbd", "roundrobin", a.reload_backends, PORTS["reload"])
    why = started(b, notes)
    if why:
        return [row("reload at scale", a.reload_backends, why)]
    pool = None
    try:
        time.sleep(2.5)  # a round of health checks
        sizes(b, a.reload_backends, rows)
        nprocs = max(2, math.ceil(a.reload_conns / HOLD_PER_PROC))
        pool = bench.HolderPool(b.port, nprocs, sources=sources(nprocs))
        held, errors = pool.open_total(a.reload_conns, 60)
        if held < a.reload_conns or errors:
            notes.append("reload: held %d of %d %s" % (held, a.reload_conns,
                                                       errors or ""))
        reload_under_load(b, pool, a, rows)
        b.check_alive("reload", notes)
    finally:
        if pool:
            pool.close()
        b.__exit__()
    return rows


def sources(n):
    """Client source addresses: each offers its own ephemeral ports."""
    return ["127.0.0.%d" % (i + 2) for i in range(n)]


# --------------------------------------------------------------------- hold

def lbd_active(b):
    """Connections each worker holds, by lbstat -j."""
    snap = b.lbstat("bench/b1") or {}
    return [w.get("active", 0) for w in snap.get("workers", [])]


def settle_workers(b, want, limit=30.0):
    """Wait until lbd's workers hold want connections or stop growing."""
    t0, last, since = time.monotonic(), -1, time.monotonic()
    while time.monotonic() - t0 < limit:
        act = lbd_active(b)
        if sum(act) >= want:
            return act
        if sum(act) != last:
            last, since = sum(act), time.monotonic()
        elif time.monotonic() - since > 3.0:
            return act
        time.sleep(0.5)
    return lbd_active(b)


def run_hold(env, notes):
    """hold_workers workers holding hold_conns idle connections from
    several processes and source addresses; every one asked to answer."""
    a, n = env.args, env.args.hold_conns
    b = Scaled(env, "lbd", "roundrobin", a.hold_backends, PORTS["hold"],
               workers=a.hold_workers)
    why = started(b, notes)
    if why:
        return [row("hold: idle conns", a.hold_backends, why)]
    nprocs = max(2, math.ceil(n / HOLD_PER_PROC))
    pool = None
    try:
        rss0 = bench.memory_kb(b.pids())[0]
        pool = bench.HolderPool(b.port, nprocs, sources=sources(nprocs))
        held, errors = pool.open_total(n, 120)
        act = settle_workers(b, n)
        rss1 = bench.memory_kb(b.pids())[0]
        ok, sampled = pool.probe(n, 60)
        alive = pool.alive()
        b.check_alive("hold", notes)
    finally:
        if pool:
            pool.close()
        b.__exit__()
    if errors:
        notes.append("hold: connect errors %s" % errors)
    w = "%d workers" % a.hold_workers
    return [
        row("hold: idle conns held by lbd", w, sum(act), target="%d" % n,
            met=sum(act) >= n,
            detail="per worker %s; clients: %d procs, %d addresses, %d "
            "open" % ("/".join(map(str, act)), nprocs, nprocs, held)),
        row("hold: conns answering a request", w, "%d/%d" % (ok, sampled),
            target="all", met=ok == sampled == n == alive,
            detail="%d still open after" % alive),
        row("hold: total RSS B/conn", w, rss1 * 1024.0 / max(1, sum(act)),
            detail="growth %.0f B/conn; RSS %.1f MiB" % (
                (rss1 - rss0) * 1024.0 / max(1, sum(act)), rss1 / 1024.0)),
    ]


def run_all(env, notes):
    rows = []
    for name, fn in (("health", run_health), ("reload", run_reload),
                     ("hold", run_hold)):
        if name not in env.args.skip:
            log("phase %s" % name)
            rows += fn(env, notes)
    return rows
