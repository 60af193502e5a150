"""The deploy service: from a checked picker submission to a rented Vast.ai instance.

Order of work for one submission (docs/ARCHITECTURE.md "One deployment through the files",
steps 3–4):

1. :func:`storage.create_deployment` writes the row (status ``creating``) keyed by the modal's
   view id **before** anything is rented (:meth:`DeployService.admit`: decided against the
   budgets in the same transaction, the workspace locked; the user is answered after it). The
   unique ``request_key`` makes a duplicate or concurrent delivery of the same submission find
   the existing row and stop there: one row, one instance.
2. The status message is posted in the chosen channel (the notifier falls back to a DM with
   the reason) and its channel/ts stored. If Slack refuses outright, nothing is rented.
3. ``PUT /api/v0/asks/{offer}/`` (never retried by the client) with the template's image, env
   (+ ``-p`` port keys, + the generated password), disk, launch command and the label
   ``slackbot:<installation id>:dep-<id>`` (:func:`label_for`); the instance id is stored and the
   row moves to ``provisioning``.
4. Vast.ai errors mark the row ``failed`` with the reason and tell the requester in the
   status message's thread. "Offer no longer available" first tries up to
   :attr:`DeployService.similar_attempts` offers of the same GPU model and count at most 10 %
   dearer (fresh search); a failed create that still returned an instance id destroys it; a
   create whose outcome is unknown (timeout after sending) looks the label up before deciding.

Launch decision (docs/VAST_API.md §3 "runtype semantics"): a template with a ``launch_command`` runs
with ``runtype: "ssh_direct"`` and the command as ``onstart``. Vast.ai's entrypoint then
replaces the image's, runs ``onstart`` through bash (so ``${JUPYTER_TOKEN}`` and friends are
expanded from the env we send) and opens port 22 for direct SSH, which is why the catalog asks
offers for one direct port more than the template's ports. The built-in launch commands are
written for that (vllm names its module because the entrypoint is replaced). A template
without a launch command keeps the image's own ENTRYPOINT/CMD with ``runtype: "args"`` and no
args (no SSH then).

This module imports nothing from Slack: messages go out through the messages port passed in
(:class:`bot.services.ports.Messages`, implemented by :class:`bot.slack.messages.SlackMessages`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

import storage
from bot import logs
from bot.crypto import EncryptionKeyError
from bot.formats import mrkdwn_escape
from bot.pricing import HOURS_PER_MONTH
from bot.services.accounts import VastAccounts
from bot.services.ports import Delivery, Messages
from bot.vast.client import port_env
from bot.vast.errors import OfferUnavailable, VastError
from bot.vast.models import Instance, Offer
from catalog import OfferLike, Template, build_offer_query, offer_fits, similar_offers
from catalog.models import LAUNCH_COMMAND_MAX
from storage import DeploymentRecord, DeploymentStatus, SessionFactory

logger = logging.getLogger(__name__)

#: Every label the bot writes starts with this (both forms below).
LABEL_PREFIX = "slackbot:"
#: The label of every instance the bot rents: ``slackbot:<installation id>:dep-<deployment
#: id>``, e.g. ``slackbot:0123456789ab:dep-42``. Before installation ids, labels were
#: ``slackbot:dep-<id>``, still read for the rows that hold them.
_LABEL_RE = re.compile(
    rf"slackbot:([0-9a-f]{{{storage.INSTALLATION_ID_LENGTH}}}):dep-([1-9][0-9]{{0,9}})", re.ASCII
)
_OLD_LABEL_RE = re.compile(r"slackbot:dep-([1-9][0-9]{0,9})", re.ASCII)

#: Vast.ai's limit for ``args`` + ``args_str`` + ``onstart`` together, in UTF-8 bytes
#: (docs.vast.ai/api-reference/instances/create-instance); the catalog refuses longer commands.
MAX_ONSTART = LAUNCH_COMMAND_MAX
#: Bytes of randomness of a generated web password (``secrets.token_urlsafe``: 32 characters).
PASSWORD_BYTES = 24

SIMILAR_PRICE_INCREASE = 0.10
#: A live price may exceed the one the picker showed by 2 % (rounding, storage price drift)
#: before the submission is refused and the user asked to look again.
PRICE_RISE_TOLERANCE = 1.02


class BotLabel(NamedTuple):
    """What a label written by the bot says: ``installation`` (the installation id, None for
    the old ``slackbot:dep-<id>`` form) and ``deployment_id``."""

    installation: str | None
    deployment_id: int


def label_for(installation_id: str, deployment_id: int) -> str:
    """The Vast.ai label of a deployment's instance: ``slackbot:0123456789ab:dep-42``.

    Raises ValueError for an installation id that is not :data:`storage.INSTALLATION_ID_LENGTH`
    lowercase hex characters, or a deployment id outside 1..``storage.MAX_ROW_ID`` (the id
    column's bound: a label naming a larger id is nobody's)."""
    if not storage.INSTALLATION_ID_PATTERN.fullmatch(installation_id):
        raise ValueError("not an installation id")
    if not 1 <= deployment_id <= storage.MAX_ROW_ID:
        raise ValueError("not a deployment id")
    return f"{LABEL_PREFIX}{installation_id}:dep-{deployment_id}"


def parse_label(label: str | None) -> BotLabel | None:
    """The installation and deployment a label names, for both forms the bot ever wrote
    (:func:`label_for`, and the old ``slackbot:dep-<id>``), else None.

    Labels are free text on Vast.ai (anyone with the key, or another program, may write
    one), so only the exact forms count: no surrounding space, ASCII digits without leading
    zeros, no extra ``:`` parts, a deployment id of at most ``storage.MAX_ROW_ID`` (the id
    column's bound)."""
    if label is None or len(label) > 64:
        return None
    match = _LABEL_RE.fullmatch(label)
    if match is not None:
        installation, digits = match.group(1), match.group(2)
    else:
        match = _OLD_LABEL_RE.fullmatch(label)
        if match is None:
            return None
        installation, digits = None, match.group(1)
    deployment_id = int(digits)
    if deployment_id > storage.MAX_ROW_ID:
        return None
    return BotLabel(installation, deployment_id)


# -- what the service needs from the outside -------------------------------------------------


class VastApi(Protocol):
    """The parts of :class:`bot.vast.client.VastClient` the deploy service uses."""

    def search_offers(self, query: Mapping[str, object]) -> list[Offer]: ...

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
    ) -> int: ...

    def list_instances(
        self,
        *,
        label_prefix: str | None = None,
        select_filters: Mapping[str, Mapping[str, object]] | None = None,
    ) -> list[Instance]: ...

    def destroy_instance(self, instance_id: int) -> bool: ...


