#!/usr/bin/python3
"""Hold many idle TCP connections open to one address; driven over stdin.

  holder.py HOST:PORT [SOURCE_ADDRESS]

One process of the benchmark's connection pool.  Every process is limited to
20 000 descriptors on this machine, so bench.py starts several of these and
gives each at most 9 000 connections.

Commands (one per line on stdin), each answered by one JSON line on stdout:
  open N TIMEOUT   open N more connections (non-blocking connects, at most
                   MAXINFLIGHT in progress at once); reply ok/failed/held
  probe K TIMEOUT  send a small HTTP/1.1 keep-alive request on K random held
                   connections and wait for a complete answer; reply ok/failed
  alive            count held connections the peer has not closed
  close            reset (SO_LINGER 0) and close every held connection
  quit             close everything and exit
"""
import errno
import json
import os
import random
import resource
import select
import socket
import struct
import sys
import time

MAXINFLIGHT = 256
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
LINGER0 = struct.pack("ii", 1, 0)
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h; Python's socket module lacks it


def parse_addr(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class Holder:
    def __init__(self, addr, source=None):
        self.addr = addr
        self.source = source
        self.family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.conns = []

    def _socket(self):
        """A non-blocking socket, bound to the source address if one was
        given: its port is picked at connect (IP_BIND_ADDRESS_NO_PORT), so
        each source address offers a whole ephemeral range."""
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.setblocking(False)
        if self.source:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((self.source, 0))
        return s

    def open(self, n, timeout):
        ep = select.epoll()
        pending = {}
        started = ok = failed = 0
        errors = {}
        deadline = time.monotonic() + timeout
        try:
            while (started < n or pending) and time.monotonic() < deadline:
                while started < n and len(pending) < MAXINFLIGHT:
                    started += 1
                    try:
                        s = self._socket()
                    except OSError as e:
                        failed += 1 + (n - started)
                        errors[errno.errorcode.get(e.errno, str(e.errno))] = 1
                        started = n
                        break
                    err = s.connect_ex(self.addr)
                    if err == 0:
                        self.conns.append(s)
                        ok += 1
                    elif err == errno.EINPROGRESS:
                        ep.register(s.fileno(), select.EPOLLOUT)
                        pending[s.fileno()] = s
                    else:
                        name = errno.errorcode.get(err, str(err))
                        errors[name] = errors.get(name, 0) + 1
                        s.close()
                        failed += 1
                for fd, _ev in ep.poll(0.05):
                    s = pending.pop(fd)
                    ep.unregister(fd)
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err == 0:
                        self.conns.append(s)
                        ok += 1
                    else:
                        name = errno.errorcode.get(err, str(err))
                        errors[name] = errors.get(name, 0) + 1
                        s.close()
                        failed += 1
        finally:
            for s in pending.values():
                s.close()
                failed += 1
            failed += n - started
            ep.close()
        return {"ok": ok, "failed": failed, "held": len(self.conns),
                "errors": errors}

    def probe(self, k, timeout):
        k = min(k, len(self.conns))
        sample = random.sample(self.conns, k)
        ep = select.epoll()
        bufs = {}
        socks = {}
        ok = failed = 0
        bodies = {}
        for s in sample:
            try:
                s.send(REQUEST)
            except OSError:
                failed += 1
                continue
            ep.register(s.fileno(), select.EPOLLIN)
            bufs[s.fileno()] = b""
            socks[s.fileno()] = s
        deadline = time.monotonic() + timeout
        while socks and time.monotonic() < deadline:
            for fd, _ev in ep.poll(0.05):
                s = socks[fd]
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                done = False
                if data:
                    bufs[fd] += data
                    body = complete_body(bufs[fd])
                    if body is not None:
                        ok += 1
                        key = body.strip().decode("ascii", "replace")
                        bodies[key] = bodies.get(key, 0) + 1
                        done = True
                else:
                    failed += 1
                    done = True
                if done:
                    ep.unregister(fd)
                    del socks[fd]
        failed += len(socks)  # timed out
        ep.close()
        return {"ok": ok, "failed": failed, "sampled": k, "bodies": bodies}

    def alive(self):
        alive = 0
        for s in self.conns:
            try:
                if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                    alive += 1  # unread data, but open
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return {"alive": alive, "held": len(self.conns)}

    def close(self):
        n = len(self.conns)
        for s in self.conns:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
            except OSError:
                pass
            s.close()
        self.conns = []
        return {"closed": n}


def complete_body(buf):
    """Return the body once a whole HTTP response is in buf, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if len(buf) < end + 4 + length:
        return None
    return buf[end + 4:end + 4 + length]


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    holder = Holder(parse_addr(sys.argv[1]),
                    sys.argv[2] if len(sys.argv) > 2 else None)
    out = sys.stdout
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        cmd = words[0]
        try:
            if cmd == "open":
                reply = holder.open(int(words[1]), float(words[2]))
            elif cmd == "probe":
                reply = holder.probe(int(words[1]), float(words[2]))
            elif cmd == "alive":
                reply = holder.alive()
            elif cmd == "close":
                reply = holder.close()
            elif cmd == "quit":
                holder.close()
                out.write(json.dumps({"bye": os.getpid()}) + "\n")
                out.flush()
                return
            else:
                reply = {"error": "unknown command " + cmd}
        except Exception as e:  # report, keep serving
            reply = {"error": repr(e)}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    holder.close()


if __name__ == "__main__":
    main()
