"""lbd's pipes and the user's pipe quota (issue 18).

The kernel refuses to grow a pipe (F_SETPIPE_SZ: EPERM) while the pipes of
its user, across all that user's processes, pass fs.pipe-user-pages-soft;
root is exempt.  A worker must log the refusal and ask again later, so bulk
gets 1 MiB pipes back once the user's other pipes are closed -- before,
one refusal kept a worker on 64 KiB pipes (twice the CPU per GB) for good.
The squeeze (tests/bench/pipequota.py) is a child that holds the workers'
user's pipes up to the limit for one download, then exits.
"""

import os
import sys
import time

import pytest

import lbdtest
from lbdtest import service

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "bench"))
import pipequota  # noqa: E402

MiB = 1 << 20
SIZE = 24 * MiB             # >= 64 fills of a 64 KiB pipe, with room to spare


class Children:
    """pipequota's process tracker: started and stopped by PID."""

    def start(self, argv, **kw):
        import subprocess
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)

    def stop(self, p):
        lbdtest.stop_child(p)


def workers_ids():
    """uid and gid the workers run as (lbdtest's identity())."""
    if os.geteuid() == 0:
        return pipequota.NOBODY
    return os.getuid(), os.getgid()


def soft_limit():
    try:
        with open("/proc/sys/fs/pipe-user-pages-soft") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def pull(port):
    """Downloads the whole stream, pausing at first so that the backend's
    bytes pile up in lbd's socket and a splice can fill a pipe (only a
    full pipe is grown).  Returns the byte count."""
    s = lbdtest.connect(port, timeout=30, rcvbuf=256 * 1024)
    got = 0
    try:
        time.sleep(0.3)
        deadline = time.monotonic() + 30 * lbdtest.SCALE
        while time.monotonic() < deadline:
            d = s.recv(1 << 20)
            if not d:
                break
            got += len(d)
    finally:
        s.close()
    return got


def test_refused_pipe_growth_is_retried(lbd, backend):
    if soft_limit() <= 0:
        pytest.skip("fs.pipe-user-pages-soft is 0 (no per-user pipe quota)")
    b = backend("source", str(SIZE), "q0")
    d = lbd([service("web", [b])], workers=1)
    port = d.port["web"]
    with pipequota.Squeeze(Children(), ids=workers_ids()):
        assert pull(port) >= SIZE
    assert lbdtest.poll_until(lambda: "F_SETPIPE_SZ 1048576 refused" in d.stderr(),
                              5), d.describe()
    assert "pipes grow to" not in d.stderr()
    for _ in range(3):          # the quota is free again: asked and granted
        assert pull(port) >= SIZE
        if "pipes grow to 1048576 bytes again" in d.stderr():
            break
    assert "pipes grow to 1048576 bytes again" in d.stderr(), d.describe()
