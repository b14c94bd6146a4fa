"""`source` balancing agrees between nodes (issue 19): the hash is keyed by
each backend's name, so two lbd instances whose files list the same four
backends in different orders send every client address to the same backend,
and so does one instance restarted after its file was reordered.  That is
what lets several lbd nodes behind ECMP keep a client on one backend however
the routers spread its flows.  (Keyed by stats-segment slot, as before, the
two instances agreed on about a quarter of the addresses.)

Clients bind to 127.0.0.2 .. 127.0.0.101 before connecting; each backend
answers with its name (backend.py ident).  Real binaries over loopback.
"""

import collections
import signal
import socket

from lbdtest import SCALE, recv_exact, recv_line, service

NAMES = ("app1", "app2", "app3", "app4")
SOURCES = ["127.0.0.%d" % i for i in range(2, 102)]


def backend_from(port, src):
    """One ident exchange from source address src; the backend's name."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5 * SCALE)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        line = recv_line(s)
        assert line.endswith(b"\n"), "%s: no greeting: %r" % (src, line)
        s.sendall(b"hi\n")
        assert recv_exact(s, 3) == b"hi\n"
        return line[:-1].decode()
    finally:
        s.close()


def homes(d):
    """{source address: backend name} through lbd instance d."""
    return {src: backend_from(d.port["web"], src) for src in SOURCES}


def in_order(bs, order):
    """The backends by name, in the order given."""
    by_name = {b.name: b for b in bs}
    return [by_name[n] for n in order]


def disagreements(a, b):
    return sorted(src for src in SOURCES if a[src] != b[src])


def check_spread(home):
    """Agreement means something only if the clients are spread."""
    spread = collections.Counter(home.values())
    assert set(spread) == set(NAMES), "clients not spread: %s" % spread
    return dict(sorted(spread.items()))


def test_source_same_on_two_nodes_any_order(lbd, backend):
    bs = [backend("ident", n) for n in NAMES]
    # Reversed: no backend keeps its place (nor, before, its slot).
    one = lbd([service("web", in_order(bs, NAMES), balance="source")])
    two = lbd([service("web", in_order(bs, NAMES[::-1]),
                       balance="source")])
    a, b = homes(one), homes(two)
    print("node one: %s; node two: %s" % (check_spread(a), check_spread(b)))
    differ = disagreements(a, b)
    assert not differ, "the two nodes disagree on %d of %d addresses: %s" % (
        len(differ), len(SOURCES),
        ["%s: %s/%s" % (s, a[s], b[s]) for s in differ[:10]])
    # Sticky within a node too (a second round, other source ports).
    assert homes(two) == b


def test_source_same_after_reordered_restart(lbd, backend):
    bs = [backend("ident", n) for n in NAMES]
    d = lbd([service("web", in_order(bs, NAMES), balance="source")])
    before = homes(d)
    check_spread(before)

    # Reorder the file (a rotation: every backend moves) and restart: a
    # new master, a new stats segment whose slots follow the new order.
    d.signal(signal.SIGTERM)
    assert d.wait(15 * SCALE) == 0, d.describe()
    rotated = NAMES[1:] + NAMES[:1]
    d.services = [service("web", in_order(bs, rotated), balance="source")]
    d.start()
    after = homes(d)
    differ = disagreements(before, after)
    assert not differ, "after the reordered restart %d of %d addresses " \
        "moved: %s" % (len(differ), len(SOURCES),
                       ["%s: %s -> %s" % (s, before[s], after[s])
                        for s in differ[:10]])
