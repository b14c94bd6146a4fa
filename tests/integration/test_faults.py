"""Faults and bad conditions: a worker killed with hundreds of connections
open, a backend killed under thousands of downloads, running out of
descriptors, maxconn, idle clients, a hundred reloads under load, a worker
that crash-loops, and a run under valgrind.  Every test asserts on what the
clients and backends saw; every wait is bounded.  Run with -s to see the
figures.
"""

import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import faults_util as fu
import lbdtest
from lbdtest import SCALE, service

POOL_MAX_FREE = 256		# src/worker.c: free pipes a worker keeps


@pytest.fixture
def flbd(tmp_path, lbd_bin):
    """Like conftest's lbd fixture, with FaultLbd's extra knobs."""
    def make(i, services, workers=2, extra_env=None, prefix=None,
             ready="workers", **globals_):
        return fu.FaultLbd(tmp_path / ("flbd%d" % i), services,
                           workers=workers,
                           globals_=lbdtest.globals_from(globals_),
                           extra_env=extra_env, prefix=prefix, ready=ready)

    yield from lbdtest.lbd_fixture(make)




def stop_proc(pid, timeout=2.0):
    """SIGSTOP pid and wait until it is stopped."""
    os.kill(pid, signal.SIGSTOP)
    assert lbdtest.poll_until(lambda: fu.proc_state(pid) in ("T", "t"),
                              timeout, 0.002), "pid %d did not stop" % pid


def fast_health():
    return {"interval": lbdtest.q("200ms"), "timeout": lbdtest.q("150ms"),
            "fall": 2, "rise": 2}


# -- a worker killed with hundreds of connections open -----------------------

def test_sigkill_worker_with_hundreds_of_connections(flbd, backend):
    bs = [backend("ident", "k1"), backend("ident", "k2")]
    d = flbd([service("web", bs)], workers=2)
    port = d.port["web"]
    victim, survivor = sorted(d.workers())
    # Steer 150 connections to each worker: while one is stopped, only the
    # other can accept.
    held = {}
    names = {}
    cont = []
    try:
        for owner, other in ((victim, survivor), (survivor, victim)):
            stop_proc(other)
            cont.append(other)
            socks = fu.open_many(port, 150)
            held[owner] = socks
            got = fu.gather(socks, fu.line_done, 10 * SCALE)
            os.kill(other, signal.SIGCONT)
            cont.remove(other)
            for s in socks:
                names[s] = fu.first_line(got[s])
            assert None not in [names[s] for s in socks], \
                "greetings missing: %s" % collections.Counter(
                    got[s].end for s in socks if names[s] is None)
        own = fu.owners(d, held[victim] + held[survivor])
        split = collections.Counter(own.values())
        print("connections per worker: %s" % dict(split))
        assert all(own[s] == victim for s in held[victim]), split
        assert all(own[s] == survivor for s in held[survivor]), split

        # The survivor is stopped, the victim killed: a burst of 200
        # connections lands in the listen queue with nobody to accept it.
        stop_proc(survivor)
        cont.append(survivor)
        os.kill(victim, signal.SIGKILL)
        assert lbdtest.poll_until(lambda: lbdtest.is_dead(victim), 2, 0.001)
        t_dead = time.monotonic()
        burst = fu.open_many(port, 200)
        held["burst"] = burst
        new = lbdtest.poll_until(
            lambda: set(d.workers()) - {victim, survivor}, 5 * SCALE, 0.005)
        took = time.monotonic() - t_dead
        os.kill(survivor, signal.SIGCONT)
        cont.remove(survivor)
        print("worker %d killed; new worker %s after %.3fs"
              % (victim, sorted(new) if new else None, took))
        assert new, "no new worker after %.0fs\n%s" % (5 * SCALE,
                                                        d.describe())
        assert took <= (1.0 if SCALE == 1 else 2.0), \
            "replacement took %.3fs" % took

        got = fu.gather(burst, fu.line_done, 10 * SCALE)
        for s in burst:
            names[s] = fu.first_line(got[s])
        lost = [got[s].end for s in burst if names[s] is None]
        assert not lost, "%d of 200 queued connections not served: %s\n%s" % (
            len(lost), collections.Counter(lost), d.describe())
        bad = fu.echo_all(burst, 10 * SCALE, b"burst")
        assert not bad, "%d burst connections fail to echo" % len(bad)

        # The victim's connections ended; the survivor's still echo.
        ends = fu.gather(held[victim], lambda g: g.end is not None,
                         5 * SCALE)
        how = collections.Counter(ends[s].end for s in held[victim])
        stray = [bytes(ends[s].data[:40]) for s in held[victim]
                 if ends[s].data]
        print("killed worker's 150 connections: %s" % dict(how))
        assert how[None] == 0, "%d still open after the kill" % how[None]
        assert not stray, "data after the kill: %s" % stray[:3]
        bad = fu.echo_all(held[survivor], 10 * SCALE, b"still")
        assert not bad, "%d of the survivor's connections broken" % len(bad)

        # active per backend is the number of connections still open
        def want(groups):
            c = collections.Counter(names[s] for g in groups for s in held[g])
            return {b.name: c.get(b.name, 0) for b in bs}

        expect = want([survivor, "burst"])
        js = fu.wait_lbstat(d, lambda js: fu.backend_field(js, "active")
                            == expect, 5 * SCALE)
        print("active after the kill: %s (open: %s), worker restarts %s"
              % (fu.backend_field(js, "active"), expect,
                 js.get("worker_restarts")))
        assert fu.backend_field(js, "active") == expect
        assert sum(w["active"] for w in js["workers"]) == 350
        fu.close_all(held.pop("burst"))
        expect = want([survivor])
        js = fu.wait_lbstat(d, lambda js: fu.backend_field(js, "active")
                            == expect, 5 * SCALE)
        assert fu.backend_field(js, "active") == expect
    finally:
        for pid in cont:
            os.kill(pid, signal.SIGCONT)
        for socks in held.values():
            fu.close_all(socks)
    js = fu.wait_lbstat(d, lambda js: set(fu.backend_field(js, "active")
                                          .values()) == {0}, 5 * SCALE)
    assert fu.backend_field(js, "active") == {"k1": 0, "k2": 0}


