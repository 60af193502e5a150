"""Block Kit builders for monthly budgets and chat approvals (called directly: no Slack, no
database), plus the budget and approval parts of the status message, the picker, ``/templates
costs``, Home and the digest."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot import pricing
from bot.notices import (
    WORKSPACE,
    ApprovalDecision,
    ApprovalRequest,
    AuditEntry,
    BudgetAlert,
    BudgetCheck,
    BudgetLine,
    DigestData,
)
from bot.slack.blocks import budgets as bb
from bot.slack.blocks import lifetimes as lt
from bot.slack.blocks import picker
from bot.slack.blocks.home import home_view
from bot.slack.blocks.manage import (
    LIST_MINE,
    costs_message,
    deployment_list_message,
    deployment_text,
)
from bot.slack.blocks.status import STATUS_ICONS, deployment_buttons, status_message
from catalog import RankedOffer
from storage import DeploymentRecord, DeploymentStatus
from tests.blockkit import buttons, texts
from tests.test_blocks_lifetimes import (
    CHOICES,
    NOW,
    TEMPLATE,
    Offer,
    check_blocks,
    check_message,
    make_dep,
    picker_blocks,
)

ALICE, BOB, CAROL = "U0ALICE01", "U0BOB0002", "U0CAROL03"
DATE = re.compile(r"<!date\^\d+\^[^^|>]+\|[^>]+>")


def pending(**overrides: Any) -> DeploymentRecord:
    """A request waiting for approval: nothing rented (no instance, never ready)."""
    dep = make_dep(status=DeploymentStatus.PENDING_APPROVAL, ends_in=None, instance_id=None)
    values: dict[str, Any] = {
        "created_at": NOW - timedelta(hours=1),
        "last_state_change_at": NOW - timedelta(hours=1),
        "ready_at": None,
        "ready_notified_at": None,
        "provisioning_at": None,
        "public_ip": None,
        "dph_total": 2.94,
        "lifetime_hours": 8.0,
        "reason": f"Needs approval by <@{BOB}> or <@{CAROL}>: over your monthly budget",
    }
    values.update(overrides)
    return replace(dep, **values)


def check(**overrides: Any) -> BudgetCheck:
    values: dict[str, Any] = {
        "dph": 2.94,
        "lifetime_hours": 8.0,
        "cost_to_end": 23.52,
        "in_month": 23.52,
        "user": BudgetLine(ALICE, 200.0, 150.0, 30.0),
        "workspace": BudgetLine(WORKSPACE, 1000.0, 400.0, 100.0),
        "approval_dph": 2.0,
        "reasons": ("over your monthly budget", "above the approval price of $2.000/h"),
    }
    values.update(overrides)
    return BudgetCheck(**values)


def request(**overrides: Any) -> ApprovalRequest:
    values: dict[str, Any] = {
        "dep": pending(),
        "check": check(),
        "approvers": frozenset({BOB, CAROL}),
        "expires_at": NOW + timedelta(hours=23),
    }
    values.update(overrides)
    return ApprovalRequest(**values)


def by_action(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["action_id"]: b for b in buttons(payload["blocks"])}


def view_dict(view: Any, *, max_blocks: int = 100) -> dict[str, Any]:
    """``view.to_dict()`` (slack_sdk validates the title, metadata and every block)."""
    data: dict[str, Any] = view.to_dict()
    check_blocks(data["blocks"], max_blocks=max_blocks)
    assert len(data["title"]["text"]) <= 24
    assert len(data.get("private_metadata", "")) <= 3000
    return data


# --- sentences and bars ---------------------------------------------------------------------


def test_budget_sentences() -> None:
    mine = BudgetLine(ALICE, 200.0, 60.0, 20.0)
    assert bb.budget_sentence(mine, you=True) == "You have $120.00 of your $200.00 left this month"
    ours = BudgetLine(WORKSPACE, 1000.0, 900.0, 20.0)
    assert (
        bb.budget_sentence(ours, you=False)
        == "The workspace has $80.00 of its $1,000.00 left this month"
    )
    over = BudgetLine(ALICE, 200.0, 200.0, 12.0)
    assert (
        bb.budget_sentence(over, you=True) == "You are $12.00 over your $200.00 budget this month"
    )
    assert bb.budget_sentence(replace(ours, spent=1012.0, committed=0), you=False) == (
        "The workspace is $12.00 over its $1,000.00 budget this month"
    )
    assert bb.budget_sentence(BudgetLine(ALICE, None, 50.0), you=True) == (
        "You have no monthly budget"
    )
    assert bb.budget_sentence(BudgetLine(WORKSPACE, None, 50.0), you=False) == (
        "The workspace has no monthly budget"
    )
    exact = BudgetLine(ALICE, 0.3, 0.1, 0.2)  # float noise is not "over"
    assert bb.budget_sentence(exact, you=True).startswith("You have $0.00 of your $0.30")
    assert bb.budget_sentence(BudgetLine(BOB, 50.0, 10.0), you=False).startswith(f"<@{BOB}> has")


def test_budget_bar() -> None:
    line = BudgetLine(ALICE, 200.0, 84.0, 20.0)
    assert bb.budget_bar(line) == (
        "`▓▓▓▓▓░░░░░` 52% · $104.00 of $200.00 (incl. $20.00 committed) · $96.00 left"
    )
    assert bb.budget_bar(BudgetLine(ALICE, None, 84.0, 20.0)) == (
        "No monthly budget · $104.00 this month (incl. $20.00 committed)"
    )
    assert bb.budget_bar(BudgetLine(ALICE, None, 104.0)) == "No monthly budget · $104.00 this month"
    warn = bb.budget_bar(BudgetLine(ALICE, 200.0, 170.0))
    assert warn.startswith("`▓▓▓▓▓▓▓▓░░` 85% :warning: · $170.00 of $200.00 · $30.00 left")
    full = bb.budget_bar(BudgetLine(ALICE, 200.0, 212.0))
    assert full == "`▓▓▓▓▓▓▓▓▓▓` 106% :no_entry: · $212.00 of $200.00 · $12.00 over"
    assert ":no_entry:" in bb.budget_bar(BudgetLine(ALICE, 200.0, 200.0))
    assert "`▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓▓` 250%" in bb.budget_bar(BudgetLine(ALICE, 2.0, 5.0), width=20)
    zero = bb.budget_bar(BudgetLine(ALICE, 0.0, 5.0))  # fraction is inf
    assert zero.startswith("`▓▓▓▓▓▓▓▓▓▓` >100% :no_entry:") and "$5.00 over" in zero
    empty = bb.budget_bar(BudgetLine(ALICE, 0.0, 0.0))
    assert empty.startswith("`░░░░░░░░░░` 0% · ") and ":warning:" not in empty
    assert bb.budget_bar(BudgetLine(ALICE, 200.0, 0.0), width=0).startswith("`░` 0%")


def test_picker_budget_text_for_a_run_that_needs_approval() -> None:
    text = bb.picker_budget_text(check())
    assert text.splitlines() == [
        "This run: $23.52 until it stops (8 h at $2.940/h).",
        "You have $20.00 of your $200.00 left this month.",
        "The workspace has $500.00 of its $1,000.00 left this month.",
        ":warning: This deployment would take you past the monthly budget.",
        ":raised_hand: Needs approval: over your monthly budget; above the approval price of "
        "$2.000/h. Nothing is rented until an approver says yes.",
    ]


def test_picker_budget_text_without_an_end_and_within_budgets() -> None:
    text = bb.picker_budget_text(
        check(
            lifetime_hours=None,
            cost_to_end=None,
            in_month=85.0,
            user=BudgetLine(ALICE, None, 0.0),
            workspace=BudgetLine(WORKSPACE, 50.0, 0.0),
            reasons=(),
        )
    )
    assert text.startswith("No end time: $2.940/h until someone stops it, $85.00 of it this month")
    assert "You have no monthly budget." in text
    assert ":warning: This deployment would take the workspace past the monthly budget." in text
    assert "Needs approval" not in text
    both = bb.picker_budget_text(check(workspace=BudgetLine(WORKSPACE, 10.0, 0.0)))
    assert "would take you and the workspace past" in both
    crossing = bb.picker_budget_text(check(cost_to_end=70.56, lifetime_hours=24, in_month=10))
    assert crossing.startswith("This run: $70.56 until it stops (24 h at $2.940/h), $10.00 of it")
    calm = bb.picker_budget_text(check(reasons=(), user=BudgetLine(ALICE, 500.0, 0.0)))
    assert ":warning:" not in calm and ":raised_hand:" not in calm
    long = bb.picker_budget_text(check(reasons=tuple("r" * 900 for _ in range(9))))
    assert len(long) <= 3000


# --- the approval request ---------------------------------------------------------------------


def test_approval_request_names_the_request_costs_budgets_and_buttons() -> None:
    payload = bb.approval_request_message(request(), now=NOW)
    check_message(payload)
    text = texts(payload["blocks"])
    assert f"<@{ALICE}> asks to deploy *JupyterLab* (#12)" in text
    assert "1× RTX 4090, 24 GB VRAM per GPU" in text
    assert "*Price*\n$2.940/h" in text and "*Disk*\n60 GB" in text
    assert "*Lifetime*\n8 hours" in text and "*Committed cost*\n$23.52" in text
    assert "*Requester this month*\n$150.00 spent · $30.00 committed · budget $200.00" in text
    assert "*Workspace this month*\n$400.00 spent · $100.00 committed · budget $1,000.00" in text
    assert "• over your monthly budget\n• above the approval price of $2.000/h" in text
    assert re.search(r"Expires <!date\^\d+\^[^|]+\|Dec 3, 17:00 UTC> unanswered \(in 23 h\)", text)
    assert f"Any of <@{BOB}> or <@{CAROL}> can decide." in text
    assert "only approver" not in text
    actions = next(b for b in payload["blocks"] if b["type"] == "actions")
    assert actions["block_id"] == "approval_12"
    approve, deny = actions["elements"]
    assert (approve["action_id"], approve["value"], approve["style"]) == (
        bb.ACTION_APPROVE,
        "12",
        "primary",
    )
    assert (deny["action_id"], deny["value"], deny["style"]) == (bb.ACTION_DENY, "12", "danger")
    assert payload["text"] == (
        f"<@{ALICE}> asks to deploy JupyterLab (#12) at $2.940/h: approve or deny"
    )


def test_approval_request_for_a_lone_approver_and_an_endless_run() -> None:
    endless = request(
        dep=pending(lifetime_hours=None, user_id=BOB, template_name="X" * 400),
        check=check(
            lifetime_hours=None,
            cost_to_end=None,
            in_month=70.0,
            user=BudgetLine(BOB, None, 0.0),
        ),
        approvers=frozenset({BOB}),
        self_only=True,
    )
    payload = bb.approval_request_message(endless, now=NOW)
    check_message(payload)
    text = texts(payload["blocks"])
    assert "You are the only approver, so you may approve your own request." in text
    assert "*Lifetime*\nUntil I stop it" in text
    assert "*Committed cost*\nno end time ($70.00 this month)" in text
    assert "budget none" in text
    assert "X" * 99 + "…" in text and "X" * 101 not in text
    late = bb.approval_request_message(request(), now=NOW + timedelta(days=2))
    assert "unanswered (now)" in texts(late["blocks"])


@pytest.mark.parametrize(
    ("decision", "line"),
    [
        (
            ApprovalDecision("approved", BOB, NOW),
            rf":white_check_mark: Approved by <@{BOB}> {DATE.pattern}",
        ),
        (
            ApprovalDecision("denied", CAROL, NOW, "too <!channel> pricey & big"),
            rf":no_entry_sign: Denied by <@{CAROL}> {DATE.pattern}: too &lt;!channel&gt; pricey "
            "&amp; big",
        ),
        (
            ApprovalDecision("denied", CAROL, NOW, "  "),
            rf":no_entry_sign: Denied by <@{CAROL}> {DATE.pattern}: no reason given",
        ),
        (
            ApprovalDecision("expired", None, NOW),
            rf":hourglass: Expired unanswered {DATE.pattern}: nothing was rented",
        ),
    ],
)
def test_approval_decided_keeps_the_facts_without_buttons(
    decision: ApprovalDecision, line: str
) -> None:
    payload = bb.approval_decided_message(request(), decision)
    check_message(payload)
    assert buttons(payload["blocks"]) == []
    text = texts(payload["blocks"])
    assert f"<@{ALICE}> asked to deploy *JupyterLab* (#12)" in text
    assert "*Committed cost*\n$23.52" in text and "Expires" not in text
    last = payload["blocks"][-1]
    assert last["block_id"] == "approval_decision_12"
    assert re.fullmatch(line, last["text"]["text"]), last["text"]["text"]
    assert "JupyterLab (#12)" in payload["text"]


def test_requester_decision_texts() -> None:
    dep = pending()
    approved = bb.requester_decision_text(dep, ApprovalDecision("approved", BOB, NOW))
    assert approved == (
        f"<@{ALICE}> your request for *JupyterLab* (#12) was approved by <@{BOB}>: "
        "renting the GPU now."
    )
    denied = bb.requester_decision_text(dep, ApprovalDecision("denied", BOB, NOW, "use an A10"))
    assert denied == (
        f"<@{ALICE}> your request for *JupyterLab* (#12) was denied by <@{BOB}>. "
        "Reason: use an A10. Nothing was rented."
    )
    silent = bb.requester_decision_text(dep, ApprovalDecision("denied", BOB, NOW))
    assert "Reason: none given. Nothing was rented." in silent
    expired = bb.requester_decision_text(
        dep, ApprovalDecision("expired", None, dep.created_at + timedelta(hours=24))
    )
    assert expired == (
        f"<@{ALICE}> your request for *JupyterLab* (#12) expired: no approver answered within "
        "24 h. Nothing was rented; deploy again if you still need it."
    )


def test_approvers_refusal_text() -> None:
    assert bb.approvers_refusal_text(frozenset({CAROL, BOB})) == (
        f"Only the approvers (<@{BOB}> or <@{CAROL}>) can decide on this request."
    )
    assert bb.approvers_refusal_text(frozenset()) == (
        "No approvers are configured: an operator sets APPROVERS or BOT_ADMINS."
    )
    own = bb.approvers_refusal_text(frozenset({ALICE, BOB}), requester=ALICE)
    assert own == f"You cannot decide on your own request: only the other approvers (<@{BOB}>) can."
    outsider = bb.approvers_refusal_text(frozenset({BOB}), requester=ALICE)
    assert outsider == f"Only the approvers (<@{BOB}>) can decide on this request."


# --- modals ---------------------------------------------------------------------------------


def test_pending_view_replaces_the_picker() -> None:
    view = view_dict(
        bb.pending_view(
            "A very long template name indeed",
            "C0DEPLOYS1",
            frozenset({CAROL, BOB}),
            ("over your monthly budget", "above $2.000/h"),
        )
    )
    assert view["callback_id"] == picker.CALLBACK_DEPLOY == "deploy_modal"
    assert view["title"]["text"] == "Deploy A very long temp…"
    assert view["close"]["text"] == "Close" and "submit" not in view
    text = texts(view["blocks"])
    assert text.startswith(
        ":raised_hand: *Sent for approval*: over your monthly budget; above $2.000/h."
    )
    assert f"Approvers: <@{BOB}>, <@{CAROL}>. Nothing is rented until one of them approves" in text
    assert "you will hear in <#C0DEPLOYS1>." in text
    nobody = texts(view_dict(bb.pending_view("T", "C1", frozenset(), ()))["blocks"])
    assert "No approvers are configured" in nobody


def test_deny_view_carries_the_clicked_message() -> None:
    view = view_dict(bb.deny_view(12, "JupyterLab", ALICE, channel="C0APPROVE", ts="1.2"))
    assert view["callback_id"] == bb.CALLBACK_DENY
    assert (view["title"]["text"], view["submit"]["text"], view["close"]["text"]) == (
        "Deny request",
        "Deny",
        "Cancel",
    )
    assert f"Deny <@{ALICE}>'s request to deploy *JupyterLab* (#12)?" in texts(view["blocks"])
    field = next(b for b in view["blocks"] if b.get("block_id") == bb.BLOCK_DENY_REASON)
    assert field["optional"] is True
    assert field["label"]["text"] == "Reason (optional; the requester sees it)"
    element = field["element"]
    assert element["action_id"] == bb.ACTION_DENY_REASON
    assert element["multiline"] is True and element["max_length"] == 500
    assert view["private_metadata"] == '{"dep":12,"channel":"C0APPROVE","ts":"1.2"}'
    assert bb.parse_deny_metadata(view["private_metadata"]) == (12, "C0APPROVE", "1.2")
    bare = view_dict(bb.deny_view(7, "T", ALICE, channel=None, ts="x" * 41))
    assert bb.parse_deny_metadata(bare["private_metadata"]) == (7, None, None)


@pytest.mark.parametrize(
    "text",
    ["", "null", "[]", '"dep"', "{", '{"dep":"12"}', '{"dep":0}', '{"dep":-3}', '{"dep":true}',
     '{"dep":1.5}', '{"dep":9223372036854775808}', '{"dep":2147483648}', '{"channel":"C1"}',
     "x" * 3001, None, 12],
)  # fmt: skip
def test_forged_deny_metadata_is_refused(text: Any) -> None:
    assert bb.parse_deny_metadata(text) is None


def test_deny_metadata_drops_odd_channels() -> None:
    forged = json.dumps({"dep": 5, "channel": ["C1"], "ts": "t" * 41, "extra": 1})
    assert bb.parse_deny_metadata(forged) == (5, None, None)
    assert bb.parse_deny_metadata('{"dep":5,"channel":"","ts":"1.2"}') == (5, None, "1.2")


def _state(block: str, action: str, element: Any) -> dict[str, Any]:
    return {"state": {"values": {block: {action: element}}}}


def test_deny_reason_value() -> None:
    block, action = bb.BLOCK_DENY_REASON, bb.ACTION_DENY_REASON
    assert bb.deny_reason_value(_state(block, action, {"value": "  too pricey \n"})) == "too pricey"
    assert bb.deny_reason_value(_state(block, action, {"value": "y" * 900})) == "y" * 500
    for forged in ({"value": None}, {"value": 12}, {}, None, "x", ["value"]):
        assert bb.deny_reason_value(_state(block, action, forged)) == ""
    for view in ({}, {"state": None}, {"state": {"values": []}}, {"state": "x"}):
        assert bb.deny_reason_value(view) == ""


def test_budget_view_shows_budgets_defaults_and_inputs() -> None:
    people = [BudgetLine(BOB, 300.0, 120.0, 30.0), BudgetLine(CAROL, None, 5.0)]
    view = view_dict(
        bb.budget_view(
            BudgetLine(WORKSPACE, 1000.0, 400.0, 120.0),
            people,
            workspace_default=1000.0,
            user_default=200.0,
            stored_workspace=500.0,
        )
    )
    assert view["callback_id"] == bb.CALLBACK_BUDGET
    assert (view["title"]["text"], view["submit"]["text"], view["close"]["text"]) == (
        "Monthly budgets",
        "Save",
        "Cancel",
    )
    text = texts(view["blocks"])
    assert "*Workspace this month* (set here)\n`▓▓▓▓▓░░░░░` 52% · $520.00 of $1,000.00" in text
    assert f"<@{BOB}> `▓▓▓▓▓░░░░░` 50% · $150.00 of $300.00" in text
    assert f"<@{CAROL}> No monthly budget · $5.00 this month" in text
    assert "Default for the workspace: $1,000.00 (WORKSPACE_MONTHLY_BUDGET)" in text
    assert "Default per person: $200.00 (USER_MONTHLY_BUDGET)" in text
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert list(inputs) == [bb.BLOCK_WORKSPACE_BUDGET, bb.BLOCK_BUDGET_USER, bb.BLOCK_USER_BUDGET]
    assert all(b["optional"] for b in inputs.values())
    ws = inputs[bb.BLOCK_WORKSPACE_BUDGET]
    assert ws["element"]["type"] == "plain_text_input"
    assert ws["element"]["action_id"] == bb.ACTION_WORKSPACE_BUDGET
    assert ws["element"]["initial_value"] == "500"
    assert ws["hint"]["text"] == (
        "Dollars per month. `none`: no budget. Empty: the default ($1,000.00)."
    )
    user = inputs[bb.BLOCK_BUDGET_USER]
    assert user["element"]["type"] == "users_select"
    assert user["element"]["action_id"] == bb.ACTION_BUDGET_USER
    assert user["label"]["text"] == "Set a person's budget"
    amount = inputs[bb.BLOCK_USER_BUDGET]
    assert amount["element"]["action_id"] == bb.ACTION_USER_BUDGET
    assert "initial_value" not in amount["element"]
    assert amount["hint"]["text"].endswith("Empty: the default ($200.00).")


@pytest.mark.parametrize(
    ("stored", "initial", "source"),
    [
        ("none", "none", "set here: no budget"),
        (None, None, "the default (WORKSPACE_MONTHLY_BUDGET)"),
        (1234.5, "1234.5", "set here"),
        (0.0, "0", "set here"),
        ("garbage", None, "the default"),
    ],
)
def test_budget_view_prefills_the_stored_workspace_budget(
    stored: float | str | None, initial: str | None, source: str
) -> None:
    view = view_dict(
        bb.budget_view(
            BudgetLine(WORKSPACE, None, 0.0),
            [],
            workspace_default=None,
            user_default=None,
            stored_workspace=stored,
        )
    )
    ws = next(b for b in view["blocks"] if b.get("block_id") == bb.BLOCK_WORKSPACE_BUDGET)
    assert ws["element"].get("initial_value") == initial
    assert ws["hint"]["text"].endswith("Empty: the default (no budget).")
    text = texts(view["blocks"])
    assert f"*Workspace this month* ({source}" in text
    assert "Default per person: none (USER_MONTHLY_BUDGET)" in text
    assert "Nobody has a budget of their own" in text


def test_budget_view_with_a_hundred_people_stays_within_limits() -> None:
    people = [BudgetLine(f"U{i:08d}", 100.0 + i, i * 1.5, 3.0) for i in range(100)]
    view = bb.budget_view(
        BudgetLine(WORKSPACE, 1e6, 123456.78, 9999.0),
        people,
        workspace_default=1e6,
        user_default=1e6,
        stored_workspace=1e6,
    )
    data = view_dict(view)
    assert len(data["blocks"]) <= 100
    text = texts(data["blocks"])
    assert "<@U00000039>" in text and "<@U00000040>" not in text
    assert "…and 60 more" in text
    assert all(len(b["text"]["text"]) <= 3000 for b in data["blocks"] if b["type"] == "section")
    initial = next(b for b in data["blocks"] if b.get("block_id") == bb.BLOCK_WORKSPACE_BUDGET)
    assert initial["element"]["initial_value"] == "1000000"


def test_budget_values_reads_untrusted_state() -> None:
    view = {
        "state": {
            "values": {
                bb.BLOCK_WORKSPACE_BUDGET: {bb.ACTION_WORKSPACE_BUDGET: {"value": " 500 "}},
                bb.BLOCK_BUDGET_USER: {bb.ACTION_BUDGET_USER: {"selected_user": BOB}},
                bb.BLOCK_USER_BUDGET: {bb.ACTION_USER_BUDGET: {"value": "none"}},
            }
        }
    }
    assert bb.budget_values(view) == {"workspace": "500", "user": BOB, "amount": "none"}
    empty = {"workspace": None, "user": None, "amount": None}
    assert bb.budget_values({}) == empty
    forged = {
        "state": {
            "values": {
                bb.BLOCK_WORKSPACE_BUDGET: {bb.ACTION_WORKSPACE_BUDGET: {"value": ""}},
                bb.BLOCK_BUDGET_USER: {bb.ACTION_BUDGET_USER: {"selected_user": ["U1"]}},
                bb.BLOCK_USER_BUDGET: "x",
            }
        }
    }
    assert bb.budget_values(forged) == empty
    assert bb.budget_values({"state": {"values": None}}) == empty


# --- alerts ---------------------------------------------------------------------------------


def test_budget_alerts_at_80_and_100_percent() -> None:
    warning = bb.budget_alert_message(
        BudgetAlert(BudgetLine(ALICE, 200.0, 140.0, 20.0), 80, "December 2026"), you=True
    )
    check_message(warning)
    text = texts(warning["blocks"])
    assert text.startswith(
        ":warning: You have used 80 % of your $200.00 budget for December 2026 "
        "($160.00 incl. committed)."
    )
    assert "`▓▓▓▓▓▓▓▓░░` 80% :warning:" in text
    reached = bb.budget_alert_message(
        BudgetAlert(BudgetLine(WORKSPACE, 1000.0, 1010.0), 100, "December 2026"), you=False
    )
    check_message(reached)
    assert texts(reached["blocks"]).startswith(
        ":no_entry: The workspace has reached its $1,000.00 budget for December 2026 "
        "($1,010.00 incl. committed): every new deployment now needs approval; running ones are "
        "not touched."
    )
    assert reached["text"] == "The workspace has reached its $1,000.00 budget for December 2026"


# --- the audit log --------------------------------------------------------------------------


def entry(i: int, **overrides: Any) -> AuditEntry:
    values: dict[str, Any] = {
        "at": NOW - timedelta(minutes=i),
        "actor": BOB,
        "action": "approved",
        "detail": f"request {i}",
        "deployment_id": 100 + i,
        "template_name": "JupyterLab",
    }
    values.update(overrides)
    return AuditEntry(**values)


def test_audit_lines_say_who_did_what_to_which_deployment() -> None:
    payload = bb.audit_message(
        [
            entry(1),
            entry(2, actor="system", action="approval_expired", detail=None),
            entry(3, action="budget_set", detail="workspace: $500", deployment_id=None),
            entry(4, action="frobnicated", detail="d" * 400 + "\nsecond line"),
        ],
        page=0,
        has_more=False,
    )
    check_message(payload)
    assert payload["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Audit log", "emoji": True},
    }
    text = texts(payload["blocks"])
    lines = [line for line in text.splitlines() if line.startswith("<!date")]
    assert len(lines) == 4
    assert re.fullmatch(
        rf"{DATE.pattern} · <@{BOB}> · approved · \*JupyterLab\* #101 · request 1", lines[0]
    )
    assert lines[1].endswith(" · the bot · approval expired unanswered · *JupyterLab* #102")
    assert lines[2].endswith(f" · <@{BOB}> · set a budget · workspace: $500")
    assert " · frobnicated · *JupyterLab* #104 · " + "d" * 199 + "…" in lines[3]
    assert buttons(payload["blocks"]) == []


def test_audit_pages_of_sixty_entries() -> None:
    entries = [entry(i, template_name="T" * 300, detail="x" * 300) for i in range(60)]
    first = bb.audit_message(entries, page=0, has_more=True)
    check_message(first)
    assert len(first["blocks"]) <= 50
    assert len(re.findall(r"<!date", texts(first["blocks"]))) == bb.AUDIT_PAGE_SIZE == 50
    assert [(b["action_id"], b["value"], b["text"]["text"]) for b in buttons(first["blocks"])] == [
        (bb.ACTION_AUDIT_NEXT, "1", "Older ▶")
    ]
    assert next(b for b in first["blocks"] if b["type"] == "actions")["block_id"] == "audit_paging"
    middle = bb.audit_message(entries[:10], page=3, has_more=True)
    check_message(middle)
    assert [(b["action_id"], b["value"]) for b in buttons(middle["blocks"])] == [
        (bb.ACTION_AUDIT_PREV, "2"),
        (bb.ACTION_AUDIT_NEXT, "4"),
    ]
    assert "events 151–160" in texts(middle["blocks"])
    last = bb.audit_message(entries[:3], page=1, has_more=False)
    assert [b["text"]["text"] for b in buttons(last["blocks"])] == ["◀ Newer"]


def test_empty_audit_log() -> None:
    payload = bb.audit_message([], page=0, has_more=False)
    check_message(payload)
    assert "No events yet." in texts(payload["blocks"])
    assert buttons(payload["blocks"]) == []


@pytest.mark.parametrize(
    ("value", "page"),
    [("0", 0), ("7", 7), ("9999", 9999), ("10000", 0), ("-1", 0), ("", 0), (" 3", 0),
     ("3 ", 0), ("٣", 0), ("1e3", 0), ("0x1", 0), (None, 0), (3, 0), (["3"], 0)],
)  # fmt: skip
def test_parse_audit_page(value: object, page: int) -> None:
    assert bb.parse_audit_page(value) == page


# --- the status message, listings, picker, costs, Home, digest -------------------------------


def test_status_message_of_a_pending_request() -> None:
    payload = status_message(pending(), TEMPLATE, now=NOW)
    check_message(payload)
    status = next(b for b in payload["blocks"] if b["block_id"] == "dep_status_12")
    assert status["text"]["text"] == (
        ":raised_hand: *Waiting for approval*: nothing is rented until an approver says yes.\n"
        f"Needs approval by <@{BOB}> or <@{CAROL}>: over your monthly budget"
    )
    assert buttons(payload["blocks"]) == [] and deployment_buttons(pending(), NOW) == []
    plain = status_message(pending(reason=None), TEMPLATE, now=NOW)
    assert (
        ":raised_hand: *Waiting for approval*: nothing is rented until an approver says yes."
        in (texts(plain["blocks"]))
    )


@pytest.mark.parametrize(
    ("status", "icon", "word"),
    [
        (DeploymentStatus.DENIED, ":no_entry_sign:", "Denied"),
        (DeploymentStatus.EXPIRED, ":hourglass:", "Expired"),
    ],
)
def test_status_message_of_a_decided_request(
    status: DeploymentStatus, icon: str, word: str
) -> None:
    assert STATUS_ICONS[status] == icon
    dep = pending(status=status, reason=f"by <@{BOB}>: too pricey")
    payload = status_message(dep, TEMPLATE, now=NOW)
    check_message(payload)
    text = texts(payload["blocks"])
    assert f"{icon} *{word}*: by <@{BOB}>: too pricey. Nothing was rented." in text
    assert buttons(payload["blocks"]) == []
    long = status_message(replace(dep, reason="r" * 5000), TEMPLATE, now=NOW)
    check_message(long)
    assert "r" * 1499 + "…. Nothing was rented." in texts(long["blocks"])
    assert STATUS_ICONS[DeploymentStatus.PENDING_APPROVAL] == ":raised_hand:"


def test_listing_reads_well_for_requests() -> None:
    waiting = deployment_text(pending(), NOW)
    assert ":raised_hand: waiting for approval · asked 1h 00m ago" in waiting
    assert "$2.94/h once approved · nothing rented yet" in waiting
    assert "so far" not in waiting and "pending_approval" not in waiting
    assert f"> Needs approval by <@{BOB}>" in waiting
    denied = deployment_text(pending(status=DeploymentStatus.DENIED, reason="too pricey"), NOW)
    assert ":no_entry_sign: denied · ended 1h 00m ago · $2.94/h asked · nothing rented" in denied
    assert "> too pricey" in denied
    expired = deployment_text(pending(status=DeploymentStatus.EXPIRED), NOW)
    assert ":hourglass: request expired" in expired
    listing = deployment_list_message(
        LIST_MINE, [pending(), make_dep(id=13)], now=NOW, can_manage=lambda d: True
    )
    check_message(listing)
    assert "costing $0.50/h now" in texts(listing["blocks"])  # a request costs nothing


def test_picker_shows_the_budget_text_and_redraws_on_run_length() -> None:
    state = picker.PickerState(template="jupyter-lab", channel="C0DEPLOYS1")
    offers = [RankedOffer(Offer(), True)]
    text = bb.picker_budget_text(check())
    blocks = picker_blocks(
        picker.picker_view(
            TEMPLATE,
            state,
            offers,
            simulated=False,
            selected_offer_id=4242,
            lifetimes=CHOICES,
            lifetime_hours=8,
            budget_text=text,
        )
    )
    ids = [b.get("block_id") for b in blocks]
    budget = blocks[ids.index(picker.BLOCK_COST) + 1]
    assert budget["block_id"] == "budget_block" == picker.BLOCK_BUDGET
    assert budget["type"] == "section" and budget["text"]["type"] == "mrkdwn"
    assert budget["text"]["text"] == text
    lifetime = blocks[ids.index(picker.BLOCK_LIFETIME)]
    assert lifetime["dispatch_action"] is True
    offer = blocks[ids.index(picker.BLOCK_OFFER)]
    assert offer["dispatch_action"] is True
    long = picker_blocks(
        picker.picker_view(TEMPLATE, state, offers, simulated=False, budget_text="b" * 5000)
    )
    assert len(next(b for b in long if b.get("block_id") == "budget_block")["text"]["text"]) == 2900
    without = picker_blocks(picker.picker_view(TEMPLATE, state, offers, simulated=False))
    assert "budget_block" not in [b.get("block_id") for b in without]


def report() -> pricing.CostReport:
    return pricing.CostReport(
        start=datetime(2026, 12, 1, tzinfo=UTC),
        end=datetime(2027, 1, 1, tzinfo=UTC),
        total=520.0,
        per_user=[pricing.UserCost(ALICE, 150.0, 3), pricing.UserCost(BOB, 370.0, 2)],
        deployments=5,
    )


def test_costs_message_lists_the_budgets() -> None:
    lines = [
        BudgetLine(WORKSPACE, 1000.0, 520.0, 0.0),
        BudgetLine(ALICE, 200.0, 150.0, 30.0),
        BudgetLine(BOB, None, 370.0),
    ]
    payload = costs_message(report(), viewer=ALICE, budgets=lines)
    check_message(payload)
    ids = [b.get("block_id") for b in payload["blocks"]]
    assert ids.index("costs_budgets") == 2  # right after the totals
    text = payload["blocks"][2]["text"]["text"]
    assert text.splitlines() == [
        "*Budgets*",
        "• Workspace: The workspace has $480.00 of its $1,000.00 left this month.",
        "   `▓▓▓▓▓░░░░░` 52% · $520.00 of $1,000.00 · $480.00 left",
        f"• <@{ALICE}> (you): You have $20.00 of your $200.00 left this month.",
        "   `▓▓▓▓▓▓▓▓▓░` 90% :warning: · $180.00 of $200.00 (incl. $30.00 committed) · $20.00 left",
        f"• <@{BOB}> has no monthly budget.",
        "   No monthly budget · $370.00 this month",
    ]
    plain = costs_message(report(), viewer=ALICE)
    assert "costs_budgets" not in [b.get("block_id") for b in plain["blocks"]]
    many = [BudgetLine(f"U{i:08d}", 10.0 * i, 1e5) for i in range(60)] + [lines[1]]
    crowded = costs_message(report(), viewer=ALICE, budgets=many)
    check_message(crowded)
    crowd = texts(crowded["blocks"])
    assert f"<@{ALICE}> (you)" in crowd and "…and 50 more" in crowd


def test_home_shows_the_budget_bar_only_when_given() -> None:
    kwargs: dict[str, Any] = {
        "deployments": [make_dep()],
        "now": NOW,
        "user_month": 150.0,
        "workspace_month": 520.0,
        "month_label": "December 2026",
    }
    home = home_view(
        **kwargs,
        user_budget=BudgetLine(ALICE, 200.0, 84.0, 20.0),
        workspace_budget=BudgetLine(WORKSPACE, 1000.0, 520.0),
    )
    check_blocks(home["blocks"], max_blocks=100)
    ids = [b.get("block_id") for b in home["blocks"]]
    bar = home["blocks"][ids.index("home_budget")]
    assert bar["text"]["text"] == (
        "*Your budget for December 2026*\n"
        "`▓▓▓▓▓░░░░░` 52% · $104.00 of $200.00 (incl. $20.00 committed) · $96.00 left"
    )
    assert home["blocks"][ids.index("home_budget") - 1]["type"] == "section"  # the spend fields
    context = home["blocks"][ids.index("home_workspace_budget")]
    assert context["elements"][0]["text"] == (
        "The workspace has $480.00 of its $1,000.00 left this month."
    )
    no_workspace_budget = home_view(
        **kwargs,
        user_budget=BudgetLine(ALICE, None, 84.0),
        workspace_budget=BudgetLine(WORKSPACE, None, 520.0),
    )
    other = [b.get("block_id") for b in no_workspace_budget["blocks"]]
    assert "home_budget" in other and "home_workspace_budget" not in other
    assert "No monthly budget · $84.00 this month" in texts(no_workspace_budget["blocks"])
    assert home_view(**kwargs) == home_view(**kwargs, user_budget=None, workspace_budget=None)
    assert "budget" not in texts(home_view(**kwargs)["blocks"]).lower()


def test_digest_lists_the_budgets() -> None:
    data = DigestData(
        now=NOW,
        tz="UTC",
        running=[],
        stopped=[],
        spend=[(ALICE, 150.0)],
        month_label="December 2026",
        budgets=[BudgetLine(WORKSPACE, 1000.0, 520.0), BudgetLine(ALICE, 200.0, 170.0)],
    )
    payload = lt.digest_message(data)
    check_message(payload)
    text = texts(payload["blocks"])
    assert (
        "*Budgets (December 2026)*\n"
        "• Workspace: `▓▓▓▓▓░░░░░` 52% · $520.00 of $1,000.00 · $480.00 left\n"
        f"• <@{ALICE}>: `▓▓▓▓▓▓▓▓░░` 85% :warning: · $170.00 of $200.00 · $30.00 left"
    ) in text
    assert "Budgets" not in texts(lt.digest_message(replace(data, budgets=()))["blocks"])
    crowded = replace(data, budgets=[BudgetLine(f"U{i:08d}", 1.0, 2.0) for i in range(300)])
    many = lt.digest_message(crowded)
    check_message(many)
    assert len(many["blocks"]) <= 25 and "…and 270 more" in texts(many["blocks"])


def test_budget_saved_view_lists_the_changes() -> None:
    said = [f":white_check_mark: <@{BOB}>'s budget is now $300.00 a month.", "x" * 5000]
    view = view_dict(bb.budget_saved_view(said))
    assert view["callback_id"] == bb.CALLBACK_BUDGET and "submit" not in view
    assert view["close"]["text"] == "Done"
    text = texts(view["blocks"])
    assert text.startswith(said[0]) and "x" * 599 + "…" in text
    assert texts(view_dict(bb.budget_saved_view([]))["blocks"]) == "Nothing changed."
    many = texts(view_dict(bb.budget_saved_view([f"line {i}" for i in range(30)]))["blocks"])
    assert "line 19" in many and "line 20" not in many and "…and 10 more" in many
