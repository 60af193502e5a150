"""Several workspaces: every message the bot sends on its own goes out with the bot token of the
workspace it concerns (bot.slack.clients), and nothing goes to a workspace without an
installation. Run against the fake Slack and slack_sdk's SQLAlchemy installation store on the
bot's own (migrated) database."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy.exc
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from sqlalchemy import Engine

import storage
from bot.playground.slack_api import CLIENT_ID, CLIENT_SECRET, Call, FakeSlack
from bot.services.message_sync import MessageSync
from bot.services.ports import Delivery, HomeData
from bot.slack.app import CheckedWebClient
from bot.slack.clients import WorkspaceClients, WorkspaceNotifiers
from bot.slack.messages import SlackMessages
from bot.slack.notifier import NOT_INSTALLED, REFUSED, TOKEN_UNAVAILABLE, UNAVAILABLE, Notifier
from bot.slack.outbox import Outbox
from storage import DeploymentRecord, SessionFactory

TEAM_A, TEAM_B, TEAM_C = "T0AAAAAA1", "T0BBBBBB2", "T0CCCCCC3"
ORG = "E0ORG0001"
TOKEN_A, TOKEN_B, TOKEN_ORG = "xoxb-team-a", "xoxb-team-b", "xoxb-org-wide"
ALICE, BOB = "U0ALICE01", "U0BOB0002"
CHANNEL = "C0DEPLOYS1"


def token_of(call: Call) -> str | None:
    """The bot token a call came with."""
    return call.token


def tokens(fake: FakeSlack, method: str, **match: Any) -> list[str | None]:
    return [
        token_of(c)
        for c in fake.calls_to(method)
        if all(c.args.get(k) == v for k, v in match.items())
    ]


def install(
    store: SQLAlchemyInstallationStore,
    team_id: str | None,
    token: str,
    *,
    enterprise_id: str | None = None,
    refresh_token: str | None = None,
    expires_at: int | None = None,
) -> None:
    """Save an installation as Bolt's OAuth flow does (``team_id`` None: org-wide)."""
    store.save(
        Installation(
            app_id="A0GPUAPP1",
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=ALICE,
            bot_token=token,
            bot_id="B" + (team_id or enterprise_id or "")[1:],
            bot_user_id="U0BOT" + (team_id or enterprise_id or "")[-4:],
            bot_scopes=["chat:write", "im:write", "users:read"],
            bot_refresh_token=refresh_token,
            bot_token_expires_at=expires_at,
            is_enterprise_install=team_id is None,
            token_type="bot",
        )
    )


def uninstall(store: SQLAlchemyInstallationStore, team_id: str) -> None:
    """What the app_uninstalled handler does with the tokens (slack_sdk's delete_all)."""
    store.delete_all(enterprise_id=None, team_id=team_id)


def make_dep(sf: SessionFactory, team_id: str, *, user: str = ALICE) -> DeploymentRecord:
    """A ready deployment of ``team_id`` with a status message in CHANNEL."""
    now = storage.utcnow() - timedelta(minutes=10)
    dep, _ = storage.create_deployment(
        sf,
        request_key=uuid.uuid4().hex,
        team_id=team_id,
        user_id=user,
        channel_id=CHANNEL,
        template_slug="jupyter-lab",
        template_name="JupyterLab",
        offer_id=1,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        dph_total=0.4,
        disk_gb=16,
        simulated=True,
        now=now,
    )
    storage.set_instance(sf, dep.id, 1000 + dep.id, now=now)
    for old, new in (("creating", "provisioning"), ("provisioning", "ready")):
        assert storage.update_status(sf, dep.id, expected_status=old, new_status=new, now=now)
    storage.set_message(sf, dep.id, CHANNEL, f"1732900000.{900000 + dep.id}")
    record = storage.get_deployment(sf, dep.id)
    assert record is not None
    return record


class Bot:
    """The Slack side of the bot as build_services wires it, in OAuth mode on ``store``."""

    def __init__(
        self,
        fake: FakeSlack,
        sf: SessionFactory,
        store: Any | None,
        *,
        enterprise_of: Any = None,
        token: str | None = None,
    ) -> None:
        self.base = CheckedWebClient(token=token, base_url=fake.api_url, timeout=5)
        self.clients = WorkspaceClients(
            self.base,
            installation_store=store,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            enterprise_of=enterprise_of,
        )
        self.outbox = Outbox(WorkspaceNotifiers(self.clients, rate_limit_retries=False).send)
        self.messages = SlackMessages(
            Notifier(self.base),
            notifier_for=WorkspaceNotifiers(self.clients),
            outbox=self.outbox,
        )
        self.sync = MessageSync(
            session_factory=sf, messages=self.messages, catalog_get=lambda slug: None
        )

    def close(self) -> None:
        self.outbox.close()


