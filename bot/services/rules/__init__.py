"""The automatic rules: what the bot does on its own about a deployment, one module each.

A rule is a pure function ``check(dep, instance, policy, now, since=None) -> Action | None``
of the deployment row, its Vast.ai instance from this tick's list (None when not listed or
not read), the :class:`~bot.services.rules.policy.LifetimePolicy` and the time: no I/O, no
clock, no Slack. The :class:`~bot.services.rules.base.Action` it returns says what to do
(``warn``, ``ask``, ``stop``, ``destroy``, ``notify``, ``remind``, ``track``), why, in plain
words, and the time it promises the user. :class:`bot.services.rules.executor.RuleExecutor`
(called by :meth:`bot.services.lifetimes.LifetimeService.review` on every poller tick) claims
each action once, acts, tells the owner and the thread, and never acts before the time an
action says was announced. The deploy timeout (:mod:`.deploy_timeout`) is read by
:mod:`bot.services.states` and the reminders (``schedule="reminder"``) by
:mod:`bot.services.reminders`; they share the shapes, not the executor.

To add a rule:

1. Write ``bot/services/rules/<name>.py``: a docstring saying what the rule does and when,
   ``check`` as above, and ``RULE = Rule(name="<name>", check=check, …)``. Set
   ``needs_instance=True`` when it reads the instance (then it only judges rows this tick
   read), ``watch=`` a ``(dep, instance) -> bool`` condition when it needs to know since when
   that condition holds (the executor keeps the time in the ``claims`` table and passes it as
   ``since``). Derive every promised time from stored facts (a claim time, ``ends_at``), so
   what the owner was told and what the rule does agree after a restart.
2. Add ``<name>.RULE`` to :data:`RULES` below (order matters: after a stop or destroy the
   row's later rules wait for the next tick). That is the only registration.
3. Test ``check`` as plain functions (``tests/test_rules.py``), and the act once through the
   executor if it uses a new kind of action.
"""

from __future__ import annotations

from bot.services.rules import (
    deploy_timeout,
    exited_container,
    idle_question,
    idle_stop,
    idle_tracking,
    lifetime_expiry,
    lifetime_warning,
    long_running,
    stopped_reminder,
)
from bot.services.rules.base import Action, Rule
from bot.services.rules.policy import LifetimePolicy

__all__ = ["RULES", "Action", "LifetimePolicy", "Rule"]

#: Every automatic rule, in the order the executor applies them to a row.
RULES: tuple[Rule, ...] = (
    lifetime_expiry.RULE,
    lifetime_warning.RULE,
    exited_container.RULE,
    idle_tracking.RULE,
    idle_question.RULE,
    idle_stop.RULE,
    deploy_timeout.RULE,
    stopped_reminder.RULE,
    long_running.RULE,
)
