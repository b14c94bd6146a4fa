"""Harness for lbd's integration tests: backends, lbd instances, /proc
inspection and small socket helpers.  Stdlib only.

Every wait here is bounded; every process killed is one this module started
(or a worker whose parent is an lbd master this module started), by PID.
"""

import grp
import itertools
import os
import pwd
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BACKEND = os.path.join(HERE, "backend.py")

SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "Sanitizer has encountered a fatal error",
    "Sanitizer CHECK failed",
)


def build_dir():
    return os.path.abspath(os.environ.get("LBD_BUILD",
                                          os.path.join(REPO, "build")))


def timeout_scale():
    """Sanitizer builds run 2-3x slower: stretch upper time bounds."""
    env = os.environ.get("LBD_TEST_TIMEOUT_SCALE")
    if env:
        return float(env)
    return 3.0 if "asan" in os.path.basename(build_dir()) else 1.0


SCALE = timeout_scale()


def version():
    """VERSION from the GNUmakefile, or None."""
    try:
        with open(os.path.join(REPO, "GNUmakefile")) as f:
            for line in f:
                m = re.match(r"\s*VERSION\s*:?=\s*(\S+)", line)
                if m:
                    return m.group(1)
    except OSError:
        pass
    return None


# -- clients -----------------------------------------------------------------

def run_parallel(fn, args_list, threads):
    """fn(*args) for each args on a pool of threads; returns the results in
    order, an exception object standing in for a call that raised."""
    results = [None] * len(args_list)
    lock = threading.Lock()
    todo = list(enumerate(args_list))

    def loop():
        while True:
            with lock:
                if not todo:
                    return
                i, args = todo.pop(0)
            try:
                results[i] = fn(*args)
            except Exception as e:		# reported by the caller
                results[i] = e

    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(300)
    return results


# -- ports -------------------------------------------------------------------

_handed_out = set()


def free_port():
    """A loopback port nobody listens on right now (bind 0, read, close),
    and never one this process was given before: the kernel hands the same
    ephemeral port out again at once, and two callers that each ask for a
    port (nginx's two listeners, say) must not get the same one."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh loopback port after 100 tries")


def dead_port():
    """A port that refuses connections: bound, never listening.  Returns
    (socket, port); the port stays reserved while the socket is open."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


# -- /proc -------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid, starttime) of pid, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def proc_title(pid):
    """/proc/PID/cmdline as ps shows it (NULs to spaces, padding dropped)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def children(ppid):
    """[(pid, starttime)] of the live (non-zombie) children of ppid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st and st[1] == ppid and st[0] != "Z":
            out.append((int(name), st[2]))
    return out


def is_dead(pid):
    """True once pid has exited (a zombie counts as dead)."""
    st = proc_stat(pid)
    return st is None or st[0] in ("Z", "X")


def socket_inodes(pid):
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
    except OSError:
        pass
    return inodes


# /proc/net/tcp can hold tens of thousands of TIME_WAIT rows on a busy
# machine (0.1 s a read), so sockets are looked up through sock_diag
# netlink, which filters in the kernel.

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10
INET_DIAG_NOCOOKIE = 0xFFFFFFFF


def _diag(states, sport=0, dport=0, dump=True):
    """inet_diag query for IPv4 TCP sockets: a dump of the given states, or
    (dump=False) the one socket 127.0.0.1:sport <-> 127.0.0.1:dport.
    Returns [(state, sport, dport, inode)]."""
    addr = socket.inet_aton("127.0.0.1") + bytes(12) if not dump \
        else bytes(16)
    sockid = struct.pack("!HH16s16s", sport, dport, addr, addr)
    sockid += struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)
    req = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 0,
                      states) + sockid
    flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
    msg = struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, flags,
                      1, 0) + req
    out = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                       NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(5)
        nl.send(msg)
        for _ in range(100000):
            data = nl.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                length, typ = struct.unpack_from("=IH", data, off)
                if typ in (NLMSG_DONE, NLMSG_ERROR):
                    return out
                body = off + 16
                # inet_diag_msg: family, state, timer, retrans, sockid (48),
                # expires, rqueue, wqueue, uid, inode
                sp, dp = struct.unpack_from("!HH", data, body + 4)
                inode = struct.unpack_from("=I", data, body + 68)[0]
                out.append((data[body + 1], sp, dp, inode))
                off += (length + 3) & ~3
            if not dump:
                return out
    return out


