"""Integration tests for the lbd core: configuration check, process titles,
balancing, byte-exact relaying, half-close, idle timeout, worker restarts,
graceful stop and connect retries.  Real binaries over loopback; every test
has its own lbd and its own ports.  Run with -s to see measured figures.
"""

import collections
import hashlib
import os
import random
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import backend as backend_mod
import lbdtest
from lbdtest import SCALE, ident, run_parallel, service

MiB = 1 << 20




def failures(results):
    return [r for r in results if isinstance(r, Exception)]


# -- lbd -t and -V -----------------------------------------------------------

HEADER = """\
workers = 2
user = "{user}"
group = "{group}"
admin-group = "{admin}"
runtime-dir = "{run}"
shutdown-grace = "5s"
"""

VALID = HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    balance = "roundrobin"
    connect-timeout = "3s"
    idle-timeout = "5m"
    retries = 2
    health {
        interval = "2s"
        timeout = "1s"
        rise = 2
        fall = 3
    }
    backend app1 { address = "127.0.0.1:{p2}"  weight = 1 }
    backend app2 { address = "127.0.0.1:{p3}"  weight = 3 }
}
"""

# Each broken config marks the line(s) its error may name with "# ERR", and
# lists words of which the message must contain at least one.
BROKEN = {
    "unknown-key": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    bogus-key = 1                                   # ERR
    backend app1 { address = "127.0.0.1:{p2}" }
}
""", ["bogus-key"]),
    "bad-duration": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    connect-timeout = "3 parsecs"                   # ERR
    backend app1 { address = "127.0.0.1:{p2}" }
}
""", ["connect-timeout", "parsecs", "duration"]),
    "negative-retries": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    retries = -1                                    # ERR
    backend app1 { address = "127.0.0.1:{p2}" }
}
""", ["retries", "-1"]),
    "weight-out-of-range": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    backend app1 { address = "127.0.0.1:{p2}" }
    backend app2 {
        address = "127.0.0.1:{p3}"
        weight = 999                                # ERR
    }
}
""", ["weight", "999"]),
    "duplicate-backend": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    backend app1 { address = "127.0.0.1:{p2}" }
    backend app2 { address = "127.0.0.1:{p3}" }
    backend app1 { address = "127.0.0.1:{p3}" }    # ERR
}
""", ["app1"]),
    "no-backend": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    backend app1 { address = "127.0.0.1:{p2}" }
}

service empty {                                     # ERR
    listen = { "127.0.0.1:{p3}" }
}
""", ["backend"]),
    "address-twice": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    backend app1 { address = "127.0.0.1:{p2}" }
}

service other {                                     # ERR
    listen = { "127.0.0.1:{p1}" }                  # ERR
    backend app1 { address = "127.0.0.1:{p3}" }
}
""", ["127.0.0.1:{p1}"]),
    "unresolvable-host": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    backend app1 { address = "127.0.0.1:{p2}" }
    backend app2 { address = "no-such-host.invalid:80" }    # ERR
}
""", ["no-such-host.invalid"]),
    "cut-short": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    backend app1 { address = "127.0.0.1:{p2}" }
}

service cut {                                       # ERR
    listen = { "127.0.0.1:{p3}" }
    backend app1 { address = "127.0.0.1:{p2}" }
""", []),
    # The front door's keys (issue 16): lbd -t checks them as it loads.
    "bad-cidr": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    allow = { "10.0.0.0/8", "10.0.0.1/8" }          # ERR
    backend app1 { address = "127.0.0.1:{p2}" }
}
""", ["10.0.0.1/8"]),
    "bad-sni": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    sni = { "127.0.0.1" }                           # ERR
    backend app1 { address = "127.0.0.1:{p2}" }
}
""", ["not a host name"]),
    "sni-claimed-twice": (HEADER + """
service web {
    listen = { "127.0.0.1:{p1}" }
    sni = { "exam.example.com" }
    backend app1 { address = "127.0.0.1:{p2}" }
}

service other {                                     # ERR
    listen = { "127.0.0.1:{p1}" }
    sni = { "Exam.Example.com" }
    backend app1 { address = "127.0.0.1:{p3}" }
}
""", ["already claimed by service web"]),
}

# Services sharing an address by sni, with accept-proxy and lists: loads.
VALID_FRONTDOOR = HEADER + """
service exam {
    listen = { "127.0.0.1:{p1}" }
    accept-proxy = true
    sni = { "exam.example.com", "*.example.org" }
    allow = { "127.0.0.0/8", "::1" }
    deny = { "127.0.0.2" }
    backend app1 { address = "127.0.0.1:{p2}" }
}

service rest {
    listen = { "127.0.0.1:{p1}" }
    accept-proxy = true
    backend app1 { address = "127.0.0.1:{p3}" }
}
"""


