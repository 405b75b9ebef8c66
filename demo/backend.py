#!/usr/bin/env python3
"""Demo backend: a plain, unmodified Python HTTP/1.1 service (stdlib only).

It knows nothing about tracing: no OpenTelemetry, no propagation headers.
Osprey traces it from the kernel.

Usage: python3 backend.py [PORT]    (or env PORT; env HOST, default 127.0.0.1)
       env BACKEND_VERBOSE=1 logs one line per request to stderr.

Routes (every response has a Content-Length; connections are kept alive):
  GET  /health            200 {"status":"ok"}
  GET  /users/<id>        200 user JSON after ~1-5 ms; 404 for ids > 10000 or non-numeric
  GET  /slow              200 after 200 ms (?ms=N overrides, capped at 30 s)
  GET  /error             500
  POST /orders            201 order JSON (reads the JSON body)
  ANY  /chain/<anything>  200 echoing the path; ?sleep=N sleeps N ms first
  ANY  /api/item/<x>      the same (the linking tests' forwarders call it)
"""

import json
import os
import random
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERBOSE = os.environ.get("BACKEND_VERBOSE", "") not in ("", "0")
MAX_SLEEP_MS = 30_000
MAX_BODY = 1 << 20

FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Dennis", "Linus", "Margaret", "Donald"]
LAST_NAMES = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Ritchie", "Torvalds", "Hamilton", "Knuth"]


def sleep_ms_param(query, name, default):
    values = query.get(name)
    if not values:
        return default
    try:
        ms = int(values[0])
    except ValueError:
        return default
    return max(0, min(ms, MAX_SLEEP_MS))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "demo-backend/1.0"
    sys_version = ""
    # TCP_NODELAY: the handler writes the headers and the body in two send() calls; with Nagle on,
    # the body would wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        if VERBOSE:
            sys.stderr.write("backend: %s %s\n" % (self.address_string(), format % args))

    def send_json(self, status, obj, extra_headers=None):
        body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            return b""
        if n > MAX_BODY:
            self.close_connection = True
            return b""
        return self.rfile.read(n) if n > 0 else b""

    def route(self):
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query)
        body = self.read_body()
        method = self.command

        if path.startswith("/chain/") or path.startswith("/api/item/"):
            ms = sleep_ms_param(query, "sleep", 0)
            if ms:
                time.sleep(ms / 1000.0)
            return self.send_json(200, {"service": "backend", "method": method, "path": path, "sleptMs": ms})

        if method in ("GET", "HEAD"):
            if path == "/health":
                return self.send_json(200, {"status": "ok"})
            if path.startswith("/users/"):
                user_id = path[len("/users/"):]
                time.sleep(random.uniform(0.001, 0.005))
                if not user_id.isdigit() or int(user_id) > 10000:
                    return self.send_json(404, {"error": "user not found", "id": user_id})
                n = int(user_id)
                first = FIRST_NAMES[n % len(FIRST_NAMES)]
                last = LAST_NAMES[(n // len(FIRST_NAMES)) % len(LAST_NAMES)]
                return self.send_json(200, {
                    "id": n,
                    "name": "%s %s" % (first, last),
                    "email": "%s.%s@example.com" % (first.lower(), last.lower()),
                })
            if path == "/slow":
                ms = sleep_ms_param(query, "ms", 200)
                time.sleep(ms / 1000.0)
                return self.send_json(200, {"status": "done", "sleptMs": ms})
            if path == "/error":
                return self.send_json(500, {"error": "internal error (on purpose)"})
        elif method == "POST" and path == "/orders":
            try:
                order = json.loads(body or b"{}")
            except ValueError:
                return self.send_json(400, {"error": "invalid JSON"})
            time.sleep(random.uniform(0.002, 0.008))
            return self.send_json(201, {
                "orderId": random.randint(100000, 999999),
                "userId": order.get("userId") if isinstance(order, dict) else None,
                "status": "created",
            })
        return self.send_json(404, {"error": "not found", "path": path})

    do_GET = route
    do_HEAD = route
    do_POST = route
    do_PUT = route
    do_DELETE = route
    do_PATCH = route


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PORT", "8082"))
    host = os.environ.get("HOST", "127.0.0.1")
    try:
        server = Server((host, port), Handler)
    except OSError as e:
        sys.stderr.write("backend: cannot listen on %s:%d: %s\n" % (host, port, e))
        sys.exit(1)

    def on_term(signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sys.stderr.write("backend: listening on http://%s:%d\n" % (host, port))
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
