"""Squeezing a user's pipe quota, for the bulk benchmarks (issue 18).

The kernel charges every pipe's slots (a page each) to the user that made
it, and once that user's pipes pass fs.pipe-user-pages-soft (16384 pages,
64 MiB, by default) a new pipe gets 2 pages and F_SETPIPE_SZ to grow one is
refused (EPERM).  Root is exempt.  lbd's workers run as their `user`, so on
a machine where other processes of that user hold pipes, lbd may not get
the 1 MiB pipes that halve bulk CPU per GB.  Squeeze() plays those other
processes: a child running as the user that holds its pipes up to the soft
limit less HEADROOM pages -- room for new pipes of the default size, none
for growing one -- until stopped.  It is one process started and stopped by
PID through the caller's process tracker (bench.PROCS), holding at most
~1 100 descriptors.
"""
import select
import subprocess
import sys

NOBODY = 65534, 65534          # uid, gid: the user bench.py's lbd runs as
HEADROOM = 80                  # pages: 4 default pipes and a bit

_HOLDER = r"""
import fcntl, os, sys, time
os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[1]))
held, default = [], None
for _ in range(19000):
    r, w = os.pipe()
    cap = fcntl.fcntl(w, 1032)  # F_GETPIPE_SZ
    default = default or cap
    held.append((r, w, cap // 4096))
    if cap < default:           # past the soft limit: a smaller pipe
        break
free = 0
while held and free < int(sys.argv[3]):
    r, w, pages = held.pop()
    os.close(r); os.close(w)
    free += pages
print(len(held), flush=True)
time.sleep(600)
"""


class Squeeze:
    """with Squeeze(): the user's pipe quota is all but used meanwhile."""

    def __init__(self, procs, ids=NOBODY, headroom=HEADROOM):
        """procs: bench.PROCS (start/stop by PID, stopped on exit)."""
        self.procs, self.ids, self.headroom = procs, ids, headroom
        self.proc, self.held = None, 0

    def __enter__(self):
        self.proc = self.procs.start(
            [sys.executable, "-c", _HOLDER, str(self.ids[0]), str(self.ids[1]),
             str(self.headroom)], stdout=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().strip() if ready else b""
        if not line:
            self.__exit__()
            sys.exit("pipequota: could not take uid %d's pipes" % self.ids[0])
        self.held = int(line)
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc.stdout.close()
            self.proc = None
        return False
