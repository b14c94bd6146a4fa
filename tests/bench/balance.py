#!/usr/bin/python3
"""The balance scenario: is the load per backend even, not just connections.

Run through `make bench-balance` (= python3 tests/bench/balance.py).
5 nginx backends that count their requests, ~150 simulated browsers
(browsers.py) on keep-alive connections with skewed request rates, the same
behaviour (fixed seed) through each balancer in turn.  Everything runs on
loopback, in a private temp dir, on ports 19200-19299; every process this
script starts is tracked by PID (bench.PROCS) and stopped on exit.  See
README.md here.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time

import bench
import browsers as workload
from bench import PROCS, log, run_cmd, write

BROWSERS = os.path.join(bench.HERE, "browsers.py")
BACKENDS = [19201, 19202, 19203, 19204, 19205]
USER_AGENT = "lbd-bench-browser"  # what browsers.py sends: counted lines

# (key, label, kind, balance, listen port)
SCENARIOS = [
    ("haproxy-rr", "HAProxy tcp roundrobin", "haproxy", "roundrobin", 19210),
    ("haproxy-lc", "HAProxy tcp leastconn", "haproxy", "leastconn", 19211),
    ("nginx", "nginx stream (round robin)", "nginx", "", 19212),
    ("lbd-rr", "lbd roundrobin", "lbd", "roundrobin", 19213),
    ("lbd-lc", "lbd leastconn", "lbd", "leastconn", 19214),
    ("lbd-ll", "lbd leastload", "lbd", "leastload", 19215),
    ("lbd-ll-age", "lbd leastload + max-connection-age {age}", "lbd",
     "leastload", 19216),
]


def backends_conf(tmp):
    """One nginx, one worker, 5 servers; each logs the user agent of every
    request to its own file, so the browsers' requests can be counted apart
    from health checks and readiness probes."""
    servers = "".join("""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        access_log {t}/b{i}.access bench;
        location = / {{ return 200 "b{i}\\n"; }}
    }}""".format(t=tmp, i=i, port=p) for i, p in enumerate(BACKENDS, 1))
    return """
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {t}/backends.pid;
error_log {t}/backends.err warn;
events {{ worker_connections 19800; }}
http {{
    log_format bench "$http_user_agent";
    default_type text/plain;
    client_body_temp_path {t}/b-body;
    proxy_temp_path {t}/b-proxy;
    fastcgi_temp_path {t}/b-fcgi;
    uwsgi_temp_path {t}/b-uwsgi;
    scgi_temp_path {t}/b-scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_header_timeout 300s;{servers}
}}
""".format(t=tmp, servers=servers)


def start_backends(env):
    conf = write(os.path.join(env.tmp, "backends.conf"),
                 backends_conf(env.tmp))
    p = PROCS.start(["nginx", "-p", env.tmp, "-e",
                     os.path.join(env.tmp, "backends.err"), "-c", conf],
                    os.path.join(env.tmp, "backends.out"))
    for i, port in enumerate(BACKENDS, 1):
        if not bench.wait_ready(port, p):
            sys.exit("backend b%d on port %d did not start (see %s)" %
                     (i, port, os.path.join(env.tmp, "backends.err")))
    env.backends.append(p)


def log_offsets(tmp):
    return [os.path.getsize(os.path.join(tmp, "b%d.access" % i))
            if os.path.exists(os.path.join(tmp, "b%d.access" % i)) else 0
            for i in range(1, len(BACKENDS) + 1)]


def count_since(tmp, offsets):
    """The browsers' requests each backend logged since offsets."""
    counts = []
    for i, off in enumerate(offsets, 1):
        n = 0
        try:
            with open(os.path.join(tmp, "b%d.access" % i), "rb") as f:
                f.seek(off)
                for line in f:
                    n += line.strip() == USER_AGENT.encode()
        except OSError:
            pass
        counts.append(n)
    return counts


