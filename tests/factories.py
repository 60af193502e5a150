"""Rows for tests, written through storage's own functions (so every row is one the bot could
have written: its ``requested`` event, its status events, its version).

:func:`new_deployment` is the one way the tests build a deployment row by hand: a JupyterLab
deployment of Alice's in the test workspace's ``#gpu-deploys`` on one RTX 4090, moved along
the ordinary path to the ``status`` asked for. Every field can be given; a test names the ones
its assertions depend on.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from storage import DeploymentRecord, DeploymentStatus, SessionFactory, repo

TEAM_ID = "T0GPU0001"
ALICE = "U0ALICE01"
CHANNEL = "C0DEPLOYS1"

#: The statuses a row passes through after ``creating`` to reach each status.
PATHS: dict[str, tuple[str, ...]] = {
    "creating": (),
    "provisioning": ("provisioning",),
    "ready": ("provisioning", "ready"),
    "stopped": ("provisioning", "ready", "stopped"),
    "destroyed": ("provisioning", "ready", "destroyed"),
    "failed": (),  # marked failed from creating
}


def new_deployment(
    sf: SessionFactory,
    *,
    status: str = "creating",
    key: str | None = None,
    team_id: str = TEAM_ID,
    user_id: str = ALICE,
    channel_id: str = CHANNEL,
    template_slug: str = "jupyter-lab",
    template_name: str = "JupyterLab",
    offer_id: int = 1,
    gpu_name: str = "RTX 4090",
    num_gpus: int = 1,
    gpu_ram_gb: float = 24.0,
    dph_total: float = 0.4,
    disk_gb: float = 16.0,
    simulated: bool = True,
    now: datetime | None = None,
    instance_id: int | None = None,
    message: bool | str = False,
    **create: Any,
) -> DeploymentRecord:
    """Insert a deployment (:func:`storage.repo.create_deployment`) and move it to ``status``.

    Args:
        sf: the session factory of the test's database.
        status: ``creating`` (as inserted), ``provisioning``, ``ready``, ``stopped``,
            ``destroyed`` (along :data:`PATHS`) or ``failed`` (from ``creating``).
        key: the request key (default: a random one).
        now: when everything happens (default: storage's clock, i.e. the real now).
        instance_id: attached (:func:`storage.repo.set_instance`) before the status moves.
        message: the status message in ``channel_id`` (:func:`storage.repo.set_message`, at
            storage's clock): its ``ts``, or True for ``1732900000.<900000 + id>``.
        create: further keyword arguments of ``create_deployment`` (``web_password``,
            ``lifetime_hours``, ``enterprise_id``, ``approval``, ...). Units as there: GB,
            dollars per hour.

    Returns:
        The row as stored after the last step.

    Raises:
        AssertionError: when ``key`` is taken or a step is refused (a test's set-up is wrong).
    """
    record, created = repo.create_deployment(
        sf,
        request_key=key or uuid.uuid4().hex,
        team_id=team_id,
        user_id=user_id,
        channel_id=channel_id,
        template_slug=template_slug,
        template_name=template_name,
        offer_id=offer_id,
        gpu_name=gpu_name,
        num_gpus=num_gpus,
        gpu_ram_gb=gpu_ram_gb,
        dph_total=dph_total,
        disk_gb=disk_gb,
        simulated=simulated,
        now=now,
        **create,
    )
    assert created, f"request key {key!r} is already taken"
    if instance_id is not None:
        assert repo.set_instance(sf, record.id, instance_id, now=now)
    current = record.status
    for name in PATHS[status]:
        step = DeploymentStatus(name)
        assert repo.update_status(
            sf, record.id, expected_status=current, new_status=step, now=now
        ), f"{current} -> {step} refused"
        current = step
    if status == "failed":
        assert repo.mark_failed(sf, record.id, "it broke", now=now)
    if message:
        ts = message if isinstance(message, str) else f"1732900000.{900000 + record.id}"
        repo.set_message(sf, record.id, channel_id, ts)
    stored = repo.get_deployment(sf, record.id)
    assert stored is not None
    return stored
