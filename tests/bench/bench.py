#!/usr/bin/python3
"""Side-by-side benchmark of lbd against HAProxy, pen and nginx stream.

Run through tests/bench/run.sh (or `make bench`).  Everything runs on
loopback, in a private temp dir, on ports 19000-19999; every process this
script starts is tracked by PID and stopped on exit.  See README.md here.
"""
import argparse
import ctypes
import datetime
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import pipequota

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"
HOLDER = os.path.join(HERE, "holder.py")
HCLIENT = os.path.join(HERE, "hclient.py")
NGINX_STREAM_MOD = "/usr/lib/nginx/modules/ngx_stream_module.so"

BACKEND_PORTS = [19001, 19002, 19003]
LISTEN = {"lbd": 19100, "lbd-maxconn": 19101, "lbd-leastload": 19102, "lbd-door": 19103,
          "lbd-base": 19104, "haproxy": 19110, "haproxy-splice": 19111,
          "haproxy-splice1m": 19112, "pen": 19120, "nginx": 19130}
BALANCERS = ["direct", "lbd", "lbd-maxconn", "lbd-leastload", "lbd-door", "lbd-base", "haproxy", "haproxy-splice", "haproxy-splice1m",
             "pen", "nginx"]
PEERS = ["haproxy", "haproxy-splice", "haproxy-splice1m", "pen", "nginx"]
HAPROXIES = ["haproxy", "haproxy-splice", "haproxy-splice1m"]
BIG_SIZE = 256 << 20
FD_LIMIT_NOTE = ("every process (balancers, backends, clients) is limited to "
                 "20000 descriptors (RLIMIT_NOFILE hard limit, not raisable)")

# (key, label, better: "hi" | "lo" | None)
ROWS = [
    ("short_rps", "short_conn req/s", "hi"),
    ("short_cpu", "short_conn CPU us/conn", "lo"),
    ("short_segs", "short_conn TCP segments/conn", "lo"),
    ("short_sys", "short_conn syscalls/conn (perf)", "lo"),
    ("ka_rps", "keepalive req/s", "hi"),
    ("ka_cpu", "keepalive CPU us/req", "lo"),
    ("ka_segs", "keepalive TCP segments/req", "lo"),
    ("ka_sys", "keepalive syscalls/req (perf)", "lo"),
    ("ka_p50", "keepalive p50 ms", "lo"),
    ("ka_p99", "keepalive p99 ms", "lo"),
    ("bulk_mbps", "bulk MB/s (4 x 256 MiB)", "hi"),
    ("bulk_cpu", "bulk CPU s/GB", "lo"),
    ("bulk_first", "bulk CPU s/GB, first round", "lo"),
    ("bulk_squeeze", "bulk CPU s/GB after pipe squeeze", "lo"),
    ("bulk_sys", "bulk syscalls/MiB (perf)", "lo"),
    ("bulk_csw", "bulk context switches/MiB", "lo"),
    ("bulk_segs", "bulk TCP segments/MiB", "lo"),
    ("idle_held", "idle_mem conns held", "hi"),
    ("idle_rss", "idle_mem total RSS B/conn", "lo"),
    ("idle_pss", "idle_mem Pss growth B/conn", "lo"),
    ("conc_max", "concurrency max OK conns", "hi"),
    ("conc_rss", "concurrency RSS MiB at max", "lo"),
    ("even_short", "evenness short conns b1/b2/b3", None),
    ("even_ka", "evenness ka requests b1/b2/b3", None),
]

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """preexec_fn: the child gets SIGTERM if this script dies unexpectedly."""
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg),
          file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

def proc_stat(pid):
    """Fields after the command name of /proc/PID/stat, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid):
    """pid and all its live descendants (by ppid)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st:
                children.setdefault(int(st[1]), []).append(int(d))
    out = [pid] if proc_stat(pid) else []
    i = 0
    while i < len(out):
        out += children.get(out[i], [])
        i += 1
    return out


def identity(pids):
    """(pid, starttime) pairs so a later kill never hits a recycled pid."""
    out = []
    for p in pids:
        st = proc_stat(p)
        if st:
            out.append((p, st[19]))
    return out


def still_same(pid, start):
    st = proc_stat(pid)
    return st is not None and st[19] == start and st[0] != "Z"


class Procs:
    """Every process this script starts, so that all are stopped on exit."""

    def __init__(self):
        self.live = []

    def start(self, argv, logpath=None, **kw):
        out = open(logpath, "ab") if logpath else subprocess.DEVNULL
        kw.setdefault("stdout", out)
        kw.setdefault("stderr", out)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)
        if logpath:
            out.close()
        self.live.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, grace=5.0, second_sig=True):
        """Stop p and every descendant it had; SIGKILL what lingers."""
        if p not in self.live:
            return
        family = identity(descendants(p.pid))
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        resent = False
        while time.monotonic() < deadline:
            if p.poll() is not None and \
                    not any(still_same(q, s) for q, s in family):
                break
            if second_sig and not resent and \
                    time.monotonic() > deadline - grace / 2:
                resent = True  # lbd: a second SIGTERM stops at once
                if p.poll() is None:
                    p.send_signal(sig)
            time.sleep(0.05)
        for q, s in family:
            if still_same(q, s):
                try:
                    os.kill(q, signal.SIGKILL)
                except OSError:
                    pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.live.remove(p)

    def stop_all(self):
        for p in reversed(list(self.live)):
            self.stop(p, grace=3.0)


PROCS = Procs()


# ------------------------------------------------------ measuring processes

def cpu_ticks(pids):
    total = 0
    for p in pids:
        st = proc_stat(p)
        if st:
            total += int(st[11]) + int(st[12])  # utime + stime
    return total


def thread_files(pids, name):
    """/proc/PID/task/TID/name of every live thread of pids."""
    for p in pids:
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tids:
            yield "/proc/%d/task/%s/%s" % (p, t, name)


def context_switches(pids):
    """Voluntary plus involuntary context switches of every thread of pids."""
    total = 0
    for path in thread_files(pids, "status"):
        try:
            with open(path) as f:
                for line in f:
                    if "ctxt_switches:" in line:
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


def memory_kb(pids):
    """(sum of VmRSS, sum of Pss) in kB over pids."""
    rss = pss = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def socket_inodes(pids):
    inodes = set()
    for p in pids:
        d = "/proc/%d/fd" % p
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            try:
                link = os.readlink(os.path.join(d, n))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return inodes


