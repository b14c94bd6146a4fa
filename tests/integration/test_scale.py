"""No fixed limits (issue 18): lbd loads, serves and reloads a configuration
of 10 000 backends; a reload that removes and adds thousands keeps the
counters and admin state of the rest; one that needs more room than the
stats segment has moves it to a larger file while an old worker still
relays, and nothing it counted is lost."""

import hashlib
import os
import signal
import subprocess

import lbdtest
from lbdtest import SCALE, poll_until, q

TOTAL = 10000           # backends in all
FILLER = 1000           # of them in small services; the rest in one, web
PER_SERVICE = 64        # backends of each small service


def dead_backends(prefix, n, start):
    """n backends at loopback addresses nothing listens on (127.0.x.y:9):
    they go down and cost one refused connect per check."""
    out = []
    for i in range(start, start + n):
        out.append(("%s%d" % (prefix, i), "127.1.%d.%d:9" % (i // 250, 1 + i % 250), 1))
    return out


def filler(count, first_service, tag):
    """Services of PER_SERVICE dead backends, count backends in all."""
    svcs, made, k = [], 0, first_service
    while made < count:
        n = min(PER_SERVICE, count - made)
        svcs.append(dict(lbdtest.service("%s%d" % (tag, k), dead_backends("d", n, made)),
                         health={"interval": q("30s"), "timeout": q("500ms")}))
        made += n
        k += 1
    return svcs


def web_service(real, dead, first=0, tag="x"):
    rows = [(b.name, b.address, 1) for b in real]
    rows += dead_backends(tag, dead, first)
    return dict(lbdtest.service("web", rows),
                health={"interval": q("2s"), "timeout": q("500ms"), "fall": 1})


def lbtool(name, d, *args, timeout=30):
    path = os.path.join(lbdtest.build_dir(), name)
    r = subprocess.run([path] + list(args), capture_output=True, text=True,
                       timeout=timeout * SCALE)
    assert r.returncode == 0, "%s %s: %s" % (name, " ".join(args), r.stderr)
    return r.stdout


def lbstat(d, *args):
    import json
    return json.loads(lbtool("lbstat", d, "-j", "-s",
                             os.path.join(d.runtime_dir, "lbd.stats"), *args))


def lbadmin(d, *args):
    return lbtool("lbadmin", d, "-s", os.path.join(d.runtime_dir, "lbd.sock"), *args)


def backend_of(js, svc, name):
    for s in js["services"]:
        if s["name"] == svc:
            for b in s["backends"]:
                if b["name"] == name:
                    return b
    raise AssertionError("%s/%s not in lbstat" % (svc, name))


def exchange(port, payload):
    """One connection through lbd: the backend's name, then payload echoed
    intact (checksums compared)."""
    s = lbdtest.connect(port, timeout=10 * SCALE)
    try:
        name = lbdtest.recv_line(s).decode().strip()
        s.sendall(payload)
        s.shutdown(1)
        back = lbdtest.recv_until_eof(s)
    finally:
        s.close()
    assert hashlib.sha256(back).digest() == hashlib.sha256(payload).digest()
    return name


def rewrite(d, services):
    svcs = [dict(s, listen=["127.0.0.1:%d" % d.port[s["name"]]]) if s["name"] in d.port
            else dict(s, listen=["127.0.0.1:%d" % lbdtest.free_port()]) for s in services]
    text = lbdtest.render_config(d.runtime_dir, svcs, d.workers_wanted, d.globals)
    with open(d.conf_path, "w") as f:
        f.write(text)


def reload(d, generation):
    d.signal(signal.SIGHUP)
    assert poll_until(lambda: lbstat(d)["generation"] >= generation, 30 * SCALE), \
        "reload to generation %d did not happen:\n%s" % (generation, d.stderr())


def test_ten_thousand_backends_serve_and_reload(lbd, backend):
    real = [backend("ident", "app%d" % i) for i in range(3)]
    nweb = TOTAL - FILLER
    web = web_service(real, nweb - 3)
    rest = filler(FILLER, 0, "s")
    d = lbd([web] + rest, timeout=60 * SCALE)
    js = lbstat(d)
    assert sum(len(s["backends"]) for s in js["services"]) == TOTAL
    # Served: every dead one of web goes down, the three real ones answer.
    assert poll_until(lambda: sum(b["state"] == "down" for b in
                                  backend_of_all(lbstat(d), "web")) == nweb - 3,
                      60 * SCALE), "web's dead backends are not all down"
    payload = os.urandom(64 * 1024)
    seen = [exchange(d.port["web"], payload) for _ in range(30)]
    assert set(seen) == {"app0", "app1", "app2"}
    js = lbstat(d)
    assert sum(backend_of(js, "web", "app%d" % i)["connections"] for i in range(3)) == 30
    lbadmin(d, "drain", "web/app2")
    lbadmin(d, "weight", "web/x5000", "9")
    # A backend the coming reloads keep (they remove the first services).
    keep_svc = rest[10]["name"]
    keep_be = rest[10]["backends"][5][0]
    lbadmin(d, "weight", "%s/%s" % (keep_svc, keep_be), "7")
    before = {("web", "app%d" % i): backend_of(js, "web", "app%d" % i)["bytes_in"]
              for i in range(3)}

    # Reload: 3 000 of web's backends go and 3 000 new ones come; so do the
    # first small services (320 backends) and 320 in new ones.
    gone = 5
    web2 = web_service(real, nweb - 3 - 3000, 3000)
    web2["backends"] += dead_backends("y", 3000, 20000)
    kept = rest[gone:]
    added = filler(gone * PER_SERVICE, 1000, "n")
    rewrite(d, [web2] + kept + added)
    reload(d, 2)
    js = lbstat(d)
    names = {s["name"] for s in js["services"]}
    assert "s0" not in names and "n1000" in names and "s%d" % gone in names
    assert sum(len(s["backends"]) for s in js["services"]) == TOTAL
    assert len(backend_of_all(js, "web")) == nweb
    for (svc, name), bytes_in in before.items():
        assert backend_of(js, svc, name)["bytes_in"] == bytes_in
    assert backend_of(js, "web", "app2")["state"] == "drain"
    assert backend_of(js, "web", "x5000")["weight"] == 9
    assert backend_of(js, keep_svc, keep_be)["weight"] == 7
    assert poll_until(lambda: sum(b["state"] == "down" for b in
                                  backend_of_all(lbstat(d), "web")) == nweb - 3,
                      60 * SCALE), "web's new dead backends are not all down"
    seen = [exchange(d.port["web"], payload) for _ in range(10)]
    assert set(seen) == {"app0", "app1"}

    # Grow: a connection held by a worker of this generation, then a reload
    # with 9 000 more backends than the segment has room for.
    s = lbdtest.connect(d.port["web"], timeout=10 * SCALE)
    held = lbdtest.recv_line(s).decode().strip()
    stats = os.path.join(d.runtime_dir, "lbd.stats")
    inode = os.stat(stats).st_ino
    big = dict(lbdtest.service("big", dead_backends("g", 9000, 30000)),
               health={"interval": q("30s"), "timeout": q("500ms")})
    rewrite(d, [web2] + kept + added + [big])
    reload(d, 3)
    assert os.stat(stats).st_ino != inode, "the segment was not replaced"
    assert "grown to" in d.stderr()
    # The old worker still relays, into the old file; the master copies it.
    base = backend_of(lbstat(d), "web", held)["bytes_in"]
    chunk = os.urandom(256 * 1024)
    s.sendall(chunk)
    s.shutdown(1)
    back = lbdtest.recv_until_eof(s)
    s.close()
    assert back == chunk
    assert poll_until(lambda: backend_of(lbstat(d), "web", held)["bytes_in"]
                      == base + len(chunk), 10 * SCALE), \
        "bytes an old worker relayed after the segment grew were lost: %d, then %d" % (
            base, backend_of(lbstat(d), "web", held)["bytes_in"])
    js = lbstat(d)
    assert backend_of(js, "web", "app2")["state"] == "drain"
    assert backend_of(js, "web", "x5000")["weight"] == 9
    assert backend_of(js, keep_svc, keep_be)["weight"] == 7
    assert sum(len(s["backends"]) for s in js["services"]) == TOTAL + 9000


def backend_of_all(js, svc):
    for s in js["services"]:
        if s["name"] == svc:
            return s["backends"]
    return []