# -- value objects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchSpec:
    """What ``create_instance`` gets besides the offer, disk and label (see module docstring).

    ``env`` holds template env, the generated password (when the template has
    ``password_env``) and one ``"-p N:N": "1"`` key per template port. It carries secrets:
    never log it.
    """

    image: str
    env: dict[str, str]
    runtype: str
    onstart: str | None
    args: list[str] | None

    def __repr__(self) -> str:
        return f"LaunchSpec(image={self.image!r}, runtype={self.runtype!r})"


def launch_spec(template: Template, *, password: str | None) -> LaunchSpec:
    """Build the create body parts for ``template`` (decision: see the module docstring).

    Raises ValueError when the launch command is over Vast.ai's limit (:data:`MAX_ONSTART`
    bytes; a validated catalog never has one).
    """
    env = dict(template.env)
    if template.password_env and password is not None:
        env[template.password_env] = password
    env.update(port_env(template.ports))
    command = template.launch_command.strip()
    if not command:
        return LaunchSpec(template.docker_image, env, "args", None, None)
    if len(command.encode("utf-8", "surrogatepass")) > MAX_ONSTART:
        raise ValueError(f"launch_command of {template.slug} is over {MAX_ONSTART} bytes")
    return LaunchSpec(template.docker_image, env, "ssh_direct", command, None)


@dataclass(frozen=True)
class OfferCheck:
    """Result of :func:`recheck_offer`: the live offer, or a problem a user can read."""

    offer: Offer | None
    problem: str | None


