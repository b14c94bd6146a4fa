"""Integration tests for "ship it like a daemon": PROXY protocol v1/v2 read
by a real nginx, the per-connection log line and its close reasons,
make install/uninstall, the man pages and the init script, and an
active/passive pair of lbd nodes under keepalived in network namespaces.

Needs the Debian packages nginx, keepalived and man-db (tests skip, saying
so, when the program is absent) and iproute2.  Nothing here touches the
system nginx or keepalived: each test runs its own instance from a
configuration in a temporary directory, and kills only what it started.
"""

import os
import random
import select
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import lbdtest
from lbdtest import SCALE, service

HERE = lbdtest.HERE
REPO = lbdtest.REPO
CHECK_LBD = os.path.join(REPO, "contrib/keepalived/check_lbd.sh")


def program(name, dirs=("/usr/sbin", "/sbin", "/usr/bin", "/bin")):
    """Path of an installed program, or None."""
    found = shutil.which(name)
    if found:
        return found
    for d in dirs:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def kill_pids(pids):
    """SIGKILL each (pid, starttime) that is still the same live process."""
    for pid, start in pids:
        st = lbdtest.proc_stat(pid)
        if st and st[2] == start and st[0] not in ("Z", "X"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def stop_process(proc, sig=signal.SIGTERM, timeout=10.0):
    """Stops a Popen we started, and whatever children it had, by PID."""
    if proc is None:
        return
    kids = lbdtest.children(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
    lbdtest.poll_until(lambda: all(lbdtest.is_dead(p) for p, _ in kids), 3.0)
    kill_pids(kids)


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def dual_port():
    """A port free on both 127.0.0.1 and [::1] right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s6.bind(("::1", port))
                except OSError:
                    continue
        return port
    raise AssertionError("no port free on both 127.0.0.1 and ::1")


def client_from(family, host, dest, tries=20):
    """A socket connected to dest from host on a source port chosen here
    (outside the ephemeral range, so it is known in advance).  Returns
    (socket, source port)."""
    for _ in range(tries):
        sport = random.randint(20000, 31999)
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(10 * SCALE)
        try:
            s.bind((host, sport))
            s.connect(dest)
            return s, sport
        except OSError:
            s.close()
    raise AssertionError("could not connect from %s to %s" % (host, dest))


# -- lbd on 127.0.0.1 and [::1] ----------------------------------------------

class DualLbd(lbdtest.Lbd):
    """An Lbd whose one service listens on 127.0.0.1:PORT and, when ::1 is
    available, on [::1]:PORT too (the harness only does 127.0.0.1)."""

    v6 = True

    def listen_for(self, svc):
        assert len(self.services) == 1
        port = dual_port() if self.v6 else lbdtest.free_port()
        listen = ["127.0.0.1:%d" % port]
        if self.v6:
            listen.append("[::1]:%d" % port)
        return port, listen


@pytest.fixture
def dual_lbd(tmp_path, lbd_bin):
    def make(i, services, v6=True, workers=2, **globals_):
        inst = DualLbd(tmp_path / ("dual%d" % i), services, workers=workers,
                       globals_=lbdtest.globals_from(globals_))
        inst.v6 = v6
        return inst

    yield from lbdtest.lbd_fixture(make)


# -- nginx -------------------------------------------------------------------

NGINX_CONF = """\
# written by tests/integration/test_daemon.py
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{pp_port} proxy_protocol;
        listen 127.0.0.1:{plain_port};
        default_type text/plain;
        return 200 "pp=$proxy_protocol_addr $proxy_protocol_port remote=$remote_addr $remote_port\\n";
    }}
}}
"""


class Nginx:
    """A private nginx: one worker, a PROXY-protocol listener (.pp_port)
    and a plain one (.plain_port), both answering every request with what
    nginx knows of the client."""

    def __init__(self, workdir):
        self.binary = program("nginx")
        self.prefix = tempfile.mkdtemp(prefix="nginx-", dir=workdir)
        self.proc = None

    def start(self, timeout=10.0):
        conf = os.path.join(self.prefix, "nginx.conf")
        log = os.path.join(self.prefix, "nginx.out")
        for _ in range(3):
            self.pp_port = lbdtest.free_port()
            self.plain_port = lbdtest.free_port()
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(
                    prefix=self.prefix, pp_port=self.pp_port,
                    plain_port=self.plain_port,
                    user="user root root;" if os.geteuid() == 0 else ""))
            with open(log, "ab") as out:
                self.proc = subprocess.Popen(
                    [self.binary, "-p", self.prefix, "-c", conf,
                     "-e", os.path.join(self.prefix, "error.log"),
                     "-g", "daemon off;"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            deadline = time.monotonic() + timeout * SCALE
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if (lbdtest.listening(self.proc.pid, self.pp_port) and
                        lbdtest.listening(self.proc.pid, self.plain_port)):
                    return self
                time.sleep(0.05)
            text = self.log()
            self.stop()
            if "in use" not in text:
                raise AssertionError("nginx did not start:\n" + text)
        raise AssertionError("nginx lost every port race:\n" + self.log())

    def log(self):
        out = []
        for name in ("nginx.out", "error.log"):
            try:
                with open(os.path.join(self.prefix, name)) as f:
                    out.append("--- %s ---\n%s" % (name, f.read()[-4000:]))
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def stop(self):
        stop_process(self.proc, signal.SIGTERM)


@pytest.fixture
def nginx(tmp_path):
    if program("nginx") is None:
        pytest.skip("nginx is not installed (Debian package nginx)")
    started = []

    def start():
        n = Nginx(str(tmp_path))
        started.append(n)
        return n.start()

    yield start
    for n in started:
        n.stop()


def http_get(family, src_host, dest):
    """GET / over a connection from src_host (a known source port) to dest;
    returns (source port, the body's one line)."""
    s, sport = client_from(family, src_host, dest)
    try:
        s.sendall(b"GET / HTTP/1.0\r\nHost: lbd-test\r\n\r\n")
        reply = lbdtest.recv_until_eof(s, 1 << 16).decode(errors="replace")
    finally:
        s.close()
    head, _, body = reply.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), reply
    return sport, body.strip()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_seen_by_nginx(dual_lbd, nginx, version):
    ngx = nginx()
    v6 = has_ipv6_loopback()
    d = dual_lbd([service("web", [("nginx", "127.0.0.1:%d" % ngx.pp_port)],
                          proxy_protocol=version)],
                 v6=v6, log_connections=True)
    port = d.port["web"]

    for _ in range(3):		# a few connections, each from its own port
        sport, body = http_get(socket.AF_INET, "127.0.0.5",
                               ("127.0.0.1", port))
        assert re.fullmatch(r"pp=127\.0\.0\.5 %d remote=127\.0\.0\.1 \d+"
                            % sport, body), \
            "nginx saw %r for a client at 127.0.0.5:%d\n%s\n%s" % (
                body, sport, d.describe(), ngx.log())

    if not v6:
        pytest.skip("IPv4 checked; no ::1 on this machine for IPv6")
    sport, body = http_get(socket.AF_INET6, "::1", ("::1", port))
    assert re.fullmatch(r"pp=::1 %d remote=127\.0\.0\.1 \d+" % sport,
                        body), \
        "nginx saw %r for a client at [::1]:%d\n%s\n%s" % (
            body, sport, d.describe(), ngx.log())
    # the connection log shows an IPv6 client in brackets
    line = conn_line(d, "[::1]:%d" % sport)
    assert line["backend"] == "nginx" and line["reason"] in (
        "backend closed", "client closed"), line


