"""The status poller: follows deployments from ``creating`` to ``ready`` (and beyond).

One APScheduler interval job every ``STATUS_POLL_SECONDS`` (``max_instances=1``,
``coalesce=True``: never two runs at once, missed runs collapse into one). Each tick:

1. takes or renews the database lease ``status-poller`` (TTL three intervals, at least 30 s):
   with several bot processes on one database only the holder polls, and another process
   takes over once the holder stops renewing (it died) or released it (clean shutdown);
2. reads the deployments it follows (``creating`` with an instance id, ``provisioning``,
   ``ready``, ``stopped``) from the database;
3. reads their instances with the v1 list (``GET /api/v1/instances/``, 25 a page; vast-api.md
   §4), scaled by what changes rather than by what exists: deployments **in transition**
   (``creating``, ``provisioning``, a Start in flight, a state changed in the last
   :data:`TRANSITION_WINDOW`, a lost host, a ready notification not yet posted) are read
   every tick by id (``select_filters`` ``{"id": {"in": [...]}}``, 25 ids a request), and
   the account's whole list is read in a **rolling sweep**, a slice of pages per tick
   resuming from the last page's cursor, sized so that a full pass takes at most
   ``STEADY_SWEEP_SECONDS`` (deployments at rest: ``ready``, ``stopped``; stray and
   unmanaged instances). Every request asks only the columns the bot reads
   (``select_cols``: :data:`bot.vast.models.INSTANCE_COLUMNS`). The list requests of a tick
   never exceed what the ``list`` pacer allows in one poll interval (:meth:`list_budget`),
   and never one request per deployment;
4. maps each deployment to its instance (:mod:`bot.services.states`), probes apps that look
   up (:mod:`bot.services.probe`), and persists each change with a conditional
   :func:`storage.update_status` (one short transaction each; no network call inside);
5. edits the status message (``chat.update``) only when what it shows changed
   (the messages port's ``visible_key``), so a tick where nothing changed makes no Slack call:
   the edit is marked in the database and queued in the paced, coalescing outbox
   (:mod:`bot.services.message_sync`, :mod:`bot.outbox`), which never blocks the tick; every
   tick first queues again the messages whose last edit did not go through (the reconciler);
6. on ``ready`` claims the thread notification in the database
   (:func:`storage.claim_ready_notification`) and posts it only when the claim succeeded, then
   DMs the requester the login secrets; on a failure destroys the instance (so it stops
   billing), marks the deployment failed with the reason and tells the requester in the thread;
7. hands the ready and stopped deployments that did not move, with this tick's instances, to
   the lifetime rules (:meth:`bot.services.lifetimes.LifetimeService.review`: expiry warnings
   and actions every tick; idle GPUs when this tick read the instance), and at the end of
   each sweep pass records the instances nobody owns (no bot label, no deployment) for
   admins.
   A stopped deployment that runs again after its end passed begins a new run of its lifetime
   (a Start from Slack begins one when it is pressed).

**Accounts** (issue 13). Each workspace may rent on a Vast.ai account of its own
(:mod:`bot.services.accounts`). Each tick groups the followed rows by account (a simulated row:
the simulator's; otherwise its workspace's, so the rows of two workspaces of one Vast.ai user
share one account) and runs steps 3 to 7 for each account with that account's client: its own
rolling sweep and sweep size, its own list budget per tick (each account paced by its own
client's pacers), its own reads by id and its own unmanaged instances (``bot_state``
``unmanaged_instances`` in single-workspace mode, ``unmanaged:<account name>`` in OAuth mode).
The accounts' passes run side by side (one thread each, at most :data:`ACCOUNT_THREADS` at
once): no account waits for another's pacers, and a tick takes about as long as its slowest
account, not the sum of all. What a pass keeps between ticks is its account's own
(``_AccountState``) or its own rows' (each row belongs to one account's pass), and each pass
counts on a report of its own, added to the tick's when the passes are done.
An account's pass judges only its own rows, never those of another account whose instance ids
its pages happen to cover. A stray is judged against every row of the database, so one
account's pass never destroys an instance labelled for a live row of another account. An
account whose list fails (a revoked key, an outage) or whose pass fails leaves its rows as
they are, logs it, and the other accounts' passes go on. A workspace that uninstalled the app
keeps its account, so its rows stay followed and their lifetimes keep applying.
Single-workspace mode has one account and behaves as it did before.

**App Home.** A pass collects the requesters whose deployments it moved and refreshes each
one's Home once, after the pass (``on_change`` with their last changed row): 100 deployments
of one person turning ready in one tick make one Home, not 100 (each Home reads the team's
deployments and its month's spend). A Home not refreshed (a crash right after the pass) shows
the change at the requester's next change or visit; the database already holds it.

Restarts need nothing special: every tick starts from the database, so a new process picks up
where the old one stopped, and a ready deployment whose notification was never posted gets it
on the next tick.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

import storage
from bot.services import states
from bot.services.accounts import VastAccount, VastAccounts
from bot.services.actions import START_CLAIM_PREFIX, start_claim_name
from bot.services.deploy import parse_label
from bot.services.intents import IntentReconciler
from bot.services.lifetimes import LifetimeService
from bot.services.message_sync import MessageSync
from bot.services.ports import Messages, UnmanagedInstance
from bot.services.probe import Prober
from bot.services.recovery import account_resolver, ours, stray_reason, unrecorded
from bot.services.unmanaged import REFRESH as UNMANAGED_REFRESH
from bot.services.unmanaged import unmanaged_state, write_unmanaged
from bot.vast.client import LIST_PAGE_SIZE, VastClient
from bot.vast.errors import AuthError, VastError
from bot.vast.models import INSTANCE_COLUMNS, Instance
from catalog import Template
from storage import DeploymentRecord, DeploymentStatus, SessionFactory
from storage.followed import ended_since_workspaces, followed_with_workspace, list_by_ids

__all__ = ["LEASE_NAME", "JOB_ID", "StatusPoller", "TickReport"]

logger = logging.getLogger(__name__)

#: After a deployment fails or is destroyed, the poller keeps reading the instance list this
#: long even with nothing else to follow, so a stray instance (a create whose answer was lost)
#: is found and destroyed.
STRAY_WINDOW = timedelta(minutes=30)

LEASE_NAME = "status-poller"
JOB_ID = "status-poller"
#: The lease lives this many poll intervals (and at least :data:`MIN_LEASE_SECONDS`).
LEASE_INTERVALS = 3
MIN_LEASE_SECONDS = 30.0
#: A deployment whose state changed this recently is read every tick (a stop or a start
#: settling on Vast.ai, a just-ready app), not only when the sweep passes it.
TRANSITION_WINDOW = timedelta(minutes=5)
#: Statuses always read every tick.
TRANSITION_STATUSES = frozenset({DeploymentStatus.CREATING, DeploymentStatus.PROVISIONING})
#: The sweep reads the list in id order, so a page covers a known range of instance ids.
SWEEP_ORDER = ({"col": "id", "dir": "asc"},)
#: A ready deployment without a status message yet waits this long for the deploy service to
#: post it before its notification goes to the requester's DM instead.
MESSAGE_GRACE = timedelta(seconds=60)
#: Seconds :meth:`StatusPoller.tick` (driven by hand: tests, benchmarks) waits for the outbox.
FLUSH_SECONDS = 10.0
#: At most this many accounts' passes run at once (OAuth mode; one thread each). A pass mostly
#: waits for its account's pacers and for Vast.ai, so the threads cost little; more accounts
#: than this in one tick wait for a free thread.
ACCOUNT_THREADS = 32


@dataclass
class TickReport:
    """What one tick did (for logs, tests and the benchmark).

    ``ran`` is False when another process holds the lease. ``accounts`` is the number of
    Vast.ai accounts whose pass ran. ``vast_requests`` counts HTTP requests to Vast.ai, all
    accounts together (list pages, confirmations, destroys; retries included);
    ``slack_calls`` counts Slack Web API calls the poller made (retries after a 429 not
    included); ``seconds`` is wall time. ``in_transition`` deployments were read by id
    (``transition_requests`` list requests), ``sweep_pages`` pages of the rolling sweep were
    read, ``assessed`` deployments were judged with what this tick read, ``sweep_passes``
    counts the accounts whose whole list this tick finished a pass over (single-workspace
    mode: 1 or 0). ``row_errors`` counts the steps that failed for one deployment this tick
    (assessing, probing, confirming, applying or reviewing its lifetime: bad data, a database
    error on that row, a bug): each is logged with the deployment's id, the row is left as it
    was and tried again on the next pass, and the other rows go on. Counts are summed over the
    accounts.
    """

    ran: bool = True
    accounts: int = 0
    deployments: int = 0
    instances: int = 0
    in_transition: int = 0
    transition_requests: int = 0
    sweep_pages: int = 0
    sweep_passes: int = 0
    assessed: int = 0
    vast_requests: int = 0
    slack_calls: int = 0
    changes: int = 0
    notified: int = 0
    destroyed: int = 0
    probes: int = 0
    row_errors: int = 0
    seconds: float = 0.0
    error: str | None = None

    def add(self, part: TickReport) -> None:
        """Add the counts of ``part`` (one account's pass) to this report's; keep this
        report's ``error``, else take ``part``'s. ``ran`` is left as it is."""
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(part, item.name)
            if item.name == "error":
                self.error = mine or theirs
            elif isinstance(mine, int | float) and not isinstance(mine, bool):
                setattr(self, item.name, mine + theirs)


@dataclass
class _Sweep:
    """Where the rolling sweep over the account's instance list stands.

    ``token`` resumes the pass (None: the next page is the first); ids up to ``after_id`` were
    read in this pass. Over the pass it gathers the instances nobody owns and the stray
    candidates; ``total`` is the list's last ``total_instances``.
    """

    token: str | None = None
    after_id: int = 0
    total: int | None = None
    unmanaged: list[UnmanagedInstance] = field(default_factory=list)
    candidates: set[int] = field(default_factory=set)


@dataclass
class _AccountState:
    """What the poller keeps between ticks for one Vast.ai account: its rolling sweep, whether
    Vast.ai refused the sweep's ``order_by`` once, the instance ids that looked stray in its
    last pass, and its unmanaged instances as last written (and when)."""

    sweep: _Sweep = field(default_factory=_Sweep)
    plain_sweep: bool = False
    strays: set[int] = field(default_factory=set)
    unmanaged: tuple[list[UnmanagedInstance], datetime] | None = None


@dataclass
class _Group:
    """One account's share of a tick: its followed rows (``{deployment id: instance id}``),
    those of them in transition, and whose rows are its own (``owns``). ``spares``: the same
    Vast.ai account through other workspaces' keys, tried in turn when Vast.ai refuses the
    key in use (one workspace's revoked key must not blind the poller to the others' rows)."""

    account: VastAccount
    owns: Callable[[DeploymentRecord], bool]
    followed: dict[int, int] = field(default_factory=dict)
    hot: list[DeploymentRecord] = field(default_factory=list)
    spares: list[VastAccount] = field(default_factory=list)


@dataclass
class _Read:
    """What one account's pass read: instances by id, the deployments read by id, the
    instance-id range ``(low, high]`` the sweep's pages covered (None: no sweep page read),
    and how many sweep pages it read."""

    instances: dict[int, Instance] = field(default_factory=dict)
    by_id: set[int] = field(default_factory=set)
    swept: tuple[float, float] | None = None
    pages: int = 0

    def covers(self, dep: DeploymentRecord) -> bool:
        """Whether this tick read ``dep``'s instance (or learnt that it is absent)."""
        if dep.id in self.by_id:
            return True
        if self.swept is None or dep.instance_id is None:
            return False
        low, high = self.swept
        return low < dep.instance_id <= high


@dataclass
class _Work:
    dep: DeploymentRecord
    instance: Instance | None
    template: Template | None
    verdict: states.Verdict
    vast: VastClient  # the client of the deployment's account


class StatusPoller:
    """The poller for one bot process.

    Args:
        session_factory: storage's sessionmaker.
        accounts: the Vast.ai accounts (:class:`VastAccounts`; single-workspace mode: one).
        messages: the messages port (status message edits, thread notes, DMs).
        catalog_get: ``slug -> Template | None``.
        interval_seconds: ``STATUS_POLL_SECONDS``. timeout_minutes: ``DEPLOY_TIMEOUT_MINUTES``.
        on_change: the owner's Home tab: called after each account's pass, once per requester
            (workspace and user) whose deployments the pass moved, with the last of them.
        clock: returns the aware UTC "now" of a tick (tests move it forward).
        prober: the app readiness probe (a :class:`Prober` with a 3 s timeout by default).
        lease_name: database lease to hold while polling; None polls without one (tests of
            the notification claim).
        holder: this process's lease holder id (default ``host:pid:random``).
        lifetimes: the lifetime and idle rules (None: not applied, for tests of the poller
            alone).
        sweep_seconds: ``STEADY_SWEEP_SECONDS``: a full pass of an account's rolling sweep
            takes at most this long, as far as its ``list`` pacer's budget allows.
        sync: marks and queues status-message edits and reconciles marked ones (default: one
            on the same database and messages port).
        installation_id: this database's installation id (:func:`storage.installation_id`):
            only instances labelled with it are judged as strays (:func:`recovery.ours`).
        intents: the desired-state reconciler, run once per tick after the account passes
            (None: not run, for tests of the poller alone).
        account_threads: at most this many accounts' passes run at once.
    """

    def __init__(
        self,
        *,
        installation_id: str,
        session_factory: SessionFactory,
        accounts: VastAccounts,
        messages: Messages,
        catalog_get: Callable[[str], Template | None],
        interval_seconds: float,
        timeout_minutes: float,
        on_change: Callable[[DeploymentRecord], object] = lambda dep: None,
        clock: Callable[[], datetime] = storage.utcnow,
        prober: Prober | None = None,
        lease_name: str | None = LEASE_NAME,
        holder: str | None = None,
        lifetimes: LifetimeService | None = None,
        sweep_seconds: float = 120.0,
        sync: MessageSync | None = None,
        on_pass: Callable[[TickReport, bool], object] = lambda report, ok: None,
        intents: IntentReconciler | None = None,
        account_threads: int = ACCOUNT_THREADS,
    ) -> None:
        self.intents = intents
        self.sf = session_factory
        self.on_pass = on_pass
        self.installation_id = installation_id
        self.sync = sync or MessageSync(
            session_factory=session_factory,
            messages=messages,
            catalog_get=catalog_get,
            clock=clock,
        )
        self.accounts = accounts
        self.messages = messages
        self.catalog_get = catalog_get
        self.on_change = on_change
        self.clock = clock
        self.prober = prober or Prober()
        self.lease_name = lease_name
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.interval_seconds = float(interval_seconds)
        self.lease_seconds = max(LEASE_INTERVALS * self.interval_seconds, MIN_LEASE_SECONDS)
        self.timeout = timedelta(minutes=float(timeout_minutes))
        self._lock = threading.Lock()
        # deployment id -> (message ts, visible key) last shown in Slack by this process
        self._shown: dict[int, tuple[str, Hashable]] = {}
        # deployment id -> when this process first saw its instance offline/unknown
        self._lost_since: dict[int, datetime] = {}
        self.sweep_seconds = float(sweep_seconds)
        # account name -> its sweep, stray candidates and unmanaged instances
        self._accounts: dict[str, _AccountState] = {}
        # deployment id -> number of the tick that last read it (the oldest go first)
        self._read_at: dict[int, int] = {}
        self._ticks = 0
        self.lifetimes = lifetimes
        self._holding = False
        # deployment id -> the error types already logged with a traceback for it
        self._row_errors: dict[int, set[str]] = {}
        self.account_threads = max(1, account_threads)
        # The Homes a pass will refresh when it ends: {(team, user): last changed row}, kept
        # by the pass's own thread.
        self._homes = threading.local()

    # -- scheduling -------------------------------------------------------------------------

    def install(self, scheduler: BaseScheduler) -> None:
        """Add the interval job to an APScheduler scheduler (not started here)."""
        scheduler.add_job(
            self.run_scheduled,
            "interval",
            seconds=self.interval_seconds,
            id=JOB_ID,
            name="status poller",
            max_instances=1,
            coalesce=True,
            replace_existing=True,
            misfire_grace_time=max(1, int(self.interval_seconds)),
        )

    def run_scheduled(self) -> None:
        """The job body: one tick, skipped when a tick is already running; never raises."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            report = self._observed_tick()
            if report.changes or report.error or report.row_errors:
                logger.info("poller tick: %s", report)
        except Exception:  # the job must survive anything one tick meets
            logger.exception("status poller tick failed")
        finally:
            self._lock.release()

    def tick(self) -> TickReport:
        """Run one tick now (waits for a running one to finish), then wait up to
        :data:`FLUSH_SECONDS` for the outbox to send what the tick queued (the scheduled runs
        do not wait: :meth:`run_scheduled`), so tests and benchmarks see its Slack calls.
        Raises only on database errors (in OAuth mode an account's failed pass is logged and
        the other accounts' go on); Vast.ai and Slack problems are logged and retried on the
        next tick."""
        with self._lock:
            report = self._observed_tick()
        self.messages.flush(FLUSH_SECONDS)
        return report

    def close(self) -> None:
        """Give up the lease (so another process takes over at once) and close the prober."""
        with self._lock:
            if self.lease_name is not None and self._holding:
                try:
                    storage.release_lease(self.sf, self.lease_name, self.holder)
                except Exception:  # shutting down: the lease simply expires
                    logger.warning("could not release the poller lease", exc_info=True)
                self._holding = False
            self.prober.close()

    # -- one tick ---------------------------------------------------------------------------

    def _observed_tick(self) -> TickReport:
        """:meth:`_tick`, then ``on_pass`` (the heartbeat) with how it ended."""
        try:
            report = self._tick()
        except Exception:
            self.on_pass(TickReport(error="tick raised"), False)
            raise
        self.on_pass(report, True)
        return report

    def _tick(self) -> TickReport:
        started = time.perf_counter()
        report = TickReport()
        now = self.clock()
        sf = self.sf
        if self.lease_name is not None:
            held = storage.acquire_lease(
                sf, self.lease_name, self.holder, self.lease_seconds, now=now
            )
            if not held:
                if self._holding:
                    logger.info("poller lease lost to another process")
                self._holding = False
                self._shown.clear()
                self._lost_since.clear()
                report.ran = False
                return report
            if not self._holding:
                logger.info("poller lease taken by %s", self.holder)
            self._holding = True
        # Status messages whose last edit did not go through (a 429, the network, a restart):
        # queue their current state again (the outbox paces and coalesces them).
        self.sync.reconcile()

        # Ids only for all followed rows; full rows for those in transition and those this
        # tick's sweep covers (a tick over 10,000 deployments reads a few hundred rows).
        resolve = account_resolver(self.accounts)
        followed, groups = self._followed(now, resolve)
        report.deployments = len(followed)
        for cache in (self._shown, self._lost_since, self._read_at, self._row_errors):
            for dep_id in [k for k in cache if k not in followed]:
                del cache[dep_id]
        if groups is None:
            # Nothing to follow and no recent failure that could have left a stray instance.
            self._carry_intents(now, report)
            report.seconds = time.perf_counter() - started
            return report

        self._ticks += 1
        clients = {
            id(client): client
            for g in groups
            for client in (g.account.client, *(spare.client for spare in g.spares))
        }
        counts_before = {key: client.request_count for key, client in clients.items()}
        starting = storage.live_lease_names(sf, START_CLAIM_PREFIX, now)
        hot = storage.list_in_transition(
            sf,
            states.WATCHED_STATUSES,
            busy=TRANSITION_STATUSES,
            changed_since=now - TRANSITION_WINDOW,
            ids={_claimed_id(name) for name in starting} | set(self._lost_since),
        )
        report.in_transition = len(hot)
        by_name = {group.account.name: group for group in groups}
        for dep in hot:
            account = resolve(dep.team_id, dep.simulated)
            group = by_name.get(account.name) if account is not None else None
            if group is not None:
                group.hot.append(dep)

        covered = self._passes(groups, now, starting, report)
        if self.lifetimes is not None:
            # Rows no pass read: only the expiry rule can be due for them (whatever their
            # account, even one whose list failed or whose workspace uninstalled the app), but
            # not rows whose account is out of reach: a stop could not be sent, and trying
            # every tick would only claim and release them and log a failure each time.
            at_rest = (DeploymentStatus.READY, DeploymentStatus.STOPPED)
            unread = [
                dep
                for dep in storage.list_ending_before(
                    sf, at_rest, self.lifetimes.expiry_horizon(now)
                )
                if dep.id not in covered and resolve(dep.team_id, dep.simulated) is not None
            ]
            report.slack_calls += self._review(unread, {}, now, frozenset(), report)
        self._carry_intents(now, report)
        report.vast_requests = sum(
            client.request_count - counts_before[key] for key, client in clients.items()
        )
        report.seconds = time.perf_counter() - started
        return report

    def _carry_intents(self, now: datetime, report: TickReport) -> None:
        """The desired-state reconciler's pass (:mod:`bot.services.intents`); never raises."""
        if self.intents is None:
            return
        try:
            report.slack_calls += self.intents.run(now).slack_calls
        except Exception:  # the next tick tries again; the rest of the tick is done
            logger.exception("poller: desired states not reconciled")
            report.error = report.error or "intents failed"

    def _followed(
        self, now: datetime, resolve: Callable[[str, bool], VastAccount | None]
    ) -> tuple[dict[int, int], list[_Group] | None]:
        """The followed rows (``{deployment id: instance id}``) and this tick's accounts with
        their rows; None instead of the accounts when there is nothing to read (nothing
        followed and no recent failure or destroy that could have left a stray instance).

        Single-workspace mode: the one account, with today's reads. OAuth mode: one query
        for the followed rows with their workspace, one for the workspaces of recent ends; a
        row whose account cannot be resolved (:func:`bot.services.recovery.account_of`) is
        left out of every pass, so nothing judges it."""
        sf = self.sf
        since = now - STRAY_WINDOW
        if not self.accounts.multi:
            followed = storage.followed_instances(sf, states.WATCHED_STATUSES)
            if not followed and not storage.count_ended_since(sf, since):
                return followed, None
            default = self.accounts.default
            return followed, [_Group(default, owns=lambda dep: True, followed=followed)]
        rows = followed_with_workspace(sf, states.WATCHED_STATUSES)
        ended = ended_since_workspaces(sf, since)
        followed = {dep_id: row.instance_id for dep_id, row in rows.items()}
        if not rows and not ended:
            return followed, None
        groups: dict[str, _Group] = {}

        def group_of(account: VastAccount) -> _Group:
            name = account.name

            def owns(dep: DeploymentRecord) -> bool:
                found = resolve(dep.team_id, dep.simulated)
                return found is not None and found.name == name

            group = groups.setdefault(name, _Group(account, owns=owns))
            clients = [group.account.client, *(spare.client for spare in group.spares)]
            if all(account.client is not client for client in clients):
                group.spares.append(account)
            return group

        for dep_id, row in rows.items():
            account = resolve(row.team_id, row.simulated)
            if account is not None:
                group_of(account).followed[dep_id] = row.instance_id
        for team_id, simulated in sorted(ended):
            account = resolve(team_id, simulated)
            if account is not None:
                group_of(account)
        return followed, sorted(groups.values(), key=lambda g: g.account.name)

    def _passes(
        self, groups: list[_Group], now: datetime, starting: set[str], report: TickReport
    ) -> dict[int, DeploymentRecord]:
        """Run every account's pass, side by side when there are several (at most
        :attr:`account_threads` at once), so each is paced by its own account's limits only;
        add their reports to ``report`` in account order; return the rows they judged."""
        for group in groups:  # made here, so the passes only read this dict
            self._accounts.setdefault(group.account.name, _AccountState())
        if not groups:  # OAuth mode: rows whose accounts are all out of reach
            return {}
        if len(groups) == 1:
            results = [self._account_pass(groups[0], now, starting)]
        else:
            with ThreadPoolExecutor(
                max_workers=min(len(groups), self.account_threads),
                thread_name_prefix="poller-account",
            ) as pool:
                futures = [
                    pool.submit(self._account_pass, group, now, starting) for group in groups
                ]
            results = [future.result() for future in futures]
        covered: dict[int, DeploymentRecord] = {}
        for part_covered, part in results:
            covered.update(part_covered)
            report.add(part)
        return covered

    def _account_pass(
        self, group: _Group, now: datetime, starting: set[str]
    ) -> tuple[dict[int, DeploymentRecord], TickReport]:
        """:meth:`_pass` on a report of its own, then one Home refresh per requester whose
        deployments it moved. In OAuth mode a failing pass is logged and returns no rows (one
        account's trouble must not stop the others'); in single-workspace mode it raises."""
        part = TickReport()
        self._homes.pending = {}
        try:
            return self._pass(group, now, starting, part), part
        except Exception:
            if not self.accounts.multi:
                raise
            logger.exception("poller: account %s: pass failed", group.account.name)
            part.error = part.error or "account pass failed"
            return {}, part
        finally:
            self._refresh_homes(part)

    def _home_changed(self, dep: DeploymentRecord, report: TickReport) -> None:
        """``dep`` moved, and its requester's App Home lists it: during a pass, remember it for
        :meth:`_refresh_homes`; otherwise refresh it now."""
        pending: dict[tuple[str, str], DeploymentRecord] | None = getattr(
            self._homes, "pending", None
        )
        if pending is not None:
            pending[(dep.team_id, dep.user_id)] = dep
            return
        report.slack_calls += 1
        self.on_change(dep)

    def _refresh_homes(self, report: TickReport) -> None:
        """Refresh once each Home this thread's pass collected (a failure is logged: the Home
        is refreshed again at the requester's next change or visit)."""
        pending: dict[tuple[str, str], DeploymentRecord] = getattr(self._homes, "pending", {})
        self._homes.pending = None
        for dep in pending.values():
            report.slack_calls += 1
            try:
                self.on_change(dep)
            except Exception:
                logger.exception("poller: App Home of deployment %d not refreshed", dep.id)

    def _pass(
        self, group: _Group, now: datetime, starting: set[str], report: TickReport
    ) -> dict[int, DeploymentRecord]:
        """One account's share of the tick (steps 3 to 7 of the module docstring) with its
        own client; returns the rows it judged with what it read. Vast.ai errors are logged
        and leave the rows they concern as they are."""
        account, sf = group.account, self.sf
        state = self._accounts.setdefault(account.name, _AccountState())
        where = self._where(account)
        report.accounts += 1
        read = _Read()
        # The sweep first: what its pages cover needs no read by id. Each read stands alone:
        # a failing sweep must not keep deployments in transition from being followed.
        # Never read a failed list as "no instances" (vast-api.md §7 pitfall 3): only what was
        # read is judged.
        refused = False
        while True:
            try:
                reserve = math.ceil(len(group.hot) / LIST_PAGE_SIZE)
                self._read_sweep(group, state, read, report, now, reserve=reserve)
            except VastError as error:
                logger.warning("poller: %sthe sweep's list request failed: %s", where, error)
                report.error = type(error).__name__
                refused = isinstance(error, AuthError)  # the key: nothing else would be read
                if refused and group.spares:
                    logger.warning(
                        "poller: %sVast.ai refused one workspace's key: reading this account "
                        "with another workspace's key",
                        where,
                    )
                    group.account = account = group.spares.pop(0)
                    report.error = None
                    refused = False
                    continue
            break
        if not refused:
            try:
                self._read_transitions(
                    account, [d for d in group.hot if not read.covers(d)], read, report
                )
            except VastError as error:
                logger.warning(
                    "poller: %sreading deployments in transition failed: %s", where, error
                )
                report.error = type(error).__name__
        report.instances += len(read.instances)

        covered = {dep.id: dep for dep in group.hot if read.covers(dep)}
        if read.swept is not None:
            low, high = read.swept
            if self.accounts.multi:  # only this account's rows: ids of others may be in range
                in_range = [d for d, i in group.followed.items() if low < i <= high]
                rows = [
                    dep
                    for dep in list_by_ids(sf, in_range, states.WATCHED_STATUSES)
                    if dep.instance_id is not None and low < dep.instance_id <= high
                ]
            else:
                rows = storage.list_by_instance_range(sf, states.WATCHED_STATUSES, low, high)
            for dep in rows:
                covered.setdefault(dep.id, dep)
        report.assessed += len(covered)
        for dep_id in covered:
            self._read_at[dep_id] = self._ticks
        # Each row stands alone: one that fails a step (bad data, a database error, a bug) is
        # logged, counted, left as it is for the next pass, and the others go on.
        work: list[_Work] = []
        failed: list[DeploymentRecord] = []
        for dep in sorted(covered.values(), key=lambda d: d.id):
            try:
                instance = read.instances.get(dep.instance_id or 0)
                work.append(self._assess(dep, instance, now, starting, account))
            except Exception as error:
                self._row_failed(dep, "assessed", error, report, failed)
        work = self._probe(work, now, report, failed)
        kept: list[_Work] = []
        for item in work:
            try:
                if item.verdict.confirm_gone:
                    self._confirm_gone(item, now)
                kept.append(item)
            except Exception as error:
                self._row_failed(item.dep, "confirmed", error, report, failed)
        for item in kept:
            try:
                self._apply(item, now, report)
            except Exception as error:
                self._row_failed(item.dep, "processed", error, report)
        if self.lifetimes is not None:
            at_rest = (DeploymentStatus.READY, DeploymentStatus.STOPPED)
            steady = [  # rows this tick did not move; review() judges ready and stopped ones
                item.dep
                for item in kept
                if item.verdict.status == item.dep.status and item.dep.status in at_rest
            ]
            # A row that failed before its verdict still gets the expiry rule (as unread: no
            # idle judgement on data that did not assess): its GPU may bill past its end.
            steady += [dep for dep in failed if dep.status in at_rest]
            seen = set(covered) - {dep.id for dep in failed}
            report.slack_calls += self._review(steady, read.instances, now, seen, report)
        return covered

    def _row_failed(
        self,
        dep: DeploymentRecord,
        step: str,
        error: Exception,
        report: TickReport,
        failed: list[DeploymentRecord] | None = None,
    ) -> None:
        """Count and log one deployment's failure at ``step`` (called in its ``except``): a
        traceback the first time this process sees this error type for this deployment, one
        line after that (it fails the same way every pass until fixed). ``failed`` collects
        the rows that got no verdict this tick."""
        report.row_errors += 1
        if failed is not None:
            failed.append(dep)
        kind = type(error).__name__
        logged = self._row_errors.setdefault(dep.id, set())
        if kind in logged:
            logger.warning(
                "poller: deployment %d not %s (%s again); tried again next pass", dep.id, step, kind
            )
            return
        logged.add(kind)
        logger.exception("poller: deployment %d not %s; tried again next pass", dep.id, step)

    def _review(
        self,
        deps: list[DeploymentRecord],
        instances: dict[int, Instance],
        now: datetime,
        seen: Set[int],
        report: TickReport,
    ) -> int:
        """:meth:`LifetimeService.review` of ``deps``, so that one row's exception never stops
        the others: the rows together first, then, if that raised, each row alone (the rules
        claim every warning and action in the database, so a row already handled before the
        exception is not handled twice). Returns the Slack messages or actions sent."""
        assert self.lifetimes is not None
        try:
            return self.lifetimes.review(deps, instances, now, seen=seen)
        except Exception as error:
            logger.warning(
                "poller: the lifetime review failed (%s); reviewing each deployment alone",
                type(error).__name__,
            )
        sent = 0
        for dep in deps:
            try:
                sent += self.lifetimes.review([dep], instances, now, seen=seen)
            except Exception as error:
                self._row_failed(dep, "reviewed", error, report)
        return sent

    def _where(self, account: VastAccount) -> str:
        """The account's name for a log line (nothing in single-workspace mode)."""
        return f"account {account.name}: " if self.accounts.multi else ""

    # -- what a tick reads ------------------------------------------------------------------

    @property
    def ticks(self) -> int:
        """Ticks this poller ran that read Vast.ai (numbered from 1)."""
        return self._ticks

    def last_read_tick(self, deployment_id: int) -> int | None:
        """The number of the last tick that read this deployment's instance (None: none has
        since it was last followed)."""
        return self._read_at.get(deployment_id)

    def list_budget(self, account: VastAccount | None = None) -> int:
        """List requests one tick may send to ``account`` (default: the default account):
        what its client's ``list`` pacer allows in one poll interval (at least 2: one by id,
        one sweep page). Each account has its own pacers, so its own budget."""
        client = (account or self.accounts.default).client
        spacing = client.pacers.spacing("list")
        if spacing <= 0:
            return 1_000_000
        return max(2, math.floor(self.interval_seconds / spacing))

    def _read_transitions(
        self, account: VastAccount, hot: list[DeploymentRecord], read: _Read, report: TickReport
    ) -> None:
        """Read the instances of ``hot`` (rows of ``account``) by id, 25 a request, the least
        recently read first, within what is left of the account's budget after its sweep."""
        if not hot:
            return
        hot = sorted(hot, key=lambda d: (self._read_at.get(d.id, 0), d.id))
        left = max(0, self.list_budget(account) - read.pages)
        chunks = _chunks(hot, LIST_PAGE_SIZE)[:left]
        for chunk in chunks:
            ids = sorted({d.instance_id for d in chunk if d.instance_id is not None})
            page = account.client.list_instances_page(
                select_filters={"id": {"in": ids}}, select_cols=INSTANCE_COLUMNS
            )
            report.transition_requests += 1
            wanted = set(ids)
            read.instances.update((i.id, i) for i in page.instances if i.id in wanted)
            read.by_id.update(d.id for d in chunk)

    def sweep_pages_per_tick(self, followed: int, account: VastAccount | None = None) -> int:
        """Pages the sweep of ``account`` (default: the default account) reads per tick so
        that a pass over its list (its last ``total_instances``, else ``followed``) takes at
        most ``STEADY_SWEEP_SECONDS``."""
        state = self._accounts.get((account or self.accounts.default).name)
        known = state.sweep.total if state is not None else None
        total = known if known is not None else followed
        pages = max(1, math.ceil(total / LIST_PAGE_SIZE))
        ticks_per_pass = max(1, math.floor(self.sweep_seconds / self.interval_seconds))
        return max(1, math.ceil(pages / ticks_per_pass))

    def _read_sweep(
        self,
        group: _Group,
        state: _AccountState,
        read: _Read,
        report: TickReport,
        now: datetime,
        *,
        reserve: int,
    ) -> None:
        """Read this tick's slice of the account's rolling sweep (never past the end of a
        pass), leaving ``reserve`` requests of its budget for reads by id (the sweep gets at
        least one)."""
        account, sweep = group.account, state.sweep
        where = self._where(account)
        budget = max(1, self.list_budget(account) - reserve)
        pages = min(self.sweep_pages_per_tick(len(group.followed), account), budget)
        held: set[int | None] = set(group.followed.values())
        low = float(sweep.after_id)
        for _ in range(pages):
            try:
                page = account.client.list_instances_page(
                    after_token=sweep.token,
                    select_cols=INSTANCE_COLUMNS,
                    order_by=None if state.plain_sweep else SWEEP_ORDER,
                )
            except VastError as error:
                if error.status_code == 400 and sweep.token is not None:
                    logger.info(
                        "poller: %sthe sweep's cursor was refused; starting a new pass", where
                    )
                    state.sweep = _Sweep(total=sweep.total)
                elif error.status_code == 400 and not state.plain_sweep:
                    # The list's default order is by id too (its keyset cursor ends in id).
                    logger.warning("poller: %sVast.ai refused order_by; sweeping without it", where)
                    state.plain_sweep = True
                raise
            report.sweep_pages += 1
            read.pages += 1
            sweep.total = page.total
            for instance in page.instances:
                read.instances.setdefault(instance.id, instance)
                self._sweep_one(group, state, instance, held, report)
            last = max((i.id for i in page.instances), default=sweep.after_id)
            if page.next_token is None:
                read.swept = (low, math.inf)
                self._end_pass(account, state, now)
                report.sweep_passes += 1
                return
            sweep.token, sweep.after_id = page.next_token, max(sweep.after_id, last)
            read.swept = (low, float(sweep.after_id))

    def _end_pass(self, account: VastAccount, state: _AccountState, now: datetime) -> None:
        """A pass over ``account`` is complete: keep its stray candidates, record its
        unmanaged instances, and start its next pass."""
        sweep = state.sweep
        state.strays = sweep.candidates
        unmanaged = sorted(sweep.unmanaged, key=lambda i: i.id)
        written = state.unmanaged
        if written is None or written[0] != unmanaged or now - written[1] >= UNMANAGED_REFRESH:
            name = account.name if self.accounts.multi else None
            write_unmanaged(self.sf, unmanaged, now, state=unmanaged_state(name))
            state.unmanaged = (unmanaged, now)
        state.sweep = _Sweep(total=sweep.total)

    def _sweep_one(
        self,
        group: _Group,
        state: _AccountState,
        instance: Instance,
        held: set[int | None],
        report: TickReport,
    ) -> None:
        """Judge one instance of an account's sweep: nobody's (recorded for admins), or
        labelled by the bot while no live deployment holds it (a create whose answer was
        lost, a leftover whose destroy failed): it bills and nobody sees it, so it is
        destroyed once it looked stray in two passes in a row (a create being answered right
        now is left to the deploy service). Judged against every row of the database, of any
        workspace. With several accounts (OAuth mode) only an instance whose row lives on this
        account is destroyed: one labelled for a row of another account (live or ended) is left
        alone, and one whose label names no row at all is listed as unmanaged (another copy of
        the bot may share the Vast.ai account: its instances are never ours to destroy).

        Only instances of this installation are judged (:func:`recovery.ours`): one labelled by
        another installation (another database), or with the old ``slackbot:dep-<id>`` label
        that no row of this database holds, is listed as unmanaged and never destroyed."""
        sweep = state.sweep
        if instance.id in held:
            return
        label = parse_label(instance.label)
        if label is None:
            sweep.unmanaged.append(_unmanaged(instance))
            return
        if label.installation == self.installation_id:
            dep_id = label.deployment_id
            dep = storage.get_deployment(self.sf, dep_id)
        else:
            holder = (
                storage.get_by_instance_id(self.sf, instance.id)
                if label.installation is None
                else None
            )
            if holder is None or not ours(label, self.installation_id, holder):
                logger.info(
                    "poller: %sinstance %d is labelled by another installation: left alone",
                    self._where(group.account),
                    instance.id,
                )
                sweep.unmanaged.append(_unmanaged(instance))
                return
            dep_id, dep = holder.id, holder  # the old label form, on a row of ours
        why = stray_reason(instance.id, dep_id, dep)
        if why is None and not unrecorded(dep):
            return
        if unrecorded(dep):
            logger.info(  # start-up recovery warns of it, and tells the admins, once
                "poller: %sinstance %d is labelled for deployment %d, which this database does "
                "not hold: left alone",
                self._where(group.account),
                instance.id,
                dep_id,
            )
            sweep.unmanaged.append(_unmanaged(instance))
            return
        if dep is not None and not group.owns(dep):
            logger.warning(
                "poller: %sinstance %d is labelled for deployment %d of another account: "
                "left alone",
                self._where(group.account),
                instance.id,
                dep_id,
            )
            return
        sweep.candidates.add(instance.id)
        if instance.id not in state.strays:
            return
        logger.warning(
            "poller: %sdestroying instance %d: %s", self._where(group.account), instance.id, why
        )
        try:
            group.account.client.destroy_instance(instance.id)
            report.destroyed += 1
            sweep.candidates.discard(instance.id)
        except VastError as error:
            logger.warning("poller: instance %d not destroyed: %s", instance.id, error)

    def _assess(
        self,
        dep: DeploymentRecord,
        instance: Instance | None,
        now: datetime,
        starting: set[str],
        account: VastAccount,
    ) -> _Work:
        template = self.catalog_get(dep.template_slug)
        verdict = states.assess(
            dep,
            instance,
            template,
            now=now,
            timeout=self.timeout,
            host_lost_since=self._lost_since.get(dep.id),
            start_requested=(
                dep.status == DeploymentStatus.STOPPED and start_claim_name(dep.id) in starting
            ),
        )
        if verdict.host_lost:
            self._lost_since.setdefault(dep.id, now)
        else:
            self._lost_since.pop(dep.id, None)
        return _Work(dep, instance, template, verdict, account.client)

    def _probe(
        self, work: list[_Work], now: datetime, report: TickReport, failed: list[DeploymentRecord]
    ) -> list[_Work]:
        """Probe the apps that look up and finish their verdicts; returns the rows whose
        verdict is complete (a row that fails here goes to ``failed``). A prober that raises
        counts every URL as not up (the prober itself never should)."""
        urls = [item.verdict.probe_url for item in work if item.verdict.probe_url]
        if not urls:
            return work
        try:
            results = self.prober.are_up(urls)
        except Exception:
            logger.exception("poller: the readiness probe failed; no app counts as up")
            results = {}
        report.probes += len(results)
        kept: list[_Work] = []
        for item in work:
            url = item.verdict.probe_url
            try:
                if url:
                    up = results.get(url, False)
                    item.verdict = states.after_probe(
                        item.verdict, item.dep, up, now=now, timeout=self.timeout
                    )
                kept.append(item)
            except Exception as error:
                self._row_failed(item.dep, "probed", error, report, failed)
        return kept

    def _confirm_gone(self, item: _Work, now: datetime) -> None:
        """The list missed the instance: ask for it by id before calling it destroyed."""
        assert item.dep.instance_id is not None
        try:
            instance = item.vast.get_instance(item.dep.instance_id)
        except VastError as error:
            logger.warning("poller: could not confirm instance %d: %s", item.dep.instance_id, error)
            item.verdict = states.Verdict(item.dep.status, status_msg=item.dep.status_msg)
            return
        if instance is not None:  # the list lagged: judge it without a probe this tick
            item.instance = instance
            verdict = states.assess(
                item.dep, instance, item.template, now=now, timeout=self.timeout
            )
            if verdict.probe_url:
                verdict = states.after_probe(
                    verdict, item.dep, False, now=now, timeout=self.timeout
                )
            item.verdict = verdict

    # -- applying a verdict -----------------------------------------------------------------

    def _apply(self, item: _Work, now: datetime, report: TickReport) -> None:
        dep, verdict = item.dep, item.verdict
        sf = self.sf
        fields: dict[str, object] = {}
        if verdict.status_msg is not None and verdict.status_msg != dep.status_msg:
            fields["status_msg"] = verdict.status_msg
        if verdict.connection is not None and verdict.connection.differs_from(dep):
            fields.update(verdict.connection.fields())
        moved = verdict.status != dep.status
        if moved and verdict.status in storage.FINAL_STATUSES:
            fields["reason"] = verdict.reason

        if moved and verdict.destroy and dep.instance_id is not None:
            try:
                item.vast.destroy_instance(dep.instance_id)
                report.destroyed += 1
            except VastError as error:
                # Keep the state: the next tick reaches the same verdict and tries again.
                logger.warning("poller: destroying instance %d failed: %s", dep.instance_id, error)
                return

        persisted = False
        if moved or fields:
            persisted = storage.update_status(
                sf,
                dep.id,
                expected_status=dep.status,
                new_status=verdict.status,
                now=now,
                actor=storage.SYSTEM_ACTOR,
                # Running again after its end passed (started outside the bot): a new run, in
                # the same transaction, so it is never ready with the old run's end.
                new_run=(
                    dep.status == DeploymentStatus.STOPPED
                    and verdict.status == DeploymentStatus.READY
                    and dep.ends_at is not None
                    and dep.ends_at <= now
                ),
                unchanged=None,
                **fields,
            )
            if not persisted:  # someone else moved it (a user action, another process)
                return
            if moved:
                report.changes += 1
                if verdict.status == DeploymentStatus.FAILED and verdict.reason:
                    storage.add_event(sf, dep.id, storage.SYSTEM_ACTOR, "failed", verdict.reason)
            fresh = storage.get_deployment(sf, dep.id)
            if fresh is None:
                return
            old_status, dep = dep.status, fresh
            if old_status == DeploymentStatus.STOPPED and dep.status == DeploymentStatus.READY:
                # Running again with no Start of ours: record what Vast.ai now does.
                storage.record_outside_start(sf, dep.id, reason=_OUTSIDE_START, now=now)
        else:
            old_status = dep.status

        pending_ready = dep.status == DeploymentStatus.READY and dep.ready_notified_at is None
        self._show(dep, item.template, now, report, force=(persisted and moved) or pending_ready)

        if not moved:
            if pending_ready:
                self._notify_ready(dep, item, now, report)
            elif dep.status == DeploymentStatus.READY and dep.secrets_sent_at is None:
                self._send_secrets(dep, item, now, report)  # a refused DM, tried again
            return
        if dep.status != DeploymentStatus.STOPPED:
            # A Start completed (ready) or is over (failed, destroyed): give its claim back, so
            # the next Stop → Start is sent to Vast.ai (issue 14, defect M).
            storage.drop_lease(sf, start_claim_name(dep.id))
        self._home_changed(dep, report)
        if dep.status == DeploymentStatus.READY:
            self._notify_ready(dep, item, now, report)
        elif dep.status == DeploymentStatus.FAILED:
            report.slack_calls += 1
            self.messages.failed(dep)
        elif dep.status == DeploymentStatus.DESTROYED:
            report.slack_calls += 1
            self.messages.gone(dep)
        elif dep.status == DeploymentStatus.STOPPED and old_status == DeploymentStatus.READY:
            report.slack_calls += 1
            self.messages.stopped_outside(dep)

    def _show(
        self,
        dep: DeploymentRecord,
        template: Template | None,
        now: datetime,
        report: TickReport,
        *,
        force: bool,
    ) -> None:
        """``chat.update`` the status message when what it shows changed."""
        if not dep.message_channel or not dep.message_ts:
            return
        key = (dep.message_ts, self.messages.visible_key(dep, now=now))
        shown = self._shown.get(dep.id)
        if shown == key and not force:
            return
        if shown is None and not force:
            # First sight in this process (start-up or lease takeover) with nothing new: the
            # message already shows this state; remember it instead of re-sending everything.
            self._shown[dep.id] = key
            return
        report.slack_calls += 1
        # Marked in the database, then queued in the paced outbox: a rate limit or a network
        # failure keeps the mark, and the reconciler (each tick, any process) sends it again.
        self.sync.changed(dep)
        self._shown[dep.id] = key

    def _notify_ready(
        self, dep: DeploymentRecord, item: _Work, now: datetime, report: TickReport
    ) -> None:
        """Post the ready notification exactly once across processes, then DM the secrets."""
        sf = self.sf
        if dep.message_ts is None and now - dep.created_at < MESSAGE_GRACE:
            return  # the deploy service has not posted the status message yet
        if not storage.claim_ready_notification(sf, dep.id, now=now):
            return
        jupyter_token = item.instance.jupyter_token if item.instance is not None else None
        report.slack_calls += 1
        if not self.messages.ready(dep, item.template, jupyter_token=jupyter_token):
            storage.release_ready_notification(sf, dep.id, now)  # the next tick posts it
            return
        report.notified += 1
        self._send_secrets(dep, item, now, report)

    def _send_secrets(
        self, dep: DeploymentRecord, item: _Work, now: datetime, report: TickReport
    ) -> None:
        """DM the requester the deployment's secrets once; a refused DM is retried next tick."""
        if dep.secrets_sent_at is not None:
            return
        jupyter_token = item.instance.jupyter_token if item.instance is not None else None
        if not self.messages.has_secrets(dep, item.template, jupyter_token=jupyter_token):
            return
        if not storage.claim_secrets_dm(self.sf, dep.id, now=now):
            return
        report.slack_calls += 1
        sent = self.messages.secrets(
            dep, item.template, user_id=dep.user_id, jupyter_token=jupyter_token
        )
        if not sent:  # nothing to send, refused or failed: give the claim back
            storage.release_secrets_dm(self.sf, dep.id, now)


_OUTSIDE_START = "Seen running again on Vast.ai (started outside the bot)."


def _claimed_id(lease_name: str) -> int:
    """The deployment id in a Start claim's lease name (``deployment-start:<id>``); -1 when
    the name does not end in a number."""
    tail = lease_name.removeprefix(START_CLAIM_PREFIX)
    return int(tail) if tail.isdigit() else -1


def _chunks(items: list[DeploymentRecord], size: int) -> list[list[DeploymentRecord]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _unmanaged(instance: Instance) -> UnmanagedInstance:
    return UnmanagedInstance(
        id=instance.id,
        gpu_name=instance.gpu_name or "unknown GPU",
        num_gpus=instance.num_gpus or 1,
        dph_total=instance.dph_total or 0.0,
        status=instance.actual_status or "unknown",
    )