def recheck_offer(
    vast: VastApi,
    template: Template,
    offer_id: int,
    *,
    disk_gb: int,
    gpu_name: str | None = None,
    max_dph: float | None = None,
    shown_dph: float | None = None,
    shown_disk_gb: int | None = None,
) -> OfferCheck:
    """Fetch ``offer_id`` again with one search (``POST /api/v0/bundles/``, narrowed to
    ``gpu_name`` when given) and re-check it against ``template`` with ``offer_fits``.

    A forged or stale offer id gives a ``problem``; so does an offer above ``max_dph``
    ($/hour, the user's filter), and one whose live ``dph_total`` rose above ``shown_dph``
    (the $/hour the picker showed, priced with ``shown_disk_gb`` of disk) by more than 2 %
    beyond what the change of disk size explains (``storage_cost`` $/GB/month ÷ 720 per GB,
    docs/VAST_API.md §2 price identity). Raises VastError when the search fails and ValueError for
    a disk outside the template's bounds.
    """
    query = build_offer_query(template, disk_gb=disk_gb, gpu_name=gpu_name)
    offers = vast.search_offers(query)
    offer = next((o for o in offers if o.id == offer_id), None)
    if offer is None:
        return OfferCheck(
            None,
            "That GPU offer is no longer available (someone else rented it, or it does not fit "
            f"{mrkdwn_escape(template.name)}). Pick another one: 'Search again' shows fresh "
            "offers.",
        )
    reason = offer_fits(template, offer, disk_gb=disk_gb, max_dph=max_dph)
    if reason is not None:
        return OfferCheck(
            None, f"That GPU offer does not fit {mrkdwn_escape(template.name)}: {reason}."
        )
    expected = shown_dph
    if expected is not None and shown_disk_gb is not None and offer.storage_cost:
        expected += max(0, disk_gb - shown_disk_gb) * offer.storage_cost / HOURS_PER_MONTH
    if expected is not None and offer.dph_total > expected * PRICE_RISE_TOLERANCE + 0.0005:
        return OfferCheck(
            None,
            f"The price of this offer rose from ${shown_dph:.3f}/h to ${offer.dph_total:.3f}/h "
            "since the list was shown, so nothing was rented. Press 'Search again' to see "
            "today's prices, then choose.",
        )
    return OfferCheck(offer, None)


@dataclass(frozen=True)
class DeployRequest:
    """One checked submission. ``request_key`` is the modal's view id; ``offer`` was fetched
    again and fits ``template``; ``disk_gb`` is in GB; ``channel_id`` is where to post;
    ``lifetime_hours`` is the **Run for** choice in hours (None: until someone stops it; no
    default, so no caller can forget to choose)."""

    request_key: str
    team_id: str
    user_id: str
    channel_id: str
    template: Template
    offer: OfferLike
    disk_gb: int
    lifetime_hours: float | None
    max_dph: float | None = None
    """The most a stand-in offer may cost ($/hour) without an approval (``APPROVAL_DPH``)."""
    enterprise_id: str | None = None
    """Enterprise Grid organisation of ``team_id`` (None outside Grid)."""


@dataclass(frozen=True)
class DeployResult:
    """``deployment``: the row as it stands when :meth:`DeployService.deploy` returns;
    ``created``: False when the submission had already been handled (duplicate delivery)."""

    deployment: DeploymentRecord
    created: bool


@dataclass(frozen=True)
class _RowOffer:
    """The offer a row was approved on, as the offer matching code reads it (only its id,
    GPU model and count and price matter for finding a similar one; the rest is unknown)."""

    id: int
    gpu_name: str
    num_gpus: int
    gpu_ram_gb: float
    dph_total: float
    cuda_max_good: float | None = None
    compute_cap: int | None = None
    disk_space_gb: float = 0.0
    direct_port_count: int = 0
    verified: bool = False
    rentable: bool = False
    reliability: float | None = None
    geolocation: str | None = None

    @classmethod
    def of(cls, dep: DeploymentRecord) -> _RowOffer:
        return cls(dep.offer_id, dep.gpu_name, dep.num_gpus, dep.gpu_ram_gb, dep.dph_total)