# -- a backend killed under thousands of downloads ---------------------------

def test_backend_killed_under_thousands_of_downloads(flbd, slow_source):
    n = 2000
    s1 = slow_source("src1", 1)
    s2 = slow_source("src2", 2)
    svc = service("web", [(s1.name, s1.address), (s2.name, s2.address)],
                  retries=2, connect_timeout="1s")
    svc["health"] = fast_health()
    d = flbd([svc], workers=2)
    port = d.port["web"]
    workers = sorted(d.workers())
    before = {p: fu.fd_kinds(p) for p in workers}
    heads = {b.expected(0, 64): b for b in (s1, s2)}

    def check_prefix(got, b):
        return bytes(got.data) == b.expected(0, len(got.data))

    socks = []
    try:
        t0 = time.monotonic()
        socks = fu.open_many(port, n, rcvbuf=16384)
        got = fu.gather(socks, lambda g: len(g.data) >= 8192 or g.end,
                        20 * SCALE)
        t_open = time.monotonic() - t0
        src = {s: heads.get(bytes(got[s].data[:64])) for s in socks}
        short = [got[s].end for s in socks if src[s] is None]
        assert not short, "%d of %d downloads did not start: %s" % (
            len(short), n, collections.Counter(short))
        assert all(check_prefix(got[s], src[s]) for s in socks)
        mine = [s for s in socks if src[s] is s1]
        theirs = [s for s in socks if src[s] is s2]
        js = fu.lbstat(d)
        print("%d downloads started in %.2fs: %s; active %s; worker fds %s"
              % (n, t_open, {b.name: sum(src[s] is b for s in socks)
                             for b in (s1, s2)},
                 fu.backend_field(js, "active"),
                 {p: sum(fu.fd_kinds(p).values()) for p in workers}))
        assert fu.backend_field(js, "active") == {"src1": len(mine),
                                                  "src2": len(theirs)}
        # Half of src1's clients send a byte the stopped backend never
        # reads: killing it then resets those connections (RST), the others
        # get the backend's FIN after what it had sent.
        stop_proc(s1.proc.pid)
        poked = set(mine[::2])
        for s in poked:
            s.send(b"x")
        js = fu.wait_lbstat(d, lambda js: fu.backend_field(js, "bytes_in")
                            ["src1"] >= len(poked), 5 * SCALE)
        assert fu.backend_field(js, "bytes_in")["src1"] == len(poked), \
            "the bytes sent did not all reach the stopped backend"
        t_kill = time.monotonic()
        s1.proc.kill()
        ends = fu.gather(mine, lambda g: g.end is not None, 10 * SCALE)
        took = time.monotonic() - t_kill
        for s in mine:
            got[s].data += ends[s].data
        how_poked = collections.Counter(ends[s].end for s in poked)
        how_other = collections.Counter(ends[s].end for s in mine
                                        if s not in poked)
        print("src1 killed: its %d clients ended within %.2fs; with unread "
              "bytes at the backend: %s, without: %s"
              % (len(mine), took, dict(how_poked), dict(how_other)))
        assert how_poked[None] == 0 and how_other[None] == 0, \
            "connections still open %.0fs after their backend died" % (
                10 * SCALE)
        assert how_poked == {"reset": len(poked)}, \
            "a backend reset must reset the client: %s" % how_poked
        assert how_other == {"eof": len(mine) - len(poked)}, how_other
        assert all(check_prefix(got[s], s1) for s in mine), \
            "a killed download delivered wrong bytes"
        fu.close_all(mine)
        # src2's downloads go on: each gets its next chunk
        more = fu.gather(theirs, lambda g: len(g.data) >= 8192 or g.end,
                         10 * SCALE)
        stuck = [more[s].end for s in theirs if len(more[s].data) < 8192]
        assert not stuck, "%d of src2's downloads stalled: %s" % (
            len(stuck), collections.Counter(stuck))
        for s in theirs:
            got[s].data += more[s].data
        assert all(check_prefix(got[s], s2) for s in theirs)
        # lbd stays up: new connections go to src2
        fresh = fu.open_many(port, 100)
        socks += fresh
        first = fu.gather(fresh, lambda g: len(g.data) >= 64 or g.end,
                          10 * SCALE)
        served = collections.Counter(
            getattr(heads.get(bytes(first[s].data[:64])), "name", None)
            for s in fresh)
        print("100 new connections after the kill: %s" % dict(served))
        assert served == {"src2": 100}, served
        js = fu.wait_lbstat(d, lambda js: fu.backend_field(js, "active")
                            ["src1"] == 0, 5 * SCALE)
        act = fu.backend_field(js, "active")
        print("active %s; src1 state %s" % (
            act, fu.backend_field(js, "state")["src1"]))
        assert act == {"src1": 0, "src2": len(theirs) + 100}, act
    finally:
        fu.close_all(socks)
    js = fu.wait_lbstat(d, lambda js: set(fu.backend_field(js, "active")
                                          .values()) == {0}, 10 * SCALE)
    assert fu.backend_field(js, "active") == {"src1": 0, "src2": 0}
    assert d.proc.poll() is None, "lbd died\n" + d.describe()
    assert sorted(d.workers()) == workers, "a worker died\n" + d.describe()
    # every socket is closed again; only the pipe pool may have grown
    after = {}
    for p in workers:
        after[p] = lbdtest.poll_until(
            lambda: (lambda k: k if k["socket"] == before[p]["socket"]
                     else None)(fu.fd_kinds(p)), 5 * SCALE) or fu.fd_kinds(p)
    print("worker fds before %s, after %s" % (
        {p: dict(k) for p, k in before.items()},
        {p: dict(k) for p, k in after.items()}))
    for p in workers:
        b, a = before[p], after[p]
        for kind in ("socket", "anon", "file"):
            assert a[kind] == b[kind], "worker %d: %s fds %d -> %d" % (
                p, kind, b[kind], a[kind])
        assert a["pipe"] <= b["pipe"] + 2 * POOL_MAX_FREE, \
            "worker %d: %d pipe fds, more than its pool holds" % (p, a["pipe"])


