"""A fake Slack Socket Mode endpoint on 127.0.0.1: a plain ``ws://`` WebSocket server (RFC 6455,
enough of it for slack_sdk's built-in client) plus :class:`SocketSlack`, the fake Web API whose
``apps.connections.open`` hands out its URL.

What it does as Slack does: a ``hello`` message on connect, a pong for every ping (with the
ping's payload, which the client checks), envelopes sent as text frames and the client's acks
(``{"envelope_id": …}``) recorded. For faults: :meth:`FakeSocketMode.drop` closes every
connection (a close frame, as Slack does before it moves a client) and, with ``refuse=True``,
refuses new handshakes until :meth:`FakeSocketMode.allow`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from typing import Any

from bot.playground.slack_api import FakeSlack

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


def _frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (unmasked, final)."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([127]) + struct.pack("!Q", len(payload))
    return head + payload


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One client frame (masked): ``(opcode, payload)``."""
    first, second = _read_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", _read_exact(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exact(sock, 8))
    mask = _read_exact(sock, 4) if second & 0x80 else b"\0\0\0\0"
    data = _read_exact(sock, length)
    return first & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class FakeSocketMode:
    """The WebSocket side of Socket Mode (see the module docstring); ``url`` is what
    ``apps.connections.open`` answers."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Condition()
        self._open: list[socket.socket] = []
        self.refusing = False
        self.handshakes = 0
        """Accepted WebSocket handshakes (one per connection, reconnections included)."""
        self.refused = 0
        self.received: list[dict[str, Any]] = []
        """Text messages from the client (acks), in order."""
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True, name="fake-socket")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._server.getsockname()[1]}/link/?ticket=test"

    def start(self) -> FakeSocketMode:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closed = True
        self._server.close()
        self.drop()

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and traffic --------------------------------------------------------------------

    def drop(self, *, refuse: bool = False) -> None:
        """Close every open connection with a close frame (1001, going away); with
        ``refuse``, refuse new handshakes until :meth:`allow`."""
        with self._lock:
            self.refusing = self.refusing or refuse
            conns, self._open = self._open, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sendall(_frame(CLOSE, struct.pack("!H", 1001) + b"going away"))
            conn.close()

    def allow(self) -> None:
        """Accept handshakes again."""
        with self._lock:
            self.refusing = False

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._open)

    def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` (an envelope) as a text frame to every open connection."""
        data = _frame(TEXT, json.dumps(message).encode())
        with self._lock:
            for conn in self._open:
                conn.sendall(data)

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The client's answer to envelope ``envelope_id``."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for message in self.received:
                    if message.get("envelope_id") == envelope_id:
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no ack for {envelope_id} within {timeout}s")
                self._lock.wait(remaining)

    # -- server ----------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    conn.close()
                    return
                request += chunk
            with self._lock:
                if self.refusing:
                    self.refused += 1
                    conn.close()  # as a host that is down: no handshake answer
                    return
            headers = {}
            for line in request.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            key = headers["sec-websocket-key"]
            accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            conn.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            hello = {"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}}
            conn.sendall(_frame(TEXT, json.dumps(hello).encode()))
            with self._lock:
                self._open.append(conn)
                self.handshakes += 1
                self._lock.notify_all()
            while True:
                opcode, payload = _read_frame(conn)
                if opcode == PING:
                    conn.sendall(_frame(PONG, payload))
                elif opcode == TEXT:
                    with self._lock:
                        self.received.append(json.loads(payload))
                        self._lock.notify_all()
                elif opcode == CLOSE:
                    break
        except (OSError, ConnectionError, KeyError, ValueError):
            pass
        finally:
            with self._lock:
                if conn in self._open:
                    self._open.remove(conn)
            conn.close()


class SocketSlack(FakeSlack):
    """The fake Web API, whose ``apps.connections.open`` answers ``socket``'s URL."""

    def __init__(self, socket_mode: FakeSocketMode) -> None:
        super().__init__()
        self.socket_mode = socket_mode

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open":
            return {"ok": True, "url": self.socket_mode.url}
        return super()._answer(method, args)
