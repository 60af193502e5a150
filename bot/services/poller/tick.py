"""The poller's tick (:class:`StatusPoller`): scheduling, the lease, the followed rows grouped
by account, the account passes side by side (each: :mod:`~bot.services.poller.read`, then
:mod:`~bot.services.poller.assess`, then :mod:`~bot.services.poller.apply`), the lifetime
review, the desired-state reconciler and the heartbeat hook. The steps are described in
:mod:`bot.services.poller`."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Set
from datetime import datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

import storage
from bot import logs
from bot.logs import ContextExecutor
from bot.services import states
from bot.services.accounts import VastAccount, VastAccounts
from bot.services.intents import IntentReconciler
from bot.services.lifetimes import LifetimeService
from bot.services.manage import START_CLAIM_PREFIX
from bot.services.message_sync import MessageSync
from bot.services.poller import read as read_stage
from bot.services.poller.apply import Applier, PollerMessages
from bot.services.poller.assess import Assessor
from bot.services.poller.read import Reader
from bot.services.poller.report import AccountState, Group, TickReport
from bot.services.poller.state import PollerState, logger
from bot.services.ports import NO_HOMES, HomeRefresher, Templates
from bot.services.probe import Prober
from bot.services.recovery import account_resolver
from bot.vast.models import Instance
from storage import DeploymentRecord, DeploymentStatus, SessionFactory
from storage.followed import ended_since_workspaces, followed_with_workspace

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
#: Seconds :meth:`StatusPoller.tick` (driven by hand: tests, benchmarks) waits for the outbox.
FLUSH_SECONDS = 10.0
#: At most this many accounts' passes run at once (OAuth mode; one thread each). A pass mostly
#: waits for its account's pacers and for Vast.ai, so the threads cost little; more accounts
#: than this in one tick wait for a free thread.
ACCOUNT_THREADS = 32


class StatusPoller:
    """The poller for one bot process.

    Args:
        session_factory: storage's sessionmaker.
        accounts: the Vast.ai accounts (:class:`VastAccounts`; single-workspace mode: one).
        messages: the messages port (status message edits, thread notes, DMs).
        templates: the catalog (``get(slug)``: :class:`bot.services.ports.Templates`).
        interval_seconds: ``STATUS_POLL_SECONDS``. timeout_minutes: ``DEPLOY_TIMEOUT_MINUTES``.
        on_change: the owner's Home tab: called after each account's pass, once per requester
            (workspace and user) whose deployments the pass moved, with the last of them.
        clock: returns the aware UTC "now" of a tick (tests move it forward).
        prober: the app readiness probe (a :class:`Prober` with a 3 s timeout by default).
        lease_name: database lease to hold while polling; None polls without one (tests of
            the notification claim).
        holder: this process's lease holder id (default ``host:pid:random``).
        lease_seconds: the lease's TTL in seconds (``POLLER_LEASE_SECONDS``); None:
            :data:`LEASE_INTERVALS` intervals, at least :data:`MIN_LEASE_SECONDS`.
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
        allow_private_addresses: instances may have addresses that are not public
            (:attr:`bot.config.Settings.private_addresses_allowed`: a local simulator); the
            built-in simulator's rows always may. False (real Vast.ai): such an instance is
            unreachable, never probed (:class:`~bot.services.poller.assess.Assessor`).
    """

    def __init__(
        self,
        *,
        installation_id: str,
        session_factory: SessionFactory,
        accounts: VastAccounts,
        messages: PollerMessages,
        templates: Templates,
        interval_seconds: float,
        timeout_minutes: float,
        homes: HomeRefresher = NO_HOMES,
        clock: Callable[[], datetime] = storage.utcnow,
        prober: Prober | None = None,
        lease_name: str | None = LEASE_NAME,
        holder: str | None = None,
        lease_seconds: float | None = None,
        lifetimes: LifetimeService | None = None,
        sweep_seconds: float = 120.0,
        sync: MessageSync | None = None,
        on_pass: Callable[[TickReport, bool], object] = lambda report, ok: None,
        intents: IntentReconciler | None = None,
        account_threads: int = ACCOUNT_THREADS,
        allow_private_addresses: bool = False,
    ) -> None:
        self.intents = intents
        self.sf = session_factory
        self.on_pass = on_pass
        self.installation_id = installation_id
        self.sync = sync or MessageSync(
            session_factory=session_factory,
            messages=messages,
            catalog_get=templates.get,
            clock=clock,
        )
        self.accounts = accounts
        self.messages = messages
        self.templates = templates
        self.homes = homes
        # Read at each call (tests replace it to count or to fail).
        self.on_change: Callable[[DeploymentRecord], object] = homes.deployment_changed
        self.clock = clock
        self.prober = prober or Prober()
        self.lease_name = lease_name
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.interval_seconds = float(interval_seconds)
        self.lease_seconds = (
            float(lease_seconds)
            if lease_seconds is not None
            else max(LEASE_INTERVALS * self.interval_seconds, MIN_LEASE_SECONDS)
        )
        self.timeout = timedelta(minutes=float(timeout_minutes))
        self._lock = threading.Lock()
        self.sweep_seconds = float(sweep_seconds)
        self.lifetimes = lifetimes
        self._holding = False
        self.account_threads = max(1, account_threads)
        # What the stages keep between ticks, and the stages themselves.
        self.state = PollerState()
        self.reader = Reader(
            session_factory=session_factory,
            accounts=accounts,
            installation_id=installation_id,
            state=self.state,
            interval_seconds=self.interval_seconds,
            sweep_seconds=self.sweep_seconds,
        )
        self.assessor = Assessor(
            catalog_get=templates.get,
            timeout=self.timeout,
            prober=self.prober,
            state=self.state,
            allow_private=allow_private_addresses,
        )
        self.applier = Applier(
            session_factory=session_factory,
            messages=messages,
            sync=self.sync,
            # Read at each call: tests replace the poller's on_change after construction.
            on_change=lambda dep: self.on_change(dep),
            state=self.state,
        )

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
                self.state.shown.clear()
                self.state.lost_since.clear()
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
        self.state.forget_unfollowed(followed)
        if groups is None:
            # Nothing to follow and no recent failure that could have left a stray instance.
            self._carry_intents(now, report)
            report.seconds = time.perf_counter() - started
            return report

        self.state.ticks += 1
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
            ids={_claimed_id(name) for name in starting} | set(self.state.lost_since),
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
    ) -> tuple[dict[int, int], list[Group] | None]:
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
            return followed, [Group(default, owns=lambda dep: True, followed=followed)]
        rows = followed_with_workspace(sf, states.WATCHED_STATUSES)
        ended = ended_since_workspaces(sf, since)
        followed = {dep_id: row.instance_id for dep_id, row in rows.items()}
        if not rows and not ended:
            return followed, None
        groups: dict[str, Group] = {}

        def group_of(account: VastAccount) -> Group:
            name = account.name

            def owns(dep: DeploymentRecord) -> bool:
                found = resolve(dep.team_id, dep.simulated)
                return found is not None and found.name == name

            group = groups.setdefault(name, Group(account, owns=owns))
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
        self, groups: list[Group], now: datetime, starting: set[str], report: TickReport
    ) -> dict[int, DeploymentRecord]:
        """Run every account's pass, side by side when there are several (at most
        :attr:`account_threads` at once), so each is paced by its own account's limits only;
        add their reports to ``report`` in account order; return the rows they judged."""
        for group in groups:  # made here, so the passes only read this dict
            self.state.accounts.setdefault(group.account.name, AccountState())
        if not groups:  # OAuth mode: rows whose accounts are all out of reach
            return {}
        if len(groups) == 1:
            results = [self._account_pass(groups[0], now, starting)]
        else:
            with ContextExecutor(
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
        self, group: Group, now: datetime, starting: set[str]
    ) -> tuple[dict[int, DeploymentRecord], TickReport]:
        """:meth:`_pass` on a report of its own, then one Home refresh per requester whose
        deployments it moved. In OAuth mode a failing pass is logged and returns no rows (one
        account's trouble must not stop the others'); in single-workspace mode it raises."""
        part = TickReport()
        self.applier.collect_homes()
        try:
            return self._pass(group, now, starting, part), part
        except Exception:
            if not self.accounts.multi:
                raise
            logger.exception("poller: account %s: pass failed", group.account.name)
            part.error = part.error or "account pass failed"
            return {}, part
        finally:
            self.applier.refresh_homes(part)

    def _pass(
        self, group: Group, now: datetime, starting: set[str], report: TickReport
    ) -> dict[int, DeploymentRecord]:
        """One account's share of the tick (steps 3 to 7 of :mod:`bot.services.poller`) with
        its own client: read, assess, apply, then the lifetime review; returns the rows it
        judged with what it read. Vast.ai errors are logged and leave the rows they concern
        as they are."""
        report.accounts += 1
        read = self.reader.read(group, report, now)  # may move group.account to a spare key
        covered = self.reader.covered(group, read)
        report.assessed += len(covered)
        for dep_id in covered:
            self.state.read_at[dep_id] = self.state.ticks
        # Each row stands alone: one that fails a step (bad data, a database error, a bug) is
        # logged, counted, left as it is for the next pass, and the others go on.
        failed: list[DeploymentRecord] = []
        rows = sorted(covered.values(), key=lambda d: d.id)
        kept = self.assessor.judge(rows, read, now, starting, group.account, report, failed)
        for item in kept:
            with logs.bound(deployment_id=item.dep.id, team_id=item.dep.team_id):
                try:
                    self.applier.apply(item, now, report)
                except Exception as error:
                    self.state.row_failed(item.dep, "processed", error, report)
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
            with logs.bound(deployment_id=dep.id, team_id=dep.team_id):
                try:
                    sent += self.lifetimes.review([dep], instances, now, seen=seen)
                except Exception as error:
                    self.state.row_failed(dep, "reviewed", error, report)
        return sent

    # -- what a tick reads ------------------------------------------------------------------

    @property
    def ticks(self) -> int:
        """Ticks this poller ran that read Vast.ai (numbered from 1)."""
        return self.state.ticks

    def last_read_tick(self, deployment_id: int) -> int | None:
        """The number of the last tick that read this deployment's instance (None: none has
        since it was last followed)."""
        return self.state.read_at.get(deployment_id)

    def list_budget(self, account: VastAccount | None = None) -> int:
        """List requests one tick may send to ``account`` (default: the default account):
        what its client's ``list`` pacer allows in one poll interval (at least 2: one by id,
        one sweep page). Each account has its own pacers, so its own budget."""
        client = (account or self.accounts.default).client
        return read_stage.list_budget(client, self.interval_seconds)

    def sweep_pages_per_tick(self, followed: int, account: VastAccount | None = None) -> int:
        """Pages the sweep of ``account`` (default: the default account) reads per tick so
        that a pass over its list (its last ``total_instances``, else ``followed``) takes at
        most ``STEADY_SWEEP_SECONDS``."""
        return self.reader.sweep_pages_per_tick(followed, account or self.accounts.default)


def _claimed_id(lease_name: str) -> int:
    """The deployment id in a Start claim's lease name (``deployment-start:<id>``); -1 when
    the name does not end in a number."""
    tail = lease_name.removeprefix(START_CLAIM_PREFIX)
    return int(tail) if tail.isdigit() else -1
