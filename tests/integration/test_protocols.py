"""Real protocols through lbd: PostgreSQL (pgbench, a new connection per
transaction) and Redis (redis-benchmark, and a key-by-key correctness
check).  The servers are the Debian packages' binaries, started by the test
in temporary directories on free loopback ports -- never the system
services.  Packages: postgresql (postgresql-15 with pgbench), redis-server,
redis-tools.  A test whose binaries are missing is skipped.  Run with -s to
see the figures (through lbd and direct).
"""

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

import lbdtest
from lbdtest import SCALE, service


def wait_port(port, proc, timeout):
    """Until something accepts on 127.0.0.1:port (or proc exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(proc, sigs=(signal.SIGTERM, signal.SIGKILL), wait=15.0):
    """Stops a server this test started, by its pid, one signal at a time."""
    for sig in sigs:
        if proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


# -- PostgreSQL --------------------------------------------------------------

def pg_bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda p: [int(x) for x in re.findall(r"\d+", p)],
                    reverse=True):
        if all(os.access(os.path.join(d, b), os.X_OK)
               for b in ("initdb", "postgres", "pgbench")):
            return d
    return None


def run_as(uid, gid):
    """argv prefix to run a command as uid:gid (postgres will not run as
    root); none when not root."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
            "--clear-groups", "--"]


@pytest.fixture
def postgres():
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed "
                    "(Debian package postgresql)")
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pw = pwd.getpwnam("nobody")
    top = tempfile.mkdtemp(prefix="lbd-pg-")
    os.chmod(top, 0o755)
    os.chown(top, pw.pw_uid, pw.pw_gid)
    data = os.path.join(top, "data")
    prefix = run_as(pw.pw_uid, pw.pw_gid)
    env = dict(os.environ, LC_ALL="C", LANG="C")
    proc = None
    try:
        r = subprocess.run(prefix + [os.path.join(bindir, "initdb"), "-D",
                                     data, "-U", "postgres", "--auth=trust",
                                     "-E", "UTF8", "--no-sync"],
                           cwd=top, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True,
                           timeout=120 * SCALE)
        assert r.returncode == 0, "initdb: %s%s" % (r.stdout, r.stderr)
        for _ in range(3):
            port = lbdtest.free_port()
            log = open(os.path.join(top, "postgres.log"), "ab")
            proc = subprocess.Popen(
                prefix + [os.path.join(bindir, "postgres"), "-D", data,
                          "-k", top, "-p", str(port),
                          "-c", "listen_addresses=127.0.0.1",
                          "-c", "max_connections=200",
                          "-c", "fsync=off", "-c", "synchronous_commit=off",
                          "-c", "full_page_writes=off"],
                cwd=top, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=log)
            log.close()
            if wait_port(port, proc, 30 * SCALE):
                break
            stop(proc, (signal.SIGQUIT, signal.SIGKILL), 10)
            proc = None
        if proc is None:
            with open(os.path.join(top, "postgres.log")) as f:
                pytest.fail("postgres did not start:\n" + f.read()[-3000:])
        yield bindir, port
    finally:
        if proc is not None:
            # fast shutdown, then immediate, then (only if stuck) kill
            stop(proc, (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL), 15)
        shutil.rmtree(top, ignore_errors=True)


def pgbench(bindir, port, *args):
    """Runs pgbench against 127.0.0.1:port; returns (exit status, output,
    figures: dict of processed, failed, tps)."""
    cmd = [os.path.join(bindir, "pgbench"), "-h", "127.0.0.1", "-p",
           str(port), "-U", "postgres"] + list(args) + ["postgres"]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=120 * SCALE,
                       env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
    out = r.stdout + r.stderr
    fig = {}
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    if m:
        fig["processed"] = int(m.group(1))
    m = re.search(r"number of failed transactions: (\d+)", out)
    if m:
        fig["failed"] = int(m.group(1))
    m = re.search(r"^tps = ([\d.]+)", out, re.M)
    if m:
        fig["tps"] = float(m.group(1))
    return r.returncode, out, fig


