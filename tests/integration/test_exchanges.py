"""Exchanges, leastload and max-connection-age (issue: balance load, not
connections), through the real binaries over loopback.

The backends here are in-test line servers: every line a client sends is a
request, answered with one line naming the backend, so the test knows how
many requests each backend served and where each connection landed.
"""

import json
import os
import re
import socket
import socketserver
import subprocess
import threading
import time

import lbdtest
from lbdtest import SCALE, service


class LineServer(socketserver.ThreadingTCPServer):
    """Answers each request line with "NAME SEQ\\n", after `delay` seconds;
    with `split`, the answer comes in two pieces `split` seconds apart."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name, delay=0.0, split=0.0):
        self.name = name
        self.delay = delay
        self.split = split
        self.requests = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), LineHandler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.server_address[1]

    def stop(self):
        self.shutdown()
        self.server_close()


class LineHandler(socketserver.StreamRequestHandler):
    def handle(self):
        srv = self.server
        try:
            for line in self.rfile:
                with srv.lock:
                    srv.requests += 1
                if srv.delay:
                    time.sleep(srv.delay)
                reply = ("%s %s\n" % (srv.name, line.decode().strip())).encode()
                if srv.split:
                    self.wfile.write(reply[:3])
                    self.wfile.flush()
                    time.sleep(srv.split)
                    reply = reply[3:]
                self.wfile.write(reply)
                self.wfile.flush()
        except (ConnectionError, OSError):
            pass


def servers(request, *specs):
    made = [LineServer(*s) if isinstance(s, tuple) else LineServer(s) for s in specs]
    request.addfinalizer(lambda: [s.stop() for s in made])
    return made


def ask(sock, f, text):
    """One request, one answer: the backend's name."""
    sock.sendall(text.encode() + b"\n")
    line = f.readline()
    assert line, "connection closed before the answer to %r" % text
    return line.decode().split()[0]


def lbstat_json(d):
    p = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-j", "-s",
                        os.path.join(d.runtime_dir, "lbd.stats")],
                       capture_output=True, text=True, timeout=10 * SCALE)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[0])


def backends(js):
    return {b["name"]: b for s in js["services"] for b in s["backends"]}


def client(port, n, delay=0.0):
    """n requests, one after the other, on one connection; its backend."""
    s = lbdtest.connect(port)
    f = s.makefile("rb")
    names = {ask(s, f, "r%d" % i) for i in range(n) if not delay or time.sleep(delay) is None}
    s.close()
    assert len(names) == 1
    return names.pop()


def test_exchanges_exact(request, lbd):
    """300 requests on 6 keep-alive connections: 300 exchanges, each
    backend's as many as it served; pipelined requests count once; the
    connection log line carries the count."""
    a, b, c = servers(request, "a", "b", "c")
    d = lbd([service("web", [("a", a.address), ("b", b.address), ("c", c.address)])],
            log_connections=True)
    lbdtest.run_parallel(lambda: client(d.port["web"], 50), [()] * 6, threads=6)
    be = backends(lbstat_json(d))
    for srv in (a, b, c):
        assert be[srv.name]["exchanges"] == srv.requests, (be, srv.name)
    assert sum(x["exchanges"] for x in be.values()) == 300
    svc = lbstat_json(d)["services"][0]
    assert svc["exchanges"] == 300
    assert lbdtest.poll_until(lambda: len(re.findall(r" exch 50: client closed",
                                                     d.stderr())) == 6, 5 * SCALE)
    # Three requests in one write, answered as they come: one turn each time.
    before = sum(x["exchanges"] for x in backends(lbstat_json(d)).values())
    s = lbdtest.connect(d.port["web"])
    f = s.makefile("rb")
    for i in range(10):
        s.sendall(b"p1\np2\np3\n")
        for _ in range(3):
            assert f.readline()
    s.close()
    after = sum(x["exchanges"] for x in backends(lbstat_json(d)).values())
    assert after - before == 10
    assert sum(srv.requests for srv in (a, b, c)) == 330
    prom = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-p", "-s",
                           os.path.join(d.runtime_dir, "lbd.stats")],
                          capture_output=True, text=True, timeout=10 * SCALE).stdout
    total = sum(int(m) for m in re.findall(
        r'^lbd_backend_exchanges_total\{service="web",backend="[abc]"\} (\d+)$',
        prom, re.M))
    assert total == after
    table = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-s",
                            os.path.join(d.runtime_dir, "lbd.stats")],
                           capture_output=True, text=True, timeout=10 * SCALE).stdout
    assert " EXCH " in table and "exch max/min" in table, table


