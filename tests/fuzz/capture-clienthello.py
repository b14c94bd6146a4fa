#!/usr/bin/env python3
"""Records the first bytes real TLS clients send: the seed ClientHellos of
tests/fuzz/corpus/sni/ and tests/unit/sni_vectors.h.

    python3 tests/fuzz/capture-clienthello.py [OUTDIR]

A listener on 127.0.0.1 takes one connection per client, reads until the
client has sent its whole first flight (or 2 s pass), writes it to
OUTDIR/NAME and closes; the client then fails its handshake, which is
expected.  Loopback only; every wait is bounded.
"""
import os
import socket
import subprocess
import sys
import threading

CLIENTS = {
    "openssl-tls12-sni": ["openssl", "s_client", "-tls1_2", "-servername", "exam.example.com"],
    "openssl-tls13-sni": ["openssl", "s_client", "-tls1_3", "-servername", "exam.example.com"],
    "openssl-tls13-nosni": ["openssl", "s_client", "-tls1_3", "-noservername"],
    "openssl-tls12-nosni": ["openssl", "s_client", "-tls1_2", "-noservername"],
    "curl-tls12-sni": ["curl", "-sk", "--max-time", "3", "--tlsv1.2", "--tls-max", "1.2",
                       "--resolve", "www.example.org:{port}:127.0.0.1",
                       "https://www.example.org:{port}/"],
    "curl-tls13-sni": ["curl", "-sk", "--max-time", "3", "--tlsv1.3",
                       "--resolve", "Mixed.Example.ORG:{port}:127.0.0.1",
                       "https://Mixed.Example.ORG:{port}/"],
}


def record(srv, out):
    conn, _ = srv.accept()
    conn.settimeout(2.0)
    data = b""
    try:
        while len(data) < 16384:
            chunk = conn.recv(16384)
            if not chunk:
                break
            data += chunk
            # One whole record of handshake type is a ClientHello.
            if len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[3:5], "big"):
                break
    except socket.timeout:
        pass
    conn.close()
    with open(out, "wb") as f:
        f.write(data)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/sni"
    os.makedirs(outdir, exist_ok=True)
    for name, argv in CLIENTS.items():
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(5.0)
        port = srv.getsockname()[1]
        t = threading.Thread(target=record, args=(srv, os.path.join(outdir, name)))
        t.start()
        argv = [a.format(port=port) for a in argv]
        if argv[0] == "openssl":
            argv += ["-connect", "127.0.0.1:%d" % port]
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10, check=False)
        t.join(10)
        srv.close()
        print(name, os.path.getsize(os.path.join(outdir, name)))


if __name__ == "__main__":
    main()
