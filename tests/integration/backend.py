#!/usr/bin/python3
"""A test backend for lbd's integration tests, run as its own process.

    backend.py PORT MODE [ARGS...] [--log FILE] [--bind ADDR]

Listens on 127.0.0.1:PORT (or ADDR:PORT; 0 picks a free port) and prints
"READY <port>" on stdout once it accepts.  Modes:

    ident NAME        send "NAME\\n" on accept, then echo everything back;
                      on EOF finish the echo and close
    whoami NAME       as ident, but the line is "NAME PEER-ADDRESS\\n": which
                      lbd node relayed the connection (tests/integration/
                      test_bgp_ecmp.py)
    sha               read until EOF, reply with the hex sha256 of what came
                      in plus "\\n", close
    source N SEED     send N bytes of stream(SEED) (see below), reading and
                      discarding whatever the client sends; then shut down
                      the write side and close at the client's EOF
    halfclose         read until EOF, reply "got N bytes\\n" followed by
                      HALFCLOSE_EXTRA bytes of stream("halfclose"), close:
                      the reply direction keeps flowing after the client's FIN

With --log every connection event is appended to FILE as a line: "<id>
accept", or "<id> <event> <age-ms> <bytes-read>" for eof, reset and close,
so a test can see what the backend side of a relayed connection went
through (and tell a health probe, which lives a few ms, from a client).

One single-threaded selectors loop serves every connection, so thousands of
connections cost no threads; RLIMIT_NOFILE is raised to its hard limit.
"""

import hashlib
import os
import resource
import selectors
import signal
import socket
import sys
import time
from collections import deque

CHUNK = 65521			# prime: stream chunks never align with pipe pages
HEADER = 32			# per-chunk sha256(seed:index), so shifts show
HALFCLOSE_EXTRA = 1 << 20
READ_SIZE = 256 * 1024
SEND_SIZE = 256 * 1024
ECHO_HIGH = 1 << 20		# stop reading while this much echo is queued


def _base_pattern(seed):
    """CHUNK - HEADER bytes of a sha256 chain seeded by seed."""
    out = bytearray()
    h = hashlib.sha256(("base:" + seed).encode()).digest()
    while len(out) < CHUNK - HEADER:
        out += h
        h = hashlib.sha256(h).digest()
    return bytes(out[:CHUNK - HEADER])


def stream_block(seed, index, base=None):
    """Block index of stream(seed): a header naming the block, then the base
    pattern rotated by an index-dependent amount."""
    if base is None:
        base = _base_pattern(seed)
    header = hashlib.sha256(("%s:%d" % (seed, index)).encode()).digest()
    rot = (index * 7919) % len(base)
    return header + base[rot:] + base[:rot]


def stream_bytes(seed, n):
    """The first n bytes of the deterministic stream for seed."""
    base = _base_pattern(seed)
    parts = []
    have = 0
    index = 0
    while have < n:
        block = stream_block(seed, index, base)
        parts.append(block)
        have += len(block)
        index += 1
    return b"".join(parts)[:n]


def stream_tag(seed):
    """The first HEADER bytes of stream(seed), which identify it."""
    return hashlib.sha256(("%s:0" % seed).encode()).digest()


class Conn:
    """One accepted connection: its socket, queued output and state."""

    def __init__(self, sock, cid):
        self.sock = sock
        self.cid = cid
        self.born = time.monotonic()
        self.outq = deque()		# memoryviews still to send
        self.queued = 0			# bytes in outq
        self.read_eof = False
        self.wr_shut = False
        self.close_when_flushed = False	# close once outq is empty
        self.shut_when_flushed = False	# SHUT_WR once outq is empty
        self.reading = True
        self.nread = 0
        self.sha = None
        self.events = 0

    def queue(self, data):
        if data:
            self.outq.append(memoryview(data))
            self.queued += len(data)