@dataclass
class _Message:
    channel: str
    ts: str

    def on(self, dep: DeploymentRecord) -> DeploymentRecord:
        """``dep`` as it is once this status message is stored on its row."""
        return dataclasses.replace(dep, message_channel=self.channel, message_ts=self.ts)


class PasswordCipher(Protocol):
    """What the service needs of ``bot.crypto.SecretBox`` for web passwords: encrypt one for
    the row, and open what a row holds (a Fernet token, or plain text stored before encryption
    at rest; ``EncryptionKeyError`` when no key decrypts it)."""

    def encrypt(self, text: str) -> str: ...

    def open(self, stored: str) -> str: ...


#: The failure reason when a row's password cannot be decrypted at rental time.
UNREADABLE_PASSWORD_REASON = (
    "its generated password cannot be read (the bot's encryption key changed since it was "
    "requested). Nothing was rented: deploy again."
)


class _Failed(Exception):
    """Internal: the rental failed with a reason for the user (row not yet marked)."""

    def __init__(self, reason: str, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class DeployService:
    """Rents instances for checked submissions; thread-safe (no state but counters).

    Args:
        accounts: the Vast.ai account of each workspace and row
            (:class:`bot.services.accounts.VastAccounts`). session_factory: storage's
            sessionmaker.
        messages: the messages port (status message, thread replies).
        catalog_get: ``slug -> Template | None`` for re-renders.
        similar_attempts: most stand-in offers tried after "offer no longer available".
        lookup_attempts / lookup_delay: label look-ups (seconds apart) after a create whose
            outcome is unknown; Vast.ai's lists may lag a new instance (docs/VAST_API.md §7
            pitfall 4).
        clock: returns aware UTC now.
        installation_id: this database's installation id (:func:`storage.installation_id`),
            written into every label (:func:`label_for`).
        passwords: encrypts each generated web password before it is stored, and decrypts it
            for the rental (:class:`PasswordCipher`): the row never holds it in plain text.
    """

    def __init__(
        self,
        *,
        installation_id: str,
        accounts: VastAccounts,
        session_factory: SessionFactory,
        messages: Messages,
        passwords: PasswordCipher,
        catalog_get: Callable[[str], Template | None] = lambda slug: None,
        similar_attempts: int = 3,
        lookup_attempts: int = 3,
        lookup_delay: float = 1.0,
        clock: Callable[[], datetime] = storage.utcnow,
    ) -> None:
        if not storage.INSTALLATION_ID_PATTERN.fullmatch(installation_id):
            raise ValueError("not an installation id")
        self.installation_id = installation_id
        self.accounts = accounts
        self.sf = session_factory
        self.messages = messages
        self.passwords = passwords
        self.catalog_get = catalog_get
        self.similar_attempts = similar_attempts
        self.lookup_attempts = lookup_attempts
        self.lookup_delay = lookup_delay
        self.clock = clock
        self._lock = threading.Lock()
        self.creates_sent = 0

    # -- public --------------------------------------------------------------------------------

    def submitted(self, request_key: str) -> DeploymentRecord | None:
        """The deployment a submission with ``request_key`` (the modal's view id) already
        wrote, or None: a repeated delivery of one submission (Slack delivering it twice, or
        the user pressing Submit again) finds the first one's row here. Storage errors
        propagate."""
        return storage.get_by_request_key(self.sf, request_key)

    def recheck(
        self,
        template: Template,
        offer_id: int,
        *,
        disk_gb: int,
        gpu_name: str | None = None,
        max_dph: float | None = None,
        shown_dph: float | None = None,
        shown_disk_gb: int | None = None,
        team_id: str | None = None,
    ) -> OfferCheck:
        """:func:`recheck_offer` on the Vast.ai account of workspace ``team_id``."""
        return recheck_offer(
            self.accounts.for_team(team_id).client,
            template,
            offer_id,
            disk_gb=disk_gb,
            gpu_name=gpu_name,
            max_dph=max_dph,
            shown_dph=shown_dph,
            shown_disk_gb=shown_disk_gb,
        )

    def deploy(self, request: DeployRequest) -> DeployResult:
        """Write the row, post the status message, rent the instance (see module docstring).
        No budget check: a submission goes through :meth:`admit` (decided against the budgets
        with its row), then :meth:`start`.

        Never raises for Vast.ai or Slack refusals: they end as a ``failed`` row the user is
        told about. Storage errors propagate (the row then stays ``creating`` and start-up
        recovery settles it).
        """
        dep, created = self._create_row(request, approval=None)
        if not created:
            logger.info("deployment %s: submission %s already handled", dep.id, dep.request_key)
            return DeployResult(dep, created=False)
        return self.start(dep, request)

    def admit(
        self,
        request: DeployRequest,
        admit: Callable[[storage.TeamLedger], storage.NewApproval | None],
    ) -> tuple[DeploymentRecord, bool]:
        """Write the row of ``request`` as ``admit`` decides, inside the transaction that
        inserts it with the workspace locked (:func:`storage.create_deployment`): ``creating``
        when ``admit`` returns None, ``pending_approval`` with the approval it returns; nothing
        when it raises (the exception propagates). Nothing is rented or posted here: the
        caller answers the user, then calls :meth:`start` or :meth:`show_held`.

        Returns ``(row, created)``; ``created`` False for a duplicate delivery.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database could not be written (nothing was
                written, nothing rented).
        """
        return self._create_row(request, approval=None, admit=admit)

    def start(self, dep: DeploymentRecord, request: DeployRequest) -> DeployResult:
        """Post the status message of the new ``creating`` row ``dep`` and rent its instance
        (the rest of :meth:`deploy`). Never raises for Vast.ai or Slack refusals."""
        with logs.bound(deployment_id=dep.id, team_id=dep.team_id):  # on each log line
            message = self._post_status(dep, request.template)
            if message is None:
                reason = (
                    "I could not post the status message in Slack, so nothing was rented. "
                    "Please try again."
                )
                return DeployResult(self._fail(dep, request.template, None, reason), created=True)
            return self._launch(dep, request.template, request.offer, message, request.max_dph)

    def show_held(self, dep: DeploymentRecord, template: Template, reason: str) -> DeployResult:
        """Store ``reason`` (mrkdwn: whom the new ``pending_approval`` row ``dep`` waits for)
        on the row and post its status message saying so (nothing rented). The status message
        may be missing (None ``message_ts``) when Slack refused it: the approval still stands,
        and the requester hears the decision by DM."""
        storage.update_status(
            self.sf,
            dep.id,
            expected_status=DeploymentStatus.PENDING_APPROVAL,
            new_status=DeploymentStatus.PENDING_APPROVAL,
            reason=reason,
        )
        current = storage.get_deployment(self.sf, dep.id) or dep
        message = self._post_status(current, template)
        return DeployResult(message.on(current) if message else current, created=True)

    def deploy_approved(self, dep: DeploymentRecord) -> DeployResult:
        """Rent the instance of an approved request (``dep`` is ``creating``, its run begun).

        The approved offer is checked again; when it is gone, or its price rose, a similar
        one (same GPU model and count, at most 10 % dearer than the approved price) is taken
        and the thread told; with none, the row fails and the requester gets a **Pick another
        GPU** button. Never raises for Vast.ai or Slack refusals."""
        template = self.catalog_get(dep.template_slug)
        if template is None:
            reason = (
                f"the template {dep.template_slug} is no longer in the catalog, so nothing was "
                "rented. Run `/templates` to pick another one."
            )
            storage.mark_failed(self.sf, dep.id, reason)
            current = storage.get_deployment(self.sf, dep.id) or dep
            self.refresh_message(current)
            self.tell_failure(current, reason)
            return DeployResult(current, created=True)
        message = (
            _Message(dep.message_channel, dep.message_ts)
            if dep.message_channel and dep.message_ts
            else self._post_status(dep, template)
        )
        if message is None:
            reason = (
                "I could not post the status message in Slack, so nothing was rented. "
                "Please deploy again."
            )
            return DeployResult(self._fail(dep, template, None, reason), created=True)
        disk_gb = int(dep.disk_gb)
        approved = _RowOffer.of(dep)
        cap = dep.dph_total * (1 + SIMILAR_PRICE_INCREASE)  # never past 10 % above approved
        try:
            check = recheck_offer(
                self._vast(dep),
                template,
                dep.offer_id,
                disk_gb=disk_gb,
                gpu_name=dep.gpu_name,
                shown_dph=dep.dph_total,
                shown_disk_gb=disk_gb,
            )
            offer: OfferLike | None = check.offer
        except VastError as error:
            logger.info("re-check of approved offer failed: %s", type(error).__name__)
            offer = None
        if offer is None:
            offer = next(iter(self._similar(dep, template, approved, disk_gb, cap)), None)
            if offer is None:
                reason = (
                    "the approved GPU offer is gone (or dearer now) and no similar offer "
                    f"({mrkdwn_escape(dep.gpu_name)}, at most {SIMILAR_PRICE_INCREASE:.0%} "
                    "dearer) is free. "
                    "Nothing was rented: pick another GPU from fresh offers."
                )
                final = self._fail(dep, template, message, reason, retry_slug=template.slug)
                return DeployResult(final, created=True)
            self._switch_offer(dep, approved, offer, message)
            dep = storage.get_deployment(self.sf, dep.id) or dep
        return self._launch(dep, template, offer, message, cap)

    def _create_row(
        self,
        request: DeployRequest,
        *,
        approval: storage.NewApproval | None,
        admit: Callable[[storage.TeamLedger], storage.NewApproval | None] | None = None,
    ) -> tuple[DeploymentRecord, bool]:
        template = request.template
        offer = request.offer
        password = secrets.token_urlsafe(PASSWORD_BYTES) if template.password_env else None
        return storage.create_deployment(
            self.sf,
            request_key=request.request_key,
            team_id=request.team_id,
            enterprise_id=request.enterprise_id,
            user_id=request.user_id,
            channel_id=request.channel_id,
            template_slug=template.slug,
            template_name=template.name,
            offer_id=offer.id,
            gpu_name=offer.gpu_name,
            num_gpus=offer.num_gpus,
            gpu_ram_gb=offer.gpu_ram_gb,
            dph_total=offer.dph_total,
            disk_gb=request.disk_gb,
            simulated=self.accounts.for_team(request.team_id).simulated,
            web_password=self.passwords.encrypt(password) if password is not None else None,
            lifetime_hours=request.lifetime_hours,
            approval=approval,
            admit=admit,
            now=self.clock(),
        )

    def _launch(
        self,
        dep: DeploymentRecord,
        template: Template,
        offer: OfferLike,
        message: _Message,
        max_dph: float | None = None,
    ) -> DeployResult:
        """Rent ``offer`` for the ``creating`` row ``dep`` whose status message is ``message``;
        a stand-in for a taken offer never costs more than ``max_dph`` $/hour."""
        disk_gb = int(dep.disk_gb)
        try:
            spec = launch_spec(template, password=self._password(dep))
            instance_id = self._rent(dep, template, offer, disk_gb, spec, message, max_dph)
        except _Failed as failure:
            retry = template.slug if failure.retry else None
            final = self._fail(dep, template, message, failure.reason, retry_slug=retry)
            return DeployResult(final, created=True)
        except ValueError as error:  # a template the client refuses (e.g. launch too long)
            final = self._fail(dep, template, message, f"the template is not valid: {error}")
            return DeployResult(final, created=True)

        now = self.clock()
        storage.set_instance(self.sf, dep.id, instance_id, now=now)
        storage.update_status(
            self.sf,
            dep.id,
            expected_status=DeploymentStatus.CREATING,
            new_status=DeploymentStatus.PROVISIONING,
            now=now,
        )
        current = storage.get_deployment(self.sf, dep.id) or dep
        self._update(current, template, message)
        logger.info("deployment %s: instance %s created", dep.id, instance_id)
        return DeployResult(current, created=True)

    def _password(self, dep: DeploymentRecord) -> str | None:
        """The row's web password in plain text (None: the template has none).

        Raises:
            _Failed: no configured key decrypts it (retry offered: a new request gets a new
                password).
        """
        if not dep.web_password:
            return None
        try:
            return self.passwords.open(dep.web_password)
        except EncryptionKeyError:
            logger.error("deployment %s: its stored web password does not decrypt", dep.id)
            raise _Failed(UNREADABLE_PASSWORD_REASON, retry=True) from None

    def refresh_message(self, dep: DeploymentRecord, *, note: str | None = None) -> bool:
        """Re-render the status message of ``dep`` from its row, with an extra ``note`` line
        (False when it has none, Slack no longer has it, or Slack could not be reached: then
        the poller's reconciler sends it again)."""
        if not dep.message_channel or not dep.message_ts:
            return False
        template = self.catalog_get(dep.template_slug)
        message = _Message(dep.message_channel, dep.message_ts)
        return self._update(dep, template, message, note=note)

    def tell_failure(
        self, dep: DeploymentRecord, reason: str, retry_slug: str | None = None
    ) -> None:
        """Tell the requester that ``dep`` failed: a reply in the status message's thread
        mentioning them, or a DM when there is no status message."""
        if not self.messages.deploy_failed(dep, reason, retry_slug=retry_slug):
            logger.warning("deployment %s: could not tell the user it failed", dep.id)

    # -- steps ---------------------------------------------------------------------------------

    def _post_status(self, dep: DeploymentRecord, template: Template) -> _Message | None:
        posted = self.messages.post_status(dep, template)
        if posted is None:  # Slack down or refusing: rent nothing nobody can see
            return None
        storage.set_message(self.sf, dep.id, posted.channel, posted.ts)
        if posted.fallback_reason:
            storage.add_event(
                self.sf, dep.id, storage.SYSTEM_ACTOR, "message_dm", posted.fallback_reason
            )
        return _Message(posted.channel, posted.ts)

    def _update(
        self,
        dep: DeploymentRecord,
        template: Template | None,
        message: _Message,
        *,
        note: str | None = None,
    ) -> bool:
        """Edit the status message now; when Slack could not be reached, mark it stale so the
        poller's reconciler sends its current state until Slack takes it (never left showing a
        state that is no longer true)."""
        delivery = self.messages.show_status(message.on(dep), template, note=note)
        if delivery is Delivery.UNAVAILABLE:
            storage.mark_message_stale(self.sf, dep.id, self.clock())
        return delivery is Delivery.SENT

    def _fail(
        self,
        dep: DeploymentRecord,
        template: Template,
        message: _Message | None,
        reason: str,
        *,
        retry_slug: str | None = None,
    ) -> DeploymentRecord:
        storage.mark_failed(self.sf, dep.id, reason)
        current = storage.get_deployment(self.sf, dep.id) or dep
        logger.info("deployment %s failed: %s", dep.id, reason)
        if message is not None:
            self._update(current, template, message)
        self.tell_failure(current, reason, retry_slug)
        return current

    def _vast(self, dep: DeploymentRecord) -> VastApi:
        """The client of the Vast.ai account ``dep`` rents on (the simulator for a simulated
        row)."""
        return self.accounts.for_deployment(dep).client

    def _create(
        self, vast: VastApi, offer_id: int, disk_gb: int, spec: LaunchSpec, label: str
    ) -> int:
        with self._lock:
            self.creates_sent += 1
        return vast.create_instance(
            offer_id,
            image=spec.image,
            env=spec.env,
            disk_gb=disk_gb,
            label=label,
            onstart=spec.onstart,
            args=spec.args,
            runtype=spec.runtype,
        )

    def _rent(
        self,
        dep: DeploymentRecord,
        template: Template,
        chosen: OfferLike,
        disk_gb: int,
        spec: LaunchSpec,
        message: _Message,
        max_dph: float | None = None,
    ) -> int:
        """Create the instance on ``chosen`` or a stand-in; return its id or raise _Failed."""
        label = label_for(self.installation_id, dep.id)
        try:
            vast = self._vast(dep)
        except VastError as error:  # e.g. no key for the row's account: nothing is rented
            raise _Failed(error.user_message) from None
        offer = chosen
        stand_ins: list[OfferLike] | None = None
        tried = {chosen.id}
        while True:
            try:
                return self._create(vast, offer.id, disk_gb, spec, label)
            except OfferUnavailable as error:
                self._destroy_leftover(dep, error)
                if stand_ins is None:
                    stand_ins = self._similar(dep, template, chosen, disk_gb, max_dph)
                replacement = next((o for o in stand_ins if o.id not in tried), None)
                if replacement is None or len(tried) > self.similar_attempts:
                    raise _Failed(
                        "the GPU offer was rented by someone else just before us, and no similar "
                        f"offer ({mrkdwn_escape(chosen.gpu_name)}, at most "
                        f"{SIMILAR_PRICE_INCREASE:.0%} dearer) is free. Nothing was rented: "
                        "pick another GPU from fresh offers.",
                        retry=True,
                    ) from None
                tried.add(replacement.id)
                self._switch_offer(dep, offer, replacement, message)
                offer = replacement
            except VastError as error:
                self._destroy_leftover(dep, error)
                if error.outcome_unknown:
                    found = self._find_by_label(vast, label)
                    if found is not None:
                        logger.info("deployment %s: create timed out, found %s", dep.id, found)
                        return found
                    raise _Failed(
                        "Vast.ai did not answer the create request in time and no instance with "
                        "this deployment's label appeared, so nothing is billed. If one shows up "
                        "later, the bot deletes it. Try again in a few minutes.",
                        retry=True,
                    ) from None
                retry = error.status_code in (None, 429, 502, 503, 504)
                raise _Failed(error.user_message, retry=retry) from None

    def _switch_offer(
        self, dep: DeploymentRecord, taken: OfferLike, replacement: OfferLike, message: _Message
    ) -> None:
        """Record that ``replacement`` is rented instead of ``taken`` and say so in the thread."""
        storage.add_event(
            self.sf,
            dep.id,
            storage.SYSTEM_ACTOR,
            "offer_retry",
            f"offer {taken.id} taken; trying offer {replacement.id} at "
            f"${replacement.dph_total:.4f}/h",
        )
        storage.set_offer(
            self.sf,
            dep.id,
            offer_id=replacement.id,
            gpu_name=replacement.gpu_name,
            num_gpus=replacement.num_gpus,
            gpu_ram_gb=replacement.gpu_ram_gb,
            dph_total=replacement.dph_total,
        )
        self.messages.offer_switched(message.on(dep), taken, replacement)

    def _similar(
        self,
        dep: DeploymentRecord,
        template: Template,
        taken: OfferLike,
        disk_gb: int,
        max_dph: float | None = None,
    ) -> list[OfferLike]:
        """Fresh offers of the same GPU model and count, at most 10 % dearer (and at most
        ``max_dph`` $/hour), cheapest first."""
        try:
            query = build_offer_query(template, disk_gb=disk_gb, gpu_name=taken.gpu_name)
            offers = self._vast(dep).search_offers(query)
        except VastError as error:
            logger.info("similar-offer search failed: %s", type(error).__name__)
            return []
        ranked = similar_offers(
            template, taken, offers, disk_gb=disk_gb, max_price_increase=SIMILAR_PRICE_INCREASE
        )
        return [r.offer for r in ranked if max_dph is None or r.offer.dph_total <= max_dph + 1e-9]

    def _destroy_leftover(self, dep: DeploymentRecord, error: VastError) -> None:
        """A failed create that still returned ``new_contract`` left a billing instance."""
        if error.instance_id is None:
            return
        try:
            self._vast(dep).destroy_instance(error.instance_id)
            storage.add_event(
                self.sf,
                dep.id,
                storage.SYSTEM_ACTOR,
                "destroyed_leftover",
                f"instance {error.instance_id} left by a failed create",
            )
        except VastError as destroy_error:
            # Start-up recovery finds it by its label and destroys it.
            logger.error(
                "deployment %s: leftover instance %s not destroyed: %s",
                dep.id,
                error.instance_id,
                type(destroy_error).__name__,
            )

    def _find_by_label(self, vast: VastApi, label: str) -> int | None:
        for attempt in range(max(1, self.lookup_attempts)):
            if attempt:
                time.sleep(self.lookup_delay)
            try:
                # Asked by label on Vast.ai's side (one page, not the whole account), and
                # checked again here.
                instances = vast.list_instances(
                    label_prefix=label, select_filters={"label": {"eq": label}}
                )
                found = [i.id for i in instances if i.label == label]
            except VastError as error:
                logger.info("label look-up failed: %s", type(error).__name__)
                continue
            if found:
                return min(found)
        return None
