"""Storage errors. Messages name ids and keys, never secrets.

::

    StorageError
    ├── DeploymentNotFoundError     no row with that id
    ├── InstanceAlreadyAttachedError   the Vast.ai instance id belongs to another deployment
    └── IllegalTransition           a change of status the state machine does not allow
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of the errors raised by :mod:`storage.repo`."""


class DeploymentNotFoundError(StorageError):
    """No deployment has the given id."""

    def __init__(self, deployment_id: int) -> None:
        super().__init__(f"deployment {deployment_id} not found")
        self.deployment_id = deployment_id


class InstanceAlreadyAttachedError(StorageError):
    """The instance id is already stored on another deployment (``instance_id`` is unique)."""

    def __init__(self, instance_id: int, deployment_id: int) -> None:
        super().__init__(f"instance {instance_id} is already attached to another deployment")
        self.instance_id = instance_id
        self.deployment_id = deployment_id


class IllegalTransition(StorageError):
    """A change of a deployment's status that :data:`storage.transitions.TRANSITIONS` does not
    allow (e.g. leaving ``destroyed``). Raised inside the write transaction, so nothing of
    that write is stored; a warning naming the deployment and both statuses is logged.

    Attributes:
        deployment_id: the deployment (None for a row not inserted yet).
        from_status: the status the row holds (None for a new row).
        to_status: the status that was refused.
    """

    def __init__(self, deployment_id: int | None, from_status: str | None, to_status: str) -> None:
        super().__init__(
            f"deployment {deployment_id}: illegal status change {from_status} -> {to_status}"
        )
        self.deployment_id = deployment_id
        self.from_status = from_status
        self.to_status = to_status