class Server:
    def __init__(self, port, mode, args, log, bind="127.0.0.1"):
        self.mode = mode
        self.args = args
        self.log = log
        self.sel = selectors.DefaultSelector()
        self.next_id = 1
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self.lsock = socket.socket(family, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((bind, port))
        self.lsock.listen(4096)
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        if mode in ("ident", "whoami"):
            self.greeting = (args[0] + "\n").encode()
        elif mode == "source":
            self.payload = memoryview(stream_bytes(args[1], int(args[0])))
        elif mode == "halfclose":
            self.extra = memoryview(stream_bytes("halfclose", HALFCLOSE_EXTRA))
        elif mode != "sha":
            raise SystemExit("backend.py: unknown mode %r" % mode)

    @property
    def port(self):
        return self.lsock.getsockname()[1]

    def note(self, conn, event):
        if self.log is None:
            return
        if event == "accept":
            self.log.write("%d accept\n" % conn.cid)
        else:
            age = (time.monotonic() - conn.born) * 1000
            self.log.write("%d %s %d %d\n" % (conn.cid, event, age,
                                                conn.nread))
        self.log.flush()

    # -- event plumbing ----------------------------------------------------

    def want(self, conn):
        ev = 0
        if conn.reading and not conn.read_eof:
            ev |= selectors.EVENT_READ
        if conn.outq:
            ev |= selectors.EVENT_WRITE
        if ev != conn.events:
            if conn.events == 0:
                self.sel.register(conn.sock, ev, conn)
            elif ev == 0:
                self.sel.unregister(conn.sock)
            else:
                self.sel.modify(conn.sock, ev, conn)
            conn.events = ev

    def close(self, conn, event="close"):
        if conn.events:
            self.sel.unregister(conn.sock)
            conn.events = 0
        conn.sock.close()
        self.note(conn, event)

    def accept(self):
        for _ in range(256):
            try:
                sock, peer = self.lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return		# EMFILE and friends: try again next wake-up
            sock.setblocking(False)
            conn = Conn(sock, self.next_id)
            conn.peer = peer[0]
            self.next_id += 1
            self.note(conn, "accept")
            self.on_open(conn)
            self.want(conn)

    def readable(self, conn):
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(conn, "reset")
            return
        if not data:
            conn.read_eof = True
            self.note(conn, "eof")
            self.on_eof(conn)
        else:
            conn.nread += len(data)
            self.on_data(conn, data)
        self.settle(conn)

    def writable(self, conn):
        while conn.outq:
            mv = conn.outq[0]
            try:
                n = conn.sock.send(mv[:SEND_SIZE])
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close(conn, "reset")
                return
            conn.queued -= n
            if n == len(mv):
                conn.outq.popleft()
            else:
                conn.outq[0] = mv[n:]
        self.settle(conn)

    def settle(self, conn):
        """Applies the connection's pending close/shutdown and flow control."""
        if conn.sock.fileno() < 0:
            return
        if not conn.outq:
            if conn.close_when_flushed:
                self.close(conn)
                return
            if conn.shut_when_flushed and not conn.wr_shut:
                conn.wr_shut = True
                try:
                    conn.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    self.close(conn, "reset")
                    return
            if conn.wr_shut and conn.read_eof:
                self.close(conn)
                return
        if self.mode in ("ident", "whoami"):
            conn.reading = conn.queued < ECHO_HIGH
        self.want(conn)

    # -- modes ---------------------------------------------------------------

    def on_open(self, conn):
        if self.mode == "ident":
            conn.queue(self.greeting)
        elif self.mode == "whoami":
            conn.queue(("%s %s\n" % (self.args[0], conn.peer)).encode())
        elif self.mode == "sha":
            conn.sha = hashlib.sha256()
        elif self.mode == "source":
            conn.queue(self.payload)
            conn.shut_when_flushed = True

    def on_data(self, conn, data):
        if self.mode in ("ident", "whoami"):
            conn.queue(data)
        elif self.mode == "sha":
            conn.sha.update(data)
        # source discards; halfclose only counts (conn.nread)

    def on_eof(self, conn):
        if self.mode in ("ident", "whoami"):
            conn.close_when_flushed = True
        elif self.mode == "sha":
            conn.queue((conn.sha.hexdigest() + "\n").encode())
            conn.close_when_flushed = True
        elif self.mode == "halfclose":
            conn.queue(("got %d bytes\n" % conn.nread).encode())
            conn.queue(self.extra)
            conn.close_when_flushed = True
        # source: settle() closes once everything is sent and EOF was seen

    def run(self):
        while True:
            for key, mask in self.sel.select():
                conn = key.data
                if conn is None:
                    self.accept()
                    continue
                if mask & selectors.EVENT_WRITE:
                    self.writable(conn)
                if mask & selectors.EVENT_READ and conn.sock.fileno() >= 0:
                    self.readable(conn)


def main(argv):
    log_path = None
    bind = "127.0.0.1"
    if "--bind" in argv:
        i = argv.index("--bind")
        bind = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if "--log" in argv:
        i = argv.index("--log")
        log_path = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) < 2:
        raise SystemExit(__doc__)
    port, mode, args = int(argv[0]), argv[1], argv[2:]
    need = {"ident": 1, "whoami": 1, "sha": 0, "source": 2, "halfclose": 0}
    if need.get(mode) != len(args):
        raise SystemExit("backend.py: bad arguments for mode %r" % mode)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    log = open(log_path, "a", buffering=1) if log_path else None
    server = Server(port, mode, args, log, bind)
    sys.stdout.write("READY %d\n" % server.port)
    sys.stdout.flush()
    server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
