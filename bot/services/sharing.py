"""Sharing a deployment with teammates (the **Share** button and its modal).

A deployment has one owner (its requester). The owner, or a bot admin of its workspace, may
share it with people of the same workspace: they become *collaborators* (a row each in
``deployment_collaborators``, :mod:`storage.collaborators`) and may Stop, Start and Extend it
and get its login (:meth:`bot.services.manage.ManageService.may`, the same lifetime, budget
and approval rules as its owner); Destroy and changing who has access stay with the owner and
the admins. They see it in ``/templates mine`` and on their Home tab ("shared by <@owner>"),
and each gets their own ready DM with the login (:func:`send_ready_dms`): when it becomes
ready (the poller's apply stage) or at once when shared into a ready deployment, once per
collaborator across processes (claimed on ``ready_dm_sent_at``). The SSH keys of everyone with
access are attached to the instance, and those of a removed collaborator detached, by the
instance-key reconciler from the rows this service writes.

Only members of the deployment's workspace can be added: each new person is checked with
:meth:`bot.services.membership.MembershipService.teammate` (``users.info`` with the
workspace's token: an active person of it; a person of another workspace, a bot, an app or a
deactivated account is refused with an inline error). Every share and unshare is an event
(``shared`` / ``unshared``) and a note in the status message's thread saying who has access.

:meth:`SharingService.submit` writes (fast: the modal's answer waits for it);
:meth:`SharingService.announce` then tells the thread and the people concerned (Slack calls,
run after the modal was answered).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.formats import deployment_ref, mrkdwn_escape
from bot.services.manage import NOT_FOUND_TEXT, ManageService, Outcome, OutcomeKind
from bot.services.membership import MembershipService, Standing
from bot.services.ports import DirectMessages, LoginMessages, Templates, ThreadNotes
from catalog import Template
from storage import (
    LIVE_STATUSES,
    DeploymentRecord,
    DeploymentStatus,
    EventKind,
    SessionFactory,
    add_event,
    count_ssh_keys,
    get_deployment,
    utcnow,
)
from storage import collaborators as store

logger = logging.getLogger(__name__)

SHARE = "share"
MAX_COLLABORATORS = 20
"""The most people one deployment is shared with (the modal's ``max_selected_items``)."""


# --- what people read (pure) ---------------------------------------------------------------


def _people(user_ids: Iterable[str]) -> str:
    """``<@U1>, <@U2> and <@U3>`` in the given order; empty text for nobody."""
    names = [f"<@{user}>" for user in user_ids]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + f" and {names[-1]}"


def access_text(dep: DeploymentRecord, collaborators: Sequence[str]) -> str:
    """Who has access now: ``Who has access now: <@owner> (owner), <@B> and <@C>, and the bot
    admins.`` (only the owner and the admins when it is shared with nobody)."""
    shared = [user for user in collaborators if user != dep.user_id]
    if not shared:
        return (
            f"Who has access now: <@{dep.user_id}> (owner) and the bot admins; it is shared "
            "with nobody."
        )
    return f"Who has access now: <@{dep.user_id}> (owner), {_people(shared)}, and the bot admins."


def _login_stays(dep: DeploymentRecord) -> bool:
    """Whether a removed person may still hold a login that works: the deployment has a web
    password (DMed to each person with access once it is ready) and has not ended. The bot
    cannot change it on a running instance (it is in the instance's environment)."""
    return dep.web_password is not None and not dep.is_final


def _removed_sentence(dep: DeploymentRecord, removed: Sequence[str]) -> str:
    keys = (
        " Their SSH keys will be removed from the instance."
        if dep.instance_id is not None and not dep.is_final
        else ""
    )
    login = (
        " If they got its login by DM, it still opens the app until the deployment is "
        "destroyed (the bot cannot change it on a running instance): if that matters, "
        "*Destroy* it and deploy again."
        if _login_stays(dep)
        else ""
    )
    return f"Removed {_people(removed)}: they no longer have access.{keys}{login}"


def change_text(
    dep: DeploymentRecord,
    actor: str,
    added: Sequence[str],
    removed: Sequence[str],
    collaborators: Sequence[str],
) -> str:
    """The thread note for a change of who has access (mrkdwn, no secret): who did it, who was
    added and removed (their SSH keys go from the instance), and who has access now."""
    parts = [f":busts_in_silhouette: <@{actor}> changed who has access to {deployment_ref(dep)}."]
    if added:
        parts.append(
            f"Shared with {_people(added)}: they may *Stop*, *Start* and *Extend* it and get "
            "their own login by DM."
        )
    if removed:
        parts.append(_removed_sentence(dep, removed))
    parts.append(access_text(dep, collaborators))
    return " ".join(parts)


def result_text(
    dep: DeploymentRecord,
    added: Sequence[str],
    removed: Sequence[str],
    collaborators: Sequence[str],
) -> str:
    """What the person who saved the Share modal reads."""
    if not added and not removed:
        return f"Nothing changed. {access_text(dep, collaborators)}"
    parts = []
    if added:
        ready = dep.status == DeploymentStatus.READY
        parts.append(
            f":white_check_mark: Shared {deployment_ref(dep)} with {_people(added)}. They get "
            + ("their own login by DM now." if ready else "their own login by DM when it is ready.")
        )
    if removed:
        parts.append(_removed_sentence(dep, removed))
    parts.append(access_text(dep, collaborators))
    return " ".join(parts)


def shared_with_you_text(dep: DeploymentRecord, actor: str) -> str:
    """The DM to someone a deployment was just shared with (no secret: the login comes in its
    own DM)."""
    ready = dep.status == DeploymentStatus.READY
    login = (
        "Your own login follows in the next message."
        if ready
        else "You get your own login by DM when it is ready."
    )
    return (
        f":busts_in_silhouette: <@{actor}> shared {deployment_ref(dep)} "
        f"({dep.num_gpus}× {mrkdwn_escape(dep.gpu_name[:100])}, owner <@{dep.user_id}>) with "
        f"you. You may *Stop*, *Start* and *Extend* it from its status message, your Home tab "
        f"or `/templates mine`; only <@{dep.user_id}> and the bot admins can *Destroy* it. "
        f"{login} Your SSH public keys (`/templates ssh-key`) are put on the instance for you."
    )


def unshared_text(dep: DeploymentRecord, actor: str) -> str:
    """The DM to someone whose access was just taken away."""
    keys = (
        " Your SSH keys will be removed from the instance."
        if dep.instance_id is not None and not dep.is_final
        else ""
    )
    login = (
        " If you got its login by DM, it still opens the app until the deployment is "
        "destroyed: please do not use it any more."
        if _login_stays(dep)
        else ""
    )
    return (
        f":no_entry: <@{actor}> took away your access to {deployment_ref(dep)} (owner "
        f"<@{dep.user_id}>): it is no longer shared with you.{keys}{login}"
    )


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShareForm:
    """What the Share modal shows: the deployment and who it is shared with now (in the
    order they were added), and the most people it may be shared with."""

    deployment: DeploymentRecord
    collaborators: tuple[str, ...]
    max_people: int = MAX_COLLABORATORS


@dataclass(frozen=True)
class ShareResult:
    """How a Share modal's submission went.

    ``refusal``: the whole submission was refused (not allowed, not found, ended), mrkdwn for
    the submitter; nothing changed. ``field_error``: plain text for the people field (an
    outsider, too many people, Slack could not say); nothing changed. Otherwise ``added`` and
    ``removed`` are the people whose access changed now (an add or a removal already made by
    someone else meanwhile is in neither), ``collaborators`` who it is shared with after, and
    ``message`` what the submitter reads.
    """

    deployment: DeploymentRecord | None = None
    actor: str = ""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    collaborators: tuple[str, ...] = ()
    message: str = ""
    refusal: str | None = None
    field_error: str | None = None
    outsiders: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> bool:
        """True when someone's access changed (there is something to announce)."""
        return self.deployment is not None and bool(self.added or self.removed)


# --- the ready DMs of collaborators --------------------------------------------------------


def send_ready_dms(
    sf: SessionFactory,
    messages: LoginMessages,
    dep: DeploymentRecord,
    template: Template | None,
    *,
    jupyter_token: str | None,
    now: datetime,
    only: Iterable[str] | None = None,
) -> int:
    """DM each collaborator of the ``ready`` deployment ``dep`` their own ready DM (how to get
    in, the login; the offer to add an SSH key when they have none on file:
    :func:`storage.count_ssh_keys`), with the same builder as the owner's
    (:meth:`bot.services.ports.Messages.secrets`, to that person), once
    per collaborator across processes: each is claimed first
    (:func:`storage.collaborators.claim_ready_dm`) and the claim is given back when Slack did
    not take the DM, so a later poller pass sends it. ``only``: just these people (the ones
    shared with just now). Nothing when ``dep`` is not ready or has no login to send (as for
    its owner). Returns how many DMs went out; never raises for Slack or the database."""
    if dep.status != DeploymentStatus.READY:
        return 0
    if not messages.has_secrets(dep, template, jupyter_token=jupyter_token):
        return 0
    wanted = None if only is None else set(only)
    sent = 0
    try:
        owed = [
            row.user_id
            for row in store.list_collaborators(sf, dep.id)
            if row.ready_dm_sent_at is None and (wanted is None or row.user_id in wanted)
        ]
        for user_id in owed:
            if user_id == dep.user_id or not store.claim_ready_dm(sf, dep.id, user_id, now):
                continue
            has_key = count_ssh_keys(sf, dep.team_id, user_id) > 0
            if messages.secrets(
                dep, template, user_id=user_id, has_ssh_key=has_key, jupyter_token=jupyter_token
            ):
                sent += 1
            else:  # refused or unreachable: the next pass tries again
                store.release_ready_dm(sf, dep.id, user_id, now)
    except SQLAlchemyError:
        logger.exception("deployment %s: collaborators' ready DMs not all sent", dep.id)
    return sent


# --- the service ---------------------------------------------------------------------------


class UserHomes(Protocol):
    """Republishes one person's App Home (:class:`bot.services.home.HomeService` implements
    it): after a share, the Homes of the owner and of whoever was added or removed."""

    def refresh(self, user_id: str, team_id: str | None = None) -> bool:
        """Publish ``user_id``'s Home in workspace ``team_id``; True when it was queued."""
        ...


class SharingMessages(ThreadNotes, DirectMessages, LoginMessages, Protocol):
    """What sharing sends: the note in the thread, the DMs to whom it is shared with or no longer
    is, and their login DM (:func:`send_ready_dms`)."""


class SharingService:
    """The Share button's logic (see the module docstring).

    Args:
        session_factory: storage's sessionmaker.
        manage: who may do what (:meth:`ManageService.can_manage`: the owner and the admins
            may share; :meth:`ManageService.who_can` says who can to anyone else).
        membership: checks that each new person belongs to the deployment's workspace.
        messages: the messages port (thread note, DMs, the login DM).
        templates: the catalog, for the login DM (:class:`bot.services.ports.Templates`).
        homes: republishes the Home tab of each person added or removed (:class:`UserHomes`).
        clock: aware UTC now.
        max_people: the most collaborators per deployment.
    """

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        manage: ManageService,
        membership: MembershipService,
        messages: SharingMessages,
        templates: Templates,
        homes: UserHomes | None = None,
        clock: Callable[[], datetime] = utcnow,
        max_people: int = MAX_COLLABORATORS,
    ) -> None:
        self.sf = session_factory
        self.manage = manage
        self.membership = membership
        self.messages = messages
        self.templates = templates
        self.homes = homes
        self.clock = clock
        self.max_people = max_people

    def _may_share(
        self, deployment_id: int, actor: str, team_id: str | None
    ) -> tuple[DeploymentRecord | None, Outcome | None]:
        """``(deployment, None)`` when ``actor`` may change who has access to it, else
        ``(deployment or None, the Outcome that refuses it)``: ``not_found`` (another
        workspace's deployment too, nothing recorded on it), ``refused`` (who can: a
        ``share_refused`` event) or ``invalid`` (it has ended, or waits for approval)."""
        dep = get_deployment(self.sf, deployment_id)
        if dep is not None and team_id is not None and dep.team_id != team_id:
            logger.warning("share of deployment %s refused: another workspace", deployment_id)
            dep = None
        if dep is None:
            return None, Outcome(OutcomeKind.NOT_FOUND, NOT_FOUND_TEXT)
        if not self.manage.can_manage(dep, actor):
            add_event(
                self.sf, dep.id, actor, EventKind.SHARE_REFUSED, "not allowed", now=self.clock()
            )
            return dep, Outcome(
                OutcomeKind.REFUSED, self.manage.who_can(dep, SHARE, actor=actor), dep
            )
        if dep.is_final:
            return dep, Outcome(
                OutcomeKind.INVALID,
                f"{deployment_ref(dep)} has already ended ({dep.status}): there is nothing "
                "to share.",
                dep,
            )
        if dep.status not in LIVE_STATUSES:  # a request waiting for approval
            return dep, Outcome(
                OutcomeKind.INVALID,
                f"{deployment_ref(dep)} is {dep.status}: nothing is rented yet. Share it once "
                "it is approved.",
                dep,
            )
        return dep, None

    def form(self, deployment_id: int, actor: str, *, team_id: str | None) -> ShareForm | Outcome:
        """What the Share modal of ``deployment_id`` shows to ``actor`` (of workspace
        ``team_id``), or the Outcome that answers the click instead (``not_found``,
        ``refused``: who can, ``invalid``: it has ended; ``failed``: the database)."""
        try:
            dep, refusal = self._may_share(deployment_id, actor, team_id)
            if refusal is not None:
                return refusal
            assert dep is not None  # _may_share returns one or the other
            return ShareForm(dep, tuple(store.collaborator_ids(self.sf, dep.id)), self.max_people)
        except SQLAlchemyError:
            logger.exception("share of deployment %s: not read", deployment_id)
            return Outcome(
                OutcomeKind.FAILED,
                ":x: I could not read who has access (the bot's database did not answer). "
                "Please press *Share* again in a moment.",
            )

    def submit(
        self,
        deployment_id: int,
        actor: str,
        selected: Sequence[str],
        previous: Sequence[str],
        *,
        team_id: str | None,
    ) -> ShareResult:
        """Save the Share modal of ``deployment_id``: ``selected`` is who the submitter wants
        it shared with, ``previous`` who it was shared with when the modal opened; the people
        added (in ``selected`` only) get access, those removed (in ``previous`` only) lose it.
        So two people editing at once change only what each changed. The owner in
        ``selected`` is ignored (they always have access).

        Refused as a whole (``refusal``) when ``actor`` is not the owner or an admin, the
        deployment is not found in ``team_id`` or has ended. Refused on the field
        (``field_error``) when more than ``max_people`` are chosen or an added person is not
        an active human member of the workspace (or Slack could not say); nothing changes
        then. Writes only (no Slack message): :meth:`announce` tells people afterwards.
        """
        try:
            dep, refusal = self._may_share(deployment_id, actor, team_id)
        except SQLAlchemyError:
            logger.exception("share of deployment %s: not read", deployment_id)
            return ShareResult(refusal=_DATABASE_TEXT)
        if refusal is not None:
            return ShareResult(deployment=dep, refusal=refusal.message)
        assert dep is not None  # _may_share returns one or the other
        wanted = [user for user in dict.fromkeys(selected) if user and user != dep.user_id]
        if len(wanted) > self.max_people:
            return ShareResult(
                deployment=dep,
                field_error=(
                    f"A deployment can be shared with at most {self.max_people} people; you "
                    f"chose {len(wanted)}. Remove some and save again."
                ),
            )
        before = set(previous)
        added = [user for user in wanted if user not in before]
        removed = [user for user in dict.fromkeys(previous) if user not in set(wanted)]
        outsiders, unknown = self._check_people(dep.team_id, added)
        if outsiders:
            return ShareResult(
                deployment=dep,
                outsiders=tuple(outsiders),
                field_error=_outsiders_text(len(outsiders)),
            )
        if unknown:
            return ShareResult(
                deployment=dep,
                field_error=(
                    "I could not check with Slack that everyone you added belongs to this "
                    "workspace (Slack did not answer), so nothing changed. Save again in a "
                    "moment."
                ),
            )
        now = self.clock()
        done_added: list[str] = []
        done_removed: list[str] = []
        try:
            for user in added:
                if store.add_collaborator(self.sf, dep.id, user, added_by=actor, now=now):
                    done_added.append(user)
            for user in removed:
                if store.remove_collaborator(self.sf, dep.id, user, actor=actor, now=now):
                    done_removed.append(user)
            now_with = tuple(store.collaborator_ids(self.sf, dep.id))
        except SQLAlchemyError:
            logger.exception("share of deployment %s: not saved", dep.id)
            return ShareResult(
                deployment=dep,
                actor=actor,
                added=tuple(done_added),
                removed=tuple(done_removed),
                refusal=_DATABASE_TEXT,
            )
        return ShareResult(
            deployment=dep,
            actor=actor,
            added=tuple(done_added),
            removed=tuple(done_removed),
            collaborators=now_with,
            message=result_text(dep, done_added, done_removed, now_with),
        )

    def _check_people(self, team_id: str, users: Sequence[str]) -> tuple[list[str], list[str]]:
        """``(outsiders, unknown)`` among ``users``: people who are not active human members
        of ``team_id``, and people Slack could not say anything about just now."""
        outsiders: list[str] = []
        unknown: list[str] = []
        for user in users:
            verdict = self.membership.teammate(team_id, user)
            if verdict.standing == Standing.OUTSIDER:
                outsiders.append(user)
            elif verdict.standing == Standing.UNKNOWN:
                unknown.append(user)
        return outsiders, unknown

    def announce(self, result: ShareResult) -> None:
        """Tell everyone a saved change concerns: a note in the status message's thread (who
        has access now), a DM to each person added (and, when the deployment is ready, their
        own login: :func:`send_ready_dms`) and to each person removed, and the Homes of the
        owner and of everyone whose access changed. Never raises (each failure is logged)."""
        dep = result.deployment
        if dep is None or not result.changed:
            return
        try:
            self.messages.note(
                dep,
                change_text(dep, result.actor, result.added, result.removed, result.collaborators),
            )
            for user in result.added:
                self.messages.dm(user, shared_with_you_text(dep, result.actor), team_id=dep.team_id)
            for user in result.removed:
                self.messages.dm(user, unshared_text(dep, result.actor), team_id=dep.team_id)
            fresh = get_deployment(self.sf, dep.id) or dep
            if result.added and fresh.status == DeploymentStatus.READY:
                send_ready_dms(
                    self.sf,
                    self.messages,
                    fresh,
                    self.templates.get(fresh.template_slug),
                    jupyter_token=None,  # Vast.ai's own token comes with the poller's next read
                    now=self.clock(),
                    only=result.added,
                )
            for user in dict.fromkeys((dep.user_id, *result.added, *result.removed)):
                if self.homes is not None:
                    self.homes.refresh(user, dep.team_id)
        except Exception:  # the change is saved; the poller still sends the login DMs
            logger.exception("share of deployment %s: not all told", dep.id)


_DATABASE_TEXT = (
    ":x: I could not save who has access (the bot's database did not answer). Open *Share* "
    "again in a moment and check who has access before you save."
)


def _outsiders_text(count: int) -> str:
    """The inline error for ``count`` people who cannot be added (plain text: Slack shows no
    mentions in an inline error, so they are counted, not named)."""
    who = "One person you added is" if count == 1 else f"{count} of the people you added are"
    them = "them" if count > 1 else "that person"
    return (
        f"{who} not an active member of this workspace (a person of another workspace, an app, "
        f"a bot or a deactivated account), so nothing changed. Remove {them} and save again."
    )
