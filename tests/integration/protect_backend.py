#!/usr/bin/python3
"""A backend that counts its own concurrent clients, for test_protect.py.

    protect_backend.py NAME HOLD_MS LOG

Listens on 127.0.0.1 (a free port) and prints "READY <port>".  A client
sends "<id>\\n"; the backend counts it as open from then (a health probe,
which sends nothing, is not a client), holds it HOLD_MS, replies
"<NAME> <id>\\n" and closes.  LOG gets, per client, "serve <id> <monotonic
seconds> <clients open now>" when its id arrives and "done <id>" when it
is closed, flushed at once, so the test sees the most clients it ever held
at the same time -- measured here, at the backend, not by lbd.
"""

import socket
import sys
import threading
import time


def main():
    name, hold, log_path = sys.argv[1], int(sys.argv[2]) / 1000.0, sys.argv[3]
    lock = threading.Lock()
    state = {"open": 0}
    log = open(log_path, "a", buffering=1)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    print("READY %d" % ls.getsockname()[1], flush=True)

    def serve(c):
        counted = False
        try:
            c.settimeout(30)
            data = b""
            while not data.endswith(b"\n") and len(data) < 64:
                chunk = c.recv(64)
                if not chunk:
                    return
                data += chunk
            ident = data.strip().decode()
            with lock:
                state["open"] += 1
                counted = True
                log.write("serve %s %.6f %d\n" % (ident, time.monotonic(), state["open"]))
            time.sleep(hold)
            c.sendall(("%s %s\n" % (name, ident)).encode())
        except OSError:
            pass
        finally:
            # Uncounted just before the close: lbd can free the slot only
            # once it sees the FIN, so a next client is never counted early.
            if counted:
                with lock:
                    state["open"] -= 1
                    log.write("done %s\n" % ident)
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
