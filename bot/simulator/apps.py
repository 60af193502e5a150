"""Tiny HTTP apps behind the simulated instances' mapped ports.

Every mapped port is a real listening socket on 127.0.0.1, so readiness probes in the bot are
real HTTP requests. All ports share one asyncio loop in a daemon thread, which keeps hundreds
of ports cheap to open and close. A port answers any path with 200 once its ``ready()``
callback says so, 503 before; a closed port refuses connections.

A port opened with ``tls=True`` speaks only TLS, with a self-signed certificate made once per
:class:`AppPorts` (as Vast.ai's base image serves its web ports with ``ENABLE_HTTPS=true`` when
Vast.ai's console cannot sign: github.com/vast-ai/base-image,
ROOT/etc/vast_boot.d/55-tls-cert-gen.sh).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

__all__ = ["AppPorts"]

_MAX_HEAD = 16 * 1024


def _self_signed_context() -> ssl.SSLContext:
    """A server context with a fresh self-signed EC certificate for 127.0.0.1 (a day long)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vast-simulator")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(cert_path, key_path)
    return context


class AppPorts:
    """Opens and closes app ports. Thread-safe; :meth:`open` never waits on the loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[int, Future[asyncio.Server]] = {}
        self._sockets: dict[int, socket.socket] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None

    def _tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._tls is None:
                self._tls = _self_signed_context()
            return self._tls

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="vast-sim-apps", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def open(self, ready: Callable[[], bool], title: str, *, tls: bool = False) -> int:
        """Listen on a free 127.0.0.1 port and return it. ``ready()`` decides 200 vs 503 per
        request (it must not block); ``title`` goes in the page; ``tls``: the port speaks TLS
        only (self-signed certificate)."""
        context = self._tls_context() if tls else None
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
            return await asyncio.start_server(handle, sock=sock, limit=_MAX_HEAD, ssl=context)

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