@pytest.fixture
def store(engine: Engine) -> SQLAlchemyInstallationStore:
    """slack_sdk's store on the bot's database (its tables made by migration 0007)."""
    return SQLAlchemyInstallationStore(client_id=CLIENT_ID, engine=engine)


@pytest.fixture
def oauth_bot(
    fake_slack: FakeSlack, session_factory: SessionFactory, store: SQLAlchemyInstallationStore
) -> Iterator[Bot]:
    fake_slack.add_workspace(TEAM_A, name="Team A", bot_token=TOKEN_A)
    fake_slack.add_workspace(TEAM_B, name="Team B", bot_token=TOKEN_B)
    bot = Bot(fake_slack, session_factory, store)
    yield bot
    bot.close()


def home(team_id: str | None) -> HomeData:
    return HomeData(
        deployments=(),
        now=storage.utcnow(),
        user_month=0.0,
        workspace_month=0.0,
        month_label="December 2026",
        team_id=team_id,
    )


# -- two workspaces ------------------------------------------------------------------------------


def test_each_workspaces_messages_carry_its_own_bot_token(
    oauth_bot: Bot,
    fake_slack: FakeSlack,
    session_factory: SessionFactory,
    store: SQLAlchemyInstallationStore,
) -> None:
    install(store, TEAM_A, TOKEN_A)
    install(store, TEAM_B, TOKEN_B)
    dep_a = make_dep(session_factory, TEAM_A, user=ALICE)
    dep_b = make_dep(session_factory, TEAM_B, user=BOB)
    messages = oauth_bot.messages

    # status edits through the outbox (each workspace's queue), marked and cleared
    assert oauth_bot.sync.changed(dep_a) is Delivery.QUEUED
    assert oauth_bot.sync.changed(dep_b) is Delivery.QUEUED
    assert messages.flush(5)
    assert tokens(fake_slack, "chat.update", ts=dep_a.message_ts) == [TOKEN_A]
    assert tokens(fake_slack, "chat.update", ts=dep_b.message_ts) == [TOKEN_B]
    for dep in (dep_a, dep_b):
        assert storage.get_deployment(session_factory, dep.id).message_stale_since is None  # type: ignore[union-attr]

    # a status edit at once, a thread reply, DMs, a Home tab, a digest, users.info
    assert messages.show_status(dep_b, None) is Delivery.SENT
    assert messages.failed(dep_a)
    assert messages.dm(BOB, "hello B", team_id=TEAM_B)
    assert messages.dm(ALICE, "hello A", team_id=TEAM_A)
    assert messages.publish_home(BOB, home(TEAM_B))
    assert messages.digest("C0DIGEST1", _digest(), team_id=TEAM_A)
    assert messages.user_tz(BOB, team_id=TEAM_B) == "UTC"
    assert messages.flush(5)
    assert tokens(fake_slack, "chat.update", ts=dep_b.message_ts) == [TOKEN_B, TOKEN_B]
    assert tokens(fake_slack, "chat.postMessage", thread_ts=dep_a.message_ts) == [TOKEN_A]
    assert tokens(fake_slack, "conversations.open") == [TOKEN_B, TOKEN_A]
    assert tokens(fake_slack, "chat.postMessage", text="hello B") == [TOKEN_B]
    assert tokens(fake_slack, "chat.postMessage", text="hello A") == [TOKEN_A]
    assert tokens(fake_slack, "views.publish", user_id=BOB) == [TOKEN_B]
    assert tokens(fake_slack, "chat.postMessage", channel="C0DIGEST1") == [TOKEN_A]
    assert tokens(fake_slack, "users.info") == [TOKEN_B]
    # and Slack resolved each call to the workspace it was meant for
    assert {c.team_id for c in fake_slack.calls_for(TEAM_A)} == {TEAM_A}
    assert {c.args.get("user_id") for c in fake_slack.calls_for(TEAM_B, "views.publish")} == {BOB}
    assert all(c.team_id in (TEAM_A, TEAM_B) for c in fake_slack.calls)


def _digest() -> Any:
    from bot.services.ports import DigestData

    return DigestData(
        now=storage.utcnow(), tz="UTC", running=(), stopped=(), spend=(), month_label="May 2026"
    )


