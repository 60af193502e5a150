"""Tiny HTTP apps behind the simulated instances' mapped ports.

Every mapped port is a real listening socket on 127.0.0.1, so readiness probes in the bot are
real HTTP requests. All ports share one asyncio loop in a daemon thread, which keeps hundreds
of ports cheap to open and close. A port answers any path with 200 once its ``ready()``
callback says so, 503 before; a closed port refuses connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future

__all__ = ["AppPorts"]

_MAX_HEAD = 16 * 1024


class AppPorts:
    """Opens and closes app ports. Thread-safe; :meth:`open` never waits on the loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[int, Future[asyncio.Server]] = {}
        self._sockets: dict[int, socket.socket] = {}
        self._lock = threading.Lock()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="vast-sim-apps", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def open(self, ready: Callable[[], bool], title: str) -> int:
        """Listen on a free 127.0.0.1 port and return it. ``ready()`` decides 200 vs 503 per
        request (it must not block); ``title`` goes in the page."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        port: int = sock.getsockname()[1]

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                writer.close()
                return
            method = head.split(b" ", 1)[0].decode("latin-1", "replace")
            if ready():
                status, body = "200 OK", f"<html><body><h1>{title}</h1>ready</body></html>"
            else:
                status, body = "503 Service Unavailable", "starting"
            payload = body.encode()
            lines = [
                f"HTTP/1.1 {status}",
                "Content-Type: text/html; charset=utf-8",
                f"Content-Length: {len(payload)}",
                "Connection: close",
                "",
                "",
            ]
            writer.write("\r\n".join(lines).encode() + (b"" if method == "HEAD" else payload))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()

        async def serve() -> asyncio.Server:
            return await asyncio.start_server(handle, sock=sock, limit=_MAX_HEAD)

        with self._lock:
            loop = self._ensure_loop()
            self._servers[port] = asyncio.run_coroutine_threadsafe(serve(), loop)
            self._sockets[port] = sock
        return port

    def close(self, port: int) -> None:
        """Stop listening on ``port`` (connections are refused afterwards)."""
        with self._lock:
            future = self._servers.pop(port, None)
            sock = self._sockets.pop(port, None)
            loop = self._loop
        if future is None or loop is None:
            return
        closed = threading.Event()

        def _close_on_loop(server: asyncio.Server | None) -> None:
            if server is not None:
                server.close()
            if sock is not None:
                sock.close()
            closed.set()

        def _when_served(done: Future[asyncio.Server]) -> None:
            ok = not done.cancelled() and done.exception() is None
            loop.call_soon_threadsafe(_close_on_loop, done.result() if ok else None)

        future.add_done_callback(_when_served)
        closed.wait(timeout=2)

    def close_all(self) -> None:
        """Close every port and stop the loop thread."""
        with self._lock:
            ports = list(self._servers)
        for port in ports:
            self.close(port)
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=2)
            if not thread.is_alive():
                loop.close()

    @property
    def open_ports(self) -> list[int]:
        """Ports currently listening (or about to)."""
        with self._lock:
            return list(self._servers)