def wait_eof(sock, timeout):
    """Seconds until the peer's FIN (a reset fails the test), or None."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        data = sock.recv(100)
    except socket.timeout:
        return None
    assert data == b"", data
    return time.monotonic() - start


def test_age_waits_for_the_answer(request, lbd):
    """max-connection-age never cuts a request in flight: a backend that
    answers after 2.5 s is waited for well past the age; once it answered
    and both sides were quiet for age-quiet, the client gets a FIN."""
    slow, = servers(request, ("slow", 2.5))
    d = lbd([service("web", [("slow", slow.address)], max_connection_age="1s",
                     age_quiet="200ms")], log_connections=True)
    s = lbdtest.connect(d.port["web"])
    f = s.makefile("rb")
    t0 = time.monotonic()
    assert ask(s, f, "first") == "slow"
    assert time.monotonic() - t0 >= 2.4
    waited = wait_eof(s, 3 * SCALE)
    assert waited is not None and waited < 1.0 * SCALE, waited
    s.close()
    assert backends(lbstat_json(d))["slow"]["aged_out"] == 1
    assert lbdtest.poll_until(lambda: ": aged out" in d.stderr(), 5 * SCALE)


def test_age_spares_a_busy_connection(request, lbd):
    """A client that is never quiet for age-quiet keeps its connection past
    the age; when it falls silent, the connection is closed within
    age-quiet and a tick."""
    srv, = servers(request, "b")
    d = lbd([service("web", [("b", srv.address)], max_connection_age="500ms",
                     age_quiet="300ms")])
    s = lbdtest.connect(d.port["web"])
    f = s.makefile("rb")
    end = time.monotonic() + 2.0
    n = 0
    while time.monotonic() < end:
        assert ask(s, f, "busy%d" % n) == "b"	# closed mid-way: fails here
        n += 1
        time.sleep(0.05)
    waited = wait_eof(s, 3 * SCALE)
    assert waited is not None and 0.25 <= waited < 0.3 + 0.5 * SCALE, waited
    s.close()
    assert backends(lbstat_json(d))["b"]["aged_out"] == 1
    assert backends(lbstat_json(d))["b"]["exchanges"] == n


def test_leastload_spreads_a_skewed_load(request, lbd):
    """Two heavy keep-alive clients and two light ones, connected in an
    order that puts both heavy ones on one backend under round robin:
    leastload sends the second heavy one where the load is not."""
    a, b, c = servers(request, "a", "b", "c")
    backends_ = [("a", a.address), ("b", b.address), ("c", c.address)]
    d = lbd([service("web", backends_, balance="leastload")], workers=1)
    stop = threading.Event()
    landed = {}

    def heavy(tag):
        s = lbdtest.connect(d.port["web"])
        f = s.makefile("rb")
        deadline = time.monotonic() + 8
        while not stop.is_set() and time.monotonic() < deadline:
            landed[tag] = ask(s, f, tag)
            time.sleep(0.005)
        s.close()

    def light(tag):
        s = lbdtest.connect(d.port["web"])
        f = s.makefile("rb")
        landed[tag] = ask(s, f, tag)
        deadline = time.monotonic() + 8
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.5)
            ask(s, f, tag)
        s.close()

    threads = []
    for tag, fn in (("h1", heavy), ("l1", light), ("l2", light), ("h2", heavy)):
        t = threading.Thread(target=fn, args=(tag,), daemon=True)
        t.start()
        threads.append(t)
        lbdtest.poll_until(lambda: tag in landed, 5 * SCALE)
        time.sleep(1.0)		# the load meter sees it
    stop.set()
    for t in threads:
        t.join(10)
    assert landed["h2"] != landed["h1"], landed
    js = lbstat_json(d)
    assert js["services"][0]["balance"] == "leastload"
