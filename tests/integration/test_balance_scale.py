"""Choices in large services (issue 18), through the real binary: above
32 eligible backends leastconn compares two backends drawn by weight and
the runner-up of its last choice; above 64 backends roundrobin follows the
golden-ratio order over the weights and source hashing a consistent hash
ring.  A drawn choice never picks a backend of weight 0 and keeps the spread
of held connections within a few; a client walks past many refusing
backends (more tries than a walk holds without allocating); roundrobin
gives 200 backends exactly their weight per period; the ring moves only a
disabled backend's clients, and gives them back.

A few backend processes serve many backend entries each (an address may
serve several); lbstat and the connection log tell the entries apart.
tests/unit/test_schedule_scale.c covers the same at 10 000.
"""

import collections
import json
import os
import re
import subprocess

import lbdtest
from lbdtest import SCALE, service
from test_balance import open_held


def lbstat_backends(d, svc="web"):
    """{backend name: backend object} from lbstat -j."""
    p = subprocess.run([os.path.join(lbdtest.build_dir(), "lbstat"), "-j",
                        "-s", os.path.join(d.runtime_dir, "lbd.stats")],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10 * SCALE)
    assert p.returncode == 0, p.stderr
    js = json.loads(p.stdout.splitlines()[0])
    s = next(s for s in js["services"] if s["name"] == svc)
    return {b["name"]: b for b in s["backends"]}


def greeted(port, src=None):
    """A connection through lbd past its backend's greeting."""
    return open_held(port, src)[0]



def test_leastconn_drawn_spread(lbd, backend):
    procs = [backend("ident", "p%d" % i) for i in range(3)]
    # 40 of weight 1 and 8 of weight 0: 40 eligible, above the 32 compared
    # one by one.
    rows = [("e%02d" % i, procs[i % 3].address, 0 if i % 6 == 5 else 1)
            for i in range(48)]
    eligible = [r[0] for r in rows if r[2] > 0]
    assert len(eligible) == 40
    d = lbd([service("web", rows, balance="leastconn")], workers=2)
    held = []
    try:
        for _ in range(160):
            held.append(greeted(d.port["web"]))
        st = lbdtest.poll_until(
            lambda: (lambda b: b if sum(x["active"] for x in b.values()) == 160
                     else None)(lbstat_backends(d)), 5 * SCALE)
        assert st, "lbstat never showed the 160 connections"
        active = {n: st[n]["active"] for n in eligible}
        idle = {r[0]: st[r[0]]["active"] for r in rows if r[2] == 0}
        print("leastconn drawn, 40 eligible, 160 held: active %d..%d"
              % (min(active.values()), max(active.values())))
        assert not any(idle.values()), idle
        # Two choices put at most about ln ln n / ln 2 + a few above the
        # average of 4 (exact leastconn: 1); a few more for two workers
        # choosing at once.  The lightest may lag further behind (a
        # backend fills only when drawn: in a simulation of this run, 1 in
        # 200 left one at 0), so it is not bounded.
        assert max(active.values()) <= 8, active
    finally:
        for s in held:
            s.close()


def test_leastconn_drawn_retries_past_refusals(lbd, backend):
    live = backend("ident", "live")
    dead = []
    for _ in range(20):
        dead.append(lbdtest.dead_port())
    # Alternating refusing and answering entries, 40 in all: the refusing
    # ones hold no connection, so leastconn draws favour them, and a client
    # may walk past many of them before it reaches a live one.
    rows = []
    for i in range(20):
        rows.append(("dead%02d" % i, "127.0.0.1:%d" % dead[i][1], 1))
        rows.append(("live%02d" % i, live.address, 1))
    try:
        d = lbd([service("web", rows, balance="leastconn", retries=40)],
                workers=2)
        held = [greeted(d.port["web"]) for _ in range(60)]
        st = lbdtest.poll_until(
            lambda: (lambda b: b if sum(x["active"] for x in b.values()) == 60
                     else None)(lbstat_backends(d)), 5 * SCALE)
        assert st, "lbstat never showed the 60 connections"
        assert all(st["dead%02d" % i]["active"] == 0 for i in range(20))
        failures = sum(st["dead%02d" % i]["connect_failures"] for i in range(20))
        print("60 clients over 20 refusing + 20 answering entries: %d refused "
              "connects on the way" % failures)
        # About 3 refusals a client: many walks went past the 4 tries a walk
        # holds without allocating, and every client still got through.
        assert failures >= 60, failures
        for s in held:
            s.close()
    finally:
        for s, _ in dead:
            s.close()


def close_after_greeting(port, src=None):
    greeted(port, src).close()


def test_roundrobin_large_exact_period(lbd, backend):
    procs = [backend("ident", "p%d" % i) for i in range(4)]
    # 200 backends of weights 1 and 2: a period of 300 turns.
    rows = [("r%03d" % i, procs[i % 4].address, 1 + i % 2) for i in range(200)]
    d = lbd([service("web", rows)], workers=2)
    for _ in range(600):
        close_after_greeting(d.port["web"])
    st = lbdtest.poll_until(
        lambda: (lambda b: b if sum(x["connections"] for x in b.values()) == 600
                 else None)(lbstat_backends(d)), 5 * SCALE)
    assert st, "lbstat never counted the 600 connections"
    got = collections.Counter({n: st[n]["connections"] for n, _, _ in rows})
    print("roundrobin, 200 backends of weight 1 and 2, 600 connections: %s"
          % sorted(collections.Counter(got.values()).items()))
    for name, _, weight in rows:
        assert got[name] == 2 * weight, (name, weight, got[name])


def homes(d, sources):
    """{source address: lbd backend} from the connection log of one
    connection from each."""
    skip = len(d.stderr())
    for src in sources:
        close_after_greeting(d.port["web"], src)
    pat = re.compile(r"web (127\.0\.0\.\d+):\d+ -> (\S+) ")
    found = {}

    def all_logged():
        found.clear()
        for line in d.stderr()[skip:].splitlines():
            m = pat.search(line)
            if m:
                found[m.group(1)] = m.group(2)
        return len(found) == len(sources)

    assert lbdtest.poll_until(all_logged, 5 * SCALE), "connection log incomplete"
    return dict(found)


def test_source_ring_moves_only_a_disabled_backends_clients(lbd, backend):
    procs = [backend("ident", "p%d" % i) for i in range(4)]
    rows = [("h%03d" % i, procs[i % 4].address, 1) for i in range(200)]
    sources = ["127.0.0.%d" % i for i in range(2, 202)]
    d = lbd([service("web", rows, balance="source")], workers=2,
            log_connections=True)
    before = homes(d, sources)
    spread = collections.Counter(before.values())
    victim = spread.most_common(1)[0][0]
    subprocess.run([os.path.join(lbdtest.build_dir(), "lbadmin"), "-f", d.conf_path,
                    "disable", "web/" + victim], check=True, capture_output=True,
                   timeout=20 * SCALE)
    after = homes(d, sources)
    moved = [s for s in sources if after[s] != before[s]]
    print("source ring, 200 backends, 200 clients on %d of them; %s disabled: "
          "%d moved" % (len(spread), victim, len(moved)))
    assert moved and all(before[s] == victim for s in moved), moved
    assert all(after[s] != victim for s in sources)
    subprocess.run([os.path.join(lbdtest.build_dir(), "lbadmin"), "-f", d.conf_path,
                    "enable", "web/" + victim], check=True, capture_output=True,
                   timeout=20 * SCALE)
    assert homes(d, sources) == before