def listening(pid, port):
    """True when pid holds a LISTEN socket on 127.0.0.1:port."""
    inodes = socket_inodes(pid)
    return any(sp == port and inode in inodes
               for _, sp, _, inode in _diag(1 << TCP_LISTEN))


def server_inode(client_sock):
    """Inode of the socket at the other end of a loopback connection."""
    lport = client_sock.getsockname()[1]
    rport = client_sock.getpeername()[1]
    rows = _diag(0xFFF, sport=rport, dport=lport, dump=False)
    return rows[0][3] if rows else None


# -- sockets -----------------------------------------------------------------

def connect(port, timeout=5.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout * SCALE)
    try:
        s.connect(("127.0.0.1", port))
    except BaseException:
        s.close()
        raise
    return s


def recv_line(s, limit=4096):
    """Bytes up to and including the first newline; b"" at EOF before any."""
    buf = bytearray()
    while len(buf) < limit:
        b = s.recv(1)
        if not b:
            break
        buf += b
        if b == b"\n":
            break
    return bytes(buf)


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(min(n - len(buf), 262144))
        if not d:
            raise EOFError("EOF after %d of %d bytes" % (len(buf), n))
        buf += d
    return bytes(buf)


def recv_until_eof(s, limit=1 << 30):
    buf = bytearray()
    while len(buf) < limit:
        d = s.recv(262144)
        if not d:
            break
        buf += d
    return bytes(buf)


def wait_closed(s, timeout):
    """Waits for EOF or a reset on s, discarding data.  Returns how it ended
    ("eof" or "reset") or None when it is still open after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return None
        except ConnectionError:
            return "reset"
        if not d:
            return "eof"


def ident(port, payload=b"ping\n", timeout=5.0):
    """One connection to an ident service: returns the backend's name after
    checking that payload is echoed back."""
    s = connect(port, timeout)
    try:
        name = recv_line(s)
        if not name.endswith(b"\n"):
            raise EOFError("no name line (got %r)" % name)
        if payload:
            s.sendall(payload)
            echo = recv_exact(s, len(payload))
            if echo != payload:
                raise AssertionError("echo %r != %r" % (echo, payload))
        return name[:-1].decode()
    finally:
        s.close()


def poll_until(pred, timeout, step=0.02):
    """Calls pred until it returns a true value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


# -- backends ----------------------------------------------------------------

