"""Integration tests for balancing, health checks and retries as clients and
backends see them: smooth weights under concurrency, a backend killed under
load (no client error, no retries once it is down, rejoin after rise),
leastconn with long-lived connections and weights, source hashing (sticky,
consistent when a backend is drained), all backends down or refused, and
connect-timeout.  Real binaries over loopback.  Run with -s for figures.
"""

import collections
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import lbdtest
from lbdtest import SCALE, ident, run_parallel, service


# -- helpers -------------------------------------------------------------------

def health(interval, timeout, rise, fall, **extra):
    """A health section for lbdtest.render_config; times in seconds."""
    h = {"interval": lbdtest.q("%dms" % round(interval * 1000)),
         "timeout": lbdtest.q("%dms" % round(timeout * 1000)),
         "rise": rise, "fall": fall}
    h.update({k: lbdtest.value(v) for k, v in extra.items()})
    return h


def lbstat(d):
    """lbstat -j -s <runtime-dir>/lbd.stats, parsed."""
    p = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-j",
                        "-s", os.path.join(d.runtime_dir, "lbd.stats")],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10 * SCALE)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[0])


def svc_stat(js, svc="web"):
    return next(s for s in js["services"] if s["name"] == svc)


def be_stats(d, svc="web"):
    """{backend name: backend object} from lbstat -j."""
    return {b["name"]: b for b in svc_stat(lbstat(d), svc)["backends"]}


def wait_stats(d, pred, timeout, what):
    """Samples lbstat until pred(backends) holds; returns the backends."""
    deadline = time.monotonic() + timeout
    while True:
        bs = be_stats(d)
        if pred(bs):
            return bs
        if time.monotonic() >= deadline:
            raise AssertionError("%s: not after %.1fs: %s\n%s" % (
                what, timeout, bs, d.describe()))
        time.sleep(0.02)


def lbadmin(d, *args):
    p = subprocess.run([os.path.join(lbdtest.build_dir(), "lbadmin"), "-s",
                        os.path.join(d.runtime_dir, "lbd.sock")] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10 * SCALE)
    assert p.returncode == 0, "lbadmin %s: exit %d: %s%s" % (
        " ".join(args), p.returncode, p.stdout, p.stderr)
    return p.stdout




def open_held(port, src=None):
    """A connection through lbd past its greeting: (socket, backend name)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5 * SCALE)
    try:
        if src:
            s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        line = lbdtest.recv_line(s)
        assert line.endswith(b"\n"), "no greeting: %r" % line
    except BaseException:
        s.close()
        raise
    return s, line[:-1].decode()


def ident_from(port, src):
    """One ident exchange from source address src; the backend's name."""
    s, name = open_held(port, src)
    try:
        s.sendall(b"hi\n")
        assert lbdtest.recv_exact(s, 3) == b"hi\n"
    finally:
        s.close()
    return name


def close_all(held):
    for s, _ in held:
        s.close()