# -- out of descriptors, maxconn ---------------------------------------------

def cpu_over(pid, seconds):
    c0 = fu.cpu_seconds(pid)
    time.sleep(seconds)
    return fu.cpu_seconds(pid) - c0


@pytest.mark.parametrize("spare", [58, 59])
def test_fd_limit_pauses_and_recovers(flbd, backend, spare):
    """RLIMIT_NOFILE lowered under a running worker to what it holds plus
    `spare`: accepting pauses without spinning, no waiting client is
    dropped, and once the limit is back every waiting connection is served
    by itself.  A connection takes descriptors in pairs (client and backend
    socket, pipes), so both parities of spare are tried."""
    b = backend("ident", "fd")
    # Clients wait for a descriptor at most connect-timeout: long enough
    # here for the limit to come back (test_fd_limit_wait_ends_at_connect_timeout
    # tests the bound).
    d = flbd([service("web", [b], connect_timeout="10s")], workers=1)
    port = d.port["web"]
    (w,) = d.workers()
    base = fu.fd_kinds(w)
    limit = sum(base.values()) + spare
    soft, hard = fu.nofile_limit(w)
    fu.set_nofile(w, limit, hard)
    socks = []
    try:
        socks = fu.open_many(port, 100)
        got = fu.gather(socks, fu.line_done, 1.5 * SCALE)
        served = [s for s in socks if fu.first_line(got[s]) is not None]
        dropped = [got[s].end for s in socks if got[s].end is not None
                   and fu.first_line(got[s]) is None]
        cpu = cpu_over(w, 1.0)
        fds = fu.fd_kinds(w)
        print("limit %d (worker held %d fds): %d of 100 served, %d dropped "
              "(%s), worker fds %s, CPU %.3fs over 1s while the rest waits"
              % (limit, sum(base.values()), len(served), len(dropped),
                 dict(collections.Counter(dropped)), dict(fds), cpu))
        assert cpu < 0.1, "the worker spins at the fd limit: %.2fs CPU in 1s" \
            % cpu
        fu.set_nofile(w, hard, hard)
        t0 = time.monotonic()
        waiting = [s for s in socks if s not in served and got[s].end is None]
        more = fu.gather(waiting, fu.line_done, 5 * SCALE)
        took = time.monotonic() - t0
        late = [s for s in waiting if fu.first_line(more[s]) is not None]
        print("limit raised: %d waiting connections served in %.2fs"
              % (len(late), took))
        assert not dropped, "%d of 100 clients dropped unserved at the fd " \
            "limit: %s\n%s" % (len(dropped), collections.Counter(dropped),
                               d.describe())
        assert len(late) == len(waiting), \
            "%d connections still waiting after the limit was raised" % (
                len(waiting) - len(late))
        bad = fu.echo_all(socks, 10 * SCALE)
        assert not bad, "%d connections fail to echo" % len(bad)
    finally:
        fu.close_all(socks)
    assert w in d.workers()