def test_without_proxy_protocol_nginx_sees_lbd(lbd, nginx):
    ngx = nginx()
    d = lbd([service("web", [("nginx", "127.0.0.1:%d" % ngx.plain_port)])])
    sport, body = http_get(socket.AF_INET, "127.0.0.5",
                           ("127.0.0.1", d.port["web"]))
    m = re.fullmatch(r"pp= +remote=127\.0\.0\.1 (\d+)", body)
    assert m, "nginx saw %r (expected lbd's 127.0.0.1, no PROXY data)" % body
    # and a PROXY-protocol listener rejects lbd's plain connection
    d2 = lbd([service("web", [("nginx", "127.0.0.1:%d" % ngx.pp_port)])])
    s, _ = client_from(socket.AF_INET, "127.0.0.5",
                       ("127.0.0.1", d2.port["web"]))
    with s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: lbd-test\r\n\r\n")
        try:
            reply = lbdtest.recv_until_eof(s, 1 << 16)
        except ConnectionError:
            reply = b""
    assert b"200" not in reply, reply


# -- the connection log ------------------------------------------------------

CONN_LINE = re.compile(
    r"worker \d+: (?P<service>\S+) (?P<client>\S+) -> (?P<backend>\S+) "
    r"(?P<address>\S+) (?P<ms>\d+)ms in (?P<bytes_in>\d+) "
    r"out (?P<bytes_out>\d+) exch (?P<exchanges>\d+): (?P<reason>.+)$")