class Scenario(bench.Balancer):
    """One balancer of the scenario; bench.Balancer starts and stops it."""

    def __init__(self, env, spec):
        key, _, kind, balance, port = spec
        super().__init__(env, key, port)
        self.kind, self.balance = kind, balance

    def conf_text(self):
        env, port = self.env, self.port
        if self.kind == "lbd":
            extra = ""
            if self.name == "lbd-ll-age":
                extra = '    max-connection-age = "%s"\n' % env.args.age
            return bench.lbd_conf(env, port, BACKENDS, self.balance, extra)
        if self.kind == "haproxy":
            return bench.haproxy_conf("haproxy", port, BACKENDS, self.balance)
        return bench.nginx_stream_conf(env, port, BACKENDS)

    def conf_path(self):
        ext = {"lbd": ".conf", "haproxy": ".cfg", "nginx": ".conf"}
        return os.path.join(self.env.tmp, self.name + ext[self.kind])

    def argv(self):
        conf = write(self.conf_path(), self.conf_text())
        if self.kind == "lbd":
            return [self.env.lbd, "-d", "-f", conf]
        if self.kind == "haproxy":
            return ["haproxy", "-db", "-f", conf]
        return ["nginx", "-p", self.env.tmp, "-e",
                os.path.join(self.env.tmp, self.name + ".err"), "-c", conf]

    def unsupported(self):
        """Why this build cannot run it (lbd -t refuses the config), or
        None."""
        if self.kind != "lbd":
            return None
        conf = write(self.conf_path(), self.conf_text())
        rc, out = run_cmd([self.env.lbd, "-t", "-f", conf], 15)
        if rc == 0:
            return None
        first = out.strip().splitlines()[:1]
        log("%s: lbd -t refused the config: %s" % (self.name, first))
        return "n/a (not supported by this build)"


def lbstat_backends(env, name):
    """Per backend name: lbd's JSON counters (exchanges, aged_out when this
    lbd has them), or {} when lbstat cannot tell."""
    conf = os.path.join(env.tmp, name + ".conf")
    rc, out = run_cmd([env.lbstat, "-j", "-f", conf], 10)
    try:
        snap = json.loads(out.strip().splitlines()[-1])
        backends = snap["services"][0]["backends"]
    except (ValueError, IndexError, KeyError, TypeError):
        log("%s: lbstat -j gave no backends (rc %s): %s" %
            (name, rc, out.strip()[-200:]))
        return {}
    return {b.get("name", "b%d" % i): b for i, b in enumerate(backends, 1)}


def lbstat_delta(before, after, field):
    """field's growth per backend b1..b5, or None when lbstat lacks it."""
    out = []
    for i in range(1, len(BACKENDS) + 1):
        a, b = after.get("b%d" % i, {}), before.get("b%d" % i, {})
        if field not in a:
            return None
        out.append(a[field] - b.get(field, 0))
    return out


def browsers(env, port):
    a = env.args
    argv = [bench.PY, BROWSERS, "127.0.0.1:%d" % port, "--duration", str(a.duration)]
    for key in workload.WORKLOAD:
        argv += ["--" + key, str(getattr(a, key))]
    rc, out = run_cmd(argv, a.duration + 90)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "browsers.py rc %s: %s" % (rc, out.strip()[-300:])}


def run_scenario(env, spec, notes):
    s = Scenario(env, spec)
    why = s.unsupported()
    if why:
        return {"na": why}
    if s.kind == "haproxy" and not shutil.which("haproxy"):
        return {"na": "n/a (haproxy not installed)"}
    if s.kind == "nginx" and not os.path.exists(bench.NGINX_STREAM_MOD):
        return {"na": "n/a (libnginx-mod-stream not installed)"}
    with s:
        if s.error:
            notes.append(s.error)
            return {"na": "n/a (did not start)"}
        offsets = log_offsets(env.tmp)
        before = lbstat_backends(env, s.name) if s.kind == "lbd" else {}
        log("%s: %d browsers for %g s" % (s.name, env.args.browsers,
                                          env.args.duration))
        res = browsers(env, s.port)
        if s.kind == "lbd":
            time.sleep(1.0)  # in case workers publish counters lazily
            after = lbstat_backends(env, s.name)
            res["exchanges"] = lbstat_delta(before, after, "exchanges")
            res["aged_out"] = lbstat_delta(before, after, "aged_out")
        s.check_alive("the balance scenario", notes)
    res["backends"] = count_since(env.tmp, offsets)
    if "error" in res:
        notes.append("%s: %s" % (s.name, res["error"]))
    return res


# ------------------------------------------------------------------- report

def pct(part, whole):
    return "%.2f%%" % (100.0 * part / whole) if whole else "-"


