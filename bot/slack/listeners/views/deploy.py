"""Listener for the picker's submission (view_submission of ``deploy_modal``).

Thin: parse and validate the untrusted payload, hand the rest to the work pool
(:meth:`DeployViews.handle` re-checks the offer, decides the budget with
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

import logging
import threading
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient

from bot.services.approvals import ApprovalService
from bot.services.budgets import BudgetService
from bot.services.deploy import DeploymentRecord, DeployRequest, DeployService, OfferCheck
from bot.services.home import HomeService
from bot.services.membership import MembershipService
from bot.services.work import BUSY_TEXT, Busy, WorkPool
from bot.slack.blocks import budgets as budget_blocks
from bot.slack.blocks import deploy as deploy_blocks
from bot.slack.blocks import picker
from bot.slack.listeners.membership import DEPLOY
from bot.slack.listeners.replies import update_view
from bot.slack.listeners.views.deploy_form import Submission, SubmissionReader
from bot.vast.errors import VastError

logger = logging.getLogger(__name__)

#: Seconds the offer re-check may take before the modal is acked with a "checking…" view
#: (Slack drops an ack later than 3 s; Bolt and the network need the rest).
ACK_BUDGET_SECONDS = 2.0

SOMETHING_WRONG = (
    "Something went wrong on our side while checking this request; nothing was rented. "
    "Try again in a minute."
)


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


class DeployViews:
    """The picker's submission: parse, hand over to the work pool, ack within the budget."""

    def __init__(
        self,
        *,
        reader: SubmissionReader,
        deploy: DeployService,
        approvals: ApprovalService,
        budgets: BudgetService,
        home: HomeService,
        membership: MembershipService,
        work: WorkPool,
        approval_dph: float | None,
    ) -> None:
        self.reader = reader
        self.deploy = deploy
        self.approvals = approvals
        self.budgets = budgets
        self.home = home
        self.membership = membership
        self.work = work
        self.approval_dph = approval_dph

    def on_deploy_submitted(
        self, ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
    ) -> None:
        """Ack with the outcome when the work pool gives it within :data:`ACK_BUDGET_SECONDS`,
        else with a "checking…" view that the job updates."""
        parsed = self.reader.read(body, view)
        if not isinstance(parsed, Submission):
            ack(**parsed)
            return
        sub = parsed
        handoff = AckHandoff()
        try:
            self.work.spawn(self.handle, client, sub, handoff)
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

    def handle(self, client: WebClient, sub: Submission, handoff: AckHandoff) -> None:
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
        refusal = self.membership.refusal(sub.team_id, sub.user_id, sub.user_team, DEPLOY)
        if refusal is not None:
            view = deploy_blocks.problem_view(refusal)
            _show(handoff, client, sub, {"response_action": "update", "view": view}, view)
            return
        try:
            earlier = self.deploy.submitted(sub.view_id)
            if earlier is not None:
                _answer_repeat(handoff, client, sub, earlier)
                return
            check, problem = self._check_problem(sub)
            if problem is not None or check is None or check.offer is None:
                earlier = self.deploy.submitted(sub.view_id)
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
                max_dph=self.approval_dph,
            )
            admission = self.approvals.admit(request)
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
            held = self.approvals.ask(admission, request)
            if held.created:
                self.home.refresh(sub.user_id, sub.team_id)
            return
        _show(
            handoff,
            client,
            sub,
            {"response_action": "clear"},
            deploy_blocks.done_view(sub.template, sub.channel),
        )
        self.deploy.start(dep, request)
        self.home.refresh(sub.user_id, sub.team_id)  # the new deployment joins Home
        self.budgets.notify_thresholds(sub.team_id)

    def _check_problem(self, sub: Submission) -> tuple[OfferCheck | None, str | None]:
        """Re-check the offer with Vast.ai: (check, problem); Vast.ai errors become a problem."""
        try:
            check = self.deploy.recheck(
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
