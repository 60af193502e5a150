"""SQLAlchemy 2 models: deployments, their append-only event log, and poller leases.

Every datetime column is :class:`~storage.types.UTCDateTime` (aware UTC in, aware UTC out).
Money is US dollars; ``dph_total`` is Vast.ai's total price in $/hour (docs/VAST_API.md §2, offer
field ``dph_total``). Sizes are GB (``gpu_ram_gb`` is per GPU; Vast.ai reports ``gpu_ram`` in MB,
so callers convert). Schema changes go through Alembic (``storage/migrations``), never
``create_all``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.types import UTCDateTime

#: Constraint names are fixed so that Alembic batch mode on SQLite can find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base whose metadata carries :data:`NAMING_CONVENTION`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DeploymentStatus(StrEnum):
    """Values of ``deployments.status`` (docs/ARCHITECTURE.md "One deployment through the files").

    ``creating`` → ``provisioning`` → ``ready`` → (``stopped`` ⇄ ``ready``) → ``destroyed``;
    ``failed`` from any state, with a reason. With approvals, a request waits in
    ``pending_approval`` and ends ``denied`` or ``expired`` when not approved. A StrEnum, so a
    member equals its string (``DeploymentStatus.READY == "ready"``). Every value fits the
    ``String(16)`` column.
    """

    CREATING = "creating"
    PROVISIONING = "provisioning"
    READY = "ready"
    STOPPED = "stopped"
    FAILED = "failed"
    DESTROYED = "destroyed"
    PENDING_APPROVAL = "pending_approval"
    DENIED = "denied"
    EXPIRED = "expired"


#: States on the way to, or at, a running app (a stopped one is not active: it is parked).
ACTIVE_STATUSES: frozenset[DeploymentStatus] = frozenset(
    {DeploymentStatus.CREATING, DeploymentStatus.PROVISIONING, DeploymentStatus.READY}
)
#: States with an instance that still exists and may bill: the active ones plus ``stopped``.
#: The status poller follows these; listings show them as running.
LIVE_STATUSES: frozenset[DeploymentStatus] = ACTIVE_STATUSES | {DeploymentStatus.STOPPED}
#: States a deployment never leaves.
FINAL_STATUSES: frozenset[DeploymentStatus] = frozenset(
    {
        DeploymentStatus.FAILED,
        DeploymentStatus.DESTROYED,
        DeploymentStatus.DENIED,
        DeploymentStatus.EXPIRED,
    }
)

STATUS_LENGTH = 16
"""Width of every status column (``String(16)``); the longest value, ``pending_approval``, fits."""


def status_type() -> Enum:
    """Column type of a :class:`DeploymentStatus`: the enum's values in a plain ``VARCHAR(16)``.

    Not a native (PostgreSQL ``CREATE TYPE``) enum and no CHECK constraint, so the schema is the
    ``String(16)`` of the migrations. Binding accepts members and their strings; an unknown
    string raises (``validate_strings``); reading gives members.
    """
    return Enum(
        DeploymentStatus,
        native_enum=False,
        create_constraint=False,
        values_callable=lambda members: [m.value for m in members],
        length=STATUS_LENGTH,
        validate_strings=True,
    )


class Deployment(Base):
    """One rental of a Vast.ai instance for one template, requested from Slack."""

    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_status", "status"),
        Index("ix_deployments_team_user", "team_id", "user_id"),
        Index("ix_deployments_message_stale_since", "message_stale_since"),
        Index("ix_deployments_desired_next_try_at", "desired_next_try_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(32))
    """Slack workspace id (``T…``)."""
    user_id: Mapped[str] = mapped_column(String(32))
    """Slack user id of the requester (``U…``/``W…``)."""
    channel_id: Mapped[str] = mapped_column(String(32))
    """Channel the requester chose for updates."""
    message_channel: Mapped[str | None] = mapped_column(String(32), default=None)
    """Channel of the status message: ``channel_id``, or a DM (``D…``) if posting there failed."""
    message_ts: Mapped[str | None] = mapped_column(String(32), default=None)
    """Slack ``ts`` of the status message."""
    template_slug: Mapped[str] = mapped_column(String(64))
    template_name: Mapped[str] = mapped_column(String(200))
    offer_id: Mapped[int] = mapped_column(Integer)
    """Vast.ai offer (ask) id the instance was rented from."""
    instance_id: Mapped[int | None] = mapped_column(Integer, unique=True, default=None)
    """Vast.ai instance id (the create call's ``new_contract``); unique across deployments."""
    gpu_name: Mapped[str] = mapped_column(String(100))
    num_gpus: Mapped[int] = mapped_column(Integer)
    gpu_ram_gb: Mapped[float] = mapped_column(Float)
    """VRAM per GPU in GB."""
    dph_total: Mapped[float] = mapped_column(Float)
    """Total price in $/hour."""
    disk_gb: Mapped[float] = mapped_column(Float)
    """Disk size in GB."""
    status: Mapped[DeploymentStatus] = mapped_column(
        status_type(), default=DeploymentStatus.CREATING
    )
    """Current state (:class:`DeploymentStatus`), stored as its string value."""
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    """Why the deployment failed, in words a user can read."""
    status_msg: Mapped[str | None] = mapped_column(Text, default=None)
    """Vast.ai's last ``status_msg`` for the instance."""
    request_key: Mapped[str] = mapped_column(String(200), unique=True)
    """Idempotency key (from the modal's view id): one row per submission."""
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    web_password: Mapped[str | None] = mapped_column(String(200), default=None)
    """Generated secret for apps behind a login; shown only to the requester, never logged."""
    public_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    ports_json: Mapped[str | None] = mapped_column(Text, default=None)
    """JSON object of container port → host port, e.g. ``{"8888": 41234}``."""
    ssh_host: Mapped[str | None] = mapped_column(String(255), default=None)
    ssh_port: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    provisioning_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """First entry into ``provisioning``."""
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """First entry into ``ready`` (time to ready = ``ready_at - created_at``)."""
    ready_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """Set once, by the process that won the right to post the ready notification."""
    secrets_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the requester was sent the deployment's secrets by DM (claimed like the ready
    notification, so the DM goes out once and is retried when Slack refused it)."""
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """Latest entry into ``stopped``."""
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ready_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    """Seconds spent in ``ready`` in closed periods (the open one is added by the reader)."""
    stopped_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    """Seconds spent in ``stopped`` in closed periods."""
    last_state_change_at: Mapped[datetime] = mapped_column(UTCDateTime)
    """When ``status`` last changed (start of the current period)."""
    version: Mapped[int] = mapped_column(Integer, default=1)
    """Incremented by every update through :mod:`storage.repo`."""
    lifetime_hours: Mapped[float | None] = mapped_column(Float, default=None)
    """The run time chosen in the picker ("Run for"), in hours; None = until someone stops it.
    A Start begins a new run of the same length."""
    lifetime_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """Start of the current run (creation, or the latest Start): extensions past
    ``MAX_LIFETIME_HOURS`` from here need an admin."""
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the bot stops (or destroys, by ``ON_EXPIRY``) the deployment unless someone extends
    it; None = no end."""
    expiry_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the owner was warned of ``ends_at`` (claimed once; cleared by an extension)."""
    idle_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """First poll that saw the GPU below ``IDLE_GPU_PERCENT`` in the current idle stretch."""
    idle_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the owner was asked about the idle GPU (claimed once per idle stretch)."""
    idle_snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """**Keep running** was pressed: no idle checks until then."""
    message_stale_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the latest edit of the status message became due (a change of state, an action):
    cleared once Slack accepted (or refused for good) an edit rendered after it; the message
    reconciler re-sends rows where it is set (:mod:`bot.services.message_sync`), also after a
    restart. None: the message shows the row."""
    enterprise_id: Mapped[str | None] = mapped_column(String(32), default=None)
    """Slack Enterprise Grid organization id (``E…``) of the workspace (``team_id``), None
    outside a Grid. Migration 0007 added it."""
    # Desired state (migration 0008): what should be true of the instance, written in the
    # transaction that claims an act (by a person or a rule) before Vast.ai is called.
    desired_state: Mapped[str | None] = mapped_column(String(16), default=None)
    """``running``, ``stopped`` or ``destroyed``; None: no act recorded (followed as Vast.ai
    reports it)."""
    desired_reason: Mapped[str | None] = mapped_column(Text, default=None)
    """Why (a person's click, a rule's reason text)."""
    desired_actor: Mapped[str | None] = mapped_column(String(32), default=None)
    """Slack user id, or ``system`` for a rule."""
    desired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the desired state was recorded."""
    desired_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When Vast.ai accepted the act, or its data showed the state reached."""
    desired_next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """Set while the act is not confirmed: when the reconciler may send it (again)."""
    desired_gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the owner was told that the act kept failing (retries go on, less often)."""
    desired_tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Requests sent for the current desired state (the first included)."""


class DeploymentEvent(Base):
    """Append-only audit log: who did what to a deployment, and when."""

    __tablename__ = "deployment_events"
    __table_args__ = (Index("ix_deployment_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(32))
    """Slack user id, or ``"system"``."""
    action: Mapped[str] = mapped_column(String(32))
    """A :class:`storage.events.EventKind` value, e.g. requested, created, status, stop."""
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    """Free text for people (for ``status`` events ``"old -> new"``); never parsed."""
    from_status: Mapped[DeploymentStatus | None] = mapped_column(status_type(), default=None)
    """For ``status`` events: the status left; ``None`` for every other action."""
    to_status: Mapped[DeploymentStatus | None] = mapped_column(status_type(), default=None)
    """For ``status`` events: the status entered; ``None`` for every other action."""


class Claim(Base):
    """A one-time claim by name, e.g. ``reminder:stopped:42:2026-12-02`` or
    ``digest:2026-12-02``: the primary key lets exactly one process insert it, so a reminder or
    a digest goes out once across processes and restarts."""

    __tablename__ = "claims"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SlackUser(Base):
    """Cached facts about a Slack user (``users.info``), e.g. the time zone for reminders."""

    __tablename__ = "slack_users"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tz: Mapped[str | None] = mapped_column(String(64), default=None)
    """IANA time zone name (``users.info`` ``user.tz``), None when Slack did not say."""
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BotState(Base):
    """Small named JSON documents the bot shares between processes (e.g. the unmanaged
    instances the poller saw last)."""

    __tablename__ = "bot_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Lease(Base):
    """A named, expiring lock row so that one process at a time runs e.g. the status poller."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


