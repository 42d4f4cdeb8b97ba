"""A stand-in for healthchecks.io on app1 (127.0.0.1, host network): records every ping's method, path,
query and body as a JSON line in the file given, and answers 200. verify.yml reads the file."""

import http.server
import json
import sys
import urllib.parse

PORT, RECORDS = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
        parts = urllib.parse.urlsplit(self.path)
        with open(RECORDS, "a", encoding="utf-8") as records:
            records.write(json.dumps({"method": self.command, "path": parts.path, "query": parts.query, "body": body}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_HEAD = do_POST

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