@pytest.mark.parametrize("kind", ["small", "bulk"])
def test_fd_limit_serves_what_fits(flbd, backend, kind):
    """At a low descriptor limit the worker serves the connections it has
    room for, and as served clients leave, waiting ones are served, with no
    change of limit.  small: an ident greeting; bulk: a 1 MiB download.
    The backend answers only after the burst is in (it is stopped
    meanwhile), as a slow backend would."""
    size = 1 << 20
    if kind == "small":
        b = backend("ident", "fd")

        def done(g):
            return fu.line_done(g)

        def ok(g):
            return fu.first_line(g) == "fd"
    else:
        import backend as backend_mod
        b = backend("source", size, "fdbulk")
        want = backend_mod.stream_bytes("fdbulk", size)

        def done(g):
            return g.end is not None

        def ok(g):
            return g.end == "eof" and g.data == want
    d = flbd([service("web", [b], connect_timeout="10s")], workers=1)
    (w,) = d.workers()
    fu.set_nofile(w, sum(fu.fd_kinds(w).values()) + 58,
                  fu.nofile_limit(w)[1])
    stop_proc(b.proc.pid)
    stopped = True
    socks = []
    try:
        socks = fu.open_many(d.port["web"], 100)
        time.sleep(0.5)
        os.kill(b.proc.pid, signal.SIGCONT)
        stopped = False
        pending = list(socks)
        acc = {s: fu.Got() for s in socks}
        progress = time.monotonic()
        rounds = []
        for _ in range(1000):
            got = fu.gather(pending, done, 0.3 * SCALE)
            for s in pending:
                acc[s].data += got[s].data
                acc[s].end = acc[s].end or got[s].end
            served = [s for s in pending if ok(acc[s])]
            dropped = [s for s in pending if acc[s].end and s not in served]
            assert not dropped, "%d clients dropped or cut short" % len(
                dropped)
            if served:
                rounds.append(len(served))
                progress = time.monotonic()
                fu.close_all(served)
                pending = [s for s in pending if s not in served]
            if not pending:
                break
            if time.monotonic() - progress > 3 * SCALE:
                # and the clients leaving frees nothing either?
                fu.close_all(socks)
                time.sleep(2.0)
                raise AssertionError(
                    "no progress for %.0fs: %d connections wait at the fd "
                    "limit after %s were served; 2s after every client "
                    "closed the worker holds %s with lbstat active %s"
                    % (3 * SCALE, len(pending), rounds, dict(fu.fd_kinds(w)),
                       fu.backend_field(fu.lbstat(d), "active")))
        print("%s: served in batches of %s while at the fd limit; worker "
              "fds %s" % (kind, rounds, dict(fu.fd_kinds(w))))
        assert not pending
    finally:
        if stopped:
            os.kill(b.proc.pid, signal.SIGCONT)
        fu.close_all(socks)
        hard = fu.nofile_limit(w)[1]
        fu.set_nofile(w, hard, hard)	# or the stop waits shutdown-grace


