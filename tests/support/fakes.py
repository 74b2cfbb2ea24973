"""Small stand-in binaries for failures a real llama-server cannot be made to show on cue."""

from __future__ import annotations

import sys
from pathlib import Path

NEVER_READY = r"""
import http.server, signal, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
IGNORE_TERM = {ignore_term}
if IGNORE_TERM:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{{"error":{{"code":503,"message":"Loading model","type":"unavailable_error"}}}}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        print("fake:", *a, flush=True)
print("fake llama-server loading model forever on", port, flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

NONSENSE = r"""
import sys
print("this is not llama-server: " + " ".join(sys.argv[1:]), flush=True)
sys.exit(3)
"""


def write_script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(0o755)
    return path


def never_ready_server(path: Path, ignore_term: bool = False) -> Path:
    return write_script(path, NEVER_READY.format(ignore_term=ignore_term))


def nonsense_binary(path: Path) -> Path:
    return write_script(path, NONSENSE)


HEALTHY_BUT_HUNG = r"""
import http.server, json, os, sys, threading
port = int(sys.argv[sys.argv.index("--port") + 1])
prefix = os.environ.get("LLAMA_ARG_API_PREFIX", "")  # as llama-server's --api-prefix
stuck = threading.Event()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == prefix + "/health":  # the HTTP thread still answers...
            body = json.dumps({"status": "ok"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:  # ...but every real request waits on a main loop that never comes back
            print("fake: request", self.path, "will never be answered", flush=True)
            stuck.wait()
    do_POST = do_GET
    def log_message(self, *a):
        pass
print("fake llama-server: /health answers, nothing else does; port", port, flush=True)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
srv.daemon_threads = True
srv.serve_forever()
"""


def healthy_but_hung_server(path: Path) -> Path:
    """Answers ``/health`` with ready, never answers a request: a hung main loop."""
    return write_script(path, HEALTHY_BUT_HUNG)
