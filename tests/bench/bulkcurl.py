#!/usr/bin/python3
"""Bulk CPU per GB as a new user might measure it (issue 18).

bench.py's bulk test runs inside a long-lived balancer (after the wrk loads)
and takes the median of 5 rounds, so every round after the first meets
pipes that are already big and warm.  A new user starts the balancer, runs a
few rounds of 4 parallel curl downloads and divides all the CPU by all the
bytes.  This does that, interleaving the balancers run by run (every
other run in reverse order):

  python3 tests/bench/bulkcurl.py                        # lbd vs HAProxy splice 1 MiB
  python3 tests/bench/bulkcurl.py --rounds 2,6 --runs 6  # the issue's report
  python3 tests/bench/bulkcurl.py --only lbd,lbd-base --baseline OLD/lbd

Backends: 3 nginx with --backend-workers workers each (default 2), sendfile
on; lbd without a health section unless --health.  Each run starts every
balancer afresh.  CPU is taken three ways: the window over all rounds
(utime+stime from /proc of every process of the balancer, first round
included), the first round alone, and the balancer's whole life (getrusage
of reaped children around its stop: start, idle, rounds and exit).
Loopback only, ports 19601-19613, a private temp dir; every process is
started and stopped through bench.PROCS (by PID).
"""
import argparse
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time

import bench
import pipequota
from bench import log

BACKENDS = [19601, 19602, 19603]
LISTEN = {"lbd": 19610, "lbd-base": 19611, "haproxy-splice1m": 19612,
          "haproxy-splice": 19613}
NAMES = list(LISTEN)


class Bulk(bench.Balancer):
    """A balancer on this harness's ports and options."""

    def argv(self):
        env, t = self.env, self.env.tmp
        if self.name.startswith("lbd"):
            conf = bench.write(os.path.join(t, self.name + ".conf"), bench.lbd_conf(
                env, self.port, BACKENDS, health=env.args.health))
            return [env.lbd_base if self.name == "lbd-base" else env.lbd,
                    "-d", "-f", conf]
        text = bench.haproxy_conf(self.name, self.port, BACKENDS)
        if env.args.haproxy_user:
            # as lbd runs: its pipes count against that user's
            # fs.pipe-user-pages-soft, which root is exempt from
            text = text.replace("global\n", "global\n    user %s\n    group %s\n" % (
                env.args.haproxy_user, env.args.haproxy_user == "nobody"
                and "nogroup" or env.args.haproxy_user), 1)
        conf = bench.write(os.path.join(t, self.name + ".cfg"), text)
        return ["haproxy", "-db", "-f", conf]


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def one_run(env, name, rounds, notes):
    """(window s/GB, first round s/GB, lifetime s/GB, MB/s, rounds 2.. s/GB)
    or None.  With --squeeze the first round runs while nobody's pipe
    quota is all but used up."""
    hz = os.sysconf("SC_CLK_TCK")
    url = "http://127.0.0.1:%d/big" % LISTEN[name]
    b = Bulk(env, name, LISTEN[name])
    with b:
        if b.error:
            notes.append(b.error)
            return None
        pids = b.pids()
        squeeze = pipequota.Squeeze(bench.PROCS).__enter__() if env.args.squeeze else None
        t0, w0 = bench.cpu_ticks(pids), time.monotonic()
        first = None
        for i in range(rounds):
            r = bench.bulk_round(b, url, pids, notes)
            if squeeze is not None:
                squeeze.__exit__()
                squeeze = None
            if r is None:
                return None
            if i == 0:
                first, t1 = r[1], bench.cpu_ticks(pids)
        ticks, wall = bench.cpu_ticks(pids) - t0, time.monotonic() - w0
        b.check_alive("bulkcurl", notes)
        # curl's CPU is reaped before this point: from here on the reaped
        # children are the balancer's processes alone
        life0 = children_cpu()
    life = children_cpu() - life0  # its whole life, reaped at its stop
    gb = rounds * 4 * bench.BIG_SIZE / 1e9
    rest = (t0 + ticks - t1) / hz / (gb * (rounds - 1) / rounds) if rounds > 1 else None
    return (ticks / hz / gb, first, life / gb, gb * 1e3 / wall, rest)


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="lbd,haproxy-splice1m",
                    help="comma list of: " + ",".join(NAMES))
    ap.add_argument("--runs", type=int, default=5,
                    help="interleaved runs per rounds setting (default 5)")
    ap.add_argument("--rounds", default="2",
                    help="comma list: download rounds per run (default 2)")
    ap.add_argument("--backend-workers", type=int, default=2)
    ap.add_argument("--health", action="store_true",
                    help="give lbd the health section bench.py gives it")
    ap.add_argument("--haproxy-user", metavar="USER",
                    help="run HAProxy as USER (e.g. nobody, as lbd runs) "
                    "rather than root")
    ap.add_argument("--squeeze", action="store_true",
                    help="during each run's first round, hold user nobody's "
                    "pipes up to fs.pipe-user-pages-soft (less %d pages), as "
                    "other processes of that user can: lbd (and HAProxy with "
                    "--haproxy-user nobody) cannot grow pipes meanwhile; "
                    "'rounds 2..' shows whether they do after" % pipequota.HEADROOM)
    ap.add_argument("--baseline", metavar="LBD",
                    help="another lbd binary, run as lbd-base")
    ap.add_argument("--max-seconds", type=int, default=600,
                    help="stop starting runs after this long (default 600)")
    return ap.parse_args()