def test_a_message_naming_no_workspace_is_not_sent_in_oauth_mode(
    oauth_bot: Bot, fake_slack: FakeSlack, store: SQLAlchemyInstallationStore
) -> None:
    install(store, TEAM_A, TOKEN_A)
    messages = oauth_bot.messages
    assert not messages.dm(ALICE, "to whom?")
    assert not messages.budget_alert(ALICE, _alert(), you=True)
    assert messages.user_tz(ALICE) is None
    assert messages.team_id() is None
    messages.publish_home(ALICE, home(None))
    assert messages.flush(5)
    assert fake_slack.calls == []


def _alert() -> Any:
    from bot.services.ports import BudgetAlert, BudgetLine

    return BudgetAlert(
        line=BudgetLine(subject=ALICE, budget=100.0, spent=85.0), percent=80, month_label="May"
    )


# -- uninstalled ---------------------------------------------------------------------------------


def test_an_uninstalled_workspace_gets_nothing_and_its_marks_are_not_resent(
    oauth_bot: Bot,
    fake_slack: FakeSlack,
    session_factory: SessionFactory,
    store: SQLAlchemyInstallationStore,
) -> None:
    install(store, TEAM_A, TOKEN_A)
    install(store, TEAM_B, TOKEN_B)
    dep_a = make_dep(session_factory, TEAM_A)
    dep_b = make_dep(session_factory, TEAM_B, user=BOB)
    assert oauth_bot.messages.dm(ALICE, "before", team_id=TEAM_A)  # A's token is cached now
    uninstall(store, TEAM_A)
    oauth_bot.clients.forget(TEAM_A)
    fake_slack.reset()

    outcomes: list[Delivery] = []
    oauth_bot.messages.queue_status(dep_a, None, on_done=outcomes.append)
    assert oauth_bot.messages.flush(5)
    assert outcomes == [Delivery.REFUSED]
    oauth_bot.sync.changed(dep_a)
    oauth_bot.sync.changed(dep_b)
    assert oauth_bot.messages.flush(5)
    result = WorkspaceNotifiers(oauth_bot.clients).send(TEAM_A, "chat.update", {})
    assert (result.outcome, result.error) == (REFUSED, NOT_INSTALLED)
    assert not oauth_bot.messages.dm(ALICE, "after", team_id=TEAM_A)
    assert not oauth_bot.messages.failed(dep_a)  # no thread reply, no DM instead
    assert oauth_bot.messages.post_status(dep_a, None) is None
    assert [token_of(c) for c in fake_slack.calls] == [TOKEN_B]  # only B's edit went out
    # refused for good: the mark is cleared, so the reconciler does not send it every tick
    assert storage.get_deployment(session_factory, dep_a.id).message_stale_since is None  # type: ignore[union-attr]
    assert oauth_bot.sync.reconcile() == 0


def test_a_revoked_token_drops_the_cached_one(
    oauth_bot: Bot,
    fake_slack: FakeSlack,
    session_factory: SessionFactory,
    store: SQLAlchemyInstallationStore,
) -> None:
    install(store, TEAM_A, TOKEN_A)
    dep = make_dep(session_factory, TEAM_A)
    assert oauth_bot.messages.dm(ALICE, "before", team_id=TEAM_A)
    uninstall(store, TEAM_A)  # no forget(): the cached token is still there
    fake_slack.revoke(TOKEN_A)
    assert not oauth_bot.messages.note(dep, "refused: token_revoked")
    assert fake_slack.calls[-1].token == TOKEN_A
    fake_slack.reset()
    assert not oauth_bot.messages.note(dep, "not sent: no installation")
    assert fake_slack.calls == []


def test_a_store_that_cannot_be_read_keeps_the_mark_for_later(
    fake_slack: FakeSlack, session_factory: SessionFactory, store: SQLAlchemyInstallationStore
) -> None:
    install(store, TEAM_A, TOKEN_A)
    dep = make_dep(session_factory, TEAM_A)

    class Down:
        def find_installation(self, **kwargs: Any) -> Installation | None:
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked"))

        find_bot = find_installation

    bot = Bot(fake_slack, session_factory, Down())
    try:
        result = WorkspaceNotifiers(bot.clients).send(TEAM_A, "chat.update", {})
        assert (result.outcome, result.error) == (UNAVAILABLE, TOKEN_UNAVAILABLE)
        outcomes: list[Delivery] = []
        bot.slack.messages.queue_status(dep, None, on_done=outcomes.append)
        bot.sync.changed(dep)
        assert not bot.slack.messages.flush(1)  # the queue waits to try again
        assert fake_slack.calls == []
        assert outcomes == []
        assert storage.get_deployment(session_factory, dep.id).message_stale_since is not None  # type: ignore[union-attr]
    finally:
        bot.close()


