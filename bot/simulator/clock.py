"""Timeline of an instance's boot, and the simulator clock (real time plus manual advances)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

__all__ = ["SimClock", "Timeline"]


@dataclass(frozen=True)
class Timeline:
    """Seconds after create (or start) at which an instance reaches each stage.

    ``actual_status`` is null before ``created_after``, ``"created"`` until ``loading_after``,
    ``"loading"`` until ``running_after``, then ``"running"`` (ports mapped). The app on its
    ports answers 503 until ``app_ready_after``, then 200. The default is the short-but-real
    timeline used by ``python -m bot`` against the simulator.
    """

    created_after: float = 0.0
    loading_after: float = 2.0
    running_after: float = 8.0
    app_ready_after: float = 12.0

    def __post_init__(self) -> None:
        stages = (self.created_after, self.loading_after, self.running_after, self.app_ready_after)
        if any(b < a for a, b in zip(stages, stages[1:], strict=False)) or stages[0] < 0:
            raise ValueError("Timeline stages must be >= 0 and non-decreasing")

    @classmethod
    def instant(cls) -> Timeline:
        """Everything at once: running and app-ready immediately after create."""
        return cls(0.0, 0.0, 0.0, 0.0)


class SimClock:
    """Monotonic seconds for the simulator: real time (unless ``frozen``) plus :meth:`advance`.

    With ``frozen=True`` time moves only through :meth:`advance`, which makes tests exact.
    ``wall()`` gives matching epoch seconds (for ``start_date``).
    """

    def __init__(self, *, frozen: bool = False) -> None:
        self.frozen = frozen
        self._mono0 = time.monotonic()
        self._wall0 = time.time()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds on the simulator's monotonic scale."""
        with self._lock:
            base = self._mono0 if self.frozen else time.monotonic()
            return base + self._offset

    def wall(self) -> float:
        """Epoch seconds corresponding to :meth:`now`."""
        return self._wall0 + (self.now() - self._mono0)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError("cannot go back in time")
        with self._lock:
            self._offset += seconds
