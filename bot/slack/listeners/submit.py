"""Listener for the picker's submission (view_submission of ``deploy_modal``).

Thin: parse and validate the untrusted payload, hand the rest to the work pool
(``services.work``: :func:`handle_submission` re-checks the offer, decides the budget with
the row and rents through :class:`bot.services.deploy.DeployService`), wait at most
:data:`ACK_BUDGET_SECONDS` for its answer, ack. A full pool is answered inline at once
("busy — try again in a minute") and nothing is rented.

* A submitter who does not belong to the workspace the form names
  (:mod:`bot.services.membership`: ``user.team_id``, a person it let in, or its own
  ``users.info``) sees "you are not a member of this workspace" in the modal; nothing is
  checked with Vast.ai, written, posted or rented.
* Input problems (no offer chosen, a non-numeric offer id, disk out of bounds, no channel)
  are answered inline: ``ack(response_action="errors", errors={block_id: message})``.
* A stale form (metadata that is not ours, a template no longer in the catalog) gets
  ``response_action: "update"`` with a view that says so.
* The offer is fetched again with one search and re-checked against the template, then the
  request is decided against the budgets and its row written in one transaction
  (``ApprovalService.admit``). The answer comes only after that: "deploying" or "sent for
  approval" once the row exists; when the database cannot be written, "could not save your
  deployment — nothing was rented" and nothing is rented. When that answers within
  :data:`ACK_BUDGET_SECONDS` the result goes into the ack itself (an inline error on the offer,
  or ``response_action: "clear"``, which closes the picker and any modal under it). When
  Vast.ai or the database is slower, the modal is acked with a "checking…" view so that
  Slack's 3-second window is kept, and later updated (``views.update``) with the outcome.
* The listener returns right after its ack; the rental continues on the work pool, so Bolt's
  listener threads never wait for Vast.ai beyond the ack budget. A submission delivered twice
  (a double submit, a Slack retry) rents once: the deploy service keys the row by view id
  (unique), and the repeat is answered with what the first delivery started ("already
  deploying — its status message is in #channel"), never "that offer is no longer available".
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.services.context import Services
from bot.services.deploy import DeploymentRecord, DeployRequest, OfferCheck
from bot.services.work import BUSY_TEXT, Busy
from bot.slack.blocks import budgets as budget_blocks
from bot.slack.blocks import deploy as deploy_blocks
from bot.slack.blocks import picker
from bot.slack.listeners.membership import DEPLOY, user_team_of
from bot.slack.listeners.payloads import team_of
from bot.slack.listeners.replies import update_view
from bot.vast.errors import VastError
from catalog import Template, disk_problem

logger = logging.getLogger(__name__)

#: Seconds the offer re-check may take before the modal is acked with a "checking…" view
#: (Slack drops an ack later than 3 s; Bolt and the network need the rest).
ACK_BUDGET_SECONDS = 2.0

SOMETHING_WRONG = (
    "Something went wrong on our side while checking this request; nothing was rented. "
    "Try again in a minute."
)

_CHANNEL_RE = re.compile(r"^[CDG][A-Z0-9]{2,30}$")


@dataclass(frozen=True)
class Submission:
    """A submission whose fields passed validation (the offer is not yet re-checked)."""

    view_id: str
    team_id: str
    user_id: str
    template: Template
    state: picker.PickerState
    offer_id: int
    shown_dph: float | None
    offer_gpu: str | None
    disk_gb: int
    channel: str
    lifetime_hours: float | None
    enterprise_id: str | None = None
    """Enterprise Grid organisation of the workspace (None outside Grid)."""
    user_team: str | None = None
    """The submitter's own workspace (``user.team_id``; None when the payload names none)."""