# -- token rotation --------------------------------------------------------------------------------


def exchange(fake: FakeSlack, code: str) -> dict[str, Any]:
    """The OAuth redirect's code exchange (``oauth.v2.access``), as Bolt's flow does it."""
    client = WebClient(base_url=fake.api_url)
    answer = client.oauth_v2_access(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=code)
    assert isinstance(answer.data, dict)
    return answer.data


def test_a_bot_token_expiring_soon_is_rotated_saved_and_used(
    oauth_bot: Bot,
    fake_slack: FakeSlack,
    session_factory: SessionFactory,
    store: SQLAlchemyInstallationStore,
) -> None:
    fake_slack.token_expires_in = 60  # the installed token expires in a minute
    code = fake_slack.add_workspace(TEAM_C, name="Team C", bot_token="xoxe.xoxb-c", refresh=True)
    answer = exchange(fake_slack, code)
    first_refresh = answer["refresh_token"]
    install(
        store,
        TEAM_C,
        answer["access_token"],
        refresh_token=first_refresh,
        expires_at=int(time.time()) + int(answer["expires_in"]),
    )
    fake_slack.token_expires_in = 43_200  # the rotated one lives 12 h
    dep = make_dep(session_factory, TEAM_C)
    oauth_bot.sync.changed(dep)
    assert oauth_bot.messages.flush(5)
    assert oauth_bot.messages.dm(ALICE, "hello", team_id=TEAM_C)

    rotated = fake_slack.current_token(TEAM_C)
    assert rotated != "xoxe.xoxb-c"
    (refresh,) = [c for c in fake_slack.calls_to("oauth.v2.access") if c.args.get("grant_type")]
    assert refresh.args["grant_type"] == "refresh_token"
    assert refresh.args["refresh_token"] == first_refresh
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert refresh.headers["authorization"] == f"Basic {basic}"
    assert tokens(fake_slack, "chat.update") == [rotated]  # once, then cached
    assert tokens(fake_slack, "chat.postMessage") == [rotated]
    assert {c.team_id for c in fake_slack.calls_for(TEAM_C)} == {TEAM_C}
    # saved: the installation and the bot row carry the new token, its expiry and the new
    # refresh token (the old one works only once)
    saved = store.find_installation(enterprise_id=None, team_id=TEAM_C)
    bot = store.find_bot(enterprise_id=None, team_id=TEAM_C)
    assert saved is not None and bot is not None
    assert saved.bot_token == bot.bot_token == rotated
    assert saved.bot_refresh_token == bot.bot_refresh_token != first_refresh
    assert saved.bot_token_expires_at is not None
    assert saved.bot_token_expires_at > time.time() + 3600

    # another process (a fresh cache) reads the saved token: no second rotation
    fresh = Bot(fake_slack, session_factory, store)
    try:
        assert fresh.messages.dm(ALICE, "again", team_id=TEAM_C)
    finally:
        fresh.close()
    assert len(fake_slack.calls_to("oauth.v2.access")) == 2  # the exchange and one refresh
    assert tokens(fake_slack, "chat.postMessage", text="again") == [rotated]


def test_a_token_far_from_expiry_is_not_rotated(
    oauth_bot: Bot, fake_slack: FakeSlack, store: SQLAlchemyInstallationStore
) -> None:
    code = fake_slack.add_workspace(TEAM_C, name="Team C", bot_token="xoxe.xoxb-c", refresh=True)
    answer = exchange(fake_slack, code)  # lives 12 h
    install(
        store,
        TEAM_C,
        answer["access_token"],
        refresh_token=answer["refresh_token"],
        expires_at=int(time.time()) + int(answer["expires_in"]),
    )
    assert oauth_bot.messages.dm(ALICE, "hello", team_id=TEAM_C)
    assert len(fake_slack.calls_to("oauth.v2.access")) == 1  # the exchange only
    assert tokens(fake_slack, "chat.postMessage") == ["xoxe.xoxb-c"]


