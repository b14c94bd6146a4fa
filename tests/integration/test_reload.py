"""Reload (SIGHUP): the new configuration takes over with no refused or
reset connection, listeners stay open, old workers finish and go, and a
broken file changes nothing."""

import collections
import signal
import socket
import threading
import time

import lbdtest
from lbdtest import SCALE, poll_until


def rewrite(inst, services):
    """Writes services (dicts as for lbdtest.service) as inst's config, on
    the listen ports inst already has."""
    svcs = [dict(s, listen=["127.0.0.1:%d" % inst.port[s["name"]]])
            for s in services]
    inst.conf_text = lbdtest.render_config(inst.runtime_dir, svcs,
                                           inst.workers_wanted, inst.globals)
    with open(inst.conf_path, "w") as f:
        f.write(inst.conf_text)


def listen_inode(pid, port):
    inodes = lbdtest.socket_inodes(pid)
    found = [inode for _, sp, _, inode in
             lbdtest._diag(1 << lbdtest.TCP_LISTEN)
             if sp == port and inode in inodes]
    return found[0] if found else None


class Client(threading.Thread):
    """Connects in a loop (bounded by time and count) and checks each
    connection end to end: backend name line, then an echo."""

    def __init__(self, port, limit=20000):
        super().__init__(daemon=True)
        self.port, self.limit = port, limit
        self.stop = threading.Event()
        self.seen = collections.Counter()
        self.errors = []
        self.done = 0

    def run(self):
        deadline = time.monotonic() + 120 * SCALE
        while not self.stop.is_set() and self.done < self.limit \
                and time.monotonic() < deadline:
            try:
                s = lbdtest.connect(self.port, timeout=5 * SCALE)
                try:
                    name = lbdtest.recv_line(s).decode().strip()
                    s.sendall(b"ping\n")
                    if lbdtest.recv_line(s) != b"ping\n":
                        raise AssertionError("bad echo via %s" % name)
                    self.seen[name] += 1
                finally:
                    s.close()
            except (OSError, AssertionError) as e:
                self.errors.append("%s: %r" % (time.strftime("%T"), e))
            self.done += 1


def wait_generation(inst, old_pids, timeout):
    """Until the workers are all new and the old ones have exited."""
    def settled():
        now = set(inst.workers())
        return (len(now) == inst.workers_wanted and not (now & old_pids)
                and all(lbdtest.is_dead(p) for p in old_pids))
    return poll_until(settled, timeout)


def test_reloads_lose_nothing(lbd, backend):
    pool = [backend("ident", "b%d" % i) for i in range(1, 8)]
    svc = lbdtest.service("web", pool[:2])
    inst = lbd([svc])
    port = inst.port["web"]
    inode = listen_inode(inst.pid, port)
    assert inode is not None
    first_workers = set(inst.workers())

    client = Client(port)
    client.start()
    time.sleep(0.3)
    reloads = 0
    for n in range(3, 8):
        old = set(inst.workers())
        rewrite(inst, [lbdtest.service("web", pool[:n])])
        inst.signal(signal.SIGHUP)
        assert wait_generation(inst, old, 10 * SCALE), inst.describe()
        reloads += 1
        time.sleep(0.3)
    served_before_last = client.seen["b7"]
    time.sleep(0.5)

    # A broken file: refused, logged, and the running setup stays.
    old = set(inst.workers())
    with open(inst.conf_path, "a") as f:
        f.write("service broken {\n    listen = { \"127.0.0.1:1\" }\n")
    inst.signal(signal.SIGHUP)
    assert poll_until(lambda: "reload refused" in inst.stderr(), 5 * SCALE), \
        inst.describe()
    time.sleep(0.5)
    client.stop.set()
    client.join(30)

    print("reloads %d, connections %d, errors %d, per backend %s"
          % (reloads, client.done, len(client.errors), dict(client.seen)))
    assert not client.errors, client.errors[:10]
    assert client.done > 200
    assert inst.proc.poll() is None, "lbd died on the broken reload"
    assert set(inst.workers()) == old, "a refused reload replaced workers"
    assert not (set(inst.workers()) & first_workers)
    assert all(lbdtest.is_dead(p) for p in first_workers)
    assert "not closed at end of file" in inst.stderr()
    # The listener was never closed and re-opened.
    assert listen_inode(inst.pid, port) == inode
    # The backend added last serves, and every backend got traffic.
    assert client.seen["b7"] > served_before_last >= 0
    assert all(client.seen["b%d" % i] > 0 for i in range(1, 8))


def test_reload_keeps_open_connections(lbd, backend):
    """A connection open across a reload keeps working through its old
    worker, which exits once it closes."""
    b1, b2 = backend("ident", "b1"), backend("ident", "b2")
    inst = lbd([lbdtest.service("web", [b1])])
    port = inst.port["web"]
    held = lbdtest.connect(port)
    assert lbdtest.recv_line(held) == b"b1\n"
    owner = inst.owner_of(held)
    assert owner is not None

    rewrite(inst, [lbdtest.service("web", [b2])])
    inst.signal(signal.SIGHUP)
    assert poll_until(lambda: "(stopping)" in (lbdtest.proc_title(owner) or "")
                      and len(inst.workers()) == 3, 5 * SCALE), inst.describe()
    # New connections go to the new backend; the old one still echoes.
    s = lbdtest.connect(port)
    assert lbdtest.recv_line(s) == b"b2\n"
    s.close()
    held.sendall(b"still here\n")
    assert lbdtest.recv_line(held) == b"still here\n"
    assert not lbdtest.is_dead(owner)
    held.close()
    assert poll_until(lambda: lbdtest.is_dead(owner), 5 * SCALE), \
        "old worker did not exit after its last connection"


def test_reload_moves_listener(lbd, backend):
    """A changed listen address: the new one accepts, the old one is closed."""
    b1 = backend("ident", "b1")
    inst = lbd([lbdtest.service("web", [b1])])
    old_port = inst.port["web"]
    new_port = lbdtest.free_port()
    inst.port["web"] = new_port
    old = set(inst.workers())
    rewrite(inst, [lbdtest.service("web", [b1])])
    inst.signal(signal.SIGHUP)
    assert wait_generation(inst, old, 10 * SCALE), inst.describe()
    s = lbdtest.connect(new_port)
    assert lbdtest.recv_line(s) == b"b1\n"
    s.close()
    try:
        socket.create_connection(("127.0.0.1", old_port), timeout=2).close()
        raise AssertionError("old listen port still accepts")
    except ConnectionRefusedError:
        pass
