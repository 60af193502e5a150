"""Persistence for the bot: SQLAlchemy 2 models, engine set-up, migrations and repository.

Typical use::

    engine = make_engine(settings.database_url)   # e.g. "sqlite:///gpu_bot.db"
    migrate(engine)                                # Alembic to head; safe from two processes
    sf = make_session_factory(engine)
    dep, created = repo.create_deployment(sf, request_key=view_id, ...)

Imports nothing from ``bot`` or ``catalog``.
"""

from __future__ import annotations

from storage import repo
from storage.costs import deployment_hours_in_ready, seconds_in_ready, seconds_in_stopped
from storage.db import (
    DEFAULT_DATABASE_URL,
    SessionFactory,
    current_revision,
    default_database_url,
    head_revision,
    make_engine,
    make_session_factory,
    migrate,
    ping,
    read_transaction,
    write_transaction,
)
from storage.errors import DeploymentNotFoundError, InstanceAlreadyAttachedError, StorageError
from storage.models import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    LIVE_STATUSES,
    Base,
    Deployment,
    DeploymentEvent,
    DeploymentStatus,
    Lease,
)
from storage.records import (
    DeploymentRecord,
    EventRecord,
    LeaseRecord,
    decode_port_map,
    encode_port_map,
)
from storage.repo import (
    SYSTEM_ACTOR,
    UPDATABLE_FIELDS,
    acquire_lease,
    add_event,
    claim_ready_notification,
    claim_secrets_dm,
    count_ended_since,
    create_deployment,
    get_by_instance_id,
    get_by_request_key,
    get_deployment,
    get_lease,
    has_deployments,
    list_active,
    list_by_status,
    list_events,
    list_for_team,
    list_for_user,
    list_stuck_creating,
    mark_failed,
    release_lease,
    release_ready_notification,
    release_secrets_dm,
    set_instance,
    set_message,
    set_offer,
    update_status,
)
from storage.types import UTCDateTime, utcnow

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_DATABASE_URL",
    "FINAL_STATUSES",
    "LIVE_STATUSES",
    "SYSTEM_ACTOR",
    "UPDATABLE_FIELDS",
    "Base",
    "Deployment",
    "DeploymentEvent",
    "DeploymentNotFoundError",
    "DeploymentRecord",
    "DeploymentStatus",
    "EventRecord",
    "InstanceAlreadyAttachedError",
    "Lease",
    "LeaseRecord",
    "SessionFactory",
    "StorageError",
    "UTCDateTime",
    "acquire_lease",
    "add_event",
    "claim_ready_notification",
    "claim_secrets_dm",
    "count_ended_since",
    "create_deployment",
    "current_revision",
    "decode_port_map",
    "default_database_url",
    "deployment_hours_in_ready",
    "encode_port_map",
    "get_by_instance_id",
    "get_by_request_key",
    "get_deployment",
    "get_lease",
    "has_deployments",
    "head_revision",
    "list_active",
    "list_by_status",
    "list_events",
    "list_for_team",
    "list_for_user",
    "list_stuck_creating",
    "make_engine",
    "make_session_factory",
    "mark_failed",
    "migrate",
    "ping",
    "read_transaction",
    "release_lease",
    "release_ready_notification",
    "release_secrets_dm",
    "repo",
    "seconds_in_ready",
    "seconds_in_stopped",
    "set_instance",
    "set_message",
    "set_offer",
    "update_status",
    "utcnow",
    "write_transaction",
]
