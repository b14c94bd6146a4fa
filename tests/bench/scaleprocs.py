#!/usr/bin/python3
"""The backends and balancers of scale.py.

3 nginx (2 workers each) serve up to 10 000 backend addresses 127.77.x.y
between them, the same processes for every backend count; lbd and HAProxy
run over the first `count` of them (Scaled).
"""
import json
import os
import sys

import balance
import bench
from bench import PROCS, log, run_cmd, write

BACKEND_PORT = 19399                # on every backend address 127.77.x.y
READY_PORTS = [19390, 19391, 19392]  # one per nginx on 127.0.0.1: wait_ready
PORTS = {"lbd": 19300, "haproxy": 19301, "reload": 19302, "hold": 19303,
         "lbd-base": 19304}
MODES = ["roundrobin", "leastconn", "source"]


def backend_addrs(n):
    """n backend addresses on 127.77.0.0/16, 250 per /24."""
    return ["127.77.%d.%d:%d" % (i // 250, i % 250 + 1, BACKEND_PORT)
            for i in range(n)]


# ----------------------------------------------------------------- backends

def nginx_conf(env, j, addrs):
    """bench.py's backend, with 2 workers, the backend addresses of nginx j
    (every len(READY_PORTS)-th one, so that any count spreads over all
    of them)."""
    text = bench.nginx_backend_conf(env, j + 1, READY_PORTS[j], workers=2)
    mine = addrs[j::len(READY_PORTS)]
    status = "        listen 127.0.0.1:%d backlog=4096;\n" % READY_PORTS[j]
    # reuseport: a socket per worker, connections hashed between them, so
    # wrk's 50 keep-alive connections do not all land on one worker
    if env.args.listeners == "shared":
        # one port on every address: all 6 workers' sockets in one
        # reuseport group, the same hot sockets at any backend count
        listens = "        listen %d reuseport backlog=4096;\n" % BACKEND_PORT
    else:
        listens = "".join("        listen %s reuseport backlog=4096;\n" % a
                          for a in mine)
    return text.replace(status, status + listens)


def start_backends(env, count):
    """3 nginx serving count addresses between them; every count of the
    run uses a prefix of the same addresses and processes."""
    env.addrs = backend_addrs(count)
    for j, port in enumerate(READY_PORTS):
        conf = write(os.path.join(env.tmp, "b%d.conf" % (j + 1)),
                     nginx_conf(env, j, env.addrs))
        err = os.path.join(env.tmp, "b%d.err" % (j + 1))
        p = PROCS.start(["nginx", "-p", env.tmp, "-e", err, "-c", conf],
                        os.path.join(env.tmp, "b%d.out" % (j + 1)))
        env.backends.append(p)
        if not bench.wait_ready(port, p, 60.0):
            sys.exit("backend nginx %d did not start (see %s)" % (j + 1, err))


# ---------------------------------------------------------------- balancers

class Scaled(balance.Scenario):
    """lbd, HAProxy or lbd-base (the --baseline binary, lbd's config) over
    the first `count` backends; balance.Scenario writes the file, starts and
    stops it and asks lbd -t first."""

    READY_TIMEOUT = 120.0

    def __init__(self, env, kind, mode, count, port, workers=2):
        super().__init__(env, ("%s-%s-%d" % (kind, mode, count), "",
                               "lbd" if kind == "lbd-base" else kind,
                               mode, port))
        self.count, self.workers = count, workers
        self.base = kind == "lbd-base"

    def argv(self):
        argv = super().argv()
        if self.base:
            argv[0] = self.env.lbd_base
        return argv

    def conf_text(self):
        addrs, iv = self.env.addrs[:self.count], self.env.args.interval
        if self.kind == "lbd":
            text = bench.lbd_conf(self.env, self.port, addrs, self.balance)
            return text.replace("workers = 2\n", "workers = %d\n" %
                                self.workers).replace(
                'interval = "2s"', 'interval = "%s"' % iv)
        text = bench.haproxy_conf("haproxy", self.port, addrs, self.balance)
        return text.replace("nbthread 2", "nbthread %d" % self.workers) \
            .replace("check inter 2s", "check inter %s" % iv)

    def statsfile(self):
        return os.path.join(self.env.tmp, "lbd-run-%d" % self.port,
                            "lbd.stats")

    def lbstat(self, *args, timeout=30):
        """lbstat -j ... parsed, or None."""
        rc, out = run_cmd([self.env.lbstat, "-j", "-s", self.statsfile()] +
                          list(args), timeout)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            log("%s: lbstat -j failed (rc %s): %s" % (self.name, rc,
                                                      out.strip()[-200:]))
            return None


def started(b, notes):
    """The reason b cannot run, or None once it answers."""
    why = b.unsupported()
    if why:
        return why
    b.__enter__()
    if b.error:
        notes.append(b.error)
        return "n/a (did not start)"
    return None
