#!/usr/bin/python3
"""A slow download backend for test_faults.py, run as its own process.

    faults_backend.py SEED CHUNK INTERVAL_MS TOTAL

Listens on 127.0.0.1 (a free port) and prints "READY <port>" once it
accepts.  Every connection gets CHUNK bytes at once and CHUNK more every
INTERVAL_MS, up to TOTAL bytes, then a FIN (and a close at the client's
EOF).  Whatever the client sends is read and thrown away.  The bytes are
pattern(SEED) repeated: byte p of a stream is pattern[p % len(pattern)], so
a client can check any prefix it received (see expected()).

So thousands of connections are each "mid-download" with little in flight,
and the backend can be killed while they are.
"""

import functools
import os
import resource
import selectors
import signal
import socket
import sys
import time

PATTERN_LEN = 65521		# prime: never aligns with pipe or buffer sizes


@functools.lru_cache(maxsize=8)
def pattern(seed):
    return bytes((i * 131 + (i >> 8) * 7 + seed * 61) & 0xFF
                 for i in range(PATTERN_LEN))


def expected(seed, start, n):
    """Bytes start..start+n of a stream of SEED."""
    pat = pattern(seed)
    out = bytearray()
    p = start
    while len(out) < n:
        off = p % PATTERN_LEN
        take = min(PATTERN_LEN - off, n - len(out))
        out += pat[off:off + take]
        p += take
    return bytes(out)


class Conn:
    __slots__ = ("sock", "sent", "due", "out", "eof")

    def __init__(self, sock):
        self.sock = sock
        self.sent = 0		# stream bytes queued so far
        self.due = 0.0		# next chunk
        self.out = b""		# queued, not yet written
        self.eof = False


def main(argv):
    seed, chunk, interval, total = (int(a) for a in argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    pat = pattern(seed)
    doubled = pat + pat
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4096)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    conns = {}
    sys.stdout.write("READY %d\n" % lsock.getsockname()[1])
    sys.stdout.flush()

    def drop(c):
        sel.unregister(c.sock)
        c.sock.close()
        del conns[id(c)]

    def queue_chunk(c):
        n = min(chunk, total - c.sent)
        while n > 0:
            off = c.sent % PATTERN_LEN
            take = min(n, PATTERN_LEN)
            c.out += doubled[off:off + take]
            c.sent += take
            n -= take

    def flush(c):
        while c.out:
            try:
                k = c.sock.send(c.out)
            except BlockingIOError:
                break
            except OSError:
                return False
            c.out = c.out[k:]
        if not c.out and c.sent >= total:
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
        sel.modify(c.sock, want, c)
        return True

    while True:
        now = time.monotonic()
        timeout = interval / 1000.0
        for key, mask in sel.select(timeout):
            c = key.data
            if c is None:
                for _ in range(256):
                    try:
                        s, _ = lsock.accept()
                    except OSError:
                        break
                    s.setblocking(False)
                    c = Conn(s)
                    conns[id(c)] = c
                    sel.register(s, selectors.EVENT_READ, c)
                    queue_chunk(c)
                    c.due = now + interval / 1000.0
                    if not flush(c):
                        drop(c)
                continue
            if mask & selectors.EVENT_READ:
                try:
                    d = c.sock.recv(65536)
                except BlockingIOError:
                    d = None
                except OSError:
                    drop(c)
                    continue
                if d == b"":
                    drop(c)		# client's EOF: done with it
                    continue
            if mask & selectors.EVENT_WRITE and not flush(c):
                drop(c)
        now = time.monotonic()
        for c in list(conns.values()):
            if c.sent < total and now >= c.due:
                c.due = now + interval / 1000.0
                queue_chunk(c)
                if not flush(c):
                    drop(c)


if __name__ == "__main__":
    main(sys.argv[1:])
