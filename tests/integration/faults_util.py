"""Helpers for test_faults.py and test_protocols.py: many sockets at once
without threads, lbstat snapshots, /proc figures (CPU time, descriptors) and
an Lbd that can run under a command prefix (valgrind) or an extra
environment (LD_PRELOAD), and that need not wait for its workers.

Stdlib only; every loop is bounded in time and count.
"""

import collections
import json
import os
import selectors
import subprocess
import time

import lbdtest
from lbdtest import SCALE

CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- lbstat ------------------------------------------------------------------

def lbstat(d):
    """lbstat -j for the Lbd d, parsed (one sample)."""
    path = os.path.join(lbdtest.build_dir(), "lbstat")
    env = dict(os.environ)
    env.pop("LBD_CONF", None)
    r = subprocess.run([path, "-j", "-s", os.path.join(d.runtime_dir,
                                                       "lbd.stats")],
                       env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20 * SCALE)
    assert r.returncode == 0, "lbstat: %s" % r.stderr
    return json.loads(r.stdout.splitlines()[0])


def backend_field(js, field, svc="web"):
    for s in js["services"]:
        if s["name"] == svc:
            return {b["name"]: b[field] for b in s["backends"]}
    raise AssertionError("no service %s in %s" % (svc, js))


def wait_lbstat(d, pred, timeout):
    """Samples until pred(sample) holds or timeout; returns the last one."""
    deadline = time.monotonic() + timeout
    while True:
        js = lbstat(d)
        if pred(js) or time.monotonic() >= deadline:
            return js
        time.sleep(0.05)


# -- /proc -------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of pid in seconds, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def fd_kinds(pid):
    """Counter of pid's descriptors by kind: socket, pipe, anon (epoll,
    signalfd...), file."""
    out = collections.Counter()
    base = "/proc/%d/fd" % pid
    for fd in os.listdir(base):
        try:
            link = os.readlink(os.path.join(base, fd))
        except OSError:
            continue
        if link.startswith("socket:"):
            out["socket"] += 1
        elif link.startswith("pipe:"):
            out["pipe"] += 1
        elif link.startswith("anon_inode:"):
            out["anon"] += 1
        else:
            out["file"] += 1
    return out


def worker_inodes(d):
    """{worker pid: set of socket inodes} (one /proc scan per worker)."""
    return {pid: lbdtest.socket_inodes(pid) for pid in d.workers()}


def owners(d, socks):
    """{sock: worker pid or None}, looking each worker's descriptors up
    once rather than once per socket."""
    table = worker_inodes(d)
    out = {}
    for s in socks:
        inode = lbdtest.server_inode(s)
        out[s] = next((p for p, ins in table.items() if inode in ins), None)
    return out


def proc_state(pid):
    st = lbdtest.proc_stat(pid)
    return st[0] if st else None


# -- many sockets at once ----------------------------------------------------

def open_many(port, n, rcvbuf=None, timeout=10.0):
    """n connections to 127.0.0.1:port, opened one after the other (the
    kernel completes a handshake into the listen queue whether or not
    anyone accepts).  Returns the sockets, non-blocking."""
    socks = []
    try:
        for _ in range(n):
            s = lbdtest.connect(port, timeout=timeout, rcvbuf=rcvbuf)
            s.setblocking(False)
            socks.append(s)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


class Got:
    """What one socket delivered during gather(): data and how it ended
    (None = still open, "eof" or "reset")."""

    __slots__ = ("data", "end")

    def __init__(self):
        self.data = bytearray()
        self.end = None


def gather(socks, done, timeout, send=None, keep=0):
    """Reads from every socket of socks (non-blocking) until done(got) holds
    for each, or timeout.  send: {sock: bytes} written first.  keep: read at
    most this many bytes per socket (0 = no limit; past it the socket is
    left alone, as a slow client would).  Returns {sock: Got}."""
    got = {s: Got() for s in socks}
    sel = selectors.DefaultSelector()
    pending = set()
    for s in socks:
        if send and s in send:
            try:
                s.sendall(send[s])	# small payloads: fit in the buffer
            except BlockingIOError:
                raise AssertionError("send buffer full for a small payload")
            except OSError:
                got[s].end = "reset"
                continue
        if not done(got[s]):
            sel.register(s, selectors.EVENT_READ)
            pending.add(s)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(min(left, 0.5)):
                s = key.fileobj
                g = got[s]
                want = 262144 if not keep else max(1, min(262144,
                                                          keep - len(g.data)))
                try:
                    d = s.recv(want)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    g.end = "reset"
                    d = None
                else:
                    if not d:
                        g.end = "eof"
                    else:
                        g.data += d
                if g.end or done(g) or (keep and len(g.data) >= keep):
                    sel.unregister(s)
                    pending.discard(s)
    finally:
        sel.close()
    return got


