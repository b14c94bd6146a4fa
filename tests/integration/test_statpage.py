"""lbstat -l, the status server, against a real lbd: /metrics scraped by
Prometheus itself, the page rendered by a headless Chromium, and the HTTP
edges (unknown paths, methods, oversize and slow requests, too many
clients, lbd restarting underneath).  Real binaries over loopback; every
wait is bounded.
"""

import http.client
import http.server
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import pytest

import lbdtest
from lbdtest import SCALE, service

CLIENTS = 16			# statserve.c SERVE_CLIENTS
HEAD_MAX = 8192			# statserve.c SERVE_HEAD_MAX
READ_S = 10.0			# statserve.c SERVE_READ_S


# -- lbstat -l -----------------------------------------------------------------

def build_bin(name):
    path = os.path.join(lbdtest.build_dir(), name)
    if not os.access(path, os.X_OK):
        pytest.fail("no %s binary at %s (build it, or set LBD_BUILD)" % (name, path))
    return path


def stats_path(d):
    return os.path.join(d.runtime_dir, "lbd.stats")


class StatServer:
    """lbstat -l on a free loopback port for a segment; .port."""

    TRIES = 3

    def __init__(self, segment, *args, prefix=()):
        self.prefix = list(prefix)
        for _ in range(self.TRIES):
            self.port = lbdtest.free_port()
            if self._start(segment, args):
                return
            if not any("in use" in l for l in self.lines):
                break			# not a lost port race
        raise AssertionError("lbstat -l did not start: %r" % self.lines)

    def _start(self, segment, args):
        self.proc = subprocess.Popen(
            self.prefix + [build_bin("lbstat"), "-l", "127.0.0.1:%d" % self.port,
                           "-s", segment] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10 * SCALE
        self.lines = []
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stderr], [], [], 0.5)
            if not r:
                continue
            line = self.proc.stderr.readline().decode()
            self.lines.append(line)
            if "serving http://127.0.0.1:%d/" % self.port in line:
                return True
            if line == "":
                break
        self.stop()
        return False

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        """SIGTERM: it must exit 0, promptly."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10 * SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            rc = "ignored SIGTERM"
        self.lines.append(self.proc.stderr.read().decode(errors="replace"))
        self.proc.stderr.close()
        return rc

    def sanitizer_reports(self):
        return [l for l in self.lines if "Sanitizer" in l or "runtime error" in l]


@pytest.fixture
def statserver():
    started = []

    def start(segment, *args, prefix=()):
        s = StatServer(segment, *args, prefix=prefix)
        started.append(s)
        return s

    yield start
    for s in started:
        assert s.stop() == 0, s.lines
        assert not s.sanitizer_reports(), s.lines


def get(srv, path, method="GET", body=None, timeout=10.0):
    """(status, headers dict with lower-case names, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout * SCALE)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def raw(srv, data, timeout=10.0):
    """Sends data as it is, returns everything until the server closes."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout * SCALE)
    try:
        s.sendall(data)
        return lbdtest.recv_until_eof(s, 1 << 20)
    finally:
        s.close()


def status_of(response):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", response)
    assert m, response[:200]
    return int(m.group(1))


def poll(pred, timeout, step=0.1):
    deadline = time.monotonic() + timeout * SCALE
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def lbstat_out(*args):
    env = dict(os.environ)
    env.pop("LBD_CONF", None)
    r = subprocess.run([build_bin("lbstat")] + list(args), env=env,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20 * SCALE)
    assert r.returncode == 0, r.stderr
    return r.stdout


def exchange(port, size=100):
    """One connection through lbd to an ident backend; returns its name."""
    s = lbdtest.connect(port)
    try:
        name = lbdtest.recv_line(s)[:-1].decode()
        s.sendall(b"x" * size)
        assert lbdtest.recv_exact(s, size) == b"x" * size
        return name
    finally:
        s.close()


def shape(v):
    """The keys of a JSON value, recursively (lists by their first item);
    scalars alike, null included (a ratio is null when a minimum is 0)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return "value"


# Series whose value moves with the clock, not with traffic: the server's
# sample may be up to a second older than lbstat -p's.
CLOCK_SERIES = re.compile(r"^(lbd_uptime_seconds|lbd_worker_heartbeat_age_seconds)[ {]")


