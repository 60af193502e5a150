"""The poller's read stage (step 3 of :mod:`bot.services.poller`): one account's rolling sweep
over its instance list, the judgement of the strays and unmanaged instances it meets, the
reads by id of the deployments in transition, and which rows a pass can judge with what it
read (:class:`Reader`)."""

from __future__ import annotations

import math
from datetime import datetime

import storage
from bot.services import states
from bot.services.accounts import VastAccount, VastAccounts
from bot.services.deploy import parse_label
from bot.services.poller.report import AccountState, Group, Read, Sweep, TickReport
from bot.services.poller.state import PollerState, logger
from bot.services.ports import UnmanagedInstance
from bot.services.recovery import ours, stray_reason, unrecorded
from bot.services.unmanaged import REFRESH as UNMANAGED_REFRESH
from bot.services.unmanaged import unmanaged_state, write_unmanaged
from bot.vast.client import LIST_PAGE_SIZE, VastClient
from bot.vast.errors import AuthError, VastError
from bot.vast.models import INSTANCE_COLUMNS, Instance
from storage import DeploymentRecord, SessionFactory
from storage.followed import list_by_ids

#: The sweep reads the list in id order, so a page covers a known range of instance ids.
SWEEP_ORDER = ({"col": "id", "dir": "asc"},)


def list_budget(client: VastClient, interval_seconds: float) -> int:
    """List requests one tick may send with ``client``: what its ``list`` pacer allows in one
    poll interval of ``interval_seconds`` (at least 2: one by id, one sweep page)."""
    spacing = client.pacers.spacing("list")
    if spacing <= 0:
        return 1_000_000
    return max(2, math.floor(interval_seconds / spacing))


def sweep_pages_per_tick(total: int, interval_seconds: float, sweep_seconds: float) -> int:
    """Pages a sweep reads per tick so that a pass over a list of ``total`` instances takes
    at most ``sweep_seconds`` at one tick every ``interval_seconds``."""
    pages = max(1, math.ceil(total / LIST_PAGE_SIZE))
    ticks_per_pass = max(1, math.floor(sweep_seconds / interval_seconds))
    return max(1, math.ceil(pages / ticks_per_pass))


