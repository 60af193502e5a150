"""Managing deployments: stop, start, destroy (with permissions), listings, costs, credit,
and the App Home.

Every action is decided once in the database before Vast.ai is called, so a double click (or
two processes) sends one request:

* **Stop**: ``ready → stopped`` by a conditional :func:`storage.update_status` (the claim),
  then ``PUT {"state": "stopped"}``. If Vast.ai refuses, the row goes back to ``ready``.
* **Destroy**: ``provisioning|ready|stopped → destroyed`` by a conditional update, then
  ``DELETE``. If Vast.ai refuses, the row goes back to its previous status and the user is
  told the instance still bills. (A crash between the claim and the call leaves a live
  instance under a ``destroyed`` row: the poller's orphan sweep has to catch it.)
* **Start**: the row stays ``stopped`` — the status poller follows ``stopped`` deployments and
  moves them to ``ready`` once Vast.ai runs the instance and the app answers
  (:mod:`bot.services.states`), and would fail a ``provisioning`` row that is older than
  ``DEPLOY_TIMEOUT_MINUTES``. The claim is a lease ``deployment-start:<id>`` held for
  :data:`START_CLAIM_SECONDS` (released when Vast.ai refuses, so the user can retry).

Vast.ai facts (vast-api.md §5, from vast-ai/docs ``manage_instance.yaml``, ``hello-world.mdx``,
``troubleshooting.mdx``): stop keeps billing storage; start needs the *same* GPU and waits in
"scheduling" with no time limit when someone else rented it; destroy is irreversible and a 404
means already gone.

Only the requester or a ``BOT_ADMINS`` member may act (:func:`can_manage`). Every outcome is
recorded in the event log with the Slack user id as actor. Network calls never run inside a
database transaction (each storage call is its own short transaction).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.blocks import home as home_blocks
from bot.blocks import manage as blocks
from bot.blocks import notify
from bot.blocks.status import format_duration, status_message
from bot.services import costs
from bot.services.context import Services
from bot.vast.errors import (
    AuthError,
    InsufficientCredit,
    NotFound,
    RateLimited,
    Unreachable,
    VastError,
)
from storage import (
    LIVE_STATUSES,
    DeploymentRecord,
    acquire_lease,
    add_event,
    get_deployment,
    get_lease,
    list_by_status,
    list_events,
    list_for_team,
    list_for_user,
    release_lease,
    update_status,
    utcnow,
)

logger = logging.getLogger(__name__)

STOP, START, DESTROY = "stop", "start", "destroy"
DESTROYABLE = ("provisioning", "ready", "stopped")
START_CLAIM_SECONDS = 300.0
"""How long a Start click blocks further Start clicks (and their Vast.ai requests)."""
RECENT_ENDED = timedelta(days=7)
"""``/templates mine`` also lists deployments that ended this recently."""
CREDIT_CACHE_SECONDS = 60.0
WARN_BELOW_HOURS = 1.0

CREDENTIALS = "credentials"
_VERBS = {STOP: "stop", START: "start", DESTROY: "destroy", CREDENTIALS: "get the login of"}


@dataclass(frozen=True)
class Outcome:
    """Result of a stop/start/destroy request.

    ``kind``: ``done`` (Vast.ai accepted), ``already`` (nothing to do: someone did it already,
    no request sent), ``refused`` (not allowed), ``invalid`` (not possible in this state),
    ``failed`` (Vast.ai refused; the row was put back), ``not_found`` (no such deployment).
    ``message`` is mrkdwn for the person who clicked. ``deployment`` is the row afterwards.
    """

    kind: str
    message: str
    deployment: DeploymentRecord | None = None

    @property
    def changed(self) -> bool:
        """True when the deployment changed (status message and Home need a redraw)."""
        return self.kind == "done" or (self.kind == "failed" and self.deployment is not None)


# --- permissions ------------------------------------------------------------------------


def can_manage(services: Services, dep: DeploymentRecord, user_id: str) -> bool:
    """True for the requester of ``dep`` and for ``BOT_ADMINS`` members."""
    return user_id == dep.user_id or services.is_admin(user_id)


def who_can(services: Services, dep: DeploymentRecord, action: str) -> str:
    """The refusal text: who may ``action`` this deployment."""
    verb = _VERBS.get(action, action)
    admins = services.settings.bot_admins
    what = f"*{dep.template_name}* (#{dep.id})"
    if admins:
        return (
            f":no_entry: Only <@{dep.user_id}>, who deployed {what}, or a bot admin "
            f"({blocks.mentions(admins)}) can {verb} it. Ask one of them."
        )
    return (
        f":no_entry: Only <@{dep.user_id}>, who deployed {what}, can {verb} it. "
        "(No bot admins are configured; an operator can add some with `BOT_ADMINS`.)"
    )


# --- actions ----------------------------------------------------------------------------


def perform(
    services: Services, action: str, deployment_id: int, actor: str, *, now: datetime | None = None
) -> Outcome:
    """Run ``action`` (``stop``/``start``/``destroy``) on ``deployment_id`` for Slack user
    ``actor``, then redraw the status message, reply in its thread and refresh the owner's
    Home tab when something changed. Never raises for Vast.ai or Slack errors."""
    runners: dict[str, Callable[[Services, int, str, datetime | None], Outcome]] = {
        STOP: stop_deployment,
        START: start_deployment,
        DESTROY: destroy_deployment,
    }
    runner = runners.get(action)
    if runner is None:
        return Outcome("invalid", f"Unknown action {action!r}.")
    outcome = runner(services, deployment_id, actor, now)
    if outcome.changed and outcome.deployment is not None:
        publish_change(services, outcome.deployment, action, actor, outcome)
    return outcome


def send_credentials(
    services: Services, deployment_id: int, actor: str, *, now: datetime | None = None
) -> Outcome:
    """DM ``actor`` the login of a ready deployment (its generated password, URLs, SSH), when
    ``actor`` is its requester or a ``BOT_ADMINS`` member; recorded in the event log. Secrets
    only ever go by DM. Never raises for Slack errors."""
    dep, refused = _load(services, deployment_id, actor, CREDENTIALS)
    if refused is not None:
        return refused
    assert dep is not None
    template = services.catalog.get(dep.template_slug)
    payload = notify.secrets_dm(dep, template) if dep.status == "ready" else None
    if payload is None:
        return Outcome("invalid", "There is no login to send: the deployment is not ready.", dep)
    try:
        sent = services.notifier.dm(actor, payload["text"], payload["blocks"])
    except Exception:
        logger.warning("login DM for deployment %d failed", dep.id, exc_info=True)
        sent = None
    if sent is None:
        return Outcome("failed", "I could not DM you the login; please try again.", dep)
    add_event(services.session_factory, dep.id, actor, "credentials_sent", None, now=now)
    return Outcome("done", f"I sent you the login of *{dep.template_name}* by DM.", dep)


def _load(
    services: Services, deployment_id: int, actor: str, action: str
) -> tuple[DeploymentRecord | None, Outcome | None]:
    dep = get_deployment(services.session_factory, deployment_id)
    if dep is None:
        return None, Outcome("not_found", "That deployment no longer exists in the bot.")
    if not can_manage(services, dep, actor):
        add_event(services.session_factory, dep.id, actor, f"{action}_refused", "not allowed")
        return dep, Outcome("refused", who_can(services, dep, action), dep)
    return dep, None


def _ended_text(dep: DeploymentRecord) -> str:
    return f"*{dep.template_name}* (#{dep.id}) has already ended ({dep.status})."


def _vast_failed(
    services: Services, dep: DeploymentRecord, actor: str, action: str, error: VastError
) -> None:
    logger.warning("%s of deployment %s failed: %s", action, dep.id, error)
    add_event(services.session_factory, dep.id, actor, f"{action}_failed", str(error)[:500])


def _instance_gone(
    services: Services, dep: DeploymentRecord, actor: str, action: str, now: datetime | None
) -> Outcome:
    reason = (
        "The Vast.ai instance no longer exists (destroyed outside the bot, or the host removed "
        "it), so nothing bills any more. Deploy again if you still need it."
    )
    sf = services.session_factory
    add_event(sf, dep.id, actor, f"{action}_failed", "instance not found")
    current = get_deployment(sf, dep.id)
    if current is not None and not current.is_final:  # as the poller does: gone = destroyed
        update_status(
            sf,
            dep.id,
            expected_status=current.status,
            new_status="destroyed",
            now=now,
            reason=reason,
        )
    return Outcome("failed", f":x: {reason}", get_deployment(sf, dep.id))


def stop_deployment(
    services: Services, deployment_id: int, actor: str, now: datetime | None = None
) -> Outcome:
    """Stop a ``ready`` deployment (claim ``ready → stopped``, then ``PUT state=stopped``).

    Vast.ai stops GPU billing; the disk keeps billing (vast-api.md §5).
    """
    sf = services.session_factory
    dep, refusal = _load(services, deployment_id, actor, STOP)
    if refusal is not None:
        return refusal
    assert dep is not None  # _load returns one or the other
    if dep.status == "stopped":
        return Outcome("already", f"*{dep.template_name}* (#{dep.id}) is already stopped.", dep)
    if dep.is_final:
        return Outcome("invalid", _ended_text(dep), dep)
    if dep.status != "ready" or dep.instance_id is None:
        return Outcome(
            "invalid",
            f"*{dep.template_name}* (#{dep.id}) is {dep.status}: only a ready deployment can be "
            "stopped. Destroy it instead if you no longer need it.",
            dep,
        )
    claimed = update_status(
        sf, dep.id, expected_status="ready", new_status="stopped", actor=actor, now=now
    )
    if not claimed:
        return _lost_claim(services, dep.id, "stopped", STOP)
    try:
        services.vast.stop_instance(dep.instance_id)
    except NotFound:
        return _instance_gone(services, dep, actor, STOP, now)
    except VastError as error:
        _vast_failed(services, dep, actor, STOP, error)
        update_status(sf, dep.id, expected_status="stopped", new_status="ready", now=now)
        return Outcome(
            "failed",
            f":x: Vast.ai did not stop *{dep.template_name}* (#{dep.id}): {error.user_message} "
            "It is still running and billing.",
            get_deployment(sf, dep.id),
        )
    add_event(sf, dep.id, actor, STOP, f"instance {dep.instance_id}")
    after = get_deployment(sf, dep.id) or dep
    storage_rate = blocks.money(costs.current_rate(after))
    return Outcome(
        "done",
        f":double_vertical_bar: Stopped *{dep.template_name}* (#{dep.id}). The GPU is released "
        f"and no longer bills; the disk still bills (~{storage_rate}/h). *Start* gets the same "
        "GPU back if nobody rented it meanwhile; *Destroy* ends all billing.",
        after,
    )


def _lost_claim(services: Services, deployment_id: int, target: str, action: str) -> Outcome:
    """Another click or process moved the row first: say what it is now."""
    dep = get_deployment(services.session_factory, deployment_id)
    if dep is None:
        return Outcome("not_found", "That deployment no longer exists in the bot.")
    if dep.status == target:
        return Outcome(
            "already", f"*{dep.template_name}* (#{dep.id}) is already {dep.status}.", dep
        )
    return Outcome(
        "invalid",
        f"*{dep.template_name}* (#{dep.id}) changed meanwhile: it is {dep.status} now, so I "
        f"did not {_VERBS[action]} it.",
        dep,
    )


def start_claim_name(deployment_id: int) -> str:
    """Lease name that makes one Start click at a time win: ``deployment-start:<id>``."""
    return f"deployment-start:{deployment_id}"


def start_deployment(
    services: Services, deployment_id: int, actor: str, now: datetime | None = None
) -> Outcome:
    """Start a ``stopped`` deployment again (``PUT state=running``); the row stays ``stopped``
    until the poller sees the app answer, then it becomes ``ready``.

    Claimed with the lease :func:`start_claim_name` for :data:`START_CLAIM_SECONDS`. When
    Vast.ai refuses, the lease is released and the user is told plainly — most often the GPU
    was rented by someone else while the instance was stopped.
    """
    sf = services.session_factory
    dep, refusal = _load(services, deployment_id, actor, START)
    if refusal is not None:
        return refusal
    assert dep is not None  # _load returns one or the other
    if dep.status in ("creating", "provisioning", "ready"):
        return Outcome(
            "already", f"*{dep.template_name}* (#{dep.id}) is already {dep.status}.", dep
        )
    if dep.is_final or dep.instance_id is None:
        return Outcome("invalid", _ended_text(dep), dep)
    name = start_claim_name(dep.id)
    holder = f"{actor}:{uuid.uuid4().hex}"
    if not acquire_lease(sf, name, holder, START_CLAIM_SECONDS, now=now):
        lease = get_lease(sf, name)
        who = f" by <@{lease.holder.split(':', 1)[0]}>" if lease else ""
        return Outcome(
            "already",
            f"*{dep.template_name}* (#{dep.id}) is already starting (requested{who}). "
            "The status message turns *Ready* when the app answers.",
            dep,
        )
    try:
        services.vast.start_instance(dep.instance_id)
    except NotFound:
        release_lease(sf, name, holder)
        return _instance_gone(services, dep, actor, START, now)
    except VastError as error:
        release_lease(sf, name, holder)
        _vast_failed(services, dep, actor, START, error)
        return Outcome("failed", start_failure_text(dep, error), get_deployment(sf, dep.id))
    add_event(sf, dep.id, actor, START, f"instance {dep.instance_id}")
    return Outcome(
        "done",
        f":arrow_forward: Starting *{dep.template_name}* (#{dep.id}) again on the same GPU. "
        "The status message turns *Ready* when the app answers. If the GPU was rented by "
        "someone else while it was stopped, Vast.ai keeps it waiting with no time limit: if it "
        "is not back within a few minutes, destroy it and deploy again on another GPU.",
        get_deployment(sf, dep.id),
    )


def start_failure_text(dep: DeploymentRecord, error: VastError) -> str:
    """What to tell the user when Vast.ai refuses to start ``dep``.

    Credit, key, rate-limit and network errors have their own advice; any other refusal is
    most likely the GPU being rented by someone else (vast-api.md §5, troubleshooting.mdx).
    """
    what = f"*{dep.template_name}* (#{dep.id})"
    if isinstance(error, InsufficientCredit | AuthError | RateLimited | Unreachable):
        return f":x: Vast.ai did not start {what}: {error.user_message} It is still stopped."
    detail = error.message.split(": ", 1)[-1] if error.message else ""
    return (
        f":x: Vast.ai could not start {what}: the GPU it ran on is most likely rented by "
        "someone else now, and a stopped instance can only restart on its own GPU. Its disk "
        "is kept (and still bills): try *Start* again later, or *Destroy* it and deploy again "
        f"to get another GPU.\n> Vast.ai said: {detail[:300] or 'no details'}"
    )


def destroy_deployment(
    services: Services, deployment_id: int, actor: str, now: datetime | None = None
) -> Outcome:
    """Destroy the instance of a ``provisioning``/``ready``/``stopped`` deployment (claim
    ``→ destroyed``, then ``DELETE``; a 404 means already gone and counts as done)."""
    sf = services.session_factory
    dep, refusal = _load(services, deployment_id, actor, DESTROY)
    if refusal is not None:
        return refusal
    assert dep is not None  # _load returns one or the other
    for _ in range(3):  # the poller may move it (e.g. provisioning → ready) between read and claim
        if dep.status == "destroyed":
            return Outcome(
                "already", f"*{dep.template_name}* (#{dep.id}) is already destroyed.", dep
            )
        if dep.is_final:
            return Outcome("invalid", _ended_text(dep), dep)
        if dep.status not in DESTROYABLE or dep.instance_id is None:
            return Outcome(
                "invalid",
                f"*{dep.template_name}* (#{dep.id}) is still being created on Vast.ai; try again "
                "in a moment.",
                dep,
            )
        previous = dep
        claimed = update_status(
            sf,
            dep.id,
            expected_status=dep.status,
            new_status="destroyed",
            actor=actor,
            now=now,
            reason=f"Destroyed from Slack by <@{actor}>.",
        )
        if claimed:
            break
        dep = get_deployment(sf, deployment_id)
        if dep is None:
            return Outcome("not_found", "That deployment no longer exists in the bot.")
    else:
        return Outcome("invalid", "The deployment keeps changing; try again in a moment.", dep)
    instance_id = previous.instance_id
    assert instance_id is not None
    try:
        existed = services.vast.destroy_instance(instance_id)
    except VastError as error:
        _vast_failed(services, previous, actor, DESTROY, error)
        update_status(
            sf,
            previous.id,
            expected_status="destroyed",
            new_status=previous.status,
            now=now,
            reason=previous.reason,
        )
        return Outcome(
            "failed",
            f":x: Vast.ai did not destroy *{previous.template_name}* (#{previous.id}): "
            f"{error.user_message} *It still exists and bills*: press *Destroy* again, or "
            "destroy it in the Vast.ai console.",
            get_deployment(sf, previous.id),
        )
    add_event(
        sf,
        previous.id,
        actor,
        DESTROY,
        f"instance {instance_id}" + ("" if existed else " (already gone on Vast.ai)"),
    )
    after = get_deployment(sf, previous.id) or previous
    total = blocks.money(costs.cost_so_far(after, now or utcnow()))
    return Outcome(
        "done",
        f":wastebasket: Destroyed *{previous.template_name}* (#{previous.id}): the instance and "
        f"its disk are gone and billing has stopped. Total cost: {total}.",
        after,
    )


# --- Slack side effects -----------------------------------------------------------------


def status_payload(
    services: Services, dep: DeploymentRecord, now: datetime, note: str | None = None
) -> dict[str, Any]:
    """The status message of ``dep`` (``bot.blocks.status.status_message``), with ``note``
    (e.g. "starting again") as an extra context line."""
    payload = status_message(dep, services.catalog.get(dep.template_slug), now=now)
    if note:
        payload["blocks"].append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}
        )
    return payload


def update_status_message(
    services: Services, dep: DeploymentRecord, *, note: str | None = None
) -> bool:
    """``chat.update`` the deployment's status message; False when there is none or Slack
    refused (logged, never raised)."""
    if not dep.message_channel or not dep.message_ts or services.notifier is None:
        return False
    try:
        return bool(
            services.notifier.update(
                dep.message_channel, dep.message_ts, status_payload(services, dep, utcnow(), note)
            )
        )
    except SlackApiError as error:
        logger.warning("status message of %s not updated: %s", dep.id, error.response.get("error"))
        return False


_THREAD_TEXT = {
    STOP: ":double_vertical_bar: <@{actor}> stopped it: the GPU is released, the disk still bills.",
    START: ":arrow_forward: <@{actor}> started it again; this message turns Ready when the app "
    "answers.",
    DESTROY: ":wastebasket: <@{actor}> destroyed it. Total cost {cost}.",
}


def publish_change(
    services: Services, dep: DeploymentRecord, action: str, actor: str, outcome: Outcome
) -> None:
    """After an action: redraw the status message, say who did what in its thread (the
    channel's audit trail), and refresh the owner's Home tab. Slack errors are logged."""
    now = utcnow()
    note = None
    if action == START and outcome.kind == "done":
        note = f":arrow_forward: Starting again (requested by <@{actor}> {now:%H:%M} UTC)…"
    update_status_message(services, dep, note=note)
    if outcome.kind == "done" and dep.message_channel and dep.message_ts and services.notifier:
        text = _THREAD_TEXT[action].format(
            actor=actor, cost=blocks.money(costs.cost_so_far(dep, now))
        )
        try:
            services.notifier.reply(dep.message_channel, dep.message_ts, text)
        except SlackApiError as error:
            logger.warning("thread reply for %s failed: %s", dep.id, error.response.get("error"))
    refresh_home(services, dep.user_id, team_id=dep.team_id)


# --- listings, costs, credit ------------------------------------------------------------


def _newest_first(deps: Iterable[DeploymentRecord]) -> list[DeploymentRecord]:
    return sorted(deps, key=lambda d: (d.created_at, d.id), reverse=True)


def list_mine(
    services: Services, team_id: str, user_id: str, now: datetime
) -> list[DeploymentRecord]:
    """The user's live deployments (newest first), then those ended in the last
    :data:`RECENT_ENDED` (newest first)."""
    deps = list_for_user(services.session_factory, team_id, user_id)
    live = [d for d in deps if d.status in LIVE_STATUSES]
    ended = [
        d
        for d in deps
        if d.status not in LIVE_STATUSES and now - d.last_state_change_at <= RECENT_ENDED
    ]
    return _newest_first(live) + _newest_first(ended)


def list_running(services: Services, team_id: str) -> list[DeploymentRecord]:
    """The workspace's live deployments (creating, provisioning, ready, stopped), newest
    first."""
    return _newest_first(list_for_team(services.session_factory, team_id, LIVE_STATUSES))


def listing_payload(
    services: Services,
    kind: str,
    *,
    team_id: str,
    user_id: str,
    page: int = 0,
    team_domain: str | None = None,
    notice: str | None = None,
) -> dict[str, Any]:
    """The ``/templates mine|running`` message (``bot.blocks.manage.deployment_list_message``)
    as seen by ``user_id`` (buttons only on deployments they may manage)."""
    now = utcnow()
    if kind == blocks.LIST_RUNNING:
        deps = list_running(services, team_id)
    else:
        deps = list_mine(services, team_id, user_id, now)
    return blocks.deployment_list_message(
        kind,
        deps,
        now=now,
        can_manage=lambda dep: can_manage(services, dep, user_id),
        page=page,
        team_domain=team_domain,
        notice=notice,
    )


def month_report(services: Services, team_id: str, now: datetime) -> costs.CostReport:
    """The workspace's spend this month (UTC) up to ``now``: :func:`bot.services.costs.
    cost_report` over its deployments, reading the event log only for deployments that began
    before the month."""
    start, end = costs.month_window(now)
    sf = services.session_factory

    def periods_for(dep: DeploymentRecord) -> list[costs.Period]:
        return costs.periods_from_events(dep, list_events(sf, dep.id), now)

    return costs.cost_report(
        list_for_team(sf, team_id), start=start, end=end, now=now, periods_for=periods_for
    )


def costs_payload(services: Services, team_id: str, user_id: str) -> dict[str, Any]:
    """The ``/templates costs`` message for ``user_id``."""
    return blocks.costs_message(month_report(services, team_id, utcnow()), viewer=user_id)


class CreditCache:
    """The Vast.ai credit ($, ``GET /api/v0/users/current/`` field ``credit``, vast-api.md §5),
    cached for ``ttl`` seconds so the picker stays fast. Thread-safe; :meth:`get` raises
    ``VastError`` when Vast.ai cannot be read and nothing fresh is cached."""

    def __init__(
        self,
        fetch: Callable[[], float],
        ttl: float = CREDIT_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._value: float | None = None
        self._at = 0.0

    def get(self, *, max_age: float | None = None) -> float:
        """The credit in $, fetched again when older than ``max_age`` (default: the ttl)."""
        limit = self._ttl if max_age is None else max_age
        with self._lock:
            if self._value is not None and self._clock() - self._at <= limit:
                return self._value
            value = float(self._fetch())
            self._value, self._at = value, self._clock()
            return value


def credit_cache(services: Services) -> CreditCache:
    """The shared :class:`CreditCache` of ``services`` (created on first use)."""
    cache = services.extras.get("credit_cache")
    if cache is None:
        cache = services.extras.setdefault("credit_cache", CreditCache(services.vast.get_credit))
    assert isinstance(cache, CreditCache)
    return cache


def credit_warning(services: Services, dph_total: float) -> str | None:
    """The picker's warning when the Vast.ai credit would last less than
    :data:`WARN_BELOW_HOURS` at ``dph_total`` ($/hour); None otherwise, and None (never an
    exception) when the credit cannot be read."""
    try:
        credit = credit_cache(services).get()
    except Exception as error:  # the picker must not break because of the balance
        logger.info("credit not read for the picker: %s", type(error).__name__)
        return None
    hours = costs.hours_left(credit, dph_total)
    if hours is None or hours >= WARN_BELOW_HOURS:
        return None
    if credit <= 0:
        return (
            ":warning: The Vast.ai account has no credit left "
            f"({blocks.money(credit)}): Vast.ai would stop the instance at once. "
            "Ask an admin to add credit first."
        )
    return (
        f":warning: The Vast.ai credit ({blocks.money(credit)}) lasts only about "
        f"{format_duration(hours * 3600)} at {blocks.money(dph_total)}/h; at $0 Vast.ai stops "
        "the instance. Ask an admin to add credit."
    )


def credit_payload(services: Services, user_id: str) -> dict[str, Any]:
    """The ``/templates credit`` answer: the balance and burn rate for ``BOT_ADMINS``; for
    anyone else, who can see it. Reads the balance fresh (at most 5 s old)."""
    admins = services.settings.bot_admins
    if not services.is_admin(user_id):
        if admins:
            text = (
                ":lock: The Vast.ai balance is shown to bot admins only: "
                f"{blocks.mentions(admins)}. Ask one of them."
            )
        else:
            text = (
                ":lock: The Vast.ai balance is shown to bot admins only, and none are configured "
                "(an operator sets them with `BOT_ADMINS`)."
            )
        return blocks.text_message(text)
    try:
        credit = credit_cache(services).get(max_age=5.0)
    except VastError as error:
        return blocks.text_message(f":x: Could not read the Vast.ai balance: {error.user_message}")
    live = [
        d for d in list_by_status(services.session_factory, LIVE_STATUSES) if d.status != "creating"
    ]
    burn = sum(costs.current_rate(d) for d in live)
    billing = [d for d in live if costs.current_rate(d) > 0]
    return blocks.credit_message(
        credit, burn_dph=burn, live=len(billing), simulated=services.settings.simulated
    )


# --- App Home ---------------------------------------------------------------------------


def workspace_team_id(services: Services) -> str | None:
    """The workspace id (``auth.test``'s ``team_id``), cached in ``services.extras``."""
    team = services.extras.get("team_id")
    if team is None and services.notifier is not None:
        try:
            team = services.notifier.team_id()
        except (SlackApiError, KeyError, TypeError):
            return None
        services.extras["team_id"] = team
    return str(team) if team else None


def home_payload(
    services: Services, user_id: str, team_id: str, *, notice: str | None = None
) -> dict[str, Any]:
    """The Home view of ``user_id``: their live deployments, this month's spend, how-to."""
    now = utcnow()
    report = month_report(services, team_id, now)
    live = _newest_first(list_for_user(services.session_factory, team_id, user_id, LIVE_STATUSES))
    return home_blocks.home_view(
        deployments=live,
        now=now,
        user_month=report.for_user(user_id).dollars,
        workspace_month=report.total,
        month_label=report.start.strftime("%B %Y"),
        notice=notice,
    )


def refresh_home(
    services: Services,
    user_id: str,
    team_id: str | None = None,
    *,
    notice: str | None = None,
) -> bool:
    """Publish ``user_id``'s Home tab (``views.publish``). Call it whenever one of the user's
    deployments changes; pass ``team_id`` (the deployment's) when known, else the workspace's
    is looked up once. Returns False on any failure (logged, never raised), so pollers can
    call it freely."""
    try:
        team = team_id or workspace_team_id(services)
        if team is None or services.notifier is None:
            return False
        view = home_payload(services, user_id, team, notice=notice)
        services.notifier.publish_home(user_id, view)
        return True
    except Exception:
        logger.warning("Home tab of %s not refreshed", user_id, exc_info=True)
        return False


def install(services: Services) -> None:
    """Expose this module's hooks in ``services.extras``: ``credit_warning(dph_total)``
    (picker), ``refresh_home(user_id, team_id=None, notice=None)`` (poller, deploy)."""

    def warn(dph_total: float) -> str | None:
        return credit_warning(services, dph_total)

    def refresh(user_id: str, team_id: str | None = None, notice: str | None = None) -> bool:
        return refresh_home(services, user_id, team_id, notice=notice)

    services.extras["credit_warning"] = warn
    services.extras["refresh_home"] = refresh
