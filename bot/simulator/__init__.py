"""A local Vast.ai simulator: same endpoints and JSON shapes, seeded offer stock, instances
that boot along a timeline with real app ports on 127.0.0.1, and fault injection.

Used by the test suite and by ``python -m bot`` when ``VAST_API_KEY`` is unset.
"""

from bot.simulator.clock import SimClock, Timeline
from bot.simulator.faults import ENDPOINTS, Fault
from bot.simulator.limits import DEFAULT_RATE_LIMITS
from bot.simulator.server import RecordedRequest, VastSimulator
from bot.simulator.stock import GPU_MODELS

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "ENDPOINTS",
    "GPU_MODELS",
    "Fault",
    "RecordedRequest",
    "SimClock",
    "Timeline",
    "VastSimulator",
]