def conn_lines(d, client):
    """Connection-log lines (as dicts) of lbd d for client "addr:port"."""
    out = []
    for line in d.stderr().splitlines():
        m = CONN_LINE.search(line)
        if m and m.group("client") == client:
            row = m.groupdict()
            for k in ("ms", "bytes_in", "bytes_out", "exchanges"):
                row[k] = int(row[k])
            out.append(row)
    return out


def conn_line(d, client, timeout=5.0):
    """The one log line for client, once it is there."""
    lines = lbdtest.poll_until(lambda: conn_lines(d, client),
                               timeout * SCALE)
    assert lines, "no connection log line for %s\n%s" % (client,
                                                          d.describe())
    time.sleep(0.1)			# a second line would be a bug
    lines = conn_lines(d, client)
    assert len(lines) == 1, "%d lines for %s\n%s" % (len(lines), client,
                                                      d.describe())
    return lines[0]


def me(s):
    return "127.0.0.1:%d" % s.getsockname()[1]


def quiet_health():
    """A health section whose first failure comes long after the test."""
    return {"interval": lbdtest.q("30s"), "timeout": lbdtest.q("1s"),
            "fall": 3, "rise": 2}


def test_log_client_closed(lbd, backend):
    app = backend("ident", "app1")
    d = lbd([service("web", [app])], log_connections=True)
    payload = os.urandom(5000)
    s = lbdtest.connect(d.port["web"])
    with s:
        client = me(s)
        assert lbdtest.recv_line(s) == b"app1\n"
        s.sendall(payload)
        assert lbdtest.recv_exact(s, len(payload)) == payload
        s.shutdown(socket.SHUT_WR)
        assert lbdtest.recv_until_eof(s) == b""
    line = conn_line(d, client)
    assert line == dict(line, service="web", backend="app1",
                        address=app.address, bytes_in=5000, bytes_out=5 + 5000,
                        exchanges=1, reason="client closed"), line
    assert line["ms"] < 5000 * SCALE, line


def test_log_backend_closed(lbd, backend):
    src = backend("source", 300000, "logtest")
    d = lbd([service("web", [src])], log_connections=True)
    s = lbdtest.connect(d.port["web"])
    with s:
        client = me(s)
        s.sendall(b"x" * 100)
        data = lbdtest.recv_until_eof(s)
        assert len(data) == 300000
    line = conn_line(d, client)
    assert line == dict(line, service="web", backend=src.name,
                        address=src.address, bytes_in=100,
                        bytes_out=300000, reason="backend closed"), line


def test_log_idle_timeout(lbd, backend):
    app = backend("ident", "app1")
    d = lbd([service("web", [app], idle_timeout="500ms")],
            log_connections=True)
    s = lbdtest.connect(d.port["web"])
    with s:
        client = me(s)
        assert lbdtest.recv_line(s) == b"app1\n"
        s.sendall(b"0123456789")
        assert lbdtest.recv_exact(s, 10) == b"0123456789"
        t0 = time.monotonic()
        how = lbdtest.wait_closed(s, 5 * SCALE)
        waited = time.monotonic() - t0
    assert how == "eof", "idle connection not closed (%s)\n%s" % (
        how, d.describe())
    assert 0.4 <= waited <= 0.5 + 2 * SCALE, waited
    line = conn_line(d, client)
    assert line == dict(line, backend="app1", bytes_in=10, bytes_out=15,
                        reason="idle timeout"), line
    assert 500 <= line["ms"] <= 500 + 2500 * SCALE, line


def test_log_connect_failed(lbd):
    s1, p1 = lbdtest.dead_port()
    s2, p2 = lbdtest.dead_port()
    try:
        svc = service("web", [("dead1", "127.0.0.1:%d" % p1),
                              ("dead2", "127.0.0.1:%d" % p2)], retries=2)
        svc["health"] = quiet_health()
        d = lbd([svc], log_connections=True)
        s = lbdtest.connect(d.port["web"])
        with s:
            client = me(s)
            how = lbdtest.wait_closed(s, 5 * SCALE)
        assert how in ("eof", "reset"), how
        line = conn_line(d, client)
        addr = {"dead1": "127.0.0.1:%d" % p1, "dead2": "127.0.0.1:%d" % p2}
        assert line["backend"] in addr, line
        assert line == dict(line, service="web",
                            address=addr[line["backend"]], bytes_in=0,
                            bytes_out=0, reason="connect failed"), line
    finally:
        s1.close()
        s2.close()


