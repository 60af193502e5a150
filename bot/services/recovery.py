"""Start-up recovery: nothing rented is left unknown, no row is left in ``creating``.

The deploy service writes the row before it calls Vast.ai and labels every instance
``slackbot:<installation id>:dep-<id>`` (:func:`bot.services.deploy.label_for`; the
installation id is this database's, :func:`storage.installation_id`). If the process died
between Vast.ai's answer and the database update, the instance exists but its row does not know
it. :func:`recover` reads the account's instances once (Vast.ai's paginated v1 list, one request
per 25 instances) and, for every instance labelled with this installation's id (:func:`ours`):

* row in ``creating``/``provisioning``/``ready``/``stopped`` without an instance id → attach it
  (``set_instance``, and ``creating`` → ``provisioning``);
* row that already holds another instance, or a second instance with the same label →
  destroy the extra one (one instance per submission);
* row ``failed`` or ``destroyed`` → destroy it (the requester was told it failed; it bills);
* no row at all → left alone, never destroyed (``unrecorded``): the database may have been
  restored from a backup taken before that deployment was written (the copy keeps the
  installation id), so the instance may be a user's live work. It is logged in one line, the
  poller lists it for admins as unmanaged, and :func:`run_on_start` tells the admins once
  (:func:`announce_unrecorded`). Only a person can tell whether it is still wanted.

Then rows still ``creating`` without an instance, older than ``grace_seconds`` (default 120 s,
longer than the create timeout), are marked ``failed`` ("the bot restarted before Vast.ai
answered; nothing was rented"); rows ``creating`` that already hold an instance move to
``provisioning``. Younger rows may still be in the hands of another live process (a rolling
restart), so they are not failed on a guess: their status message says at once what is
happening and when it will be settled (:func:`waiting_note`), and :func:`run_on_start` looks
again at that time: a row that still has no labelled instance is then failed, and its status
message shows it. Rows written after this process started are its own work, never a
restart's leftovers: they are neither noted nor waited for.

If the instance list cannot be read, nothing is changed: a row is never failed, nor an
instance destroyed, on a guess. A database without any deployment skips recovery altogether
(no Vast.ai request): it is a new installation, and labelled instances on the account are then
someone else's.

With workspaces of their own Vast.ai accounts (OAuth mode), :func:`run_on_start`
reads the list of every account that has deployments on record (:func:`account_of`), and each
account settles only its own rows: a labelled instance whose row is live but belongs to another
account is left alone (never attached, never destroyed), and a ``creating`` row is failed only
by its own account's read. An instance whose label names a deployment with no row, or a row
that is over, is judged against every row of the database, whichever workspace it is of. An
account whose list cannot be read (a revoked key) is skipped, its rows untouched.

**Other installations.** Deployment ids restart at 1 in every database, so a label's
deployment id alone proves nothing: two installations (staging and production) may share a
Vast.ai account, and a bot whose database was lost starts again at 1. Only instances labelled
with this installation's id are judged here (:func:`ours`). An instance of another
installation, or of the old label form ``slackbot:dep-<id>`` that no row of this database holds
(``instance_id``), is never attached nor destroyed: the poller lists it for admins as
unmanaged. An old-form label that a row holds keeps working as before. A start on a database
without deployments that finds labelled instances (any installation, any form) says so in one
log line and by DM to the bot's admins (:func:`announce_labelled`), once per database.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

import storage
from bot.formats import slack_date, utc_text
from bot.services.accounts import AccountUnavailable, VastAccount, VastAccounts
from bot.services.admins import AdminDirectory
from bot.services.deploy import (
    LABEL_PREFIX,
    BotLabel,
    DeployService,
    VastApi,
    parse_label,
)
from bot.vast.errors import VastError
from storage import DeploymentRecord, DeploymentStatus, SessionFactory
from storage.followed import deployment_workspaces

logger = logging.getLogger(__name__)

GRACE_SECONDS = 120.0
#: ``bot_state`` claim: the admins were told of labelled instances found by a start on a
#: database without deployments (written once per database, so once).
LABELLED_NOTICE_STATE = "labelled_on_empty_database"
#: ``claims`` key prefix: the admins were told of instances labelled by this installation for
#: deployments this database does not hold (one claim per set of instances).
UNRECORDED_NOTICE_CLAIM = "labelled-without-row"
RESTART_REASON = "the bot restarted before Vast.ai answered; nothing was rented. Please try again."
#: Seconds after a row's grace at which the re-run settles it (the job's start may lag a little).
SETTLE_MARGIN_SECONDS = 5.0


def settles_at(dep: DeploymentRecord, grace_seconds: float = GRACE_SECONDS) -> datetime:
    """When recovery settles the young ``creating`` row ``dep`` (failed unless an instance with
    its label has appeared by then)."""
    return dep.created_at + timedelta(seconds=grace_seconds + SETTLE_MARGIN_SECONDS)


def waiting_note(dep: DeploymentRecord, grace_seconds: float = GRACE_SECONDS) -> str:
    """The status message's note for a young ``creating`` row found at start-up: what is
    happening, and when it will be settled (in each reader's own time)."""
    return (
        ":hourglass: The bot restarted while this GPU was being rented, and Vast.ai lists no "
        f"instance for it yet. If none appears by {slack_date(settles_at(dep, grace_seconds))}, "
        "this deployment is marked failed (nothing is billed) and you can deploy again."
    )


@dataclass
class RecoveryReport:
    """What :func:`recover` did. ``attached``: (deployment id, instance id); ``destroyed``:
    instance ids; ``failed``: deployment ids marked failed; ``pending``: ``creating`` rows
    still inside their grace (written before ``started_at`` when that was given);
    ``changed``: deployments whose status message should be re-rendered; ``skipped``: True
    when the instance list could not be read (nothing done); ``foreign``: see below."""

    attached: list[tuple[int, int]] = field(default_factory=list)
    destroyed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    pending: list[DeploymentRecord] = field(default_factory=list)
    changed: list[int] = field(default_factory=list)
    skipped: bool = False
    foreign: list[int] = field(default_factory=list)
    """Labelled instances that are not this installation's (:func:`ours`): left alone."""
    unrecorded: list[int] = field(default_factory=list)
    """Instances labelled by this installation for a deployment id with no row (a database
    restored from an older backup, or a lost row): left alone, see :func:`stray_reason`."""
    unrecorded_teams: dict[str | None, list[int]] = field(default_factory=dict)
    """``unrecorded`` by the workspace whose admins are told (None: single-workspace mode);
    filled by :func:`recover_accounts`."""


def ours(label: BotLabel, installation_id: str, holder: DeploymentRecord | None) -> bool:
    """Whether an instance labelled ``label`` is this installation's to judge (attach, keep or
    destroy). ``holder``: the row of this database whose ``instance_id`` is that instance
    (None: no row holds it). A label of the current form is ours when it carries
    ``installation_id``; one of the old form (``installation`` None) only when a row holds the
    instance, since its deployment id may be another database's."""
    if label.installation is not None:
        return label.installation == installation_id
    return holder is not None


def stray_reason(instance_id: int, dep_id: int, dep: DeploymentRecord | None) -> str | None:
    """Why the instance ``instance_id``, labelled by this installation for deployment
    ``dep_id`` (whose row is ``dep``), must be destroyed, or None when it must not (it belongs
    where it is, its row is still being created: attaching is :func:`recover`'s job, or there
    is no row: :func:`unrecorded`).

    Only a row proves an instance is a stray: the row is over (destroyed, failed, denied,
    expired) or it holds another instance (a duplicate create). A label naming an id with no
    row is never a stray, since a database restored from a backup keeps its installation id
    and lacks the deployments written since, whose instances are users' live work."""
    if dep is None:
        return None  # not on record: unrecorded(), listed for admins, never destroyed
    if dep.is_final:
        return f"deployment {dep_id} is {dep.status}"
    if dep.instance_id is not None and dep.instance_id != instance_id:
        return f"extra instance for deployment {dep_id}"
    return None


def unrecorded(dep: DeploymentRecord | None) -> bool:
    """Whether an instance labelled by this installation for a deployment whose row is
    ``dep`` names a deployment this database does not hold (``dep`` None): it is left alone
    and listed for admins as unmanaged, never destroyed (:func:`stray_reason`)."""
    return dep is None


def account_of(accounts: VastAccounts, team_id: str, simulated: bool) -> VastAccount | None:
    """The account a deployment of workspace ``team_id`` (``simulated`` or not) lives on, as
    :meth:`VastAccounts.for_deployment` decides (single-workspace mode: always the default).

    None, logged, when the workspace's key cannot be read (a database or decryption error), or
    when a row rented on Vast.ai now resolves to the simulator (its workspace has no key any
    more): its instance is out of reach, so such rows are left exactly as they are."""
    if not accounts.multi:
        return accounts.default
    try:
        return accounts.for_row(team_id, simulated)
    except AccountUnavailable:
        logger.warning(
            "workspace %s has no Vast.ai key now: its deployments rented on Vast.ai are left "
            "as they are",
            team_id,
        )
    except Exception as error:  # one workspace's settings must not stop the others
        logger.warning(
            "the Vast.ai account of workspace %s cannot be read (%s): its deployments wait",
            team_id,
            type(error).__name__,
        )
    return None


def account_resolver(accounts: VastAccounts) -> Callable[[str, bool], VastAccount | None]:
    """:func:`account_of` with a memory: ``(team_id, simulated) -> VastAccount | None``, each
    workspace's key read (and a failure logged) once per resolver. Make one per pass."""
    if not accounts.multi:
        return lambda team_id, simulated: accounts.default
    known: dict[tuple[str, bool], VastAccount | None] = {}

    def resolve(team_id: str, simulated: bool) -> VastAccount | None:
        key = (team_id, simulated)
        if key not in known:
            known[key] = account_of(accounts, team_id, simulated)
        return known[key]

    return resolve


def _destroy(vast: VastApi, instance_id: int, why: str, report: RecoveryReport) -> None:
    logger.warning("recovery: destroying instance %s: %s", instance_id, why)
    try:
        vast.destroy_instance(instance_id)
        report.destroyed.append(instance_id)
    except VastError as error:
        logger.error("recovery: instance %s not destroyed: %s", instance_id, type(error).__name__)


def recover(
    sf: SessionFactory,
    vast: VastApi,
    *,
    installation_id: str,
    now: datetime | None = None,
    grace_seconds: float = GRACE_SECONDS,
    started_at: datetime | None = None,
    owns: Callable[[DeploymentRecord], bool] | None = None,
) -> RecoveryReport:
    """Reconcile the instances this installation (``installation_id``) labelled with the
    deployments table (module docstring); other installations' instances are left alone
    (``foreign``). ``started_at``: when this process started; younger ``creating`` rows are
    its own work and left alone. ``owns``: whether a row lives on the account ``vast`` reads
    (None: every row does, single-workspace mode); with it, only instances labelled for this
    account's rows are touched: the others' rows (live or ended) and labels naming no row at
    all are left alone.

    Network calls happen outside database transactions. Raises storage errors; Vast.ai errors
    on the list make it return ``skipped``; a failed destroy is logged and left for the next run.
    """
    now = now or storage.utcnow()
    report = RecoveryReport()
    if not storage.has_deployments(sf):
        # A database with no deployments at all is new (or a copy): labelled instances on the
        # account then belong to another installation, never to us. Touch nothing.
        logger.info("recovery skipped: no deployments on record")
        return report
    try:
        instances = vast.list_instances(label_prefix=LABEL_PREFIX)
    except VastError as error:
        logger.warning("recovery skipped: instance list unavailable (%s)", type(error).__name__)
        report.skipped = True
        return report

    by_deployment: dict[int, list[int]] = {}
    for instance in instances:
        label = parse_label(instance.label)
        if label is None:
            continue
        if label.installation == installation_id:
            by_deployment.setdefault(label.deployment_id, []).append(instance.id)
            continue
        holder = storage.get_by_instance_id(sf, instance.id) if label.installation is None else None
        if holder is None or not ours(label, installation_id, holder):
            report.foreign.append(instance.id)
            continue
        # The old label form on an instance a row of ours holds: judged by that row.
        if holder.is_final and (owns is None or owns(holder)):
            _destroy(vast, instance.id, stray_reason(instance.id, holder.id, holder) or "", report)
    if report.foreign:
        logger.warning(
            "recovery: instances %s are labelled by another installation of the bot (or by "
            "this one before its database was new): left alone, listed as unmanaged",
            sorted(report.foreign),
        )

    for dep_id, instance_ids in sorted(by_deployment.items()):
        instance_ids.sort()
        dep = storage.get_deployment(sf, dep_id)
        if dep is None:
            report.unrecorded += instance_ids  # never destroyed: see stray_reason
            continue
        if owns is not None and not owns(dep):
            # Several accounts: only an instance whose row lives on this account is ours (a
            # label naming no row here may be another copy of the bot's on a shared account).
            logger.warning(
                "recovery: instances %s are labelled for deployment %s of another Vast.ai "
                "account: left alone",
                instance_ids,
                dep_id,
            )
            continue
        if dep.is_final:
            for instance_id in instance_ids:
                _destroy(vast, instance_id, stray_reason(instance_id, dep_id, dep) or "", report)
            continue
        keep = dep.instance_id
        if keep is None:
            keep = instance_ids[0]
            storage.set_instance(sf, dep_id, keep)
            storage.add_event(sf, dep_id, storage.SYSTEM_ACTOR, "recovered", f"instance {keep}")
            report.attached.append((dep_id, keep))
            report.changed.append(dep_id)
            logger.info("recovery: attached instance %s to deployment %s", keep, dep_id)
        for instance_id in instance_ids:
            if instance_id != keep:
                _destroy(vast, instance_id, f"extra instance for deployment {dep_id}", report)
        if dep.status == DeploymentStatus.CREATING:
            storage.update_status(
                sf,
                dep_id,
                expected_status=DeploymentStatus.CREATING,
                new_status=DeploymentStatus.PROVISIONING,
            )
            if dep_id not in report.changed:
                report.changed.append(dep_id)
    if report.unrecorded:
        report.unrecorded.sort()
        logger.warning(
            "recovery: instances %s are labelled by this installation for deployments this "
            "database does not hold (restored from an older backup?): left alone, listed as "
            "unmanaged for admins",
            report.unrecorded,
        )

    attached = {dep_id for dep_id, _ in report.attached}
    cutoff = now - timedelta(seconds=grace_seconds)
    for dep in storage.list_by_status(sf, [DeploymentStatus.CREATING]):
        if dep.id in attached or (owns is not None and not owns(dep)):
            continue
        if started_at is not None and dep.created_at >= started_at:
            continue  # this process's own submission, in flight
        if dep.created_at >= cutoff:
            report.pending.append(dep)
            continue
        if dep.instance_id is not None:
            if storage.update_status(
                sf,
                dep.id,
                expected_status=DeploymentStatus.CREATING,
                new_status=DeploymentStatus.PROVISIONING,
            ):
                report.changed.append(dep.id)
            continue
        if storage.mark_failed(sf, dep.id, RESTART_REASON, now=now):
            report.failed.append(dep.id)
            report.changed.append(dep.id)
            logger.info("recovery: deployment %s never got an instance: failed", dep.id)
    return report


def tell(service: DeployService, sf: SessionFactory, report: RecoveryReport) -> None:
    """Re-render the status messages of changed deployments, tell the requesters of the
    failed ones (thread reply or DM), and add :func:`waiting_note` to the status message of
    each young ``creating`` row without an instance. Slack failures are logged, not raised."""
    for dep_id in report.changed:
        dep = storage.get_deployment(sf, dep_id)
        if dep is None:
            continue
        service.refresh_message(dep)
        if dep_id in report.failed:
            service.tell_failure(dep, dep.reason or RESTART_REASON, retry_slug=dep.template_slug)
    for dep in report.pending:
        if dep.instance_id is not None or dep.message_ts is None:
            continue  # renting went through (the poller follows it), or no message to edit
        service.refresh_message(dep, note=waiting_note(dep))


def run_on_start(
    sf: SessionFactory,
    accounts: VastAccounts,
    service: DeployService,
    scheduler: BaseScheduler | None = None,
    started_at: datetime | None = None,
    admins: AdminDirectory | None = None,
) -> RecoveryReport:
    """The start-up job: on a database without deployments, :func:`announce_labelled` (to
    ``admins``); then :func:`recover` on each account (:func:`recover_accounts`, at
    ``service.clock()``, for ``service.installation_id``), :func:`tell` (with the deploy
    ``service``), and a one-off re-run (APScheduler ``date`` job on ``scheduler``) at the
    earliest time a young ``creating`` row was promised to be settled (:func:`settles_at`).
    ``started_at`` (default: now) is when this process started: the re-run passes it on, so
    that submissions made since are never taken for a restart's leftovers.

    Never raises: a failure is logged so that the bot still starts.
    """
    now = service.clock()
    started_at = started_at or now
    try:
        if not storage.has_deployments(sf):
            announce_labelled(sf, accounts, service, admins, now=now)
        report = recover_accounts(
            sf, accounts, installation_id=service.installation_id, now=now, started_at=started_at
        )
        tell(service, sf, report)
        announce_unrecorded(sf, service, admins, report, now=now)
    except Exception:
        logger.exception("start-up recovery failed")
        return RecoveryReport(skipped=True)
    logger.info(
        "recovery: %d attached, %d failed, %d destroyed, %d pending",
        len(report.attached),
        len(report.failed),
        len(report.destroyed),
        len(report.pending),
    )
    for dep in report.pending:
        logger.info(
            "recovery: deployment %s is young and has no instance yet: settled at %s",
            dep.id,
            utc_text(settles_at(dep)),
        )
    if report.pending and scheduler is not None:
        run_at = min(settles_at(d) for d in report.pending)
        scheduler.add_job(
            run_on_start,
            "date",
            args=(sf, accounts, service, scheduler, started_at, admins),
            run_date=run_at,
            id="deploy-recovery",
            replace_existing=True,
        )
    return report


def recover_accounts(
    sf: SessionFactory,
    accounts: VastAccounts,
    *,
    installation_id: str,
    now: datetime | None = None,
    grace_seconds: float = GRACE_SECONDS,
    started_at: datetime | None = None,
) -> RecoveryReport:
    """:func:`recover` (for ``installation_id``) on every account: single-workspace mode, the one
    account, exactly as :func:`recover` does; OAuth mode, each account that has deployments on
    record (one list read each), each settling only its own rows. The reports are merged
    (``skipped``: some account's list could not be read, or its workspace's key; its rows were left
    as they are). Raises storage errors.
    """
    if not accounts.multi:
        single = recover(
            sf,
            accounts.default.client,
            installation_id=installation_id,
            now=now,
            grace_seconds=grace_seconds,
            started_at=started_at,
        )
        if single.unrecorded:
            single.unrecorded_teams[None] = list(single.unrecorded)
        return single
    merged = RecoveryReport()
    resolve = account_resolver(accounts)
    targets: dict[str, VastAccount] = {}
    teams_of: dict[str, list[str]] = {}
    for team_id, simulated in sorted(deployment_workspaces(sf)):
        account = resolve(team_id, simulated)
        if account is None:
            merged.skipped = True
            continue
        targets.setdefault(account.name, account)
        if team_id not in teams_of.setdefault(account.name, []):
            teams_of[account.name].append(team_id)
    for name, account in targets.items():

        def owns(dep: DeploymentRecord, name: str = name) -> bool:
            found = resolve(dep.team_id, dep.simulated)
            return found is not None and found.name == name

        report = recover(
            sf,
            account.client,
            installation_id=installation_id,
            now=now,
            grace_seconds=grace_seconds,
            started_at=started_at,
            owns=owns,
        )
        if report.skipped:
            logger.warning("recovery: the instance list of account %s was not read", name)
        merged.attached += report.attached
        merged.destroyed += report.destroyed
        merged.failed += report.failed
        merged.pending += report.pending
        merged.changed += [dep_id for dep_id in report.changed if dep_id not in merged.changed]
        merged.skipped = merged.skipped or report.skipped
        merged.foreign += report.foreign
        merged.unrecorded += report.unrecorded
        for team_id in teams_of.get(name, []) if report.unrecorded else []:
            # The workspaces whose deployments live on this account: its admins may act.
            merged.unrecorded_teams.setdefault(team_id, []).extend(report.unrecorded)
    return merged


def labelled_instances(vast: VastApi) -> list[int]:
    """Ids of the instances on ``vast``'s account whose label the bot wrote (any
    installation, either form: :func:`parse_label`), ascending. Raises VastError."""
    instances = vast.list_instances(label_prefix=LABEL_PREFIX)
    return sorted(i.id for i in instances if parse_label(i.label) is not None)


def announce_labelled(
    sf: SessionFactory,
    accounts: VastAccounts,
    service: DeployService,
    admins: AdminDirectory | None,
    *,
    now: datetime | None = None,
) -> dict[str | None, list[int]]:
    """On a database without deployments: read the list of each account this database can
    reach (single-workspace mode: the one; OAuth mode: the default one and each installed
    workspace's) and, when some hold instances labelled by the bot, say so in one log line and
    by one DM to each bot admin (``admins.admins(team)``, through the messages port of
    ``service``), claimed once per database in ``bot_state`` (:data:`LABELLED_NOTICE_STATE`) so
    that two processes starting at once, or a restart, do not repeat it. Those instances are
    left alone (another installation's, or this bot's before its database was lost: only a
    person can tell).

    Returns ``{team_id (None: single-workspace mode or the default account): instance ids}``
    of what was found. A list that cannot be read is logged and skipped. Raises storage
    errors."""
    targets: dict[str, tuple[VastAccount, list[str | None]]] = {}
    if accounts.multi:
        teams: list[str | None] = [None]
        teams += [w.team_id for w in storage.list_workspaces(sf, installed_only=True)]
    else:
        teams = [None]
    for team in teams:
        try:
            account = accounts.for_team(team)
        except Exception as error:  # one workspace's key must not stop the others
            logger.info("workspace %s: Vast.ai account not read (%s)", team, type(error).__name__)
            continue
        targets.setdefault(account.name, (account, []))[1].append(team)
    found: dict[str | None, list[int]] = {}
    for account, account_teams in targets.values():
        try:
            ids = labelled_instances(account.client)
        except VastError as error:
            logger.warning("start-up: instance list unavailable (%s)", type(error).__name__)
            continue
        if ids:
            for team in account_teams:
                found[team] = ids
    if not found:
        return found
    everything = sorted({i for ids in found.values() for i in ids})
    logger.warning(
        "start-up: the database holds no deployments, but Vast.ai holds %d instances labelled "
        "by this bot (%s): another installation's, or this one's before its database was lost; "
        "left alone, listed as unmanaged for admins",
        len(everything),
        everything,
    )
    if admins is None or not storage.put_state_if_absent(
        sf, LABELLED_NOTICE_STATE, json.dumps(everything), now
    ):
        return found
    for team, ids in found.items():
        if team is None and accounts.multi:
            continue  # OAuth mode: a message needs a workspace
        for user in sorted(admins.admins(team)):
            service.messages.labelled_on_empty_database(user, ids, team_id=team)
    return found


def announce_unrecorded(
    sf: SessionFactory,
    service: DeployService,
    admins: AdminDirectory | None,
    report: RecoveryReport,
    *,
    now: datetime | None = None,
) -> bool:
    """Tell the bot admins, by one DM each (``admins.admins(team)``, through the messages port
    of ``service``), of ``report.unrecorded_teams``: instances labelled by this installation for
    deployments this database does not hold, left alone (:func:`stray_reason`). Claimed once per
    set of instances (a ``claims`` key on their sorted ids), so that a restart, or two processes
    starting at once, do not repeat it; a new set (another instance found later) is told again.
    In OAuth mode each workspace hears only of its own account's instances.

    True when this call sent the notice. Raises storage errors; Slack failures are the port's
    (logged, not raised)."""
    if admins is None or not report.unrecorded_teams:
        return False
    ids = sorted(set(report.unrecorded))
    digest = hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:32]
    if not storage.claim(sf, f"{UNRECORDED_NOTICE_CLAIM}:{digest}", now):
        return False
    for team, team_ids in sorted(report.unrecorded_teams.items(), key=lambda t: t[0] or ""):
        for user in sorted(admins.admins(team)):
            service.messages.labelled_without_row(user, sorted(set(team_ids)), team_id=team)
    return True