def _int(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    if not re.fullmatch(r"\d{1,12}", text):
        return None
    return int(text)


def parse_submission(
    services: Services, body: dict[str, Any], view: dict[str, Any]
) -> Submission | dict[str, Any]:
    """A :class:`Submission`, or the keyword arguments of the ``ack`` that rejects it."""
    try:
        state = picker.PickerState.from_metadata(str(view.get("private_metadata") or ""))
    except (ValueError, json.JSONDecodeError):
        return {
            "response_action": "update",
            "view": deploy_blocks.problem_view(
                "This form is out of date. Run `/templates` and press *Deploy* again."
            ),
        }
    template = services.catalog.get(state.template)
    if template is None:
        return {
            "response_action": "update",
            "view": deploy_blocks.problem_view(
                f"The template `{state.template[:40]}` is no longer in the catalog. "
                "Run `/templates` for the current list."
            ),
        }
    values = picker.selected_values(view)
    errors: dict[str, str] = {}
    choice = picker.parse_offer_value(values["offer"])
    offer_id = choice.offer_id if choice is not None else None
    if values["offer"] is None:
        errors[picker.BLOCK_OFFER] = "Choose a GPU offer."
    elif offer_id is None or offer_id == 0:
        errors[picker.BLOCK_OFFER] = "That is not an offer from the list. Choose a GPU offer."
    disk = _int(values["disk"])
    if disk is None:
        errors[picker.BLOCK_DISK] = (
            f"Enter a whole number of GB between {template.disk_gb} and {template.max_disk_gb}."
        )
    else:
        problem = disk_problem(template, disk)
        if problem is not None:
            errors[picker.BLOCK_DISK] = problem[0].upper() + problem[1:] + "."
    channel = values["channel"]
    if not isinstance(channel, str) or not _CHANNEL_RE.match(channel):
        errors[picker.BLOCK_CHANNEL] = "Choose the channel for status updates."
    user_id = (body.get("user") or {}).get("id")
    team_id = team_of(body)
    lifetime = _lifetime(
        services, template, values["lifetime"], str(user_id or ""), str(team_id or "")
    )
    if isinstance(lifetime, str):
        errors[picker.BLOCK_LIFETIME] = lifetime
    view_id = view.get("id")
    if not errors and not (
        isinstance(view_id, str) and view_id and isinstance(user_id, str) and team_id
    ):
        return {
            "response_action": "update",
            "view": deploy_blocks.problem_view(
                "Slack sent this form without its ids. Run `/templates` and try again."
            ),
        }
    if errors:
        return {"response_action": "errors", "errors": errors}
    assert offer_id is not None and disk is not None and isinstance(channel, str)
    return Submission(
        view_id=str(view_id)[:200],
        team_id=str(team_id)[:32],
        enterprise_id=_enterprise_of(body),
        user_id=str(user_id)[:32],
        user_team=user_team_of(body),
        template=template,
        state=state,
        offer_id=offer_id,
        shown_dph=choice.price if choice is not None else None,
        offer_gpu=state.gpu_name or (choice.gpu_name if choice is not None else None),
        disk_gb=disk,
        channel=channel,
        lifetime_hours=None if isinstance(lifetime, str) else lifetime.hours,
    )


@dataclass(frozen=True)
class _Lifetime:
    hours: float | None


def _enterprise_of(body: dict[str, Any]) -> str | None:
    """The Enterprise Grid organisation a payload came from, if any."""
    enterprise = (body.get("enterprise") or {}).get("id") or (body.get("team") or {}).get(
        "enterprise_id"
    )
    return str(enterprise)[:32] if enterprise else None


def _lifetime(
    services: Services, template: Template, value: Any, user_id: str, team_id: str
) -> _Lifetime | str:
    """The **Run for** choice (hours; None = until stopped), or the inline error. A picker
    without the input (opened before lifetimes existed) gets the default: never no end."""
    policy = services.lifetimes.policy_for(team_id)
    if value is None:
        return _Lifetime(policy.default_for(template))
    try:
        hours = picker.parse_lifetime_value(value)
    except ValueError:
        return "Choose how long it runs from the list."
    admin = services.is_admin(team_id, user_id)
    refusal = policy.refusal(hours, admin=admin, admins=services.manage.admins.admins(team_id))
    if refusal is None and hours not in policy.choices(template, admin=admin):
        refusal = "Choose how long it runs from the list."  # a forged value
    return refusal if refusal is not None else _Lifetime(hours)


class AckHandoff:
    """Who answers the submission: the listener's ack or, once the listener gave up waiting,
    a ``views.update`` from the job.

    The job calls :meth:`answer` with the ack's keyword arguments; it returns False when the
    listener already acked (with the "checking…" view) after :meth:`wait` timed out, and the
    job must then update the modal itself. Thread-safe; decided once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._answer: dict[str, Any] | None = None
        self._closed = False

    def answer(self, **ack_kwargs: Any) -> bool:
        """Offer the ack's arguments; True when the listener will ack with them."""
        with self._lock:
            if self._closed:
                return False
            self._answer = ack_kwargs
            self._closed = True
        self._ready.set()
        return True

    def wait(self, timeout: float) -> dict[str, Any] | None:
        """The job's answer if it came within ``timeout`` seconds, else None (from then on the
        job updates the modal itself)."""
        self._ready.wait(timeout)
        with self._lock:
            self._closed = True
            return self._answer


def _check_problem(services: Services, sub: Submission) -> tuple[OfferCheck | None, str | None]:
    """Re-check the offer with Vast.ai: (check, problem), Vast.ai errors turned into a problem."""
    try:
        check = services.deploy.recheck(
            sub.template,
            sub.offer_id,
            disk_gb=sub.disk_gb,
            gpu_name=sub.offer_gpu,
            max_dph=sub.state.max_dph,
            shown_dph=sub.shown_dph,
            shown_disk_gb=sub.state.disk_gb or sub.template.disk_gb,
            team_id=sub.team_id,
        )
    except VastError as error:
        return None, f"Could not check the offer with Vast.ai: {error.user_message}"
    return check, check.problem


def _show(
    handoff: AckHandoff, client: WebClient, sub: Submission, ack_kwargs: dict[str, Any], view: Any
) -> None:
    """Answer through the listener's ack when it still waits, else update the modal."""
    if not handoff.answer(**ack_kwargs):
        update_view(client, sub.view_id, view)


def _refuse(handoff: AckHandoff, client: WebClient, sub: Submission, message: str) -> None:
    """An inline error on the offer (or, after the ack, a modal that says it)."""
    _show(
        handoff,
        client,
        sub,
        {"response_action": "errors", "errors": {picker.BLOCK_OFFER: message[:2000]}},
        deploy_blocks.problem_view(message, template=sub.template),
    )


#: The answer to a repeated delivery whose first one was made by someone else (a forged view
#: id): it names nothing of theirs.
FORM_USED = "This form was already used. Run `/templates` and press *Deploy* to start again."


def _answer_repeat(
    handoff: AckHandoff, client: WebClient, sub: Submission, dep: DeploymentRecord
) -> None:
    """Answer a repeated delivery of ``sub`` with the truth about the deployment ``dep`` its
    first delivery wrote ("already deploying — see the message in #channel",
    :func:`bot.slack.blocks.deploy.already_view`); nothing is rented. Only its own requester is
    told what it is."""
    logger.info("submission %s delivered again: deployment %s", sub.view_id, dep.id)
    if dep.team_id == sub.team_id and dep.user_id == sub.user_id:
        view = deploy_blocks.already_view(dep)
    else:
        view = deploy_blocks.problem_view(FORM_USED)
    _show(handoff, client, sub, {"response_action": "update", "view": view}, view)


def handle_submission(
    services: Services, client: WebClient, sub: Submission, handoff: AckHandoff
) -> None:
    """The submission's long work, on the work pool: re-check the offer, then decide it
    against the budgets and write its row in one locked transaction
    (``ApprovalService.admit``), answer (through ``handoff``) only once the row exists, then
    rent (or ask the approvers). When the row cannot be written the user is told that
    nothing was rented. A submitter who does not belong to the workspace
    (:mod:`bot.services.membership`) is told so and nothing is checked, written or rented.

    A repeated delivery of the submission (same view id: Slack delivering it twice, Submit
    pressed again) rents nothing and is answered with what the first one started
    (:func:`_answer_repeat`): looked up first, again when the offer check fails (a twin
    delivery may have rented the offer meanwhile), and when the row's unique key finds the
    twin's row (two deliveries at once)."""
    refusal = services.membership.refusal(sub.team_id, sub.user_id, sub.user_team, DEPLOY)
    if refusal is not None:
        view = deploy_blocks.problem_view(refusal)
        _show(handoff, client, sub, {"response_action": "update", "view": view}, view)
        return
    try:
        earlier = services.deploy.submitted(sub.view_id)
        if earlier is not None:
            _answer_repeat(handoff, client, sub, earlier)
            return
        check, problem = _check_problem(services, sub)
        if problem is not None or check is None or check.offer is None:
            earlier = services.deploy.submitted(sub.view_id)
            if earlier is not None:
                _answer_repeat(handoff, client, sub, earlier)
                return
            _refuse(
                handoff,
                client,
                sub,
                problem or "That GPU offer could not be checked. Pick another one.",
            )
            return
        request = DeployRequest(
            request_key=sub.view_id,
            team_id=sub.team_id,
            enterprise_id=sub.enterprise_id,
            user_id=sub.user_id,
            channel_id=sub.channel,
            template=sub.template,
            offer=check.offer,
            disk_gb=sub.disk_gb,
            lifetime_hours=sub.lifetime_hours,
            max_dph=services.settings.approval_dph,
        )
        admission = services.approvals.admit(request)
    except Exception:
        _refuse(handoff, client, sub, SOMETHING_WRONG)
        raise
    if admission.kind in ("refused", "unsaved"):
        _refuse(handoff, client, sub, admission.text or SOMETHING_WRONG)
        return
    dep = admission.deployment
    assert dep is not None  # written: deploy or approval
    if not admission.created:  # a twin delivery wrote the row first
        _answer_repeat(handoff, client, sub, dep)
        return
    if admission.kind == "approval":
        reasons = admission.check.reasons if admission.check is not None else ()
        view = budget_blocks.pending_view(
            sub.template.name, sub.channel, admission.deciders, reasons
        )
        _show(handoff, client, sub, {"response_action": "update", "view": view}, view)
        held = services.approvals.ask(admission, request)
        if held.created:
            services.home.refresh(sub.user_id, sub.team_id)
        return
    _show(
        handoff,
        client,
        sub,
        {"response_action": "clear"},
        deploy_blocks.done_view(sub.template, sub.channel),
    )
    services.deploy.start(dep, request)
    services.home.refresh(sub.user_id, sub.team_id)  # the new deployment joins Home
    services.budgets.notify_thresholds(sub.team_id)


def register(app: App, services: Services) -> None:
    """Attach the submission listener to ``app``; it hands over to the work pool."""

    @app.view(picker.CALLBACK_DEPLOY)
    def deploy_submitted(
        ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        parsed = parse_submission(services, body, view)
        if not isinstance(parsed, Submission):
            ack(**parsed)
            return
        sub = parsed
        handoff = AckHandoff()
        try:
            services.work.spawn(handle_submission, services, client, sub, handoff)
        except Busy:
            logger.warning("work pool full: submission %s answered busy", sub.view_id)
            ack(response_action="errors", errors={picker.BLOCK_OFFER: BUSY_TEXT})
            return
        answer = handoff.wait(ACK_BUDGET_SECONDS)
        if answer is None:  # Vast.ai is slow: keep Slack's window, the job updates the modal
            ack(
                response_action="update", view=deploy_blocks.working_view(sub.template, sub.channel)
            )
        else:
            ack(**answer)
