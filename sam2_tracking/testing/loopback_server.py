"""A real HTTP server on 127.0.0.1 serving one folder, with Range support, for testing downloads for real.

Python's http.server ignores Range headers, and our downloader resumes with them, so this handler implements
single byte ranges (RFC 9110 section 14). `cut_after_bytes` makes the server drop the connection part-way through a
response body, once per file, to exercise resume; `stall_after_bytes` makes it stop sending (connection kept open)
to exercise read timeouts and killed downloads; `omit_length` serves files without Content-Length (the body ends
when the connection closes), as some servers and proxies do.
"""

from __future__ import annotations

import os
import re
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    cut_after_bytes: dict[str, int] = {}  # per server, replaced in LoopbackServer.__init__
    stall_after_bytes: dict[str, int] = {}
    omit_length: set[str] = set()
    requests_seen: list[tuple[str, str | None]] = []
    closing: threading.Event

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.requests_seen.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        range_header = self.headers.get("Range")
        if range_header:
            match = _RANGE.match(range_header.strip())
            if not match or (match.group(1) == "" and match.group(2) == ""):
                self.send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                return
            if match.group(1) == "":
                start = max(0, size - int(match.group(2)))
            else:
                start = int(match.group(1))
                if match.group(2):
                    end = min(int(match.group(2)), size - 1)
            if start >= size or start > end:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            status = HTTPStatus.PARTIAL_CONTENT
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if self.path not in self.omit_length:
            self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        cut = self.cut_after_bytes.pop(self.path, None)
        stall = self.stall_after_bytes.get(self.path)
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining = length
            sent = 0
            while remaining > 0:
                chunk = handle.read(min(1 << 20, remaining))
                if not chunk:
                    break
                if stall is not None and sent + len(chunk) > stall:
                    self.wfile.write(chunk[: max(0, stall - sent)])
                    self.wfile.flush()
                    self.closing.wait(60)  # hold the connection open, sending nothing, until the server closes
                    self.close_connection = True
                    return
                if cut is not None and sent + len(chunk) > cut:
                    self.wfile.write(chunk[: max(0, cut - sent)])
                    self.wfile.flush()
                    self.close_connection = True
                    # Shut the socket so the client sees a truncated body, as when a network link drops.
                    self.connection.shutdown(2)
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
                remaining -= len(chunk)


class LoopbackServer:
    """Serve `root` at http://127.0.0.1:PORT/ in a background thread until close()."""

    def __init__(self, root: str | os.PathLike) -> None:
        handler_class = type(
            "Handler", (RangeRequestHandler,), {"cut_after_bytes": {}, "requests_seen": [], "stall_after_bytes": {},
                                                "omit_length": set(), "closing": threading.Event()}
        )
        self.handler_class = handler_class
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler_class, directory=str(root)))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def cut_next_response(self, url_path: str, after_bytes: int) -> None:
        """Drop the connection after `after_bytes` of the next GET of url_path (e.g. '/checkpoint.pt')."""
        self.handler_class.cut_after_bytes[url_path] = after_bytes

    def stall_responses(self, url_path: str, after_bytes: int) -> None:
        """Send only `after_bytes` of every GET of url_path, then nothing more until close() (or 60 s)."""
        self.handler_class.stall_after_bytes[url_path] = after_bytes

    def serve_without_length(self, url_path: str) -> None:
        """Serve url_path with no Content-Length header: the client cannot know the size in advance."""
        self.handler_class.omit_length.add(url_path)

    @property
    def requests_seen(self) -> list[tuple[str, str | None]]:
        return self.handler_class.requests_seen

    def close(self) -> None:
        self.handler_class.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