def test_pgbench_new_connection_per_transaction(postgres, lbd):
    bindir, pg_port = postgres
    addr = "127.0.0.1:%d" % pg_port
    # one server listed twice: round robin alternates between two backend
    # entries, and every transaction still reaches the same database
    d = lbd([service("pg", [("pg1", addr), ("pg2", addr)])], workers=2)
    rc, out, _ = pgbench(bindir, pg_port, "-i", "-q", "-s", "1")
    assert rc == 0, "pgbench -i: %s" % out
    runs = {}
    for via, port in (("lbd", d.port["pg"]), ("direct", pg_port)):
        rc, out, fig = pgbench(bindir, port, "-C", "-c", "8", "-j", "2",
                               "-T", "5")
        runs[via] = (rc, out, fig)
    for via in ("lbd", "direct"):
        rc, out, fig = runs[via]
        print("pgbench -C -c 8 -j 2 -T 5 %s: %s" % (via, fig))
    rc, out, fig = runs["lbd"]
    assert rc == 0, "pgbench through lbd exited %d:\n%s\n%s" % (
        rc, out[-3000:], d.describe())
    assert fig.get("failed") == 0, "failed transactions through lbd:\n" + out
    assert fig.get("processed", 0) > 0, out
    for via in ("lbd", "direct"):
        assert "error" not in runs[via][1].lower(), runs[via][1][-3000:]
    stats = os.path.join(d.runtime_dir, "lbd.stats")
    js = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-j",
                         "-s", stats], capture_output=True, text=True,
                        timeout=20 * SCALE).stdout
    conns = [int(x) for x in re.findall(r'"connections":(\d+)', js)]
    print("lbd backends: connections %s" % conns)
    # -C: one connection per transaction (and one per client to start)
    assert sum(conns) >= fig["processed"], (conns, fig)
    assert min(conns) > 0, "round robin did not use both entries: %s" % conns


# -- Redis ---------------------------------------------------------------------

