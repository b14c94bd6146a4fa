"""Nothing waits forever (issue 20): workers orphaned by a killed master are
bounded by shutdown-grace while a new lbd serves at once, and a hung worker
is replaced by the master's watchdog while an idle one is left alone.
Every wait is bounded; run with -s to see the measured figures.
"""

import os
import signal
import socket
import time

import pytest

import faults_util as fu
import lbdtest
from lbdtest import SCALE, service


@pytest.fixture
def flbd(tmp_path, lbd_bin):
    def make(i, services, workers=2, **globals_):
        return fu.FaultLbd(tmp_path / ("flbd%d" % i), services,
                           workers=workers,
                           globals_=lbdtest.globals_from(globals_))

    yield from lbdtest.lbd_fixture(make)


@pytest.fixture
def slow_source():
    started = []

    def start(name, seed, chunk=8192, interval_ms=100, total=1 << 30):
        b = fu.SlowSource(name, seed, chunk, interval_ms, total)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def alive(pid):
    st = lbdtest.proc_stat(pid)
    return st is not None and st[0] != "Z"


def served_by(port, pids, timeout=2.0):
    """Opens a connection, reads a few bytes; returns the pid of the worker
    holding it (one of pids) or None."""
    s = lbdtest.connect(port, timeout=timeout)
    try:
        s.settimeout(timeout)
        if not s.recv(1):
            return None
        inode = lbdtest.server_inode(s)
        for pid in pids:
            if inode in lbdtest.socket_inodes(pid):
                return pid
        return None
    finally:
        s.close()


# -- orphaned workers --------------------------------------------------------

def test_orphans_bounded_and_new_lbd_serves(tmp_path, flbd, slow_source):
    """kill -9 the master during a long download: its workers close their
    listener copies at once and cut what is left at shutdown-grace; a new
    lbd on the same config and runtime-dir starts and serves meanwhile."""
    src = slow_source("slow", 7)
    grace = 2.0
    d = flbd([service("web", [(src.name, src.address)])], workers=2,
             shutdown_grace="2s")
    port = d.port["web"]
    old = set(d.workers())
    dl = lbdtest.connect(port)
    dl.settimeout(5.0)
    got = len(lbdtest.recv_exact(dl, 4096))
    os.kill(d.pid, signal.SIGKILL)
    t0 = time.monotonic()
    assert d.wait(5.0) is not None
    d2 = fu.FaultLbd(tmp_path / "second", d.services, workers=2,
                     globals_=d.globals)
    d2.runtime_dir = d.runtime_dir
    d2.listen_for = lambda svc: (port, ["127.0.0.1:%d" % port])
    d2.START_TRIES = 1
    try:
        d2.start(5.0)
        started = time.monotonic() - t0
        new = set(d2.workers())
        owners = [served_by(port, new) for _ in range(10)]
        assert all(o in new for o in owners), \
            "connections not served by the new lbd: %s" % owners
        # The old download keeps flowing until shutdown-grace, then ends.
        dl.settimeout(0.5)
        end = None
        deadline = t0 + grace + 2.0 * SCALE
        while time.monotonic() < deadline:
            try:
                data = dl.recv(65536)
            except socket.timeout:
                continue
            except ConnectionError:
                end = "reset"
                break
            if not data:
                end = "eof"
                break
            got += len(data)
        cut = time.monotonic() - t0
        assert end is not None, "the orphaned download still runs %.1fs " \
            "after the master died (shutdown-grace 2s)" % cut
        assert cut >= grace - 0.2, "download cut after %.2fs, before " \
            "shutdown-grace" % cut
        assert lbdtest.poll_until(lambda: not any(alive(p) for p in old),
                                  1.0 * SCALE, 0.02), \
            "orphaned workers %s still run" % [p for p in old if alive(p)]
        gone = time.monotonic() - t0
        print("new lbd serving %.2fs after kill -9; orphaned download "
              "(%d bytes) cut at %.2fs; orphans gone by %.2fs "
              "(shutdown-grace 2s)" % (started, got, cut, gone))
        assert "master (pid %d) gone" % d.pid in d.stderr(), d.stderr()
    finally:
        dl.close()
        problems = d2.finish()
    assert not problems, problems
