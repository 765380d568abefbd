"""A real HTTP server on 127.0.0.1 serving one folder, with Range support, for testing downloads for real.

Python's http.server ignores Range headers, and our downloader resumes with them, so this handler implements
single byte ranges (RFC 9110 section 14). `cut_after_bytes` makes the server drop the connection part-way through a
response body, once per file, to exercise resume.
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
    requests_seen: list[tuple[str, str | None]] = []

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
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        cut = self.cut_after_bytes.pop(self.path, None)
        with open(path, "rb") as handle:
            handle.seek(start)
            remaining = length
            sent = 0
            while remaining > 0:
                chunk = handle.read(min(1 << 20, remaining))
                if not chunk:
                    break
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
            "Handler", (RangeRequestHandler,), {"cut_after_bytes": {}, "requests_seen": []}
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

    @property
    def requests_seen(self) -> list[tuple[str, str | None]]:
        return self.handler_class.requests_seen

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
