"""Map a Vast.ai instance to a deployment state (pure: no I/O, no clock of its own).

The status poller calls :func:`assess` for each deployment it follows, with the instance from
the tick's one instance list (or ``None`` when the list does not hold it), then, when the
verdict asks for it, probes the app and calls :func:`after_probe`.

Status values and what they mean come from docs/VAST_API.md §4 ("Status values and lifecycle",
from vast-ai/docs ``show-instances-v1.mdx``, the CLI's ``wait_for_instance`` and dstack's
``compute.py``):

* ``actual_status`` null / ``created`` / ``loading`` / ``rebooting`` → still provisioning;
* ``running`` with ``intended_status == "running"`` → ready once every template port is mapped
  and the app answers the HTTP probe;
* ``exited`` before the app was ready; an error in ``status_msg`` before ready (e.g. ``OCI
  runtime create failed``, an image that cannot be pulled, ``unauthorized``);
  ``offline``/``unknown`` for longer than a grace period;
  ``cur_state == intended_status == next_state == "stopped"`` while we did not ask (Vast.ai
  stopped it: out of credit or outbid); not ready after ``DEPLOY_TIMEOUT_MINUTES`` → failed;
* ``exited`` once ready → stays ready with ``status_msg`` stored (shown in the status
  message); the exited-container rule stops it after 10 minutes, keeping the disk;
* gone from the list → destroyed, but only after :data:`LIST_GRACE` since the deployment was
  created (reads lag just after create, docs/VAST_API.md §7 pitfall 4) and after a per-id GET
  confirms it (``confirm_gone``).

The instance's address is untrusted (:mod:`bot.addresses`): an address that is not an IP
address, or (unless ``allow_private``: the bot talks to a local simulator) not a public one,
makes a running instance *unreachable*: no probe, no URL stored or shown, the deployment
stays ``provisioning`` (``Verdict.unreachable`` says why) until it gets a usable address or
the deploy timeout destroys it, with the reason in the failure message.

A recorded desired state (:mod:`bot.services.intents`) comes first: a row whose desired state
``stopped`` or ``destroyed`` is pending is never made ``ready`` because its instance still runs
(the stop may not have reached Vast.ai yet), and the stop or the disappearance that its own act
caused is left for the reconciler to confirm (so it is not reported as done outside the bot); a
``stopped`` row whose desired state is ``running`` is a Start in flight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.addresses import http_url, ip_or_none, not_public, reachable_ip
from bot.formats import mrkdwn_escape
from bot.services.rules import deploy_timeout
from bot.services.rules.deploy_timeout import rent_started
from bot.vast.models import Instance
from catalog import Template
from storage import (
    DESTROYED,
    LIVE_STATUSES,
    RUNNING,
    STOPPED,
    DeploymentRecord,
    DeploymentStatus,
    encode_port_map,
)

__all__ = [
    "LIST_GRACE",
    "OFFLINE_GRACE",
    "WATCHED_STATUSES",
    "Connection",
    "Verdict",
    "after_probe",
    "assess",
    "error_in_status_msg",
    "probe_url",
    "reachable",
    "rent_started",
    "start_in_flight",
]

#: Statuses the poller follows: the active ones plus ``stopped`` (it may be started again, or
#: destroyed outside the bot).
WATCHED_STATUSES: frozenset[DeploymentStatus] = LIVE_STATUSES
#: How long a just-created instance may be missing from the list before we look it up.
LIST_GRACE = timedelta(minutes=2)
#: After a stop, how long a still-running instance is read as Vast.ai catching up rather than
#: a start from elsewhere (e.g. the Vast.ai console).
STOP_SETTLE = timedelta(minutes=2)
#: How long ``offline``/``unknown`` is tolerated before the deployment fails.
OFFLINE_GRACE = timedelta(minutes=3)

_BEFORE_READY = frozenset({DeploymentStatus.CREATING, DeploymentStatus.PROVISIONING})
_HOST_LOST = frozenset({"offline", "unknown"})
# Error words the official CLI fails on (docs/VAST_API.md §4), plus registry refusals (§7
# pitfall 9).
_ERROR_RE = re.compile(
    r"error|failed|failure|exception|traceback|oci runtime|permission denied|unauthorized"
    r"|pull access denied|manifest unknown|no such image|not found",
    re.IGNORECASE,
)
_PULL_RE = re.compile(
    r"pull|unauthorized|manifest|no such image|not found|denied|registry", re.IGNORECASE
)
_MSG_LIMIT = 300


@dataclass(frozen=True)
class Connection:
    """How to reach a running instance, in the shape stored on the deployment row:
    ``public_ip`` (stripped), ``ports_json`` (container → host port JSON, every mapped TCP port),
    ``ssh_host``/``ssh_port`` (Vast.ai's SSH proxy)."""

    public_ip: str | None
    ports_json: str | None
    ssh_host: str | None
    ssh_port: int | None

    def differs_from(self, dep: DeploymentRecord) -> bool:
        """True when any field differs from what ``dep`` stores."""
        return (self.public_ip, self.ports_json, self.ssh_host, self.ssh_port) != (
            dep.public_ip,
            dep.ports_json,
            dep.ssh_host,
            dep.ssh_port,
        )

    def fields(self) -> dict[str, object]:
        """Keyword arguments for :func:`storage.update_status`."""
        return {
            "public_ip": self.public_ip,
            "ports_json": self.ports_json,
            "ssh_host": self.ssh_host,
            "ssh_port": self.ssh_port,
        }


@dataclass(frozen=True)
class Verdict:
    """What the poller should do with one deployment this tick.

    Attributes:
        status: the state to move to (equal to the current one when nothing moves).
        reason: plain-words reason for ``failed``/``destroyed`` (what happened, what to do).
        status_msg: Vast.ai's ``status_msg`` to store (shown while provisioning), or the
            stored one when the instance was not seen.
        connection: IP/ports/SSH to store, when the instance is running with ports mapped.
        probe_url: when set, ``ready`` depends on this URL answering (:func:`after_probe`).
        destroy: destroy the instance (failures, so it stops billing).
        confirm_gone: missing from the list past the grace period: confirm with a per-id GET
            before treating it as destroyed.
        host_lost: the instance is ``offline``/``unknown`` (the poller tracks since when).
        unreachable: why the bot does not connect to the running instance (its address is
            not an IP address, or not public: :func:`reachable`); None when it may, or when
            that does not matter yet.
    """

    status: DeploymentStatus
    reason: str | None = None
    status_msg: str | None = None
    connection: Connection | None = None
    probe_url: str | None = None
    destroy: bool = False
    confirm_gone: bool = False
    host_lost: bool = False
    unreachable: str | None = None


def error_in_status_msg(status_msg: str | None) -> bool:
    """True when Vast.ai's ``status_msg`` reports an error (e.g. ``OCI runtime create failed``,
    ``Error response from daemon: pull access denied``, ``unauthorized``); ``"success, running
    …"`` and ``"Downloading image layers …"`` are not errors."""
    if not status_msg:
        return False
    text = status_msg.strip()
    if text.lower().startswith("success"):
        return False
    return bool(_ERROR_RE.search(text))


def _short(msg: str | None) -> str:
    """Vast.ai's ``status_msg`` for a reason shown in Slack: one line, at most 300
    characters, escaped for mrkdwn (it is Vast.ai's text, not ours)."""
    text = " ".join((msg or "").split())
    return mrkdwn_escape(text if len(text) <= _MSG_LIMIT else text[: _MSG_LIMIT - 1] + "…")


def reachable(instance: Instance, *, allow_private: bool) -> tuple[Instance, str | None]:
    """``instance`` as the bot may use it, and why it cannot be reached (None: it can, or it
    has no address yet). An address that is not public (:func:`bot.addresses.reachable_ip`;
    any IP address with ``allow_private``) is dropped from the copy returned, and so is an
    SSH host given as such an address, so no URL, probe or SSH command is built from them."""
    address, problem = reachable_ip(instance.public_ipaddr, allow_private=allow_private)
    problem = problem or instance.address_problem
    update: dict[str, object] = {}
    if address != instance.public_ipaddr:
        update["public_ipaddr"] = address
    host = instance.ssh_host
    if host is not None and not allow_private and ip_or_none(host) and not_public(host):
        update["ssh_host"] = None
    return (instance.model_copy(update=update) if update else instance), problem


def _connection(instance: Instance) -> Connection:
    ports = {port: instance.host_port(port) for port in instance.ports}
    mapped = {port: host for port, host in ports.items() if host is not None}
    return Connection(
        public_ip=instance.public_ipaddr,
        ports_json=encode_port_map(mapped) if mapped else None,
        ssh_host=instance.ssh_host,
        ssh_port=instance.ssh_port,
    )


def probe_url(instance: Instance, template: Template) -> str | None:
    """``http://{public_ip}:{host port of template.health_port}{template.health_path}``, or
    None when that port is not mapped yet (docs/VAST_API.md §4 "Building the public URL"). The
    URL is built from the parsed address and port only (:func:`bot.addresses.http_url`), so
    it reaches that address and port whatever the template's path holds; pass an instance
    through :func:`reachable` first so that the address is one the bot may connect to.

    ``https://`` for a template that declares TLS (:attr:`catalog.Template.https`): its port
    answers plain HTTP only with a redirect (Caddy's ``http_redirect`` listener wrapper sends
    308, github.com/caddyserver/caddy modules/caddyhttp/httpredirectlistener.go), which the
    probe does not count as up."""
    port = instance.host_port(template.probe_port)
    if port is None or instance.public_ipaddr is None:
        return None
    scheme = "https" if template.https else "http"
    return http_url(instance.public_ipaddr, port, template.health_path, scheme=scheme)


def _timed_out(dep: DeploymentRecord, now: datetime, timeout: timedelta) -> bool:
    return deploy_timeout.due(dep, now, timeout)


def _timeout_verdict(
    dep: DeploymentRecord,
    instance: Instance | None,
    timeout: timedelta,
    unreachable: str | None = None,
) -> Verdict:
    reason = deploy_timeout.reason(dep, instance, timeout, unreachable=unreachable)
    return Verdict(DeploymentStatus.FAILED, reason=reason, status_msg=dep.status_msg, destroy=True)


def _pending(dep: DeploymentRecord) -> str | None:
    """The desired state of ``dep`` while the bot is still carrying it out, else None."""
    return dep.desired_state if dep.desired_next_try_at is not None else None


def start_in_flight(dep: DeploymentRecord) -> bool:
    """A ``stopped`` row the bot is starting: its desired state is ``running`` (being sent, or
    accepted by Vast.ai and waiting for the app to answer)."""
    return (
        dep.status == DeploymentStatus.STOPPED
        and dep.desired_state == RUNNING
        and (dep.desired_next_try_at is not None or dep.desired_done_at is not None)
    )


def _settled(dep: DeploymentRecord, now: datetime) -> bool:
    return dep.stopped_at is None or now - dep.stopped_at >= STOP_SETTLE


def assess(
    dep: DeploymentRecord,
    instance: Instance | None,
    template: Template | None,
    *,
    now: datetime,
    timeout: timedelta,
    host_lost_since: datetime | None = None,
    list_grace: timedelta = LIST_GRACE,
    offline_grace: timedelta = OFFLINE_GRACE,
    start_requested: bool = False,
    allow_private: bool = False,
) -> Verdict:
    """Decide where ``dep`` goes given ``instance`` (None: absent from this tick's list).

    Args:
        dep: the deployment as stored (status ``creating`` with an instance id,
            ``provisioning``, ``ready`` or ``stopped``).
        instance: its Vast.ai instance from the v1 list, or None.
        template: the deployment's template (None when it left the catalog: no port or probe
            checks then).
        now: aware UTC time of this tick.
        timeout: ``DEPLOY_TIMEOUT_MINUTES`` as a timedelta, counted from :func:`rent_started`.
        host_lost_since: when the poller first saw this instance ``offline``/``unknown`` in a
            row (None: not lost before this tick).
        list_grace: how long a missing instance is tolerated after :func:`rent_started`.
        offline_grace: how long ``offline``/``unknown`` is tolerated.
        start_requested: a user pressed Start on this ``stopped`` deployment (its start claim
            is held; a desired state ``running`` counts too: :func:`start_in_flight`). Without
            it, a stopped deployment whose instance still runs is only taken as started again
            :data:`STOP_SETTLE` after it was stopped, and never while a desired ``stopped`` or
            ``destroyed`` is pending.
        allow_private: the instance may have an address that is not public (the bot talks
            to a local simulator, whose instances are on 127.0.0.1); False for real Vast.ai,
            where such an address makes the instance unreachable (:func:`reachable`).

    Returns:
        A :class:`Verdict`; ``verdict.status == dep.status`` means no state change (fields such
        as ``status_msg`` may still have changed).
    """
    pending = _pending(dep)
    start_requested = start_requested or start_in_flight(dep)
    if instance is None:
        if pending == DESTROYED:  # its own destroy: the reconciler confirms it
            return Verdict(dep.status, status_msg=dep.status_msg)
        if now - rent_started(dep) < list_grace:
            return Verdict(dep.status, status_msg=dep.status_msg)
        return Verdict(
            DeploymentStatus.DESTROYED,
            reason=(
                "The instance is gone from Vast.ai (destroyed outside the bot, or the host "
                "removed it), so nothing bills any more. Deploy again if you still need it."
            ),
            status_msg=dep.status_msg,
            confirm_gone=True,
        )

    instance, unreachable = reachable(instance, allow_private=allow_private)
    actual = instance.actual_status
    intended = instance.intended_status
    msg = instance.status_msg
    before_ready = dep.status in _BEFORE_READY

    # Stopped on purpose (by a user, or by Vast.ai: out of credit, outbid) comes first: a
    # stopped container reports ``exited``, which is not a crash then.
    vast_stopped = instance.cur_state == intended == instance.next_state == "stopped"
    stopped_on_vast = vast_stopped or intended == "stopped"
    if stopped_on_vast or (
        actual in ("stopped", "frozen") and dep.status != DeploymentStatus.STOPPED
    ):
        if before_ready:
            return Verdict(
                DeploymentStatus.FAILED,
                reason=(
                    "Vast.ai stopped the instance before it was ready (the account may be out "
                    "of credit, or the GPU was taken back), so I destroyed it. Check your "
                    "Vast.ai credit, then deploy again."
                ),
                status_msg=msg,
                destroy=True,
            )
        if pending == STOPPED and dep.status == DeploymentStatus.READY:
            # The bot's own stop reached Vast.ai: the reconciler confirms it (not "outside").
            return Verdict(dep.status, status_msg=msg)
        # A ready instance stopped outside the bot (credit, outbid, console) stays: the user
        # may start it again or destroy it from the message.
        return Verdict(DeploymentStatus.STOPPED, status_msg=msg)

    if actual == "exited" and dep.status == DeploymentStatus.STOPPED:
        return Verdict(
            DeploymentStatus.STOPPED, status_msg=msg
        )  # being started again: not running yet
    if actual == "exited" and dep.status == DeploymentStatus.READY:
        # Its app ran: keep it ready (the disk holds the user's work) with Vast.ai's message
        # shown; the exited-container rule (bot.services.rules.exited_container) stops it if
        # it stays exited, which frees the GPU and keeps the disk.
        return Verdict(DeploymentStatus.READY, status_msg=msg)
    if actual == "exited":
        return Verdict(
            DeploymentStatus.FAILED,
            reason=(
                f"The app's container exited (Vast.ai: {_short(msg) or 'exited'}), so I destroyed "
                "the instance to stop billing. Check the template's image and launch command, "
                "then deploy again."
            ),
            status_msg=msg,
            destroy=True,
        )

    if before_ready and error_in_status_msg(msg):
        what = (
            "the Docker image could not be pulled"
            if _PULL_RE.search(msg or "")
            else "the container could not be started"
        )
        return Verdict(
            DeploymentStatus.FAILED,
            reason=(
                f"Vast.ai reports that {what}: {_short(msg)}. I destroyed the instance so it "
                "stops billing. Check the template's image name (and that it is public), then "
                "deploy again or pick another GPU."
            ),
            status_msg=msg,
            destroy=True,
        )

    if actual in _HOST_LOST:
        lost_since = host_lost_since or now
        if now - lost_since >= offline_grace:
            minutes = offline_grace.total_seconds() / 60
            return Verdict(
                DeploymentStatus.FAILED,
                reason=(
                    f"The host has been `{actual}` on Vast.ai for over {minutes:g} minutes (it "
                    "lost its connection), so I destroyed the instance. Deploy again on "
                    "another GPU."
                ),
                status_msg=msg,
                destroy=True,
                host_lost=True,
            )
        verdict = Verdict(dep.status, status_msg=msg, host_lost=True)
        if _timed_out(dep, now, timeout):
            return replace(_timeout_verdict(dep, instance, timeout), host_lost=True)
        return verdict

    if actual == "running" and intended == "running":
        if dep.status == DeploymentStatus.STOPPED and pending in (STOPPED, DESTROYED):
            # A stop (or destroy) is recorded and not confirmed: running is not a start.
            return Verdict(DeploymentStatus.STOPPED, status_msg=msg)
        if (
            dep.status == DeploymentStatus.STOPPED
            and not start_requested
            and not _settled(dep, now)
        ):
            # Just stopped by a user, and Vast.ai's list still shows the old state: not a start.
            return Verdict(DeploymentStatus.STOPPED, status_msg=msg)
        connection = _connection(instance)
        if dep.status == DeploymentStatus.READY:
            if connection.ports_json is None:  # ports vanish briefly on restarts: keep the old
                return Verdict(DeploymentStatus.READY, status_msg=msg, unreachable=unreachable)
            return Verdict(
                DeploymentStatus.READY,
                status_msg=msg,
                connection=connection,
                unreachable=unreachable,
            )
        required = list(template.ports) if template is not None else []
        all_mapped = instance.public_ipaddr is not None and all(
            instance.host_port(port) is not None for port in required
        )
        if all_mapped:
            url = probe_url(instance, template) if template is not None else None
            target = dep.status if url is not None else DeploymentStatus.READY
            return Verdict(target, status_msg=msg, connection=connection, probe_url=url)
        waiting = (
            DeploymentStatus.PROVISIONING if dep.status == DeploymentStatus.CREATING else dep.status
        )
        if _timed_out(dep, now, timeout):
            verdict = _timeout_verdict(dep, instance, timeout, unreachable)
            return replace(verdict, unreachable=unreachable)
        return Verdict(waiting, status_msg=msg, connection=connection, unreachable=unreachable)

    # Booting: null, created, loading, rebooting (or running while a stop/start is underway).
    if dep.status == DeploymentStatus.CREATING:
        return Verdict(DeploymentStatus.PROVISIONING, status_msg=msg)
    if _timed_out(dep, now, timeout):
        return _timeout_verdict(dep, instance, timeout)
    return Verdict(dep.status, status_msg=msg)


def after_probe(
    verdict: Verdict, dep: DeploymentRecord, up: bool, *, now: datetime, timeout: timedelta
) -> Verdict:
    """Finish a verdict that carried ``probe_url``: ``ready`` when the app answered (``up``),
    else still provisioning (or failed past the timeout). Starting a ``stopped`` deployment
    again has no timeout here."""
    if up:
        return replace(verdict, status=DeploymentStatus.READY, probe_url=None)
    if _timed_out(dep, now, timeout):
        minutes = timeout.total_seconds() / 60
        reason = (
            f"The instance runs, but the app did not answer at its URL within {minutes:g} "
            "minutes, so I destroyed the instance to stop billing. The app may need more "
            "VRAM or time to load its model: deploy again, maybe on a bigger GPU."
        )
        return replace(
            verdict, status=DeploymentStatus.FAILED, reason=reason, probe_url=None, destroy=True
        )
    target = (
        DeploymentStatus.PROVISIONING if dep.status == DeploymentStatus.CREATING else dep.status
    )
    return replace(verdict, status=target, probe_url=None)
