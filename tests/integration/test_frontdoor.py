"""The front door, with real clients and servers over loopback: PROXY
protocol in (HAProxy's send-proxy-v2 in front of lbd, nginx behind it
sees the original client), TLS routing by server name without terminating
TLS (curl and openssl s_client verify the backend's certificate end to
end), allow/deny, and hostile first bytes closed, counted, never hung on.
"""

import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

import lbdtest
from lbdtest import SCALE, service
from test_daemon import Nginx, client_from, program

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "fuzz", "corpus", "sni")


class SharedLbd(lbdtest.Lbd):
    """Every service on one address (127.0.0.1:PORT), as sni routing wants."""

    def listen_for(self, svc):
        if not self.port:
            self.shared = lbdtest.free_port()
        return self.shared, ["127.0.0.1:%d" % self.shared]


@pytest.fixture
def shared_lbd(tmp_path, lbd_bin):
    def make(i, services, workers=2, **globals_):
        return SharedLbd(tmp_path / ("shared%d" % i), services, workers=workers,
                         globals_=lbdtest.globals_from(globals_))

    yield from lbdtest.lbd_fixture(make)


def lbstat_service(d, name):
    p = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-j", "-s",
                        os.path.join(d.runtime_dir, "lbd.stats")],
                       capture_output=True, text=True, timeout=10 * SCALE)
    assert p.returncode == 0, p.stderr
    js = json.loads(p.stdout.splitlines()[0])
    return next(s for s in js["services"] if s["name"] == name)


def closed_by_lbd(s, timeout):
    """Seconds until lbd closes s (FIN or reset), or None if it stays open."""
    start = time.monotonic()
    s.settimeout(timeout)
    try:
        while s.recv(4096):
            pass
    except socket.timeout:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - start


# -- TLS backends ----------------------------------------------------------------

def make_cert(tmp_path, name):
    key, crt = str(tmp_path / (name + ".key")), str(tmp_path / (name + ".crt"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "1", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name],
                   check=True, capture_output=True, timeout=60)
    return key, crt


class TlsServer:
    """HTTPS on 127.0.0.1: every request answered with the server's tag."""

    def __init__(self, tag, key, crt):
        self.tag = tag
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(conn,), daemon=True).start()

    def one(self, conn):
        try:
            conn.settimeout(10)
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                body = self.tag.encode()
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                            b"Connection: close\r\n\r\n%s" % (len(body), body))
                tls.unwrap()	# close_notify: a clean end for s_client
        except (OSError, ssl.SSLError):
            pass		# health probes connect and go

    def stop(self):
        self.sock.close()


def test_sni_routes_without_terminating_tls(request, tmp_path, shared_lbd, backend):
    if program("openssl") is None or program("curl") is None:
        pytest.skip("openssl and curl are needed (Debian packages openssl, curl)")
    ka, ca = make_cert(tmp_path, "exam.example.com")
    kb, cb = make_cert(tmp_path, "www.example.org")
    a, b = TlsServer("site-a", ka, ca), TlsServer("site-b", kb, cb)
    request.addfinalizer(a.stop)
    request.addfinalizer(b.stop)
    plain = backend("ident", "plain")
    d = shared_lbd([
        service("exam", [("a", a.address)], sni=["exam.example.com"]),
        service("org", [("b", b.address)], sni=["*.example.org"]),
        service("other", [plain]),
    ], log_connections=True)
    port = d.shared
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", ca,
                        "--resolve", "exam.example.com:%d:127.0.0.1" % port,
                        "https://exam.example.com:%d/" % port],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "site-a", (r.stdout, r.stderr)
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "www.example.org", "-CAfile", cb,
                        "-verify_hostname", "www.example.org", "-verify_return_error",
                        "-ign_eof", "-quiet"],
                       input="GET / HTTP/1.0\r\nHost: www.example.org\r\n\r\n",
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.endswith("site-b"), (r.stdout, r.stderr)
    # Not TLS at all: the service without sni takes it.
    s = lbdtest.connect(port)
    s.sendall(b"hello\n")
    assert lbdtest.recv_exact(s, len(b"plain\nhello\n")) == b"plain\nhello\n"
    s.close()
    for name in ("exam", "org", "other"):
        assert lbstat_service(d, name)["accepted"] == 1, name
    # A name nobody claims goes to the default too; with TLS it then fails
    # there, which is the default's business, but it is no sni miss.
    assert lbstat_service(d, "other")["sni_misses"] == 0


