"""HTTP serving: Bolt's WSGI adapter behind waitress, plus ``GET /healthz``.

``POST /slack/events`` takes every Slack request (commands, interactivity, options, events).
waitress is a production WSGI server (threaded, pure Python); Bolt's own development server is
not used.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress.server import create_server

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"

HealthCheck = Callable[[], dict[str, bool]]


def make_wsgi_app(app: App, health: HealthCheck) -> WSGIApplication:
    """WSGI app: Slack requests go to Bolt; ``GET /healthz`` answers 200 when every check in
    ``health()`` (e.g. ``{"database": True, "scheduler": True}``) is true, else 503."""
    bolt = SlackRequestHandler(app, path=EVENTS_PATH)

    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == HEALTH_PATH and environ.get("REQUEST_METHOD") == "GET":
            checks = health()
            ok = all(checks.values())
            body = json.dumps({"ok": ok, **checks}).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(
                status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return bolt(environ, start_response)

    return wsgi


class BackgroundServer:
    """waitress serving ``wsgi_app`` on ``host:port`` in a daemon thread (``port=0``: a free one).

    Used by the tests and the benchmarks; ``python -m bot`` calls :func:`serve` instead.
    """

    def __init__(self, wsgi_app: Any, host: str = "127.0.0.1", port: int = 0, threads: int = 8):
        # A short loop timeout lets stop() return quickly (waitress polls its socket map).
        self._server: Any = create_server(
            wsgi_app, host=host, port=port, threads=threads, asyncore_loop_timeout=0.05
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="waitress")

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self._server.effective_host}:{self._server.effective_port}"

    def start(self) -> BackgroundServer:
        """Start serving; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (at most 5 seconds)."""
        from waitress import wasyncore

        # Close the sockets from inside the serving loop (waitress's trigger runs the thunk
        # there), so the loop never selects on a closed descriptor; then stop the workers.
        try:
            self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._server._map))
        except OSError:  # the trigger is already gone: close from here instead
            self._server.close()
        self._thread.join(timeout=5)
        self._server.task_dispatcher.shutdown()


def serve(wsgi_app: Any, *, port: int, host: str = "0.0.0.0", threads: int = 16) -> None:
    """Serve until interrupted (blocking)."""
    create_server(wsgi_app, host=host, port=port, threads=threads).run()
