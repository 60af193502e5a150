"""In-memory fakes of the services' ports, so that service and rule tests run without a server.

* :class:`RecordingMessages`: every method of :class:`bot.services.ports.Messages` and
  :class:`bot.services.ports.FileSender`, written out (a misspelt method fails, under mypy and
  at run time). Each message sent is recorded as ``(name, kwargs)`` in
  :attr:`~RecordingMessages.sent` and answers the outcome set in
  :attr:`~RecordingMessages.outcomes` (default: Slack took it).
  Questions that send nothing (``has_secrets``, ``visible_key``, ``user_tz``, ``team_id``,
  ``flush``) are recorded in :attr:`~RecordingMessages.asked` instead, so "nothing was sent"
  stays ``sent == []``.
* :class:`FakeVast`: the :class:`bot.vast.client.VastClient` methods the services call, over
  in-memory offers, instances and per-instance SSH keys, raising the client's own exceptions
  (:mod:`bot.vast.errors`); failures can be injected per method, before or after the call takes
  effect. :class:`FakeAccounts` hands it out as every deployment's account.
* :class:`ManualClock`: an aware UTC "now" that moves only when told.

A test keeps special behaviour local by subclassing (e.g. a ``secrets`` that refuses some
people).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, cast

from bot.notices import (
    ApprovalDecision,
    ApprovalRequest,
    AutoAction,
    BudgetAlert,
    DigestData,
    ExpiryNotice,
    IdleNotice,
    IntentNotice,
    Reminder,
)
from bot.services.accounts import ENV, AccountUnavailable, VastAccount
from bot.services.ports import Delivery, HomeData, PostedLike
from bot.vast.client import InstancePage, VastClient
from bot.vast.errors import NotFound, OfferUnavailable
from bot.vast.models import Instance, InstanceSshKey, Offer, User, key_body
from catalog import OfferLike, Template
from storage import DeploymentRecord

__all__ = [
    "QUESTIONS",
    "FakeAccounts",
    "FakePosted",
    "FakeVast",
    "ManualClock",
    "RecordingMessages",
]

T = TypeVar("T")

#: The port methods that ask Slack (or the fake) something and send no message.
QUESTIONS = frozenset({"has_secrets", "visible_key", "user_tz", "team_id", "flush"})


# -- Slack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakePosted:
    """Where a status message "landed" (:class:`bot.services.ports.PostedLike`)."""

    channel: str
    ts: str
    fallback_reason: str | None = None


class RecordingMessages:
    """Every message port (:class:`bot.services.ports.Messages` and
    :class:`bot.services.ports.FileSender`) in memory.

    Attributes:
        sent: each message, in order: ``(method name, its arguments by name)``; a deployment
            argument is recorded as the :class:`storage.DeploymentRecord` itself (``dep``).
        asked: the questions (:data:`QUESTIONS`), in the same shape.
        outcomes: method name -> what it returns (default: Slack took it: True, ``sent``,
            ``queued``, a :class:`FakePosted`, one approval message per recipient, None for
            ``upload_dm``/``user_tz``/``team_id``). ``refuse_all()`` makes every message fail.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.outcomes: dict[str, Any] = {}
        self._ts = 0

    # -- reading what was recorded ----------------------------------------------------------

    def calls(self, name: str) -> list[dict[str, Any]]:
        """The arguments of each ``name`` message (or question), in order."""
        return [kw for n, kw in [*self.sent, *self.asked] if n == name]

    def names(self) -> list[str]:
        """The names of the messages sent, in order."""
        return [n for n, _ in self.sent]

    @property
    def notes(self) -> list[tuple[int, str]]:
        """The thread notes (:meth:`note`) as ``(deployment id, text)``."""
        return [(kw["dep"].id, kw["text"]) for kw in self.calls("note")]

    @property
    def dms(self) -> list[tuple[str, str]]:
        """The plain DMs (:meth:`dm`) as ``(user_id, text)``."""
        return [(kw["user_id"], kw["text"]) for kw in self.calls("dm")]

    def refuse_all(self) -> None:
        """Every message from now on fails the way Slack's refusals come back (False,
        ``refused``, None, no approval message)."""
        for name in _SENDS:
            self.outcomes[name] = _REFUSED.get(name, False)

    # -- recording ----------------------------------------------------------------------------

    def _send(self, name: str, default: T, /, **kwargs: Any) -> T:
        self.sent.append((name, kwargs))
        return cast(T, self.outcomes.get(name, default))

    def _ask(self, name: str, default: T, /, **kwargs: Any) -> T:
        self.asked.append((name, kwargs))
        return cast(T, self.outcomes.get(name, default))

    def _next_ts(self) -> str:
        self._ts += 1
        return f"1732900000.{self._ts:06d}"

    # -- StatusMessages ---------------------------------------------------------------------

    def post_status(self, dep: DeploymentRecord, template: Template | None) -> PostedLike | None:
        return self._send(
            "post_status",
            FakePosted(dep.channel_id, self._next_ts()),
            dep=dep,
            template=template,
        )

    def show_status(
        self, dep: DeploymentRecord, template: Template | None, *, note: str | None = None
    ) -> Delivery:
        return self._send("show_status", Delivery.SENT, dep=dep, template=template, note=note)

    def queue_status(
        self,
        dep: DeploymentRecord,
        template: Template | None,
        *,
        note: str | None = None,
        on_done: Callable[[Delivery], object] | None = None,
        latest: Callable[[], DeploymentRecord | None] | None = None,
        replace: bool = True,
    ) -> Delivery:
        """Recorded and "sent" at once: ``on_done`` gets ``outcomes["queue_status_done"]``
        (default ``sent``) before this returns."""
        outcome = self._send(
            "queue_status",
            Delivery.QUEUED,
            dep=dep,
            template=template,
            note=note,
            on_done=on_done,
            latest=latest,
            replace=replace,
        )
        if on_done is not None and outcome == Delivery.QUEUED:
            on_done(self.outcomes.get("queue_status_done", Delivery.SENT))
        return outcome

    def flush(self, timeout: float) -> bool:
        return self._ask("flush", True, timeout=timeout)

    def visible_key(self, dep: DeploymentRecord, *, now: datetime) -> Hashable:
        """The row's id, status and version: any change to the row counts as visible."""
        self.asked.append(("visible_key", {"dep": dep, "now": now}))
        return (dep.id, dep.status, dep.version)

    # -- RentalNotices ------------------------------------------------------------------------

    def offer_switched(
        self, dep: DeploymentRecord, taken: OfferLike, replacement: OfferLike
    ) -> bool:
        return self._send("offer_switched", True, dep=dep, taken=taken, replacement=replacement)

    def deploy_failed(
        self, dep: DeploymentRecord, reason: str, *, retry_slug: str | None = None
    ) -> bool:
        return self._send("deploy_failed", True, dep=dep, reason=reason, retry_slug=retry_slug)

    # -- InstanceNotices ----------------------------------------------------------------------

    def ready(
        self, dep: DeploymentRecord, template: Template | None, *, jupyter_token: str | None
    ) -> bool:
        return self._send("ready", True, dep=dep, template=template, jupyter_token=jupyter_token)

    def failed(self, dep: DeploymentRecord) -> bool:
        return self._send("failed", True, dep=dep)

    def gone(self, dep: DeploymentRecord) -> bool:
        return self._send("gone", True, dep=dep)

    def stopped_outside(self, dep: DeploymentRecord) -> bool:
        return self._send("stopped_outside", True, dep=dep)

    # -- LoginMessages ------------------------------------------------------------------------

    def has_secrets(
        self, dep: DeploymentRecord, template: Template | None, *, jupyter_token: str | None
    ) -> bool:
        return self._ask(
            "has_secrets", True, dep=dep, template=template, jupyter_token=jupyter_token
        )

    def secrets(
        self,
        dep: DeploymentRecord,
        template: Template | None,
        *,
        user_id: str,
        has_ssh_key: bool,
        jupyter_token: str | None = None,
        keys_on_instance: bool = True,
    ) -> bool | None:
        return self._send(
            "secrets",
            True,
            dep=dep,
            template=template,
            user_id=user_id,
            has_ssh_key=has_ssh_key,
            jupyter_token=jupyter_token,
            keys_on_instance=keys_on_instance,
        )

    # -- ThreadNotes --------------------------------------------------------------------------

    def note(self, dep: DeploymentRecord, text: str) -> bool:
        return self._send("note", True, dep=dep, text=text)

    def action_done(self, dep: DeploymentRecord, action: str, actor: str, cost: float) -> bool:
        return self._send("action_done", True, dep=dep, action=action, actor=actor, cost=cost)

    def key_kept(
        self, dep: DeploymentRecord, *, user_id: str, fingerprint: str, reason: str
    ) -> bool:
        return self._send(
            "key_kept", True, dep=dep, user_id=user_id, fingerprint=fingerprint, reason=reason
        )

    # -- LifetimeNotices ----------------------------------------------------------------------

    def expiry_warning(self, dep: DeploymentRecord, notice: ExpiryNotice) -> bool:
        return self._send("expiry_warning", True, dep=dep, notice=notice)

    def idle_warning(self, dep: DeploymentRecord, notice: IdleNotice) -> bool:
        return self._send("idle_warning", True, dep=dep, notice=notice)

    def auto_action(self, dep: DeploymentRecord, done: AutoAction) -> bool:
        return self._send("auto_action", True, dep=dep, done=done)

    # -- IntentNotices ------------------------------------------------------------------------

    def intent_settled(self, dep: DeploymentRecord, notice: IntentNotice) -> bool:
        return self._send("intent_settled", True, dep=dep, notice=notice)

    def intent_failing(self, dep: DeploymentRecord, notice: IntentNotice) -> bool:
        return self._send("intent_failing", True, dep=dep, notice=notice)

    # -- ReminderMessages ---------------------------------------------------------------------

    def reminder(self, dep: DeploymentRecord, reminder: Reminder) -> bool:
        return self._send("reminder", True, dep=dep, reminder=reminder)

    def digest(self, channel: str, data: DigestData, *, team_id: str | None = None) -> bool:
        return self._send("digest", True, channel=channel, data=data, team_id=team_id)

    def user_tz(self, user_id: str, *, team_id: str | None = None) -> str | None:
        return self._ask("user_tz", None, user_id=user_id, team_id=team_id)

    # -- ApprovalMessages ---------------------------------------------------------------------

    def approval_request(
        self, request: ApprovalRequest, *, recipients: frozenset[str], channel: str | None
    ) -> list[tuple[str, str]]:
        """Default: one message in ``channel``, else one DM per recipient (sorted)."""
        where = [channel] if channel is not None else sorted(recipients)
        landed = [(c, self._next_ts()) for c in where]
        return self._send(
            "approval_request", landed, request=request, recipients=recipients, channel=channel
        )

    def approval_decided(
        self,
        request: ApprovalRequest,
        decision: ApprovalDecision,
        messages: Sequence[tuple[str, str]],
    ) -> None:
        self._send("approval_decided", None, request=request, decision=decision, messages=messages)

    def approval_reply(
        self, messages: Sequence[tuple[str, str]], text: str, *, team_id: str | None = None
    ) -> None:
        self._send("approval_reply", None, messages=messages, text=text, team_id=team_id)

    def requester_decision(self, dep: DeploymentRecord, decision: ApprovalDecision) -> bool:
        return self._send("requester_decision", True, dep=dep, decision=decision)

    # -- BudgetNotices ------------------------------------------------------------------------

    def budget_alert(
        self, user_id: str, alert: BudgetAlert, *, you: bool, team_id: str | None = None
    ) -> bool:
        return self._send(
            "budget_alert", True, user_id=user_id, alert=alert, you=you, team_id=team_id
        )

    # -- AdminAlerts --------------------------------------------------------------------------

    def poller_alert(
        self,
        user_id: str,
        *,
        down: bool,
        since: datetime,
        errors: bool,
        now: datetime,
        team_id: str | None = None,
        kind: Literal["poller", "rows"] = "poller",
    ) -> bool:
        return self._send(
            "poller_alert",
            True,
            user_id=user_id,
            down=down,
            since=since,
            errors=errors,
            now=now,
            team_id=team_id,
            kind=kind,
        )

    def labelled_on_empty_database(
        self, user_id: str, instance_ids: Sequence[int], *, team_id: str | None = None
    ) -> bool:
        return self._send(
            "labelled_on_empty_database",
            True,
            user_id=user_id,
            instance_ids=instance_ids,
            team_id=team_id,
        )

    def labelled_without_row(
        self, user_id: str, instance_ids: Sequence[int], *, team_id: str | None = None
    ) -> bool:
        return self._send(
            "labelled_without_row",
            True,
            user_id=user_id,
            instance_ids=instance_ids,
            team_id=team_id,
        )

    # -- DirectMessages -----------------------------------------------------------------------

    def dm(self, user_id: str, text: str, *, team_id: str | None = None) -> bool:
        return self._send("dm", True, user_id=user_id, text=text, team_id=team_id)

    # -- HomeTabs -----------------------------------------------------------------------------

    def publish_home(self, user_id: str, home: HomeData) -> bool:
        return self._send("publish_home", True, user_id=user_id, home=home)

    def team_id(self) -> str | None:
        return self._ask("team_id", None)

    # -- FileSender ---------------------------------------------------------------------------

    def upload_dm(
        self,
        user_id: str,
        *,
        filename: str,
        content: str,
        title: str,
        comment: str,
        team_id: str | None = None,
    ) -> str | None:
        return self._send(
            "upload_dm",
            None,
            user_id=user_id,
            filename=filename,
            content=content,
            title=title,
            comment=comment,
            team_id=team_id,
        )