def test_fd_limit_wait_ends_at_connect_timeout(flbd, backend):
    """A client accepted when no descriptor is left for its backend socket
    waits at most connect-timeout, then is closed as "out of resources" and
    counted as rejected; the connections that fit keep relaying and, once one
    leaves, a new client is served again (issue 20)."""
    b = backend("ident", "fw")
    d = flbd([service("web", [b], connect_timeout="1s")], workers=1)
    port = d.port["web"]
    (w,) = d.workers()
    held, stuck = [], None
    # Room for 4 relayed connections (2 descriptors each) and one more
    # accept, whose backend socket() then fails with EMFILE.
    fu.set_nofile(w, sum(fu.fd_kinds(w).values()) + 9, fu.nofile_limit(w)[1])
    try:
        for _ in range(8):
            s = lbdtest.connect(port, timeout=5.0)
            t0 = time.monotonic()
            s.settimeout(0.5)
            try:
                line = lbdtest.recv_line(s)
            except socket.timeout:
                line = None
            if not line or not line.endswith(b"\n"):
                stuck = s
                break
            s.setblocking(False)
            held.append(s)
        assert stuck is not None and len(held) == 4, \
            "%d connections served before one waited" % len(held)
        assert lbdtest.wait_closed(stuck, 3.0 * SCALE), \
            "a client waiting for a descriptor is still open after 3s " \
            "(connect-timeout 1s)"
        waited = time.monotonic() - t0
        print("fd limit: a waiting client closed after %.2fs "
              "(connect-timeout 1s)" % waited)
        assert 0.9 <= waited <= 1.0 + 0.5 * SCALE, \
            "closed after %.2fs, connect-timeout is 1s" % waited
        js = fu.lbstat(d)
        (svc,) = [x for x in js["services"] if x["name"] == "web"]
        assert svc["rejected"] == 1, svc
        assert not fu.echo_all(held, 5 * SCALE), "held connections stopped"
        held.pop().close()

        def served():
            try:
                return lbdtest.ident(port, timeout=2.0) == "fw"
            except (OSError, EOFError):
                return False
        assert lbdtest.poll_until(served, 5 * SCALE, 0.2), \
            "no client served after a held one left"
    finally:
        fu.close_all(held + ([stuck] if stuck else []))
        hard = fu.nofile_limit(w)[1]
        fu.set_nofile(w, hard, hard)


def test_maxconn_waits_without_spinning(flbd, backend):
    b = backend("ident", "mc")
    d = flbd([service("web", [b])], workers=1, maxconn=10)
    port = d.port["web"]
    (w,) = d.workers()
    held = fu.open_many(port, 10)
    try:
        got = fu.gather(held, fu.line_done, 5 * SCALE)
        assert all(fu.first_line(got[s]) == "mc" for s in held), \
            "the first 10 connections are not all served"
        extra = fu.open_many(port, 1)
        held += extra
        cpu = cpu_over(w, 1.0)
        early = fu.gather(extra, fu.line_done, 0.1)
        print("11th connection with maxconn 10: %r after 1s; worker CPU "
              "%.3fs meanwhile" % (bytes(early[extra[0]].data), cpu))
        assert not early[extra[0]].data and early[extra[0]].end is None, \
            "the 11th connection was served (or dropped) beyond maxconn"
        assert cpu < 0.1, "worker spins at maxconn: %.2fs CPU in 1s" % cpu
        t0 = time.monotonic()
        held.pop(0).close()
        late = fu.gather(extra, fu.line_done, 3 * SCALE)
        took = time.monotonic() - t0
        print("served %.3fs after one of the 10 closed" % took)
        assert fu.first_line(late[extra[0]]) == "mc", \
            "the waiting connection was not served after a slot freed " \
            "(%s)" % late[extra[0]].end
        assert took < 1.0 * SCALE
        assert not fu.echo_all(held, 5 * SCALE)
    finally:
        fu.close_all(held)


# -- idle clients ---------------------------------------------------------------

