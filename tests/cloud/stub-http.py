#!/usr/bin/env python3
"""stub-http.py - a tiny HTTP(S) server for test-http: programmable answers,
request counts and the peak number of requests in flight.

Prints the port it listens on (127.0.0.1, chosen by the kernel) on stdout.
  /ok                      200 with an x-openstack-request-id
  /sleep?ms=N              answer after N ms
  /status?code=C[&retry_after=V]
  /flaky?key=K&fail=N&code=C[&retry_after=V]
                           the first N hits of K answer C (C=drop: close the
                           connection without a reply), then 200
  /drop                    close the connection without a reply
  /big?bytes=N[&chunked=1] a body of N bytes
  /echo                    the request as JSON (method, headers, body, and the
                           client's port: which connection it came on)
  /token                   201 with an X-Subject-Token header
  /old-nova/v2.1/          a compute version document that stops at 2.42
  /stats                   {"requests", "max_in_flight", "hits": {key: n}}
"""
import argparse
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

lock = threading.Lock()
stats = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "hits": {}}
serial = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        with lock:
            serial[0] += 1
            n = serial[0]
        self.send_header("x-openstack-request-id", "req-stub-%d" % n)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drop(self):
        self.close_connection = True
        try:
            import socket
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def handle_any(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = url.path
        if path == "/stats":
            with lock:
                data = json.dumps(stats).encode()
            return self.reply(200, data, [("Content-Type", "application/json")])
        with lock:
            stats["requests"] += 1
            stats["in_flight"] += 1
            stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            self.route(path, q, body)
        finally:
            with lock:
                stats["in_flight"] -= 1

    def route(self, path, q, body):
        extra = []
        if "retry_after" in q:
            extra.append(("Retry-After", q["retry_after"]))
        if path == "/ok":
            return self.reply(200, b"ok")
        if path == "/sleep":
            time.sleep(int(q.get("ms", "0")) / 1000.0)
            return self.reply(200, b"slept")
        if path == "/status":
            return self.reply(int(q["code"]), b'{"error": "injected"}', extra)
        if path == "/flaky":
            key = q["key"]
            with lock:
                hits = stats["hits"].get(key, 0) + 1
                stats["hits"][key] = hits
            if hits <= int(q.get("fail", "0")):
                if q["code"] == "drop":
                    return self.drop()
                return self.reply(int(q["code"]), b'{"error": "flaky"}', extra)
            return self.reply(200, b"recovered")
        if path == "/drop":
            return self.drop()
        if path == "/big":
            n = int(q["bytes"])
            chunk = b"x" * 65536
            if q.get("chunked") == "1":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while n > 0:
                        c = chunk[:min(n, len(chunk))]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                        n -= len(c)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass
                return None
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            try:
                while n > 0:
                    c = chunk[:min(n, len(chunk))]
                    self.wfile.write(c)
                    n -= len(c)
            except OSError:
                pass
            return None
        if path == "/echo":
            data = json.dumps({"method": self.command,
                               "headers": {k.lower(): v for k, v in self.headers.items()},
                               "body": body.decode("utf-8", "replace"),
                               "port": self.client_address[1]}).encode()
            return self.reply(200, data, [("Content-Type", "application/json")])
        if path == "/old-nova/v2.1/":
            # A compute API without microversion 2.52 (Ocata had 2.42).
            data = json.dumps({"version": {"id": "v2.1", "status": "CURRENT", "version": "2.42",
                                           "min_version": "2.1", "links": []}}).encode()
            return self.reply(200, data, [("Content-Type", "application/json")])
        if path == "/token":
            return self.reply(201, b"{}", [("X-Subject-Token", "stub-subject-token")])
        return self.reply(404, b"not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up early are part of the tests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
