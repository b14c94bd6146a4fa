"""Integration tests for health checks: a dead backend goes down after about
interval x fall and comes back after rise good checks, each change logged
once; send/expect; one checker in the master, not one per worker; reloads
keep state and stop probing removed backends; disabled backends are not
probed.  Real binaries over loopback.  Run with -s to see measured times.
"""

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import lbdtest
from lbdtest import SCALE, ident, service

JITTER = 0.10		# probes are interval +- 10% apart (healthstate.h)


def health(interval, timeout, rise, fall, **extra):
    """A health section for lbdtest.render_config; times in seconds."""
    h = {"interval": lbdtest.q("%dms" % round(interval * 1000)),
         "timeout": lbdtest.q("%dms" % round(timeout * 1000)),
         "rise": rise, "fall": fall}
    h.update({k: lbdtest.value(v) for k, v in extra.items()})
    return h


def log_lines(d, pattern):
    """Lines of lbd's stderr that match pattern (a regex)."""
    return [l for l in d.stderr().splitlines() if re.search(pattern, l)]


def wait_log(d, pattern, timeout):
    """Waits for a line matching pattern; returns (line, seconds waited)."""
    t0 = time.monotonic()
    found = lbdtest.poll_until(lambda: log_lines(d, pattern), timeout,
                               step=0.01)
    assert found, "no log line /%s/ after %.1fs\n%s" % (
        pattern, timeout, d.describe())
    return found[0], time.monotonic() - t0


def assert_within(what, measured, lo, hi):
    print("%s: %.3fs (allowed %.3f..%.3f)" % (what, measured, lo, hi))
    assert lo <= measured <= hi, "%s took %.3fs, outside [%.3f, %.3f]" % (
        what, measured, lo, hi)


def lbstat_backend(d, svc, name):
    """The backend's object in lbstat -j."""
    p = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-j",
                        "-f", d.conf_path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10 * SCALE)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    sample = json.loads(p.stdout.decode().splitlines()[0])
    for s in sample["services"]:
        for b in s["backends"]:
            if s["name"] == svc and b["name"] == name:
                return b
    raise AssertionError("lbstat shows no %s/%s" % (svc, name))


# Probes that send complete the handshake, so the backend accepts (and
# accepts() counts) them; a probe that only connects resets on the SYN-ACK
# and is never accepted (test_health_scale.py counts those by their SYNs).
COUNTED = {"send": "hi\n"}


def accepts(b):
    """Connections a backend.py backend has accepted (its --log)."""
    return sum(1 for ev in b.log_lines() if ev[1:] == ("accept",))


def master_fds(d):
    return len(os.listdir("/proc/%d/fd" % d.pid))


def reload(d, services):
    """Rewrites d's config with services (same listen ports) and SIGHUPs."""
    svcs = [dict(s, listen=["127.0.0.1:%d" % d.port[s["name"]]])
            for s in services]
    d.conf_text = lbdtest.render_config(d.runtime_dir, svcs,
                                        d.workers_wanted, d.globals)
    with open(d.conf_path, "w") as f:
        f.write(d.conf_text)
    before = len(log_lines(d, r"reloaded"))
    d.signal(signal.SIGHUP)
    assert lbdtest.poll_until(
        lambda: len(log_lines(d, r"reloaded")) > before, 10 * SCALE), \
        "reload not logged\n" + d.describe()


