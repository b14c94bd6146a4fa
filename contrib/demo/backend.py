#!/usr/bin/python3
"""A demo HTTP backend for lbd: answers every request with its own name.

usage: backend.py NAME PORT [HOST]
GET /health answers 200 (for lbd's health check); anything else answers
"served by NAME".
"""
import http.server
import socketserver
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("ok\n" if self.path == "/health" else
                "served by %s\n" % self.server.backend_name).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # lbd's health checks hang up (with a reset) once they have seen
        # the status line; that is not worth a traceback.
        pass


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: backend.py NAME PORT [HOST]")
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    server = Server((host, int(sys.argv[2])), Handler)
    server.backend_name = sys.argv[1]
    server.serve_forever()


if __name__ == "__main__":
    main()