def without_uptime(text):
    return "\n".join(l for l in text.splitlines() if not CLOCK_SERIES.match(l))


def backend_set(n, backend, first=1):
    return [backend("ident", "app%d" % i) for i in range(first, first + n)]


# -- plain HTTP ----------------------------------------------------------------

def test_endpoints_match_lbstat(lbd, backend, statserver):
    d = lbd([service("web", backend_set(3, backend))], workers=2)
    for _ in range(9):
        exchange(d.port["web"])
    srv = statserver(stats_path(d))

    # /metrics is lbstat -p, byte for byte once the counters settled
    # (uptime aside: the server samples once a second).
    want = lambda: without_uptime(lbstat_out("-p", "-s", stats_path(d)))
    got = lambda: without_uptime(get(srv, "/metrics")[2].decode())
    assert poll(lambda: got() == want(), 5), (got(), want())
    st, hdr, _ = get(srv, "/metrics")
    assert st == 200 and hdr["content-type"].startswith("text/plain; version=0.0.4")

    # /stats.json has the keys of lbstat -j -i (a sample with rates), and
    # the same counters.
    lines = lbstat_out("-j", "-i", "0.2", "-c", "2", "-s", stats_path(d)).splitlines()
    ref = json.loads(lines[1])
    # The server's first sample has nothing to take rates against: the
    # second, a second later, has.
    js = poll(lambda: (lambda j: j if "interval_s" in j else None)(
        json.loads(get(srv, "/stats.json")[2])), 5)
    st, hdr, body = get(srv, "/stats.json")
    assert st == 200 and hdr["content-type"] == "application/json"
    assert shape(js) == shape(ref)
    conns = lambda j: {b["name"]: b["connections"] for b in j["services"][0]["backends"]}
    assert conns(js) == conns(ref) and sum(conns(js).values()) == 9
    assert js["pid"] == d.pid

    # /history.json: one sample a second, every backend.
    h = json.loads(get(srv, "/history.json")[2])
    assert sorted(b["name"] for b in h["backends"]) == ["app1", "app2", "app3"]
    assert all(len(b["connections_per_s"]) == len(h["time"]) for b in h["backends"])
    assert 1 <= len(h["time"]) <= 300


def test_usage_and_listen_errors(tmp_path):
    lbstat = build_bin("lbstat")
    seg = str(tmp_path / "none.stats")
    for args in (["-l", "127.0.0.1:1", "-j"], ["-l", "127.0.0.1:1", "-p"],
                 ["-l", "127.0.0.1:1", "-i", "1"]):
        r = subprocess.run([lbstat, "-s", seg] + args, capture_output=True,
                           text=True, timeout=10 * SCALE)
        assert r.returncode == 2 and "-l excludes -i, -j and -p" in r.stderr, r
    r = subprocess.run([lbstat, "-s", seg, "-l", "nonsense"], capture_output=True,
                       text=True, timeout=10 * SCALE)
    assert r.returncode == 1 and "-l nonsense: " in r.stderr, r
    # A port taken: the error names the address and the system's reason.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        where = "127.0.0.1:%d" % taken.getsockname()[1]
        r = subprocess.run([lbstat, "-s", seg, "-l", where], capture_output=True,
                           text=True, timeout=10 * SCALE)
    assert r.returncode == 1 and "-l %s: listen: Address already in use" % where \
        in r.stderr, r


def test_filter_argument(lbd, backend, statserver):
    d = lbd([service("web", backend_set(2, backend)),
             service("db", backend_set(1, backend, first=3))], workers=1)
    srv = statserver(stats_path(d), "web")
    js = json.loads(get(srv, "/stats.json")[2])
    assert [s["name"] for s in js["services"]] == ["web"]
    metrics = get(srv, "/metrics")[2].decode()
    assert 'service="web"' in metrics and 'service="db"' not in metrics
    assert without_uptime(metrics) == without_uptime(
        lbstat_out("-p", "-s", stats_path(d), "web"))


