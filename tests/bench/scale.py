#!/usr/bin/python3
"""lbd at scale: rates over many backends, health checks, reload, lbstat, RSS.

Run through `make bench-scale` (= python3 tests/bench/scale.py).  Issue 18's
"Measure": one service with 3 .. 10 000 backends through lbd and HAProxy,
interleaved, for roundrobin, leastconn and source; the master's CPU per
health check; a reload under 10 000 held connections; lbstat's time; idle
connections beyond one worker's descriptors.  The backends are 3 nginx
(2 workers each) listening on up to 10 000 addresses 127.77.x.y, the same
processes for every count, so a ratio between counts prices the balancer
alone.  Everything runs on loopback, in a private temp dir, on ports
19300-19399; every process this script starts is tracked by PID
(bench.PROCS) and stopped on exit.  See README.md here.
"""
import argparse
import datetime
import os
import shutil
import statistics
import tempfile
import time

import balance
import bench
import scalephases as phases
from bench import log
from scaleprocs import (BACKEND_PORT, MODES, PORTS, READY_PORTS,
                        Scaled, start_backends, started)

# -------------------------------------------------------------------- rates

def conns_per_backend(b):
    """lbd's connections so far per backend, in config order (lbstat -j),
    or None."""
    snap = b.lbstat()
    if not snap:
        return None
    return [x.get("connections", 0) for x in snap["services"][0]["backends"]]


def busiest_host(before, after):
    """Of the connections opened between two conns_per_backend, how many
    the busiest nginx took (address i is nginx i mod 3's): how evenly the
    balancer spread wrk's keep-alive connections over the real hosts."""
    if before is None or after is None or len(before) != len(after):
        return None
    hosts = [0] * len(READY_PORTS)
    for i, (a, z) in enumerate(zip(before, after)):
        hosts[i % len(hosts)] += z - a
    return max(hosts)


def rate_one(env, kind, mode, count, notes):
    """Short-connection and keep-alive req/s through one balancer."""
    b = Scaled(env, kind, mode, count, PORTS[kind])
    why = started(b, notes)
    if why:
        return {"na": why}
    res = {}
    try:
        load(b, "short", res, notes)
        time.sleep(0.5)
        before = conns_per_backend(b) if b.kind == "lbd" else None
        load(b, "ka", res, notes)
        if b.kind == "lbd":
            after = conns_per_backend(b)
            res["used"] = sum(1 for c in after or [] if c > 0) \
                if after else None
            if b.env.args.listeners != "shared":  # hosts hashed, not mapped
                res["ka_host"] = busiest_host(before, after)
        b.check_alive("rates", notes)
    finally:
        b.__exit__()
    return res


def load(b, key, res, notes):
    """One wrk run: req/s, and CPU µs per request of all the balancer's
    processes (lbd: its master's health checks too, as HAProxy's are in
    its one process) and of lbd's workers alone (key_w): CPU is what the
    choice costs, the rate also what others on the box take."""
    pids = b.pids()
    workers = [p for p in pids if p != b.proc.pid]
    t0, w0 = bench.cpu_ticks(pids), bench.cpu_ticks(workers)
    r = bench.wrk(b.port, b.env.args.duration, key == "short", notes,
                  "%s %s" % (b.name, key))
    n, hz = r.get("requests"), os.sysconf("SC_CLK_TCK")
    res[key] = r.get("rps")
    if n:
        res[key + "_cpu"] = (bench.cpu_ticks(pids) - t0) * 1e6 / hz / n
        res[key + "_w"] = (bench.cpu_ticks(workers) - w0) * 1e6 / hz / n


def run_rates(env, notes):
    """Every count and mode, lbd and HAProxy side by side (their order
    swapped each time), --repeat times: {(kind, mode, count): [res]}."""
    out, flip = {}, False
    for rep in range(env.args.repeat):
        for count in env.args.counts:
            for mode in env.args.modes:
                kinds = ["lbd", peer(env.args)]
                for kind in (kinds[::-1] if flip else kinds):
                    log("rates %d/%d: %s %s %d backends" % (
                        rep + 1, env.args.repeat, kind, mode, count))
                    out.setdefault((kind, mode, count), []).append(
                        rate_one(env, kind, mode, count, notes))
                flip = not flip
    return out


# ------------------------------------------------------------------- report

def peer(args):
    """What lbd's rates are compared with: HAProxy, or with --baseline
    another lbd binary (an A/B of two builds in one run)."""
    return "lbd-base" if args.baseline else "haproxy"


def peer_label(args):
    return "base" if args.baseline else "HAProxy"


def med(results, key):
    vals = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"


