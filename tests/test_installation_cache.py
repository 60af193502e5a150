"""OAuth mode's installation cache: each process keeps what it found, every process sees an
install, a token rotation or an uninstall made by any other one at once (the store version).

Two "processes" are two stores built as the runtime builds them, each on its own engine, on
one database (SQLite, and PostgreSQL with ``TEST_DATABASE_URL``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from slack_bolt.context import BoltContext
from slack_bolt.listener.builtins import TokenRevocationListeners
from slack_sdk import WebClient
from slack_sdk.oauth.installation_store import Bot, Installation
from sqlalchemy import Engine, event

from bot.crypto import SecretBox
from bot.playground.slack_api import CLIENT_ID
from bot.runtime import oauth_installation_store
from bot.slack.clients import WorkspaceClients
from bot.slack.installation_cache import CachedInstallationStore
from storage import make_engine, migrate, read_installations_version

KEY = Fernet.generate_key().decode()
TEAM = "T0CACHE01"
TOKEN = "xoxb-cache-first-secret"
ROTATED = "xoxb-cache-rotated-secret"
INSTALLER = "U0INSTALL1"
USER = "U0OTHER001"


def _installation(token: str = TOKEN, team: str = TEAM) -> Installation:
    return Installation(
        app_id="A0APP0001",
        team_id=team,
        team_name="Cache",
        bot_token=token,
        bot_id="B0CACHE01",
        bot_user_id="U0BOTCACH",
        bot_scopes="commands,chat:write",
        user_id=INSTALLER,
        token_type="bot",
    )


class Queries:
    """Counts the SQL statements an engine runs on slack_sdk's installation tables."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "slack_installations" in statement or "slack_bots" in statement:
            self.count += 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engines(database_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines (two processes) on one migrated database."""
    first = make_engine(database_url)
    migrate(first)
    second = make_engine(database_url)
    try:
        yield first, second
    finally:
        first.dispose()
        second.dispose()


def _store(engine: Engine, clock: Clock | None = None) -> CachedInstallationStore:
    store = oauth_installation_store(engine, CLIENT_ID, SecretBox(KEY))
    store.ttl_seconds = 3600.0  # far longer than any test: only the version invalidates
    store.version_seconds = 0.0  # each lookup reads the version (see the test of the reuse)
    if clock is not None:
        store.clock = clock
    return store


def _find(store: CachedInstallationStore, user_id: str | None = None) -> Installation | None:
    return store.find_installation(enterprise_id=None, team_id=TEAM, user_id=user_id)


def _bot_token(store: CachedInstallationStore) -> str | None:
    found = _find(store)
    return found.bot_token if found is not None else None


def test_a_request_reads_the_installation_tables_once_then_only_the_version(
    engines: tuple[Engine, Engine],
) -> None:
    """Bolt's two lookups per request (the workspace's install, then the requesting user's,
    which is "none" for all but the installer) come from memory once read: no query on
    slack_sdk's tables, the tokens still decrypted."""
    engine, _ = engines
    store = _store(engine)
    store.save(_installation())
    queries = Queries(engine)
    for _ in range(3):
        assert _bot_token(store) == TOKEN
        assert _find(store, user_id=USER) is None  # no installation of that user's own
        installer = _find(store, user_id=INSTALLER)
        assert installer is not None and installer.bot_token == TOKEN
        bot = store.find_bot(enterprise_id=None, team_id=TEAM)
        assert bot is not None and bot.bot_token == TOKEN
    first_reads = queries.count
    assert first_reads > 0
    for _ in range(20):
        assert _bot_token(store) == TOKEN
        _find(store, user_id=USER)
        _find(store, user_id=INSTALLER)
        store.find_bot(enterprise_id=None, team_id=TEAM)
    assert queries.count == first_reads