def test_serves_as_an_unprivileged_user(lbd, backend, statserver):
    """What contrib/systemd/lbstat-http.service relies on: any user may
    read the segment, so lbstat -l needs no privilege."""
    if os.geteuid() != 0:
        pytest.skip("switching to user nobody needs root")
    d = lbd([service("web", backend_set(1, backend))], workers=1)
    srv = statserver(stats_path(d), prefix=["setpriv", "--reuid=65534",
                                            "--regid=65534", "--clear-groups"])
    status = open("/proc/%d/status" % srv.proc.pid).read()
    assert re.search(r"^Uid:\t65534\t65534\t", status, re.M), status
    st, _, body = get(srv, "/metrics")
    assert st == 200 and b"\nlbd_up 1\n" in body


def test_page_is_self_contained(lbd, backend, statserver):
    d = lbd([service("web", backend_set(1, backend))], workers=1)
    srv = statserver(stats_path(d))
    st, hdr, body = get(srv, "/")
    assert st == 200 and hdr["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in hdr["content-security-policy"]
    page = body.decode()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    # Nothing fetched from elsewhere: no external script, style, font or image.
    for bad in (r"<script[^>]*\bsrc=", r"<link\b", r"@import", r"url\(",
                r"<img\b", r"<iframe\b", r"https?://(?!www\.w3\.org/2000/svg)"):
        assert not re.search(bad, page, re.I), bad
    st, hdr, body = get(srv, "/", method="HEAD")
    assert st == 200 and body == b"" and int(hdr["content-length"]) == len(page.encode())


def test_http_errors(lbd, backend, statserver):
    d = lbd([service("web", backend_set(1, backend))], workers=1)
    srv = statserver(stats_path(d))
    assert get(srv, "/nothing-here")[0] == 404
    assert get(srv, "/metrics/")[0] == 404
    st, hdr, _ = get(srv, "/metrics", method="POST", body=b"a=1")
    assert st == 405 and hdr["allow"] == "GET, HEAD"
    assert get(srv, "/stats.json", method="DELETE")[0] == 405
    # Query strings are ignored, as browsers add them to defeat caches.
    assert get(srv, "/stats.json?t=1")[0] == 200
    assert status_of(raw(srv, b"garbage\r\n\r\n")) == 400
    assert status_of(raw(srv, b"GET / HTTP/2.0\r\n\r\n")) == 400
    assert status_of(raw(srv, b"GET /" + b"a" * 400 + b" HTTP/1.1\r\n\r\n")) == 414
    # A head over the limit is refused (431), whatever follows.
    big = b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"p" * (HEAD_MAX + 100) + b"\r\n\r\n"
    assert status_of(raw(srv, big)) == 431
    # Bare LFs are accepted (RFC 9112 2.2), HTTP/1.0 too.
    assert status_of(raw(srv, b"GET /metrics HTTP/1.0\n\n")) == 200
    assert get(srv, "/metrics")[0] == 200		# and it still serves


def test_clients_bounded_and_timed_out(lbd, backend, statserver):
    d = lbd([service("web", backend_set(1, backend))], workers=1)
    srv = statserver(stats_path(d))
    idle = []
    try:
        # Slow clients: each sent half a request line and stops.
        for _ in range(CLIENTS):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * SCALE)
            s.sendall(b"GET /met")
            idle.append(s)
        time.sleep(0.3)
        # One more is refused politely (a reset, should its request come
        # after the refusal, is allowed), and closed; never served.
        refused = []
        for _ in range(3):
            try:
                refused.append(status_of(raw(srv, b"GET / HTTP/1.1\r\n\r\n")))
            except ConnectionResetError:
                pass
        assert refused and set(refused) == {503}, refused
        # The slow ones are closed after their deadline; then it serves again.
        t0 = time.monotonic()
        for s in idle:
            s.settimeout((READ_S + 5) * SCALE)
            assert s.recv(100) == b""
        waited = time.monotonic() - t0
        assert READ_S - 1.5 < waited + 0.3 < READ_S + 3 * SCALE, waited
        assert get(srv, "/metrics")[0] == 200
    finally:
        for s in idle:
            s.close()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_hours_of_polling_leak_nothing(lbd, backend, statserver):
    """What a browser left open does for hours, compressed: many requests,
    some abandoned half-way or reset, and the server's descriptors and
    memory come back to where they were."""
    d = lbd([service("web", backend_set(2, backend))], workers=1)
    srv = statserver(stats_path(d))
    get(srv, "/stats.json")
    fds = fd_count(srv.proc.pid)
    for i in range(400):
        kind = i % 4
        if kind == 0:
            assert get(srv, "/stats.json")[0] == 200
        elif kind == 1:
            assert get(srv, "/history.json")[0] == 200
        else:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * SCALE)
            s.sendall(b"GET /metrics HTTP/1.1\r\n" if kind == 2 else
                      b"GET / HTTP/1.1\r\n\r\n")
            if kind == 3:		# a reset instead of a FIN, unread response and all
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
    rss = lambda: int(re.search(r"VmRSS:\s+(\d+)", open(
        "/proc/%d/status" % srv.proc.pid).read()).group(1))
    before = rss()
    for _ in range(200):
        get(srv, "/stats.json")
    # (fds may count the first request's connection, still lingering.)
    assert poll(lambda: fd_count(srv.proc.pid) <= fds, 5), (fd_count(srv.proc.pid), fds)
    # KiB: nothing grows per request.  (Under ASan freed memory sits in its
    # quarantine, so RSS grows anyway; LeakSanitizer checks at exit there.)
    if "asan" not in os.path.basename(lbdtest.build_dir()):
        assert rss() - before < 2048, (before, rss())
    assert get(srv, "/metrics")[0] == 200