#: What each message returns when Slack refused it (:meth:`RecordingMessages.refuse_all`).
_REFUSED: dict[str, Any] = {
    "post_status": None,
    "show_status": Delivery.REFUSED,
    "queue_status": Delivery.REFUSED,
    "secrets": False,
    "approval_request": [],
    "approval_decided": None,
    "approval_reply": None,
    "upload_dm": "not_allowed",
}
_SENDS = (
    frozenset(
        name
        for name in vars(RecordingMessages)
        if not name.startswith("_") and callable(getattr(RecordingMessages, name))
    )
    - QUESTIONS
    - {"calls", "names", "refuse_all"}
)


# -- Vast.ai ----------------------------------------------------------------------------------


@dataclass
class FakeVast:
    """The :class:`bot.vast.client.VastClient` methods the services call, in memory.

    Attributes:
        offers: what :meth:`search_offers` returns (the query is not applied).
        taken: offer ids that :meth:`create_instance` answers with OfferUnavailable.
        instances: the account's instances by id (:meth:`create_instance` adds one ``loading``;
            stop/start move ``actual_status``; destroy removes it).
        ssh_keys: per instance, its SSH keys as ``(key id, public key)``; an instance without
            an entry is unknown to the SSH calls (NotFound).
        fail: method name -> exceptions raised by its next calls, in order, before the call
            does anything (e.g. ``{"stop_instance": [VastError("400", status_code=400)]}``).
        fail_after: the same, raised after the call took effect (its answer lost: an
            ``Unreachable`` after a create that did make the instance).
        calls: each call as ``(method name, instance or offer id, or None)``.
        on_call: called with the same pair as each call begins, before any failure (e.g. to
            read the database at the moment the bot calls Vast.ai).
        credit: the account's credit in $.
    """

    offers: list[Offer] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)
    instances: dict[int, Instance] = field(default_factory=dict)
    ssh_keys: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    fail: dict[str, list[BaseException]] = field(default_factory=dict)
    fail_after: dict[str, list[BaseException]] = field(default_factory=dict)
    calls: list[tuple[str, int | None]] = field(default_factory=list)
    on_call: Callable[[str, int | None], object] | None = None
    credit: float = 100.0
    next_instance_id: int = 1000
    next_key_id: int = 100

    # -- helpers for tests --------------------------------------------------------------------

    def add_instance(self, instance_id: int, *, status: str = "running", **fields: Any) -> Instance:
        """Put an instance on the account (``actual_status`` ``status``; other
        :class:`bot.vast.models.Instance` fields by name), with no SSH keys."""
        instance = Instance(id=instance_id, actual_status=status, intended_status=status, **fields)
        self.instances[instance_id] = instance
        self.ssh_keys.setdefault(instance_id, [])
        return instance

    def status(self, instance_id: int) -> str | None:
        """The instance's ``actual_status``; None when it does not exist (destroyed)."""
        instance = self.instances.get(instance_id)
        return None if instance is None else instance.actual_status

    def count(self, name: str) -> int:
        """How many times method ``name`` was called."""
        return sum(1 for call, _ in self.calls if call == name)

    def bodies(self, instance_id: int) -> list[str]:
        """The key bodies (:func:`bot.vast.models.key_body`) on the instance, in order."""
        return [key_body(k) for _, k in self.ssh_keys[instance_id]]

    def _enter(self, name: str, ident: int | None) -> None:
        self.calls.append((name, ident))
        if self.on_call is not None:
            self.on_call(name, ident)
        pending = self.fail.get(name)
        if pending:
            raise pending.pop(0)

    def _leave(self, name: str) -> None:
        pending = self.fail_after.get(name)
        if pending:
            raise pending.pop(0)

    def _known(self, instance_id: int) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise NotFound(
                f"instance {instance_id}", status_code=404, error_code="no_such_instance"
            )
        return instance

    def _set_status(self, instance_id: int, status: str) -> None:
        instance = self._known(instance_id)
        self.instances[instance_id] = instance.model_copy(
            update={"actual_status": status, "intended_status": status, "cur_state": status}
        )

    # -- offers and create --------------------------------------------------------------------

    def search_offers(self, query: Mapping[str, Any]) -> list[Offer]:
        """:attr:`offers`. Raises ValueError without ``limit`` (as the client does)."""
        self._enter("search_offers", None)
        if "limit" not in query:
            raise ValueError("search_offers query must include 'limit' (Vast.ai caps at ~64)")
        result = list(self.offers)
        self._leave("search_offers")
        return result

    def create_instance(
        self,
        offer_id: int,
        *,
        image: str,
        env: Mapping[str, str],
        disk_gb: int,
        label: str,
        onstart: str | None = None,
        args: list[str] | None = None,
        runtype: str = "args",
    ) -> int:
        """A new ``loading`` instance labelled ``label``; OfferUnavailable for an offer in
        :attr:`taken`."""
        self._enter("create_instance", offer_id)
        if disk_gb < 8:
            raise ValueError("disk_gb must be at least 8 (Vast.ai minimum)")
        if offer_id in self.taken:
            raise OfferUnavailable(
                f"offer {offer_id} taken", status_code=404, error_code="no_such_ask"
            )
        self.next_instance_id += 1
        ident = self.next_instance_id
        offer = next((o for o in self.offers if o.id == offer_id), None)
        self.add_instance(
            ident,
            status="loading",
            label=label,
            image_uuid=image,
            gpu_name=offer.gpu_name if offer else None,
            num_gpus=offer.num_gpus if offer else None,
            dph_total=offer.dph_total if offer else None,
            disk_space_gb=float(disk_gb),
        )
        self.instances[ident] = self.instances[ident].model_copy(
            update={"intended_status": "running"}
        )
        self._leave("create_instance")
        return ident

    # -- instances ----------------------------------------------------------------------------

    def _select(
        self, label_prefix: str | None, select_filters: Mapping[str, Mapping[str, Any]] | None
    ) -> list[Instance]:
        found = sorted(self.instances.values(), key=lambda i: i.id)
        if label_prefix is not None:
            found = [i for i in found if i.label is not None and i.label.startswith(label_prefix)]
        wanted = (select_filters or {}).get("id", {}).get("in")
        if wanted is not None:
            found = [i for i in found if i.id in set(wanted)]
        return found

    def list_instances_page(
        self,
        *,
        after_token: str | None = None,
        select_filters: Mapping[str, Mapping[str, Any]] | None = None,
        select_cols: Sequence[str] | None = None,
        order_by: Sequence[Mapping[str, str]] | None = None,
    ) -> InstancePage:
        """All matching instances on one page (only the ``id in [...]`` filter is applied)."""
        self._enter("list_instances_page", None)
        found = self._select(None, select_filters)
        self._leave("list_instances_page")
        return InstancePage(found, None, len(found))

    def list_instances_pages(
        self,
        *,
        label_prefix: str | None = None,
        select_filters: Mapping[str, Mapping[str, Any]] | None = None,
        select_cols: Sequence[str] | None = None,
    ) -> Iterator[list[Instance]]:
        """One page: :meth:`list_instances`."""
        yield self.list_instances(label_prefix=label_prefix, select_filters=select_filters)

    def list_instances(
        self,
        *,
        label_prefix: str | None = None,
        select_filters: Mapping[str, Mapping[str, Any]] | None = None,
        select_cols: Sequence[str] | None = None,
    ) -> list[Instance]:
        """The instances (by id), filtered by label prefix and ``id in [...]``."""
        self._enter("list_instances", None)
        found = self._select(label_prefix, select_filters)
        self._leave("list_instances")
        return found

    def get_instance(self, instance_id: int) -> Instance | None:
        """The instance; None when it does not exist (as the client answers a 404)."""
        self._enter("get_instance", instance_id)
        found = self.instances.get(instance_id)
        self._leave("get_instance")
        return found

    def stop_instance(self, instance_id: int) -> None:
        """``stopped``; NotFound for an unknown instance."""
        self._enter("stop_instance", instance_id)
        self._set_status(instance_id, "stopped")
        self._leave("stop_instance")

    def start_instance(self, instance_id: int) -> None:
        """``running``; NotFound for an unknown instance."""
        self._enter("start_instance", instance_id)
        self._set_status(instance_id, "running")
        self._leave("start_instance")

    def label_instance(self, instance_id: int, label: str) -> None:
        """Relabel; NotFound for an unknown instance."""
        self._enter("label_instance", instance_id)
        self.instances[instance_id] = self._known(instance_id).model_copy(update={"label": label})
        self._leave("label_instance")

    def destroy_instance(self, instance_id: int) -> bool:
        """Remove it: True; False when it was already gone (as the client answers a 404)."""
        self._enter("destroy_instance", instance_id)
        existed = self.instances.pop(instance_id, None) is not None
        self.ssh_keys.pop(instance_id, None)
        self._leave("destroy_instance")
        return existed

    # -- SSH keys of one instance -------------------------------------------------------------

    def _keys(self, instance_id: int) -> list[tuple[str, str]]:
        if instance_id not in self.ssh_keys:
            raise NotFound(
                f"instance {instance_id}", status_code=404, error_code="no_such_instance"
            )
        return self.ssh_keys[instance_id]

    def list_instance_ssh_keys(self, instance_id: int) -> list[InstanceSshKey]:
        self._enter("list_instance_ssh_keys", instance_id)
        keys = [InstanceSshKey(id=i, public_key=k) for i, k in self._keys(instance_id)]
        self._leave("list_instance_ssh_keys")
        return keys

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        self._enter("attach_ssh_key", instance_id)
        if not public_key.strip():
            raise ValueError("public_key is empty")
        self.next_key_id += 1
        self._keys(instance_id).append((str(self.next_key_id), public_key))
        self._leave("attach_ssh_key")

    def detach_ssh_key(self, instance_id: int, key_id: str | int) -> bool:
        """True when removed now, False when the instance did not hold it."""
        self._enter("detach_ssh_key", instance_id)
        held = self._keys(instance_id)
        kept = [(i, k) for i, k in held if i != str(key_id)]
        removed = len(kept) != len(held)
        held[:] = kept
        self._leave("detach_ssh_key")
        return removed

    # -- account ------------------------------------------------------------------------------

    def get_user(self) -> User:
        self._enter("get_user", None)
        user = User(credit=self.credit, id=1)
        self._leave("get_user")
        return user

    def get_credit(self) -> float:
        return self.get_user().credit

    def as_client(self) -> VastClient:
        """This fake typed as the client the services take (it has the methods they call)."""
        return cast(VastClient, self)


@dataclass
class FakeAccounts:
    """:class:`bot.services.accounts.VastAccounts` with one :class:`FakeVast` for everyone;
    deployments whose id is in ``unavailable`` have no account (AccountUnavailable)."""

    client: FakeVast
    unavailable: set[int] = field(default_factory=set)
    simulated: bool = False

    def for_team(self, team_id: str | None) -> VastAccount:
        return VastAccount(ENV, self.client.as_client(), self.simulated)

    def for_deployment(self, dep: DeploymentRecord) -> VastAccount:
        if dep.id in self.unavailable:
            raise AccountUnavailable(f"workspace {dep.team_id} has no key")
        return self.for_team(dep.team_id)


# -- time -------------------------------------------------------------------------------------


class ManualClock:
    """An aware UTC "now" that moves only when told; call it for the time."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        if self.now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move forward by ``seconds`` (and/or ``timedelta(**delta)``, e.g. ``minutes=31``);
        returns the new now."""
        self.now += timedelta(seconds=seconds, **delta)
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when