def num(v, fmt="%.0f"):
    return "-" if v is None else (v if isinstance(v, str) else fmt % v)


# The rate rows: key in rate_one's results, label, higher is better
RATE_ROWS = [("short", "short conn req/s", True),
             ("ka", "keep-alive req/s", True),
             ("short_cpu", "short conn CPU us/conn", False),
             ("ka_cpu", "keep-alive CPU us/req", False)]


def rate_rows(rates, args):
    """One row per load, mode and count; ratios to HAProxy and to the
    smallest count of the same balancer and mode."""
    rows, base, other = [], min(args.counts), peer(args)
    for key, label, higher in RATE_ROWS:
        for mode in args.modes:
            for count in args.counts:
                lr = rates.get(("lbd", mode, count), [])
                hr = rates.get((other, mode, count), [])
                lv, hv = med(lr, key), med(hr, key)
                lb = med(rates.get(("lbd", mode, base), []), key)
                hb = med(rates.get((other, mode, base), []), key)
                na = next((r["na"] for r in lr if "na" in r), None)
                used = med(lr, "used")
                fm = "%.0f" if higher else "%.1f"
                rows.append([
                    "%s %s" % (label, mode), str(count),
                    na or num(lv, fm), num(hv, fm), ratio(lv, hv),
                    ratio(lv, lb), ratio(hv, hb),
                    ">= 1.1x " + peer_label(args) + (", >= 0.95x of %d" % base
                                         if count != base else "")
                    if higher else "",
                    met(lv, hv, lb) if higher else "",
                    detail(lr, hr, key, used) if higher else
                    "lbd's workers alone %s" % num(med(lr, key[:-3] + "w"),
                                                   "%.1f")])
    return rows


def detail(lr, hr, key, used):
    """How many backends lbd used, and lbd/HAProxy in each repetition
    alone: their spread is the error bar of the median on a shared box."""
    each = ["%.2f" % (a[key] / b[key]) for a, b in zip(lr, hr)
            if a.get(key) and b.get(key)]
    def hosts(results):
        return " ".join(str(r["ka_host"]) for r in results
                        if key == "ka" and r.get("ka_host") is not None)
    lh, hh = hosts(lr), hosts(hr)
    return ("" if used is None else "lbd used %d" % used) + (
        "; each %s" % " ".join(each) if len(each) > 1 else "") + (
        "; busiest nginx's share of the 50 conns %s" % lh if lh else "") + (
        " (base %s)" % hh if hh else "")


def met(lv, hv, lb):
    """The rate targets: 1.1x HAProxy's, 0.95x lbd's own at the fewest."""
    if not (lv and hv and lb):
        return ""
    return "yes" if lv >= 1.1 * hv and lv >= 0.95 * lb else "NO"


HEAD = ["metric", "backends", "lbd", "HAProxy", "lbd/HAProxy",
        "lbd vs fewest", "HAProxy vs fewest", "target", "met", "detail"]


def render(env, vers, rates, other, notes, started_at, elapsed):
    a = env.args
    rows = (rate_rows(rates, a) if rates else []) + other
    head = [h.replace("HAProxy", peer_label(a)) for h in HEAD]
    lines = bench.report_head("lbd at scale", started_at, elapsed) + [
        "loopback only; backends: 3 nginx (2 workers each) on %d addresses "
        "127.77.x.y:%d, the same processes for every count; balancers: "
        "2 workers/threads, health checks every %s (lbd: timeout 1s; "
        "HAProxy: check inter)" % (len(env.addrs), BACKEND_PORT, a.interval),
        "rates: wrk 2 threads 50 conns %d s per run, lbd and %s "
        "interleaved, %d repetition(s) (median); 'vs fewest' = the rate at "
        "this count / at %d backends, same balancer and mode; CPU = "
        "utime+stime of all the balancer's processes per request, health "
        "checks included; source "
        "hashing sends one client address (wrk's) to one backend" % (
            a.duration, peer_label(a), a.repeat, min(a.counts)),
        "versions: " + vers + ("; base: %s" % a.baseline
                               if a.baseline else ""),
        "load average (1 min) at the start and the end: %s; the machine "
        "is shared, so noise from others' work lands in single cells" %
        env.loadavg,
        "",
        bench.text_table(head, rows),
    ]
    if notes:
        lines += ["", "notes:"] + ["  - " + n for n in notes]
    return "\n".join(lines)


# --------------------------------------------------------------------- main

def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def int_list(text):
    return [int(x) for x in text.split(",") if x.strip()]


