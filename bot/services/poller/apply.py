"""The poller's apply stage (steps 4 to 6 of :mod:`bot.services.poller`, from the verdict on):
persist a change, edit the status message when what it shows changed, post the ready
notification once and DM the secrets (the owner, and each collaborator their own), tell the
thread of a failure, a loss or a stop, and refresh each moved requester's App Home once per
pass (:class:`Applier`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import storage
from bot.services.manage import start_claim_name
from bot.services.message_sync import MessageSync
from bot.services.poller.report import TickReport, Work
from bot.services.poller.state import PollerState, logger
from bot.services.ports import InstanceNotices, LoginMessages, StatusMessages
from bot.services.sharing import send_ready_dms
from bot.vast.errors import VastError
from catalog import Template
from storage import DeploymentRecord, DeploymentStatus, SessionFactory, collaborators

#: A ready deployment without a status message yet waits this long for the deploy service to
#: post it before its notification goes to the requester's DM instead.
MESSAGE_GRACE = timedelta(seconds=60)

_OUTSIDE_START = "Seen running again on Vast.ai (started outside the bot)."


class PollerMessages(StatusMessages, InstanceNotices, LoginMessages, Protocol):
    """What the status poller sends: status message edits, what the instance did (thread), and
    the ready DMs with the way in."""


class Applier:
    """Applies verdicts (see :meth:`apply`).

    Args:
        session_factory: storage's sessionmaker.
        messages: the messages port (thread notes, DMs, the visible key of a status message).
        sync: marks and queues status-message edits.
        on_change: the owner's Home tab refresh, with a deployment that moved.
        state: the poller's memory (what each status message last showed).

    The Homes a pass collects (:meth:`collect_homes`) are kept per thread, so account passes
    side by side each refresh their own.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        messages: PollerMessages,
        sync: MessageSync,
        on_change: Callable[[DeploymentRecord], object],
        state: PollerState,
    ) -> None:
        self.sf = session_factory
        self.messages = messages
        self.sync = sync
        self.on_change = on_change
        self.state = state
        # The Homes a pass will refresh when it ends: {(team, user): last changed row}, kept
        # by the pass's own thread.
        self._homes = threading.local()

    def apply(self, item: Work, now: datetime, report: TickReport) -> None:
        """Carry out ``item``'s verdict: destroy the instance when it asks (a failed destroy
        keeps the row as it is, tried again next tick), persist the change with a conditional
        :func:`storage.update_status` (a row someone else moved is left alone), then show it
        and tell whom it concerns."""
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
        self.show(dep, item.template, now, report, force=(persisted and moved) or pending_ready)

        if not moved:
            if pending_ready:
                self.notify_ready(dep, item, now, report)
            elif dep.status == DeploymentStatus.READY and dep.secrets_sent_at is None:
                self.send_secrets(dep, item, now, report)  # a refused DM, tried again
            if dep.status == DeploymentStatus.READY:
                self.send_shared(dep, item, now, report)
            return
        if dep.status != DeploymentStatus.STOPPED:
            # A Start completed (ready) or is over (failed, destroyed): give its claim back, so
            # the next Stop → Start is sent to Vast.ai.
            storage.drop_lease(sf, start_claim_name(dep.id))
        self.home_changed(dep, report)
        if dep.status == DeploymentStatus.READY:
            self.notify_ready(dep, item, now, report)
            self.send_shared(dep, item, now, report)
        elif dep.status == DeploymentStatus.FAILED:
            report.slack_calls += 1
            self.messages.failed(dep)
        elif dep.status == DeploymentStatus.DESTROYED:
            report.slack_calls += 1
            self.messages.gone(dep)
        elif dep.status == DeploymentStatus.STOPPED and old_status == DeploymentStatus.READY:
            report.slack_calls += 1
            self.messages.stopped_outside(dep)

    def show(
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
        shown_by_id = self.state.shown
        key = (dep.message_ts, self.messages.visible_key(dep, now=now))
        shown = shown_by_id.get(dep.id)
        if shown == key and not force:
            return
        if shown is None and not force:
            # First sight in this process (start-up or lease takeover) with nothing new: the
            # message already shows this state; remember it instead of re-sending everything.
            shown_by_id[dep.id] = key
            return
        report.slack_calls += 1
        # Marked in the database, then queued in the paced outbox: a rate limit or a network
        # failure keeps the mark, and the reconciler (each tick, any process) sends it again.
        self.sync.changed(dep)
        shown_by_id[dep.id] = key

    def notify_ready(
        self, dep: DeploymentRecord, item: Work, now: datetime, report: TickReport
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
        self.send_secrets(dep, item, now, report)

    def send_secrets(
        self, dep: DeploymentRecord, item: Work, now: datetime, report: TickReport
    ) -> None:
        """DM the requester the ready DM once (how to get in, the login; the offer to add an
        SSH key when they have none on file: :func:`storage.count_ssh_keys`); a refused DM is
        retried next tick."""
        if dep.secrets_sent_at is not None:
            return
        jupyter_token = item.instance.jupyter_token if item.instance is not None else None
        if not self.messages.has_secrets(dep, item.template, jupyter_token=jupyter_token):
            return
        if not storage.claim_secrets_dm(self.sf, dep.id, now=now):
            return
        report.slack_calls += 1
        has_key = storage.count_ssh_keys(self.sf, dep.team_id, dep.user_id) > 0
        sent = self.messages.secrets(
            dep,
            item.template,
            user_id=dep.user_id,
            has_ssh_key=has_key,
            jupyter_token=jupyter_token,
        )
        if not sent:  # nothing to send, refused or failed: give the claim back
            storage.release_secrets_dm(self.sf, dep.id, now)

    def send_shared(
        self, dep: DeploymentRecord, item: Work, now: datetime, report: TickReport
    ) -> None:
        """DM each collaborator of the ready ``dep`` their own login once
        (:func:`bot.services.sharing.send_ready_dms`); a refused DM is tried again on a later
        pass. Which deployments still owe one is read once per pass
        (:func:`storage.collaborators.pending_ready_dms`), not once per row."""
        owed: frozenset[int] | None = getattr(self._homes, "owed", None)
        if owed is None:
            owed = collaborators.pending_ready_dms(self.sf)
            if getattr(self._homes, "pending", None) is not None:  # in a pass: keep it
                self._homes.owed = owed
        if dep.id not in owed:
            return
        jupyter_token = item.instance.jupyter_token if item.instance is not None else None
        report.slack_calls += send_ready_dms(
            self.sf, self.messages, dep, item.template, jupyter_token=jupyter_token, now=now
        )

    # -- App Home coalescing ----------------------------------------------------------------

    def collect_homes(self) -> None:
        """A pass starts on this thread: from now on :meth:`home_changed` collects the Homes
        to refresh, until :meth:`refresh_homes` (and :meth:`send_shared` reads once which
        deployments owe a collaborator their ready DM)."""
        self._homes.pending = {}
        self._homes.owed = None

    def home_changed(self, dep: DeploymentRecord, report: TickReport) -> None:
        """``dep`` moved, and its requester's App Home lists it: during a pass, remember it for
        :meth:`refresh_homes`; otherwise refresh it now."""
        pending: dict[tuple[str, str], DeploymentRecord] | None = getattr(
            self._homes, "pending", None
        )
        if pending is not None:
            pending[(dep.team_id, dep.user_id)] = dep
            return
        report.slack_calls += 1
        self.on_change(dep)

    def refresh_homes(self, report: TickReport) -> None:
        """Refresh once each Home this thread's pass collected (a failure is logged: the Home
        is refreshed again at the requester's next change or visit)."""
        pending: dict[tuple[str, str], DeploymentRecord] = getattr(self._homes, "pending", {})
        self._homes.pending = None
        self._homes.owed = None
        for dep in pending.values():
            report.slack_calls += 1
            try:
                self.on_change(dep)
            except Exception:
                logger.exception("poller: App Home of deployment %d not refreshed", dep.id)