def test_lbd_restarted_underneath(lbd, backend, statserver):
    d = lbd([service("web", backend_set(2, backend))], workers=1)
    srv = statserver(stats_path(d))
    pid = json.loads(get(srv, "/stats.json")[2])["pid"]
    assert pid == d.pid

    # lbd stops: its last figures stay on show, marked not running.
    os.kill(d.pid, signal.SIGTERM)
    assert d.wait(15 * SCALE) is not None
    js = poll(lambda: (lambda j: j if not j["running"] else None)(
        json.loads(get(srv, "/stats.json")[2])), 5)
    assert js and js["services"][0]["name"] == "web"	# (a stopped master zeroes its pid)
    assert "\nlbd_up 0\n" in get(srv, "/metrics")[2].decode()

    # No segment at all: 503, saying why.
    os.unlink(stats_path(d))
    st = poll(lambda: get(srv, "/stats.json")[0] == 503, 5)
    assert st
    st, _, body = get(srv, "/metrics")
    assert st == 503 and b"No such file or directory (is lbd running?)" in body
    assert get(srv, "/")[0] == 200			# the page still loads

    # A new lbd: the server maps the new segment and follows its counters.
    d.start()
    js = poll(lambda: (lambda r: json.loads(r[2]) if r[0] == 200 else None)(
        get(srv, "/stats.json")), 5)
    assert js and js["pid"] == d.pid != pid and js["running"]
    for _ in range(5):
        exchange(d.port["web"])
    assert poll(lambda: sum(b["connections"] for b in json.loads(
        get(srv, "/stats.json")[2])["services"][0]["backends"]) == 5, 5)
    # The history has a gap where there was no segment, then goes on.
    h = json.loads(get(srv, "/history.json")[2])
    active = h["backends"][0]["active"]
    assert None in active and active[-1] is not None


# -- Prometheus ----------------------------------------------------------------

def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip("%s is not installed (contrib/install-deps.sh installs it)" % name)
    return path


def prom_query(port, query):
    url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (port, urllib.parse.quote(query))
    try:
        with urllib.request.urlopen(url, timeout=5 * SCALE) as r:
            js = json.loads(r.read())
    except OSError:
        return None			# not up yet
    assert js["status"] == "success", js
    return js["data"]["result"]