class Backend:
    """backend.py in its own process; .port, .name, .log_lines()."""

    serial = itertools.count(1)

    def __init__(self, workdir, mode, *args):
        n = next(self.serial)
        self.mode = mode
        self.name = args[0] if mode == "ident" else "%s%d" % (mode, n)
        self.log_path = os.path.join(workdir, "backend%d-%s.log"
                                     % (n, self.name))
        self.proc = subprocess.Popen(
            [sys.executable, BACKEND, "0", mode] + [str(a) for a in args]
            + ["--log", self.log_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        line = self._readline(15.0)
        if not line.startswith(b"READY "):
            self.stop()
            raise RuntimeError("backend %s %s did not start: %r"
                               % (mode, args, line))
        self.port = int(line.split()[1])
        self.address = "127.0.0.1:%d" % self.port

    def _readline(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if r else b""

    def log_lines(self):
        try:
            with open(self.log_path) as f:
                return [tuple(l.split()) for l in f]
        except FileNotFoundError:
            return []

    def stop(self):
        stop_child(self.proc)


def stop_child(proc):
    """Kill a helper process started with stdout=PIPE and reap it."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    proc.stdout.close()


# -- configuration -----------------------------------------------------------

def identity():
    """user, group and admin-group lines for the config."""
    if os.geteuid() == 0:
        return "nobody", "nogroup", "root"
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return user, group, group


def q(text):
    return '"%s"' % text


def value(v):
    """A Python value as config text: strings quoted, booleans and numbers
    as they are, lists in braces."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "{ %s }" % ", ".join(value(x) for x in v)
    return q(v) if isinstance(v, str) else str(v)


def service(name, backends, **options):
    """A service dict for Lbd.  backends: Backend objects or (name, address
    [, weight]) tuples; options: config keys with '_' for '-'."""
    rows = []
    for b in backends:
        if isinstance(b, Backend):
            rows.append((b.name, b.address, 1))
        else:
            # (name, address[, weight[, {key: value}]]): more backend keys
            rows.append((b[0], b[1], b[2] if len(b) > 2 else 1)
                        + ((b[3],) if len(b) > 3 else ()))
    opts = {k.replace("_", "-"): value(v) for k, v in options.items()}
    return {"name": name, "backends": rows, "options": opts}


def render_config(runtime_dir, services, workers=2, globals_=None):
    """libconfuse text for services: a list of dicts with keys name, listen
    (list of "host:port"), backends (list of (name, address, weight)),
    options (dict of key -> rendered value) and optional health (dict)."""
    user, group, admin = identity()
    lines = [
        "# written by tests/integration/lbdtest.py",
        "workers = %d" % workers,
        "user = %s" % q(user),
        "group = %s" % q(group),
        "admin-group = %s" % q(admin),
        "runtime-dir = %s" % q(runtime_dir),
    ]
    for k, v in (globals_ or {}).items():
        lines.append("%s = %s" % (k, v))
    for svc in services:
        lines.append("")
        lines.append("service %s {" % svc["name"])
        lines.append("    listen = { %s }"
                     % ", ".join(q(a) for a in svc["listen"]))
        for k, v in svc.get("options", {}).items():
            lines.append("    %s = %s" % (k, v))
        if svc.get("health"):
            lines.append("    health {")
            for k, v in svc["health"].items():
                lines.append("        %s = %s" % (k, v))
            lines.append("    }")
        for name, addr, weight, *more in svc["backends"]:
            extra = "".join("  %s = %s" % (k, value(v))
                            for k, v in (more[0] if more else {}).items())
            lines.append("    backend %s { address = %s  weight = %d%s }"
                         % (name, q(addr), weight, extra))
        lines.append("}")
    return "\n".join(lines) + "\n"


# -- lbd ---------------------------------------------------------------------

class LbdFailed(Exception):
    pass


class Lbd:
    """One lbd daemon started in the foreground (-d) with its own config.

    services: list of dicts as for render_config, without "listen" (one
    loopback port each is allocated here; .port[name] gives it).
    """

    START_TRIES = 3

    def __init__(self, tmp_path, services, workers=2, globals_=None,
                 extra_env=None):
        self.tmp_path = str(tmp_path)
        self.services = services
        self.workers_wanted = workers
        self.globals = dict(globals_ or {})
        self.globals.setdefault("shutdown-grace", q("10s"))
        self.extra_env = extra_env or {}
        self.proc = None
        self.seen_workers = set()	# (pid, starttime) of every worker seen
        # runtime-dir must be reachable by the unprivileged user lbd drops
        # to, and pytest's tmp_path sits under a 0700 directory.
        self.workdir = tempfile.mkdtemp(prefix="lbd-it-")
        os.chmod(self.workdir, 0o755)
        self.runtime_dir = os.path.join(self.workdir, "run")
        self.conf_path = os.path.join(self.workdir, "lbd.conf")
        self.stderr_path = os.path.join(self.tmp_path, "lbd.stderr")
        self.stderr_offset = 0
        self.returncode = None

    # start-up ---------------------------------------------------------------

    # What subclasses change: where a service listens, and what runs lbd.
    prefix = ()

    def listen_for(self, svc):
        """(port, listen addresses) for svc on this start attempt."""
        port = free_port()
        return port, ["127.0.0.1:%d" % port]

    def start(self, timeout=10.0):
        for attempt in range(self.START_TRIES):
            self.port = {}
            svcs = []
            for svc in self.services:
                port, listen = self.listen_for(svc)
                self.port[svc["name"]] = port
                svcs.append(dict(svc, listen=listen))
            self.conf_text = render_config(self.runtime_dir, svcs,
                                           self.workers_wanted, self.globals)
            with open(self.conf_path, "w") as f:
                f.write(self.conf_text)
            with open(self.stderr_path, "ab") as err:
                self.stderr_offset = err.tell()
                env = dict(os.environ)
                env.pop("LBD_CONF", None)
                env.update(self.extra_env)
                self.proc = subprocess.Popen(
                    list(self.prefix) + [os.path.join(build_dir(), "lbd"),
                                         "-d", "-f", self.conf_path],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                    env=env)
            self.pid = self.proc.pid
            try:
                self._wait_ready(timeout * SCALE)
                return self
            except LbdFailed:
                text = self.stderr()
                if self.proc.poll() is not None and "in use" in text \
                        and attempt + 1 < self.START_TRIES:
                    continue		# lost a port race: new ports, again
                self.kill_all()
                raise
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LbdFailed("lbd exited with %s during start-up\n%s"
                                % (self.proc.returncode, self.describe()))
            ws = self.workers()
            if (len(ws) == self.workers_wanted
                    and all(listening(self.pid, p)
                            for p in self.port.values())):
                return
            time.sleep(0.02)
        raise LbdFailed("lbd not ready after %.1fs: workers %s\n%s"
                        % (timeout, self.workers(), self.describe()))

    # inspection -------------------------------------------------------------

    def workers(self):
        """{pid: title} of the master's children whose title says worker.
        Every child seen is remembered for the stray check at teardown."""
        out = {}
        for pid, start in children(self.pid):
            self.seen_workers.add((pid, start))
            title = proc_title(pid)
            # a prefix match: test_process_titles checks the exact title,
            # the other tests should not fail on padding after it
            if title and re.match(r"lbd: worker \d+(\s|$)", title):
                out[pid] = title
        return out

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self.stderr_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self):
        """The config and the tail of lbd's stderr, for assertion messages."""
        err = self.stderr()
        if len(err) > 6000:
            err = "...\n" + err[-6000:]
        return ("--- %s ---\n%s--- lbd stderr ---\n%s"
                % (self.conf_path, getattr(self, "conf_text", ""), err))

    def owner_of(self, client_sock):
        """PID of the worker holding the lbd side of client_sock, or None."""
        inode = server_inode(client_sock)
        if inode:
            for pid in self.workers():
                if inode in socket_inodes(pid):
                    return pid
        return None

    # stopping ---------------------------------------------------------------

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Waits for the master to exit; returns its status or None."""
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stray_workers(self):
        """Workers seen during the test that still run after the master."""
        stray = []
        for pid, start in self.seen_workers:
            st = proc_stat(pid)
            if st and st[2] == start and st[0] != "Z":
                stray.append(pid)
        return stray

    def kill_all(self):
        """SIGKILL the master and every worker this instance saw."""
        for pid in list(self.workers()) + self.stray_workers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def finish(self, stop_timeout=15.0):
        """Teardown: SIGTERM, wait, then check for strays and sanitizer
        reports.  Returns a list of problems (empty when all is well)."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            self.workers()		# remember the current workers
            os.kill(self.pid, signal.SIGTERM)
            if self.wait(stop_timeout * SCALE) is None:
                problems.append("lbd master %d ignored SIGTERM for %.0fs"
                                % (self.pid, stop_timeout * SCALE))
                self.kill_all()
        stray = poll_until(lambda: not self.stray_workers(), 3.0 * SCALE)
        if not stray:
            problems.append("workers %s outlived the master"
                            % self.stray_workers())
            for pid in self.stray_workers():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        problems.extend(self.sanitizer_reports())
        shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

    def sanitizer_reports(self):
        text = self.stderr()
        found = []
        for pat in SANITIZER_PATTERNS:
            i = text.find(pat)
            if i >= 0:
                found.append("sanitizer report in lbd's stderr (%s):\n%s"
                             % (pat, text[max(0, i - 200):i + 3000]))
        return found


# -- fixtures ----------------------------------------------------------------

def globals_from(kwargs):
    """Config globals from keyword arguments ('_' for '-')."""
    return {k.replace("_", "-"): value(v) for k, v in kwargs.items()}


def limited_lbd_fixture(tmp_path, nofile):
    """Body of an lbd fixture (yield from) whose daemon runs under
    prlimit --nofile=nofile; skips without prlimit.  The test gets
    start(services, workers=1)."""
    import pytest
    import shutil
    if not shutil.which("prlimit"):
        pytest.skip("no prlimit (util-linux)")

    class LimitedLbd(Lbd):
        prefix = ("prlimit", "--nofile=%d:%d" % (nofile, nofile), "--")

    def make(i, services, workers=1):
        return LimitedLbd(tmp_path / ("lbd%d" % i), services, workers=workers)

    yield from lbd_fixture(make)


def lbd_fixture(make):
    """Body of an lbd fixture (use with yield from): the test gets
    start(*args, timeout=10.0, **kwargs), which builds an instance with
    make(index, *args, **kwargs) and starts it; at teardown every instance
    is finished, and what any of them reports fails the test."""
    import pytest
    instances = []

    def start(*args, timeout=10.0, **kwargs):
        inst = make(len(instances), *args, **kwargs)
        os.makedirs(inst.tmp_path, exist_ok=True)
        instances.append(inst)
        return inst.start(timeout)

    yield start
    problems = [p for inst in instances for p in inst.finish()]
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
