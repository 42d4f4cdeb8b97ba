"""A local stand-in for healthchecks.io on 127.0.0.1: records every ping (method, path, query, body)
and answers 200, or the statuses queued in ``answers`` first (500 to make the runner retry, 404 ...)::

    with PingServer() as server:
        server.url("3f1c...")       http://127.0.0.1:<port>/3f1c...
        server.requests             [Ping(method, path, query, body), ...]
        server.answers.extend([500, 500])
"""

from __future__ import annotations

import dataclasses
import http.server
import threading
import urllib.parse

HOST = "127.0.0.1"


@dataclasses.dataclass
class Ping:
    method: str
    path: str
    query: dict
    body: str


class PingServer:
    def __init__(self):
        self.requests = []
        self.answers = []
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
                parts = urllib.parse.urlsplit(self.path)
                with server._lock:  # pylint: disable=protected-access
                    server.requests.append(Ping(self.command, parts.path, dict(urllib.parse.parse_qsl(parts.query)), body))
                    status = server.answers.pop(0) if server.answers else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format, *args):  # pylint: disable=redefined-builtin
                pass  # quiet: the tests read self.requests

        self._server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path):
        return f"http://{HOST}:{self.port}/{path.lstrip('/')}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
