"""Block Kit for monthly budgets and chat approvals (pure): the budget sentences and bars that
the picker, ``/templates costs``, Home and the digest show, the approval request with its
**Approve**/**Deny** buttons and what it becomes once decided, the deny and budget modals, the
threshold alerts and ``/templates audit``.

Money is in US dollars (:func:`bot.formats.money`), prices in $/hour, run lengths in hours, and
every budget is for the current UTC month. What each message says arrives as the plain
dataclasses of :mod:`bot.notices` (this package imports no services: import-linter). Times are
written with Slack's date formatting (:func:`bot.formats.slack_date`), so each reader sees their
own time zone. Everything that comes back from Slack (button values, private_metadata, inputs)
is parsed here as untrusted input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot.formats import lifetime_label, mentions, money, mrkdwn_escape, slack_date, utc_text
from bot.notices import (
    WORKSPACE,
    ApprovalDecision,
    ApprovalRequest,
    AuditEntry,
    BudgetAlert,
    BudgetCheck,
    BudgetLine,
)
from bot.slack.blocks.common import (
    MAX_MESSAGE_BLOCKS,
    MAX_SECTION_TEXT,
    bounded_json,
    message_payload,
    truncate,
    valid_deployment_id,
)
from bot.slack.blocks.picker import CALLBACK_DEPLOY
from storage import DeploymentRecord

ACTION_APPROVE = "approval_approve"
"""**Approve** on an approval request; value ``str(deployment id)``."""
ACTION_DENY = "approval_deny"
"""**Deny** on an approval request (opens :func:`deny_view`); value ``str(deployment id)``."""
CALLBACK_DENY = "approval_deny_modal"
BLOCK_DENY_REASON = "deny_reason_block"
ACTION_DENY_REASON = "deny_reason"
CALLBACK_BUDGET = "budget_modal"
BLOCK_WORKSPACE_BUDGET = "workspace_budget_block"
ACTION_WORKSPACE_BUDGET = "workspace_budget"
BLOCK_BUDGET_USER = "budget_user_block"
ACTION_BUDGET_USER = "budget_user"
BLOCK_USER_BUDGET = "user_budget_block"
ACTION_USER_BUDGET = "user_budget"
ACTION_AUDIT_PREV = "audit_prev"
"""**◀ Newer** on the audit log; value ``str(page - 1)`` (:func:`parse_audit_page`)."""
ACTION_AUDIT_NEXT = "audit_next"
"""**Older ▶** on the audit log; value ``str(page + 1)``."""
AUDIT_PAGE_SIZE = 50
"""Audit entries per page (one line each)."""

MAX_DENY_REASON = 500
"""Characters of a denial's reason (the modal's input allows no more)."""
MAX_BUDGET_PEOPLE = 40
"""People listed with their own budget in :func:`budget_view`; the rest are counted."""
MAX_BUDGET_INPUT = 20
"""Characters of a budget input ("1000000.00" and "none" fit)."""
MAX_AUDIT_DETAIL = 200

_NONE = "none"
_METADATA_TEXT = 40  # a channel id or message ts in the deny modal's private_metadata
_AUDIT_PAGE = re.compile(r"[0-9]{1,4}")
_CENT = 0.005  # amounts below this are shown as nothing (committed, "of it this month")
_SLACK = 1e-9  # float noise when comparing dollars, as BudgetCheck.passes does
_WARN_AT = 0.8
_LINE_LIMIT = 600  # one listed line, so a freak name cannot eat a whole section

AUDIT_WORDS = {
    "requested": "requested",
    "approval_requested": "asked for approval",
    "approved": "approved",
    "denied": "denied",
    "approval_expired": "approval expired unanswered",
    "budget_set": "set a budget",
    "budget_default": "reset a budget to the default",
    "budget_alert": "budget alert",
    "ssh_key_added": "added an SSH key",
    "ssh_key_removed": "removed an SSH key",
    "stop": "stopped",
    "start": "started",
    "destroy": "destroyed",
    "auto_stop": "stopped automatically",
    "auto_destroy": "destroyed automatically",
    "auto_stop_failed": "automatic stop failed",
    "auto_destroy_failed": "automatic destroy failed",
    "stop_failed": "stop failed",
    "start_failed": "start failed",
    "destroy_failed": "destroy failed",
    "stop_refused": "stop refused",
    "start_refused": "start refused",
    "destroy_refused": "destroy refused",
    "extend": "extended",
    "extend_refused": "extension refused",
    "extend_approved": "extension approved",
    "keep_running": "kept it running",
    "failed": "failed",
    "status": "status changed",
    "credentials_sent": "sent the login",
    "recovered": "recovered after a restart",
    "reminder": "sent a reminder",
    "offer_retry": "tried another offer",
    "destroyed_leftover": "destroyed a leftover instance",
    "message_dm": "sent the status by DM",
    "created": "rented the instance",
    "notified": "posted the ready notification",
    "secrets_sent": "sent the login by DM",
    "expiry_warning": "warned of the end",
    "idle_warning": "asked about an idle GPU",
    "lifetime_restarted": "began a new run",
    "credentials_refused": "login refused",
    "keep_running_refused": "keep running refused",
    "approve_refused": "approval refused",
    "deny_refused": "denial refused",
    "rule_notice": "sent a notice",
    "start_requested": "asked to start",
    "stop_requested": "asked to stop",
    "destroy_requested": "asked to destroy",
    "start_retry": "tried the start again",
    "stop_retry": "tried the stop again",
    "destroy_retry": "tried the destroy again",
    "start_withdrawn": "start called off",
    "stop_withdrawn": "stop called off",
    "destroy_withdrawn": "destroy called off",
    "start_keeps_failing": "start keeps failing",
    "stop_keeps_failing": "stop keeps failing",
    "destroy_keeps_failing": "destroy keeps failing",
    "start_seen": "saw it started outside the bot",
    "withdrawn_too_late": "called off too late: it had already been sent and went through",
    "ssh_key_attached": "attached an SSH key to the instance",
    "ssh_key_detached": "removed an SSH key from the instance",
    "ssh_key_kept": "could not remove an SSH key: it stays on the instance until destroyed",
    "ssh_key_failed": "an SSH key change did not go through (retried)",
    "shared": "shared it",
    "unshared": "took access away",
    "share_refused": "sharing refused",
    "installed": "installed the app",
    "uninstalled": "uninstalled the app",
    "vast_key_set": "set the Vast.ai key",
    "vast_key_removed": "removed the Vast.ai key",
    "settings_changed": "changed the settings",
}
"""What the audit log says of each event kind (every ``storage.EventKind`` has its words)."""


# --- small pieces -------------------------------------------------------------------------


def _section(text: str, block_id: str | None = None) -> SectionBlock:
    return SectionBlock(
        block_id=block_id, text=MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT))
    )


def _context(text: str, block_id: str | None = None) -> ContextBlock:
    return ContextBlock(
        block_id=block_id, elements=[MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT))]
    )


def _name(dep: DeploymentRecord) -> str:
    """``*JupyterLab* (#12)``."""
    return f"*{mrkdwn_escape(truncate(dep.template_name, 100))}* (#{dep.id})"


def _dph(dollars_per_hour: float) -> str:
    """``$2.940/h``: prices keep three decimals, as the picker shows them."""
    return f"${dollars_per_hour:,.3f}/h"


def _hours(hours: float) -> str:
    return f"{hours:g} h"


def _waited(seconds: float) -> str:
    """How long a request waited: ``45 min`` under an hour, else whole hours (``24 h``)."""
    minutes = max(0, round(seconds / 60))
    if minutes < 60:
        return f"{minutes} min"
    return f"{round(minutes / 60)} h"


def _in(seconds: float) -> str:
    if seconds <= 0:
        return "now"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"in {minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"in {hours} h {rest} min" if rest else f"in {hours} h"


def _amount(dollars: float) -> str:
    """A stored budget as an input's text: ``500``, ``1234.5`` (no thousands separator)."""
    return f"{dollars:.2f}".rstrip("0").rstrip(".")


def _pack(lines: Sequence[str], title: str | None = None) -> list[str]:
    """``lines`` (each cut to 600 characters) joined into as few texts of at most 3000
    characters as fit, ``title`` first."""
    texts: list[str] = [title] if title else []
    for line in lines:
        line = truncate(line, _LINE_LIMIT)
        if texts and len(texts[-1]) + 1 + len(line) <= MAX_SECTION_TEXT:
            texts[-1] += "\n" + line
        else:
            texts.append(line)
    return texts


# --- budget sentences and bars ------------------------------------------------------------


def budget_sentence(line: BudgetLine, *, you: bool) -> str:
    """One budget in words, without a final full stop (``line``: $ this month).

    ``you=True``: "You have $120.00 of your $200.00 left this month", past the budget "You are
    $12.00 over your $200.00 budget this month", without one "You have no monthly budget".
    ``you=False``: "The workspace has $80.00 of its $1,000.00 left this month" / "The workspace
    is $12.00 over its …" / "The workspace has no monthly budget" (another person's line reads
    "<@U> has …"). What is left counts the committed cost (``line.projected``).
    """
    if you:
        subject, has, owner, be = "You", "have", "your", "are"
    elif line.subject == WORKSPACE:
        subject, has, owner, be = "The workspace", "has", "its", "is"
    else:
        subject, has, owner, be = f"<@{line.subject}>", "has", "their", "is"
    left = line.left
    if line.budget is None or left is None:
        return f"{subject} {has} no monthly budget"
    if left < -_SLACK:
        return f"{subject} {be} {money(-left)} over {owner} {money(line.budget)} budget this month"
    return (
        f"{subject} {has} {money(max(left, 0.0))} of {owner} {money(line.budget)} left this month"
    )


def budget_bar(line: BudgetLine, width: int = 10) -> str:
    """A text bar for one budget (mrkdwn, ≤ 200 characters; ``width`` cells, 1–50):

    "`▓▓▓▓▓░░░░░` 52% · $104.00 of $200.00 (incl. $20.00 committed) · $96.00 left"; the bar is
    full at 100 % and beyond, ":warning:" follows the percentage from 80 % and ":no_entry:"
    from 100 % ("· $12.00 over" then). Without a budget: "No monthly budget · $104.00 this
    month". The figure is ``line.projected`` (spent plus committed, $), the committed part shown
    when it is at least a cent.
    """
    width = min(max(int(width), 1), 50)
    committed = f" (incl. {money(line.committed)} committed)" if line.committed >= _CENT else ""
    fraction, left = line.fraction, line.left
    if line.budget is None or fraction is None or left is None:
        return f"No monthly budget · {money(line.projected)} this month{committed}"
    filled = width if fraction >= 1 else min(width, math.floor(fraction * width + _SLACK))
    bar = "▓" * filled + "░" * (width - filled)
    percent = f"{fraction * 100:.0f}%" if math.isfinite(fraction) else ">100%"
    if fraction >= 1 - _SLACK:
        percent += " :no_entry:"
    elif fraction >= _WARN_AT - _SLACK:
        percent += " :warning:"
    rest = f"{money(-left)} over" if left < -_SLACK else f"{money(max(left, 0.0))} left"
    return (
        f"`{bar}` {percent} · {money(line.projected)} of {money(line.budget)}{committed} · {rest}"
    )


def picker_budget_text(check: BudgetCheck) -> str:
    """mrkdwn for the GPU picker under the cost line (≤ 3000 characters), from ``check``:

    "This run: $23.52 until it stops (8 h at $2.940/h)" (", $10.00 of it this month" when the
    run crosses the month's end) or "No end time: $2.940/h until someone stops it, $X of it this
    month"; then the requester's and the workspace's :func:`budget_sentence`; ":warning: This
    deployment would take you (and/or the workspace) past the monthly budget." when it would
    (:meth:`BudgetCheck.passes`); ":raised_hand: Needs approval: <reasons>. Nothing is rented
    until an approver says yes." when :attr:`BudgetCheck.needs_approval`.
    """
    if check.cost_to_end is not None:
        how = (
            f" ({_hours(check.lifetime_hours)} at {_dph(check.dph)})"
            if check.lifetime_hours is not None
            else f" (at {_dph(check.dph)})"
        )
        cost = f"This run: {money(check.cost_to_end)} until it stops{how}"
        if check.cost_to_end - check.in_month >= _CENT:
            cost += f", {money(check.in_month)} of it this month"
    else:
        cost = (
            f"No end time: {_dph(check.dph)} until someone stops it, "
            f"{money(check.in_month)} of it this month"
        )
    lines = [
        cost + ".",
        budget_sentence(check.user, you=True) + ".",
        budget_sentence(check.workspace, you=False) + ".",
    ]
    past = [
        who
        for who, line in (("you", check.user), ("the workspace", check.workspace))
        if check.passes(line)
    ]
    if past:
        lines.append(
            f":warning: This deployment would take {' and '.join(past)} past the monthly budget."
        )
    if check.needs_approval:
        reasons = "; ".join(truncate(reason, 500) for reason in check.reasons)
        lines.append(
            f":raised_hand: Needs approval: {reasons}. "
            "Nothing is rented until an approver says yes."
        )
    return truncate("\n".join(lines), MAX_SECTION_TEXT)


# --- the approval request -----------------------------------------------------------------


def _month_field(title: str, line: BudgetLine) -> MarkdownTextObject:
    budget = money(line.budget) if line.budget is not None else _NONE
    return MarkdownTextObject(
        text=(
            f"*{title}*\n{money(line.spent)} spent · {money(line.committed)} committed · "
            f"budget {budget}"
        )
    )


def _request_blocks(request: ApprovalRequest, *, asked: str) -> list[Block]:
    """The facts of a request: who asks for what, what it costs, the budgets, the reasons."""
    dep, check = request.dep, request.check
    if check.cost_to_end is not None:
        committed = money(check.cost_to_end)
        if check.cost_to_end - check.in_month >= _CENT:
            committed += f" ({money(check.in_month)} this month)"
    else:
        committed = f"no end time ({money(check.in_month)} this month)"
    fields = [
        MarkdownTextObject(
            text=(
                f"*GPU*\n{dep.num_gpus}× {mrkdwn_escape(truncate(dep.gpu_name, 60))}, "
                f"{dep.gpu_ram_gb:.0f} GB VRAM per GPU"
            )
        ),
        MarkdownTextObject(text=f"*Price*\n{_dph(dep.dph_total)}"),
        MarkdownTextObject(text=f"*Disk*\n{dep.disk_gb:g} GB"),
        MarkdownTextObject(text=f"*Lifetime*\n{lifetime_label(dep.lifetime_hours)}"),
        MarkdownTextObject(text=f"*Committed cost*\n{committed}"),
        _month_field("Requester this month", check.user),
        _month_field("Workspace this month", check.workspace),
    ]
    blocks: list[Block] = [
        _section(
            f":raised_hand: <@{dep.user_id}> {asked} to deploy {_name(dep)}",
            f"approval_head_{dep.id}",
        ),
        SectionBlock(block_id=f"approval_facts_{dep.id}", fields=fields),
    ]
    if check.reasons:
        reasons = "\n".join(f"• {truncate(reason, 500)}" for reason in check.reasons)
        blocks.append(_section(f"*Why it needs approval*\n{reasons}", f"approval_why_{dep.id}"))
    return blocks


def approval_request_message(request: ApprovalRequest, *, now: datetime) -> dict[str, Any]:
    """The request to the approvers: ``{"text", "blocks"}`` (at most 7 blocks).

    ":raised_hand: <@requester> asks to deploy *JupyterLab* (#12)"; fields: GPU (count, model,
    GB VRAM per GPU), $/hour, disk (GB), lifetime, committed cost ($ for the whole run, or "no
    end time", with the part in this month), the requester's and the workspace's month ($
    spent, $ committed, budget or "none"); the reasons; "Expires <date> unanswered (in 24 h)"
    and who may decide (``now``: aware UTC, for "in …"); when ``request.self_only`` "You are
    the only approver, so you may approve your own request."; then **Approve** (primary,
    :data:`ACTION_APPROVE`) and **Deny** (danger, :data:`ACTION_DENY`), value
    ``str(dep.id)``, in the actions block ``approval_<id>``.
    """
    dep = request.dep
    blocks = _request_blocks(request, asked="asks")
    left = (request.expires_at - now).total_seconds()
    expires = (
        f"Expires {slack_date(request.expires_at)} unanswered ({_in(left)}). "
        "Nothing is rented until an approver says yes."
    )
    if request.approvers:
        expires += f" Any of {mentions(request.approvers)} can decide."
    blocks.append(_context(expires, f"approval_expires_{dep.id}"))
    if request.self_only:
        blocks.append(
            _context(
                "You are the only approver, so you may approve your own request.",
                f"approval_self_{dep.id}",
            )
        )
    value = str(dep.id)
    blocks.append(
        ActionsBlock(
            block_id=f"approval_{dep.id}",
            elements=[
                ButtonElement(
                    text="Approve", action_id=ACTION_APPROVE, value=value, style="primary"
                ),
                ButtonElement(text="Deny", action_id=ACTION_DENY, value=value, style="danger"),
            ],
        )
    )
    fallback = (
        f"<@{dep.user_id}> asks to deploy {mrkdwn_escape(dep.template_name)} (#{dep.id}) at "
        f"{_dph(dep.dph_total)}: approve or deny"
    )
    return message_payload(blocks, fallback)


def _decision_line(decision: ApprovalDecision) -> str:
    when = slack_date(decision.at)
    by = f"<@{decision.by}>" if decision.by else "an approver"
    if decision.outcome == "approved":
        return f":white_check_mark: Approved by {by} {when}"
    if decision.outcome == "denied":
        note = mrkdwn_escape(truncate(decision.note.strip(), 500)) if decision.note else ""
        return f":no_entry_sign: Denied by {by} {when}: {note or 'no reason given'}"
    if decision.outcome == "expired":
        return f":hourglass: Expired unanswered {when}: nothing was rented"
    return f"{truncate(decision.outcome, 40)} {when}"


def approval_decided_message(
    request: ApprovalRequest, decision: ApprovalDecision
) -> dict[str, Any]:
    """What an approval request becomes once decided: ``{"text", "blocks"}``, the facts of
    :func:`approval_request_message` ("asked"), no buttons, and the outcome:
    ":white_check_mark: Approved by <@X> <date>", ":no_entry_sign: Denied by <@X> <date>:
    <note or 'no reason given'>" or ":hourglass: Expired unanswered <date>: nothing was rented".
    The note is shown as typed (mrkdwn escaped)."""
    dep = request.dep
    blocks = _request_blocks(request, asked="asked")
    line = _decision_line(decision)
    blocks.append(_section(line, f"approval_decision_{dep.id}"))
    plain = {
        "approved": f"approved by <@{decision.by}>" if decision.by else "approved",
        "denied": f"denied by <@{decision.by}>" if decision.by else "denied",
        "expired": "expired unanswered",
    }.get(decision.outcome, truncate(decision.outcome, 40))
    fallback = (
        f"{mrkdwn_escape(dep.template_name)} (#{dep.id}) for <@{dep.user_id}>: {plain} "
        f"({utc_text(decision.at)})"
    )
    return message_payload(blocks, fallback)


def requester_decision_text(dep: DeploymentRecord, decision: ApprovalDecision) -> str:
    """mrkdwn for the requester (thread note or DM, mentioning them) once ``dep``'s request is
    decided:

    approved: "<@req> your request for *JupyterLab* (#12) was approved by <@X>: renting the GPU
    now."; denied: "… was denied by <@X>. Reason: <note or 'none given'>. Nothing was
    rented."; expired: "… expired: no approver answered within 24 h. Nothing was rented; deploy
    again if you still need it." (the wait from ``dep.created_at`` to ``decision.at``).
    """
    head = f"<@{dep.user_id}> your request for {_name(dep)}"
    by = f"<@{decision.by}>" if decision.by else "an approver"
    if decision.outcome == "approved":
        return f"{head} was approved by {by}: renting the GPU now."
    if decision.outcome == "denied":
        note = mrkdwn_escape(truncate(decision.note.strip(), 500)) if decision.note else ""
        return f"{head} was denied by {by}. Reason: {note or 'none given'}. Nothing was rented."
    if decision.outcome == "expired":
        waited = _waited((decision.at - dep.created_at).total_seconds())
        return (
            f"{head} expired: no approver answered within {waited}. Nothing was rented; deploy "
            "again if you still need it."
        )
    return f"{head}: {truncate(decision.outcome, 40)}."


def approvers_refusal_text(approvers: frozenset[str], *, requester: str | None = None) -> str:
    """The answer to someone who may not decide on a request: "Only the approvers (<@A> or
    <@B>) can decide on this request."; none configured: "No approvers are configured: an
    operator sets APPROVERS or BOT_ADMINS.". ``requester``: the clicker when they asked for it
    themselves and another approver exists: they are left out of the list and told that they
    cannot decide on their own request."""
    if not approvers:
        return "No approvers are configured: an operator sets APPROVERS or BOT_ADMINS."
    others = approvers - {requester} if requester else approvers
    if requester and others and others != approvers:
        return (
            "You cannot decide on your own request: only the other approvers "
            f"({mentions(others)}) can."
        )
    return f"Only the approvers ({mentions(approvers)}) can decide on this request."


# --- modals -------------------------------------------------------------------------------


def pending_view(
    template_name: str, channel: str, approvers: frozenset[str], reasons: tuple[str, ...]
) -> View:
    """The picker's modal after a submission that needs approval (callback ``deploy_modal``,
    title "Deploy <name>" cut to 24 characters, **Close** only): ":raised_hand: *Sent for
    approval*: <reasons>. Approvers: <@A>, <@B>. Nothing is rented until one of them approves;
    you will hear in <#channel>."."""
    why = "; ".join(truncate(reason, 500) for reason in reasons)
    text = ":raised_hand: *Sent for approval*" + (f": {why}." if why else ".")
    if approvers:
        names = ", ".join(f"<@{user}>" for user in sorted(approvers))
        text += (
            f"\nApprovers: {names}. Nothing is rented until one of them approves; "
            f"you will hear in <#{channel}>."
        )
    else:
        text += (
            "\nNo approvers are configured (an operator sets APPROVERS or BOT_ADMINS): nothing "
            f"is rented until one is; you will hear in <#{channel}>."
        )
    return View(
        type="modal",
        callback_id=CALLBACK_DEPLOY,
        title=PlainTextObject(text=truncate(f"Deploy {template_name}", 24)),
        close=PlainTextObject(text="Close"),
        blocks=[_section(text, "approval_pending")],
    )


def _metadata_text(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _METADATA_TEXT else None


def deny_view(
    deployment_id: int,
    template_name: str,
    requester: str,
    *,
    channel: str | None,
    ts: str | None,
) -> View:
    """The modal behind **Deny** (callback :data:`CALLBACK_DENY`, title "Deny request",
    **Deny** / **Cancel**): what is denied and an optional reason (multiline, ≤ 500 characters,
    :data:`BLOCK_DENY_REASON` / :data:`ACTION_DENY_REASON`) that the requester sees.

    ``private_metadata``: ``{"dep": id, "channel": channel, "ts": ts}`` (compact JSON), the
    approval message that was clicked, so that it can be updated (:func:`parse_deny_metadata`;
    a channel or ts longer than 40 characters is left out).
    """
    metadata = json.dumps(
        {"dep": deployment_id, "channel": _metadata_text(channel), "ts": _metadata_text(ts)},
        separators=(",", ":"),
    )
    what = (
        f"Deny <@{requester}>'s request to deploy *{mrkdwn_escape(truncate(template_name, 100))}* "
        f"(#{deployment_id})? Nothing is rented."
    )
    return View(
        type="modal",
        callback_id=CALLBACK_DENY,
        title=PlainTextObject(text="Deny request"),
        submit=PlainTextObject(text="Deny"),
        close=PlainTextObject(text="Cancel"),
        private_metadata=metadata,
        blocks=[
            _section(what, "deny_what"),
            InputBlock(
                block_id=BLOCK_DENY_REASON,
                label="Reason (optional; the requester sees it)",
                optional=True,
                element=PlainTextInputElement(
                    action_id=ACTION_DENY_REASON, multiline=True, max_length=MAX_DENY_REASON
                ),
            ),
        ],
    )


def parse_deny_metadata(text: str) -> tuple[int, str | None, str | None] | None:
    """``(deployment id, channel, ts)`` from :func:`deny_view`'s private_metadata (untrusted,
    read with :func:`bot.slack.blocks.common.bounded_json`): None unless a JSON object with an
    integer ``dep`` in 1..``storage.MAX_ROW_ID``; ``channel`` / ``ts`` only when strings of
    1–40 characters (else None)."""
    try:
        data = bounded_json(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    dep = data.get("dep")
    if not isinstance(dep, int) or isinstance(dep, bool) or not valid_deployment_id(dep):
        return None
    return dep, _metadata_text(data.get("channel")), _metadata_text(data.get("ts"))


def _state_element(view: object, block: str, action: str) -> dict[str, Any]:
    """``view["state"]["values"][block][action]`` or ``{}`` (untrusted shapes)."""
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    element = values.get(block) if isinstance(values, dict) else None
    element = element.get(action) if isinstance(element, dict) else None
    return element if isinstance(element, dict) else {}


def deny_reason_value(view: dict[str, Any]) -> str:
    """The reason typed in :func:`deny_view` (``view``: the submitted view): stripped, cut to
    500 characters, ``""`` when absent or not text."""
    value = _state_element(view, BLOCK_DENY_REASON, ACTION_DENY_REASON).get("value")
    return value.strip()[:MAX_DENY_REASON] if isinstance(value, str) else ""


def _budget_hint(default: float | None) -> str:
    fallback = money(default) if default is not None else "no budget"
    return f"Dollars per month. `none`: no budget. Empty: the default ({fallback})."


def _budget_input(
    block_id: str, action_id: str, label: str, hint: str, initial: str | None
) -> InputBlock:
    element = PlainTextInputElement(
        action_id=action_id, max_length=MAX_BUDGET_INPUT, placeholder="e.g. 500"
    )
    if initial:
        element.initial_value = initial
    return InputBlock(block_id=block_id, label=label, hint=hint, optional=True, element=element)


def budget_view(
    workspace: BudgetLine,
    people: Sequence[BudgetLine],
    *,
    workspace_default: float | None,
    user_default: float | None,
    stored_workspace: float | None | str,
) -> View:
    """The admins' budget modal (callback :data:`CALLBACK_BUDGET`, title "Monthly budgets",
    **Save** / **Cancel**; at most ~12 blocks).

    Shows ``workspace``'s budget and projected spend (:func:`budget_bar`) and where the budget
    comes from, the ``people`` who have a budget of their own (one line each, at most 40, then
    "…and N more"), and the configured defaults (``workspace_default`` /
    ``user_default``: $ per month, None = none). Inputs, all optional plain text (the server
    validates and answers with inline errors): the workspace's budget
    (:data:`BLOCK_WORKSPACE_BUDGET`; prefilled from ``stored_workspace``: a number ``"500"``,
    the string ``"none"`` for "no budget on purpose", empty when None, i.e. the default
    applies), a person (:data:`BLOCK_BUDGET_USER`, users_select) and their budget
    (:data:`BLOCK_USER_BUDGET`).
    """
    if isinstance(stored_workspace, str):
        initial = _NONE if stored_workspace.strip().lower() == _NONE else None
        source = "set here: no budget" if initial else "the default (WORKSPACE_MONTHLY_BUDGET)"
    elif stored_workspace is not None and math.isfinite(stored_workspace):
        initial, source = _amount(stored_workspace), "set here"
    else:
        initial, source = None, "the default (WORKSPACE_MONTHLY_BUDGET)"
    blocks: list[Block] = [
        _section(f"*Workspace this month* ({source})\n{budget_bar(workspace)}", "budget_workspace")
    ]
    lines = [
        f"<@{truncate(line.subject, 30)}> {budget_bar(line)}" for line in people[:MAX_BUDGET_PEOPLE]
    ]
    if len(people) > MAX_BUDGET_PEOPLE:
        lines.append(f"…and {len(people) - MAX_BUDGET_PEOPLE} more")
    if lines:
        for index, text in enumerate(_pack(lines, "*People with a budget of their own*")):
            blocks.append(_section(text, f"budget_people_{index}"))
    else:
        blocks.append(
            _section("Nobody has a budget of their own: the default applies to everyone.")
        )
    per_workspace = money(workspace_default) if workspace_default is not None else _NONE
    per_person = money(user_default) if user_default is not None else _NONE
    blocks += [
        _context(
            f"Default for the workspace: {per_workspace} (WORKSPACE_MONTHLY_BUDGET) · "
            f"Default per person: {per_person} (USER_MONTHLY_BUDGET). Spend counts what the "
            "running deployments will still cost this month."
        ),
        DividerBlock(),
        _budget_input(
            BLOCK_WORKSPACE_BUDGET,
            ACTION_WORKSPACE_BUDGET,
            "Workspace budget ($ per month)",
            _budget_hint(workspace_default),
            initial,
        ),
        InputBlock(
            block_id=BLOCK_BUDGET_USER,
            label="Set a person's budget",
            optional=True,
            element=UserSelectElement(action_id=ACTION_BUDGET_USER, placeholder="Pick a person"),
        ),
        _budget_input(
            BLOCK_USER_BUDGET,
            ACTION_USER_BUDGET,
            "Their budget ($ per month)",
            _budget_hint(user_default),
            None,
        ),
    ]
    return View(
        type="modal",
        callback_id=CALLBACK_BUDGET,
        title=PlainTextObject(text="Monthly budgets"),
        submit=PlainTextObject(text="Save"),
        close=PlainTextObject(text="Cancel"),
        blocks=blocks,
    )


def budget_saved_view(lines: Sequence[str]) -> View:
    """What the budget modal becomes after **Save** (callback :data:`CALLBACK_BUDGET`, title
    "Monthly budgets", **Done** only): ``lines`` (mrkdwn, e.g. ":white_check_mark: <@U>'s
    budget is now $200.00 a month."), one per change, packed into sections of ≤ 3000
    characters (at most 20 lines, then "…and N more")."""
    shown = [truncate(line, _LINE_LIMIT) for line in lines[:20]] or ["Nothing changed."]
    if len(lines) > 20:
        shown.append(f"…and {len(lines) - 20} more")
    return View(
        type="modal",
        callback_id=CALLBACK_BUDGET,
        title=PlainTextObject(text="Monthly budgets"),
        close=PlainTextObject(text="Done"),
        blocks=[_section(text, f"budget_saved_{index}") for index, text in enumerate(_pack(shown))],
    )


def budget_values(view: dict[str, Any]) -> dict[str, str | None]:
    """The budget modal's inputs (``view``: the submitted view; untrusted, not validated):
    ``{"workspace": text or None, "user": selected user id or None, "amount": text or
    None}``; texts are stripped, empty or non-text values are None."""

    def text(block: str, action: str, key: str) -> str | None:
        value = _state_element(view, block, action).get(key)
        return value.strip() or None if isinstance(value, str) else None

    return {
        "workspace": text(BLOCK_WORKSPACE_BUDGET, ACTION_WORKSPACE_BUDGET, "value"),
        "user": text(BLOCK_BUDGET_USER, ACTION_BUDGET_USER, "selected_user"),
        "amount": text(BLOCK_USER_BUDGET, ACTION_USER_BUDGET, "value"),
    }


# --- alerts -------------------------------------------------------------------------------


def budget_alert_message(alert: BudgetAlert, *, you: bool) -> dict[str, Any]:
    """The DM when a budget reaches 80 or 100 % (``alert.percent``): ``{"text", "blocks"}``.

    80: ":warning: You have used 80 % of your $200.00 budget for December 2026 ($160.00 incl.
    committed). A deployment that would go past it needs approval."; 100: ":no_entry: You have
    reached your $200.00 budget for December 2026 ($204.00 incl. committed): every new
    deployment now needs approval; running ones are not touched." ``you=False``: "The workspace
    has used … of its …". Then :func:`budget_bar` as context.
    """
    line = alert.line
    who, has, owner = ("You", "have", "your") if you else ("The workspace", "has", "its")
    budget = money(line.budget) if line.budget is not None else "(no)"
    spent = f"({money(line.projected)} incl. committed)"
    month = truncate(alert.month_label, 40)
    if alert.percent >= 100:
        text = (
            f":no_entry: {who} {has} reached {owner} {budget} budget for {month} {spent}: "
            "every new deployment now needs approval; running ones are not touched."
        )
    else:
        text = (
            f":warning: {who} {has} used {alert.percent} % of {owner} {budget} budget for "
            f"{month} {spent}. A deployment that would go past it needs approval."
        )
    blocks: list[Block] = [
        _section(text, "budget_alert"),
        _context(budget_bar(line) + " · `/templates costs` shows the month.", "budget_alert_bar"),
    ]
    fallback = (
        f"{who} {has} reached {owner} {budget} budget for {month}"
        if alert.percent >= 100
        else f"{who} {has} used {alert.percent} % of {owner} {budget} budget for {month}"
    )
    return message_payload(blocks, fallback)


# --- the audit log ------------------------------------------------------------------------


def _audit_line(entry: AuditEntry) -> str:
    actor = "the bot" if entry.actor == "system" else f"<@{truncate(entry.actor, 30)}>"
    words = AUDIT_WORDS.get(entry.action, truncate(entry.action, 40))
    parts = [slack_date(entry.at), actor, words]
    if entry.deployment_id is not None:
        name = (
            f"*{mrkdwn_escape(truncate(entry.template_name, 60))}* " if entry.template_name else ""
        )
        parts.append(f"{name}#{entry.deployment_id}")
    if entry.detail:
        parts.append(truncate(" ".join(entry.detail.split()), MAX_AUDIT_DETAIL))
    return " · ".join(parts)


def audit_message(entries: Sequence[AuditEntry], *, page: int, has_more: bool) -> dict[str, Any]:
    """``/templates audit``: ``{"text", "blocks"}``, at most 16 blocks.

    Header "Audit log", then one line per entry (newest first, as given; the first
    :data:`AUDIT_PAGE_SIZE`): its time (the reader's zone), who ("the bot" for ``system``),
    what in words (an unknown action as stored), the deployment "*JupyterLab* #12" when any
    and the detail cut to 200 characters, packed into sections of ≤ 3000 characters. "No events
    yet." when empty (page 0). Paging (block ``audit_paging``): **◀ Newer**
    (:data:`ACTION_AUDIT_PREV`, value ``str(page - 1)``) when ``page`` > 0, **Older ▶**
    (:data:`ACTION_AUDIT_NEXT`, ``str(page + 1)``) when ``has_more``.
    """
    page = max(0, page)
    shown = list(entries[:AUDIT_PAGE_SIZE])
    blocks: list[Block] = [HeaderBlock(text="Audit log")]
    if shown:
        first, last = page * AUDIT_PAGE_SIZE + 1, page * AUDIT_PAGE_SIZE + len(shown)
        blocks.append(_context(f"Newest first · events {first}–{last} · times in your zone"))
        texts = _pack([_audit_line(entry) for entry in shown])
        blocks += [_section(text) for text in texts[: MAX_MESSAGE_BLOCKS - 4]]
    else:
        blocks.append(_section("No events yet." if page == 0 else "No older events."))
    buttons: list[ButtonElement] = []
    if page > 0:
        buttons.append(
            ButtonElement(text="◀ Newer", action_id=ACTION_AUDIT_PREV, value=str(page - 1))
        )
    if has_more:
        buttons.append(
            ButtonElement(text="Older ▶", action_id=ACTION_AUDIT_NEXT, value=str(page + 1))
        )
    if buttons:
        blocks.append(ActionsBlock(block_id="audit_paging", elements=buttons))
    fallback = f"Audit log: {len(shown)} event{'s' if len(shown) != 1 else ''}"
    if page > 0:
        fallback += f" (page {page + 1})"
    return message_payload(blocks, fallback)


def parse_audit_page(value: object) -> int:
    """The page a paging button carries (untrusted): 1–4 ASCII digits as an int, else 0."""
    if isinstance(value, str) and _AUDIT_PAGE.fullmatch(value):
        return int(value)
    return 0
