#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of an AWS emulator (moto), for the reliability tests.

    scripts/fault_proxy.py UPSTREAM_PORT [LISTEN_PORT]

Prints `listening on PORT` once ready (LISTEN_PORT 0 or absent: a free port). Every request is
forwarded to localhost:UPSTREAM_PORT, except that signed AWS calls to the configured services
fail at the configured rate, in one of these ways (chosen at random, reproducibly by seed):

    500         the service answers 500 InternalError / InternalFailure, without forwarding
    throttle    S3 answers 503 SlowDown, CloudFormation 400 Throttling, without forwarding
    drop        the connection closes without an answer, without forwarding
    drop_after  the request IS forwarded (the write happens), then the connection closes
                without an answer: the client cannot know its call took effect
    delay       the proxy waits `delay` seconds, then forwards (the client should time out
                first, and its retry races the original)
    deny        S3 answers 403 AccessDenied, without forwarding (what S3 answers for a
                missing key to a caller without s3:ListBucket); not among the default modes

Configure with `POST /__faults__` and a JSON body, e.g.
    {"rate": 0.3, "seed": 7, "modes": ["500", "throttle", "drop", "drop_after", "delay"],
     "delay": 2.0, "services": ["s3", "cloudformation"]}
`GET /__faults__` returns the configuration and how many faults of each mode were injected,
per service.
"""

import http.client
import http.server
import json
import random
import re
import socket
import sys
import threading
import time

LOCK = threading.Lock()
CONFIG = {
    "rate": 0.0,
    "seed": 1,
    "modes": ["500", "throttle", "drop", "drop_after", "delay"],
    "delay": 2.0,
    "services": ["s3", "cloudformation"],
}
RNG = random.Random(1)
INJECTED = {}
FORWARDED = [0]
SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"}

S3_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error (injected). Please try again."),
    "throttle": (503, "SlowDown", "Please reduce your request rate (injected)."),
    "deny": (403, "AccessDenied", "Access Denied (injected)"),
}
QUERY_ERRORS = {
    "500": (500, "Receiver", "InternalFailure", "An internal error occurred (injected)."),
    "throttle": (400, "Sender", "Throttling", "Rate exceeded (injected)"),
}


def choose_fault(service):
    with LOCK:
        if service not in CONFIG["services"] or RNG.random() >= CONFIG["rate"]:
            return None
        mode = RNG.choice(CONFIG["modes"])
        INJECTED.setdefault(service, {}).setdefault(mode, 0)
        INJECTED[service][mode] += 1
        return mode


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, body, headers=(), length=None):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if self.command == "HEAD":
            # A HEAD answer describes the object: its length, and no body.
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def control(self, body):
        global RNG
        if self.command == "POST":
            with LOCK:
                CONFIG.update(json.loads(body or b"{}"))
                RNG = random.Random(CONFIG["seed"])
                INJECTED.clear()
                FORWARDED[0] = 0
        with LOCK:
            answer = {"config": CONFIG, "injected": INJECTED, "forwarded": FORWARDED[0]}
        self.reply(200, json.dumps(answer).encode(), [("Content-Type", "application/json")])

    def forward(self, body):
        upstream = http.client.HTTPConnection("localhost", UPSTREAM, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body or self.command in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body))
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        upstream.close()
        with LOCK:
            FORWARDED[0] += 1
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        return response.status, data, headers, response.getheader("Content-Length")

    def handle_any(self):
        body = self.read_body()
        if self.path.startswith("/__faults__"):
            return self.control(body)
        match = SERVICE.search(self.headers.get("Authorization", ""))
        service = match.group(1) if match else None
        mode = choose_fault(service) if service else None
        if mode in ("500", "throttle", "deny"):
            if service == "s3":
                status, code, message = S3_ERRORS[mode]
                xml = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>injected</RequestId></Error>"
            elif mode in QUERY_ERRORS:
                status, kind, code, message = QUERY_ERRORS[mode]
                xml = f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
            else:
                status, kind, code, message = 403, "Sender", "AccessDenied", "Access Denied (injected)"
                xml = f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>injected</RequestId></ErrorResponse>"
            return self.reply(status, xml.encode(), [("Content-Type", "application/xml")])
        if mode == "drop":
            return self.drop()
        if mode == "delay":
            time.sleep(CONFIG["delay"])
        try:
            status, data, headers, length = self.forward(body)
        except OSError as e:
            return self.reply(502, str(e).encode())
        if mode == "drop_after":
            return self.drop()
        try:
            self.reply(status, data, headers, length)
        except OSError:
            pass  # the client gave up (timed out) meanwhile

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    global UPSTREAM
    UPSTREAM = int(sys.argv[1])
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