def test_an_uninstall_in_one_process_stops_every_other_process_at_once(
    engines: tuple[Engine, Engine],
) -> None:
    """As Bolt's ``app_uninstalled`` listener does it (``delete_all``): the other process,
    which had the token in memory with an hour to go, finds nothing on its next lookup."""
    one, other = (_store(engine) for engine in engines)
    one.save(_installation())
    assert _bot_token(other) == TOKEN and _find(other, user_id=INSTALLER) is not None
    assert other.find_bot(enterprise_id=None, team_id=TEAM) is not None
    assert other.entries() == 3

    context = BoltContext(team_id=TEAM, enterprise_id=None)
    TokenRevocationListeners(one).handle_app_uninstalled_events(context)

    assert other.entries() == 3
    assert _find(other) is None
    assert other.entries() == 1  # the plain tokens read under the old version are gone
    assert _find(other, user_id=INSTALLER) is None
    assert other.find_bot(enterprise_id=None, team_id=TEAM) is None


def test_a_revoked_bot_token_is_refused_by_every_process_at_once(
    engines: tuple[Engine, Engine],
) -> None:
    """``tokens_revoked`` for the bot: Bolt's built-in deletes the bot rows (``delete_bot``)."""
    one, other = (_store(engine) for engine in engines)
    one.save(_installation())
    assert other.find_bot(enterprise_id=None, team_id=TEAM) is not None
    context = BoltContext(team_id=TEAM, enterprise_id=None)
    TokenRevocationListeners(one).handle_tokens_revoked_events(
        {"tokens": {"bot": ["U0BOTCACH"]}}, context
    )
    assert other.find_bot(enterprise_id=None, team_id=TEAM) is None


def test_a_token_rotated_in_one_process_is_served_by_every_other_at_once(
    engines: tuple[Engine, Engine],
) -> None:
    one, other = (_store(engine) for engine in engines)
    one.save(_installation())
    assert _bot_token(other) == TOKEN
    assert _bot_token(one) == TOKEN
    one.save(_installation(ROTATED))  # what a rotation saves (Bolt's authorize, WorkspaceClients)
    assert _bot_token(other) == ROTATED
    assert _bot_token(one) == ROTATED
    bot = other.find_bot(enterprise_id=None, team_id=TEAM)
    assert bot is not None and bot.bot_token == ROTATED
    one.save_bot(
        Bot(
            app_id="A0APP0001",
            team_id=TEAM,
            bot_token=TOKEN + "-again",
            bot_id="B0CACHE01",
            bot_user_id="U0BOTCACH",
            installed_at=bot.installed_at + 1,
        )
    )
    again = other.find_bot(enterprise_id=None, team_id=TEAM)
    assert again is not None and again.bot_token == TOKEN + "-again"


def test_a_fresh_install_works_at_once_where_nothing_was_found(
    engines: tuple[Engine, Engine],
) -> None:
    """ "Not installed" is kept under the version the install bumps: a workspace that installs
    right after a refused request is served on its next one, by every process."""
    one, other = (_store(engine) for engine in engines)
    assert _find(other) is None and _find(one) is None
    assert other.entries() == 1
    one.save(_installation())
    assert _bot_token(other) == TOKEN


def test_not_installed_is_kept_for_a_shorter_while(engines: tuple[Engine, Engine]) -> None:
    engine, _ = engines
    clock = Clock()
    store = _store(engine, clock)
    store.not_found_seconds = 5.0
    queries = Queries(engine)
    assert _find(store) is None
    after_first = queries.count
    clock.now += 4.0
    assert _find(store) is None
    assert queries.count == after_first
    clock.now += 2.0
    assert _find(store) is None
    assert queries.count > after_first


def test_an_entry_is_read_again_after_its_ttl(engines: tuple[Engine, Engine]) -> None:
    engine, _ = engines
    clock = Clock()
    store = _store(engine, clock)
    store.ttl_seconds = 30.0
    store.save(_installation())
    queries = Queries(engine)
    assert _bot_token(store) == TOKEN
    after_first = queries.count
    clock.now += 29.0
    assert _bot_token(store) == TOKEN
    assert queries.count == after_first
    clock.now += 2.0
    assert _bot_token(store) == TOKEN
    assert queries.count > after_first