def main_row(label, r):
    b = r["backends"]
    req = r.get("requests", 0)
    ratio = "%.2f" % (max(b) / min(b)) if min(b) > 0 else "inf"
    rate = sum(b) / r["elapsed"] if r.get("elapsed") else None
    ms = [("%.2f" % r[k]) if r.get(k) is not None else "-"
          for k in ("p50_ms", "p99_ms")]
    return ([label] + [str(x) for x in b] + [
        ratio, str(req), "%.0f" % rate if rate else "-",
        str(r.get("connects", "-")), str(r.get("failed", "-")),
        "%s (%s)" % (r.get("retried", "-"), pct(r.get("retried", 0), req)),
        str(r.get("idle_closed", "-"))] + ms)


def main_table(results):
    head = (["balancer"] + ["b%d" % i for i in range(1, len(BACKENDS) + 1)] +
            ["max/min", "requests", "req/s", "conns", "failed", "retried",
             "idle-closed", "p50 ms", "p99 ms"])
    rows = [main_row(label, r) for label, r in results if "na" not in r]
    return with_na(bench.text_table(head, rows), results)


def with_na(table, results, only_lbd=False):
    """The rows that could not run, after the table: their text would
    widen its columns."""
    width = len(table.splitlines()[1].split()[0]) if "\n" in table else 0
    return "\n".join([table] + [
        "%s  %s" % (label.ljust(width), r["na"]) for label, r in results
        if "na" in r and (label.startswith("lbd") or not only_lbd)])


def exchange_row(label, r):
    ex, b = r.get("exchanges"), r["backends"]
    if ex is None:
        return [label] + ["n/a"] * (len(BACKENDS) + 2)
    cells = ["%d (%+.2f%%)" % (e, 100.0 * (e - n) / n if n else 0.0)
             for e, n in zip(ex, b)]
    aged = r.get("aged_out")
    return [label] + cells + ["/".join(map(str, aged)) if aged else "-",
                              str(sum(ex))]


def exchange_table(results):
    head = (["lbd: lbstat exchanges (vs backend's count)"] +
            ["b%d" % i for i in range(1, len(BACKENDS) + 1)] +
            ["aged_out b1..b5", "total"])
    rows = [exchange_row(label, r) for label, r in results
            if label.startswith("lbd") and "na" not in r]
    if rows and all(r.get("exchanges") is None for label, r in results
                    if label.startswith("lbd") and "na" not in r):
        return ("lbd: lbstat exchanges per backend: n/a (this build's "
                "lbstat -j reports no exchanges)")
    return with_na(bench.text_table(head, rows), results, True)


def versions(env):
    v = ["lbd: " + run_cmd([env.lbd, "-V"], 5)[1].strip()]
    if shutil.which("haproxy"):
        v.append("haproxy: " + run_cmd(["haproxy", "-v"], 5)[1].split()[2])
    v.append("nginx: " + run_cmd(["nginx", "-v"], 5)[1].strip().replace(
        "nginx version: nginx/", ""))
    return "; ".join(v)


def population(results):
    """The browsers' rates (the same in every row: one seed)."""
    for _, r in results:
        if r.get("rates_top"):
            top = r["rates_top"]
            return ("browser rates while connected: median %.2f req/s, the "
                    "top five %s (%.1fx to %.1fx the median)" % (
                        r["rate_median"], "/".join("%g" % x for x in top),
                        top[-1] / r["rate_median"], top[0] / r["rate_median"]))
    return "browser rates: -"


