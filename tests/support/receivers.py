"""A real HTTP receiver on loopback for the tests (a chat robot, an OSS bucket)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler], path: str = "") -> Iterator[str]:
    """Serves ``handler`` on 127.0.0.1 in a thread; yields its URL (``path`` appended)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