class Resp:
    """A minimal RESP client on one socket."""

    def __init__(self, port, timeout=10.0):
        self.sock = lbdtest.connect(port, timeout)
        self.f = self.sock.makefile("rb")

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, *cmds):
        self.sock.sendall(b"".join(self.encode(*c) for c in cmds))

    def reply(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise EOFError("connection closed mid-reply: %r" % line)
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise AssertionError("redis error: %s" % rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise AssertionError("bad RESP line %r" % line)

    def call(self, *args):
        self.send(args)
        return self.reply()

    def close(self):
        self.f.close()
        self.sock.close()


@pytest.fixture
def redis_servers():
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server not installed (Debian package redis-server)")
    top = tempfile.mkdtemp(prefix="lbd-redis-")
    procs = []

    def start():
        for _ in range(3):
            port = lbdtest.free_port()
            d = os.path.join(top, str(port))
            os.makedirs(d, exist_ok=True)
            log = open(os.path.join(d, "redis.log"), "ab")
            p = subprocess.Popen(
                [server, "--port", str(port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", d, "--maxclients", "1000"],
                cwd=d, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
            procs.append(p)
            if wait_port(port, p, 20 * SCALE):
                r = Resp(port)
                try:
                    assert r.call("PING") == "PONG"
                finally:
                    r.close()
                return port
            stop(p)
        pytest.fail("redis-server did not start")

    try:
        yield start
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(top, ignore_errors=True)


BENCH_LINE = re.compile(r"^(SET|GET|INCR): ([\d.]+) requests per second",
                        re.M)


def redis_benchmark(port):
    bench = shutil.which("redis-benchmark")
    r = subprocess.run([bench, "-h", "127.0.0.1", "-p", str(port), "-n",
                        "20000", "-c", "50", "-t", "set,get,incr", "-q"],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120 * SCALE)
    out = (r.stdout + r.stderr).decode(errors="replace").replace("\r", "\n")
    rps = {m.group(1): float(m.group(2)) for m in BENCH_LINE.finditer(out)}
    return r.returncode, out, rps


def test_redis_benchmark(redis_servers, lbd):
    if shutil.which("redis-benchmark") is None:
        pytest.skip("redis-benchmark not installed (Debian package "
                    "redis-tools)")
    p1, p2 = redis_servers(), redis_servers()
    d = lbd([service("kv", [("r1", "127.0.0.1:%d" % p1),
                            ("r2", "127.0.0.1:%d" % p2)])], workers=2)
    res = {}
    for via, port in (("lbd", d.port["kv"]), ("direct", p1)):
        res[via] = redis_benchmark(port)
        print("redis-benchmark -n 20000 -c 50 %s: %s requests/s"
              % (via, res[via][2]))
    for via, (rc, out, rps) in res.items():
        final = "\n".join(l for l in out.splitlines()
                          if l.strip() and "rps=" not in l)
        assert rc == 0, "redis-benchmark %s exited %d:\n%s" % (via, rc, final)
        bad = [l for l in final.splitlines()
               if re.search(r"error|ERR|closed|refused|reset", l, re.I)]
        assert not bad, "redis-benchmark %s: %s\n%s" % (via, bad,
                                                         d.describe())
        assert set(rps) == {"SET", "GET", "INCR"}, final
        assert all(v > 0 for v in rps.values()), rps


def test_redis_keys_land_and_read_back(redis_servers, lbd):
    p1, p2 = redis_servers(), redis_servers()
    a1, a2 = "127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2
    d = lbd([service("kv", [("r1", a1), ("r2", a2)]),
             service("one", [("o1", a1), ("o2", a1)])], workers=2)
    n = 1000

    def one_call(port, *args):
        r = Resp(port)
        try:
            return r.call(*args)
        finally:
            r.close()

    # 1. a new connection per SET through "kv": round robin spreads the
    # keys over the two instances, each key on exactly one of them
    for i in range(n):
        assert one_call(d.port["kv"], "SET", "k%d" % i, "v%d" % i) == "OK"
    keys = ["k%d" % i for i in range(n)]
    on = {}
    for port in (p1, p2):
        r = Resp(port)
        try:
            on[port] = r.call("MGET", *keys)
        finally:
            r.close()
    both = [k for k, x, y in zip(keys, on[p1], on[p2]) if x and y]
    neither = [k for k, x, y in zip(keys, on[p1], on[p2])
               if x is None and y is None]
    wrong = [k for i, (k, x, y) in enumerate(zip(keys, on[p1], on[p2]))
             if (x or y) != b"v%d" % i]
    split = (sum(x is not None for x in on[p1]),
             sum(y is not None for y in on[p2]))
    print("%d SETs through lbd, one connection each: %d on r1, %d on r2"
          % (n, split[0], split[1]))
    assert not both and not neither and not wrong, (both[:5], neither[:5],
                                                     wrong[:5])
    assert abs(split[0] - split[1]) <= 4, split

    # 2. through "one" (the same instance twice): SET and GET back, a new
    # connection for every command
    for i in range(n):
        assert one_call(d.port["one"], "SET", "o%d" % i, "w%d" % i) == "OK"
    back = [one_call(d.port["one"], "GET", "o%d" % i) for i in range(n)]
    bad = [i for i in range(n) if back[i] != b"w%d" % i]
    assert not bad, "GET through lbd: %d wrong, first o%d -> %r" % (
        len(bad), bad[0], back[bad[0]])

    # 3. pipelined on one connection: 20000 commands in flight, values of
    # ragged sizes, every reply in order
    r = Resp(d.port["one"], timeout=30)
    try:
        vals = [os.urandom(1 + (i * 7919) % 1500).hex().encode()
                for i in range(10000)]
        cmds = [("SET", "p%d" % i, v) for i, v in enumerate(vals)]
        cmds += [("GET", "p%d" % i) for i in range(10000)]
        for k in range(0, len(cmds), 1000):
            r.send(*cmds[k:k + 1000])
            replies = [r.reply() for _ in range(1000)]
            for j, rep in enumerate(replies):
                i = k + j
                want = "OK" if i < 10000 else vals[i - 10000]
                assert rep == want, "pipelined reply %d: %r" % (i, rep)
    finally:
        r.close()
    print("through lbd: %d SET + GET on new connections, 20000 pipelined "
          "commands (%.1f MB of values) all correct"
          % (n, 2 * sum(len(v) for v in vals) / 1e6))
