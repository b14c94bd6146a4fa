#!/usr/bin/python3
"""Small HTTP/1.1 client for the evenness test and the strace loads.

  hclient.py short HOST:PORT N CONC
      N connections, each one request with "Connection: close", CONC at once.
  hclient.py ka HOST:PORT NCONN CONC skew
      connection i sends 1 + (i % 10) * 3 keep-alive requests.
  hclient.py ka HOST:PORT NCONN CONC fixed:R
      every connection sends R keep-alive requests.

Prints one JSON line: per-backend tallies by response body ("b1", "b2", ...),
requests done, errors, elapsed seconds.  Every operation has a timeout and the
whole run is bounded by --limit seconds (default 120).
"""
import asyncio
import json
import sys
import time

OP_TIMEOUT = 10.0


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("status " + head.split(b"\r\n")[0].decode())
    return body.strip().decode("ascii", "replace")


async def one_conn(host, port, nreq, close, stats):
    req = (b"GET / HTTP/1.1\r\nHost: bench\r\n" +
           (b"Connection: close\r\n" if close else b"") + b"\r\n")
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), OP_TIMEOUT)
        conn_backend = None
        for _ in range(nreq):
            writer.write(req)
            body = await asyncio.wait_for(read_response(reader), OP_TIMEOUT)
            stats["counts"][body] = stats["counts"].get(body, 0) + 1
            stats["requests"] += 1
            if conn_backend is None:
                conn_backend = body
            elif conn_backend != body:
                stats["switched"] += 1
        if close:
            await asyncio.wait_for(reader.read(), OP_TIMEOUT)  # until EOF
        if conn_backend is not None:
            stats["conns"][conn_backend] = stats["conns"].get(conn_backend, 0) + 1
    except Exception as e:  # noqa: BLE001 - count and go on
        stats["errors"] += 1
        name = type(e).__name__
        stats["error_kinds"][name] = stats["error_kinds"].get(name, 0) + 1
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:  # noqa: BLE001
                pass


async def run(host, port, plan, conc, close):
    stats = {"counts": {}, "conns": {}, "requests": 0, "errors": 0,
             "switched": 0, "error_kinds": {}}
    sem = asyncio.Semaphore(conc)

    async def guarded(n):
        async with sem:
            await one_conn(host, port, n, close, stats)

    t0 = time.monotonic()
    await asyncio.gather(*(guarded(n) for n in plan))
    stats["elapsed"] = round(time.monotonic() - t0, 3)
    return stats


def main(argv):
    limit = 120.0
    if "--limit" in argv:
        i = argv.index("--limit")
        limit = float(argv[i + 1])
        del argv[i:i + 2]
    mode, addr = argv[1], argv[2]
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")
    port = int(port)
    if mode == "short":
        n, conc = int(argv[3]), int(argv[4])
        plan, close = [1] * n, True
    elif mode == "ka":
        n, conc, kind = int(argv[3]), int(argv[4]), argv[5]
        if kind == "skew":
            plan = [1 + (i % 10) * 3 for i in range(n)]
        else:
            plan = [int(kind.split(":")[1])] * n
        close = False
    else:
        sys.exit("usage: hclient.py short|ka HOST:PORT ...")
    stats = asyncio.run(asyncio.wait_for(run(host, port, plan, conc, close),
                                         limit))
    print(json.dumps(stats, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv)