def test_callers_get_copies_and_cannot_change_the_cache(engines: tuple[Engine, Engine]) -> None:
    engine, _ = engines
    store = _store(engine)
    store.save(_installation())
    found = _find(store)
    assert found is not None
    found.bot_token = "changed"
    again = _find(store)
    assert again is not None and again.bot_token == TOKEN
    again.bot_token = "changed too"
    assert _bot_token(store) == TOKEN


def test_every_write_gives_the_version_a_new_value(engines: tuple[Engine, Engine]) -> None:
    engine, other = engines
    store = _store(engine)
    seen = {read_installations_version(other)}
    store.save(_installation())
    seen.add(read_installations_version(other))
    store.save_bot(_installation(ROTATED).to_bot())
    seen.add(read_installations_version(other))
    store.delete_installation(enterprise_id=None, team_id=TEAM, user_id=INSTALLER)
    seen.add(read_installations_version(other))
    store.delete_bot(enterprise_id=None, team_id=TEAM)
    seen.add(read_installations_version(other))
    store.delete_all(enterprise_id=None, team_id=TEAM)
    seen.add(read_installations_version(other))
    assert len(seen) == 6 and "" in seen


def test_a_lookup_fails_as_the_store_would_when_the_database_is_gone(
    engines: tuple[Engine, Engine],
) -> None:
    """The version read is the first thing a lookup does: a database error reaches the
    caller (Bolt answers the request as unauthorized, WorkspaceClients says try again later)
    instead of a token being served from memory without the check."""
    engine, _ = engines
    store = _store(engine)
    store.save(_installation())
    assert _bot_token(store) == TOKEN

    def unreachable() -> str:
        raise ConnectionError("database unreachable")

    store.read_version = unreachable
    with pytest.raises(ConnectionError):
        _find(store)


def test_what_the_bot_sends_on_its_own_stops_in_every_process_at_once_after_an_uninstall(
    engines: tuple[Engine, Engine],
) -> None:
    """WorkspaceClients (status edits, DMs, Home tabs) keeps a workspace's token for a minute;
    with the store version it reads the store again once another process changed it."""
    one, other = (_store(engine) for engine in engines)
    one.save(_installation())
    clients = WorkspaceClients(
        WebClient(base_url="http://127.0.0.1:9/api/"),
        installation_store=other,
        store_version=lambda: read_installations_version(engines[1]),
    )
    client = clients.client_for(TEAM)
    assert client is not None and client.token == TOKEN
    assert clients.client_for(TEAM) is client  # reused while nothing changed
    one.save(_installation(ROTATED))
    rotated = clients.client_for(TEAM)
    assert rotated is not None and rotated.token == ROTATED
    TokenRevocationListeners(one).handle_app_uninstalled_events(
        BoltContext(team_id=TEAM, enterprise_id=None)
    )
    assert clients.client_for(TEAM) is None


def test_an_empty_store_is_still_a_store_to_bolt(engines: tuple[Engine, Engine]) -> None:
    """Bolt's OAuth settings replace a falsy ``installation_store`` by a default file store:
    the cached store must be truthy with nothing cached (its installs would go elsewhere)."""
    store = _store(engines[0])
    assert store.entries() == 0 and bool(store)


def test_one_version_read_serves_a_second_and_a_local_write_is_seen_at_once(
    engines: tuple[Engine, Engine],
) -> None:
    """By default a read of the version is reused for a second (Bolt's two lookups of a
    request, and the requests of that second, share it): the writing process sees its own
    change at once, every other one within that second."""
    clock = Clock()
    one, other = (_store(engine, clock) for engine in engines)
    for store in (one, other):
        store.version_seconds = 1.0
    one.save(_installation())
    assert _bot_token(other) == TOKEN and _bot_token(one) == TOKEN
    versions = Queries(engines[1])
    one.delete_all(enterprise_id=None, team_id=TEAM)
    assert _find(one) is None  # at once where it happened
    clock.now += 0.5
    assert _bot_token(other) == TOKEN  # the other process: its read is half a second old
    clock.now += 0.6
    assert _find(other) is None  # read again after a second: gone
    assert versions.count > 0
