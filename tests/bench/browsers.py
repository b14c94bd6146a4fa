#!/usr/bin/python3
"""Simulated browsers on HTTP/1.1 keep-alive connections, for balance.py.

  browsers.py HOST:PORT [--browsers 150] [--rate 1200] [--duration 30]
              [--seed 14] [--procs 3] [--sigma 1.2] [--session 30]
              [--gap 1.0] [--burst 4]

Browser i has a request rate drawn log-normal (median 1, sigma --sigma: with
1.2 and seed 14, the busiest five of 150 ask 8-13x the median), scaled so
that all browsers together ask --rate requests per second.  A browser loads pages: a
burst of requests (1 + geometric, mean --burst), one after the other on its
one keep-alive connection, then thinks (exponential, so that its rate holds).
Its session ends at random (exponential, mean --session s): it closes the
connection, pauses (exponential, mean --gap s) and reconnects.  Every draw
comes from a generator seeded by --seed and the browser's number, so every
balancer sees the same population and the same behaviour.

Like a browser, it does not reuse a connection the server has already closed
while idle (it sees the FIN first and reconnects: "idle_closed").  A request
sent into a connection that closes before any byte of the answer is sent
again once on a new connection ("retried"); a request that fails after that,
or any other way, is "failed".

The browsers run in --procs processes (multiprocessing), each an asyncio loop
over its share.  Prints one JSON line: requests, ok, failed, retried,
idle_closed, connects, per-body counts ("b1".."b5"), latency p50/p99 in ms
(from the first send to the last byte of the answer, the retry included),
elapsed seconds and error kinds.  Every operation has a timeout and the whole
run is bounded by --duration + 60 s.
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hclient import read_response  # noqa: E402  (one HTTP reader for both)

OP_TIMEOUT = 5.0
USER_AGENT = "lbd-bench-browser"
REQUEST = (b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: " +
           USER_AGENT.encode() + b"\r\n\r\n")
INTRA_GAP = 0.010  # max pause between two requests of one page load


def population(args):
    """Per browser: requests per second while connected."""
    rng = random.Random(args.seed)
    weights = [rng.lognormvariate(0.0, args.sigma)
               for _ in range(args.browsers)]
    connected = args.session / (args.session + args.gap)
    total = sum(weights)
    return [args.rate * w / total / connected for w in weights]


class NoAnswer(Exception):
    """The connection closed before any byte of the answer."""


class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    def closed_by_peer(self):
        return self.reader.at_eof() or self.writer.transport.is_closing()

    def close(self):
        self.writer.close()


async def connect(host, port, stats):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port), OP_TIMEOUT)
    stats["connects"] += 1
    return Conn(reader, writer)


async def exchange(conn):
    """One request and its answer's body; NoAnswer when not a byte came."""
    try:
        conn.writer.write(REQUEST)
        return await asyncio.wait_for(read_response(conn.reader), OP_TIMEOUT)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            raise NoAnswer() from e
        raise
    except (ConnectionResetError, BrokenPipeError) as e:
        raise NoAnswer() from e


def count_error(stats, e):
    name = type(e).__name__
    stats["error_kinds"][name] = stats["error_kinds"].get(name, 0) + 1


async def request(conn, host, port, stats):
    """One request as a browser makes it; returns the connection to reuse
    (None when it is gone)."""
    stats["requests"] += 1
    t0 = time.monotonic()
    try:
        if conn is not None and conn.closed_by_peer():
            stats["idle_closed"] += 1
            conn.close()
            conn = None
        if conn is None:
            conn = await connect(host, port, stats)
        try:
            body = await exchange(conn)
        except NoAnswer:
            stats["retried"] += 1
            conn.close()
            conn = await connect(host, port, stats)
            body = await exchange(conn)
    except Exception as e:  # noqa: BLE001 - a failed request, counted
        stats["failed"] += 1
        count_error(stats, e)
        if conn is not None:
            conn.close()
        return None
    stats["latency"].append(time.monotonic() - t0)
    stats["ok"] += 1
    stats["counts"][body] = stats["counts"].get(body, 0) + 1
    return conn


async def sleep_until(t):
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def nap(seconds, t_end):
    """Sleep, but not past the end of the run: a slow user's think time
    may be longer than what is left of it."""
    await asyncio.sleep(max(0.0, min(seconds, t_end - time.monotonic())))


