"""A small threaded HTTP file server for tests, with Range support and faults on demand.

    with FaultyFileServer(directory) as server:
        server.drop_connection("big.bin", attempts=2, after=1000)  # first 2 GETs stop after 1000 body bytes
        server.not_found.add("gone.bin")                           # 404 even if the file exists
        server.corrupt.add("bad.bin")                              # served bytes differ from the file on disk
        server.ignore_range.add("plain.bin")                       # answers 200 with the whole file to Range requests
        server.no_length.add("big.bin")                            # no Content-Length: the body ends when the
                                                                   # connection closes
        server.partial_to_plain.add("big.bin")                     # a GET without Range gets 206, the first half
        server.wrong_range.add("big.bin")                          # a Range request gets 206 with the whole file,
                                                                   # labelled as the range asked for
        server.trickle["big.bin"] = 0.05                           # 1 KB pieces, this many seconds apart
        url = server.url("big.bin")
        sums = server.checksums("sha256")                          # published sums: of the files on disk
        server.requests                                            # [(path, Range header or None, status)]

Binds 127.0.0.1 on a free port; serves only files under the directory.
"""
import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlparse


class _Handler(BaseHTTPRequestHandler):
    server_version = "FaultyFileServer/1.0"

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def do_HEAD(self):  # noqa: N802
        self._serve(body=False)

    def do_GET(self):  # noqa: N802
        self._serve(body=True)

    def _reply(self, status, headers=(), payload=b"", body=True):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body and payload:
            self.wfile.write(payload)

    def _serve(self, body):
        owner = self.server.owner
        rel = unquote(urlparse(self.path).path).lstrip("/")
        range_header = self.headers.get("Range")
        data = owner.content(rel)
        if data is None:
            owner.record(rel, range_header, 404)
            self._reply(404, [("Content-Type", "text/plain")], b"not found\n", body)
            return
        start, end, status = 0, len(data), 200
        label = None  # the Content-Range start to claim, when it differs from start
        if not range_header and rel in owner.partial_to_plain:
            end, status = max(1, len(data) // 2), 206
        if range_header and rel not in owner.ignore_range:
            spec = range_header.strip()
            if spec.startswith("bytes=") and "," not in spec:
                first, _, last = spec[len("bytes="):].partition("-")
                if first.isdigit():
                    start = int(first)
                    end = min(len(data), int(last) + 1) if last.isdigit() else len(data)
                    if start >= len(data):
                        owner.record(rel, range_header, 416)
                        self._reply(416, [("Content-Range", f"bytes */{len(data)}")], b"", body)
                        return
                    status = 206
                    if rel in owner.wrong_range:
                        label, start = start, 0
        payload = data[start:end]
        drop_after = owner.take_drop(rel)
        owner.record(rel, range_header, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        if rel not in owner.no_length:
            self.send_header("Content-Length", str(len(payload)))
        if status == 206:
            first = start if label is None else label
            self.send_header("Content-Range", f"bytes {first}-{end - 1}/{len(data)}")
        self.end_headers()
        if not body:
            return
        pause = owner.trickle.get(rel)
        if pause is not None:
            try:
                for at in range(0, len(payload) if drop_after is None else drop_after, 1024):
                    self.wfile.write(payload[at: at + 1024])
                    self.wfile.flush()
                    time.sleep(pause)
            except OSError:  # the client gave up (its deadline)
                self.close_connection = True
            return
        if drop_after is None:
            self.wfile.write(payload)
            return
        self.wfile.write(payload[:drop_after])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class FaultyFileServer:
    """Threaded HTTP server on 127.0.0.1 serving a directory; see the module docstring."""

    def __init__(self, root):
        self.root = Path(root).resolve()
        self.not_found = set()
        self.corrupt = set()
        self.ignore_range = set()
        self.no_length = set()
        self.partial_to_plain = set()
        self.wrong_range = set()
        self.trickle = {}
        self.requests = []
        self._drops = {}  # path -> [attempts left, bytes to send before dropping]
        self._lock = threading.Lock()
        self._httpd = None
        self._thread = None

    # faults -----------------------------------------------------------------------------------------------------------
    def drop_connection(self, path, attempts=1, after=None):
        """The next ``attempts`` GETs of path send ``after`` body bytes (default: half) and then cut the connection."""
        with self._lock:
            self._drops[path] = [attempts, after]

    def take_drop(self, path):
        with self._lock:
            drop = self._drops.get(path)
            if not drop or drop[0] <= 0:
                return None
            drop[0] -= 1
            if drop[1] is None:
                return max(1, len(self.content(path) or b"") // 2)
            return drop[1]

    def record(self, path, range_header, status):
        with self._lock:
            self.requests.append((path, range_header, status))

    def requests_for(self, path):
        with self._lock:
            return [r for r in self.requests if r[0] == path]

    # content ----------------------------------------------------------------------------------------------------------
    def content(self, rel):
        """The bytes served for rel, or None for 404."""
        if rel in self.not_found:
            return None
        path = (self.root / rel).resolve()
        if self.root not in path.parents or not path.is_file():
            return None
        data = path.read_bytes()
        if rel in self.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data

    def checksums(self, algo="sha256"):
        """sha256sum-style text for every file under root, computed from the files on disk (the 'published' sums)."""
        lines = []
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            lines.append(f"{hashlib.new(algo, path.read_bytes()).hexdigest()}  {path.relative_to(self.root)}")
        return "\n".join(lines) + "\n"

    # lifecycle --------------------------------------------------------------------------------------------------------
    @property
    def port(self):
        return self._httpd.server_address[1]

    def url(self, rel):
        return f"http://127.0.0.1:{self.port}/{quote(rel)}"

    def start(self):
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="FaultyFileServer", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
