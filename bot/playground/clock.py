"""The playground's simulated clock: real time plus what the person advanced it by."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class PlaygroundClock:
    """The bot's "now" in the playground (``clock=`` of :func:`bot.runtime.build_runtime`):
    aware UTC real time plus :attr:`offset_seconds`, which only :meth:`advance` changes.
    Thread-safe."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset_seconds)

    @property
    def offset_seconds(self) -> float:
        """Seconds this clock is ahead of real time."""
        with self._lock:
            return self._offset

    def timestamp(self) -> float:
        """Epoch seconds of now."""
        return self().timestamp()

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds`` (>= 0; ValueError otherwise)."""
        if seconds < 0:
            raise ValueError("cannot go back in time")
        with self._lock:
            self._offset += seconds