def render(env, vers, results, notes, started, elapsed):
    a = env.args
    lines = [
        "lbd balance scenario  %s  (took %.0f s)" % (
            started.strftime("%Y-%m-%d %H:%M %Z"), elapsed),
        "kernel %s; CPU %s x %d online; pinned: nothing" % (
            platform.release(), bench.cpu_model(), os.cpu_count()),
        bench.FD_LIMIT_NOTE,
        "loopback only; backends: 5 nginx servers (one nginx, 1 worker), "
        "each counting the browsers' requests in its access log; every "
        "balancer has 2 workers/threads",
        "clients (browsers.py): %d browsers in %d processes, seed %d, "
        "%g req/s offered in all, rates log-normal sigma %g, pages of 1+ "
        "geometric (mean 4) requests then think time, sessions exponential "
        "mean %g s then a pause (mean 1 s) and a new connection; %g s per "
        "balancer" % (a.browsers, a.procs, a.seed, a.rate, a.sigma,
                      a.session, a.duration),
        population(results),
        "versions: " + vers,
        "max/min = most over fewest requests of b1..b5 (backends' counts); "
        "retried = sent into a connection that closed before any byte of "
        "the answer, sent again on a new one (% of requests); idle-closed = "
        "connections the client saw closed before reusing them; conns = "
        "connections the clients opened",
        "",
        main_table(results),
        "",
        exchange_table(results),
    ]
    for label, r in results:
        counts = r.get("counts")
        if counts and [counts.get("b%d" % i, 0) for i in
                       range(1, len(BACKENDS) + 1)] != r["backends"]:
            notes.append("%s: the clients counted %s by body, the backends "
                         "%s" % (label, counts, r["backends"]))
        if r.get("error_kinds"):
            notes.append("%s: errors %s" % (label, r["error_kinds"]))
    if notes:
        lines += ["", "notes:"] + ["  - " + n for n in notes]
    return "\n".join(lines)


# --------------------------------------------------------------------- main

def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    keys = [s[0] for s in SCENARIOS]
    ap.add_argument("--only", help="comma list of: " + ",".join(keys))
    ap.add_argument("--duration", type=float, default=30.0,
                    help="seconds of browsing per balancer (default 30)")
    ap.add_argument("--quick", action="store_true",
                    help="8 s per balancer; writes last-balance-quick.txt")
    workload.add_workload_args(ap)
    ap.add_argument("--age", default="10s",
                    help="max-connection-age of the lbd-ll-age row")
    ap.add_argument("--out", help="where to write the table")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.duration = 8.0
    want = [w.strip() for w in (args.only or ",".join(keys)).split(",")]
    bad = [w for w in want if w not in keys]
    if bad:
        ap.error("unknown scenario(s) %s (known: %s)" %
                 (",".join(bad), ",".join(keys)))
    if not 1 <= args.duration <= 600:
        ap.error("--duration must be 1..600 s")
    args.chosen = [s for s in SCENARIOS if s[0] in want]
    return args


def prepare(args, tmp):
    env = bench.Env(args, tmp)
    env.lbstat = os.path.join(bench.ROOT, "build", "lbstat")
    for tool in (env.lbd, env.lbstat):
        if not os.access(tool, os.X_OK):
            sys.exit("%s missing: run make -C %s" % (tool, bench.ROOT))
    # Private copies: others may rebuild build/ during the run.
    for attr in ("lbd", "lbstat"):
        dst = os.path.join(tmp, attr)
        shutil.copy2(getattr(env, attr), dst)
        setattr(env, attr, dst)
    return env


def main():
    args = parse()
    if os.getuid() != 0:
        sys.exit("run as root (lbd drops to nobody, nginx needs its user)")
    if not shutil.which("nginx"):
        sys.exit("nginx not found: apt-get install -y nginx haproxy "
                 "libnginx-mod-stream")
    busy = [p for p in BACKENDS + [s[4] for s in SCENARIOS]
            if not bench.port_free(p)]
    if busy:
        sys.exit("ports in use on 127.0.0.1: %s (another bench running?)" %
                 " ".join(map(str, busy)))
    tmp = tempfile.mkdtemp(prefix="lbd-balance.")
    os.chmod(tmp, 0o755)
    env = prepare(args, tmp)
    started = datetime.datetime.now().astimezone()
    t0 = time.monotonic()
    results, notes = [], []
    vers = versions(env)
    try:
        start_backends(env)
        for spec in args.chosen:
            label = spec[1].format(age=args.age)
            log("balance: %s" % label)
            results.append((label, run_scenario(env, spec, notes)))
            time.sleep(1)
    finally:
        bench.cleanup(tmp, args.keep_tmp)
    report = render(env, vers, results, notes, started, time.monotonic() - t0)
    print(report)
    out = args.out or os.path.join(bench.HERE, "last-balance-quick.txt"
                                   if args.quick else "last-balance.txt")
    with open(out, "w") as f:
        f.write(report + "\n")
    log("table written to %s" % out)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, bench._on_signal)
    signal.signal(signal.SIGHUP, bench._on_signal)
    main()