def line_done(g):
    return b"\n" in g.data or g.end is not None


def first_line(g):
    i = g.data.find(b"\n")
    return bytes(g.data[:i]).decode(errors="replace") if i >= 0 else None


def echo_all(socks, timeout, tag=b"echo"):
    """Sends a distinct line on every socket (whose greeting was already
    read) and checks each echo.  Returns the sockets that failed."""
    msgs = {s: b"%s %d\n" % (tag, i) for i, s in enumerate(socks)}
    got = gather(socks, line_done, timeout, send=msgs)
    return [s for s in socks if bytes(got[s].data) != msgs[s]]


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# -- an lbd under a prefix, with an environment ----------------------------

class FaultLbd(lbdtest.Lbd):
    """lbdtest.Lbd with:
        prefix   argv run before lbd (e.g. valgrind and its options)
        ready    "workers" (as Lbd: titled workers), "children" (the master
                 has that many children, titles not needed: valgrind) or
                 "listen" (the master listens; workers may crash-loop)
    """

    def __init__(self, tmp_path, services, workers=2, globals_=None,
                 extra_env=None, prefix=None, ready="workers"):
        super().__init__(tmp_path, services, workers=workers,
                         globals_=globals_, extra_env=extra_env)
        os.makedirs(self.tmp_path, exist_ok=True)
        self.prefix = tuple(prefix or ())
        self.ready = ready

    def children(self):
        kids = lbdtest.children(self.pid)
        self.seen_workers.update(kids)
        return [pid for pid, _ in kids]

    def _wait_ready(self, timeout):
        if self.ready == "workers":
            return super()._wait_ready(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise lbdtest.LbdFailed("lbd exited with %s during start-up\n"
                                        "%s" % (self.proc.returncode,
                                                self.describe()))
            ok = all(lbdtest.listening(self.pid, p)
                     for p in self.port.values())
            if self.ready == "children":
                ok = ok and len(self.children()) == self.workers_wanted
            if ok:
                return
            time.sleep(0.05)
        raise lbdtest.LbdFailed("lbd not ready after %.1fs\n%s"
                                % (timeout, self.describe()))


# -- the slow download backend -----------------------------------------------

class SlowSource:
    """faults_backend.py in its own process: .port, .address, .name,
    .expected(start, n)."""

    def __init__(self, name, seed, chunk, interval_ms, total):
        import select
        import sys
        self.name = name
        self.seed = seed
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(lbdtest.HERE, "faults_backend.py"),
             str(seed), str(chunk), str(interval_ms), str(total)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        r, _, _ = select.select([self.proc.stdout], [], [], 15.0)
        line = self.proc.stdout.readline() if r else b""
        if not line.startswith(b"READY "):
            self.stop()
            raise RuntimeError("faults_backend.py did not start: %r" % line)
        self.port = int(line.split()[1])
        self.address = "127.0.0.1:%d" % self.port

    def expected(self, start, n):
        import faults_backend
        return faults_backend.expected(self.seed, start, n)

    def stop(self):
        lbdtest.stop_child(self.proc)


# -- descriptor limits -------------------------------------------------------

def proc_ids(pid):
    """(uid, gid) of pid (the real ones)."""
    uid = gid = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
            elif line.startswith("Gid:"):
                gid = int(line.split()[1])
    return uid, gid


def nofile_limit(pid):
    """(soft, hard) RLIMIT_NOFILE of pid, from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                parts = line.split()
                return int(parts[3]), int(parts[4])
    return None


def set_nofile(pid, soft, hard):
    """prlimit --pid pid --nofile=soft:hard.  Changing another user's
    limits needs CAP_SYS_RESOURCE, which a container's root may lack: then
    prlimit runs as the target's own user (setpriv), which may lower both
    limits and raise the soft one back up to the hard one."""
    uid, gid = proc_ids(pid)
    cmd = ["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (soft, hard)]
    if uid != os.getuid() and os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
               "--clear-groups"] + cmd
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, "%s: %s" % (" ".join(cmd), r.stderr)
    got = nofile_limit(pid)
    assert got == (soft, hard), "limits of %d are %s after %s" % (
        pid, got, " ".join(cmd))