def test_prometheus_scrapes_metrics(lbd, backend, statserver, tmp_path):
    prometheus = tool("prometheus")
    d = lbd([service("web", backend_set(2, backend))], workers=2)
    srv = statserver(stats_path(d))
    conf = tmp_path / "prometheus.yml"
    conf.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: lbd\n    static_configs:\n"
        "      - targets: ['127.0.0.1:%d']\n" % srv.port)
    port = lbdtest.free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    p = subprocess.Popen(
        [prometheus, "--config.file=%s" % conf,
         "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
         "--web.listen-address=127.0.0.1:%d" % port],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        names = [exchange(d.port["web"]) for _ in range(13)]
        want = {n: names.count(n) for n in set(names)}

        def seen():
            r = prom_query(port, "lbd_backend_connections_total")
            if not r:
                return None
            got = {s["metric"]["backend"]: int(float(s["value"][1])) for s in r}
            return got if got == want else None

        got = poll(seen, 40, step=0.5)
        if not got:
            log.flush()
            pytest.fail("Prometheus never saw %s; last answer %s; its log:\n%s"
                        % (want, prom_query(port, "lbd_backend_connections_total"),
                           (tmp_path / "prometheus.log").read_text()[-3000:]))
        r = prom_query(port, 'up{job="lbd"}')
        assert r and r[0]["value"][1] == "1"
        r = prom_query(port, 'lbd_backend_state{backend="app1",state="up"}')
        assert r and r[0]["metric"]["service"] == "web" and r[0]["value"][1] == "1"
    finally:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        log.close()


# -- Chromium ------------------------------------------------------------------

def chromium(*args, timeout=60.0):
    """Headless Chromium with a fresh profile, nothing phoned home; as root
    it needs --no-sandbox."""
    exe = tool("chromium")
    profile = tempfile.mkdtemp(prefix="lbd-chromium-")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--user-data-dir=" + profile] + list(args)
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout * SCALE)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def rendered_rows(dom):
    """{service/backend: state} from the page's rows."""
    return dict(re.findall(r'<tr data-backend="([^"]+)" data-state="([^"]+)"', dom))


def test_chromium_renders_page(lbd, backend, statserver):
    import test_lbadmin
    d = lbd([service("web", backend_set(3, backend)),
             service("db", backend_set(2, backend, first=4))], workers=2)
    test_lbadmin.ok(d, "drain", "web/app2")
    test_lbadmin.ok(d, "disable", "db/app5")
    for _ in range(12):
        exchange(d.port["web"])
    srv = statserver(stats_path(d))
    r = chromium("--virtual-time-budget=4000", "--dump-dom", srv.url("/"))
    dom = r.stdout.decode(errors="replace")
    assert r.returncode == 0 and "</html>" in dom, r.stderr.decode()[-2000:]
    m = re.search(r'id="refreshes" data-count="(\d+)"', dom)
    assert m and int(m.group(1)) >= 2, dom[-3000:]
    assert rendered_rows(dom) == {"web/app1": "up", "web/app2": "drain",
                                  "web/app3": "up", "db/app4": "up",
                                  "db/app5": "disabled"}, dom[-3000:]
    for name in ("app1", "app2", "app3", "app4", "app5"):
        assert '<td class="name">%s</td>' % name in dom
    # One chart per backend, and the web service's imbalance figure.
    assert dom.count('class="spark"') == 5
    assert re.search(r'<section class="svc" data-service="web">.*?data-ratio="[\d.]+"',
                     dom, re.S)
    # lbd gone underneath: the page says so instead of going blank.
    os.kill(d.pid, signal.SIGTERM)
    assert d.wait(15 * SCALE) is not None
    os.unlink(stats_path(d))
    assert poll(lambda: get(srv, "/stats.json")[0] == 503, 5)
    dom = chromium("--virtual-time-budget=3000", "--dump-dom",
                   srv.url("/")).stdout.decode(errors="replace")
    assert re.search(r'id="banner"[^>]*>lbstat: 503 Service Unavailable: .*is lbd running',
                     dom), dom[-2000:]