def test_idle_clients_are_evicted(flbd, backend):
    """idle-timeout 1s: silent clients are closed on both sides, so with
    maxconn 2 they cannot pin the worker's slots: a third client waits,
    then is served."""
    b = backend("sha")
    d = flbd([service("web", [b], idle_timeout="1s")], workers=1, maxconn=2)
    port = d.port["web"]
    t0 = time.monotonic()
    silent = fu.open_many(port, 2)
    third = []
    try:
        # both relayed to the backend (and holding the two slots)
        assert lbdtest.poll_until(
            lambda: sum(1 for l in b.log_lines() if l[1] == "accept") >= 2
            and fu.lbstat(d)["services"][0]["active"] == 2, 2 * SCALE), \
            "silent clients not relayed: %s" % b.log_lines()
        third = fu.open_many(port, 1)
        payload = b"served after the idle ones\n"
        third[0].sendall(payload)
        third[0].shutdown(socket.SHUT_WR)
        ends = fu.gather(silent, lambda g: g.end is not None, 5 * SCALE)
        t_ends = time.monotonic() - t0
        reply = fu.gather(third, lambda g: g.end is not None, 5 * SCALE)
        t_third = time.monotonic() - t0
        line = fu.first_line(reply[third[0]])
        # the backend saw EOF on the two silent connections, after ~1s
        closed = lbdtest.poll_until(lambda: [
            l for l in b.log_lines() if l[1] in ("eof", "reset")
            and int(l[3]) == 0 and int(l[2]) >= 500], 2 * SCALE)
        print("silent clients: %s after %.2fs; backend saw %s; third client "
              "served after %.2fs"
              % ([ends[s].end for s in silent], t_ends,
                 [(l[1], l[2] + "ms") for l in closed], t_third))
        assert [ends[s].end for s in silent] == ["eof", "eof"], \
            "silent clients not closed: %s" % [ends[s].end for s in silent]
        assert not any(ends[s].data for s in silent)
        assert 0.8 <= t_ends <= 2.5 * SCALE, t_ends
        assert [l[1] for l in closed] == ["eof", "eof"], b.log_lines()
        assert all(800 <= int(l[2]) <= 2500 * SCALE for l in closed), closed
        import hashlib
        assert line == hashlib.sha256(payload).hexdigest(), \
            "third client got %r" % bytes(reply[third[0]].data)
        assert t_third <= 3.0 * SCALE
    finally:
        fu.close_all(silent + third)


# -- a hundred reloads under load --------------------------------------------

class Loop(threading.Thread):
    """Short connections in a loop, each checked end to end (greeting and
    echo); bounded by count and time."""

    def __init__(self, port, limit=50000, seconds=120):
        super().__init__(daemon=True)
        self.port, self.limit, self.seconds = port, limit, seconds
        self.stop = threading.Event()
        self.done = 0
        self.errors = []
        self.seen = collections.Counter()

    def run(self):
        deadline = time.monotonic() + self.seconds * SCALE
        i = 0
        while not self.stop.is_set() and i < self.limit \
                and time.monotonic() < deadline:
            i += 1
            try:
                self.seen[lbdtest.ident(self.port, b"r%d\n" % i, 5)] += 1
                self.done += 1
            except Exception as e:
                self.errors.append("%s: %r" % (time.strftime("%T"), e))


def rewrite(d, services):
    svcs = [dict(s, listen=["127.0.0.1:%d" % d.port[s["name"]]])
            for s in services]
    d.conf_text = lbdtest.render_config(d.runtime_dir, svcs,
                                        d.workers_wanted, d.globals)
    tmp = d.conf_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(d.conf_text)
    os.replace(tmp, d.conf_path)