def test_log_client_reset(lbd, backend):
    app = backend("ident", "app1")
    d = lbd([service("web", [app])], log_connections=True)
    s = lbdtest.connect(d.port["web"])
    client = me(s)
    assert lbdtest.recv_line(s) == b"app1\n"
    s.sendall(b"0123456789")
    assert lbdtest.recv_exact(s, 10) == b"0123456789"
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()				# RST
    line = conn_line(d, client)
    assert line == dict(line, backend="app1", address=app.address,
                        bytes_in=10, bytes_out=15,
                        reason="client reset"), line


class ResetBackend:
    """A backend that sends GREETING, reads EXPECT bytes, then resets the
    connection (SO_LINGER 0).  Health probes (which send nothing) just get
    closed."""

    GREETING = b"hello\n"
    EXPECT = 10

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.resets = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        deadline = time.monotonic() + 120 * SCALE
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,),
                             daemon=True).start()

    def _handle(self, conn):
        with conn:
            conn.settimeout(10 * SCALE)
            try:
                conn.sendall(self.GREETING)
                got = b""
                while len(got) < self.EXPECT:
                    d = conn.recv(self.EXPECT - len(got))
                    if not d:
                        return
                    got += d
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
                self.resets += 1
            except OSError:
                return

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def test_log_backend_reset(lbd):
    rb = ResetBackend()
    try:
        d = lbd([service("web", [("resetter", rb.address)])],
                log_connections=True)
        s = lbdtest.connect(d.port["web"])
        with s:
            client = me(s)
            assert lbdtest.recv_exact(s, 6) == ResetBackend.GREETING
            s.sendall(b"0123456789")
            how = lbdtest.wait_closed(s, 5 * SCALE)
        assert how == "reset", "client saw %s after the backend's RST" % how
        line = conn_line(d, client)
        assert line == dict(line, backend="resetter", address=rb.address,
                            bytes_in=10, bytes_out=6,
                            reason="backend reset"), line
    finally:
        rb.stop()


def test_log_no_backend_available(lbd, backend):
    app1 = backend("ident", "app1")
    app2 = backend("ident", "app2")
    d = lbd([service("web", [app1, app2])], log_connections=True)
    sock = os.path.join(d.runtime_dir, "lbd.sock")
    for name in ("app1", "app2"):
        p = subprocess.run(
            [os.path.join(lbdtest.build_dir(), "lbadmin"), "-s", sock,
             "drain", "web/" + name],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=20 * SCALE)
        assert p.returncode == 0, (p.stdout, p.stderr, d.describe())
    s = lbdtest.connect(d.port["web"])
    with s:
        client = me(s)
        how = lbdtest.wait_closed(s, 5 * SCALE)
    assert how in ("eof", "reset"), how
    line = conn_line(d, client)
    assert line == dict(line, service="web", backend="-", address="-",
                        bytes_in=0, bytes_out=0,
                        reason="no backend available"), line


def test_log_shutdown(lbd, backend):
    app = backend("ident", "app1")
    d = lbd([service("web", [app])], log_connections=True,
            shutdown_grace="1s")
    s = lbdtest.connect(d.port["web"])
    with s:
        client = me(s)
        assert lbdtest.recv_line(s) == b"app1\n"
        d.signal(signal.SIGTERM)
        assert d.wait(10 * SCALE) == 0, d.describe()
        line = conn_line(d, client, timeout=1.0)
    assert line == dict(line, backend="app1", bytes_in=0, bytes_out=5,
                        reason="shutdown"), line


def test_no_log_by_default(lbd, backend):
    app = backend("ident", "app1")
    d = lbd([service("web", [app])])
    for _ in range(3):
        assert lbdtest.ident(d.port["web"]) == "app1"
    time.sleep(0.2)
    assert not [l for l in d.stderr().splitlines() if CONN_LINE.search(l)], \
        d.describe()


# -- make install, man pages, init script ------------------------------------