# --quick: what the limits of today's main allow, in about 2 minutes.
QUICK = {"counts": [3, 64], "repeat": 1, "duration": 3,
         "health_counts": [64], "health_window": 5.0, "reload_backends": 64,
         "reload_conns": 2000, "hold_conns": 12000}


# (option, type, default, help): the counts and durations of each phase
OPTIONS = [
    ("counts", int_list, [3, 64, 1000, 10000],
     "backend counts of the rate rows"),
    ("modes", str, ",".join(MODES), "balance modes of the rate rows"),
    ("duration", int, 2, "seconds per wrk run"),
    ("repeat", int, 3, "repetitions of the rate rows, median per cell"),
    ("interval", str, "2s", "health check interval of every balancer"),
    ("health-counts", int_list, [1000, 10000],
     "backend counts of the health CPU rows"),
    ("health-window", float, 10.0, "seconds the checker's CPU is measured"),
    ("reload-backends", int, 10000, "backends of the reload and lbstat rows"),
    ("reload-conns", int, 10000, "connections held during the reload"),
    ("hold-conns", int, 35000, "idle client connections held (with their "
     "backend sides, twice as many sockets in lbd)"),
    ("hold-workers", int, 4, "lbd workers holding them"),
    ("hold-backends", int, 64, "backends they are spread over"),
    ("skip", str, "", "phases to leave out: rates,health,reload,hold"),
    ("listeners", str, "per-address", "the backends' sockets: per-address "
     "(each nginx listens on its share of the addresses) or shared (every "
     "nginx on port %d of every address, one reuseport group)" %
     BACKEND_PORT),
]


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, kind, default, text in OPTIONS:
        shown = ",".join(map(str, default)) if isinstance(default, list) \
            else default
        ap.add_argument("--" + name, type=kind, default=default,
                        help="%s (default %s)" % (text, shown or "none"))
    ap.add_argument("--quick", action="store_true",
                    help="3 and 64 backends, 3 s loads, small counts; "
                    "writes last-scale-quick.txt")
    ap.add_argument("--baseline", metavar="LBD",
                    help="another lbd binary, compared in the rate rows in "
                    "HAProxy's place (an A/B of two builds in one run)")
    ap.add_argument("--out", help="where to write the table")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--healthscale", default=os.path.join(
        bench.HERE, "healthscale.py"), help="the health checker's benchmark, "
        "run for the health rows when it exists (default %(default)s; "
        "without it: the master's CPU here, checks counted by perf)")
    args = ap.parse_args()
    if args.quick:  # smaller defaults; what the command line set stays
        for key, value in QUICK.items():
            if getattr(args, key) == ap.get_default(key):
                setattr(args, key, value)
    args.modes = [m for m in args.modes.split(",") if m]
    args.skip = [s for s in args.skip.split(",") if s]
    if not 1 <= args.duration <= 60 or not 1 <= args.repeat <= 9:
        ap.error("--duration 1..60, --repeat 1..9")
    if args.listeners not in ("per-address", "shared"):
        ap.error("--listeners per-address or shared")
    if args.baseline and not os.access(args.baseline, os.X_OK):
        ap.error("--baseline %s: not an executable lbd" % args.baseline)
    if min(args.counts + args.health_counts) < 1 or args.hold_conns > 80000:
        ap.error("counts must be positive, --hold-conns at most 80000")
    return args


def main():
    args = parse()
    bench.preflight(("wrk", "nginx", "haproxy"),
                    READY_PORTS + sorted(PORTS.values()))
    tmp = tempfile.mkdtemp(prefix="lbd-scale.")
    os.chmod(tmp, 0o755)
    env = balance.prepare(args, tmp)
    if args.baseline:   # a private copy, as prepare makes of lbd
        env.lbd_base = os.path.join(tmp, "lbd-base")
        shutil.copy2(args.baseline, env.lbd_base)
    started_at = datetime.datetime.now().astimezone()
    t0 = time.monotonic()
    notes, rates, other = [], {}, []
    vers = balance.versions(env)
    env.loadavg = loadavg()
    try:
        start_backends(env, max(args.counts + args.health_counts +
                                [args.reload_backends, args.hold_backends]))
        if "rates" not in args.skip:
            rates = run_rates(env, notes)
        other = phases.run_all(env, notes)
    finally:
        bench.cleanup(tmp, args.keep_tmp)
    env.loadavg += " / " + loadavg()
    name = "last-scale-quick.txt" if args.quick else "last-scale.txt"
    bench.publish(render(env, vers, rates, other, notes, started_at,
                         time.monotonic() - t0),
                  args.out or os.path.join(bench.HERE, name))


if __name__ == "__main__":
    bench.run_main(main)
