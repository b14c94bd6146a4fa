"""Active/active lbd nodes behind ECMP, announced by BGP with BIRD 2
(issue 19), end to end in network namespaces this test creates:

    client --- router (BIRD, ECMP multipath, L4 hash) ---+--- node1 (lbd, BIRD, health loop) ---+
                                                         +--- node2 (lbd, BIRD, health loop) ---+--- backends

The nodes run contrib/bird/bird-node.conf and contrib/bird/lbd-bird-health.sh,
the router contrib/bird/bird-router.conf and contrib/bird/pin-flows.nft, each
with this topology's addresses put into its "define" lines.  Checks, in turn:

- both nodes up: 1000 connections from many source ports all succeed and
  each node takes 30-70% of them; IPv6 works too; `source` sends each
  client address to one backend whichever node its flows reach;
- lbd SIGKILLed on node1: its route is withdrawn within 5 s, every new
  connection after that succeeds through node2, and a long download open
  through node2 completes with the right sha256;
- lbd restarted: the route comes back and new flows spread again;
- planned drain of node2 (withdraw, then stop lbd gracefully) while clients
  keep connecting and a download runs through node2: no client error at all.

Run with -s for the figures (failover time, spread).  Skipped with the reason
when namespaces, BIRD or nft are not available.
"""

import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import lbdtest
from lbdtest import SCALE, q

sys.path.insert(0, lbdtest.HERE)
import backend as backend_mod		# noqa: E402  (stream_bytes, for sha256)

CONTRIB = os.path.join(lbdtest.REPO, "contrib", "bird")
HEALTH = os.path.join(CONTRIB, "lbd-bird-health.sh")

VIP4, VIP6 = "10.77.100.1", "fd77:100::1"
CLIENT4, CLIENT6 = "10.77.0.2", "fd77::2"
SOURCES = ["10.77.0.%d" % i for i in range(100, 140)]
BACKENDS = [("app1", "10.77.50.1"), ("app2", "10.77.50.2"),
            ("app3", "10.77.50.3")]
DL = ("dl", "10.77.50.4")
DL_SIZE = 24 << 20
PORT_RR, PORT_SRC, PORT_DL, BE_PORT = 80, 81, 82, 8000
CLONE_NEWNET = 0x40000000
NODES = {	# name: (router side, node side, backend-facing, on router link)
    "node1": ("10.77.1.1", "10.77.1.2", "10.77.11.1", "fd77:1::"),
    "node2": ("10.77.2.1", "10.77.2.2", "10.77.12.1", "fd77:2::"),
}
PEER_NODE = {NODES[n][2]: n for n in NODES}	# backend sees -> node


# -- plumbing ------------------------------------------------------------------

def run(*cmd, check=True):
    p = subprocess.run(list(cmd), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=20)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                                  p.stderr.strip()))
    return p


_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def netns(fd, home):
    """Runs the body with this thread in the network namespace fd (sockets
    made there stay there), then back in home."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    try:
        yield
    finally:
        if _libc.setns(home, CLONE_NEWNET) != 0:
            raise SystemExit("setns back to the test's namespace failed")


def set_defines(text, values, end=";"):
    """text with each `define NAME = ...` line of values given a new value."""
    for name, val in values.items():
        text, n = re.subn(r"(?m)^define %s\s*=.*$" % name,
                          "define %s = %s%s" % (name, val, end), text)
        assert n == 1, "no define %s" % name
    return text


def stop_proc(proc, sig=signal.SIGTERM, timeout=5.0, group=False):
    """Stops a process this test started (or its own process group)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        proc.wait(timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    if proc.poll() is None:
        try:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(5)


class NsLbd(lbdtest.Lbd):
    """lbd run in a node's namespace, listening on the service addresses."""

    def __init__(self, tmp_path, services, ns):
        super().__init__(tmp_path, services, workers=2,
                         globals_={"shutdown-grace": q("10s")})
        self.ns = ns
        self.prefix = ("ip", "netns", "exec", ns)

    def listen_for(self, svc):
        port = svc["svc_port"]
        return port, ["%s:%d" % (VIP4, port), "[%s]:%d" % (VIP6, port)]

    def _wait_ready(self, timeout):
        def ready():
            if self.proc.poll() is not None:
                raise lbdtest.LbdFailed("lbd in %s exited %s\n%s" % (
                    self.ns, self.proc.returncode, self.describe()))
            if len(self.workers()) != self.workers_wanted:
                return False
            out = run("ip", "netns", "exec", self.ns, "ss", "-Hltn").stdout
            return all("%s:%d" % (VIP4, p) in out for p in self.port.values())
        if not lbdtest.poll_until(ready, timeout, 0.05):
            raise lbdtest.LbdFailed("lbd in %s not ready\n%s"
                                    % (self.ns, self.describe()))

    def stats(self):
        p = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-j",
                            "-s", os.path.join(self.runtime_dir, "lbd.stats")],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=10)
        assert p.returncode == 0, p.stderr
        return {s["name"]: s for s in json.loads(p.stdout.splitlines()[0])
                ["services"]}

    def sigkill_all(self):
        """SIGKILL of the master, then of its workers, by PID."""
        pids = [self.pid] + list(self.workers())
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        assert lbdtest.poll_until(
            lambda: all(lbdtest.is_dead(p) for p in pids), 5.0)


