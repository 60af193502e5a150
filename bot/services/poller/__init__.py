"""
One APScheduler interval job every ``STATUS_POLL_SECONDS`` (``max_instances=1``,
``coalesce=True``: never two runs at once, missed runs collapse into one). Each tick
(:meth:`StatusPoller.tick <bot.services.poller.tick.StatusPoller.tick>`):

1. takes or renews the database lease ``status-poller`` (TTL three intervals, at least 30 s):
   with several bot processes on one database only the holder polls, and another process
   takes over once the holder stops renewing (it died) or released it (clean shutdown);
2. reads the deployments it follows (``creating`` with an instance id, ``provisioning``,
   ``ready``, ``stopped``) from the database;
3. reads their instances with the v1 list (``GET /api/v1/instances/``, 25 a page;
   docs/VAST_API.md §4), scaled by what changes rather than by what exists: deployments
   **in transition**
   (``creating``, ``provisioning``, a Start in flight, a state changed in the last
   :data:`TRANSITION_WINDOW`, a lost host, a ready notification not yet posted) are read
   every tick by id (``select_filters`` ``{"id": {"in": [...]}}``, 25 ids a request), and
   the account's whole list is read in a **rolling sweep**, a slice of pages per tick
   resuming from the last page's cursor, sized so that a full pass takes at most
   ``STEADY_SWEEP_SECONDS`` (deployments at rest: ``ready``, ``stopped``; stray and
   unmanaged instances). Every request asks only the columns the bot reads
   (``select_cols``: :data:`bot.vast.models.INSTANCE_COLUMNS`). The list requests of a tick
   never exceed what the ``list`` pacer allows in one poll interval (:meth:`list_budget`),
   and never one request per deployment (:class:`~bot.services.poller.read.Reader`:
   ``read_sweep``, ``sweep_one`` for strays and unmanaged instances, ``end_pass``, then
   ``read_transitions``; ``covered`` picks the rows the reads let a pass judge);
4. maps each deployment to its instance (:mod:`bot.services.states`), probes apps that look
   up (:mod:`bot.services.probe`), and persists each change with a conditional
   :func:`storage.update_status` (one short transaction each; no network call inside)
   (:class:`~bot.services.poller.assess.Assessor`: ``assess``, ``probe``, ``confirm_gone``;
   then :meth:`Applier.apply <bot.services.poller.apply.Applier.apply>`);
5. edits the status message (``chat.update``) only when what it shows changed
   (the messages port's ``visible_key``), so a tick where nothing changed makes no Slack call:
   the edit is marked in the database and queued in the paced, coalescing outbox
   (:mod:`bot.services.message_sync`, :mod:`bot.slack.outbox`), which never blocks the tick; every
   tick first queues again the messages whose last edit did not go through (the reconciler)
   (``Applier.show``);
6. on ``ready`` claims the thread notification in the database
   (:func:`storage.claim_ready_notification`) and posts it only when the claim succeeded, then
   DMs the requester the login secrets; on a failure destroys the instance (so it stops
   billing), marks the deployment failed with the reason and tells the requester in the thread
   (``Applier.notify_ready``, ``Applier.send_secrets``);
7. hands the ready and stopped deployments that did not move, with this tick's instances, to
   the lifetime rules (:meth:`bot.services.lifetimes.LifetimeService.review`: expiry warnings
   and actions every tick; idle GPUs when this tick read the instance), and at the end of
   each sweep pass records the instances nobody owns (no bot label, no deployment) for
   admins.
   A stopped deployment that runs again after its end passed begins a new run of its lifetime
   (a Start from Slack begins one when it is pressed).

After the account passes, the rows no pass read get the expiry rule alone, the desired-state
reconciler runs (:class:`bot.services.intents.IntentReconciler`), and ``on_pass`` (the
heartbeat) gets the tick's report.

**Where each step lives.** :mod:`.tick` (:class:`StatusPoller`): scheduling, the lease, the
followed rows grouped by account (``_followed``), the passes side by side (``_passes``,
``_account_pass``, ``_pass``: read, assess, apply, review), the review of unread rows, the
intents call and the heartbeat hook. :mod:`.read` (``Reader``): step 3 and the strays.
:mod:`.assess` (``Assessor``): step 4 up to the verdict. :mod:`.apply` (``Applier``): steps 4
to 6 from the verdict on, and the App Home coalescing. :mod:`.report`: :class:`TickReport` and
the records the stages hand each other (``Group``, ``Read``, ``Work``, ``AccountState``).
:mod:`.state` (``PollerState``): what the stages keep between ticks (what each message showed,
lost hosts, when each row was last read, each account's sweep, row errors) and
``row_failed``, shared by the stages of every pass.

**Accounts** (OAuth mode). Each workspace may rent on a Vast.ai account of its own
(:mod:`bot.services.accounts`). Each tick groups the followed rows by account (a simulated row:
the simulator's; otherwise its workspace's, so the rows of two workspaces of one Vast.ai user
share one account) and runs steps 3 to 7 for each account with that account's client: its own
rolling sweep and sweep size, its own list budget per tick (each account paced by its own
client's pacers), its own reads by id and its own unmanaged instances (``bot_state``
``unmanaged_instances`` in single-workspace mode, ``unmanaged:<account name>`` in OAuth mode).
The accounts' passes run side by side (one thread each, at most :data:`ACCOUNT_THREADS` at
once): no account waits for another's pacers, and a tick takes about as long as its slowest
account, not the sum of all. What a pass keeps between ticks is its account's own
(``AccountState``) or its own rows' (each row belongs to one account's pass), and each pass
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

from bot.services.poller.apply import MESSAGE_GRACE
from bot.services.poller.read import SWEEP_ORDER
from bot.services.poller.report import TickReport
from bot.services.poller.tick import (
    ACCOUNT_THREADS,
    FLUSH_SECONDS,
    JOB_ID,
    LEASE_INTERVALS,
    LEASE_NAME,
    MIN_LEASE_SECONDS,
    STRAY_WINDOW,
    TRANSITION_STATUSES,
    TRANSITION_WINDOW,
    StatusPoller,
)

__all__ = [
    "ACCOUNT_THREADS",
    "FLUSH_SECONDS",
    "JOB_ID",
    "LEASE_INTERVALS",
    "LEASE_NAME",
    "MESSAGE_GRACE",
    "MIN_LEASE_SECONDS",
    "STRAY_WINDOW",
    "SWEEP_ORDER",
    "TRANSITION_STATUSES",
    "TRANSITION_WINDOW",
    "StatusPoller",
    "TickReport",
]