def test_sni_miss_and_bad_hellos_are_closed_and_counted(shared_lbd, backend):
    """No default service: an unknown name, garbage after a TLS record
    header and a ClientHello cut short are all closed and counted, the last
    at connect-timeout, never later."""
    app = backend("ident", "app")
    d = shared_lbd([service("exam", [app], sni=["exam.example.com"],
                            connect_timeout="1s")])
    with open(os.path.join(CORPUS, "curl-tls13-sni"), "rb") as f:
        hello = f.read()
    s = lbdtest.connect(d.shared)
    s.sendall(hello)		# curl's hello names another host
    assert closed_by_lbd(s, 5 * SCALE) is not None
    s.close()
    s = lbdtest.connect(d.shared)
    s.sendall(b"\x16\x03\x01\x00\x05hello")
    assert closed_by_lbd(s, 5 * SCALE) is not None
    s.close()
    s = lbdtest.connect(d.shared)
    s.sendall(hello[:60])
    took = closed_by_lbd(s, 5 * SCALE)
    assert took is not None and 0.8 <= took <= 1.0 + 0.5 * SCALE, took
    s.close()
    svc = lbstat_service(d, "exam")
    assert svc["sni_misses"] == 3 and svc["accepted"] == 0, svc
    assert not re.search(r"-> app ", d.stderr()), "a missed client reached the backend"


def test_allow_and_deny(lbd, backend):
    app = backend("ident", "app")
    d = lbd([service("web", [app], allow=["127.0.0.0/8"], deny=["127.0.0.2"])])
    s, _ = client_from(socket.AF_INET, "127.0.0.1", ("127.0.0.1", d.port["web"]))
    assert lbdtest.recv_line(s) == b"app\n"
    s.close()
    s, _ = client_from(socket.AF_INET, "127.0.0.2", ("127.0.0.1", d.port["web"]))
    assert closed_by_lbd(s, 5 * SCALE) is not None
    s.close()
    svc = lbstat_service(d, "web")
    assert svc["denied"] == 1 and svc["accepted"] == 1, svc


HAPROXY_CONF = """\
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind 127.0.0.1:{port}
    default_backend lbd
backend lbd
    server lbd 127.0.0.1:{lbd_port} send-proxy-v2
"""


def test_proxy_in_from_haproxy_to_nginx(request, tmp_path, lbd):
    """client 127.0.0.7 -> HAProxy (send-proxy-v2) -> lbd (accept-proxy,
    proxy-protocol v1) -> nginx: nginx sees 127.0.0.7 and its port; lbd's
    log and allow list use it too."""
    if program("haproxy") is None or program("nginx") is None:
        pytest.skip("haproxy and nginx are needed (Debian packages)")
    ngx = Nginx(str(tmp_path)).start()
    request.addfinalizer(ngx.stop)
    d = lbd([service("web", [("nginx", "127.0.0.1:%d" % ngx.pp_port)],
                     accept_proxy=True, proxy_protocol="v1",
                     deny=["127.0.0.9"])], log_connections=True)
    hport = lbdtest.free_port()
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(HAPROXY_CONF.format(port=hport, lbd_port=d.port["web"]))
    hap = subprocess.Popen([program("haproxy"), "-db", "-f", str(conf)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    request.addfinalizer(lambda: (hap.terminate(), hap.wait(10)))
    assert lbdtest.poll_until(lambda: lbdtest.listening(hap.pid, hport), 10 * SCALE)
    s, sport = client_from(socket.AF_INET, "127.0.0.7", ("127.0.0.1", hport))
    s.sendall(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
    reply = lbdtest.recv_until_eof(s, 1 << 16).decode()
    s.close()
    assert re.search(r"pp=127\.0\.0\.7 %d remote=127\.0\.0\.1" % sport, reply), reply
    assert lbdtest.poll_until(
        lambda: "web 127.0.0.7:%d -> nginx" % sport in d.stderr(), 5 * SCALE)
    s, _ = client_from(socket.AF_INET, "127.0.0.9", ("127.0.0.1", hport))
    s.sendall(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
    assert b"200" not in lbdtest.recv_until_eof(s, 1 << 16)
    s.close()
    assert lbdtest.poll_until(lambda: lbstat_service(d, "web")["denied"] == 1, 5 * SCALE)


def test_bad_proxy_headers_are_closed_and_counted(lbd, backend):
    app = backend("ident", "app")
    d = lbd([service("web", [app], accept_proxy=True, connect_timeout="1s")])
    port = d.port["web"]
    s = lbdtest.connect(port)			# no header at all
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert closed_by_lbd(s, 5 * SCALE) is not None
    s.close()
    s = lbdtest.connect(port)			# malformed
    s.sendall(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n")
    assert closed_by_lbd(s, 5 * SCALE) is not None
    s.close()
    s = lbdtest.connect(port)			# cut short, then silence
    s.sendall(b"PROXY TCP4 1.2.3.4")
    took = closed_by_lbd(s, 5 * SCALE)
    assert took is not None and 0.8 <= took <= 1.0 + 0.5 * SCALE, took
    s.close()
    s = lbdtest.connect(port)			# a good one, for comparison
    s.sendall(b"PROXY TCP4 192.0.2.1 192.0.2.2 4321 80\r\nhi\n")
    assert lbdtest.recv_exact(s, len(b"app\nhi\n")) == b"app\nhi\n"
    s.close()
    svc = lbstat_service(d, "web")
    assert svc["proxy_errors"] == 3 and svc["accepted"] == 1, svc
