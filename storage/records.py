"""Frozen snapshots of rows, safe to use after the transaction that read them has ended."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from storage.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    Deployment,
    DeploymentEvent,
    DeploymentStatus,
    Lease,
)


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """A read-only copy of a ``deployments`` row; see :class:`storage.models.Deployment`.

    Units: ``gpu_ram_gb`` GB per GPU, ``disk_gb`` GB, ``dph_total`` $/hour, ``*_seconds``
    seconds; datetimes are aware UTC.
    """

    id: int
    team_id: str
    user_id: str
    channel_id: str
    message_channel: str | None
    message_ts: str | None
    template_slug: str
    template_name: str
    offer_id: int
    instance_id: int | None
    gpu_name: str
    num_gpus: int
    gpu_ram_gb: float
    dph_total: float
    disk_gb: float
    status: DeploymentStatus
    reason: str | None
    status_msg: str | None
    request_key: str
    simulated: bool
    web_password: str | None
    public_ip: str | None
    ports_json: str | None
    ssh_host: str | None
    ssh_port: int | None
    created_at: datetime
    updated_at: datetime
    provisioning_at: datetime | None
    ready_at: datetime | None
    ready_notified_at: datetime | None
    secrets_sent_at: datetime | None
    stopped_at: datetime | None
    destroyed_at: datetime | None
    failed_at: datetime | None
    ready_seconds: float
    stopped_seconds: float
    last_state_change_at: datetime
    version: int
    lifetime_hours: float | None = None
    lifetime_started_at: datetime | None = None
    ends_at: datetime | None = None
    expiry_warned_at: datetime | None = None
    idle_since: datetime | None = None
    idle_warned_at: datetime | None = None
    idle_snoozed_until: datetime | None = None
    message_stale_since: datetime | None = None
    enterprise_id: str | None = None
    """Enterprise Grid organisation (``E…``) of ``team_id``; None outside Grid."""
    desired_state: str | None = None
    """``running``, ``stopped`` or ``destroyed`` (see :class:`storage.models.Deployment`)."""
    desired_reason: str | None = None
    desired_actor: str | None = None
    desired_at: datetime | None = None
    desired_done_at: datetime | None = None
    desired_next_try_at: datetime | None = None
    """Set while the desired state is not confirmed on Vast.ai."""
    desired_gave_up_at: datetime | None = None
    desired_tries: int = 0

    def __repr__(self) -> str:
        # Keep the generated secret out of logs and tracebacks.
        return (
            f"DeploymentRecord(id={self.id}, status={self.status!r}, "
            f"template_slug={self.template_slug!r}, instance_id={self.instance_id}, "
            f"request_key={self.request_key!r})"
        )

    @property
    def is_active(self) -> bool:
        """True in ``creating``, ``provisioning`` or ``ready`` (the poller follows these)."""
        return self.status in ACTIVE_STATUSES

    @property
    def is_final(self) -> bool:
        """True in a state the deployment never leaves (:data:`~storage.models.FINAL_STATUSES`:
        ``failed``, ``destroyed``, ``denied``, ``expired``)."""
        return self.status in FINAL_STATUSES

    @property
    def port_map(self) -> dict[int, int]:
        """Container port → host port, decoded from ``ports_json`` (empty when unset)."""
        return decode_port_map(self.ports_json)

    @classmethod
    def from_model(cls, row: Deployment) -> DeploymentRecord:
        """Copy every column of ``row``; ``status`` as a :class:`DeploymentStatus` even when the
        row was just assigned a plain string."""
        values = {f.name: getattr(row, f.name) for f in fields(cls)}
        values["status"] = DeploymentStatus(values["status"])
        return cls(**values)

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> DeploymentRecord:
        """Build from a Core result row of every ``deployments`` column (name → value)."""
        values = {name: row[name] for name in _DEPLOYMENT_FIELDS}
        values["status"] = DeploymentStatus(values["status"])
        return cls(**values)


_DEPLOYMENT_FIELDS = tuple(f.name for f in fields(DeploymentRecord))


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A read-only copy of a ``deployment_events`` row.

    ``from_status``/``to_status`` are set on ``status`` events only (the change they record);
    ``detail`` is text for people and is never parsed.
    """

    id: int
    deployment_id: int
    at: datetime
    actor: str
    action: str
    detail: str | None
    from_status: DeploymentStatus | None = None
    to_status: DeploymentStatus | None = None

    @classmethod
    def from_model(cls, row: DeploymentEvent) -> EventRecord:
        """Copy every column of ``row`` (statuses as :class:`DeploymentStatus`)."""
        values = {f.name: getattr(row, f.name) for f in fields(cls)}
        for name in ("from_status", "to_status"):
            if values[name] is not None:
                values[name] = DeploymentStatus(values[name])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A read-only copy of a ``leases`` row."""

    name: str
    holder: str
    expires_at: datetime

    @classmethod
    def from_model(cls, row: Lease) -> LeaseRecord:
        """Copy every column of ``row``."""
        return cls(name=row.name, holder=row.holder, expires_at=row.expires_at)


def encode_port_map(ports: dict[int, int]) -> str:
    """Encode container port → host port as the JSON text stored in ``ports_json``."""
    return json.dumps({str(container): int(host) for container, host in sorted(ports.items())})


def decode_port_map(text: str | None) -> dict[int, int]:
    """Decode ``ports_json``; ``None`` or empty text gives ``{}``.

    Raises:
        ValueError: when the text is not a JSON object of integer-like keys and values.
    """
    if not text:
        return {}
    raw: Any = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("ports_json must be a JSON object")
    return {int(container): int(host) for container, host in raw.items()}


@dataclass(frozen=True, slots=True)
class NewApproval:
    """The approval a new deployment must wait for (:func:`storage.repo.create_deployment`):
    ``approvers`` (Slack user ids), ``reasons`` (text for people), ``expires_at`` (aware UTC)."""

    approvers: frozenset[str]
    reasons: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """A read-only copy of an ``approvals`` row (``messages``: the approval messages sent, as
    ``(channel, ts)``; ``decision`` None while pending, else ``approved``/``denied``/
    ``expired``)."""

    deployment_id: int
    team_id: str
    approvers: frozenset[str]
    reasons: tuple[str, ...]
    requested_at: datetime
    expires_at: datetime
    messages: tuple[tuple[str, str], ...]
    decision: str | None
    decided_by: str | None
    decided_at: datetime | None
    note: str | None

    @classmethod
    def from_model(cls, row: Any) -> ApprovalRecord:
        """Copy an :class:`storage.models.Approval` row."""
        raw = json.loads(row.messages_json or "[]")
        messages = tuple(
            (str(item[0]), str(item[1]))
            for item in raw
            if isinstance(item, list) and len(item) == 2
        )
        return cls(
            deployment_id=row.deployment_id,
            team_id=row.team_id,
            approvers=frozenset(a for a in row.approvers.split(",") if a),
            reasons=tuple(r for r in row.reasons.split("\n") if r),
            requested_at=row.requested_at,
            expires_at=row.expires_at,
            messages=messages,
            decision=row.decision,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            note=row.note,
        )


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of a workspace's audit log: a deployment event (``deployment_id`` and
    ``template_name`` set) or a workspace event such as a budget change (both None)."""

    at: datetime
    actor: str
    action: str
    detail: str | None
    deployment_id: int | None
    template_name: str | None
