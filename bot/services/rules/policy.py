"""The rules' configuration: :class:`LifetimePolicy` (lifetimes, idle GPUs, exited
containers) and :func:`gpu_percent`, shared by the rules, the picker and the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.config import Settings
from bot.formats import lifetime_label, mentions
from catalog import Template

#: The **Run for** choices in hours (the default and the maximum are added when missing).
STANDARD_LIFETIMES: tuple[float, ...] = (2, 4, 8, 24, 72, 168)


def gpu_percent(gpu_util: float | None) -> float | None:
    """Vast.ai's ``gpu_util`` as a percentage (0–100): a fraction (≤ 1, as the OpenAPI says) is
    multiplied by 100, a larger value is already a percentage. None (unknown) stays None."""
    if gpu_util is None or gpu_util < 0:
        return None
    return gpu_util * 100 if gpu_util <= 1 else gpu_util


@dataclass(frozen=True)
class LifetimePolicy:
    """The lifetime and idle rules from configuration (docs/USING.md › Lifetimes and reminders).

    Hours and minutes as in the variable names; ``on_expiry`` is ``stop`` or ``destroy``;
    ``exited_after``: how long a ready deployment's container may stay exited while Vast.ai
    still holds its GPU before the bot stops it (the disk is kept); ``deploy_timeout``:
    ``DEPLOY_TIMEOUT_MINUTES``; ``stopped_after``: ``STOPPED_REMINDER_DAYS``; ``long_run``: a
    ready deployment older than this gets the daily "still running" reminder.
    """

    default_hours: float = 8.0
    max_hours: float = 72.0
    allow_unlimited: bool = False
    warning: timedelta = timedelta(minutes=30)
    on_expiry: str = "stop"
    idle_percent: float = 5.0
    idle_after: timedelta = timedelta(minutes=60)
    idle_snooze: timedelta = timedelta(hours=4)
    idle_grace: timedelta = timedelta(minutes=30)
    exited_after: timedelta = timedelta(minutes=10)
    deploy_timeout: timedelta = timedelta(minutes=30)
    stopped_after: timedelta = timedelta(days=3)
    long_run: timedelta = timedelta(days=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> LifetimePolicy:
        """The policy of ``DEFAULT_LIFETIME_HOURS``, ``MAX_LIFETIME_HOURS``,
        ``ALLOW_UNLIMITED_LIFETIME``, ``LIFETIME_WARNING_MINUTES``, ``ON_EXPIRY``, the
        ``IDLE_*`` variables, ``DEPLOY_TIMEOUT_MINUTES`` and ``STOPPED_REMINDER_DAYS``."""
        return cls(
            default_hours=settings.default_lifetime_hours,
            max_hours=settings.max_lifetime_hours,
            allow_unlimited=settings.allow_unlimited_lifetime,
            warning=timedelta(minutes=settings.lifetime_warning_minutes),
            on_expiry=settings.on_expiry,
            idle_percent=settings.idle_gpu_percent,
            idle_after=timedelta(minutes=settings.idle_minutes),
            idle_snooze=timedelta(hours=settings.idle_snooze_hours),
            idle_grace=timedelta(minutes=settings.idle_grace_minutes),
            deploy_timeout=timedelta(minutes=settings.deploy_timeout_minutes),
            stopped_after=timedelta(days=settings.stopped_reminder_days),
        )

    def default_for(self, template: Template | None) -> float:
        """The preselected lifetime in hours: the template's own default, else
        ``DEFAULT_LIFETIME_HOURS``, never above ``MAX_LIFETIME_HOURS``."""
        hours = (template.default_lifetime_hours if template else None) or self.default_hours
        return min(float(hours), self.max_hours)

    def choices(self, template: Template | None, *, admin: bool) -> list[float | None]:
        """The **Run for** choices in hours, shortest first; None ("until I stop it") last when
        allowed. Choices past ``MAX_LIFETIME_HOURS`` only for admins."""
        hours = set(STANDARD_LIFETIMES) | {self.default_for(template), self.max_hours}
        if not admin:
            hours = {h for h in hours if h <= self.max_hours}
        result: list[float | None] = [float(h) for h in sorted(hours)]
        if self.allow_unlimited:
            result.append(None)
        return result

    def refusal(self, hours: float | None, *, admin: bool, admins: frozenset[str]) -> str | None:
        """Why ``hours`` may not be chosen (text for the picker's inline error), or None."""
        if hours is None:
            if self.allow_unlimited:
                return None
            return "Choose how long it runs: running until stopped is not enabled here."
        if hours <= 0:
            return "Choose how long it runs."
        if hours > self.max_hours and not admin:
            return f"Runs longer than {lifetime_label(self.max_hours)} need a bot admin" + (
                f" ({mentions(admins)})." if admins else " (none is configured: BOT_ADMINS)."
            )
        return None


def idle_reading(gpu_util: float | None, policy: LifetimePolicy, *, snoozed: bool) -> float | None:
    """The GPU use in percent when it counts as idle (below ``IDLE_GPU_PERCENT``), else None:
    busy, unknown (``gpu_util`` missing or null), or idle checks paused (``snoozed``)."""
    util = gpu_percent(gpu_util)
    if snoozed or util is None or util >= policy.idle_percent:
        return None
    return util