def start_backend_on(port, name, log_path):
    """backend.py ident NAME on a given port (to bring a killed backend back
    at its address); returns the Popen, ready."""
    proc = subprocess.Popen([sys.executable, lbdtest.BACKEND, str(port),
                             "ident", name, "--log", log_path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    r, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline() if r else b""
    if not line.startswith(b"READY "):
        proc.kill()
        proc.wait(10)
        raise AssertionError("backend %s did not restart on %d: %r"
                             % (name, port, line))
    return proc


def hold_port(port):
    """Binds port without listening: connects are refused and nobody else
    takes the port meanwhile."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    return s


# -- 1. weights under concurrency -------------------------------------------------

def test_weights_under_concurrency(lbd, backend):
    heavy = backend("ident", "heavy")
    l1 = backend("ident", "light1")
    l2 = backend("ident", "light2")
    d = lbd([service("web", [(heavy.name, heavy.address, 3),
                             (l1.name, l1.address, 1),
                             (l2.name, l2.address, 1)])], workers=2)
    port = d.port["web"]
    n = 1500
    t0 = time.monotonic()
    res = run_parallel(lambda: ident(port, payload=None), [()] * n, 4)
    dt = time.monotonic() - t0
    bad = [r for r in res if isinstance(r, Exception)]
    counts = collections.Counter(r for r in res if isinstance(r, str))
    print("weights 3:1:1, %d connections from 4 threads in %.1fs: %s"
          % (n, dt, dict(sorted(counts.items()))))
    assert not bad, "%d failed, first: %r" % (len(bad), bad[0])
    for name, want in (("heavy", 900), ("light1", 300), ("light2", 300)):
        assert abs(counts[name] - want) <= 0.03 * want, (name, counts)

    # sequential: interleaved, not in bursts
    picks = [ident(port, payload=None) for _ in range(100)]
    seq = "".join({"heavy": "A", "light1": "B", "light2": "C"}[p]
                  for p in picks)
    longest = max(len(m) for m in re.findall(r"A+", seq))
    print("sequential picks: %s... longest heavy run %d" % (seq[:30], longest))
    assert longest <= 3, "burst of heavy picks: %s" % seq
    c = collections.Counter(seq)
    assert c["A"] == 60 and c["B"] == 20 and c["C"] == 20, c


# -- 2. a backend killed under load -------------------------------------------------

def test_backend_killed_under_load(lbd, backend, tmp_path):
    interval, timeout, rise, fall = 0.3, 0.2, 2, 2
    a = backend("ident", "k1")
    b = backend("ident", "k2")
    victim = backend("ident", "k3")
    d = lbd([dict(service("web", [a, b, victim], retries=2),
                  health=health(interval, timeout, rise, fall))],
            workers=2, log_connections=True)
    port = d.port["web"]

    stop = threading.Event()
    records = []		# (t0, t1, name or None, error or None, local port)
    limit_s, limit_n = 6.0 * SCALE, 5000

    def client():
        start = time.monotonic()
        for _ in range(limit_n):
            if stop.is_set() or time.monotonic() - start > limit_s:
                return
            t0 = time.monotonic()
            name, err, lport = None, None, None
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(3 * SCALE)
            try:
                s.connect(("127.0.0.1", port))
                lport = s.getsockname()[1]
                line = lbdtest.recv_line(s)
                if not line.endswith(b"\n"):
                    raise EOFError("no name line (got %r)" % line)
                name = line[:-1].decode()
                s.sendall(b"line\n")
                if lbdtest.recv_exact(s, 5) != b"line\n":
                    raise AssertionError("bad echo")
            except Exception as e:
                err = e
            finally:
                s.close()
            records.append((t0, time.monotonic(), name, err, lport))
            time.sleep(0.002)

    th = threading.Thread(target=client, daemon=True)
    held = None
    proc = None
    try:
        th.start()
        time.sleep(1.0)
        victim.stop()			# SIGKILL and reap: its sockets are gone
        t_kill = time.monotonic()
        held = hold_port(victim.port)
        bs = wait_stats(d, lambda bs: bs["k3"]["state"] == "down",
                        ((fall + 3) * interval + timeout) * SCALE + 1,
                        "k3 marked down")
        t_down = time.monotonic()
        assert lbdtest.poll_until(lambda: "web/k3 is DOWN" in d.stderr(),
                                  1 * SCALE), d.describe()
        time.sleep(0.1)		# picks made just before the change settle
        f0 = be_stats(d)["k3"]["connect_failures"]
        time.sleep(max(1.0, 3 * interval))
        bs = be_stats(d)
        f1 = bs["k3"]["connect_failures"]
        t_obs = time.monotonic()
        in_window = [r for r in records if t_down + 0.1 <= r[0] < t_obs]
        print("killed k3: down after %.2fs; connect_failures %d at down, %d "
              "after %.1fs more with %d client connections"
              % (t_down - t_kill, f0, f1, t_obs - t_down - 0.1,
                 len(in_window)))
        assert f1 == f0, "a down backend is still tried: %s" % bs["k3"]
        assert in_window, "the client loop stalled"
        assert all(r[2] != "k3" for r in in_window)

        # back at the same address: up after rise checks, gets clients again
        held.close()
        held = None
        proc = start_backend_on(victim.port, "k3",
                                str(tmp_path / "k3-again.log"))
        t_restart = time.monotonic()
        wall_restart = time.strftime("%H:%M:%S", time.localtime()) + \
            (".%03d" % (time.time() % 1 * 1000))
        wait_stats(d, lambda bs: bs["k3"]["state"] == "up",
                   ((rise + 3) * interval + timeout) * SCALE + 3, "k3 up")
        t_up = time.monotonic()
        back = lbdtest.poll_until(
            lambda: [r for r in records if r[0] >= t_up and r[2] == "k3"],
            2 * SCALE)
        print("restarted k3 at %s: up after %.2fs, client connections to it "
              "again: %d; lbd: %s" % (
                  wall_restart, t_up - t_restart, len(back or []),
                  [l for l in d.stderr().splitlines()
                   if re.search(r"web/k3 is|no backend", l)]))
        if not back and not th.is_alive():
            back = [n for n in (ident(port) for _ in range(6)) if n == "k3"]
        assert back, "k3 gets no connections after rejoining\n" + d.describe()
    finally:
        stop.set()
        th.join(10 * SCALE)
        if held is not None:
            held.close()
        if proc is not None:
            proc.kill()
            proc.wait(10)
            proc.stdout.close()

    # every failure must be a connection that was on k3 when it died
    log = d.stderr()

    def went_line(lport):
        found = re.findall(r"\bweb 127\.0\.0\.1:%d -> .*" % lport, log)
        return found[-1] if found else None

    def went_to(lport):
        found = re.findall(r"\bweb 127\.0\.0\.1:%d -> (\S+) .*" % lport, log)
        return found[-1] if found else None

    failed = [r for r in records if r[3] is not None]
    excused = [r for r in failed
               if r[2] == "k3" or (r[2] is None and r[4] is not None
                                   and r[0] < t_kill and went_to(r[4]) == "k3")]
    counts = collections.Counter(r[2] for r in records if r[3] is None)
    after_kill = [r for r in records if r[0] >= t_kill]
    print("client loop: %d connections (%d after the kill), %s; failed %d, "
          "of which cut mid-flight on k3: %d"
          % (len(records), len(after_kill), dict(sorted(counts.items())),
             len(failed), len(excused)))
    for r in excused:
        print("  cut: %r, name line %r, started %+.3fs from the kill; lbd: %s"
              % (r[3], r[2], r[0] - t_kill, went_line(r[4])))
    unexcused = [r for r in failed if r not in excused]
    assert not unexcused, "%d client connections failed: %s\n%s" % (
        len(unexcused), "; ".join(
            "%r from port %s, name line %r, started %+.3fs from the kill, "
            "lbd log: %r" % (r[3], r[4], r[2], r[0] - t_kill,
                             went_line(r[4])) for r in unexcused[:5]),
        d.describe())
    assert len(excused) <= 1, excused		# one client thread
    assert len(after_kill) >= 100, len(after_kill)
    assert d.proc.poll() is None


# -- 3. leastconn ------------------------------------------------------------------

def test_leastconn_balances_long_connections(lbd, backend):
    bs = [backend("ident", n) for n in ("lc1", "lc2", "lc3")]
    names = [b.name for b in bs]
    d = lbd([service("web", bs, balance="leastconn")], workers=2)
    port = d.port["web"]
    held = []
    try:
        # 20 long-lived connections opened at once, then 30 one after another
        socks = []
        for _ in range(20):
            s = lbdtest.connect(port)
            socks.append(s)
        for s in socks:
            line = lbdtest.recv_line(s)
            assert line.endswith(b"\n"), line
            held.append((s, line[:-1].decode()))
        first = collections.Counter(n for _, n in held)
        for _ in range(30):
            held.append(open_held(port))
        seen = collections.Counter(n for _, n in held)
        st = wait_stats(d, lambda st: all(st[n]["active"] == seen[n]
                                          for n in names),
                        3 * SCALE, "lbstat active matches the clients")
        active = {n: st[n]["active"] for n in names}
        print("leastconn: first 20 (concurrent) %s; after 30 more %s; "
              "lbstat active %s" % (dict(sorted(first.items())),
                                    dict(sorted(seen.items())), active))
        assert max(seen[n] for n in names) - min(seen[n] for n in names) <= 2
        assert max(active.values()) - min(active.values()) <= 2

        # empty one backend: it has the fewest, so it gets all the new ones
        a = names[0]
        close_all([h for h in held if h[1] == a])
        held = [h for h in held if h[1] != a]
        wait_stats(d, lambda st: st[a]["active"] == 0, 3 * SCALE,
                   "%s active 0 after its clients closed" % a)
        new = []
        for _ in range(10):
            new.append(open_held(port))
            held.append(new[-1])
        got = collections.Counter(n for _, n in new)
        print("after closing %s's connections, 10 new ones went to %s"
              % (a, dict(got)))
        assert got == {a: 10}, got
    finally:
        close_all(held)


def test_leastconn_weights(lbd, backend):
    heavy = backend("ident", "w2")
    light = backend("ident", "w1")
    d = lbd([service("web", [(heavy.name, heavy.address, 2),
                             (light.name, light.address, 1)],
                     balance="leastconn")], workers=2)
    port = d.port["web"]
    held = []
    try:
        for _ in range(30):
            held.append(open_held(port))
        seen = collections.Counter(n for _, n in held)
        st = wait_stats(d, lambda st: st["w2"]["active"] == seen["w2"]
                        and st["w1"]["active"] == seen["w1"], 3 * SCALE,
                        "lbstat active matches the clients")
        print("leastconn weights 2:1 over 30 held: clients %s, lbstat active "
              "w2=%d w1=%d" % (dict(seen), st["w2"]["active"],
                               st["w1"]["active"]))
        assert abs(seen["w2"] - 20) <= 1 and abs(seen["w1"] - 10) <= 1, seen
    finally:
        close_all(held)


# -- 4. source hashing ---------------------------------------------------------------

def test_source_hash_sticky_and_consistent(lbd, backend):
    bs = [backend("ident", n) for n in ("s1", "b2", "s3")]
    d = lbd([service("web", bs, balance="source")], workers=2)
    port = d.port["web"]
    sources = ["127.0.0.%d" % i for i in range(2, 41)]
    home = {}
    for src in sources:
        got = {ident_from(port, src) for _ in range(5)}
        assert len(got) == 1, "%s moved between backends: %s" % (src, got)
        home[src] = got.pop()
    spread = collections.Counter(home.values())
    print("source hash over %d addresses x 5: %s"
          % (len(sources), dict(sorted(spread.items()))))
    assert set(spread) == {"s1", "b2", "s3"}, spread

    lbadmin(d, "drain", "web/b2")
    wait_stats(d, lambda st: st["b2"]["state"] == "drain", 3 * SCALE,
               "b2 in drain")
    moved = collections.Counter()
    for src in sources:
        got = {ident_from(port, src) for _ in range(3)}
        assert len(got) == 1, "%s not sticky after the drain: %s" % (src, got)
        now = got.pop()
        if home[src] == "b2":
            assert now in ("s1", "s3"), (src, now)
            moved[now] += 1
        else:
            assert now == home[src], "%s moved %s -> %s though its backend " \
                "stayed" % (src, home[src], now)
    print("after draining b2: its %d clients moved to %s; the others stayed"
          % (spread["b2"], dict(moved)))


# -- 5. no backend up -----------------------------------------------------------------

def test_no_backend_up_tries_them_all(lbd, backend):
    interval, timeout = 0.3, 0.2
    bs = [backend("ident", n) for n in ("n1", "n2", "n3")]
    d = lbd([dict(service("web", bs),
                  health=health(interval, timeout, 2, 2, send="x\\n",
                                expect="never-matches"))], workers=2)
    t0 = time.monotonic()
    lbdtest.poll_until(lambda: "has no backend up" in d.stderr(),
                       (4 * interval + timeout) * SCALE + 2)
    st = wait_stats(d, lambda st: all(b["state"] == "down"
                                      for b in st.values()),
                    1 * SCALE, "all down")
    print("all 3 down after %.2fs; lbd says: %s" % (
        time.monotonic() - t0,
        [l for l in d.stderr().splitlines() if "no backend up" in l]))
    assert re.search(r"service web has no backend up", d.stderr()), \
        d.describe()
    res = [ident(d.port["web"]) for _ in range(30)]
    counts = collections.Counter(res)
    print("30 clients with no backend up: %s" % dict(sorted(counts.items())))
    assert set(counts) == {"n1", "n2", "n3"}, counts
    assert all(b["state"] == "down" for b in be_stats(d).values())


# -- 6. every backend refuses -------------------------------------------------------------

def test_all_refused_closes_client_and_counts(lbd):
    h1, p1 = lbdtest.dead_port()
    h2, p2 = lbdtest.dead_port()
    n = 10
    try:
        d = lbd([service("web", [("d1", "127.0.0.1:%d" % p1),
                                 ("d2", "127.0.0.1:%d" % p2)], retries=1)],
                workers=2)
        workers = set(d.workers())
        times, ends = [], []
        for _ in range(n):
            t0 = time.monotonic()
            s = lbdtest.connect(d.port["web"])
            try:
                ends.append(lbdtest.wait_closed(s, 2.0 * SCALE))
            finally:
                s.close()
            times.append(time.monotonic() - t0)
        time.sleep(0.2)		# let the counters settle, then read them
        svc = svc_stat(lbstat(d))
    finally:
        h1.close()
        h2.close()
    fails = {b["name"]: b["connect_failures"] for b in svc["backends"]}
    print("all refused: client saw %s, slowest %.3fs; rejected %d; "
          "connect_failures %s" % (dict(collections.Counter(ends)),
                                   max(times), svc["rejected"], fails))
    assert all(e in ("eof", "reset") for e in ends), ends
    assert max(times) < 1.0 * SCALE, times
    assert d.proc.poll() is None and set(d.workers()) == workers, \
        "lbd or a worker died\n" + d.describe()
    assert svc["rejected"] == n, svc
    assert fails == {"d1": n, "d2": n}, fails
    assert all(b["connections"] == 0 for b in svc["backends"]), svc


# -- 7. connect-timeout ---------------------------------------------------------------------

class StuckListener:
    """A listener whose accept queue is full, so the kernel drops further
    SYNs: connects to it neither succeed nor fail until they time out."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.fillers = []
        for _ in range(3):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(c)

    def drops_syn(self, wait=0.3):
        """True when a new connect gets no answer within wait seconds."""
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect_ex(("127.0.0.1", self.port))
            _, w, _ = select.select([], [c], [], wait)
            return not w
        finally:
            c.close()

    def close(self):
        for c in self.fillers:
            c.close()
        self.lsock.close()


def test_connect_timeout_retries_elsewhere(lbd, backend):
    stuck = StuckListener()
    try:
        if not stuck.drops_syn():
            pytest.skip("a full accept queue does not drop SYNs here")
        good = backend("ident", "good")
        d = lbd([dict(service("web", [("stuck", stuck.address), good],
                              connect_timeout="300ms", retries=1),
                      # checks far apart: this is about clients, not health
                      health=health(5.0, 1.0, 2, 3))], workers=2)
        times = []
        for _ in range(6):
            t0 = time.monotonic()
            assert ident(d.port["web"]) == "good"
            times.append(time.monotonic() - t0)
        st = be_stats(d)
    finally:
        stuck.close()
    slow = [t for t in times if t >= 0.25]
    print("connect-timeout 300ms: client times %s; stuck connect_failures "
          "%d, state %s" % (" ".join("%.3f" % t for t in times),
                            st["stuck"]["connect_failures"],
                            st["stuck"]["state"]))
    assert slow, "no client went through the timeout: %s" % times
    assert all(0.25 <= t <= 1.5 * SCALE for t in slow), times
    assert max(times) <= 1.5 * SCALE, times
    assert st["stuck"]["connect_failures"] == len(slow), (st["stuck"], times)
    assert st["stuck"]["connections"] == 0, st["stuck"]


def test_burst_spreads_over_workers(lbd, backend):
    """Connections queued while the workers are off the CPU are raced for
    by both as they come back, and the first to run used to take them all.
    A worker holding two while its sibling holds none steps aside and
    kicks it, so a burst of long transfers does not pile on one core.
    It is a race the kick only tilts: without it about one burst in three
    lands whole on one worker, with it about one in forty.  So six bursts,
    and at most one of them whole on one worker."""
    b = backend("ident", "burst")
    d = lbd([service("web", [b])], workers=2)
    workers = list(d.workers())
    assert len(workers) == 2
    splits = []
    for _ in range(6):
        held = []
        for w in workers:
            os.kill(w, signal.SIGSTOP)
        try:
            for _ in range(6):
                held.append(lbdtest.connect(d.port["web"]))
        finally:
            for w in workers:
                os.kill(w, signal.SIGCONT)
        try:
            for s in held:
                assert lbdtest.recv_line(s) == b"burst\n"
            splits.append(sorted(w["active"] for w in lbstat(d)["workers"]))
        finally:
            close_all([(s, None) for s in held])
        lbdtest.poll_until(lambda: sum(w["active"] for w in
                                       lbstat(d)["workers"]) == 0, 5 * SCALE)
        time.sleep(0.15)  # a worker steps aside at most once per 100 ms
    print("6 queued connections, per-worker active: %s" % splits)
    assert all(sum(sp) == 6 for sp in splits), splits
    whole = [sp for sp in splits if sp[0] == 0]
    assert len(whole) <= 1, "a worker took a whole burst: %s" % splits