BUDGET_WORKSPACE = "workspace"
"""``budgets.subject`` of a workspace's own budget (any other subject is a Slack user id)."""


class Budget(Base):
    """A monthly budget set by an admin in Slack: for the workspace (``subject`` =
    :data:`BUDGET_WORKSPACE`) or one person (``subject`` = their user id). ``monthly_dollars``
    None means "no budget" on purpose (it overrides a default from the configuration); no row
    means the configured default applies."""

    __tablename__ = "budgets"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(32), primary_key=True)
    monthly_dollars: Mapped[float | None] = mapped_column(Float, default=None)
    """US dollars per calendar month (UTC)."""
    set_by: Mapped[str] = mapped_column(String(32))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Approval(Base):
    """The approval a ``pending_approval`` deployment waits for, and how it was decided.

    The decision itself is claimed on the deployment row (``pending_approval`` → ``creating``
    / ``denied`` / ``expired`` by a conditional update): this row records the request and the
    decision in the same transaction.
    """

    __tablename__ = "approvals"

    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    team_id: Mapped[str] = mapped_column(String(32))
    approvers: Mapped[str] = mapped_column(Text)
    """Comma-separated Slack user ids who may decide."""
    reasons: Mapped[str] = mapped_column(Text)
    """Why it needs approval, one reason per line (text for people)."""
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    messages_json: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of ``[channel, ts]``: the approval messages sent, so they can be updated."""
    decision: Mapped[str | None] = mapped_column(String(16), default=None)
    """``approved``, ``denied`` or ``expired``; None while pending."""
    decided_by: Mapped[str | None] = mapped_column(String(32), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    """The reason given with a denial."""


class TeamEvent(Base):
    """Workspace-wide audit events that concern no single deployment (budget changes)."""

    __tablename__ = "team_events"
    __table_args__ = (Index("ix_team_events_team_at", "team_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text, default=None)


class Workspace(Base):
    """A Slack workspace the bot serves, and its own settings.

    In OAuth mode a row is written when the workspace installs the app (the tokens themselves
    live in slack_sdk's ``slack_installations``/``slack_bots`` tables); in single-workspace mode
    rows come from the deployments already made (migration 0007) or from a workspace admin's
    settings. A workspace that uninstalled keeps its row (``uninstalled_at`` set) for the audit
    trail and for the lifetimes of what it left running.
    """

    __tablename__ = "workspaces"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    """Slack workspace id (``T…``)."""
    enterprise_id: Mapped[str | None] = mapped_column(String(32), default=None)
    """Enterprise Grid organization id (``E…``), None outside a Grid."""
    team_name: Mapped[str | None] = mapped_column(String(200), default=None)
    vast_key_ciphertext: Mapped[str | None] = mapped_column(Text, default=None)
    """Fernet token (``bot.crypto.SecretBox``) of the workspace's Vast.ai API key; None = no
    key yet (the workspace runs on the simulator). Never logged, never shown."""
    vast_key_last4: Mapped[str | None] = mapped_column(String(8), default=None)
    """Last characters of the key, shown as "key ending …a1b2"."""
    vast_user_id: Mapped[str | None] = mapped_column(String(32), default=None)
    """Vast.ai ``users/current`` ``id`` of the key's account when it was checked."""
    vast_key_set_by: Mapped[str | None] = mapped_column(String(32), default=None)
    """Slack user id of the admin who saved the key."""
    vast_key_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    """JSON object of per-workspace overrides (lifetimes, budgets, approvers, digest, admins);
    a missing name means the configured default."""
    installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """Latest OAuth install; None for a workspace known only from single-workspace mode."""
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When the app was uninstalled or its tokens revoked; cleared by a new install."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SshKey(Base):
    """One OpenSSH public key of a person, in one workspace (``/templates ssh-key``).

    Only public keys are stored; anything that looks like a private key is refused before it
    reaches storage. ``fingerprint`` is ``SHA256:<base64 without padding>`` of the key blob, as
    ``ssh-keygen -l`` prints it.
    """

    __tablename__ = "ssh_keys"
    __table_args__ = (
        UniqueConstraint(
            "team_id", "user_id", "fingerprint", name="uq_ssh_keys_team_user_fingerprint"
        ),
        Index("ix_ssh_keys_team_user", "team_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    key_type: Mapped[str] = mapped_column(String(32))
    """``ssh-ed25519``, ``ecdsa-sha2-nistp256`` (384, 521) or ``ssh-rsa``."""
    public_key: Mapped[str] = mapped_column(Text)
    """``<type> <base64>`` (the comment is kept apart), as sent to Vast.ai."""
    fingerprint: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeploymentCollaborator(Base):
    """A teammate a deployment is shared with (the owner is ``deployments.user_id``); the row
    exists while they have access."""

    __tablename__ = "deployment_collaborators"

    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    added_by: Mapped[str] = mapped_column(String(32))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ready_dm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    """When their own ready DM went out (claimed before sending, so it goes once)."""


class InstanceKeyState(StrEnum):
    """Values of ``instance_keys.state``."""

    ATTACH = "attach"
    """Wanted on the instance, not yet confirmed by Vast.ai."""
    ATTACHED = "attached"
    DETACH = "detach"
    """To be removed from the instance."""
    DETACHED = "detached"
    KEPT = "kept"
    """Could not be removed (Vast.ai refused or gave no key id): stays until destroyed."""


class InstanceKey(Base):
    """One public key the bot wants on, or has attached to, one deployment's instance.

    ``next_try_at`` is set while an attach or detach is not yet confirmed: the reconciler's
    work list (as ``deployments.desired_next_try_at`` is for stop/start/destroy).
    """

    __tablename__ = "instance_keys"
    __table_args__ = (
        UniqueConstraint(
            "deployment_id", "fingerprint", name="uq_instance_keys_deployment_fingerprint"
        ),
        Index("ix_instance_keys_next_try_at", "next_try_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(32))
    """Whose key it is (the owner or a collaborator)."""
    fingerprint: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(Text)
    """A copy: the key stays removable from the instance after its owner deletes it."""
    state: Mapped[str] = mapped_column(String(16))
    """An :class:`InstanceKeyState` value."""
    vast_key_id: Mapped[str | None] = mapped_column(String(64), default=None)
    """Vast.ai's id of the key on the instance, needed to detach it; None when unknown."""
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- slack_sdk's OAuth tables ------------------------------------------------------------
# Written by slack_sdk's SQLAlchemyInstallationStore and SQLAlchemyOAuthStateStore (OAuth
# mode), never through these objects: they are here so that the schema the migrations build
# (0007) is described in one place with the rest. Columns, types and indexes are those of
# slack_sdk's ``build_installations_table``/``build_bots_table``/``build_oauth_states_table``
# (its DateTime columns are naive UTC; a test checks the match), except that the token and
# webhook URL columns are TEXT (migration 0009): the bot stores them encrypted, longer.

slack_installations = Table(
    "slack_installations",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("enterprise_url", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", Text),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", Text),
    Column("bot_token_expires_at", DateTime),
    Column("user_id", String(32), nullable=False),
    Column("user_token", Text),
    Column("user_scopes", String(1000)),
    Column("user_refresh_token", Text),
    Column("user_token_expires_at", DateTime),
    Column("incoming_webhook_url", Text),
    Column("incoming_webhook_channel", String(200)),
    Column("incoming_webhook_channel_id", String(200)),
    Column("incoming_webhook_configuration_url", String(200)),
    Column("is_enterprise_install", Boolean, nullable=False),
    Column("token_type", String(32)),
    Column("installed_at", DateTime, nullable=False),
    Index(
        "slack_installations_idx",
        "client_id",
        "enterprise_id",
        "team_id",
        "user_id",
        "installed_at",
    ),
)
"""One row per OAuth install (and per user who authorized): bot and user tokens, scopes."""

slack_bots = Table(
    "slack_bots",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(32), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("enterprise_id", String(32)),
    Column("enterprise_name", String(200)),
    Column("team_id", String(32)),
    Column("team_name", String(200)),
    Column("bot_token", Text),
    Column("bot_id", String(32)),
    Column("bot_user_id", String(32)),
    Column("bot_scopes", String(1000)),
    Column("bot_refresh_token", Text),
    Column("bot_token_expires_at", DateTime),
    Column("is_enterprise_install", Boolean, nullable=False),
    Column("installed_at", DateTime, nullable=False),
    Index("slack_bots_idx", "client_id", "enterprise_id", "team_id", "installed_at"),
)
"""The bot token of each install (what Bolt's authorize reads), rotated in place."""

slack_oauth_states = Table(
    "slack_oauth_states",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("state", String(200), nullable=False),
    Column("expire_at", DateTime, nullable=False),
)
"""OAuth ``state`` values issued by ``/slack/install`` and consumed once by the redirect."""