def test_a_refused_rotation_sends_nothing(
    oauth_bot: Bot, fake_slack: FakeSlack, store: SQLAlchemyInstallationStore
) -> None:
    fake_slack.token_expires_in = 60
    code = fake_slack.add_workspace(TEAM_C, name="Team C", bot_token="xoxe.xoxb-c", refresh=True)
    answer = exchange(fake_slack, code)
    install(
        store,
        TEAM_C,
        answer["access_token"],
        refresh_token=answer["refresh_token"],
        expires_at=int(time.time()) + 60,
    )
    fake_slack.uninstall(TEAM_C)  # its refresh token stops working
    assert not oauth_bot.messages.dm(ALICE, "hello", team_id=TEAM_C)
    assert fake_slack.calls_to("chat.postMessage") == []


# -- Enterprise Grid ---------------------------------------------------------------------------


def test_an_org_wide_install_serves_its_workspaces(
    fake_slack: FakeSlack, session_factory: SessionFactory, store: SQLAlchemyInstallationStore
) -> None:
    fake_slack.add_workspace(
        TEAM_C, name="Team C", bot_token=TOKEN_ORG, enterprise_id=ORG, org_install=True
    )
    fake_slack.add_workspace(TEAM_A, name="Team A", bot_token=TOKEN_A)
    install(store, None, TOKEN_ORG, enterprise_id=ORG)  # org-wide: stored without a team
    install(store, TEAM_A, TOKEN_A)
    dep_c = make_dep(session_factory, TEAM_C)  # a workspace of the org
    bot = Bot(
        fake_slack,
        session_factory,
        store,
        enterprise_of=lambda team: ORG if team == TEAM_C else None,
    )
    try:
        bot.sync.changed(dep_c)
        assert bot.slack.messages.flush(5)
        assert bot.slack.messages.dm(ALICE, "in A", team_id=TEAM_A)
        assert bot.clients.client_for(TEAM_B, ORG) is not None  # any workspace of the org
        assert bot.clients.client_for(TEAM_B) is None  # not in the org, not installed
        assert tokens(fake_slack, "chat.update") == [TOKEN_ORG]
        assert tokens(fake_slack, "chat.postMessage", text="in A") == [TOKEN_A]
        store.delete_all(enterprise_id=ORG, team_id=None)  # the org uninstalls
        bot.clients.forget(None, ORG)
        assert bot.clients.client_for(TEAM_C) is None
        assert bot.clients.client_for(TEAM_A) is not None
    finally:
        bot.close()


# -- single-workspace mode ---------------------------------------------------------------------


def test_single_workspace_mode_sends_everything_with_the_one_token(
    fake_slack: FakeSlack, session_factory: SessionFactory
) -> None:
    bot = Bot(fake_slack, session_factory, None, token="xoxb-test-token")
    try:
        dep = make_dep(session_factory, TEAM_A)
        assert bot.clients.client_for(None) is bot.base
        assert bot.clients.client_for(TEAM_B) is bot.base
        bot.sync.changed(dep)
        assert bot.slack.messages.dm(ALICE, "no team named")
        assert bot.slack.messages.publish_home(ALICE, home(None))
        assert bot.slack.messages.flush(5)
        assert bot.slack.messages.team_id() is not None
        assert {token_of(c) for c in fake_slack.calls} == {"xoxb-test-token"}
        assert {c.method for c in fake_slack.calls} >= {
            "chat.update",
            "chat.postMessage",
            "views.publish",
            "auth.test",
        }
    finally:
        bot.close()


def test_the_cache_reads_the_store_once_per_workspace(
    fake_slack: FakeSlack, session_factory: SessionFactory, store: SQLAlchemyInstallationStore
) -> None:
    install(store, TEAM_A, TOKEN_A)
    reads: list[str | None] = []

    class Counting:
        def find_installation(self, **kwargs: Any) -> Installation | None:
            reads.append(kwargs.get("team_id"))
            return store.find_installation(**kwargs)

        def find_bot(self, **kwargs: Any) -> Any:
            return store.find_bot(**kwargs)

    bot = Bot(fake_slack, session_factory, Counting())
    try:
        first = bot.clients.client_for(TEAM_A)
        assert first is not None and first.token == TOKEN_A
        assert isinstance(first, CheckedWebClient)  # still checks Slack's limits
        assert bot.clients.client_for(TEAM_A) is first
        assert reads == [TEAM_A]
        bot.clients.forget(TEAM_A)
        assert bot.clients.client_for(TEAM_A) is not first
        assert reads == [TEAM_A, TEAM_A]
    finally:
        bot.close()
