"""Storage errors. Messages name ids and keys, never secrets.

::

    StorageError
    ├── DeploymentNotFoundError     no row with that id
    └── InstanceAlreadyAttachedError   the Vast.ai instance id belongs to another deployment
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