def conn_counts(pids, listen_port):
    """(client conns, backend conns) established and owned by pids.

    Counted by unique inode: /proc/net/tcp is not read atomically and may
    list a socket twice while connections come and go."""
    inodes = socket_inodes(pids)
    client, backend = set(), set()
    bports = set(BACKEND_PORTS)
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    w = line.split()
                    if w[3] != "01" or w[9] not in inodes:
                        continue
                    lport = int(w[1].rsplit(":", 1)[1], 16)
                    rport = int(w[2].rsplit(":", 1)[1], 16)
                    if lport == listen_port:
                        client.add(w[9])
                    elif rport in bports:
                        backend.add(w[9])
        except OSError:
            pass
    return len(client), len(backend)


# ------------------------------------------------------------------ clients

def http_get(port, path="/", timeout=2.0):
    """Body of GET path with Connection: close, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET %s HTTP/1.1\r\nHost: bench\r\n"
                      b"Connection: close\r\n\r\n" % path.encode())
            data = b""
            while len(data) < 1 << 16:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    return body.decode("ascii", "replace")


def wait_ready(port, proc=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        body = http_get(port, timeout=1.0)
        if body and body.startswith("b"):
            return True
        time.sleep(0.1)
    return False


def run_cmd(argv, timeout):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout,
                           preexec_fn=_die_with_parent)
        return r.returncode, r.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode("utf-8", "replace") if e.stdout else ""
        return -1, out + "\n(timed out after %ss)" % timeout


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def wrk(port, duration, close, notes, label):
    argv = ["wrk", "-t2", "-c50", "-d%ds" % duration, "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    else:
        argv += ["--latency"]
    argv.append("http://127.0.0.1:%d/" % port)
    rc, out = run_cmd(argv, duration + 30)
    res = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rc != 0 or not m:
        notes.append("%s: wrk failed (rc %s): %s" % (label, rc,
                                                     out.strip()[-200:]))
        return res
    res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        if m:
            res[key] = to_ms(m.group(1))
    m = re.search(r"Socket errors: (.*)", out)
    if m:
        notes.append("%s: wrk socket errors: %s" % (label, m.group(1)))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        notes.append("%s: wrk non-2xx responses: %s" % (label, m.group(1)))
    return res


def hclient(args, timeout=150):
    rc, out = run_cmd([PY, HCLIENT] + args + ["--limit", str(timeout - 10)],
                      timeout)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"errors": -1, "output": out[-300:]}


class HolderPool:
    """A few holder.py processes that together hold many idle connections."""

    def __init__(self, port, nprocs, sources=None):
        """sources: client addresses the holders bind to, one per process in
        turn (scale.py: more connections than one source's ports)."""
        src = [[sources[i % len(sources)]] if sources else []
               for i in range(nprocs)]
        self.procs = [PROCS.start([PY, HOLDER, "127.0.0.1:%d" % port] + s,
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
                      for s in src]
        self.bufs = [b"" for _ in self.procs]
        self.held = [0 for _ in self.procs]

    def _ask(self, cmds, timeout):
        for p, c in zip(self.procs, cmds):
            p.stdin.write((c + "\n").encode())
            p.stdin.flush()
        replies = [None] * len(self.procs)
        deadline = time.monotonic() + timeout
        while None in replies and time.monotonic() < deadline:
            waiting = {self.procs[i].stdout.fileno(): i
                       for i, r in enumerate(replies) if r is None}
            ready, _, _ = select.select(list(waiting), [], [], 0.2)
            for fd in ready:
                i = waiting[fd]
                chunk = os.read(fd, 65536)
                if not chunk:
                    replies[i] = {"error": "holder exited"}
                    continue
                self.bufs[i] += chunk
                if b"\n" in self.bufs[i]:
                    line, _, self.bufs[i] = self.bufs[i].partition(b"\n")
                    replies[i] = json.loads(line)
        return [r if r is not None else {"error": "no reply"}
                for r in replies]

    def open_total(self, total, timeout):
        n = len(self.procs)
        want = [total // n + (1 if i < total % n else 0) for i in range(n)]
        cmds = ["open %d %s" % (max(0, w - h), timeout)
                for w, h in zip(want, self.held)]
        replies = self._ask(cmds, timeout + 10)
        errors = {}
        for i, r in enumerate(replies):
            self.held[i] = r.get("held", self.held[i])
            for k, v in r.get("errors", {}).items():
                errors[k] = errors.get(k, 0) + v
        return sum(self.held), errors

    def probe(self, k, timeout):
        n = len(self.procs)
        cmds = ["probe %d %s" % (k // n + (1 if i < k % n else 0), timeout)
                for i in range(n)]
        replies = self._ask(cmds, timeout + 10)
        ok = sum(r.get("ok", 0) for r in replies)
        sampled = sum(r.get("sampled", 0) for r in replies)
        return ok, sampled

    def alive(self):
        return sum(r.get("alive", 0) for r in self._ask(["alive"] * len(
            self.procs), 30))

    def close(self):
        try:
            self._ask(["quit"] * len(self.procs), 30)
        except OSError:
            pass
        for p in self.procs:
            PROCS.stop(p, grace=3.0, second_sig=False)


# ------------------------------------------------------------ the balancers

class Env:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.lbd = os.path.join(ROOT, "build", "lbd")
        # lbd-base: another lbd binary (--baseline), for an A/B in one run
        self.lbd_base = getattr(args, "baseline", None)
        self.backends = []


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def nginx_backend_conf(env, i, port, workers=1):
    """workers: nginx worker processes (bulkcurl.py runs 2, as a new user
    might)."""
    t = env.tmp
    return """
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 20000;
pid {t}/b{i}.pid;
error_log {t}/b{i}.err warn;
events {{ worker_connections 19800; }}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {t}/b{i}-body;
    proxy_temp_path {t}/b{i}-proxy;
    fastcgi_temp_path {t}/b{i}-fcgi;
    uwsgi_temp_path {t}/b{i}-uwsgi;
    scgi_temp_path {t}/b{i}-scgi;
    sendfile on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_header_timeout 300s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = / {{ return 200 "b{i}\\n"; }}
        location = /big {{ root {t}/www; }}
    }}
}}
""".format(t=t, i=i, port=port, workers=workers)


def start_backends(env, workers=1):
    www = os.path.join(env.tmp, "www")
    os.makedirs(www)
    big = os.path.join(www, "big")
    if subprocess.run(["fallocate", "-l", str(BIG_SIZE), big]).returncode:
        with open(big, "wb") as f:
            f.truncate(BIG_SIZE)
    os.chmod(big, 0o644)
    with open(big, "rb") as f:  # warm the page cache
        while f.read(1 << 22):
            pass
    for i, port in enumerate(BACKEND_PORTS, 1):
        conf = write(os.path.join(env.tmp, "b%d.conf" % i),
                     nginx_backend_conf(env, i, port, workers))
        p = PROCS.start(["nginx", "-p", env.tmp, "-e",
                         os.path.join(env.tmp, "b%d.err" % i), "-c", conf],
                        os.path.join(env.tmp, "b%d.out" % i))
        env.backends.append(p)
        if not wait_ready(port, p):
            sys.exit("backend b%d on port %d did not start (see %s)" %
                     (i, port, os.path.join(env.tmp, "b%d.err" % i)))


def backend_addr(p):
    """A backend as a port on 127.0.0.1, or as "host:port" (scale.py's
    backends are spread over 127.77.0.0/16)."""
    return "127.0.0.1:%d" % p if isinstance(p, int) else p


def lbd_conf(env, port, ports=None, balance="roundrobin", extra="", maxconn=0,
             health=True):
    """ports: the backends' (default BACKEND_PORTS; see backend_addr);
    extra: more service lines (balance.py: max-connection-age); maxconn: per
    backend, where lbd-maxconn sets one that never binds, to price the slot
    accounting (issue 15: within 3%); health: False leaves the health
    section out (bulkcurl.py: as a new user's first config might)."""
    more = " maxconn = %d" % maxconn if maxconn else ""
    servers = "".join('    backend b%d { address = "%s"%s }\n'
                      % (i, backend_addr(p), more)
                      for i, p in enumerate(ports or BACKEND_PORTS, 1))
    return """workers = 2
user = "nobody"
group = "nogroup"
admin-group = "root"
runtime-dir = "{t}/lbd-run-{port}"
maxconn = 20000
service bench {{
    listen = {{ "127.0.0.1:{port}" }}
    balance = "{balance}"
{extra}{health}{servers}}}
""".format(t=env.tmp, port=port, servers=servers, balance=balance,
           extra=extra, health='    health { interval = "2s" timeout = "1s" }\n'
           if health else "")


def lbd_door_service(port):
    """lbd-door's second service: on the bench's address by TLS server
    name, so every connection passes the front door (the ClientHello
    check sends plain HTTP to the default service, whose allow list has
    10 000 prefixes).  Issue 16: within 5% of plain lbd."""
    return """service tls {{
    listen = {{ "127.0.0.1:{port}" }}
    sni = {{ "tls.example.org" }}
    backend t1 {{ address = "127.0.0.1:{b}" }}
}}
""".format(port=port, b=BACKEND_PORTS[0])


def lbd_variant_conf(env, name, port):
    """lbd and the variants that price a feature against it, side by side:
    lbd-maxconn (a maxconn that never binds, issue 15), lbd-leastload
    (issue 14), lbd-door (sni routing and a 10 000-prefix allow list)."""
    if name == "lbd-maxconn":
        return lbd_conf(env, port, maxconn=100000)
    if name == "lbd-leastload":
        return lbd_conf(env, port, balance="leastload")
    if name == "lbd-door":
        allow = ['"127.0.0.0/8"'] + ['"10.%d.%d.0/24"' % (i // 256, i % 256)
                                    for i in range(9999)]
        extra = "    allow = {\n        %s\n    }\n" % ",\n        ".join(allow)
        return lbd_conf(env, port, extra=extra) + lbd_door_service(port)
    return lbd_conf(env, port)


def haproxy_conf(variant, port, ports=None, balance="roundrobin"):
    g = ["global", "    nbthread 2"]
    d = ["defaults", "    mode tcp", "    timeout connect 5s",
         "    timeout client 300s", "    timeout server 300s"]
    if variant != "haproxy":
        d += ["    option splice-request", "    option splice-response"]
    if variant == "haproxy-splice1m":
        g.append("    tune.pipesize 1048576")
    servers = ["    server b%d %s check inter 2s" % (i, backend_addr(p))
               for i, p in enumerate(ports or BACKEND_PORTS, 1)]
    return "\n".join(g + d + [
        "frontend fe", "    bind 127.0.0.1:%d" % port,
        "    default_backend be", "backend be", "    balance " + balance] +
        servers) + "\n"


def nginx_stream_conf(env, port, ports=None):
    t = env.tmp
    servers = "".join("        server 127.0.0.1:%d;\n" % p
                      for p in ports or BACKEND_PORTS)
    return """
load_module {mod};
daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile 20000;
pid {t}/ngx-stream.pid;
error_log {t}/ngx-stream.err warn;
events {{ worker_connections 19800; }}
stream {{
    upstream be {{
{servers}    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        proxy_pass be;
        proxy_connect_timeout 5s;
        proxy_timeout 300s;
    }}
}}
""".format(mod=NGINX_STREAM_MOD, t=t, port=port, servers=servers)


class Balancer:
    """One running balancer (or the direct reference) for one phase."""

    # Seconds it may take to answer; scale.py's 10 000 backends take longer.
    READY_TIMEOUT = 10.0

    def __init__(self, env, name, port=None):
        """port: where it listens (default: LISTEN[name]); balance.py
        passes its own and overrides argv()."""
        self.env, self.name = env, name
        self.proc = None
        self.port = port or (BACKEND_PORTS[0] if name == "direct"
                             else LISTEN[name])
        self.error = None

    def argv(self):
        t, env, port = self.env.tmp, self.env, self.port
        if self.name.startswith("lbd"):
            conf = write(os.path.join(t, self.name + ".conf"),
                         lbd_variant_conf(env, self.name, port))
            return [env.lbd_base if self.name == "lbd-base" else env.lbd,
                    "-d", "-f", conf]
        if self.name.startswith("haproxy"):
            conf = write(os.path.join(t, self.name + ".cfg"),
                         haproxy_conf(self.name, port))
            return ["haproxy", "-db", "-f", conf]
        if self.name == "pen":
            # -x 9900: with more, pen exits at the 20000-descriptor limit
            # ("Error opening socket: Too many open files").
            return ["pen", "-f", "-r", "-c", "20000", "-x", "9900",
                    "127.0.0.1:%d" % port] + \
                ["127.0.0.1:%d" % p for p in BACKEND_PORTS]
        if self.name == "nginx":
            conf = write(os.path.join(t, "ngx-stream.conf"),
                         nginx_stream_conf(env, port))
            return ["nginx", "-p", t, "-e",
                    os.path.join(t, "ngx-stream.err"), "-c", conf]
        raise ValueError(self.name)

    def __enter__(self):
        if self.name == "direct":
            self.proc = self.env.backends[0]
            return self
        logpath = os.path.join(self.env.tmp, self.name + ".log")
        for attempt in range(3):
            # Other programs on this host may take a port for a moment.
            deadline = time.monotonic() + 5
            while not port_free(self.port) and time.monotonic() < deadline:
                time.sleep(0.2)
            self.proc = PROCS.start(self.argv(), logpath)
            if wait_ready(self.port, self.proc, self.READY_TIMEOUT):
                time.sleep(0.5)  # let every worker come up
                self.error = None
                return self
            self.error = "%s did not start or answer on port %d: %s" % (
                self.name, self.port, tail(logpath))
            self.__exit__()
            self.proc = None
            if "in use" not in self.error:
                break
            log("%s: port %d busy, retrying" % (self.name, self.port))
        return self

    def __exit__(self, *exc):
        if self.name != "direct" and self.proc is not None:
            PROCS.stop(self.proc)
        return False

    def pids(self):
        return descendants(self.proc.pid)

    def check_alive(self, phase, notes):
        """Note it when the balancer died during a phase."""
        rc = self.proc.poll()
        if rc is not None:
            what = "signal %d" % -rc if rc < 0 else "status %d" % rc
            notes.append("%s EXITED (%s) during %s: %s" % (
                self.name, what, phase,
                tail(os.path.join(self.env.tmp, self.name + ".log"))))


def tail(path, n=300):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:].strip().replace("\n", " | ")
    except OSError:
        return ""


# --------------------------------------------------------------- the tests

def test_idle_mem(b, cfg, res, notes):
    n = cfg["idle"]
    pids = b.pids()
    rss0, pss0 = memory_kb(pids)
    c0, _ = conn_counts(pids, b.port)
    pool = HolderPool(b.port, max(2, math.ceil(n / 9000)))
    try:
        held, errors = pool.open_total(n, 40)
        settle(b, n + c0)
        pids = b.pids()
        clients, backends = conn_counts(pids, b.port)
        rss1, pss1 = memory_kb(pids)
        alive = pool.alive()
    finally:
        pool.close()
    accepted = clients - c0
    if errors or held < n:
        notes.append("%s idle_mem: %d of %d connects succeeded %s" %
                     (b.name, held, n, errors or ""))
    if accepted != n or alive != n:
        notes.append("%s idle_mem: balancer holds %d client / %d backend "
                     "conns; client sees %d of %d open" %
                     (b.name, accepted, backends, alive, n))
    if accepted <= 0:
        return
    res["idle_held"] = accepted
    res["idle_rss"] = rss1 * 1024 / accepted
    res["idle_pss"] = (pss1 - pss0) * 1024 / accepted


def settle(b, want, timeout=15.0):
    """Wait until the balancer holds `want` client conns or stops growing."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        c, _ = conn_counts(b.pids(), b.port)
        if c >= want:
            return c
        if c != last:
            last, since = c, time.monotonic()
        elif time.monotonic() - since > 2.0:
            return c
        time.sleep(0.3)
    return last


def test_concurrency(b, cfg, res, notes):
    steps = cfg["conc_steps"]
    pool = HolderPool(b.port, max(2, math.ceil(max(steps) / 6000)))
    best, mem, why = 0, None, None
    c0, _ = conn_counts(b.pids(), b.port)
    try:
        for target in steps:
            held, errors = pool.open_total(target, 40)
            got = settle(b, target + c0) - c0
            ok, sampled = pool.probe(cfg["probe"], 5)
            if held < target or got < target or ok < sampled:
                why = ("at %d: client holds %d %s, balancer holds %d, "
                       "%d of %d sampled answered" %
                       (target, held, errors or "", got, ok, sampled))
                break
            best = target
            mem = memory_kb(b.pids())[0] / 1024.0
    finally:
        pool.close()
    res["conc_max"] = best
    if mem is not None and b.name != "direct":
        res["conc_rss"] = mem
    if why:
        notes.append("%s concurrency: stopped %s" % (b.name, why))


def bulk_round(b, url, pids, notes):
    """4 parallel downloads of /big: (MB/s, CPU s/GB), or None if short."""
    t0c = cpu_ticks(pids)
    t0 = time.monotonic()
    curls = [subprocess.Popen(
        ["curl", "-s", "-o", "/dev/null", "--max-time", "30",
         "-w", "%{size_download}\n", url],
        stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
        for _ in range(4)]
    total = 0
    for c in curls:
        try:
            out, _ = c.communicate(timeout=40)
            total += int(out.strip() or 0)
        except (subprocess.TimeoutExpired, ValueError):
            c.kill()
            c.wait()
    wall = time.monotonic() - t0
    cpu = (cpu_ticks(pids) - t0c) / os.sysconf("SC_CLK_TCK")
    if total != 4 * BIG_SIZE:
        notes.append("%s bulk: downloaded %d of %d bytes in %.1f s "
                     "(curl --max-time 30)" %
                     (b.name, total, 4 * BIG_SIZE, wall))
        return None
    return total / wall / 1e6, cpu / (total / 1e9)


def test_bulk_squeeze(b, res, notes):
    """On a balancer that has moved no bulk yet: one round while the pipe
    quota of lbd's user (nobody) is all but used up, as other processes of
    that user can do on a shared machine, so that the kernel refuses to
    grow pipes (issue 18); then the CPU s/GB of the round after it.  HAProxy
    runs as root here, exempt from the quota."""
    url = "http://127.0.0.1:%d/big" % b.port
    pids = b.pids()
    with pipequota.Squeeze(PROCS):
        if bulk_round(b, url, pids, notes) is None:
            return
    r = bulk_round(b, url, pids, notes)
    if r is not None:
        res["bulk_squeeze"] = r[1]


def note_pipe_refusals(b, logpath, offset, notes):
    """lbd logs a refused pipe growth (its user's pipes over the quota):
    a bulk cell that lost to it says so, instead of passing for noise."""
    if not b.name.startswith("lbd") or not os.path.exists(logpath):
        return
    with open(logpath, "rb") as f:
        f.seek(offset)
        refused = f.read().count(b"F_SETPIPE_SZ")
    if refused:
        notes.append("%s bulk: pipe growth refused %d time(s) during the "
                     "rounds (lbd's log)" % (b.name, refused))


def test_bulk(b, cfg, res, notes):
    """The median of bulk_rounds rounds: one round is a second of traffic,
    too short a sample on a noisy 2-core machine.  Beside it the first
    round alone (pipes not grown yet, as a new user's few rounds would
    count them).  test_bulk_squeeze adds a round after a pipe squeeze."""
    url = "http://127.0.0.1:%d/big" % b.port
    pids = b.pids()
    counter = SyscallCounter([] if b.name == "direct" else pids,
                             os.path.join(b.env.tmp, "perf-%s-bulk.txt" % b.name))
    csw0, segs0 = context_switches(pids), tcp_out_segments()
    logpath = os.path.join(b.env.tmp, b.name + ".log")
    log0 = os.path.getsize(logpath) if os.path.exists(logpath) else 0
    rounds = []
    for _ in range(cfg["bulk_rounds"]):
        r = bulk_round(b, url, pids, notes)
        if r is None:
            counter.stop()
            res["bulk_mbps"] = res["bulk_cpu"] = "incomplete"
            return
        rounds.append(r)
    note_pipe_refusals(b, logpath, log0, notes)
    mib = len(rounds) * 4 * BIG_SIZE / float(1 << 20)
    res["bulk_segs"] = (tcp_out_segments() - segs0) / mib
    csw, calls = context_switches(pids) - csw0, counter.stop()
    res["bulk_mbps"] = statistics.median(r[0] for r in rounds)
    if b.name != "direct":
        res["bulk_cpu"] = statistics.median(r[1] for r in rounds)
        res["bulk_first"] = rounds[0][1]
        res["bulk_csw"] = csw / mib
        if calls:
            res["bulk_sys"] = calls / mib


def test_evenness(b, cfg, res, notes):
    short = hclient(["short", "127.0.0.1:%d" % b.port, str(cfg["even_short"]),
                     "50"])
    ka = hclient(["ka", "127.0.0.1:%d" % b.port, str(cfg["even_ka"]), "50",
                  "skew"])
    for kind, r in (("short", short), ("ka", ka)):
        if r.get("errors"):
            notes.append("%s evenness %s: %s errors %s" %
                         (b.name, kind, r.get("errors"),
                          r.get("error_kinds", r.get("output", ""))))
    res["even_short"] = "/".join(str(short.get("conns", {}).get("b%d" % i, 0))
                                 for i in (1, 2, 3))
    res["even_ka"] = "/".join(str(ka.get("counts", {}).get("b%d" % i, 0))
                              for i in (1, 2, 3))


def tcp_out_segments():
    """TCP segments sent by this host (all of them: on loopback, every one
    is also received here)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutSegs")])


class SyscallCounter:
    """perf stat counting raw_syscalls:sys_enter in pids: a kernel counter,
    so unlike strace it does not slow the balancer down and change what it
    does (how often a read finds bytes waiting, how often it sleeps)."""

    def __init__(self, pids, out, event="raw_syscalls:sys_enter"):
        """event: another tracepoint to count instead (scale.py counts
        health checks as syscalls:sys_enter_connect)."""
        self.out, self.proc, self.event = out, None, event
        if pids and shutil.which("perf"):
            self.proc = PROCS.start(
                ["perf", "stat", "-x", ",", "-e", event,
                 "-o", out, "-p", ",".join(str(p) for p in pids)],
                out + ".log")
            time.sleep(0.5)  # attach

    def stop(self):
        """The count, or None (no perf, or it could not attach)."""
        if self.proc is None:
            return None
        PROCS.stop(self.proc, sig=signal.SIGINT, grace=10.0, second_sig=True)
        try:
            with open(self.out) as f:
                for line in f:
                    w = line.split(",")
                    if len(w) > 2 and w[2] == self.event:
                        return int(w[0])
        except (OSError, ValueError):
            pass
        return None


def wrk_with_cpu(b, cfg, close, notes, label):
    """wrk against b, plus per request: the balancer's CPU microseconds and
    system calls, and the TCP segments (health checks included: a few per
    second)."""
    pids = [] if b.name == "direct" else b.pids()
    counter = SyscallCounter(pids, os.path.join(
        b.env.tmp, "perf-%s.txt" % label.replace(" ", "-")))
    t0, s0 = cpu_ticks(pids), tcp_out_segments()
    r = wrk(b.port, cfg["duration"], close, notes, label)
    ticks, segs = cpu_ticks(pids) - t0, tcp_out_segments() - s0
    calls = counter.stop()
    if r.get("requests"):
        r["segs"] = segs / r["requests"]
        if pids:
            r["cpu"] = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / r["requests"]
        if calls:
            r["sys"] = calls / r["requests"]
    return r


def test_throughput(b, cfg, res, notes):
    r = wrk_with_cpu(b, cfg, True, notes, b.name + " short_conn")
    for k in ("rps", "cpu", "segs", "sys"):
        if k in r:
            res["short_" + k] = r[k]
    time.sleep(1)
    r = wrk_with_cpu(b, cfg, False, notes, b.name + " keepalive")
    for k in ("rps", "p50", "p99", "cpu", "segs", "sys"):
        if k in r:
            res["ka_" + k] = r[k]
    time.sleep(1)


# ----------------------------------------------------------------- syscalls

def parse_strace(path):
    calls = {}
    errors = {}
    try:
        with open(path) as f:
            for line in f:
                w = line.split()
                if len(w) < 5 or not w[0][0].isdigit() or w[-1] == "total":
                    continue
                calls[w[-1]] = int(w[3])
                if len(w) == 6:
                    errors[w[-1]] = int(w[4])
    except (OSError, ValueError):
        pass
    return calls, errors


def strace_run(b, load, label):
    """Syscall counts of all of b's processes while load() runs."""
    out = os.path.join(b.env.tmp, "strace-%s-%s.txt" % (b.name, label))
    argv = ["strace", "-c", "-f", "-o", out]
    for p in b.pids():
        argv += ["-p", str(p)]
    st = PROCS.start(argv, out + ".log")
    time.sleep(1.0)  # attach
    units = load()
    time.sleep(0.3)
    st.send_signal(signal.SIGINT)
    try:
        st.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    PROCS.stop(st, sig=signal.SIGINT, grace=2.0, second_sig=False)
    calls, errors = parse_strace(out)
    return calls, errors, units


def test_syscalls(b, cfg, notes):
    addr = "127.0.0.1:%d" % b.port
    loads = []

    def short():
        r = hclient(["short", addr, str(cfg["st_short"]), "10"])
        return r.get("requests", 0)

    def ka():
        n = cfg["st_ka"] // 20
        r = hclient(["ka", addr, "20", "20", "fixed:%d" % n])
        return r.get("requests", 0)

    def bulk():
        mib = cfg["st_bulk_mib"]
        rc, out = run_cmd(["curl", "-s", "-o", "/dev/null", "--max-time",
                           "20", "-r",
                           "0-%d" % ((mib << 20) - 1), "-w",
                           "%{size_download}", "http://%s/big" % addr], 30)
        if rc != 0:
            notes.append("%s strace bulk: curl exit %s (%s bytes)" %
                         (b.name, rc, out.strip()))
        try:
            return int(out.split()[0]) / float(1 << 20)
        except (ValueError, IndexError):
            return 0

    for label, unit, fn in (("short", "short connection", short),
                            ("keepalive", "keep-alive request", ka),
                            ("bulk", "MiB of bulk", bulk)):
        calls, errors, units = strace_run(b, fn, label)
        if not calls or not units:
            notes.append("%s strace %s: no counts (units %s)" %
                         (b.name, label, units))
            continue
        total = sum(calls.values())
        top = sorted(calls.items(), key=lambda kv: -kv[1])[:8]
        parts = []
        for name, n in top:
            e = errors.get(name, 0)
            parts.append("%s %.2f%s" % (name, n / units,
                                        " (err %.2f)" % (e / units)
                                        if e else ""))
        loads.append("  per %-18s %7.2f   [%s; %g units]\n      top: %s" % (
            unit, total / units, label, round(units, 2), ", ".join(parts)))
    return loads


# ------------------------------------------------------------------- report

def versions(env, chosen):
    v = {}
    if "lbd" in chosen and os.access(env.lbd, os.X_OK):
        v["lbd"] = run_cmd([env.lbd, "-V"], 5)[1].strip().splitlines()[:1]
    if any(c.startswith("haproxy") for c in chosen):
        v["haproxy"] = re.sub(r"^HAProxy version (\S+).*", r"\1",
                              run_cmd(["haproxy", "-v"], 5)[1].splitlines()[0])
    if "pen" in chosen:
        v["pen"] = [run_cmd(["dpkg-query", "-W", "-f", "pen ${Version}",
                             "pen"], 5)[1].strip() +
                    " (single process: no worker/thread option, runs as 1)"]
    if "nginx" in chosen or "direct" in chosen:
        v["nginx"] = run_cmd(["nginx", "-v"], 5)[1].strip().replace(
            "nginx version: nginx/", "")
    v["wrk"] = run_cmd(["wrk", "-v"], 5)[1].split()[1]
    v["curl"] = run_cmd(["curl", "--version"], 5)[1].split()[1]
    return {k: " ".join(x) if isinstance(x, list) else x
            for k, x in v.items()}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(v, key):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if key in ("ka_p50", "ka_p99", "bulk_cpu", "bulk_first", "bulk_squeeze",
               "short_cpu", "ka_cpu", "short_segs", "short_sys", "ka_segs", "ka_sys", "bulk_sys",
               "bulk_csw", "bulk_segs"):
        return "%.3f" % v if v < 10 else "%.1f" % v
    if key == "conc_rss":
        return "%.1f" % v
    return "%.0f" % v


def median_cells(runs, names):
    """Median per cell over repetitions (strings: last seen)."""
    cells = {}
    for name in names:
        for key, _, _ in ROWS:
            vals = [r[name][key] for r in runs
                    if name in r and key in r[name]]
            if not vals:
                continue
            if isinstance(vals[-1], str):
                cells[(name, key)] = vals[-1]
            else:
                cells[(name, key)] = statistics.median(vals)
    return cells


def ratio(cells, key, better, others):
    lv = cells.get(("lbd", key))
    vals = [cells[(o, key)] for o in others if (o, key) in cells]
    vals = [v for v in vals if isinstance(v, (int, float)) and v > 0]
    if not isinstance(lv, (int, float)) or not vals or better is None:
        return "-"
    ref = max(vals) if better == "hi" else min(vals)
    return "%.2fx" % (lv / ref)


def table(cells, names):
    cols = list(names)
    extra = []
    if "lbd" in names:
        extra = [("lbd/HAProxy", [n for n in HAPROXIES if n in names]),
                 ("lbd/best peer", [n for n in PEERS if n in names]),
                 ("lbd/direct", ["direct"] if "direct" in names else [])]
    head = ["metric", "better"] + cols + [e[0] for e in extra]
    rows = []
    for key, label, better in ROWS:
        row = [label, {"hi": "higher", "lo": "lower"}.get(better, "even")]
        row += [fmt(cells.get((n, key)), key) for n in cols]
        row += [ratio(cells, key, better, o) for _, o in extra]
        rows.append(row)
    return text_table(head, rows)


def text_table(head, rows):
    """Columns aligned: the first to the left, the others to the right,
    a rule under the head (balance.py prints its table with it too)."""
    widths = [max(len(str(r[i])) for r in [head] + rows)
              for i in range(len(head))]
    lines = []
    for j, r in enumerate([head] + rows):
        cellsf = [str(c).ljust(widths[i]) if i == 0 else
                  str(c).rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cellsf).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# The rows the performance targets are stated in.
TARGET_ROWS = ("short_rps", "short_cpu", "ka_rps", "ka_p99", "bulk_mbps",
               "bulk_cpu", "bulk_first", "bulk_squeeze")


def per_repetition(runs, names):
    """lbd's target ratios in each repetition alone: their spread says how
    far the medians of one run can be trusted on a noisy machine."""
    refs = [("HAProxy", [n for n in HAPROXIES if n in names]),
            ("best peer", [n for n in PEERS if n in names]),
            # lbd beside a variant: the price of maxconn slots that never
            # bind, of leastload, of the front door (sni + 10 000 prefixes)
            ("lbd-maxconn", [n for n in ("lbd-maxconn",) if n in names]),
            ("lbd-leastload", [n for n in ("lbd-leastload",) if n in names]),
            ("lbd-door", [n for n in ("lbd-door",) if n in names]),
            ("lbd-base", [n for n in ("lbd-base",) if n in names])]
    if "lbd" not in names or len(runs) < 2:
        return []
    lines = ["", "lbd's ratios in each repetition (1 .. %d), same references "
             "as the table:" % len(runs)]
    for key, label, better in ROWS:
        if key not in TARGET_ROWS:
            continue
        for ref, others in refs:
            if others:
                per_run = [ratio(median_cells([r], names), key, better, others)
                           for r in runs]
                lines.append("  %-24s / %-10s %s" % (
                    label, ref, "  ".join(per_run)))
    return lines


# --------------------------------------------------------------------- main

def cleanup(tmp, keep):
    """Stops every process the run started and removes its temp dir."""
    PROCS.stop_all()
    if keep:
        log("temp dir kept: %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def config(args):
    if args.quick:
        return {"duration": 3, "idle": 2000, "conc_steps": [1000, 3000],
                "probe": 100, "even_short": 300, "even_ka": 60,
                "st_short": 300, "st_ka": 2000, "st_bulk_mib": 16,
                "bulk_rounds": 1, "squeeze": not getattr(args, "no_squeeze", False)}
    return {"duration": args.duration, "idle": 10000,
            "conc_steps": [2000, 6000, 10000, 14000, 18000], "probe": 200,
            "even_short": 3000, "even_ka": 300, "st_short": 2000,
            "st_ka": 10000, "st_bulk_mib": 64, "bulk_rounds": 5,
            "squeeze": not getattr(args, "no_squeeze", False)}


# lbd beside itself with one feature on: run only when named in --only.
VARIANTS = ["lbd-maxconn", "lbd-leastload", "lbd-door", "lbd-base"]


def pick(only):
    if not only:
        return [b for b in BALANCERS if b not in VARIANTS]
    want = [w.strip() for w in only.split(",") if w.strip()]
    chosen = [b for b in BALANCERS
              if any(b == w or (b.startswith(w + "-") and b not in VARIANTS)
                     for w in want)]
    unknown = [w for w in want if not any(b == w or b.startswith(w + "-")
                                          for b in BALANCERS)]
    if unknown:
        sys.exit("unknown balancer(s): %s (known: %s)" %
                 (", ".join(unknown), ", ".join(BALANCERS)))
    return chosen


TESTS = ["idle_mem", "concurrency", "throughput", "bulk", "evenness",
         "syscalls"]


def run_one(env, name, cfg, rep, notes, syscalls):
    res = {}
    tests = env.tests
    if name != "direct" and "idle_mem" in tests:
        with Balancer(env, name) as b:
            if b.error:
                notes.append(b.error)
                return res
            log("%s: idle_mem" % name)
            test_idle_mem(b, cfg, res, notes)
            b.check_alive("idle_mem", notes)
    if "concurrency" in tests:
        with Balancer(env, name) as b:
            if b.error:
                notes.append(b.error)
                return res
            log("%s: concurrency" % name)
            test_concurrency(b, cfg, res, notes)
            b.check_alive("concurrency", notes)
    if "bulk" in tests and cfg["squeeze"] and name != "direct":
        with Balancer(env, name) as b:  # fresh: no pipe grown yet
            if b.error:
                notes.append(b.error)
                return res
            log("%s: bulk after a pipe squeeze" % name)
            test_bulk_squeeze(b, res, notes)
            b.check_alive("bulk squeeze", notes)
    want_st = "syscalls" in tests and rep == 0 and name != "direct" and (
        name == "lbd" or env.args.strace == "all")
    rest = [t for t in ("throughput", "bulk", "evenness") if t in tests]
    if not rest and not want_st:
        return res
    with Balancer(env, name) as b:
        if b.error:
            notes.append(b.error)
            return res
        if "throughput" in tests:
            log("%s: short_conn + keepalive" % name)
            test_throughput(b, cfg, res, notes)
        if "bulk" in tests:
            log("%s: bulk" % name)
            test_bulk(b, cfg, res, notes)
        if "evenness" in tests and name != "direct":
            log("%s: evenness" % name)
            test_evenness(b, cfg, res, notes)
        if want_st:
            log("%s: strace" % name)
            syscalls[name] = test_syscalls(b, cfg, notes)
        b.check_alive("+".join(rest + (["syscalls"] if want_st else [])),
                      notes)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma list of balancers: " +
                    ",".join(BALANCERS) + " ('haproxy' = all 3 variants)")
    ap.add_argument("--quick", action="store_true",
                    help="short smoke run (3 s loads, small counts)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the balancers interleaved N times, report "
                    "the median per cell")
    ap.add_argument("--duration", type=int, default=8,
                    help="seconds per wrk run (default 8)")
    ap.add_argument("--strace", choices=["lbd", "all"],
                    default="lbd", help="whose syscalls to count")
    ap.add_argument("--out", help="where to write the table (default "
                    "tests/bench/last-run.txt; last-run-quick.txt with "
                    "--quick)")
    ap.add_argument("--tests", default=",".join(TESTS),
                    help="comma list of: " + ",".join(TESTS))
    ap.add_argument("--baseline", metavar="LBD",
                    help="another lbd binary, run as balancer lbd-base beside "
                    "lbd (name it in --only) for an A/B in one run")
    ap.add_argument("--no-squeeze", action="store_true",
                    help="skip the bulk round after a pipe squeeze (it holds "
                    "user nobody's pipe quota for a round: other people's "
                    "nobody processes get small pipes meanwhile)")
    ap.add_argument("--keep-tmp", action="store_true",
                    help="keep the temp dir (configs, logs, strace output)")
    args = ap.parse_args()
    if os.getuid() != 0:
        sys.exit("run as root (lbd drops to nobody, nginx needs its user)")
    for tool in ("wrk", "curl", "nginx", "haproxy", "pen", "strace"):
        if not shutil.which(tool):
            sys.exit("%s not found: apt-get install -y haproxy pen nginx "
                     "libnginx-mod-stream wrk curl strace" % tool)
    names = pick(args.only)
    busy = [p for p in BACKEND_PORTS + sorted(set(LISTEN.values()))
            if not port_free(p)]
    if busy:
        sys.exit("ports in use on 127.0.0.1: %s (another bench running?)" %
                 " ".join(map(str, busy)))
    notes = []
    tmp = tempfile.mkdtemp(prefix="lbd-bench.")
    os.chmod(tmp, 0o755)
    env = Env(args, tmp)
    env.tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    if set(env.tests) - set(TESTS):
        sys.exit("unknown test(s): %s" % ",".join(set(env.tests) - set(TESTS)))
    if "lbd" in names and not os.access(env.lbd, os.X_OK):
        msg = "lbd skipped: %s missing (run make -C %s)" % (env.lbd, ROOT)
        log(msg)
        notes.append(msg)
        names.remove("lbd")
    if "nginx" in names and not os.path.exists(NGINX_STREAM_MOD):
        msg = "nginx stream skipped: %s missing (apt-get install " \
              "libnginx-mod-stream)" % NGINX_STREAM_MOD
        log(msg)
        notes.append(msg)
        names.remove("nginx")
    if "lbd" in names:
        # A private copy: others may rebuild build/lbd during the run.
        shutil.copy2(env.lbd, os.path.join(tmp, "lbd"))
        env.lbd = os.path.join(tmp, "lbd")
    if "lbd-base" in names and not (args.baseline and os.access(args.baseline, os.X_OK)):
        sys.exit("lbd-base needs --baseline PATH, an lbd binary")
    cfg = config(args)
    started = datetime.datetime.now().astimezone()
    t0 = time.monotonic()
    runs, syscalls = [], {}
    vers = versions(env, names)
    try:
        start_backends(env)
        for rep in range(args.repeat):
            runs.append({})
            for name in names:
                log("run %d/%d: %s" % (rep + 1, args.repeat, name))
                runs[-1][name] = run_one(env, name, cfg, rep, notes, syscalls)
    finally:
        cleanup(tmp, args.keep_tmp)
    report = render(vers, names, cfg, runs, syscalls, notes, started,
                    time.monotonic() - t0)
    print(report)
    out = args.out or os.path.join(
        HERE, "last-run-quick.txt" if args.quick else "last-run.txt")
    with open(out, "w") as f:
        f.write(report + "\n")
    log("table written to %s" % out)


def render(vers, names, cfg, runs, syscalls, notes, started, elapsed):
    lines = [
        "lbd benchmark  %s  (took %.0f s)" % (
            started.strftime("%Y-%m-%d %H:%M %Z"), elapsed),
        "kernel %s; CPU %s x %d online; pinned: nothing (no taskset/"
        "affinity for any process)" % (platform.release(), cpu_model(),
                                       os.cpu_count()),
        FD_LIMIT_NOTE,
        "loopback only; backends: 3 nginx (1 worker each); every balancer "
        "has 2 workers/threads and round robin over the 3",
        "clients: wrk 2 threads 50 conns %d s per run; bulk = 4 parallel "
        "curl of a %d MiB file, median of %d rounds (MB = 1e6 B, GB = 1e9 B); "
        "idle_mem = %d conns; concurrency steps %s, %d sampled per step" % (
            cfg["duration"], BIG_SIZE >> 20, cfg["bulk_rounds"], cfg["idle"],
            "/".join(str(s) for s in cfg["conc_steps"]), cfg["probe"]),
        "evenness: %d short conns; %d keep-alive conns, conn i sends "
        "1+(i%%10)*3 requests" % (cfg["even_short"], cfg["even_ka"]),
        "repetitions: %d, balancers interleaved, median per cell" %
        len(runs),
        "versions: " + "; ".join("%s: %s" % kv for kv in vers.items()),
        "direct = wrk/curl straight at backend b1 (no balancer)",
        "",
        table(median_cells(runs, names), names),
    ] + per_repetition(runs, names)
    for name, loads in syscalls.items():
        lines += ["", "%s system calls (strace -c -f on all its processes, "
                  "health checks included):" % name] + loads
    if any(n in HAPROXIES for n in names):
        notes.append("HAProxy sizes its maxconn from the descriptor limit "
                     "(2.6.12 here: 9986 plain, 7988 spliced, as it keeps "
                     "descriptors for pipes); extra connections wait in the "
                     "listen queue")
    if "pen" in names:
        notes.append("pen 0.34 has no worker/thread option: it runs as one "
                     "process, with -x 9900 (max connections): given more, it "
                     "exits when it runs out of descriptors; it sizes its tables at "
                     "start (so its Pss barely grows) and was seen leaving "
                     "some connections un-accepted in its listen queue until "
                     "other traffic woke it")
    if notes:
        lines += ["", "notes:"] + ["  - " + n for n in notes]
    return "\n".join(lines)


def _on_signal(signum, _frame):
    raise SystemExit("interrupted by signal %d" % signum)


def preflight(tools, ports):
    """Exit with the reason when not root, a tool is missing or a port on
    127.0.0.1 is taken (scale.py)."""
    if os.getuid() != 0:
        sys.exit("run as root (lbd drops to nobody, nginx needs its user)")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        sys.exit("not found: %s (apt-get install -y %s)" % (
            " ".join(missing), " ".join(missing)))
    busy = [p for p in ports if not port_free(p)]
    if busy:
        sys.exit("ports in use on 127.0.0.1: %s (another bench running?)" %
                 " ".join(map(str, busy)))


def report_head(title, started, elapsed):
    """The first lines of a report: what, when, on what (scale.py)."""
    return ["%s  %s  (took %.0f s)" % (
        title, started.strftime("%Y-%m-%d %H:%M %Z"), elapsed),
        "kernel %s; CPU %s x %d online; pinned: nothing" % (
            platform.release(), cpu_model(), os.cpu_count()),
        FD_LIMIT_NOTE]


def publish(report, path):
    """Print the report and keep it in path (scale.py)."""
    print(report)
    with open(path, "w") as f:
        f.write(report + "\n")
    log("table written to %s" % path)


def run_main(main_fn):
    """main_fn with SIGTERM and SIGHUP ending it through its finally
    clauses, which stop every process it started (scale.py)."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    main_fn()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    main()
