"""Reading the GPU picker's submission (``deploy_modal``): the untrusted payload becomes a
:class:`Submission` or the ``ack`` that rejects it (inline errors, or a modal that says the
form is out of date). :class:`bot.slack.listeners.views.deploy.DeployViews` hands a
:class:`Submission` to the work pool."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from bot.services.lifetimes import LifetimeService
from bot.services.manage import ManageService
from bot.slack.blocks import deploy as deploy_blocks
from bot.slack.blocks import picker
from bot.slack.listeners.membership import user_team_of
from bot.slack.listeners.payloads import team_of
from catalog import Catalog, Template, disk_problem

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


@dataclass(frozen=True)
class _Lifetime:
    hours: float | None


def _enterprise_of(body: dict[str, Any]) -> str | None:
    """The Enterprise Grid organisation a payload came from, if any."""
    enterprise = (body.get("enterprise") or {}).get("id") or (body.get("team") or {}).get(
        "enterprise_id"
    )
    return str(enterprise)[:32] if enterprise else None


class SubmissionReader:
    """Validates a picker submission against the catalog and the workspace's lifetime policy
    (admins may choose run lengths past the maximum)."""

    def __init__(self, catalog: Catalog, lifetimes: LifetimeService, manage: ManageService) -> None:
        self.catalog = catalog
        self.lifetimes = lifetimes
        self.manage = manage

    def read(self, body: dict[str, Any], view: dict[str, Any]) -> Submission | dict[str, Any]:
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
        template = self.catalog.get(state.template)
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
        lifetime = self._lifetime(
            template, values["lifetime"], str(user_id or ""), str(team_id or "")
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

    def _lifetime(
        self, template: Template, value: Any, user_id: str, team_id: str
    ) -> _Lifetime | str:
        """The **Run for** choice (hours; None = until stopped), or the inline error. A picker
        without the input (opened before lifetimes existed) gets the default: never no end."""
        policy = self.lifetimes.policy_for(team_id)
        if value is None:
            return _Lifetime(policy.default_for(template))
        try:
            hours = picker.parse_lifetime_value(value)
        except ValueError:
            return "Choose how long it runs from the list."
        admin = self.manage.is_admin(team_id, user_id)
        refusal = policy.refusal(hours, admin=admin, admins=self.manage.admins.admins(team_id))
        if refusal is None and hours not in policy.choices(template, admin=admin):
            refusal = "Choose how long it runs from the list."  # a forged value
        return refusal if refusal is not None else _Lifetime(hours)
