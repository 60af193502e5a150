"""TEMPORARY: replaced by the cost arithmetic itself once moved."""

from bot.services.costs import *  # noqa: F403
from bot.services.costs import (  # noqa: F401
    HOURS_PER_MONTH,
    CostReport,
    Period,
    cost_report,
    cost_so_far,
    current_rate,
    hours_left,
    month_window,
    periods_from_events,
)