def config_values(tmp_path):
    user, group, admin = lbdtest.identity()
    return dict(p1=lbdtest.free_port(), p2=lbdtest.free_port(),
                p3=lbdtest.free_port(), user=user, group=group, admin=admin,
                run=str(tmp_path / "run"))


def fill(template, values):
    for k, v in values.items():
        template = template.replace("{%s}" % k, str(v))
    return template


def lbd_check(lbd_bin, path):
    """lbd -t -f path -> (exit status, stdout + stderr)."""
    p = subprocess.run([lbd_bin, "-t", "-f", path], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30 * SCALE)
    out = p.stdout.decode(errors="replace")
    assert_no_sanitizer(out)
    return p.returncode, out


def assert_no_sanitizer(out):
    for pat in lbdtest.SANITIZER_PATTERNS:
        assert pat not in out, "sanitizer report:\n" + out


def test_version(lbd_bin):
    p = subprocess.run([lbd_bin, "-V"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=10 * SCALE)
    out = p.stdout.decode(errors="replace")
    print("lbd -V: %r" % out)
    assert_no_sanitizer(out)
    assert p.returncode == 0, out
    want = lbdtest.version()
    assert want and want in out, "version %r not in %r" % (want, out)


def test_config_ok(lbd_bin, tmp_path):
    path = tmp_path / "ok.conf"
    path.write_text(fill(VALID, config_values(tmp_path)))
    rc, out = lbd_check(lbd_bin, str(path))
    assert rc == 0 and "configuration OK" in out, (rc, out)


def test_config_frontdoor_ok(lbd_bin, tmp_path):
    path = tmp_path / "ok.conf"
    path.write_text(fill(VALID_FRONTDOOR, config_values(tmp_path)))
    rc, out = lbd_check(lbd_bin, str(path))
    assert rc == 0 and "configuration OK" in out, (rc, out)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_config_errors(lbd_bin, tmp_path, case):
    template, words = BROKEN[case]
    values = config_values(tmp_path)
    text = fill(template, values)
    path = tmp_path / "lbd.conf"
    path.write_text(text)
    lines = [i + 1 for i, l in enumerate(text.splitlines()) if "# ERR" in l]
    rc, out = lbd_check(lbd_bin, str(path))
    print("%s -> exit %d: %s" % (case, rc, out.strip()))
    assert rc == 1, "exit %d, want 1; output: %r" % (rc, out)
    assert "configuration OK" not in out
    prefixes = ["%s:%d: " % (p, n) for n in lines
                for p in (str(path), path.name)]
    hits = [l for l in out.splitlines() if any(p in l for p in prefixes)]
    assert hits, "no line starting with %s in %r" % (
        " or ".join("file:%d:" % n for n in lines), out)
    if words:
        words = [fill(w, values) for w in words]
        assert any(w.lower() in l.lower() for l in hits for w in words), (
            "message %r names none of %s" % (hits, words))


def test_start_fails_on_busy_port(lbd_bin, tmp_path):
    """A listen address that cannot be bound: exit 1 naming the address."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        text = lbdtest.render_config(str(tmp_path / "run"), [{
            "name": "web", "listen": ["127.0.0.1:%d" % port],
            "backends": [("app1", "127.0.0.1:%d" % lbdtest.free_port(), 1)]}])
        (tmp_path / "lbd.conf").write_text(text)
        p = subprocess.run([lbd_bin, "-d", "-f", str(tmp_path / "lbd.conf")],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20 * SCALE)
    finally:
        busy.close()
    out = p.stdout.decode(errors="replace")
    print("busy port -> exit %d: %s" % (p.returncode, out.strip()))
    assert p.returncode == 1, out
    assert "127.0.0.1:%d" % port in out, out
    assert_no_sanitizer(out)


# -- processes ---------------------------------------------------------------

def test_process_titles(lbd, backend):
    b = backend("ident", "b1")
    d = lbd([service("web", [b])], workers=2)
    titles = sorted(d.workers().values())
    print("master %d: %r; workers %s" % (d.pid, lbdtest.proc_title(d.pid),
                                         titles))
    with open("/proc/%d/cmdline" % d.pid, "rb") as f:
        raw = f.read()
    # ps -o args shows NULs as spaces: padding or leftovers are visible
    assert raw.rstrip(b"\0") == b"lbd: master", (
        "/proc/%d/cmdline is %r" % (d.pid, raw))
    assert titles == ["lbd: worker 1", "lbd: worker 2"]


# -- balancing ---------------------------------------------------------------

def ident_owner(d, port):
    """One connection to an ident service: (backend name, worker pid)."""
    s = lbdtest.connect(port)
    try:
        name = lbdtest.recv_line(s)
        assert name.endswith(b"\n"), name
        return name[:-1].decode(), d.owner_of(s)
    finally:
        s.close()


def worker_split(d, owners):
    """{worker title: connections} for a list of worker pids."""
    titles = d.workers()
    return {titles.get(p, p): n for p, n in collections.Counter(owners).items()}


def test_round_robin_is_global(lbd, backend):
    bs = [backend("ident", "rr%d" % i) for i in range(3)]
    d = lbd([service("web", bs)], workers=2)
    port = d.port["web"]
    # sequential: one rotation across workers, whichever worker accepts
    seq = [ident_owner(d, port) for _ in range(60)]
    names = [n for n, _ in seq]
    print("60 sequential: %s, by worker %s"
          % (" ".join(names[:9]), worker_split(d, [w for _, w in seq])))
    for i in range(len(names) - 3):
        assert names[i] == names[i + 3], (
            "pick %d breaks the rotation: %s" % (i + 3, names))
    # parallel: counts
    t0 = time.monotonic()
    res = run_parallel(lambda: ident(port, payload=None), [()] * 3000, 4)
    dt = time.monotonic() - t0
    bad = failures(res)
    counts = collections.Counter(r for r in res if isinstance(r, str))
    print("round robin over 3000 connections in %.1fs (%.0f/s): %s"
          % (dt, 3000 / dt, dict(sorted(counts.items()))))
    assert not bad, "%d failed, first: %r" % (len(bad), bad[0])
    for b in bs:
        assert abs(counts[b.name] - 1000) <= 3, counts


def test_smooth_weights(lbd, backend):
    heavy = backend("ident", "heavy")
    b = backend("ident", "light1")
    c = backend("ident", "light2")
    d = lbd([service("web", [(heavy.name, heavy.address, 3),
                             (b.name, b.address, 1),
                             (c.name, c.address, 1)])], workers=2)
    res = [ident_owner(d, d.port["web"]) for _ in range(500)]
    picks = [n for n, _ in res]
    counts = collections.Counter(picks)
    short = {"heavy": "A", "light1": "B", "light2": "C"}
    seq = "".join(short[p] for p in picks)
    print("weights 3:1:1 over 500: %s; by worker %s; first picks %s"
          % (dict(counts), worker_split(d, [w for _, w in res]), seq[:20]))
    assert abs(counts["heavy"] - 300) <= 5, counts
    assert abs(counts["light1"] - 100) <= 5, counts
    assert abs(counts["light2"] - 100) <= 5, counts
    assert "AAA" not in seq, "burst of heavy picks: %s" % seq[:60]
    assert "BB" not in seq and "CC" not in seq, seq[:60]
    worst = max(seq[i:i + 5].count("A") for i in range(len(seq) - 4))
    assert worst <= 3, "a window of 5 picks holds %d heavy: %s" % (
        worst, seq[:60])
    # one global sequence: sequential picks repeat with period 5 whichever
    # worker accepted them
    breaks = [i for i in range(len(seq) - 5) if seq[i] != seq[i + 5]]
    assert not breaks, "period-5 pattern broken at %s: %s" % (
        breaks[:5], seq[:60])


def test_dead_backend_is_retried(lbd, backend):
    live1 = backend("ident", "live1")
    live2 = backend("ident", "live2")
    hold, port = lbdtest.dead_port()
    try:
        d = lbd([service("web", [live1, ("dead", "127.0.0.1:%d" % port),
                                 live2], retries=2,
                         connect_timeout="1s")], workers=2)
        res = run_parallel(lambda: ident(d.port["web"]), [()] * 90, 2)
    finally:
        hold.close()
    bad = failures(res)
    counts = collections.Counter(r for r in res if isinstance(r, str))
    print("with a dead backend: %s, %d failed" % (dict(counts), len(bad)))
    assert not bad, "%d of 90 failed, first: %r" % (len(bad), bad[0])
    assert set(counts) == {"live1", "live2"}, counts


# -- relaying ----------------------------------------------------------------

def upload(port, size, seed):
    """Sends size pseudo-random bytes in ragged writes, half-closes, and
    checks the sha256 the backend saw."""
    rng = random.Random(seed)
    want = hashlib.sha256()
    s = lbdtest.connect(port, timeout=30)
    try:
        left = size
        while left:
            n = min(left, rng.randint(1, 300000))
            chunk = rng.randbytes(n)
            want.update(chunk)
            s.sendall(chunk)
            left -= n
        s.shutdown(socket.SHUT_WR)
        line = lbdtest.recv_line(s, 100)
        rest = lbdtest.recv_until_eof(s)
    finally:
        s.close()
    assert line == (want.hexdigest() + "\n").encode(), (
        "upload of %d bytes: backend saw sha %r, sent %s"
        % (size, line, want.hexdigest()))
    assert rest == b"", rest[:100]
    return size


def download(port, streams, rcvbuf=None, rate=None, progress=None, key=None):
    """Reads one source stream to EOF and compares it with the expected bytes.
    streams: {tag: (seed, expected bytes)}.  rate throttles (bytes/s);
    progress[key] is kept at the byte count.  Returns (seed, length)."""
    s = lbdtest.connect(port, timeout=30, rcvbuf=rcvbuf)
    try:
        head = lbdtest.recv_exact(s, backend_mod.HEADER)
        if head not in streams:
            raise AssertionError("unknown stream head %r" % head[:8])
        seed, expected = streams[head]
        exp = memoryview(expected)
        got = len(head)
        sha = hashlib.sha256(head)
        t0 = time.monotonic()
        while True:
            d = s.recv(65536)
            if not d:
                break
            if exp[got:got + len(d)] != d:
                off = next(i for i in range(len(d))
                           if got + i >= len(exp) or exp[got + i] != d[i])
                raise AssertionError("stream %s: first wrong byte at offset "
                                     "%d" % (seed, got + off))
            sha.update(d)
            got += len(d)
            if progress is not None:
                progress[key] = got
            if rate:
                ahead = got / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(min(ahead, 0.5))
    finally:
        s.close()
    assert got == len(expected), "stream %s: %d of %d bytes" % (
        seed, got, len(expected))
    assert sha.hexdigest() == hashlib.sha256(expected).hexdigest()
    return seed, got


def test_upload_byte_exact(lbd, backend):
    bs = [backend("sha"), backend("sha")]
    d = lbd([service("web", bs)], workers=2)
    rng = random.Random(20240601)
    sizes = [rng.randint(2 * MiB, 8 * MiB) for _ in range(20)]
    t0 = time.monotonic()
    res = run_parallel(upload, [(d.port["web"], n, i)
                                for i, n in enumerate(sizes)], 20)
    dt = time.monotonic() - t0
    bad = failures(res)
    print("20 uploads, %.0f MiB in %.1fs (%.0f MiB/s)"
          % (sum(sizes) / MiB, dt, sum(sizes) / MiB / dt))
    assert not bad, "%d failed: %s" % (len(bad), bad[:3])


def test_download_byte_exact(lbd, backend):
    plan = [(4 * MiB + 1, "s0"), (7 * MiB + 12345, "s1"),
            (11 * MiB + 4321, "s2"), (16 * MiB - 7, "s3")]
    bs = [backend("source", n, seed) for n, seed in plan]
    streams = {backend_mod.stream_tag(seed):
               (seed, backend_mod.stream_bytes(seed, n)) for n, seed in plan}
    d = lbd([service("web", bs)], workers=2)
    t0 = time.monotonic()
    res = run_parallel(download, [(d.port["web"], streams)] * 20, 20)
    dt = time.monotonic() - t0
    bad = failures(res)
    total = sum(r[1] for r in res if not isinstance(r, Exception))
    print("20 downloads, %.0f MiB in %.1fs (%.0f MiB/s), streams %s"
          % (total / MiB, dt, total / MiB / dt,
             dict(collections.Counter(r[0] for r in res
                                      if not isinstance(r, Exception)))))
    assert not bad, "%d failed: %s" % (len(bad), bad[:3])


def test_stalled_reader_gets_every_byte(lbd, backend):
    """A client that stops reading fills its socket: lbd must then watch
    that socket for room (it does not from the start) and finish the
    stream once the client reads again."""
    n, seed = 6 * MiB + 77, "stall"
    bs = [backend("source", n, seed)]
    streams = {backend_mod.stream_tag(seed):
               (seed, backend_mod.stream_bytes(seed, n))}
    d = lbd([service("web", bs)], workers=1)
    s = lbdtest.connect(d.port["web"], timeout=30, rcvbuf=16384)
    try:
        head = lbdtest.recv_exact(s, backend_mod.HEADER)
        time.sleep(1.0)         # lbd fills the client socket and must wait
        rest = bytearray()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
            time.sleep(0.001)   # slower than lbd: it blocks again and again
    finally:
        s.close()
    got = head + bytes(rest)
    assert len(got) == n, "%d of %d bytes" % (len(got), n)
    assert got == streams[head][1], "wrong bytes"


class LoopbackServer:
    """A backend on a free loopback port whose accept loop runs in a thread
    and hands each connection to handle(c) (which closes it)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.handle(c)


class BlastServer(LoopbackServer):
    """A backend that answers a client's first bytes with one sendall() of
    a prepared buffer and its FIN: as fast as the kernel moves bytes, so
    lbd's worker is in splice() most of the time (backend.py is slower)."""

    def __init__(self, data):
        self.data = data
        super().__init__()

    def handle(self, c):
        threading.Thread(target=self.blast, args=(c,), daemon=True).start()

    def blast(self, c):
        with c:
            try:
                if c.recv(16):          # health probes send nothing
                    c.sendall(self.data)
                    c.shutdown(socket.SHUT_WR)
                    c.recv(1)
            except OSError:
                pass


def paused_download(port, worker, n):
    """Reads n bytes through lbd, stopping its worker for a second once 32
    MiB are in: the stop may cut a splice short, and the backend sends the
    rest and its FIN meanwhile, so lbd wakes to MiB the kernel announces
    only once.  The bytes, or a failure naming where they stalled."""
    s = lbdtest.connect(port, timeout=30)
    got = bytearray()
    try:
        s.sendall(b"go")
        while len(got) < 32 * MiB:      # fast: the kernel grows the buffers
            chunk = s.recv(MiB)
            assert chunk, "EOF after %d of %d bytes" % (len(got), n)
            got += chunk
        os.kill(worker, signal.SIGSTOP)
        try:
            time.sleep(1.0)
        finally:
            os.kill(worker, signal.SIGCONT)
        s.settimeout(5)
        while True:
            try:
                chunk = s.recv(MiB)
            except socket.timeout:
                pytest.fail("stalled at %d of %d bytes" % (len(got), n))
            if not chunk:
                return bytes(got)
            got += chunk
    finally:
        s.close()


def test_paused_worker_resumes_every_download(lbd):
    """Two ways a relayed download could stall for good after its worker
    was stopped: a splice cut short by the signal taken for a full socket
    (no EPOLLOUT ever comes), and a direction that yielded after its turn
    never pumped again from the worker's run queue.  The turn is cut to
    256K so that yields are many.  Each shows in some pauses, not all: six
    pauses."""
    n = 40 * MiB
    data = random.Random(6).randbytes(n)
    srv = BlastServer(data)
    d = lbd([service("web", [("a", "127.0.0.1:%d" % srv.port)])], workers=1,
            relay_turn="256K")
    worker = next(iter(d.workers()))
    for _ in range(6):
        got = paused_download(d.port["web"], worker, n)
        assert len(got) == n, "%d of %d bytes" % (len(got), n)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    srv.sock.close()


class TwoWriteServer(LoopbackServer):
    """A keep-alive backend that answers each 5-byte request with a 38-byte
    head and a 5-byte body in two send() calls, Nagle on: the body waits
    for the ACK of the head, so a delayed ACK from lbd stalls it.  One
    connection at a time, in the accept thread."""

    HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"

    def handle(self, c):
        with c:
            try:
                while len(c.recv(5)) == 5:
                    c.send(self.HEAD)
                    c.send(b"hello")
            except ConnectionResetError:
                pass            # lbd's health probes close with a reset


def test_first_reply_in_two_writes_is_not_stalled(lbd):
    """When the client's bytes are there at accept, lbd holds the connect's
    last ACK for them, and the kernel then delays the ACK of the backend's
    first reply: lbd must ACK it at once, or a backend writing head and body
    separately waits ~40 ms for the delayed-ACK timer."""
    srv = TwoWriteServer()
    d = lbd([service("web", [("a", "127.0.0.1:%d" % srv.port)])], workers=1)
    worker = next(iter(d.workers()))
    times = []
    for _ in range(5):
        os.kill(worker, signal.SIGSTOP)   # the request is in before accept
        try:
            s = lbdtest.connect(d.port["web"])
            s.sendall(b"ping\n")
            time.sleep(0.05)
        finally:
            os.kill(worker, signal.SIGCONT)
        t0 = time.monotonic()
        got = lbdtest.recv_exact(s, len(srv.HEAD) + 5)
        times.append((time.monotonic() - t0) * 1000)
        s.close()
        assert got == srv.HEAD + b"hello"
    srv.sock.close()
    times.sort()
    print("first reply through lbd: %s ms" % ", ".join("%.1f" % t for t in times))
    assert times[2] < 25 * SCALE, "first replies took %s ms" % times


def test_half_close(lbd, backend):
    b = backend("halfclose")
    d = lbd([service("web", [b])], workers=2)
    extra = backend_mod.stream_bytes("halfclose", backend_mod.HALFCLOSE_EXTRA)
    for size in (102400, 1):
        s = lbdtest.connect(d.port["web"], timeout=20)
        try:
            s.sendall(os.urandom(size))
            s.shutdown(socket.SHUT_WR)
            line = lbdtest.recv_line(s, 100)
            assert line == b"got %d bytes\n" % size, line
            rest = lbdtest.recv_until_eof(s, 4 * MiB)
        finally:
            s.close()
        assert len(rest) == len(extra), "after the FIN: %d of %d bytes" % (
            len(rest), len(extra))
        assert rest == extra, "data after the client's FIN differs"
        print("half-close: sent %d, then got %r and %d more bytes"
              % (size, line, len(rest)))


def test_client_reset_resets_backend(lbd, backend):
    """A reset from the client is passed on as a reset, not as a FIN."""
    b = backend("ident", "rst")
    d = lbd([service("web", [b])], workers=2)
    s = lbdtest.connect(d.port["web"])
    try:
        assert lbdtest.recv_line(s) == b"rst\n"
        s.sendall(b"x")
        assert lbdtest.recv_exact(s, 1) == b"x"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    finally:
        s.close()			# SO_LINGER 0: RST
    # health probes show in the log too; this connection read one byte
    end = lbdtest.poll_until(lambda: [
        l[1] for l in b.log_lines() if l[1] in ("eof", "reset")
        and l[3] == "1"], 3 * SCALE)
    print("client RST -> backend saw %s" % end)
    assert end == ["reset"], "backend saw %s, want a reset: %s" % (
        end, b.log_lines())


# -- timeouts ----------------------------------------------------------------

def test_idle_timeout(lbd, backend):
    b = backend("ident", "idle")
    d = lbd([service("web", [b], idle_timeout="1s")], workers=2)
    port = d.port["web"]
    result = {}

    def idle():
        s = lbdtest.connect(port)
        try:
            assert lbdtest.recv_line(s) == b"idle\n"
            t0 = time.monotonic()
            result["how"] = lbdtest.wait_closed(s, 6 * SCALE)
            result["after"] = time.monotonic() - t0
            result["at"] = time.monotonic()
        finally:
            s.close()

    th = threading.Thread(target=idle, daemon=True)
    th.start()
    s = lbdtest.connect(port)
    try:
        assert lbdtest.recv_line(s) == b"idle\n"
        for i in range(10):		# a byte each way every 300 ms, 3 s
            time.sleep(0.3)
            s.sendall(b"%d" % i)
            assert lbdtest.recv_exact(s, 1) == b"%d" % i, \
                "active connection broken after %.1fs" % (0.3 * (i + 1))
        th.join(10 * SCALE)
        s.sendall(b"z")
        assert lbdtest.recv_exact(s, 1) == b"z"
        # the backend side of the idle connection is closed too (and only
        # that one: the active connection is still open).  Health probes
        # (connect, close) show in the log too: they live a few ms.
        ended = lbdtest.poll_until(lambda: {
            l[0] for l in b.log_lines()
            if l[1] in ("eof", "reset") and int(l[2]) >= 500},
            2 * SCALE)
    finally:
        s.close()
    print("idle connection closed (%s) after %.2fs; active one survived 3s; "
          "backend log %s" % (result.get("how"), result.get("after", -1),
                              b.log_lines()))
    assert result.get("how"), "idle connection still open after %.0fs" % (
        6 * SCALE)
    assert 0.8 <= result["after"] <= 3.0 * SCALE, result
    assert len(ended) == 1, "backend connections ended: %s (want the idle " \
        "one only)" % b.log_lines()


# -- workers -----------------------------------------------------------------

def wait_new_worker(d, old, timeout):
    """Polls until the master has its full set of workers again with one not
    in old; returns (seconds, {pid: title}) or (None, current)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        ws = d.workers()
        if len(ws) == d.workers_wanted and set(ws) - set(old):
            return time.monotonic() - t0, ws
        time.sleep(0.005)
    return None, d.workers()


def test_killed_worker_is_replaced(lbd, backend):
    b = backend("ident", "echo")
    d = lbd([service("web", [b])], workers=2)
    port = d.port["web"]

    def hold():
        s = lbdtest.connect(port)
        assert lbdtest.recv_line(s) == b"echo\n"
        return s

    held = []
    for _ in range(4):			# in bursts, to land in both workers
        res = run_parallel(hold, [()] * 6, 6)
        assert not failures(res), failures(res)
        held += res
    try:
        owner = {s: d.owner_of(s) for s in held}
        assert None not in owner.values(), "cannot map connections to workers"
        old = d.workers()
        per = collections.Counter(owner.values())
        victim = min(old, key=lambda pid: per.get(pid, 0))
        print("held connections per worker: %s; killing %d (%s) holding %d"
              % ({old[p]: per.get(p, 0) for p in old}, victim, old[victim],
                 per.get(victim, 0)))
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        took, now = wait_new_worker(d, old, 5 * SCALE)
        assert took is not None, "no new worker after %.0fs: %s\n%s" % (
            5 * SCALE, now, d.describe())
        new = set(now) - set(old)
        print("worker restarted in %.3fs: %s" % (
            time.monotonic() - t0, {p: now[p] for p in new}))
        assert took <= (1.0 if SCALE == 1 else 2.0), (
            "replacement took %.3fs" % took)
        for s in held:
            if owner[s] == victim:
                continue
            s.sendall(b"still there?\n")
            assert lbdtest.recv_exact(s, 13) == b"still there?\n"
        for s in held:
            if owner[s] == victim:
                how = lbdtest.wait_closed(s, 3 * SCALE)
                assert how, "connection of the killed worker still open"
    finally:
        for s in held:
            s.close()
    res = run_parallel(lambda: ident(port), [()] * 200, 4)
    bad = failures(res)
    assert not bad, "%d of 200 new connections failed, first %r" % (
        len(bad), bad[0])


def test_worker_killed_under_load(lbd, backend):
    b = backend("ident", "echo")
    d = lbd([service("web", [b])], workers=2)
    port = d.port["web"]
    log = []				# (start time, error or None)
    stop_at = time.monotonic() + 3.0

    def client():
        for i in range(100000):
            t = time.monotonic()
            if t >= stop_at:
                return
            try:
                ident(port, payload=b"n%d\n" % i, timeout=3)
                log.append((t, None))
            except Exception as e:
                log.append((t, e))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(2)]
    for th in threads:
        th.start()
    time.sleep(0.8)
    old = d.workers()
    # the worker that accepts right now (wake-ups are LIFO) is the victim
    probe = lbdtest.connect(port)
    try:
        assert lbdtest.recv_line(probe) == b"echo\n"
        victim = d.owner_of(probe) or sorted(old)[0]
    finally:
        probe.close()
    os.kill(victim, signal.SIGKILL)
    assert lbdtest.poll_until(lambda: lbdtest.is_dead(victim), 2, 0.001)
    t_dead = time.monotonic()
    took, now = wait_new_worker(d, old, 5 * SCALE)
    for th in threads:
        th.join(20 * SCALE)
    before = [e for t, e in log if t < t_dead]
    after = [e for t, e in log if t >= t_dead]
    print("kill under load: %d connections before the death (%d failed), "
          "%d after (%d failed); replacement after %s s"
          % (len(before), sum(e is not None for e in before), len(after),
             sum(e is not None for e in after),
             "%.3f" % took if took is not None else "never"))
    assert len(after) > 10, "the client loop stalled after the kill"
    bad = [e for e in after if e is not None]
    assert not bad, "%d connections opened after the death failed, first %r" \
        % (len(bad), bad[0])
    assert took is not None, "no replacement worker: %s" % now


# -- stopping ----------------------------------------------------------------

def wait_refused(port, timeout):
    """Connects every 50 ms until refused; returns (seconds until refused or
    None, number of connections that were still accepted meanwhile)."""
    t0 = time.monotonic()
    accepted = 0
    while time.monotonic() - t0 < timeout:
        try:
            s = lbdtest.connect(port, timeout=1)
        except ConnectionRefusedError:
            return time.monotonic() - t0, accepted
        except OSError:
            pass
        else:
            accepted += 1
            s.close()
        time.sleep(0.05)
    return None, accepted


def test_graceful_stop_finishes_transfers(lbd, backend):
    n = 20 * MiB
    b = backend("source", n, "graceful")
    streams = {backend_mod.stream_tag("graceful"):
               ("graceful", backend_mod.stream_bytes("graceful", n))}
    d = lbd([service("web", [b])], workers=2, shutdown_grace="30s")
    port = d.port["web"]
    progress = {}
    res = [None] * 10
    done_at = [None] * 10

    def one(i):
        try:
            res[i] = download(port, streams, rcvbuf=64 * 1024,
                              rate=7 * MiB, progress=progress, key=i)
        except Exception as e:
            res[i] = e
        done_at[i] = time.monotonic()

    threads = [threading.Thread(target=one, args=(i,), daemon=True)
               for i in range(10)]
    for th in threads:
        th.start()
    assert lbdtest.poll_until(
        lambda: len(progress) == 10 and min(progress.values()) >= MiB,
        15 * SCALE), "downloads did not start: %s" % progress
    t_term = time.monotonic()
    d.signal(signal.SIGTERM)
    refused, accepted = wait_refused(port, 2 * SCALE)
    alive = d.proc.poll() is None
    mid = sorted(progress.values())
    for th in threads:
        th.join(60 * SCALE)
    rc = d.wait(10 * SCALE)
    t_exit = time.monotonic()
    last = max(t for t in done_at if t is not None) if any(done_at) else None
    print("SIGTERM with 10 downloads at %.1f-%.1f MiB: refused after %s s "
          "(%d still accepted), downloads done %.2fs later, exit %s %.2fs "
          "after the last" % (mid[0] / MiB, mid[-1] / MiB,
                              "%.2f" % refused if refused else "never",
                              accepted, (last or t_term) - t_term, rc,
                              t_exit - (last or t_term)))
    assert refused is not None, "new connections still accepted %.0fs after " \
        "SIGTERM" % (2 * SCALE)
    assert alive, "lbd exited while transfers were in flight\n" + d.describe()
    bad = [r for r in res if not isinstance(r, tuple)]
    assert not bad, "%d transfers broken: %s\n%s" % (len(bad), bad[:3],
                                                     d.describe())
    assert rc == 0, "exit %s\n%s" % (rc, d.describe())


def test_shutdown_grace_cuts_connections(lbd, backend):
    b = backend("ident", "slow")
    d = lbd([service("web", [b])], workers=2, shutdown_grace="1s")
    held = [lbdtest.connect(d.port["web"]) for _ in range(2)]
    try:
        for s in held:
            assert lbdtest.recv_line(s) == b"slow\n"
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        time.sleep(0.3)
        for s in held:			# not cut at once: the grace holds
            s.sendall(b"ok?\n")
            assert lbdtest.recv_exact(s, 4) == b"ok?\n"
        how = lbdtest.wait_closed(held[0], 5 * SCALE)
        cut = time.monotonic() - t0
        rc = d.wait(5 * SCALE)
        gone = time.monotonic() - t0
    finally:
        for s in held:
            s.close()
    print("shutdown-grace 1s: connection cut (%s) after %.2fs, exit %s after "
          "%.2fs" % (how, cut, rc, gone))
    assert how, "connection still open %.0fs after SIGTERM" % (5 * SCALE)
    assert 0.8 <= cut <= 2.5 * SCALE, cut
    assert rc == 0, "exit %s\n%s" % (rc, d.describe())
    assert gone <= 2.5 * SCALE, "exit took %.2fs" % gone


def test_second_sigterm_stops_at_once(lbd, backend):
    b = backend("ident", "slow")
    d = lbd([service("web", [b])], workers=2, shutdown_grace="30s")
    s = lbdtest.connect(d.port["web"])
    try:
        assert lbdtest.recv_line(s) == b"slow\n"
        d.signal(signal.SIGTERM)
        time.sleep(0.5)
        assert d.proc.poll() is None, "exited before the grace ended"
        s.sendall(b"ok?\n")
        assert lbdtest.recv_exact(s, 4) == b"ok?\n"
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.wait(5 * SCALE)
        took = time.monotonic() - t0
        how = lbdtest.wait_closed(s, 2 * SCALE)
    finally:
        s.close()
    print("second SIGTERM: exit %s after %.2fs, connection %s"
          % (rc, took, how))
    assert rc is not None, "still running %.0fs after the second SIGTERM" % (
        5 * SCALE)
    assert rc >= 0, "killed by signal %d" % -rc
    assert took <= 1.5 * SCALE, took
    assert how, "connection survived the stop"
    assert lbdtest.poll_until(lambda: not d.stray_workers(), 2 * SCALE), \
        "workers left behind: %s" % d.stray_workers()