async def browser(i, rate, args, t_start, stats):
    rng = random.Random(args.seed * 100003 + i)
    t_end = t_start + args.duration
    think_mean = max(0.0, args.burst / rate - args.burst * INTRA_GAP / 2)
    await sleep_until(t_start + rng.uniform(0.0, 1.0))
    while time.monotonic() < t_end:
        session_end = time.monotonic() + rng.expovariate(1.0 / args.session)
        conn = None
        while time.monotonic() < min(session_end, t_end):
            pages = 1
            while rng.random() > 1.0 / args.burst and pages < 50:
                pages += 1
            for _ in range(pages):
                if time.monotonic() >= t_end:
                    break
                conn = await request(conn, args.host, args.port, stats)
                await asyncio.sleep(rng.uniform(0.0, INTRA_GAP))
            await nap(rng.expovariate(1.0 / think_mean)
                      if think_mean > 0 else 0.0, t_end)
        if conn is not None:
            conn.close()
        await nap(rng.expovariate(1.0 / args.gap), t_end)


def new_stats():
    return {"requests": 0, "ok": 0, "failed": 0, "retried": 0,
            "idle_closed": 0, "connects": 0, "counts": {}, "latency": [],
            "error_kinds": {}}


def run_share(share, rates, args, t_start, queue):
    """One client process: its browsers in one asyncio loop."""
    stats = new_stats()

    async def all_browsers():
        await asyncio.gather(*(browser(i, rates[i], args, t_start, stats)
                               for i in share))

    try:
        asyncio.run(asyncio.wait_for(all_browsers(), args.duration + 30))
    except Exception as e:  # noqa: BLE001 - report what was counted
        count_error(stats, e)
    queue.put(stats)


def merge(parts):
    out = new_stats()
    for p in parts:
        for k in ("requests", "ok", "failed", "retried", "idle_closed",
                  "connects"):
            out[k] += p[k]
        out["latency"] += p["latency"]
        for field in ("counts", "error_kinds"):
            for k, v in p[field].items():
                out[field][k] = out[field].get(k, 0) + v
    return out


def quantile(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def run(args):
    rates = population(args)
    queue = multiprocessing.Queue()
    t_start = time.monotonic() + 1.0  # all processes start together
    procs = [multiprocessing.Process(
        target=run_share, args=(range(k, args.browsers, args.procs), rates,
                                args, t_start, queue), daemon=True)
        for k in range(args.procs)]
    for p in procs:
        p.start()
    parts, deadline = [], t_start + args.duration + 60
    while len(parts) < len(procs) and time.monotonic() < deadline:
        try:
            parts.append(queue.get(timeout=max(0.1, deadline -
                                               time.monotonic())))
        except Exception:  # noqa: BLE001 - queue.Empty: deadline passed
            break
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()  # our own child, by its handle
            p.join(timeout=5)
    out = merge(parts)
    lat = sorted(out.pop("latency"))
    out["p50_ms"] = quantile(lat, 0.50) * 1e3 if lat else None
    out["p99_ms"] = quantile(lat, 0.99) * 1e3 if lat else None
    out["elapsed"] = round(time.monotonic() - t_start, 3)
    out["procs_reported"] = len(parts)
    out["rates_top"] = sorted((round(r, 1) for r in rates), reverse=True)[:5]
    out["rate_median"] = round(sorted(rates)[len(rates) // 2], 2)
    return out


# The workload's options, shared with balance.py, which passes them on.
WORKLOAD = ["browsers", "rate", "seed", "procs", "sigma", "session"]


def add_workload_args(ap):
    ap.add_argument("--browsers", type=int, default=150)
    ap.add_argument("--rate", type=float, default=1200.0,
                    help="requests per second offered, all browsers together")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--procs", type=int, default=3,
                    help="client processes (default 3)")
    ap.add_argument("--sigma", type=float, default=1.2,
                    help="log-normal sigma of the browsers' rates")
    ap.add_argument("--session", type=float, default=30.0,
                    help="mean session length in seconds")


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("addr", help="HOST:PORT")
    ap.add_argument("--duration", type=float, default=30.0)
    add_workload_args(ap)
    ap.add_argument("--gap", type=float, default=1.0,
                    help="mean pause between sessions, s")
    ap.add_argument("--burst", type=float, default=4.0,
                    help="mean requests per page load")
    args = ap.parse_args(argv)
    host, _, port = args.addr.rpartition(":")
    args.host, args.port = host.strip("[]"), int(port)
    if not (1 <= args.procs <= 64 and 1 <= args.browsers <= 5000 and
            args.rate > 0 and args.burst >= 1 and args.session > 0 and
            args.gap > 0 and 0 < args.duration <= 3600):
        ap.error("argument out of range")
    return args


if __name__ == "__main__":
    print(json.dumps(run(parse(sys.argv[1:])), sort_keys=True))
