"""Integration tests for lbstat against a real lbd: the counters it prints
are exact (connections, bytes, active), the Prometheus output passes a
strict parser, -i samples with rates and stops cleanly, filters, errors and
exit statuses.  Real binaries over loopback; every wait is bounded.
"""

import json
import os
import re
import select
import signal
import subprocess
import threading
import time

import pytest

import backend as backend_mod
import lbdtest
from lbdtest import SCALE, service

VERSION = lbdtest.version() or "0.1.0"


# -- running lbstat ------------------------------------------------------------

@pytest.fixture
def lbstat_bin():
    path = os.path.join(lbdtest.build_dir(), "lbstat")
    if not os.access(path, os.X_OK):
        pytest.fail("no lbstat binary at %s (build it, or set LBD_BUILD)" % path)
    return path


def stats_path(d):
    return os.path.join(d.runtime_dir, "lbd.stats")


def run(lbstat_bin, *args, env=None, timeout=20.0):
    full_env = dict(os.environ)
    full_env.pop("LBD_CONF", None)
    full_env.update(env or {})
    return subprocess.run([lbstat_bin] + list(args), env=full_env,
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout * SCALE)


def snapshot(lbstat_bin, d, *args):
    """lbstat -j for d, parsed."""
    r = run(lbstat_bin, "-j", "-s", stats_path(d), *args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


def backends(js, svc="web"):
    for s in js["services"]:
        if s["name"] == svc:
            return {b["name"]: b for b in s["backends"]}
    raise AssertionError("no service %s in %s" % (svc, js))


def service_of(js, svc="web"):
    return next(s for s in js["services"] if s["name"] == svc)


def wait_for(lbstat_bin, d, pred, timeout=5.0):
    """Samples until pred(sample) holds; returns the last sample."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        js = snapshot(lbstat_bin, d)
        if pred(js) or time.monotonic() >= deadline:
            return js
        time.sleep(0.05)


# -- traffic -------------------------------------------------------------------

def exchange(port, size):
    """One connection through lbd to an ident backend: read its name, send
    size bytes, read the echo, close.  Returns (name, bytes sent to the
    backend, bytes received from it)."""
    s = lbdtest.connect(port)
    try:
        greeting = lbdtest.recv_line(s)
        assert greeting.endswith(b"\n"), greeting
        payload = bytes((i * 7 + size) & 0xFF for i in range(size))
        s.sendall(payload)
        assert lbdtest.recv_exact(s, size) == payload
        return greeting[:-1].decode(), size, len(greeting) + size
    finally:
        s.close()


def hold(port, n):
    """n connections through lbd, each past its greeting (so relayed to a
    backend); returns [(socket, backend name)]."""
    held = []
    try:
        for _ in range(n):
            s = lbdtest.connect(port)
            held.append((s, None))
            line = lbdtest.recv_line(s)
            assert line.endswith(b"\n"), line
            held[-1] = (s, line[:-1].decode())
    except BaseException:
        for s, _ in held:
            s.close()
        raise
    return held


def by_name(names):
    out = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return out


# -- exact counters ------------------------------------------------------------

def test_counters_match_traffic(lbd, backend, lbstat_bin):
    bs = [backend("ident", "app%d" % i) for i in range(1, 4)]
    d = lbd([service("web", bs)], workers=2)
    before = snapshot(lbstat_bin, d)
    want = {b.name: {"connections": 0, "bytes_in": 0, "bytes_out": 0}
            for b in bs}
    n = 90
    for i in range(n):
        name, sent, got = exchange(d.port["web"], (i * 7919) % 70000 + 1)
        want[name]["connections"] += 1
        want[name]["bytes_in"] += sent
        want[name]["bytes_out"] += got

    def deltas(js):
        was, now = backends(before), backends(js)
        return {k: {f: now[k][f] - was[k][f] for f in want[k]} for k in want}

    # The client may read the last echo a moment before the worker adds
    # it to its counter: wait (bounded) for the figures to settle.
    js = wait_for(lbstat_bin, d, lambda js: deltas(js) == want)
    print("per backend: %s" % deltas(js))
    assert deltas(js) == want
    svc, was = service_of(js), service_of(before)
    assert svc["accepted"] - was["accepted"] == n
    assert svc["rejected"] == 0
    accepted = sum(w["accepted"] for w in js["workers"])
    assert accepted - sum(w["accepted"] for w in before["workers"]) == n
    for b in backends(js).values():
        assert b["connect_failures"] == 0
        assert b["state"] == "up"
    js = wait_for(lbstat_bin, d, lambda js: service_of(js)["active"] == 0)
    assert [b["active"] for b in backends(js).values()] == [0, 0, 0]


def test_active_is_exact(lbd, backend, lbstat_bin):
    bs = [backend("ident", "app%d" % i) for i in range(1, 3)]
    d = lbd([service("web", bs)], workers=2)
    k = 11
    held = hold(d.port["web"], k)
    try:
        expect = by_name(name for _, name in held)

        def active(js):
            return {n: b["active"] for n, b in backends(js).items()
                    if b["active"] or n in expect}

        js = wait_for(lbstat_bin, d, lambda js: active(js) == expect)
        assert active(js) == expect
        assert service_of(js)["active"] == k
        assert sum(w["active"] for w in js["workers"]) == k
        # The table and the Prometheus series tell the same.
        table = table_rows(run(lbstat_bin, "-s", stats_path(d)).stdout)
        assert {r["BACKEND"]: int(r["ACTIVE"]) for r in table} == expect
        fams = parse_prometheus(run(lbstat_bin, "-p", "-s", stats_path(d)).stdout)
        prom = {l["backend"]: v for l, v in
                fams["lbd_backend_active_connections"]["samples"]}
        assert prom == {n: float(c) for n, c in expect.items()}

        # Close some: the count follows.
        for s, name in held[:5]:
            s.close()
            expect[name] -= 1
        held = held[5:]
        # A close lowers the backend's count, then the service's: two
        # counters, so a snapshot may fall between them.
        js = wait_for(lbstat_bin, d, lambda js: active(js) == expect and
                      service_of(js)["active"] == k - 5)
        assert active(js) == expect
        assert service_of(js)["active"] == k - 5
    finally:
        for s, _ in held:
            s.close()
    js = wait_for(lbstat_bin, d, lambda js: service_of(js)["active"] == 0
                  and all(b["active"] == 0 for b in backends(js).values()))
    assert service_of(js)["active"] == 0
    assert [b["active"] for b in backends(js).values()] == [0, 0]
    assert [w["active"] for w in js["workers"]] == [0, 0]


def test_totals_survive_a_dead_worker(lbd, backend, lbstat_bin):
    bs = [backend("ident", "app%d" % i) for i in range(1, 3)]
    d = lbd([service("web", bs)], workers=2)
    n = 40
    for i in range(n):
        exchange(d.port["web"], 100)
    js = wait_for(lbstat_bin, d, lambda js: sum(
        b["connections"] for b in backends(js).values()) == n)
    held = hold(d.port["web"], 4)
    try:
        js = wait_for(lbstat_bin, d, lambda js: service_of(js)["active"] == 4)
        busy = max(js["workers"], key=lambda w: w["active"])
        assert busy["pid"] in d.workers(), (busy, d.workers())
        os.kill(busy["pid"], signal.SIGKILL)

        def replaced(js):
            pids = [w["pid"] for w in js["workers"]]
            return js["worker_restarts"] >= 1 and busy["pid"] not in pids \
                and len(pids) == 2

        js = wait_for(lbstat_bin, d, replaced, timeout=5.0)
        assert replaced(js), js["workers"]
        live = 4 - busy["active"]
        # The dead worker's connections are gone from "active"; its
        # connections and bytes stay in the totals.
        assert service_of(js)["active"] == live
        assert sum(b["active"] for b in backends(js).values()) == live
        assert sum(b["connections"] for b in backends(js).values()) == n + 4
        assert sum(b["bytes_in"] for b in backends(js).values()) == n * 100
        assert service_of(js)["accepted"] == n + 4
    finally:
        for s, _ in held:
            s.close()


# -- table ---------------------------------------------------------------------

COLUMNS = ["SERVICE", "BACKEND", "ADDRESS", "STATE", "WEIGHT", "ACTIVE",
           "CONNS", "EXCH", "FAILS", "IN", "OUT", "CHECK"]


def table_rows(text, rates=False):
    """The backend rows of a table, as dicts keyed by column title, after
    checking that every cell starts exactly under its title."""
    lines = text.splitlines()
    assert re.match(r"lbd \S+  pid \d+  up \w+  workers \d+/\d+ \(restarts \d+"
                    r"(, \d+ stopping)?\)  generation \d+$", lines[0]), lines[0]
    titles = [(m.group(), m.start()) for m in re.finditer(r"\S+", lines[1])]
    want = list(COLUMNS)
    if rates:
        want[6], want[7], want[9], want[10] = "CONNS/s", "EXCH/s", "IN/s", "OUT/s"
    assert [t for t, _ in titles] == want, lines[1]
    rows = []
    for line in lines[2:]:
        if line.startswith("worker ") or ": imbalance " in line or not line:
            break
        row = {}
        for i, (title, start) in enumerate(titles):
            end = titles[i + 1][1] if i + 1 < len(titles) else len(line)
            cell = line[start:end]
            assert start == 0 or line[start - 1] == " ", (title, line)
            assert cell[:1] != " ", "%s misaligned: %r" % (title, line)
            row[title] = cell.rstrip() if i + 1 < len(titles) else cell
            if i + 1 < len(titles):
                assert cell.rstrip().count(" ") == 0, (title, line)
        rows.append(row)
    return rows


def test_table(lbd, backend, lbstat_bin):
    long_name = "a-backend-with-a-rather-long-name-to-align.x_1"
    b1 = backend("ident", "app1")
    b2 = backend("ident", long_name)
    d = lbd([service("web", [b1, (b2.name, b2.address, 3)])], workers=2)
    for i in range(8):
        exchange(d.port["web"], 1000)
    lbdtest.poll_until(lambda: sum(b["connections"] for b in backends(
        snapshot(lbstat_bin, d)).values()) == 8, 5.0 * SCALE)
    r = run(lbstat_bin, "-s", stats_path(d))
    print(r.stdout)
    assert r.returncode == 0 and r.stderr == ""
    first = r.stdout.splitlines()[0]
    assert re.match(r"lbd %s  pid %d  up \d+s  workers 2/2 \(restarts 0\)  "
                    r"generation 1$" % (re.escape(VERSION), d.pid), first), first
    rows = table_rows(r.stdout)
    assert [(x["SERVICE"], x["BACKEND"], x["ADDRESS"], x["STATE"], x["WEIGHT"])
            for x in rows] == [("web", "app1", b1.address, "up", "1"),
                               ("web", long_name, b2.address, "up", "3")]
    assert sum(int(x["CONNS"]) for x in rows) == 8
    assert sum(int(x["EXCH"]) for x in rows) == 8	# one echo per connection
    assert all(x["FAILS"] == "0" for x in rows)
    assert all(re.match(r"(ok \d+(\.\d)?ms|-)$", x["CHECK"]) for x in rows), rows
    tail = r.stdout.splitlines()[2 + len(rows):]
    workers = [l for l in tail if l.startswith("worker ")]
    assert len(workers) == 2
    for w in workers:
        assert re.match(r"worker [12]  pid \d+ +accepted \d+( \(\d+%\))? +"
                        r"active 0$", w), w
    assert any(re.match(r"web: imbalance active max/min 0/0, exch per weight "
                        r"max/min [\d.]+/[\d.]+ \(([\d.]+x|inf)\)$", l)
               for l in tail), tail


# -- Prometheus ----------------------------------------------------------------

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|"
                    r"[+-]?Inf$|NaN$")
TIMESTAMP = re.compile(r"-?\d+$")


def unescape_help(text, where):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            nxt = text[i + 1:i + 2]
            assert nxt in ("\\", "n"), "bad escape in HELP: " + where
            out.append("\\" if nxt == "\\" else "\n")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_labels(line, i, where):
    """Labels from line[i] == "{"; returns (dict, index after "}")."""
    labels = {}
    i += 1
    while True:
        if line[i:i + 1] == "}":
            return labels, i + 1
        m = LABEL_NAME.match(line, i)
        assert m, "bad label name: " + where
        name = m.group()
        assert not name.startswith("__"), "reserved label: " + where
        assert name not in labels, "label twice: " + where
        assert line[m.end():m.end() + 2] == '="', "expected =\": " + where
        i = m.end() + 2
        val = []
        while True:
            assert i < len(line), "unterminated label value: " + where
            c = line[i]
            if c == "\\":
                nxt = line[i + 1:i + 2]
                assert nxt in ('\\', '"', 'n'), "bad escape: " + where
                val.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                val.append(c)
                i += 1
        labels[name] = "".join(val)
        if line[i:i + 1] == ",":
            i += 1
        else:
            assert line[i:i + 1] == "}", "expected , or }: " + where


def parse_sample(line, where):
    m = METRIC_NAME.match(line)
    assert m, "bad metric name: " + where
    name, i, labels = m.group(), m.end(), {}
    if line[i:i + 1] == "{":
        labels, i = parse_labels(line, i, where)
    rest = line[i:]
    assert rest[:1] in (" ", "\t"), "no blank before the value: " + where
    fields = rest.split()
    assert len(fields) in (1, 2), where
    assert NUMBER.match(fields[0]), "value is not a float: " + where
    value = float(fields[0])
    if len(fields) == 2:
        assert TIMESTAMP.match(fields[1]), "bad timestamp: " + where
    return name, labels, value


def parse_prometheus(text):
    """A strict reader of the text exposition format 0.0.4, plus lbd's
    rules: HELP and TYPE exactly once per family, before its samples, which
    are contiguous and unique; counters and only counters end in _total.
    Returns {family: {"help", "type", "samples": [(labels, value)]}}."""
    assert text.endswith("\n"), "no newline at the end"
    fams, current, closed = {}, None, set()

    def enter(name, where):
        nonlocal current
        if current != name:
            assert name not in closed, "family %s split: %s" % (name, where)
            if current is not None:
                closed.add(current)
            current = name
        return fams.setdefault(name, {"help": None, "type": None,
                                      "samples": [], "keys": set()})

    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) < 3 or parts[1] not in ("HELP", "TYPE"):
                continue		# a plain comment
            assert parts[0] == "#" and METRIC_NAME.fullmatch(parts[2]), where
            fam = enter(parts[2], where)
            assert not fam["samples"], "%s after samples: %s" % (parts[1], where)
            if parts[1] == "HELP":
                assert fam["help"] is None, "HELP twice: " + where
                fam["help"] = unescape_help(parts[3] if len(parts) > 3 else "",
                                            where)
            else:
                assert fam["type"] is None, "TYPE twice: " + where
                assert len(parts) == 4 and parts[3] in (
                    "counter", "gauge", "histogram", "summary", "untyped"), where
                fam["type"] = parts[3]
            continue
        name, labels, value = parse_sample(line, where)
        fam = enter(name, where)
        key = tuple(sorted(labels.items()))
        assert key not in fam["keys"], "series twice: " + where
        fam["keys"].add(key)
        fam["samples"].append((labels, value))
    for name, fam in fams.items():
        assert fam["help"], "%s has no HELP" % name
        assert fam["type"] in ("counter", "gauge"), "%s: TYPE %s" % (
            name, fam["type"])
        assert (fam["type"] == "counter") == name.endswith("_total"), name
        del fam["keys"]
    return fams


PROM_FAMILIES = {
    "lbd_up": (), "lbd_uptime_seconds": (), "lbd_workers": (),
    "lbd_worker_restarts_total": (), "lbd_reloads_total": (),
    "lbd_generation": (),
    "lbd_worker_accepted_total": ("worker",),
    "lbd_worker_active_connections": ("worker",),
    "lbd_service_accepted_total": ("service",),
    "lbd_service_rejected_total": ("service",),
    "lbd_service_active_connections": ("service",),
    "lbd_backend_up": ("service", "backend"),
    "lbd_backend_state": ("service", "backend", "state"),
    "lbd_backend_weight": ("service", "backend"),
    "lbd_backend_active_connections": ("service", "backend"),
    "lbd_backend_connections_total": ("service", "backend"),
    "lbd_backend_connect_failures_total": ("service", "backend"),
    "lbd_backend_bytes_in_total": ("service", "backend"),
    "lbd_backend_bytes_out_total": ("service", "backend"),
    "lbd_backend_spliced_total": ("service", "backend", "direction"),
    "lbd_backend_check_latency_seconds": ("service", "backend"),
}


def test_parser_rejects_bad_input():
    """The parser used below is worth something only if it refuses."""
    good = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"v\"} 1\n"
    parse_prometheus(good)
    for bad in (good + "a_total{l=\"v\"} 2\n",		# duplicate series
                good.replace("# HELP a_total x\n", ""),	# no HELP
                good + "# TYPE a_total counter\n",		# TYPE twice
                good.replace(" 1\n", " one\n"),		# not a float
                good.replace('"v"', '"a\\qb"'),		# bad escape
                good.replace("l=", "1l="),			# bad label name
                good.replace("counter", "gauge"),		# gauge named _total
                good + "# HELP b x\n# TYPE b gauge\nb 1\na_total 3\n"):  # split
        with pytest.raises(AssertionError):
            parse_prometheus(bad)


def test_prometheus(lbd, backend, lbstat_bin):
    bs = [backend("ident", "app%d" % i) for i in range(1, 3)]
    d = lbd([service("web", bs), service("db", [("pg1", bs[0].address)])],
            workers=2)
    for i in range(10):
        exchange(d.port["web"], 500)
    js = wait_for(lbstat_bin, d, lambda js: sum(
        b["connections"] for b in backends(js).values()) == 10)
    r = run(lbstat_bin, "-p", "-s", stats_path(d))
    assert r.returncode == 0 and r.stderr == ""
    fams = parse_prometheus(r.stdout)
    for name, labels in PROM_FAMILIES.items():
        assert name in fams, "no %s" % name
        for lab, _ in fams[name]["samples"]:
            assert set(labels) <= set(lab), (name, lab)
    assert fams["lbd_up"]["samples"] == [({}, 1.0)]
    assert fams["lbd_workers"]["samples"] == [({}, 2.0)]
    assert fams["lbd_generation"]["samples"] == [({}, 1.0)]
    workers = {l["worker"] for l, _ in fams["lbd_worker_accepted_total"]["samples"]}
    assert workers == {"1", "2"}
    conns = {(l["service"], l["backend"]): v for l, v in
             fams["lbd_backend_connections_total"]["samples"]}
    assert conns == {("web", "app1"): backends(js)["app1"]["connections"],
                     ("web", "app2"): backends(js)["app2"]["connections"],
                     ("db", "pg1"): 0}
    ups = {(l["service"], l["backend"]): v
           for l, v in fams["lbd_backend_up"]["samples"]}
    assert set(ups.values()) == {1.0}
    accepted = {l["service"]: v for l, v in
                fams["lbd_service_accepted_total"]["samples"]}
    assert accepted == {"web": 10, "db": 0}

    # Filtered: only that backend's series, and its service's.
    r = run(lbstat_bin, "-p", "-s", stats_path(d), "web/app2")
    fams = parse_prometheus(r.stdout)
    seen = {l.get("backend") for f in fams.values() for l, _ in f["samples"]}
    assert seen == {None, "app2"}
    assert {l["service"] for l, _ in
            fams["lbd_service_accepted_total"]["samples"]} == {"web"}


# -- JSON ----------------------------------------------------------------------

def test_json_keys(lbd, backend, lbstat_bin):
    bs = [backend("ident", "app%d" % i) for i in range(1, 3)]
    d = lbd([service("web", bs, balance="leastconn")], workers=2)
    js = snapshot(lbstat_bin, d)
    assert js["version"] == VERSION and js["pid"] == d.pid
    assert js["generation"] == 1 and 0 <= js["uptime_s"] < 600
    assert {"version", "pid", "uptime_s", "generation", "workers",
            "services"} <= set(js)
    assert sorted(w["id"] for w in js["workers"]) == [1, 2]
    assert {w["pid"] for w in js["workers"]} == set(d.workers())
    for w in js["workers"]:
        assert {"id", "pid", "active", "accepted", "restarts"} <= set(w)
    svc = service_of(js)
    assert svc["listen"] == ["127.0.0.1:%d" % d.port["web"]]
    assert svc["balance"] == "leastconn"
    assert {"name", "listen", "balance", "active", "accepted", "rejected",
            "backends"} <= set(svc)
    for b in svc["backends"]:
        assert {"name", "address", "state", "weight", "active", "connections",
                "connect_failures", "bytes_in", "bytes_out", "spliced_in",
                "spliced_out", "check"} <= set(b)
        assert b["check"]["status"] in ("ok", "failed", "none")
        assert isinstance(b["check"]["latency_ms"], (int, float))
        assert b["check"]["last_change_s"] >= 0
    assert [b["address"] for b in svc["backends"]] == [b.address for b in bs]


def test_spliced_counts_bulk_directions(lbd, backend, lbstat_bin):
    """A download of more than 1 MiB moves its backend-to-client direction
    from copying to splice(); a small echo exchange stays copied both ways.
    JSON and Prometheus agree on the counts."""
    size = (1 << 20) + 12345
    src = backend("source", size, "spliced")
    echo = backend("ident", "echo1")
    d = lbd([service("bulk", [src]), service("small", [echo])], workers=1)
    s = lbdtest.connect(d.port["bulk"])
    try:
        got = lbdtest.recv_until_eof(s, size + 1)
    finally:
        s.close()
    assert got == backend_mod.stream_bytes("spliced", size)
    name, _, _ = exchange(d.port["small"], 100)
    assert name == "echo1"

    def settled(js):
        return backends(js, "bulk")[src.name]["bytes_out"] == size and \
            backends(js, "small")["echo1"]["connections"] == 1 and \
            service_of(js, "bulk")["active"] == 0
    js = wait_for(lbstat_bin, d, settled)
    bulk, small = backends(js, "bulk")[src.name], backends(js, "small")["echo1"]
    print("bulk: %s\nsmall: %s" % (bulk, small))
    assert settled(js)
    assert bulk["connections"] == 1
    assert bulk["spliced_out"] >= 1
    assert bulk["spliced_in"] == 0		# the client sent nothing
    assert small["spliced_in"] == 0 and small["spliced_out"] == 0
    fams = parse_prometheus(run(lbstat_bin, "-p", "-s", stats_path(d)).stdout)
    spliced = {(l["backend"], l["direction"]): v for l, v in
               fams["lbd_backend_spliced_total"]["samples"]}
    assert spliced == {(src.name, "in"): 0.0,
                       (src.name, "out"): float(bulk["spliced_out"]),
                       ("echo1", "in"): 0.0, ("echo1", "out"): 0.0}


def test_json_shows_a_failing_backend(lbd, backend, lbstat_bin):
    live = backend("ident", "live")
    sock, port = lbdtest.dead_port()
    try:
        d = lbd([dict(service("web", [live, ("dead", "127.0.0.1:%d" % port)]),
                      health={"interval": '"200ms"', "timeout": '"100ms"',
                              "rise": 1, "fall": 1})], workers=1)
        js = wait_for(lbstat_bin, d, lambda js:
                      backends(js)["dead"]["state"] == "down" and
                      backends(js)["live"]["check"]["status"] == "ok")
        dead = backends(js)["dead"]
        assert dead["state"] == "down", dead
        assert dead["check"]["status"] == "failed"
        assert backends(js)["live"]["check"]["status"] == "ok"
        table = table_rows(run(lbstat_bin, "-s", stats_path(d)).stdout)
        row = next(r for r in table if r["BACKEND"] == "dead")
        assert row["STATE"] == "down" and "refused" in row["CHECK"], row
    finally:
        sock.close()


# -- -i and -c -----------------------------------------------------------------

def traffic(port, stop, counter):
    """Connections until stop is set (at most 60 s)."""
    deadline = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            exchange(port, 2000)
            counter.append(1)
        except OSError:
            time.sleep(0.01)


def test_interval_json_rates(lbd, backend, lbstat_bin):
    bs = [backend("ident", "app%d" % i) for i in range(1, 3)]
    d = lbd([service("web", bs)], workers=2)
    stop, done = threading.Event(), []
    t = threading.Thread(target=traffic, args=(d.port["web"], stop, done))
    t.start()
    try:
        t0 = time.monotonic()
        r = run(lbstat_bin, "-j", "-i", "0.5", "-c", "3", "-s", stats_path(d))
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        t.join(30)
    assert r.returncode == 0, r.stderr
    samples = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(samples) == 3
    assert 0.9 <= elapsed <= 5.0 * SCALE, elapsed
    assert "interval_s" not in samples[0]
    for b in backends(samples[0]).values():
        assert "connections_per_s" not in b
    for prev, cur in zip(samples, samples[1:]):
        assert 0.3 <= cur["interval_s"] <= 2.0 * SCALE, cur["interval_s"]
        for name, b in backends(cur).items():
            was = backends(prev)[name]
            for key, rate in (("connections", "connections_per_s"),
                              ("bytes_in", "bytes_in_per_s"),
                              ("bytes_out", "bytes_out_per_s")):
                delta = b[key] - was[key]
                assert delta >= 0
                # rate x interval gives the delta back, give or take the
                # rounding of both to three decimals
                assert abs(b[rate] * cur["interval_s"] - delta) <= \
                    0.002 * delta + 1, (name, key, b[rate], delta)
    moved = sum(b["connections"] for b in backends(samples[2]).values()) - \
        sum(b["connections"] for b in backends(samples[0]).values())
    print("%d connections during sampling, %d through lbd between samples 1 "
          "and 3" % (len(done), moved))
    assert moved > 0


def test_interval_table_rates(lbd, backend, lbstat_bin):
    b = backend("ident", "app1")
    d = lbd([service("web", [b])], workers=1)
    r = run(lbstat_bin, "-i", "0.5", "-c", "3", "-s", stats_path(d))
    assert r.returncode == 0, r.stderr
    chunks = r.stdout.split("\n\n")
    assert len(chunks) == 3, r.stdout
    assert len(table_rows(chunks[0])) == 1
    for chunk in chunks[1:]:
        rows = table_rows(chunk, rates=True)
        assert rows[0]["CONNS/s"] == "0.0"
        assert "worker 1  pid %d" % next(iter(d.workers())) in chunk
        assert "accepted/s 0.0" in chunk


class Lines:
    """Lines from a running lbstat's stdout, read from the raw descriptor
    so that nothing hides in a buffer from select()."""

    def __init__(self, proc):
        self.proc, self.buf, self.lines = proc, b"", []

    def wait(self, n, timeout):
        """Reads until n lines in all have come, EOF, or timeout."""
        deadline = time.monotonic() + timeout * SCALE
        fd = self.proc.stdout.fileno()
        while len(self.lines) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            data = os.read(fd, 65536)
            if not data:
                break
            self.buf += data
            *done, self.buf = self.buf.split(b"\n")
            self.lines += [json.loads(l) for l in done]
        return self.lines


def spawn(lbstat_bin, *args):
    return subprocess.Popen([lbstat_bin] + list(args), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def reap(p):
    if p.poll() is None:
        p.kill()
    p.wait(5)
    p.stdout.close()
    p.stderr.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interval_stops_cleanly(lbd, backend, lbstat_bin, sig):
    b = backend("ident", "app1")
    d = lbd([service("web", [b])], workers=1)
    p = spawn(lbstat_bin, "-j", "-i", "0.2", "-s", stats_path(d))
    try:
        lines = Lines(p).wait(2, 10)
        assert len(lines) == 2, "lbstat -i printed %d samples" % len(lines)
        p.send_signal(sig)
        assert p.wait(5 * SCALE) == 0
        assert p.stderr.read() == b""
    finally:
        reap(p)


def test_interval_follows_a_reload(lbd, backend, lbstat_bin):
    b = backend("ident", "app1")
    d = lbd([service("web", [b])], workers=1)
    p = spawn(lbstat_bin, "-j", "-i", "0.2", "-c", "15", "-s", stats_path(d))
    try:
        out = Lines(p)
        assert len(out.wait(1, 10)) == 1
        d.signal(signal.SIGHUP)
        lines = out.wait(15, 20)
        assert p.wait(5 * SCALE) == 0, p.stderr.read()
    finally:
        reap(p)
    gens = [js["generation"] for js in lines]
    assert len(gens) == 15
    assert gens[0] == 1 and gens[-1] == 2, gens
    assert gens == sorted(gens)
    # A reload keeps the segment: rates go on, no sample is a first one.
    assert all("interval_s" in js for js in lines[1:])


# -- filters, errors, usage ----------------------------------------------------

def test_filter(lbd, backend, lbstat_bin):
    bs = [backend("ident", "app%d" % i) for i in range(1, 3)]
    d = lbd([service("web", bs), service("db", [("pg1", bs[0].address)])],
            workers=1)
    path = stats_path(d)
    js = snapshot(lbstat_bin, d, "web/app2")
    assert [s["name"] for s in js["services"]] == ["web"]
    assert list(backends(js)) == ["app2"]
    js = snapshot(lbstat_bin, d, "db")
    assert [s["name"] for s in js["services"]] == ["db"]
    assert list(backends(js, "db")) == ["pg1"]

    r = run(lbstat_bin, "-s", path, "web/app2")
    assert r.returncode == 0
    assert [x["BACKEND"] for x in table_rows(r.stdout)] == ["app2"]
    assert "worker" not in r.stdout.split("\n", 1)[1]
    r = run(lbstat_bin, "-s", path, "web")
    assert [x["BACKEND"] for x in table_rows(r.stdout)] == ["app1", "app2"]
    assert "db: imbalance" not in r.stdout and "web: imbalance" in r.stdout

    for arg, msg in (("web/app9", "web/app9: no such backend"),
                     ("nosuch", "nosuch: no such service"),
                     ("nosuch/app1", "nosuch/app1: no such backend")):
        for fmt in ([], ["-j"], ["-p"]):
            r = run(lbstat_bin, "-s", path, *fmt, arg)
            assert r.returncode == 1, (arg, fmt, r)
            assert r.stderr == "lbstat: %s\n" % msg
            assert r.stdout == ""


def test_config_finds_the_segment(lbd, backend, lbstat_bin):
    b = backend("ident", "app1")
    d = lbd([service("web", [b])], workers=1)
    r = run(lbstat_bin, "-j", "-f", d.conf_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pid"] == d.pid
    r = run(lbstat_bin, "-j", env={"LBD_CONF": d.conf_path})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["pid"] == d.pid


def test_stopped_daemon(lbd, backend, lbstat_bin):
    """The segment outlives its daemon: lbstat still reads it, and says the
    master is gone rather than pretending it runs."""
    b = backend("ident", "app1")
    d = lbd([service("web", [b])], workers=1)
    exchange(d.port["web"], 10)
    d.signal(signal.SIGTERM)
    assert d.wait(15 * SCALE) == 0
    # A clean stop keeps the segment and clears master_pid in it.
    assert os.path.exists(stats_path(d))
    js = snapshot(lbstat_bin, d)
    assert js["running"] is False and js["uptime_s"] == 0
    assert js["pid"] == 0
    assert backends(js)["app1"]["connections"] == 1
    r = run(lbstat_bin, "-s", stats_path(d))
    assert r.returncode == 0
    assert re.match(r"lbd %s  stopped  workers " % re.escape(VERSION), r.stdout), \
        r.stdout
    fams = parse_prometheus(run(lbstat_bin, "-p", "-s", stats_path(d)).stdout)
    assert fams["lbd_up"]["samples"] == [({}, 0.0)]


def test_missing_segment(lbstat_bin, tmp_path):
    path = str(tmp_path / "run" / "lbd.stats")
    for fmt in ([], ["-j"], ["-p"], ["-i", "0.1", "-c", "2"]):
        r = run(lbstat_bin, "-s", path, *fmt)
        assert r.returncode == 1, r
        assert r.stderr == ("lbstat: %s: No such file or directory "
                            "(is lbd running?)\n" % path)
        assert r.stdout == ""
    conf = tmp_path / "lbd.conf"
    conf.write_text(lbdtest.render_config(
        str(tmp_path / "run"), [{"name": "web", "listen": ["127.0.0.1:1"],
                                 "backends": [("a", "127.0.0.1:2", 1)]}]))
    r = run(lbstat_bin, "-f", str(conf))
    assert r.returncode == 1 and path in r.stderr, r
    r = run(lbstat_bin, "-f", str(tmp_path / "nope.conf"))
    assert r.returncode == 1 and "nope.conf" in r.stderr, r

    junk = tmp_path / "junk.stats"
    junk.write_bytes(b"x" * 4096)
    r = run(lbstat_bin, "-s", str(junk))
    assert r.returncode == 1
    assert r.stderr == "lbstat: %s: not an lbd stats segment\n" % junk


# Offsets in struct lbd_stats_header (include/lbd/stats.h).
HDR_VERSION = 8


def layout_version():
    """LBD_STATS_VERSION, as include/lbd/stats.h says today."""
    header = os.path.join(os.path.dirname(__file__), "..", "..", "include",
                          "lbd", "stats.h")
    with open(header) as f:
        return int(re.search(r"#define LBD_STATS_VERSION\s+(\d+)",
                             f.read()).group(1))
HDR_SEQ = 96


def test_damaged_segments(lbd, backend, lbstat_bin, tmp_path):
    """Copies of a live segment, damaged: lbstat refuses them with a reason
    and never hangs, not even on a seqlock left odd by a dead master."""
    b = backend("ident", "app1")
    d = lbd([service("web", [b])], workers=1)
    with open(stats_path(d), "rb") as f:
        image = bytearray(f.read())
    version = layout_version()
    assert int.from_bytes(image[HDR_VERSION:HDR_VERSION + 4], "little") == version

    def check(name, data, message):
        path = tmp_path / name
        path.write_bytes(bytes(data))
        t0 = time.monotonic()
        r = run(lbstat_bin, "-s", str(path))
        elapsed = time.monotonic() - t0
        assert r.returncode == 1, (name, r)
        assert r.stderr == "lbstat: %s: %s\n" % (path, message), r.stderr
        assert r.stdout == ""
        return elapsed

    odd = bytearray(image)
    seq = int.from_bytes(odd[HDR_SEQ:HDR_SEQ + 4], "little")
    odd[HDR_SEQ:HDR_SEQ + 4] = (seq | 1).to_bytes(4, "little")
    elapsed = check("odd.stats", odd, "the segment stays in the middle of an "
                    "update (did the master die while writing it?)")
    print("gave up on an odd seqlock after %.2fs" % elapsed)
    assert elapsed < 5 * SCALE
    newer = bytearray(image)
    newer[HDR_VERSION:HDR_VERSION + 4] = (99).to_bytes(4, "little")
    check("v99.stats", newer, "stats layout version 99 is not the one this "
          "program reads (%d)" % version)
    check("short.stats", image[:8192], "segment is truncated")
    check("empty.stats", b"", "not an lbd stats segment")


def test_usage(lbstat_bin):
    r = run(lbstat_bin, "-h")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("usage: lbstat [-hjp] [-s statsfile | -f "
                               "configfile] [-i seconds [-c count]]")
    for flag in ("-c count", "-f configfile", "-h", "-i seconds", "-j", "-p",
                 "-s statsfile", "service[/backend]"):
        assert "\n  %s " % flag in r.stdout, flag
    for args in (["-x"], ["-j", "-p"], ["-s", "a", "-f", "b"], ["-c", "3"],
                 ["-i", "0"], ["-i", "x"], ["-i", "1", "-c", "0"], ["a", "b"],
                 ["web/"], ["-i"]):
        r = run(lbstat_bin, *args)
        assert r.returncode == 2, (args, r)
        assert r.stdout == ""
        assert "usage: lbstat" in r.stderr, (args, r.stderr)