class Topology:
    """The namespaces, links, BIRDs, health loops and lbds of one test."""

    def __init__(self, tmp_path):
        self.tmp = str(tmp_path)
        self.dir = tempfile.mkdtemp(prefix="lbd-bgp-")
        os.chmod(self.dir, 0o755)
        tag = os.getpid()
        self.ns = {k: "lbdbgp-%s-%d" % (k, tag)
                   for k in ("client", "router", "node1", "node2", "backend")}
        self.created = []
        self.procs = []			# (Popen, group) to stop at the end
        self.birds = {}
        self.health = {}
        self.health_env = {}
        self.lbd = {}
        self.fds = {}
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)

    # building --------------------------------------------------------------

    def ip(self, ns, *args):
        return run("ip", "-n", self.ns[ns], *args)

    def sysctl(self, ns, *settings):
        run("ip", "netns", "exec", self.ns[ns], "sysctl", "-qw", *settings)

    def link(self, a, a_if, b, b_if):
        self.ip(a, "link", "add", a_if, "type", "veth", "peer", "name", b_if,
                "netns", self.ns[b])
        self.ip(a, "link", "set", "dev", a_if, "up")
        self.ip(b, "link", "set", "dev", b_if, "up")

    def addr(self, ns, dev, *addrs):
        for a in addrs:
            extra = ("nodad",) if ":" in a else ()
            self.ip(ns, "addr", "add", a, "dev", dev, *extra)

    def build(self):
        for k, name in self.ns.items():
            run("ip", "netns", "add", name)
            self.created.append(name)
            self.ip(k, "link", "set", "lo", "up")
            self.fds[k] = os.open("/run/netns/" + name, os.O_RDONLY)
        self.link("client", "uplink", "router", "client")
        self.addr("client", "uplink", CLIENT4 + "/24", CLIENT6 + "/64",
                  *["%s/24" % s for s in SOURCES])
        self.addr("router", "client", "10.77.0.1/24", "fd77::1/64")
        self.ip("client", "route", "add", "default", "via", "10.77.0.1")
        self.ip("client", "-6", "route", "add", "default", "via", "fd77::1")
        self.sysctl("router", "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1",
                    "net.ipv4.fib_multipath_hash_policy=1",
                    "net.ipv6.fib_multipath_hash_policy=1",
                    "net.ipv4.conf.all.rp_filter=0")
        for i, (node, (r4, n4, b4, net6)) in enumerate(NODES.items(), 1):
            self.link("router", node, node, "uplink")
            self.addr("router", node, r4 + "/24", net6 + "1/64")
            self.addr(node, "uplink", n4 + "/24", net6 + "2/64")
            self.addr(node, "lo", VIP4 + "/32", VIP6 + "/128")
            self.ip(node, "route", "add", "default", "via", r4)
            self.ip(node, "-6", "route", "add", "default", "via", net6 + "1")
            self.link(node, "be", "backend", node)
            self.addr(node, "be", b4 + "/24")
            self.addr("backend", node, "10.77.%d.2/24" % (10 + i))
            self.ip(node, "route", "add", "10.77.50.0/24", "via",
                    "10.77.%d.2" % (10 + i))
        for _, a in BACKENDS + [DL]:
            self.addr("backend", "lo", a + "/32")

    def start(self, cmd, log, env=None, group=False):
        with open(os.path.join(self.dir, log), "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=out, env=env,
                                    start_new_session=group)
        self.procs.append((proc, group))
        return proc

    def start_backends(self):
        for name, a in BACKENDS + [DL]:
            args = ["whoami", name] if name != "dl" else \
                ["source", str(DL_SIZE), "ecmp"]
            self.start(["ip", "netns", "exec", self.ns["backend"],
                        sys.executable, lbdtest.BACKEND, str(BE_PORT)] + args
                       + ["--bind", a], "backend-%s.log" % name)
        out = lambda: run("ip", "netns", "exec", self.ns["backend"], "ss",
                          "-Hltn").stdout
        assert lbdtest.poll_until(
            lambda: all("%s:%d" % (a, BE_PORT) in out()
                        for _, a in BACKENDS + [DL]), 20.0, 0.1), out()

    def bird_conf(self, which, defines):
        with open(os.path.join(CONTRIB, "bird-%s.conf" % which)) as f:
            text = set_defines(f.read(), defines)
        # logs into the test's directory instead of syslog
        log = os.path.join(self.dir, "bird-%s.log" % which)
        return re.sub(r"(?m)^log syslog .*$", 'log "%s" all;' % log, text)

    def start_bird(self, ns, text):
        conf = os.path.join(self.dir, "bird-%s.conf" % ns)
        with open(conf, "w") as f:
            f.write(text)
        sock = os.path.join(self.dir, "bird-%s.ctl" % ns)
        self.birds[ns] = sock
        self.start(["ip", "netns", "exec", self.ns[ns], shutil.which("bird"),
                    "-f", "-c", conf, "-s", sock,
                    "-P", os.path.join(self.dir, "bird-%s.pid" % ns)],
                   "bird-%s.out" % ns)

    def start_router(self):
        r = {n: NODES[n] for n in NODES}
        self.start_bird("router", self.bird_conf("router", {
            "ROUTER_ID": "10.77.0.1", "ROUTER_AS": "65000",
            "NODE_AS": "65100",
            "NODE1_4": r["node1"][1], "NODE1_6": r["node1"][3] + "2",
            "NODE2_4": r["node2"][1], "NODE2_6": r["node2"][3] + "2",
            "VIPS4": "[ 10.77.100.0/24{32,32} ]",
            "VIPS6": "[ fd77:100::/64{128,128} ]"}))
        with open(os.path.join(CONTRIB, "pin-flows.nft")) as f:
            nft = set_defines(f.read(), {
                "VIPS4": "10.77.100.0/24", "VIPS6": "fd77:100::/64",
                "NODE1_4": r["node1"][1], "NODE2_4": r["node2"][1],
                "NODE1_6": r["node1"][3] + "2", "NODE2_6": r["node2"][3] + "2"},
                end="")
        path = os.path.join(self.dir, "pin-flows.nft")
        with open(path, "w") as f:
            f.write(nft)
        run("ip", "netns", "exec", self.ns["router"], "nft", "-f", path)
        for i, node in enumerate(NODES, 1):
            table = str(100 + i)
            self.ip("router", "rule", "add", "fwmark", str(i), "to",
                    "10.77.100.0/24", "lookup", table)
            self.ip("router", "route", "add", "10.77.100.0/24", "via",
                    NODES[node][1], "table", table)
            self.ip("router", "-6", "rule", "add", "fwmark", str(i), "to",
                    "fd77:100::/64", "lookup", table)
            self.ip("router", "-6", "route", "add", "fd77:100::/64", "via",
                    NODES[node][3] + "2", "table", table)

    def start_node(self, node, order):
        r4, n4, _, net6 = NODES[node]
        backends = [(n, "%s:%d" % (a, BE_PORT), 1)
                    for n, a in (BACKENDS[i] for i in order)]
        services = [
            {"name": "web", "svc_port": PORT_RR, "backends": backends,
             "options": {}},
            {"name": "sticky", "svc_port": PORT_SRC, "backends": backends,
             "options": {"balance": q("source")}},
            {"name": "dl", "svc_port": PORT_DL, "options": {},
             "backends": [("dl", "%s:%d" % (DL[1], BE_PORT), 1)]},
        ]
        d = NsLbd(os.path.join(self.tmp, node), services, self.ns[node])
        os.makedirs(d.tmp_path, exist_ok=True)
        self.lbd[node] = d
        d.start()
        self.start_bird(node, self.bird_conf("node", {
            "NODE_ID": n4, "NODE_AS": "65100", "ROUTER_AS": "65000",
            "ROUTER1_4": r4, "ROUTER1_6": net6 + "1",
            "VIP4": VIP4 + "/32", "VIP6": VIP6 + "/128"}))
        env = dict(os.environ,
                   PIDFILE=os.path.join(d.runtime_dir, "lbd.pid"),
                   STATSFILE=os.path.join(d.runtime_dir, "lbd.stats"),
                   LBSTAT=os.path.join(lbdtest.build_dir(), "lbstat"),
                   BIRDC=shutil.which("birdc"), BIRD_SOCKET=self.birds[node],
                   DRAIN_FILE=self.drain_file(node), INTERVAL="1", FALL="2",
                   RISE="2")
        self.health_env[node] = env
        self.health[node] = self.start(["sh", HEALTH], "health-%s.log" % node,
                                       env=env, group=True)

    def drain_file(self, node):
        return os.path.join(self.dir, "withdraw-" + node)

    def health_cmd(self, node, cmd):
        """lbd-bird-health.sh CMD with node's settings."""
        p = subprocess.run(["sh", HEALTH, cmd], env=self.health_env[node],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=20)
        return p.returncode, p.stderr.strip()

    # looking ---------------------------------------------------------------

    def paths(self, family=4):
        """The router's next hops for the service address, as node names
        (the router's interface towards each node bears its name)."""
        vip = VIP4 + "/32" if family == 4 else VIP6 + "/128"
        p = self.ip("router", "-%d" % family, "-j", "route", "show", "exact",
                    vip)
        devs = set()
        for r in json.loads(p.stdout or "[]"):
            for nh in r.get("nexthops", [r]):
                devs.add(nh.get("dev"))
        return devs & set(NODES)

    def wait_paths(self, want, timeout, family=4):
        ok = lbdtest.poll_until(lambda: self.paths(family) == want, timeout,
                                0.02)
        assert ok, "router next hops for the VIP (IPv%d): %s, want %s\n%s" % (
            family, self.paths(family), want, self.describe())

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()[-3000:]
        except FileNotFoundError:
            return ""

    def describe(self):
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith((".log", ".out")):
                out.append("--- %s ---\n%s" % (name, self.log(name)))
        return "\n".join(out)

    # clients ---------------------------------------------------------------

    def connect(self, port, src=None, family=4, timeout=3.0):
        with netns(self.fds["client"], self.home):
            s = socket.socket(socket.AF_INET if family == 4
                              else socket.AF_INET6, socket.SOCK_STREAM)
        s.settimeout(timeout * SCALE)
        try:
            if src:
                s.bind((src, 0))
            s.connect((VIP4 if family == 4 else VIP6, port))
        except BaseException:
            s.close()
            raise
        return s

    def whoami(self, port=PORT_RR, src=None, family=4):
        """One exchange: (backend name, node name)."""
        s = self.connect(port, src, family)
        try:
            line = lbdtest.recv_line(s)
            assert line.endswith(b"\n"), "no greeting: %r" % line
            s.sendall(b"ping\n")
            assert lbdtest.recv_exact(s, 5) == b"ping\n"
        finally:
            s.close()
        name, peer = line.decode().split()
        return name, PEER_NODE[peer]

    # tearing down ----------------------------------------------------------

    def close(self):
        problems = []
        for proc, group in reversed(self.procs):
            stop_proc(proc, group=group)
        for d in self.lbd.values():
            problems += d.finish()
        for fd in list(self.fds.values()) + [self.home]:
            os.close(fd)
        for name in reversed(self.created):
            run("ip", "netns", "del", name, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems


class Prober(threading.Thread):
    """New connections one after another until stopped (bounded in count and
    time): [(start time, node or None, error or None)]."""

    def __init__(self, topo, limit_s=60.0, gap=0.01, max_conns=6000):
        super().__init__(daemon=True)
        self.topo, self.limit_s, self.gap = topo, limit_s, gap
        self.max_conns = max_conns
        self.results = []
        self.halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.limit_s
        while not self.halt.is_set() and time.monotonic() < deadline \
                and len(self.results) < self.max_conns:
            t = time.monotonic()
            try:
                _, node = self.topo.whoami()
                self.results.append((t, node, None))
            except Exception as e:		# the test reports it
                self.results.append((t, None, repr(e)))
            time.sleep(self.gap)

    def stop(self):
        self.halt.set()
        self.join(15)
        return self.results


class Download(threading.Thread):
    """One long download through the "dl" service: slow until .hurry is set,
    then as fast as it comes.  .result: (bytes, sha256 hex) or an error."""

    def __init__(self, sock, limit_s=60.0):
        super().__init__(daemon=True)
        self.sock, self.limit_s = sock, limit_s
        self.hurry = threading.Event()
        self.result = None

    def run(self):
        h, n = hashlib.sha256(), 0
        deadline = time.monotonic() + self.limit_s
        try:
            self.sock.settimeout(10 * SCALE)
            while time.monotonic() < deadline:
                data = self.sock.recv(256 * 1024 if self.hurry.is_set()
                                      else 32 * 1024)
                if not data:
                    break
                h.update(data)
                n += len(data)
                if not self.hurry.is_set():
                    time.sleep(0.02)
            self.result = (n, h.hexdigest())
        except OSError as e:
            self.result = e
        finally:
            self.sock.close()


def open_download_via(topo, node, tries=40):
    """A download connection that the router sent to node (other source
    ports until one lands there), checked on that node's active count."""
    for _ in range(tries):
        s = topo.connect(PORT_DL, timeout=10.0)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.recv(1024, socket.MSG_PEEK)		# the first bytes arrived
        if topo.lbd[node].stats()["dl"]["active"] == 1:
            return s
        s.close()
        lbdtest.poll_until(lambda: all(
            d.stats()["dl"]["active"] == 0 for d in topo.lbd.values()
            if d.proc.poll() is None), 5.0)
    raise AssertionError("no download landed on %s in %d tries" % (node,
                                                                  tries))


def spread(results):
    nodes = [n for _, n in results]
    return {n: nodes.count(n) for n in NODES}


def assert_spread(counts, total, what):
    for n, c in counts.items():
        assert 0.3 * total <= c <= 0.7 * total, \
            "%s: %s took %d of %d (want 30-70%%): %s" % (what, n, c, total,
                                                        counts)


# -- the test ------------------------------------------------------------------

def test_bgp_ecmp_failover_and_drain(tmp_path, lbd_bin):
    for prog, pkg in (("bird", "bird2"), ("birdc", "bird2"),
                      ("nft", "nftables"), ("ip", "iproute2"),
                      ("ss", "iproute2")):
        if shutil.which(prog) is None:
            pytest.skip("%s is not installed (Debian package %s; "
                        "contrib/install-deps.sh installs it)" % (prog, pkg))
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    probe = "lbdbgp-probe-%d" % os.getpid()
    p = run("ip", "netns", "add", probe, check=False)
    if p.returncode != 0:
        pytest.skip("cannot create network namespaces (ip netns add: %s)"
                    % p.stderr.strip())
    run("ip", "netns", "del", probe, check=False)

    t_begin = time.monotonic()
    topo = Topology(tmp_path)
    problems = []
    try:
        topo.build()
        topo.start_backends()
        topo.start_router()
        # The two nodes list the backends in different orders.
        topo.start_node("node1", (0, 1, 2))
        topo.start_node("node2", (2, 0, 1))
        topo.wait_paths(set(NODES), 20.0)
        topo.wait_paths(set(NODES), 5.0, family=6)
        print("BGP up, ECMP over both nodes %.1fs after start"
              % (time.monotonic() - t_begin))
        check_both_up(topo)
        check_failover(topo)
        check_restart(topo)
        check_drain(topo)
        check_graceful_stop(topo)
    except BaseException:
        print(topo.describe())
        raise
    finally:
        problems = topo.close()
    assert not problems, "\n".join(problems)
    print("whole test %.1fs" % (time.monotonic() - t_begin))


def check_both_up(topo):
    results = lbdtest.run_parallel(topo.whoami, [()] * 1000, 8)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, "%d of 1000 failed, e.g. %r" % (len(errors), errors[0])
    counts = spread(results)
    print("1000 connections, both nodes up: %s" % counts)
    assert_spread(counts, 1000, "both up")

    six = lbdtest.run_parallel(lambda: topo.whoami(family=6), [()] * 100, 4)
    errors = [r for r in six if isinstance(r, Exception)]
    assert not errors, "IPv6: %d of 100 failed, e.g. %r" % (len(errors),
                                                           errors[0])
    print("100 IPv6 connections: %s" % spread(six))
    assert all(spread(six).values()), spread(six)

    # source: 8 connections (8 source ports) from each of 40 addresses
    jobs = [(PORT_SRC, src) for src in SOURCES for _ in range(8)]
    res = lbdtest.run_parallel(topo.whoami, jobs, 8)
    errors = [r for r in res if isinstance(r, Exception)]
    assert not errors, "source: %d failed, e.g. %r" % (len(errors), errors[0])
    per = {}
    for (_, src), (name, node) in zip(jobs, res):
        per.setdefault(src, (set(), set()))
        per[src][0].add(name)
        per[src][1].add(node)
    moved = {s: v[0] for s, v in per.items() if len(v[0]) != 1}
    assert not moved, "source: addresses reached several backends: %s" % moved
    both = sum(1 for v in per.values() if len(v[1]) == 2)
    homes = [next(iter(v[0])) for v in per.values()]
    print("source: %d addresses x 8, each on one backend (%s), %d of them "
          "through both nodes" % (len(per), {n: homes.count(n) for n, _
                                             in BACKENDS}, both))
    assert both >= len(per) // 2, "too few addresses used both nodes: %d" % both
    assert len(set(homes)) == 3, homes


def check_failover(topo):
    dl = Download(open_download_via(topo, "node2"))
    dl.start()
    prober = Prober(topo)
    prober.start()
    time.sleep(0.5)
    t_kill = time.monotonic()
    topo.lbd["node1"].sigkill_all()
    t_killed = time.monotonic()
    ok = lbdtest.poll_until(lambda: topo.paths() == {"node2"}, 10.0, 0.02)
    t_gone = time.monotonic()
    assert ok, "node1's route still there 10 s after lbd was killed: %s\n%s" \
        % (topo.paths(), topo.describe())
    time.sleep(2.0)
    results = prober.stop()
    dl.hurry.set()
    dl.join(60)
    withdrawn = t_gone - t_kill
    after = [r for r in results if r[0] > t_gone]
    failed = [r for r in results if r[2] is not None]
    bad_after = [r for r in after if r[2] is not None or r[1] != "node2"]
    first_ok = min((r[0] for r in results if r[0] > t_killed and
                    r[2] is None), default=None)
    first_after = min((r[0] for r in after if r[2] is None), default=t_gone)
    last_fail = max((r[0] for r in failed), default=None)
    print("failover: lbd on node1 SIGKILLed; route withdrawn after %.2fs; "
          "%d connections failed between (all started %s after the kill); "
          "first successful connect after the kill at +%.3fs, after the "
          "withdrawal at +%.3fs; %d connections after the withdrawal, all "
          "through node2: %s" % (
              withdrawn, len(failed),
              "%.2f-%.2fs" % (min(r[0] for r in failed) - t_kill,
                              last_fail - t_kill) if failed else "-",
              first_ok - t_kill, first_after - t_kill, len(after),
              not bad_after))
    assert withdrawn <= 5.0, "route withdrawn after %.1fs" % withdrawn
    assert after and not bad_after, "after the withdrawal: %s" % bad_after[:5]
    want = hashlib.sha256(backend_mod.stream_bytes("ecmp", DL_SIZE)).hexdigest()
    assert dl.result == (DL_SIZE, want), \
        "download through node2 across the failover: %r" % (dl.result,)


def check_restart(topo):
    # A download through node2 while node1 rejoins: the rehash must not
    # move it (pin-flows.nft).
    dl = Download(open_download_via(topo, "node2"))
    dl.start()
    t0 = time.monotonic()
    topo.lbd["node1"].start()
    topo.wait_paths(set(NODES), 10.0)
    print("node1's lbd restarted: route back after %.2fs"
          % (time.monotonic() - t0))
    results = lbdtest.run_parallel(topo.whoami, [()] * 400, 8)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, "%d of 400 failed, e.g. %r" % (len(errors), errors[0])
    counts = spread(results)
    print("400 connections after the restart: %s" % counts)
    assert_spread(counts, 400, "after restart")
    dl.hurry.set()
    dl.join(60)
    want = hashlib.sha256(backend_mod.stream_bytes("ecmp", DL_SIZE)).hexdigest()
    assert dl.result == (DL_SIZE, want), \
        "download through node2 while node1 rejoined: %r" % (dl.result,)


def check_graceful_stop(topo):
    """SIGTERM without a drain first: the workers stop accepting while the
    master waits for an open connection, and the route goes meanwhile."""
    held = topo.connect(PORT_RR)
    assert lbdtest.recv_line(held).endswith(b"\n")
    d = topo.lbd["node1"]
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    try:
        topo.wait_paths(set(), 5.0)
        took = time.monotonic() - t0
        alive = d.proc.poll() is None
    finally:
        held.close()
    status = d.wait(20 * SCALE)
    print("SIGTERM to lbd on node1 with a connection open: route withdrawn "
          "after %.2fs, master still finishing: %s; exit %s"
          % (took, alive, status))
    assert status == 0
    assert alive, "lbd exited before the route went: the stopping state " \
        "was not what withdrew it"


def check_drain(topo):
    dl = Download(open_download_via(topo, "node2"))
    dl.start()
    prober = Prober(topo)
    prober.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    rc, out = topo.health_cmd("node2", "drain")
    assert rc == 0, out
    topo.wait_paths({"node1"}, 10.0)
    topo.wait_paths({"node1"}, 5.0, family=6)
    t_gone = time.monotonic()
    time.sleep(0.5)
    # then stop lbd gracefully; its download finishes first
    dl.hurry.set()
    d = topo.lbd["node2"]
    d.signal(signal.SIGTERM)
    status = d.wait(20 * SCALE)
    t_stopped = time.monotonic()
    time.sleep(0.5)
    results = prober.stop()
    dl.join(60)
    failed = [r for r in results if r[2] is not None]
    via2 = [r for r in results if r[0] > t_gone and r[1] == "node2"]
    print("drain of node2: withdrawn %.2fs after the drain file, lbd stopped "
          "%.2fs later (exit %s); %d connections meanwhile, %d failed; the "
          "download through node2: %s" % (
              t_gone - t0, t_stopped - t_gone, status, len(results),
              len(failed), dl.result if isinstance(dl.result, Exception)
              else "%d bytes" % dl.result[0]))
    assert status == 0, "lbd on node2 exited %s on SIGTERM" % status
    assert not failed, "client errors during the drain: %s" % failed[:5]
    assert not via2, "new connections reached node2 after its withdrawal"
    want = hashlib.sha256(backend_mod.stream_bytes("ecmp", DL_SIZE)).hexdigest()
    assert dl.result == (DL_SIZE, want), \
        "download through the drained node2: %r" % (dl.result,)