class FakeStats(http.server.BaseHTTPRequestHandler):
    """Serves the page lbstat serves, with figures lbstat does not make
    (yet): states the page does not know, and JSON with exchanges totals
    but no exchanges_per_s, or with no exchanges at all (an older lbd)."""

    page = b""
    with_exchanges = True
    history = {"interval_s": 1, "time": [], "backends": []}

    samples = 0

    def do_GET(self):
        # A second per sample, whatever the clock: Chromium's virtual time
        # runs the page's refreshes faster than real seconds.
        if self.path == "/stats.json":
            FakeStats.samples += 1
        t = 1800000000 + FakeStats.samples
        stats = {"version": "9.9.9", "pid": 1, "running": True, "uptime_s": 5,
                 "generation": 1, "time": t, "workers_configured": 1,
                 "worker_restarts": 0, "reloads": 0, "interval_s": 1.0,
                 "workers": [{"id": 1, "pid": 2, "active": 0, "accepted": 0,
                              "restarts": 0, "generation": 1, "state": "running"}],
                 "services": [{"name": "web", "listen": ["127.0.0.1:1"],
                               "balance": "roundrobin", "active": 0, "accepted": 0,
                               "rejected": 0, "accepted_per_s": 0, "imbalance": None,
                               "backends": [self.backend("app1", "up", t),
                                            self.backend("app2", "up", t, backup=True),
                                            self.backend("app3", "up", t, ramp=40),
                                            self.backend("app4", "maint", t)]}]}
        body = {"/": self.page, "/stats.json": json.dumps(stats).encode(),
                "/history.json": json.dumps(self.history).encode()}.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    @classmethod
    def backend(cls, name, state, t, backup=False, ramp=100):
        b = {"name": name, "backup": backup, "ramp": ramp, "address": "127.0.0.1:2", "state": state, "weight": 1,
                "active": 0, "connections": 10, "connect_failures": 0, "bytes_in": 0,
                "bytes_out": 0, "spliced_in": 0, "spliced_out": 0,
                "connections_per_s": 1.0, "bytes_in_per_s": 0, "bytes_out_per_s": 0,
                "check": {"status": "ok", "latency_ms": 0.1, "last_change_s": 1,
                          "text": "ok", "stale": name == "app3"}}
        if cls.with_exchanges:
            b["exchanges"] = 1000 + 7 * t
        return b

    def log_message(self, *args):
        pass


def fake_page_dom(page, with_exchanges):
    FakeStats.page = page
    FakeStats.with_exchanges = with_exchanges
    httpd = http.server.HTTPServer(("127.0.0.1", 0), FakeStats)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        return chromium("--virtual-time-budget=4000", "--dump-dom",
                        "http://127.0.0.1:%d/" % httpd.server_address[1]
                        ).stdout.decode(errors="replace")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_chromium_page_unknown_states_and_exchanges(lbd, backend, statserver):
    """The page shows states it does not know as they are, backups and
    slow-start ramps beside the state, stale checks, and an exchanges column
    only when the JSON has exchanges."""
    d = lbd([service("web", backend_set(1, backend))], workers=1)
    srv = statserver(stats_path(d))
    page = get(srv, "/")[2]
    dom = fake_page_dom(page, True)
    assert rendered_rows(dom) == {"web/app1": "up", "web/app2": "up",
                                  "web/app3": "up", "web/app4": "maint"}, dom[-3000:]
    assert '<span class="s-other">maint</span>' in dom
    row = lambda name: re.search(r'<tr data-backend="web/%s".*?</tr>' % name, dom).group(0)
    assert '<small class="tag">backup</small>' in row("app2")
    assert '<small class="tag">ramp 40%</small>' in row("app3")
    assert "tag" not in row("app1") and "stale" in row("app3") and "stale" not in row("app1")
    assert "<th>exch/s</th>" in dom and "<th>exchanges/s, 5 min</th>" in dom
    # 7 exchanges a second, from the difference of two samples.
    assert re.search(r'<td class="exch">7\.0</td>', dom), dom[-3000:]
    # Without exchanges in the JSON, no such column, and the load is connections.
    dom = fake_page_dom(page, False)
    assert 'data-backend="web/app2"' in dom and "<th>exch/s</th>" not in dom
    assert "<th>connections/s, 5 min</th>" in dom
    # lbd has them: the column is there, with lbd's own rate.
    for _ in range(3):
        exchange(d.port["web"])
    dom = chromium("--virtual-time-budget=3000", "--dump-dom",
                   srv.url("/")).stdout.decode(errors="replace")
    assert 'data-backend="web/app1"' in dom and "<th>exch/s</th>" in dom
