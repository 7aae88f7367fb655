#!/usr/bin/env python3
"""A loopback stand-in for AWS Lambda, for end-to-end tests without Docker.

moto's Step Functions invoke Lambda at http://localhost:$MOTO_PORT. This router listens on that
port: Lambda Invoke calls are queued for a real function process (baton-lambda, talking to the
Lambda Runtime API served here too), and every other request is proxied to moto.

usage: lambda_router.py ROUTER_PORT MOTO_PORT [NAME=PORT ...]

Each NAME=PORT serves one more function: Invoke calls naming the function NAME (by name or
ARN) are queued for the process whose Lambda Runtime API is 127.0.0.1:PORT (so two functions
with different settings can run side by side); every other Invoke goes to the function whose
Runtime API is ROUTER_PORT.
"""
import http.client
import json
import queue
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INVOKE_PREFIX = "/2015-03-31/functions/"
RUNTIME_PREFIX = "/2018-06-01/runtime/"
QUEUES = {None: queue.Queue()}   # function name (None: the default) -> (request_id, payload)
results = {}                     # request_id -> (is_error, body bytes)
results_ready = threading.Condition()


def function_of(path):
    """The function an Invoke path names, when it is one with a queue of its own."""
    name = urllib.parse.unquote(path[len(INVOKE_PREFIX):].split("/")[0])
    name = name.split(":function:")[-1].split(":")[0]
    return name if name in QUEUES else None


class Router(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The function whose Runtime API this server is.
    function = None

    def log_message(self, fmt, *args):
        sys.stderr.write("router: " + fmt % args + "\n")

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith(RUNTIME_PREFIX + "invocation/next"):
            pending = QUEUES[self.function]
            request_id, payload = pending.get()
            deadline_ms = int((time.time() + 300) * 1000)
            try:
                self.reply(200, payload, {
                "Lambda-Runtime-Aws-Request-Id": request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:baton-tick",
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                "Content-Type": "application/json",
                })
            except OSError:
                # The function went away mid-poll: the event is not lost, the next poll gets it.
                pending.put((request_id, payload))
            return
        self.proxy()

    def do_POST(self):
        if self.path.startswith(INVOKE_PREFIX) and self.path.endswith("/invocations"):
            request_id = str(uuid.uuid4())
            QUEUES[function_of(self.path)].put((request_id, self.body() or b"{}"))
            with results_ready:
                results_ready.wait_for(lambda: request_id in results, timeout=330)
                is_error, body = results.pop(request_id, (True, b'{"errorType":"Router.Timeout","errorMessage":"no response"}'))
            headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
            if is_error:
                headers["X-Amz-Function-Error"] = "Unhandled"
            self.reply(200, body, headers)
            return
        if self.path.startswith(RUNTIME_PREFIX + "invocation/"):
            parts = self.path[len(RUNTIME_PREFIX + "invocation/"):].split("/")
            request_id, kind = parts[0], parts[1] if len(parts) > 1 else "response"
            body = self.body()
            with results_ready:
                results[request_id] = (kind == "error", body)
                results_ready.notify_all()
            self.reply(202, b"{}", {"Content-Type": "application/json"})
            return
        if self.path.startswith(RUNTIME_PREFIX + "init/error"):
            sys.stderr.write("router: function failed to start: %s\n" % self.body().decode(errors="replace"))
            self.reply(202, b"{}")
            return
        self.proxy()

    def do_PUT(self):
        self.proxy()

    def do_DELETE(self):
        self.proxy()

    def do_HEAD(self):
        self.proxy()

    def proxy(self):
        body = self.body()
        connection = http.client.HTTPConnection("127.0.0.1", MOTO_PORT, timeout=330)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        connection.close()


if __name__ == "__main__":
    ROUTER_PORT, MOTO_PORT = int(sys.argv[1]), int(sys.argv[2])
    for extra in sys.argv[3:]:
        name, port = extra.split("=")
        QUEUES[name] = queue.Queue()
        handler = type("Router_" + name.replace("-", "_"), (Router,), {"function": name})
        extra_server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
        extra_server.daemon_threads = True
        threading.Thread(target=extra_server.serve_forever, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", ROUTER_PORT), Router)
    server.daemon_threads = True
    server.serve_forever()