def test_hundred_reloads_under_load(flbd, backend):
    bs = [backend("ident", "r%d" % i) for i in range(3)]
    confs = [[service("web", bs[:2])],
             [service("web", bs[1:], balance="leastconn")]]
    d = flbd(confs[0], workers=2)
    port = d.port["web"]
    loops = [Loop(port) for _ in range(3)]
    for t in loops:
        t.start()
    slow = []
    done = 0
    t0 = time.monotonic()
    try:
        for i in range(100):
            gen = fu.lbstat(d)["generation"]
            old = set(d.workers())
            rewrite(d, confs[(i + 1) % 2])
            t1 = time.monotonic()
            d.signal(signal.SIGHUP)

            def settled():
                now = set(d.workers())
                return (len(now) == 2 and not now & old
                        and all(lbdtest.is_dead(p) for p in old)
                        and fu.lbstat(d)["generation"] > gen)

            ok = lbdtest.poll_until(settled, 10 * SCALE, 0.01)
            slow.append(time.monotonic() - t1)
            assert ok, "reload %d not done after %.0fs: workers %s (old %s)" \
                "\n%s" % (i + 1, 10 * SCALE, d.workers(), old, d.describe())
            done += 1
    finally:
        for t in loops:
            t.stop.set()
        for t in loops:
            t.join(30 * SCALE)
    took = time.monotonic() - t0
    errors = [e for t in loops for e in t.errors]
    served = sum(t.done for t in loops)
    seen = sum((t.seen for t in loops), collections.Counter())
    print("%d reloads in %.1fs (each %.0f-%.0fms, median %.0fms); %d "
          "connections served, %d failed; per backend %s"
          % (done, took, min(slow) * 1000, max(slow) * 1000,
             sorted(slow)[len(slow) // 2] * 1000, served, len(errors),
             dict(seen)))
    assert not errors, "%d connections failed, first: %s" % (len(errors),
                                                             errors[:5])
    assert served >= 200, served
    assert set(seen) == {"r0", "r1", "r2"}, seen
    assert d.proc.poll() is None
    js = fu.lbstat(d)
    assert js["reloads"] == 100, js["reloads"]
    assert "reload refused" not in d.stderr(), d.describe()


# -- a worker that crash-loops -------------------------------------------------

CRASH_SO = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Test-only: a forked child (a worker) that calls epoll_create1 while the
 * flag file exists exits with status 3, after noting its pid. */
static pid_t first_pid;

__attribute__((constructor)) static void
remember(void)
{
	first_pid = getpid();
}

int
epoll_create1(int flags)
{
	static int (*real)(int);
	const char *flag = getenv("LBD_TEST_CRASH_FLAG");
	const char *log = getenv("LBD_TEST_CRASH_LOG");

	if (getpid() != first_pid && flag != NULL && access(flag, F_OK) == 0) {
		if (log != NULL) {
			char line[32];
			int fd = open(log, O_WRONLY | O_APPEND);
			int n = snprintf(line, sizeof(line), "%d\n", (int)getpid());

			if (fd >= 0) {
				(void)write(fd, line, (size_t)n);
				close(fd);
			}
		}
		_exit(3);
	}
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "epoll_create1");
	return real(flags);
}
"""

RESTART_RE = re.compile(r"worker (\d+) \(pid (\d+)\) (exited with status \d+|"
                        r"killed by signal \d+) after (\d+)ms; restarting"
                        r"(?: in (\d+)ms)?")


@pytest.fixture
def request_cleanup():
    todo = []
    yield todo
    for fn in todo:
        fn()


def test_crash_looping_worker_backs_off(request_cleanup, flbd, backend,
                                        tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler for the LD_PRELOAD crash hook")
    src = tmp_path / "crash.c"
    src.write_text(CRASH_SO)
    so = str(tmp_path / "crash.so")
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", so, str(src),
                    "-ldl"], check=True, timeout=60)
    # the workers run as an unprivileged user, and pytest's tmp_path sits
    # under a 0700 directory: flag and log in a directory of their own
    import pathlib
    import tempfile
    shared = pathlib.Path(tempfile.mkdtemp(prefix="lbd-crash-"))
    os.chmod(shared, 0o755)
    request_cleanup.append(lambda: shutil.rmtree(shared, ignore_errors=True))
    flag = shared / "crash"
    flag.write_text("")
    log = shared / "deaths"
    log.write_text("")
    os.chmod(log, 0o666)
    env = {"LD_PRELOAD": so, "LBD_TEST_CRASH_FLAG": str(flag),
           "LBD_TEST_CRASH_LOG": str(log)}
    if "asan" in os.path.basename(lbdtest.build_dir()):
        env["ASAN_OPTIONS"] = ":".join(filter(None, [
            os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0"]))
    b = backend("ident", "cl")
    d = flbd([service("web", [b])], workers=2, extra_env=env, ready="listen")
    t0 = time.monotonic()
    time.sleep(5.0)
    flag.unlink()
    t_fixed = time.monotonic() - t0
    time.sleep(0.5)
    text = d.stderr()
    rows = [m.groups() for m in RESTART_RE.finditer(text)]
    deaths = log.read_text().split()
    delays = collections.defaultdict(list)
    for wid, pid, how, lived, delay in rows:
        delays[int(wid)].append(int(delay or 0))
    print("crash loop for %.1fs: %d deaths noted by the hook, %d restarts "
          "logged; delays per worker id (ms): %s"
          % (t_fixed, len(deaths), len(rows), dict(delays)))
    assert d.proc.poll() is None, "the master died\n" + d.describe()
    assert len(rows) >= 4, "no crash loop seen\n" + d.describe()
    assert len(rows) < 30, "fork storm: %d restarts in %.1fs" % (len(rows),
                                                                 t_fixed)
    # the master logs every death, with the exit status
    assert sorted(deaths) == sorted(pid for _, pid, _, _, _ in rows), (
        deaths, rows)
    assert all(how == "exited with status 3" for _, _, how, _, _ in rows)
    for wid, ds in delays.items():
        assert ds == sorted(ds), "worker %d: delays do not grow: %s" % (
            wid, ds)
        assert ds[-1] >= 800, "worker %d: no back-off: %s" % (wid, ds)
    js = fu.lbstat(d)
    assert js["worker_restarts"] == len(rows), js["worker_restarts"]

    # the fault is gone: the next respawns live on and serve
    ws = lbdtest.poll_until(lambda: len(d.workers()) == 2 and d.workers(),
                            7 * SCALE, 0.05)
    assert ws, "workers not back %.0fs after the fault went\n%s" % (
        7 * SCALE, d.describe())
    t_back = time.monotonic() - t0 - t_fixed
    time.sleep(2.0)
    assert set(d.workers()) == set(ws), "workers still dying\n" + \
        d.describe()
    names = [lbdtest.ident(d.port["web"]) for _ in range(20)]
    print("workers back %.1fs after the fault went; %s"
          % (t_back, collections.Counter(names)))
    assert names == ["cl"] * 20
    assert len(RESTART_RE.findall(d.stderr())) == len(rows)


# -- valgrind -----------------------------------------------------------------

LOST_RE = re.compile(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks")
ERRORS_RE = re.compile(r"ERROR SUMMARY: ([\d,]+) errors")


@pytest.mark.skipif("asan" in os.path.basename(lbdtest.build_dir()),
                    reason="valgrind does not run AddressSanitizer builds")
def test_valgrind_clean_run(flbd, backend):
    vg = shutil.which("valgrind")
    if vg is None:
        pytest.skip("valgrind is not installed")
    import tempfile
    logdir = tempfile.mkdtemp(prefix="lbd-vg-")
    os.chmod(logdir, 0o777)
    try:
        b = backend("ident", "vg")
        prefix = [vg, "--leak-check=full", "--errors-for-leak-kinds=definite",
                  "--error-exitcode=99", "--trace-children=yes",
                  "--log-file=%s/vg.%%p.log" % logdir]
        d = flbd([service("web", [b])], workers=2, prefix=prefix,
                 ready="children", timeout=60)
        first = set(d.children())
        names = [lbdtest.ident(d.port["web"], timeout=10) for _ in range(50)]
        assert names == ["vg"] * 50
        rewrite(d, [service("web", [b], balance="leastconn")])
        d.signal(signal.SIGHUP)
        assert lbdtest.poll_until(
            lambda: len(set(d.children()) - first) == 2
            and all(lbdtest.is_dead(p) for p in first), 30 * SCALE, 0.1), \
            "no reload under valgrind\n" + d.describe()
        names = [lbdtest.ident(d.port["web"], timeout=10) for _ in range(5)]
        d.signal(signal.SIGTERM)
        rc = d.wait(60)
        assert rc is not None, "lbd under valgrind did not stop"
        logs = {}
        deadline = time.monotonic() + 10
        for name in sorted(os.listdir(logdir)):
            path = os.path.join(logdir, name)
            with open(path) as f:
                text = f.read()
            # the workers finish after the master has reaped them
            while "ERROR SUMMARY" not in text and \
                    time.monotonic() < deadline:
                time.sleep(0.2)
                with open(path) as f:
                    text = f.read()
            logs[name] = text
        summary = {}
        problems = []
        for name, text in logs.items():
            lost = sum(int(m.group(1).replace(",", ""))
                       for m in LOST_RE.finditer(text))
            errs = [int(m.group(1).replace(",", ""))
                    for m in ERRORS_RE.finditer(text)]
            summary[name] = (lost, errs)
            if lost or any(errs) or not errs:
                problems.append("%s:\n%s" % (name, text[-6000:]))
        print("valgrind: exit %s, %d process logs: %s"
              % (rc, len(logs), summary))
        assert len(logs) >= 5, "want master + 2 workers + 2 after the " \
            "reload, got %s" % sorted(logs)
        assert not problems, "\n\n".join(problems)
        assert rc == 0, "exit %s\n%s" % (rc, d.describe())
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
