"""The poller's assess stage (step 4 of :mod:`bot.services.poller`, up to the verdict): each
row a pass read is mapped to its instance (:func:`bot.services.states.assess`), the apps that
look up are probed (:mod:`bot.services.probe`), and an instance the list missed is asked for
by id before it is called gone (:class:`Assessor`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from bot.services import states
from bot.services.accounts import VastAccount
from bot.services.manage import start_claim_name
from bot.services.poller.report import Read, TickReport, Work
from bot.services.poller.state import PollerState, logger
from bot.services.probe import Prober
from bot.vast.errors import VastError
from bot.vast.models import Instance
from catalog import Template
from storage import DeploymentRecord, DeploymentStatus


class Assessor:
    """Turns what a pass read into a verdict per row (see :meth:`judge`).

    Args:
        catalog_get: ``slug -> Template | None``.
        timeout: ``DEPLOY_TIMEOUT_MINUTES`` as a duration.
        prober: the app readiness probe.
        state: the poller's memory (when each row's host was first seen lost; row errors).
        allow_private: instances of every account may have addresses that are not public
            (``ALLOW_PRIVATE_INSTANCE_ADDRESSES``: the bot talks to a local simulator); the
            built-in simulator's account (``account.simulated``) always may. Otherwise such
            an instance is unreachable (:func:`bot.services.states.reachable`): never probed,
            its URL never stored or shown, logged once.
    """

    def __init__(
        self,
        *,
        catalog_get: Callable[[str], Template | None],
        timeout: timedelta,
        prober: Prober,
        state: PollerState,
        allow_private: bool = False,
    ) -> None:
        self.catalog_get = catalog_get
        self.timeout = timeout
        self.prober = prober
        self.state = state
        self.allow_private = allow_private

    def judge(
        self,
        rows: Iterable[DeploymentRecord],
        read: Read,
        now: datetime,
        starting: set[str],
        account: VastAccount,
        report: TickReport,
        failed: list[DeploymentRecord],
    ) -> list[Work]:
        """The complete verdicts of ``rows`` (of ``account``) with what ``read`` holds:
        :meth:`assess`, :meth:`probe`, then :meth:`confirm_gone` where the verdict asks.
        ``starting``: the live Start claims' lease names. Each row stands alone: one that
        fails a step (bad data, a database error, a bug) is logged, counted, left out and
        added to ``failed``, and the others go on."""
        work: list[Work] = []
        for dep in rows:
            try:
                instance = read.instances.get(dep.instance_id or 0)
                work.append(self.assess(dep, instance, now, starting, account))
            except Exception as error:
                self.state.row_failed(dep, "assessed", error, report, failed)
        work = self.probe(work, now, report, failed)
        kept: list[Work] = []
        for item in work:
            try:
                if item.verdict.confirm_gone:
                    self.confirm_gone(item, now)
                kept.append(item)
            except Exception as error:
                self.state.row_failed(item.dep, "confirmed", error, report, failed)
        return kept

    def assess(
        self,
        dep: DeploymentRecord,
        instance: Instance | None,
        now: datetime,
        starting: set[str],
        account: VastAccount,
    ) -> Work:
        """``dep``'s first verdict with its instance as read (None: absent); remembers when
        its host was first seen lost."""
        lost_since = self.state.lost_since
        template = self.catalog_get(dep.template_slug)
        allow_private = self.allow_private or account.simulated
        verdict = states.assess(
            dep,
            instance,
            template,
            now=now,
            timeout=self.timeout,
            host_lost_since=lost_since.get(dep.id),
            start_requested=(
                dep.status == DeploymentStatus.STOPPED and start_claim_name(dep.id) in starting
            ),
            allow_private=allow_private,
        )
        if verdict.host_lost:
            lost_since.setdefault(dep.id, now)
        else:
            lost_since.pop(dep.id, None)
        self.state.note_unreachable(dep, verdict.unreachable)
        return Work(dep, instance, template, verdict, account.client, allow_private)

    def probe(
        self, work: list[Work], now: datetime, report: TickReport, failed: list[DeploymentRecord]
    ) -> list[Work]:
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
        kept: list[Work] = []
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
                self.state.row_failed(item.dep, "probed", error, report, failed)
        return kept

    def confirm_gone(self, item: Work, now: datetime) -> None:
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
                item.dep,
                instance,
                item.template,
                now=now,
                timeout=self.timeout,
                allow_private=item.allow_private,
            )
            if verdict.probe_url:
                verdict = states.after_probe(
                    verdict, item.dep, False, now=now, timeout=self.timeout
                )
            item.verdict = verdict