def copy_tree(dest):
    """The work tree without VCS data and build directories."""
    def ignore(path, names):
        skip = {n for n in names if n in (".git", "__pycache__",
                                          ".pytest_cache")}
        if os.path.abspath(path) == REPO:
            skip |= {n for n in names if n.startswith("build")}
        return skip
    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)


def make(src, *args, timeout=180):
    p = subprocess.run(["make", "-C", src] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout * SCALE)
    assert p.returncode == 0, "make %s: exit %d\n%s\n%s" % (
        " ".join(args), p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    return p


INSTALLED = {
    "usr/sbin/lbd": 0o755,
    "usr/sbin/lbadmin": 0o755,
    "usr/bin/lbstat": 0o755,
    "usr/share/man/man8/lbd.8": 0o644,
    "usr/share/man/man8/lbadmin.8": 0o644,
    "usr/share/man/man5/lbd.conf.5": 0o644,
    "usr/share/man/man1/lbstat.1": 0o644,
}


def test_make_install_uninstall(tmp_path):
    if program("make") is None:
        pytest.skip("make is not installed")
    src = str(tmp_path / "src")
    dest = str(tmp_path / "dest")
    copy_tree(src)
    jobs = "-j2"
    make(src, jobs, "install", "DESTDIR=" + dest, "PREFIX=/usr")

    for rel, mode in INSTALLED.items():
        path = os.path.join(dest, rel)
        assert os.path.isfile(path), "make install did not install %s" % rel
        assert stat.S_IMODE(os.stat(path).st_mode) == mode, (rel, oct(
            os.stat(path).st_mode))
    for page in ("lbd.8", "lbadmin.8", "lbd.conf.5", "lbstat.1"):
        with open(os.path.join(REPO, "man", page), "rb") as a, \
                open(os.path.join(dest, "usr/share/man/man" + page[-1],
                                  page), "rb") as b:
            assert a.read() == b.read(), page
    conf = os.path.join(dest, "etc/lbd/lbd.conf")	# PREFIX=/usr: /etc
    assert os.path.isfile(conf), "no etc/lbd/lbd.conf under DESTDIR"
    assert not os.path.exists(os.path.join(dest, "usr/etc")), \
        "PREFIX=/usr put the configuration in usr/etc"
    with open(os.path.join(REPO, "etc/lbd.conf")) as f:
        shipped = f.read()
    with open(conf) as f:
        assert f.read() == shipped

    # the installed daemon accepts the installed example (-t checks syntax)
    p = subprocess.run([os.path.join(dest, "usr/sbin/lbd"), "-t", "-f",
                        conf], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20 * SCALE)
    assert p.returncode == 0 and "configuration OK" in p.stdout + p.stderr, \
        (p.returncode, p.stdout, p.stderr)
    p = subprocess.run([os.path.join(dest, "usr/sbin/lbd"), "-V"],
                       capture_output=True, text=True, timeout=20 * SCALE)
    assert p.returncode == 0 and lbdtest.version() in p.stdout + p.stderr

    # an operator's edit survives a second install
    edited = shipped + "\n# edited by the operator\n"
    with open(conf, "w") as f:
        f.write(edited)
    make(src, "install", "DESTDIR=" + dest, "PREFIX=/usr")
    with open(conf) as f:
        assert f.read() == edited, "make install overwrote lbd.conf"

    make(src, "uninstall", "DESTDIR=" + dest, "PREFIX=/usr")
    left = [rel for rel in INSTALLED
            if os.path.exists(os.path.join(dest, rel))]
    assert not left, "make uninstall left %s" % left
    with open(conf) as f:
        assert f.read() == edited, "make uninstall removed the edited config"


@pytest.mark.parametrize("page", ["lbd.8", "lbadmin.8", "lbd.conf.5",
                                  "lbstat.1"])
def test_man_page_renders_cleanly(page):
    man = program("man")
    if man is None:
        pytest.skip("man is not installed (Debian package man-db)")
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80", MANPAGER="cat",
               PAGER="cat")
    p = subprocess.run([man, "--warnings", "-l",
                        os.path.join(REPO, "man", page)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=env, timeout=60 * SCALE)
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert p.stderr == "", "man --warnings -l %s:\n%s" % (page, p.stderr)
    assert len(p.stdout.splitlines()) > 10, p.stdout


@pytest.mark.parametrize("script", ["contrib/init.d/lbd.in",
                                    "contrib/keepalived/check_lbd.sh"])
def test_shell_scripts_parse(script):
    p = subprocess.run(["sh", "-n", os.path.join(REPO, script)],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 0 and p.stderr == "", (script, p.stderr)


# -- keepalived: an active/passive pair in network namespaces ----------------

def ip(*args, check=True, timeout=20):
    p = subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("ip %s: exit %d: %s" % (
            " ".join(args), p.returncode, p.stderr.strip()))
    return p


KEEPALIVED_CONF = """\
# written by tests/integration/test_daemon.py, after
# contrib/keepalived/keepalived.conf
global_defs {{
    router_id {router_id}
    enable_script_security
    script_user root
}}

vrrp_script check_lbd {{
    script "/usr/bin/env PIDFILE={run}/lbd.pid STATSFILE={run}/lbd.stats LBSTAT={lbstat} {check}"
    interval 1
    timeout 2
    fall 1
    rise 1
}}

vrrp_instance lbd_vip {{
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
    track_script {{
        check_lbd
    }}
}}
"""


class Node:
    """One lbd host in its own network namespace: backend, lbd, keepalived."""

    def __init__(self, name, ns, workdir):
        self.name = name
        self.ns = ns
        self.dir = tempfile.mkdtemp(prefix="node%s-" % name, dir=workdir)
        os.chmod(self.dir, 0o755)	# lbd's workers need the runtime dir
        self.run = os.path.join(self.dir, "run")
        self.backend = self.lbd = self.keepalived = None
        self.lbd_workers = []

    def nsexec(self, *cmd):
        return ["ip", "netns", "exec", self.ns] + list(cmd)

    def start_backend(self):
        self.backend = subprocess.Popen(
            self.nsexec(sys.executable, lbdtest.BACKEND, "0", "ident",
                        self.name),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        r = lbdtest.poll_until(
            lambda: select.select([self.backend.stdout], [], [], 0.1)[0],
            15.0)
        line = self.backend.stdout.readline() if r else b""
        assert line.startswith(b"READY "), "backend in %s: %r" % (self.ns,
                                                                   line)
        self.backend_port = int(line.split()[1])

    def start_lbd(self, vip, port):
        user, group, admin = lbdtest.identity()
        conf = lbdtest.render_config(self.run, [{
            "name": "web", "listen": ["%s:%d" % (vip, port)],
            "backends": [(self.name.lower(), "127.0.0.1:%d"
                          % self.backend_port, 1)],
            "options": {}}], workers=2,
            globals_={"shutdown-grace": lbdtest.q("2s")})
        self.conf = os.path.join(self.dir, "lbd.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.lbd_err = os.path.join(self.dir, "lbd.stderr")
        with open(self.lbd_err, "ab") as err:
            self.lbd = subprocess.Popen(
                self.nsexec(os.path.join(lbdtest.build_dir(), "lbd"), "-d",
                            "-f", self.conf),
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)

        def ready():
            if self.lbd.poll() is not None:
                raise AssertionError("lbd in %s exited %s:\n%s" % (
                    self.ns, self.lbd.returncode, self.lbd_stderr()))
            kids = [(p, s) for p, s in lbdtest.children(self.lbd.pid)
                    if (lbdtest.proc_title(p) or "").startswith("lbd: worker")]
            self.lbd_workers = kids
            return len(kids) == 2 and os.path.exists(
                os.path.join(self.run, "lbd.pid"))
        assert lbdtest.poll_until(ready, 10 * SCALE), \
            "lbd in %s not ready\n%s" % (self.ns, self.lbd_stderr())

    def lbd_stderr(self):
        try:
            with open(self.lbd_err, errors="replace") as f:
                return f.read()[-5000:]
        except (FileNotFoundError, AttributeError):
            return ""

    def check_env(self):
        return dict(os.environ, PIDFILE=os.path.join(self.run, "lbd.pid"),
                    STATSFILE=os.path.join(self.run, "lbd.stats"),
                    LBSTAT=os.path.join(lbdtest.build_dir(), "lbstat"))

    def check(self):
        """Exit status of contrib's check_lbd.sh for this node."""
        return subprocess.run(
            ["sh", CHECK_LBD],
            env=self.check_env(), stdin=subprocess.DEVNULL,
            capture_output=True, timeout=20).returncode

    def start_keepalived(self, priority, vip):
        conf = os.path.join(self.dir, "keepalived.conf")
        with open(conf, "w") as f:
            f.write(KEEPALIVED_CONF.format(
                router_id="lbdha_" + self.name, run=self.run,
                lbstat=os.path.join(lbdtest.build_dir(), "lbstat"),
                check=CHECK_LBD,
                priority=priority, vip=vip))
        self.ka_log = os.path.join(self.dir, "keepalived.log")
        with open(self.ka_log, "ab") as out:
            self.keepalived = subprocess.Popen(
                self.nsexec(program("keepalived"), "-n", "-l", "-D",
                            "--vrrp", "-f", conf,
                            "-p", os.path.join(self.dir, "keepalived.pid"),
                            "-r", os.path.join(self.dir, "vrrp.pid"),
                            "-c", os.path.join(self.dir, "checkers.pid")),
                stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    def keepalived_log(self):
        try:
            with open(self.ka_log, errors="replace") as f:
                return f.read()[-5000:]
        except (FileNotFoundError, AttributeError):
            return ""

    def has_vip(self, vip):
        p = ip("-n", self.ns, "-4", "addr", "show", "dev", "eth0",
               check=False)
        return (" %s/" % vip) in p.stdout

    def kill_lbd(self):
        """SIGKILL the master and its workers, by PID."""
        pids = [(self.lbd.pid, lbdtest.proc_stat(self.lbd.pid)[2])] + \
            lbdtest.children(self.lbd.pid)
        kill_pids(pids)
        self.lbd.wait(10)
        lbdtest.poll_until(lambda: all(lbdtest.is_dead(p) for p, _ in pids),
                           5.0)

    def stop_lbd(self):
        """SIGTERM to the master; returns its exit status (None: hung)."""
        self.lbd_workers = lbdtest.children(self.lbd.pid) + self.lbd_workers
        self.lbd.send_signal(signal.SIGTERM)
        try:
            return self.lbd.wait(15 * SCALE)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        stop_process(self.keepalived, signal.SIGTERM, 10)
        if self.lbd is not None:
            kids = lbdtest.children(self.lbd.pid) + self.lbd_workers
            stop_process(self.lbd, signal.SIGTERM, 10 * SCALE)
            kill_pids(kids)
        stop_process(self.backend, signal.SIGKILL, 10)
        if self.backend is not None:
            self.backend.stdout.close()

    def describe(self):
        return "--- node %s lbd ---\n%s\n--- node %s keepalived ---\n%s" % (
            self.name, self.lbd_stderr(), self.name, self.keepalived_log())


CLIENT = r"""
import socket, sys, time
vip, port, until = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
err = None
while time.monotonic() < until:
    try:
        s = socket.create_connection((vip, port), timeout=1)
        s.settimeout(3)
        name = b""
        while not name.endswith(b"\n") and len(name) < 100:
            b = s.recv(1)
            if not b:
                break
            name += b
        s.sendall(b"ping\n")
        echo = b""
        while len(echo) < 5:
            b = s.recv(5 - len(echo))
            if not b:
                break
            echo += b
        s.close()
        if name.endswith(b"\n") and echo == b"ping\n":
            print(name.decode().strip())
            sys.exit(0)
        err = "name %r echo %r" % (name, echo)
    except OSError as e:
        err = repr(e)
    time.sleep(0.2)
print("FAILED", err)
sys.exit(1)
"""


def test_keepalived_failover(tmp_path, lbd_bin):
    if program("keepalived") is None:
        pytest.skip("keepalived is not installed (Debian package keepalived)")
    if program("ip") is None:
        pytest.skip("ip is not installed (Debian package iproute2)")
    pid = os.getpid()
    names = {k: "lbdha-%s-%d" % (k, pid) for k in ("lan", "a", "b", "c")}
    probe = ip("netns", "add", names["lan"], check=False)
    if probe.returncode != 0:
        pytest.skip("cannot create network namespaces (ip netns add: %s)"
                    % probe.stderr.strip())
    created = [names["lan"]]
    nodes = []
    net = "10.231.%d" % (pid % 200 + 20)
    vip = net + ".100"
    port = 8080
    try:
        for k in ("a", "b", "c"):
            ip("netns", "add", names[k])
            created.append(names[k])
        lan = names["lan"]
        ip("-n", lan, "link", "add", "br0", "type", "bridge")
        ip("-n", lan, "link", "set", "br0", "up")
        for i, k in enumerate(("a", "b", "c"), 1):
            ns = names[k]
            ip("-n", lan, "link", "add", "p" + k, "type", "veth", "peer",
               "name", "eth0", "netns", ns)
            ip("-n", lan, "link", "set", "p" + k, "master", "br0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", "%s.%d/24" % (net, i), "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")

        a = Node("A", names["a"], str(tmp_path))
        b = Node("B", names["b"], str(tmp_path))
        nodes += [a, b]
        for n in nodes:
            # lbd binds the VIP before this node holds it
            p = subprocess.run(n.nsexec("sysctl", "-qw",
                                        "net.ipv4.ip_nonlocal_bind=1"),
                               capture_output=True, text=True, timeout=20)
            assert p.returncode == 0, p.stderr
            n.start_backend()
            n.start_lbd(vip, port)
            if n.check() != 0:
                with open(os.path.join(n.run, "lbd.pid"), "rb") as f:
                    pidfile = f.read()
                raise AssertionError(
                    "%s exits %d for node %s's live lbd, so keepalived would "
                    "never hold the VIP (pid file %s holds %r)\n%s"
                    % (CHECK_LBD, n.check(), n.name,
                       os.path.join(n.run, "lbd.pid"), pidfile,
                       n.describe()))

        # A first, so that it wins the election; then B joins as BACKUP
        a.start_keepalived(150, vip)
        t0 = time.monotonic()
        assert lbdtest.poll_until(lambda: a.has_vip(vip), 15.0, 0.1), \
            "VIP never reached node A\n" + a.describe()
        print("node A took the VIP after %.1fs" % (time.monotonic() - t0))
        b.start_keepalived(100, vip)
        assert lbdtest.poll_until(
            lambda: "Entering BACKUP STATE" in b.keepalived_log(), 10.0,
            0.1), "keepalived on B did not start\n" + b.describe()
        time.sleep(1.5)			# B hears A's adverts and stays BACKUP
        assert a.has_vip(vip) and not b.has_vip(vip), \
            a.describe() + b.describe()

        def through_vip(timeout):
            p = subprocess.run(
                ["ip", "netns", "exec", names["c"], sys.executable, "-c",
                 CLIENT, vip, str(port), str(timeout)],
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout + 20)
            return p.stdout.strip() + p.stderr.strip()

        assert through_vip(10 * SCALE) == "A", a.describe()

        a.kill_lbd()
        t_kill = time.monotonic()
        assert a.check() != 0, "check_lbd.sh passes with lbd dead"
        moved = lbdtest.poll_until(
            lambda: b.has_vip(vip) and not a.has_vip(vip), 12.0, 0.1)
        took = time.monotonic() - t_kill
        assert moved, "VIP did not move to B within 12s (A has it: %s, " \
            "B has it: %s)\n%s\n%s" % (a.has_vip(vip), b.has_vip(vip),
                                        a.describe(), b.describe())
        print("VIP moved to B %.1fs after lbd on A was killed" % took)
        assert through_vip(10 * SCALE) == "B", b.describe()
        status = b.stop_lbd()
        assert status == 0, "lbd on B exited %s on SIGTERM\n%s" % (
            status, b.describe())
        problems = []
        for n in nodes:
            text = n.lbd_stderr()
            for pat in lbdtest.SANITIZER_PATTERNS:
                if pat in text:
                    problems.append("node %s: %s\n%s" % (n.name, pat, text))
        assert not problems, "\n".join(problems)
    finally:
        for n in nodes:
            n.stop()
        for ns in reversed(created):
            ip("netns", "del", ns, check=False)


def test_keepalived_example_is_valid(tmp_path):
    """keepalived -t accepts contrib's example, with the check script at
    this tree's path instead of /etc/keepalived."""
    keepalived = shutil.which("keepalived")
    if keepalived is None:
        pytest.skip("keepalived is not installed")
    contrib = os.path.join(os.path.dirname(__file__), "..", "..", "contrib",
                           "keepalived")
    script = os.path.abspath(os.path.join(contrib, "check_lbd.sh"))
    with open(os.path.join(contrib, "keepalived.conf")) as f:
        text = f.read()
    assert "/etc/keepalived/check_lbd.sh" in text
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text.replace("/etc/keepalived/check_lbd.sh", script))
    r = subprocess.run([keepalived, "-t", "-f", str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
