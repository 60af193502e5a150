"""People's SSH keys attached to the instance they may use, never to the Vast.ai account: the
reconciler stage that makes each running instance hold exactly the keys of its owner and of
the teammates it is shared with.

Vast.ai offers two ways to put a key on an instance. The account-wide ``POST /api/v0/ssh/``
adds it to the *account*, and Vast.ai then puts it on every instance of the account
(docs.vast.ai API reference › Accounts › create ssh-key: "The key will be automatically added
to all your current instances"): in a team that shares one account, one person's key would
open every teammate's GPU. The bot uses only the per-instance calls (docs.vast.ai API
reference › Instances: *attach ssh-key* ``POST /api/v0/instances/{id}/ssh/``, *show ssh-keys*
``GET /api/v0/instances/{id}/ssh/``, *detach ssh-key* ``DELETE
/api/v0/instances/{id}/ssh/{ssh_key_id}/``; the CLI's ``vastai attach ssh``).

What each instance should hold is recorded first (:mod:`storage.instance_keys`: the wanted
set is the workspace's ``ssh_keys`` rows of the owner and the collaborators); once per poller
pass, on the lease holder, :meth:`KeyReconciler.run`:

1. marks the rows of ended deployments detached (their keys went with the instance);
2. syncs the ready deployments whose rows do not follow their wanted set (a key added or
   removed, a teammate shared in or out): new keys become ``attach``, unwanted ones
   ``detach``;
3. carries out the due acts (a bounded batch, within a time budget), each on the deployment's
   own Vast.ai account, a try taken before each request (:func:`storage.instance_keys.
   begin_try`: the next try is already scheduled, ``interval × 2^(n−1)`` capped at 30 min,
   so a process killed mid-request is replaced when the try falls due).

**Attach** is idempotent: the instance's keys are read first, and a key already there (an
earlier try that went through before its answer was lost, or a process killed after Vast.ai
accepted it) is recorded as attached without a second request; Vast.ai's per-instance list
gives the key's id, which detach needs. Only when that list cannot be had at all (a 4xx) is
the key sent without looking: a second copy of a line in ``authorized_keys`` is harmless to
sshd (one line per key, any line may match; OpenSSH sshd(8), AUTHORIZED_KEYS FILE FORMAT).
**Detach** reads the instance's keys and removes every copy of the key; a key no longer there
is recorded detached. When Vast.ai refuses to remove it, or gives no id to remove it by, the
row becomes ``kept`` and the owner is told in the thread, plainly, that the key stays on the
instance until it is destroyed.

Only ``ready`` deployments are acted on: a stopped instance's keys wait until it runs again
(Vast.ai does not document whether a stopped instance takes a key; the bot does not rely on
it). Every outcome is an event (``ssh_key_attached``, ``ssh_key_detached``, ``ssh_key_kept``,
``ssh_key_failed``). Nothing here raises out of :meth:`KeyReconciler.after_pass`, and one
row's trouble never stops the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import storage
from bot import logs
from bot.services.accounts import VastAccounts
from bot.services.intents import RETRY_CAP, retry_delay
from bot.services.poller import TickReport
from bot.services.ports import ThreadNotes
from bot.vast.client import VastClient
from bot.vast.errors import (
    AuthError,
    KeyRefused,
    NotFound,
    RateLimited,
    Unreachable,
    VastError,
)
from bot.vast.models import InstanceSshKey
from storage import DeploymentRecord, SessionFactory
from storage import instance_keys as keystore
from storage.instance_keys import InstanceKeyRecord

__all__ = ["DEFAULT_BATCH", "KeyReconciler", "KeyReport", "listing_unavailable"]

logger = logging.getLogger(__name__)

#: Acts one pass carries out at most (the longest due first).
DEFAULT_BATCH = 20
#: Deployments one pass syncs at most, and ended deployments' rows it retires at most.
SYNC_BATCH = 100
RETIRE_BATCH = 500
_ATTACH = storage.InstanceKeyState.ATTACH.value
_NO_ID = "Vast.ai gave no id to remove the key by"


def listing_unavailable(error: VastError) -> bool:
    """Whether Vast.ai answered a request for an instance's keys with a clear "no" that is
    not about the key, the instance, the API key or the rate (an HTTP 4xx): the list cannot
    be had, and asking again will not change that. A network error, a 5xx, a 429, a refused
    API key or a missing instance is not that."""
    if isinstance(error, AuthError | RateLimited | NotFound | Unreachable):
        return False
    status = error.status_code
    return status is not None and 400 <= status < 500


@dataclass
class KeyReport:
    """What one pass did: ``retired`` rows of ended deployments, ``synced`` deployments whose
    rows changed, ``due`` acts taken, ``attached``, ``detached``, ``kept`` and ``failed`` of
    them, ``slack_calls`` messages sent."""

    retired: int = 0
    synced: int = 0
    due: int = 0
    attached: int = 0
    detached: int = 0
    kept: int = 0
    failed: int = 0
    slack_calls: int = 0


class KeyReconciler:
    """Attaches and detaches people's SSH keys on their instances (see the module docstring).

    Args:
        session_factory: storage's sessionmaker. accounts: the Vast.ai account of each row.
        messages: the messages port (the "key stays" note).
        interval_seconds: ``STATUS_POLL_SECONDS``: the base of the retry backoff
            (:func:`bot.services.intents.retry_delay`).
        clock: aware UTC now.
        batch: acts per pass at most.
        budget_seconds: a pass starts no new act after this long (default: half the poll
            interval), so paced Vast.ai calls never hold the poller for long; the rest waits
            for the next pass.
        monotonic: seconds for the budget (``time.monotonic``; tests inject their own).
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        accounts: VastAccounts,
        messages: ThreadNotes,
        interval_seconds: float,
        clock: Callable[[], datetime] = storage.utcnow,
        batch: int = DEFAULT_BATCH,
        budget_seconds: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sf = session_factory
        self.accounts = accounts
        self.messages = messages
        self.interval_seconds = float(interval_seconds)
        self.clock = clock
        self.batch = batch
        self.budget_seconds = (
            budget_seconds if budget_seconds is not None else self.interval_seconds / 2
        )
        self.monotonic = monotonic

    def after_pass(self, report: TickReport, ok: bool) -> None:
        """The poller's ``on_pass`` hook: :meth:`run` when this process holds the poller's
        lease (``report.ran``) and the pass did not raise. Never raises."""
        if not ok or not report.ran:
            return
        try:
            done = self.run()
        except Exception:  # the next pass tries again; the poller must go on
            logger.exception("ssh keys: pass failed")
            return
        if done.failed or done.kept:
            logger.info("ssh keys: %s", done)

    def run(self, now: datetime | None = None) -> KeyReport:
        """One pass at ``now`` (default: the clock). Vast.ai and Slack trouble is recorded and
        retried later; one row's trouble never stops the others. Raises only when the work
        list cannot be read (a database error)."""
        now = now or self.clock()
        report = KeyReport()
        try:
            report.retired = keystore.retire_final(self.sf, now, limit=RETIRE_BATCH)
        except Exception:
            logger.exception("ssh keys: rows of ended deployments not retired")
        for deployment_id in keystore.out_of_sync(self.sf, limit=SYNC_BATCH):
            try:
                if keystore.sync_deployment(self.sf, deployment_id, now).changed:
                    report.synced += 1
            except Exception:  # one deployment's trouble must not stop the others
                logger.exception("ssh keys: deployment %d not synced", deployment_id)
        started = self.monotonic()
        for key, dep in keystore.list_due(self.sf, now, limit=self.batch):
            if self.monotonic() - started > self.budget_seconds:
                break  # the rest is due on the next pass
            report.due += 1
            with logs.bound(deployment_id=dep.id, team_id=dep.team_id):
                try:
                    self._one(key, dep, now, report)
                except Exception:  # one row's trouble must not stop the others
                    logger.exception(
                        "ssh keys: key %d of deployment %d not handled", key.id, dep.id
                    )
        return report

    # -- one act ---------------------------------------------------------------------------

    def _one(
        self, key: InstanceKeyRecord, dep: DeploymentRecord, now: datetime, report: KeyReport
    ) -> None:
        instance_id = dep.instance_id
        if instance_id is None:
            return
        tries = key.tries + 1
        if not keystore.begin_try(
            self.sf,
            key.id,
            state=key.state,
            tries=key.tries,
            next_try_at=now + retry_delay(tries, self.interval_seconds),
            now=now,
        ):
            return  # its act changed, or another sender took this try
        try:
            client = self.accounts.for_deployment(dep).client
        except VastError as error:  # no key for its account: a try that failed
            self._failed(key, tries, f"not sent: {error}", now, report)
            return
        if key.state == _ATTACH:
            self._attach(client, key, instance_id, tries, now, report)
        else:
            self._detach(client, key, dep, instance_id, tries, now, report)

    def _attach(
        self,
        client: VastClient,
        key: InstanceKeyRecord,
        instance_id: int,
        tries: int,
        now: datetime,
        report: KeyReport,
    ) -> None:
        """Read the instance's keys; attach the key unless it is there already."""
        who = _who(key)
        found: InstanceSshKey | None = None
        try:
            found = _first(client.list_instance_ssh_keys(instance_id), key.public_key)
        except VastError as error:
            if not listing_unavailable(error):
                self._failed(key, tries, f"try {tries}: keys not read: {error}", now, report)
                return
            logger.info("ssh keys: instance %d: its keys cannot be read: %s", instance_id, error)
        if found is not None:
            detail = f"{who}: already on instance {instance_id} (try {tries})"
            if keystore.complete(
                self.sf, key.id, state=key.state, tries=tries, outcome="attached",
                now=now, vast_key_id=found.id, detail=detail,
            ):  # fmt: skip
                report.attached += 1
            return
        try:
            client.attach_ssh_key(instance_id, key.public_key)
        except KeyRefused as error:
            # The same key will be refused again: try again rarely (the person may fix it).
            self._failed(
                key, tries, f"try {tries}: Vast.ai refused the key: {error}", now, report,
                next_try_at=now + RETRY_CAP,
            )  # fmt: skip
            return
        except VastError as error:
            self._failed(key, tries, f"try {tries}: not attached: {error}", now, report)
            return
        detail = f"{who}: attached to instance {instance_id} (try {tries})"
        if keystore.complete(
            self.sf, key.id, state=key.state, tries=tries, outcome="attached", now=now,
            detail=detail,
        ):  # fmt: skip
            report.attached += 1

    def _detach(
        self,
        client: VastClient,
        key: InstanceKeyRecord,
        dep: DeploymentRecord,
        instance_id: int,
        tries: int,
        now: datetime,
        report: KeyReport,
    ) -> None:
        """Remove every copy of the key from the instance (ids from its list, else the one
        recorded at attach); ``kept`` when Vast.ai refuses or no id is known."""
        who = _who(key)
        ids: list[str]
        try:
            listed = client.list_instance_ssh_keys(instance_id)
            ids = [k.id for k in listed if k.matches(key.public_key)]
        except NotFound:
            gone = f"{who}: instance {instance_id} no longer exists"
            self._detached(key, tries, gone, now, report)
            return
        except VastError as error:
            if not listing_unavailable(error):
                self._failed(key, tries, f"try {tries}: keys not read: {error}", now, report)
                return
            if key.vast_key_id is None:
                self._kept(key, dep, tries, _NO_ID, now, report)
                return
            ids = [key.vast_key_id]
        if not ids:
            self._detached(key, tries, f"{who}: not on instance {instance_id}", now, report)
            return
        for key_id in ids:
            try:
                client.detach_ssh_key(instance_id, key_id)
            except NotFound:
                break  # the instance is gone, and its keys with it
            except VastError as error:
                if listing_unavailable(error):
                    why = f"Vast.ai refused to remove it (HTTP {error.status_code})"
                    self._kept(key, dep, tries, why, now, report, error=str(error))
                    return
                self._failed(
                    key, tries, f"try {tries}: not removed: {error}", now, report,
                    vast_key_id=key_id,
                )  # fmt: skip
                return
        self._detached(key, tries, f"{who}: removed from instance {instance_id}", now, report)

    # -- outcomes --------------------------------------------------------------------------

    def _detached(
        self, key: InstanceKeyRecord, tries: int, detail: str, now: datetime, report: KeyReport
    ) -> None:
        if keystore.complete(
            self.sf, key.id, state=key.state, tries=tries, outcome="detached", now=now,
            detail=detail,
        ):  # fmt: skip
            report.detached += 1

    def _kept(
        self,
        key: InstanceKeyRecord,
        dep: DeploymentRecord,
        tries: int,
        reason: str,
        now: datetime,
        report: KeyReport,
        *,
        error: str | None = None,
    ) -> None:
        """The key stays on the instance until it is destroyed: recorded (``reason`` for
        people, Vast.ai's ``error`` too in the event), and the owner told in the thread (once:
        only the sender that recorded it tells)."""
        detail = f"{_who(key)}: stays on instance {dep.instance_id}: {error or reason}"
        if not keystore.complete(
            self.sf, key.id, state=key.state, tries=tries, outcome="kept", now=now,
            detail=detail,
        ):  # fmt: skip
            return
        report.kept += 1
        report.slack_calls += 1
        self.messages.key_kept(dep, user_id=key.user_id, fingerprint=key.fingerprint, reason=reason)

    def _failed(
        self,
        key: InstanceKeyRecord,
        tries: int,
        error: str,
        now: datetime,
        report: KeyReport,
        *,
        next_try_at: datetime | None = None,
        vast_key_id: str | None = None,
    ) -> None:
        """A try that did not go through: its error and event; the next try is already
        scheduled (:meth:`_one`), or at ``next_try_at``."""
        report.failed += 1
        keystore.record_failure(
            self.sf, key.id, state=key.state, tries=tries, error=f"{_who(key)}: {error}",
            now=now, next_try_at=next_try_at, vast_key_id=vast_key_id,
        )  # fmt: skip


def _who(key: InstanceKeyRecord) -> str:
    """Whose key, for event details: ``SHA256:… of <@U…>``."""
    return f"{key.fingerprint} of <@{key.user_id}>"


def _first(listed: list[InstanceSshKey], public_key: str) -> InstanceSshKey | None:
    return next((k for k in listed if k.matches(public_key)), None)