class Reader:
    """Reads what one account's pass judges (see :meth:`read`).

    Args:
        session_factory: storage's sessionmaker.
        accounts: the Vast.ai accounts (``multi``: OAuth mode).
        installation_id: this database's installation id: only instances labelled with it
            are judged as strays (:func:`bot.services.recovery.ours`).
        state: the poller's memory (sweeps, stray candidates, when each row was last read).
        interval_seconds: ``STATUS_POLL_SECONDS``.
        sweep_seconds: ``STEADY_SWEEP_SECONDS``.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        accounts: VastAccounts,
        installation_id: str,
        state: PollerState,
        interval_seconds: float,
        sweep_seconds: float,
    ) -> None:
        self.sf = session_factory
        self.accounts = accounts
        self.installation_id = installation_id
        self.state = state
        self.interval_seconds = interval_seconds
        self.sweep_seconds = sweep_seconds

    def where(self, account: VastAccount) -> str:
        """The account's name for a log line (nothing in single-workspace mode)."""
        return f"account {account.name}: " if self.accounts.multi else ""

    def list_budget(self, account: VastAccount) -> int:
        """:func:`list_budget` of ``account``'s client (each account has its own pacers)."""
        return list_budget(account.client, self.interval_seconds)

    def sweep_pages_per_tick(self, followed: int, account: VastAccount) -> int:
        """Pages the sweep of ``account`` reads per tick so that a pass over its list (its
        last ``total_instances``, else ``followed``) takes at most ``STEADY_SWEEP_SECONDS``."""
        account_state = self.state.accounts.get(account.name)
        known = account_state.sweep.total if account_state is not None else None
        total = known if known is not None else followed
        return sweep_pages_per_tick(total, self.interval_seconds, self.sweep_seconds)

    def read(self, group: Group, report: TickReport, now: datetime) -> Read:
        """This tick's reads for ``group``'s account: its sweep's slice first (what its pages
        cover needs no read by id), then the rows in transition the sweep did not cover, by
        id. When Vast.ai refuses the key and ``group`` has spares, ``group.account`` becomes
        the next spare and the sweep is tried again. Vast.ai errors are logged and set
        ``report.error``: only what was read is judged (a failed list is never "no
        instances": docs/VAST_API.md §7 pitfall 3)."""
        account = group.account
        account_state = self.state.accounts.setdefault(account.name, AccountState())
        where = self.where(account)
        read = Read()
        # Each read stands alone: a failing sweep must not keep deployments in transition
        # from being followed.
        refused = False
        while True:
            try:
                reserve = math.ceil(len(group.hot) / LIST_PAGE_SIZE)
                self.read_sweep(group, account_state, read, report, now, reserve=reserve)
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
                self.read_transitions(
                    account, [d for d in group.hot if not read.covers(d)], read, report
                )
            except VastError as error:
                logger.warning(
                    "poller: %sreading deployments in transition failed: %s", where, error
                )
                report.error = type(error).__name__
        report.instances += len(read.instances)
        return read

    def covered(self, group: Group, read: Read) -> dict[int, DeploymentRecord]:
        """The rows of ``group`` that ``read`` covers (its rows in transition read by id or in
        the sweep's range, and its rows at rest in that range), read from the database."""
        covered = {dep.id: dep for dep in group.hot if read.covers(dep)}
        if read.swept is not None:
            low, high = read.swept
            if self.accounts.multi:  # only this account's rows: ids of others may be in range
                in_range = [d for d, i in group.followed.items() if low < i <= high]
                rows = [
                    dep
                    for dep in list_by_ids(self.sf, in_range, states.WATCHED_STATUSES)
                    if dep.instance_id is not None and low < dep.instance_id <= high
                ]
            else:
                rows = storage.list_by_instance_range(self.sf, states.WATCHED_STATUSES, low, high)
            for dep in rows:
                covered.setdefault(dep.id, dep)
        return covered

    def read_transitions(
        self, account: VastAccount, hot: list[DeploymentRecord], read: Read, report: TickReport
    ) -> None:
        """Read the instances of ``hot`` (rows of ``account``) by id, 25 a request, the least
        recently read first, within what is left of the account's budget after its sweep."""
        if not hot:
            return
        read_at = self.state.read_at
        hot = sorted(hot, key=lambda d: (read_at.get(d.id, 0), d.id))
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

    def read_sweep(
        self,
        group: Group,
        state: AccountState,
        read: Read,
        report: TickReport,
        now: datetime,
        *,
        reserve: int,
    ) -> None:
        """Read this tick's slice of the account's rolling sweep (never past the end of a
        pass), leaving ``reserve`` requests of its budget for reads by id (the sweep gets at
        least one)."""
        account, sweep = group.account, state.sweep
        where = self.where(account)
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
                    state.sweep = Sweep(total=sweep.total)
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
                self.sweep_one(group, state, instance, held, report)
            last = max((i.id for i in page.instances), default=sweep.after_id)
            if page.next_token is None:
                read.swept = (low, math.inf)
                self.end_pass(account, state, now)
                report.sweep_passes += 1
                return
            sweep.token, sweep.after_id = page.next_token, max(sweep.after_id, last)
            read.swept = (low, float(sweep.after_id))

    def end_pass(self, account: VastAccount, state: AccountState, now: datetime) -> None:
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
        state.sweep = Sweep(total=sweep.total)

    def sweep_one(
        self,
        group: Group,
        state: AccountState,
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
                    self.where(group.account),
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
                self.where(group.account),
                instance.id,
                dep_id,
            )
            sweep.unmanaged.append(_unmanaged(instance))
            return
        if dep is not None and not group.owns(dep):
            logger.warning(
                "poller: %sinstance %d is labelled for deployment %d of another account: "
                "left alone",
                self.where(group.account),
                instance.id,
                dep_id,
            )
            return
        sweep.candidates.add(instance.id)
        if instance.id not in state.strays:
            return
        logger.warning(
            "poller: %sdestroying instance %d: %s", self.where(group.account), instance.id, why
        )
        try:
            group.account.client.destroy_instance(instance.id)
            report.destroyed += 1
            sweep.candidates.discard(instance.id)
        except VastError as error:
            logger.warning("poller: instance %d not destroyed: %s", instance.id, error)


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