def report(results, names, args):
    lines = []
    for rounds, runs in sorted(results.items()):
        lines.append("rounds per run: %d (4 x %d MiB each)" % (rounds, bench.BIG_SIZE >> 20))
        for key, label in ((0, "window s/GB (all rounds)"), (1, "first round s/GB"),
                           (4, "rounds 2.. s/GB"), (2, "lifetime s/GB"), (3, "MB/s")):
            for n in names:
                vals = [r[n][key] for r in runs if r.get(n) and r[n][key] is not None]
                if vals:
                    lines.append("  %-26s %-17s median %.3f  [%s]" % (
                        label, n, statistics.median(vals),
                        " ".join("%.3f" % v for v in vals)))
        ref = [n for n in names if n.startswith("haproxy")]
        for n in [n for n in names if n.startswith("lbd")]:
            for other in ref + (["lbd-base"] if n == "lbd" and "lbd-base" in names else []):
                for key, label in ((0, "window"), (4, "rounds 2.."), (2, "lifetime")):
                    rs = [r[n][key] / r[other][key] for r in runs
                          if r.get(n) and r.get(other) and r[n][key] and r[other][key]]
                    if rs:
                        lines.append("  %s/%s %s CPU/GB: median %.2fx  per run [%s]" % (
                            n, other, label, statistics.median(rs),
                            " ".join("%.2f" % x for x in rs)))
    return "\n".join(lines)


def main():
    args = parse()
    if os.getuid() != 0:
        sys.exit("run as root (lbd drops to nobody, nginx needs its user)")
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if set(names) - set(NAMES):
        sys.exit("unknown: %s" % ",".join(set(names) - set(NAMES)))
    if "lbd-base" in names and not args.baseline:
        sys.exit("lbd-base needs --baseline PATH")
    busy = [p for p in BACKENDS + list(LISTEN.values()) if not bench.port_free(p)]
    if busy:
        sys.exit("ports in use: %s" % " ".join(map(str, busy)))
    bench.BACKEND_PORTS[:] = BACKENDS  # wait_ready and start_backends use it
    tmp = tempfile.mkdtemp(prefix="lbd-bulkcurl.")
    os.chmod(tmp, 0o755)
    env = bench.Env(args, tmp)
    shutil.copy2(env.lbd, os.path.join(tmp, "lbd"))  # others may rebuild
    env.lbd = os.path.join(tmp, "lbd")
    notes, results, t0 = [], {}, time.monotonic()
    try:
        bench.start_backends(env, args.backend_workers)
        for rounds in [int(x) for x in args.rounds.split(",")]:
            results[rounds] = []
            for run in range(args.runs):
                if time.monotonic() - t0 > args.max_seconds:
                    notes.append("stopped at --max-seconds %d" % args.max_seconds)
                    break
                results[rounds].append({})
                # every other run in reverse order (A B, B A): what comes
                # first after a pause, or after the other, is not always lbd
                for n in (names if run % 2 == 0 else names[::-1]):
                    log("rounds %d run %d/%d: %s" % (rounds, run + 1, args.runs, n))
                    results[rounds][-1][n] = one_run(env, n, rounds, notes)
    finally:
        bench.cleanup(tmp, False)
    print("bulkcurl: backends %d nginx x %d workers (sendfile); lbd health: %s; "
          "HAProxy as %s; squeeze: %s; load avg at end %s; took %.0f s" % (
              len(BACKENDS), args.backend_workers, "yes" if args.health else "no",
              args.haproxy_user or "root", "first round" if args.squeeze else "no",
              " ".join(open("/proc/loadavg").read().split()[:3]),
              time.monotonic() - t0))
    print(report(results, names, args))
    for n in notes:
        print("note: " + n)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, bench._on_signal)
    main()
