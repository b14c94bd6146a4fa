#!/usr/bin/python3
"""Takes docs/statpage.png: lbd in front of six demo backends, two and a
half minutes of traffic, lbstat -l serving the status page, and a headless
Chromium's screenshot of it.

usage: contrib/demo/statpage-shot.py [OUTPUT.png]   (run as root, after make)

Service "demo" spreads requests round-robin over app1..app3, and app2 is
drained half-way (its chart drops, its state turns "drain").  Service "api"
balances by source address: one client sends about 2500 requests a minute,
another about 800, and they hash to different backends, so the imbalance
figure shows what the seed's 2500 vs 800 req/min looks like; its app6 has
nothing listening, so it is down.
"""
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("LBD_BUILD", os.path.join(TOP, "build"))
TRAFFIC_S = 150
DRAIN_AT_S = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, source="127.0.0.1"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5,
                                   source_address=(source, 0))
    try:
        c.request("GET", "/")
        return c.getresponse().read().decode().split()[-1]
    finally:
        c.close()


def client(port, per_s, until, source="127.0.0.1"):
    """per_s requests a second, paced, until the monotonic deadline."""
    next_t = time.monotonic()
    while next_t < until:
        try:
            request(port, source)
        except OSError:
            pass
        next_t += 1.0 / per_s
        if next_t < time.monotonic() - 0.5:
            next_t = time.monotonic()	# after a stall, no burst to catch up
        time.sleep(max(0.0, next_t - time.monotonic()))


def config(tmp, ports):
    rows = lambda names: "\n".join(
        '    backend %s { address = "127.0.0.1:%d" weight = 1 }' % (n, ports[n])
        for n in names)
    health = ('    health { interval = "1s" send = "GET /health HTTP/1.0\\r\\n\\r\\n" '
              'expect = " 200 " }')
    return ('workers = 2\nuser = "nobody"\ngroup = "nogroup"\nadmin-group = "root"\n'
            'runtime-dir = "%s/run"\n\n'
            'service demo {\n    listen = { "127.0.0.1:%d" }\n    balance = "roundrobin"\n'
            '%s\n%s\n}\n\n'
            'service api {\n    listen = { "127.0.0.1:%d" }\n    balance = "source"\n'
            '%s\n%s\n}\n' % (tmp, ports["demo"], health, rows(["app1", "app2", "app3"]),
                             ports["api"], health, rows(["app4", "app5", "app6"])))


def distinct_sources(port):
    """Two loopback sources that the source hash sends to different backends."""
    seen = {}
    for i in range(2, 40):
        src = "127.0.0.%d" % i
        b = request(port, src)
        if b not in seen.values():
            seen[src] = b
        if len(seen) == 2:
            return list(seen)
    raise SystemExit("statpage-shot: no two sources hash apart")


def wait_port(port, what):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("statpage-shot: %s did not come up on port %d" % (what, port))


def shoot(url, out):
    profile = tempfile.mkdtemp(prefix="lbd-chromium-")
    try:
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--hide-scrollbars",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--user-data-dir=" + profile,
                        "--window-size=1200,800", "--virtual-time-budget=3000",
                        "--screenshot=" + out, url],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(TOP, "docs", "statpage.png"))
    tmp = tempfile.mkdtemp(prefix="lbd-shot-")
    os.chmod(tmp, 0o755)
    procs = []
    try:
        ports = {n: free_port() for n in ["app%d" % i for i in range(1, 7)]
                 + ["demo", "api", "http"]}		# app6: nothing listens
        for i in range(1, 6):
            n = "app%d" % i
            procs.append(subprocess.Popen([sys.executable, os.path.join(
                TOP, "contrib", "demo", "backend.py"), n, str(ports[n])]))
            wait_port(ports[n], n)
        with open(os.path.join(tmp, "lbd.conf"), "w") as f:
            f.write(config(tmp, ports))
        procs.append(subprocess.Popen([os.path.join(BUILD, "lbd"), "-d", "-f",
                                       os.path.join(tmp, "lbd.conf")]))
        wait_port(ports["api"], "lbd")
        procs.append(subprocess.Popen([os.path.join(BUILD, "lbstat"), "-l",
                                       "127.0.0.1:%d" % ports["http"], "-s",
                                       os.path.join(tmp, "run", "lbd.stats")]))
        wait_port(ports["http"], "lbstat -l")
        busy, quiet = distinct_sources(ports["api"])
        until = time.monotonic() + TRAFFIC_S
        threads = [threading.Thread(target=client, args=a) for a in [
            (ports["demo"], 30, until), (ports["api"], 2500 / 60, until, busy),
            (ports["api"], 800 / 60, until, quiet)]]
        for t in threads:
            t.start()
        time.sleep(DRAIN_AT_S)
        subprocess.run([os.path.join(BUILD, "lbadmin"), "-f", os.path.join(tmp, "lbd.conf"),
                        "drain", "demo/app2"], check=True)
        time.sleep(max(0.0, until - 6 - time.monotonic()))
        shoot("http://127.0.0.1:%d/" % ports["http"], out)	# traffic still flowing
        for t in threads:
            t.join()
        print("statpage-shot: wrote", out)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(40)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