class PortBackend:
    """backend.py ident NAME on a port of its own that survives a restart,
    so a test can take the backend away and bring it back at one address."""

    def __init__(self, workdir, name):
        self.name = name
        self.port = lbdtest.free_port()
        self.address = "127.0.0.1:%d" % self.port
        self.log_path = os.path.join(workdir, "portbackend-%s.log" % name)
        self.proc = None
        self.hold = None

    def start(self):
        self.release()
        self.proc = subprocess.Popen(
            [sys.executable, lbdtest.BACKEND, str(self.port), "ident",
             self.name, "--log", self.log_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        line = lbdtest.poll_until(self._ready, 15.0)
        assert line, "backend %s did not start on %d" % (self.name, self.port)

    def _ready(self):
        import select
        r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
        return r and self.proc.stdout.readline().startswith(b"READY ")

    def stop(self):
        """Kills it and keeps the port bound, not listening: connects to it
        are refused and nobody else can take it meanwhile."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc.stdout.close()
            self.proc = None
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", self.port))
            self.hold = s
        except OSError:
            s.close()

    def release(self):
        if self.hold is not None:
            self.hold.close()
            self.hold = None


@pytest.fixture
def port_backend(tmp_path):
    started = []

    def start(name):
        b = PortBackend(str(tmp_path), name)
        started.append(b)
        b.start()
        return b

    yield start
    for b in started:
        b.stop()
        b.release()


class PongServer:
    """An ident-like backend that also answers health probes: it greets
    with "NAME\\n" and echoes, except that "PING\\n" gets "PONG\\n", sent in
    two pieces so the checker must match across reads.  Counts the PINGs."""

    def __init__(self, name):
        self.name = name
        self.pings = 0
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(128)
        self.lsock.setblocking(False)
        self.address = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.lsock, selectors.EVENT_READ, None)
        while not self.stopping:
            for key, _ in sel.select(0.1):
                if key.data is None:
                    self._accept(sel)
                else:
                    self._serve(sel, key.data)
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()

    def _accept(self, sel):
        try:
            c, _ = self.lsock.accept()
        except OSError:
            return
        c.setblocking(True)
        c.settimeout(1.0)
        try:
            c.sendall((self.name + "\n").encode())
        except OSError:
            c.close()
            return
        sel.register(c, selectors.EVENT_READ, c)

    def _serve(self, sel, c):
        try:
            data = c.recv(4096)
            if data == b"PING\n":
                self.pings += 1
                c.sendall(b"PO")
                time.sleep(0.005)
                c.sendall(b"NG\n")
            elif data:
                c.sendall(data)
        except OSError:
            data = b""
        if not data:
            sel.unregister(c)
            c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)


@pytest.fixture
def pong_server():
    started = []

    def start(name):
        s = PongServer(name)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


# -- down after fall, up after rise --------------------------------------------

def test_down_after_fall_up_after_rise(lbd, backend, port_backend):
    interval, timeout, rise, fall = 0.5, 0.25, 2, 3
    a = backend("ident", "app1")
    b = port_backend("app2")
    d = lbd([dict(service("web", [a, (b.name, b.address)]),
                  health=health(interval, timeout, rise, fall))])
    port = d.port["web"]
    assert {ident(port) for _ in range(8)} == {"app1", "app2"}
    time.sleep(interval * 1.5)	# app2 has passed a check or two

    down_re = r"web/app2 is DOWN \(connect: Connection refused\); 1 of 2 up$"
    b.stop()
    _, detect = wait_log(d, down_re, ((fall + 2) * interval + timeout) * SCALE)
    # The first failing probe comes at most one interval after the stop,
    # then fall - 1 more, each interval +- jitter apart.
    assert_within("down detection (interval %.1fs, fall %d)" % (interval, fall),
                  detect, (fall - 1) * interval * (1 - JITTER),
                  ((fall + 1) * interval + timeout) * SCALE)
    st = lbstat_backend(d, "web", "app2")
    assert st["state"] == "down", st
    assert st["check"]["status"] == "failed", st
    assert st["check"]["text"] == "connect: Connection refused", st

    # Down means no client is even tried on it: its failures stay put.
    failures = st["connect_failures"]
    assert [ident(port) for _ in range(20)] == ["app1"] * 20
    time.sleep(interval * 3)
    assert lbstat_backend(d, "web", "app2")["connect_failures"] == failures
    assert len(log_lines(d, r"web/app2 is DOWN")) == 1, d.describe()
    assert not log_lines(d, r"has no backend up")

    up_re = r"web/app2 is UP \(latency \d+\.\dms\); 2 of 2 up$"
    b.start()
    _, back = wait_log(d, up_re, ((rise + 2) * interval + timeout) * SCALE)
    assert_within("rejoin (interval %.1fs, rise %d)" % (interval, rise),
                  back, (rise - 1) * interval * (1 - JITTER),
                  ((rise + 1) * interval + timeout) * SCALE)
    assert lbstat_backend(d, "web", "app2")["state"] == "up"
    assert {ident(port) for _ in range(8)} == {"app1", "app2"}
    time.sleep(interval * 2)
    assert len(log_lines(d, r"web/app2 is UP")) == 1, d.describe()
    assert len(log_lines(d, r"web/app2 is DOWN")) == 1, d.describe()
    assert not log_lines(d, r"web/app1 is ")


def test_no_backend_up_is_logged_once(lbd):
    interval = 0.3
    h1, p1 = lbdtest.dead_port()
    h2, p2 = lbdtest.dead_port()
    try:
        d = lbd([dict(service("web", [("a", "127.0.0.1:%d" % p1),
                                      ("b", "127.0.0.1:%d" % p2)]),
                      health=health(interval, 0.2, 1, 1))])
        wait_log(d, r"service web has no backend up: trying all of them$",
                 (3 * interval + 0.2) * SCALE + 1)
        time.sleep(interval * 4)
    finally:
        h1.close()
        h2.close()
    downs = log_lines(d, r"web/[ab] is DOWN \(connect: Connection refused\)")
    # Whichever goes first, the log counts down: one line each, in order.
    assert [l.rsplit("; ", 1)[-1] for l in downs] == ["1 of 2 up", "0 of 2 up"], downs
    assert len(log_lines(d, r"has no backend up")) == 1, d.describe()


# -- send / expect -------------------------------------------------------------

def test_send_expect(lbd, backend, pong_server):
    interval, timeout = 0.4, 0.3
    good = pong_server("pong")
    mute = backend("ident", "mute")		# replies, never with PONG
    short = backend("source", 100, "x")	# 100 bytes, then EOF
    d = lbd([dict(service("web", [(good.name, good.address), mute, short]),
                  health=health(interval, timeout, 1, 2, send="PING\\n",
                                expect="PONG"))])
    limit = (3 * interval + timeout) * SCALE + 1
    wait_log(d, r"web/mute is DOWN \(expect: 'PONG' not found \(timeout\)\); "
             r"\d of 3 up$", limit)
    wait_log(d, r"web/%s is DOWN \(expect: 'PONG' not found\); \d of 3 up$"
             % short.name, limit)
    # Clients now only reach the backend that answers.
    assert {ident(d.port["web"]) for _ in range(12)} == {"pong"}
    time.sleep(interval * 3)
    assert not log_lines(d, r"web/pong is"), d.describe()
    st = lbstat_backend(d, "web", "pong")
    print("pong backend: %d PINGs, check %s" % (good.pings, st["check"]))
    assert st["state"] == "up" and st["check"]["status"] == "ok", st
    assert st["check"]["text"] == "ok"
    assert st["check"]["latency_ms"] >= 5.0	# the reply comes in two pieces
    assert good.pings >= 4
    assert lbstat_backend(d, "web", "mute")["check"]["text"] == \
        "expect: 'PONG' not found (timeout)"


# -- one checker ---------------------------------------------------------------

def test_checks_run_once_in_master(lbd, backend):
    interval, span = 0.2, 3.0
    b = backend("ident", "app1")
    d = lbd([dict(service("web", [b]),
                  health=health(interval, 0.1, 2, 3, **COUNTED))], workers=2)
    time.sleep(interval * 2)
    n0, t0 = accepts(b), time.monotonic()
    time.sleep(span)
    n1, t1 = accepts(b), time.monotonic()
    expected = (t1 - t0) / interval
    print("probes in %.2fs with 2 workers: %d (one checker: %.1f, one per "
          "worker: %.1f)" % (t1 - t0, n1 - n0, expected, 2 * expected))
    assert 0.75 * expected <= n1 - n0 <= 1.25 * expected + 1


# -- reload and admin state ----------------------------------------------------

def test_reload_keeps_state_and_drops_removed(lbd, backend):
    interval = 0.3
    keep = backend("ident", "keep")
    gone = backend("ident", "gone")
    added = backend("ident", "added")
    hold, dead = lbdtest.dead_port()
    try:
        svc = dict(service("web", [keep, gone, ("dead", "127.0.0.1:%d" % dead)]),
                   health=health(interval, 0.2, 2, 2, **COUNTED))
        d = lbd([svc])
        wait_log(d, r"web/dead is DOWN", (3 * interval + 0.2) * SCALE + 1)
        fds = min(master_fds(d) for _ in range(5))
        for _ in range(3):
            reload(d, [dict(svc, backends=[(keep.name, keep.address, 1),
                                           ("dead", "127.0.0.1:%d" % dead, 1),
                                           (added.name, added.address, 1)])])
        time.sleep(interval * 2)
        n0 = accepts(gone)
        time.sleep(interval * 5)
        assert accepts(gone) == n0, "a removed backend is still probed"
        assert accepts(added) >= 3
        # The dead backend stayed down through the reloads, with no new line.
        assert lbstat_backend(d, "web", "dead")["state"] == "down"
        assert len(log_lines(d, r"web/dead is ")) == 1, d.describe()
        assert {ident(d.port["web"]) for _ in range(8)} == {"keep", "added"}
        after = min(master_fds(d) for _ in range(5))
        print("master fds before reloads %d, after %d" % (fds, after))
        assert after <= fds
    finally:
        hold.close()


def test_disabled_backend_is_not_probed(lbd, backend):
    lbadmin = os.path.join(lbdtest.build_dir(), "lbadmin")
    if not os.access(lbadmin, os.X_OK):
        pytest.skip("no lbadmin")
    interval = 0.2
    b = backend("ident", "app1")
    other = backend("ident", "app2")
    d = lbd([dict(service("web", [b, other]),
                  health=health(interval, 0.1, 2, 2, **COUNTED))])

    def admin(*args):
        p = subprocess.run([lbadmin, "-f", d.conf_path] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10 * SCALE)
        assert p.returncode == 0, p.stdout.decode(errors="replace")

    admin("disable", "web/app1")
    time.sleep(interval * 2)
    n0 = accepts(b)
    time.sleep(interval * 5)
    assert accepts(b) == n0, "a disabled backend is still probed"
    admin("enable", "web/app1")
    time.sleep(interval * 5)
    assert accepts(b) >= n0 + 2, "checks did not resume after enable"
    assert not log_lines(d, r"web/app1 is "), d.describe()


def test_banner_expect_without_send(lbd, backend):
    """expect alone waits for what the backend says first: ident backends
    greet with their name, so expecting it keeps them up and expecting
    something else takes them down."""
    good = backend("ident", "hello")
    bad = backend("ident", "other")
    svc = lbdtest.service("web", [good, bad])
    svc["health"] = {"interval": '"200ms"', "timeout": '"150ms"', "fall": 2,
                     "rise": 1, "expect": '"hello"'}
    inst = lbd([svc])
    assert lbdtest.poll_until(lambda: "web/other is DOWN" in inst.stderr(),
                              5 * lbdtest.SCALE), inst.describe()
    assert "web/hello is DOWN" not in inst.stderr()
    assert "expect: 'hello' not found" in inst.stderr()
