"""Network front end: a real HTTP/1.1 server on loopback over a ``FakeAck`` backend or a ``FakeCloud``.

Threaded (one daemon thread per connection), keep-alive, quiet. Faults are carried
out on the socket: latency sleeps in the handler thread; a hang answers nothing and
closes the connection after ``hang_seconds`` (or when the server stops); a reset
writes the status line and part of the body, then closes with ``SO_LINGER 0`` (RST).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import traceback
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from . import wire
from .cloudwire import Served, answer

_LINGER_RST = struct.pack("ii", 1, 0)


class _Aborted(Exception):
    """The handler dropped the connection on purpose."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Tengine"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this long
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, add=False)

    def handle(self) -> None:
        self.close_connection = True
        try:
            self.handle_one_request()
            while not self.close_connection and not self.server.stopping.is_set():
                self.handle_one_request()
        except (_Aborted, OSError, ValueError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            served = answer(self.server.backend, self.command, self.path, self.headers.items(), body)
        except Exception as exc:  # a bug in the fake or in a test hook: say so, loudly
            traceback.print_exc()
            served = wire.error_response(
                500, "InternalError", f"fake ACK failure: {type(exc).__name__}: {exc}"
            )
        fault = served.fault
        stopping = self.server.stopping
        if fault.latency_seconds > 0 and stopping.wait(fault.latency_seconds):
            raise _Aborted
        if fault.kind == "hang":
            stopping.wait(fault.seconds)
            raise _Aborted
        if fault.kind == "reset" and not fault.reset_after_apply:
            self._reset()
        if fault.kind == "slow" and stopping.wait(fault.seconds):
            raise _Aborted
        head = self._head(served)
        if fault.kind == "reset":
            self.wfile.write(head + served.body[: len(served.body) // 2])
            self.wfile.flush()
            self._reset()
        self.wfile.write(head + served.body)

    def _head(self, served: wire.WireResponse) -> bytes:
        lines = [
            f"HTTP/1.1 {served.status} {served.reason}",
            f"Date: {formatdate(usegmt=True)}",
            f"Content-Length: {len(served.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in served.headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        else:
            lines.append("Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _reset(self) -> None:
        """Close the connection with a TCP RST and stop handling it."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            self.wfile.close()
            self.rfile.close()
            self.connection.close()
        except OSError:
            pass
        raise _Aborted

    do_GET = _answer
    do_DELETE = _answer
    do_POST = _answer
    do_PUT = _answer
    do_PATCH = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], backend: Served) -> None:
        self.backend = backend
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: object, client_address: object) -> None:
        return  # clients that go away are not the fake's problem


class _Server6(_Server):
    address_family = socket.AF_INET6


class FakeAckServer:
    """A real HTTP/1.1 server on loopback answering like ACK from a ``FakeAck`` backend, or like the
    whole cloud (ACK per account, STS and Resource Manager on the same port) from a ``FakeCloud``.

    ``with FakeAckServer(backend) as server: ... server.url`` (``http://127.0.0.1:PORT``).
    """

    def __init__(self, backend: Served, host: str = "127.0.0.1", port: int = 0) -> None:
        self.backend = backend
        self._address = (host, port)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._bound()[0]

    @property
    def port(self) -> int:
        return self._bound()[1]

    @property
    def url(self) -> str:
        host, port = self._bound()
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def _bound(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError("the fake ACK server is not started")
        address = self._server.server_address
        return str(address[0]), int(address[1])

    def start(self) -> FakeAckServer:
        """Bind and serve in a daemon thread."""
        if self._server is not None:
            return self
        host = self._address[0]
        server_class: type[_Server] = _Server6 if ":" in host else _Server
        self._server = server_class(self._address, self.backend)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-ack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: hung and keep-alive connections are closed."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeAckServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
