"""People's SSH keys in the database (storage.ssh_keys), on SQLite and PostgreSQL: add is
idempotent per (workspace, person, fingerprint), bounded per person, and every read and remove
is scoped to the person in their workspace; adds and removes are in the audit log."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

import storage
from storage import SessionFactory, SshKeyAddOutcome

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TEAM_A, TEAM_B = "T0AAAAAAA", "T0BBBBBBB"
ALICE, BOB = "U0ALICE01", "U0BOB0002"
KEY_1 = ("ssh-ed25519", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMri", "SHA256:one")
KEY_2 = ("ssh-rsa", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCg", "SHA256:two")
KEY_3 = ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256 AAAAE2Vj", "SHA256:three")


def _add(
    sf: SessionFactory,
    key: tuple[str, str, str],
    *,
    team: str = TEAM_A,
    user: str = ALICE,
    comment: str | None = "alice@laptop",
    limit: int = 20,
    now: datetime = T0,
) -> storage.SshKeyAddResult:
    key_type, public_key, fingerprint = key
    return storage.add_ssh_key(
        sf,
        team_id=team,
        user_id=user,
        key_type=key_type,
        public_key=public_key,
        fingerprint=fingerprint,
        comment=comment,
        limit=limit,
        now=now,
    )


def _audit(sf: SessionFactory, team: str) -> list[tuple[str, str, str | None]]:
    return [(a.actor, a.action, a.detail) for a in reversed(storage.list_audit(sf, team))]


def test_add_list_and_add_again(session_factory: SessionFactory) -> None:
    sf = session_factory
    added = _add(sf, KEY_1)
    assert added.outcome == SshKeyAddOutcome.ADDED and added.count == 1
    assert added.key is not None
    assert (added.key.team_id, added.key.user_id, added.key.fingerprint) == (
        TEAM_A,
        ALICE,
        "SHA256:one",
    )
    assert added.key.created_at == T0 and added.key.comment == "alice@laptop"

    again = _add(sf, KEY_1, comment="another comment", now=T0 + timedelta(hours=1))
    assert again.outcome == SshKeyAddOutcome.ALREADY and again.count == 1
    assert again.key == added.key  # unchanged: same id, comment and date

    second = _add(sf, KEY_2, comment=None, now=T0 + timedelta(minutes=5))
    assert second.outcome == SshKeyAddOutcome.ADDED and second.count == 2
    keys = storage.list_ssh_keys(sf, TEAM_A, ALICE)
    assert [k.fingerprint for k in keys] == ["SHA256:one", "SHA256:two"]  # oldest first
    assert keys[1].comment is None and keys[1].public_key == KEY_2[1]
    assert storage.count_ssh_keys(sf, TEAM_A, ALICE) == 2


def test_keys_are_per_person_and_per_workspace(session_factory: SessionFactory) -> None:
    sf = session_factory
    assert _add(sf, KEY_1).outcome == SshKeyAddOutcome.ADDED
    # The same key for another person, or for Alice in another workspace, is its own row.
    assert _add(sf, KEY_1, user=BOB).outcome == SshKeyAddOutcome.ADDED
    assert _add(sf, KEY_1, team=TEAM_B).outcome == SshKeyAddOutcome.ADDED
    assert len(storage.list_ssh_keys(sf, TEAM_A, ALICE)) == 1
    assert len(storage.list_ssh_keys(sf, TEAM_A, BOB)) == 1
    assert len(storage.list_ssh_keys(sf, TEAM_B, ALICE)) == 1
    assert storage.list_ssh_keys(sf, TEAM_B, BOB) == []


def test_limit_per_person(session_factory: SessionFactory) -> None:
    sf = session_factory
    assert _add(sf, KEY_1, limit=2).outcome == SshKeyAddOutcome.ADDED
    assert _add(sf, KEY_2, limit=2).outcome == SshKeyAddOutcome.ADDED
    full = _add(sf, KEY_3, limit=2)
    assert full.outcome == SshKeyAddOutcome.LIMIT and full.key is None and full.count == 2
    # A key already there is still "already there" at the limit, and others are not counted.
    assert _add(sf, KEY_1, limit=2).outcome == SshKeyAddOutcome.ALREADY
    assert _add(sf, KEY_3, user=BOB, limit=2).outcome == SshKeyAddOutcome.ADDED
    assert [k.fingerprint for k in storage.list_ssh_keys(sf, TEAM_A, ALICE)] == [
        "SHA256:one",
        "SHA256:two",
    ]


def test_remove_is_scoped_to_the_person_in_the_workspace(session_factory: SessionFactory) -> None:
    sf = session_factory
    mine = _add(sf, KEY_1).key
    assert mine is not None
    # Bob, or Alice acting in another workspace, cannot remove or read Alice's key by its id.
    assert storage.remove_ssh_key(sf, TEAM_A, BOB, mine.id) is None
    assert storage.remove_ssh_key(sf, TEAM_B, ALICE, mine.id) is None
    assert storage.get_ssh_key(sf, TEAM_A, BOB, mine.id) is None
    assert storage.get_ssh_key(sf, TEAM_A, ALICE, mine.id) == mine
    for bad in (0, -1, 2**31, 10**30):
        assert storage.remove_ssh_key(sf, TEAM_A, ALICE, bad) is None
        assert storage.get_ssh_key(sf, TEAM_A, ALICE, bad) is None
    assert storage.list_ssh_keys(sf, TEAM_A, ALICE) == [mine]

    removed = storage.remove_ssh_key(sf, TEAM_A, ALICE, mine.id, now=T0 + timedelta(hours=2))
    assert removed == mine
    assert storage.list_ssh_keys(sf, TEAM_A, ALICE) == []
    assert storage.remove_ssh_key(sf, TEAM_A, ALICE, mine.id) is None  # twice: nothing
    # Removed, it can be added again.
    assert _add(sf, KEY_1).outcome == SshKeyAddOutcome.ADDED


def test_adds_and_removes_are_in_the_audit_log(session_factory: SessionFactory) -> None:
    sf = session_factory
    key = _add(sf, KEY_1, comment="<!channel> hi").key
    assert key is not None
    _add(sf, KEY_1)  # already there: no second event
    _add(sf, KEY_2, limit=1)  # over the limit: no event
    storage.remove_ssh_key(sf, TEAM_A, BOB, key.id)  # not Bob's: no event
    storage.remove_ssh_key(sf, TEAM_A, ALICE, key.id, now=T0 + timedelta(minutes=1))
    assert _audit(sf, TEAM_A) == [
        (ALICE, "ssh_key_added", "ssh-ed25519 SHA256:one"),
        (ALICE, "ssh_key_removed", "ssh-ed25519 SHA256:one"),
    ]
    assert _audit(sf, TEAM_B) == []


def test_the_same_key_added_at_once_is_stored_once(
    session_factory: SessionFactory, database_url: str
) -> None:
    sf = session_factory
    engines = [storage.make_engine(database_url) for _ in range(4)]
    try:
        factories = [storage.make_session_factory(engine) for engine in engines]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda f: _add(f, KEY_1), factories))
    finally:
        for engine in engines:
            engine.dispose()
    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["added", "already", "already", "already"]
    assert len({r.key.id for r in results if r.key is not None}) == 1
    assert len(storage.list_ssh_keys(sf, TEAM_A, ALICE)) == 1
    assert [a for a in _audit(sf, TEAM_A) if a[1] == "ssh_key_added"] == [
        (ALICE, "ssh_key_added", "ssh-ed25519 SHA256:one")
    ]


@pytest.mark.parametrize("comment", ["é" * 200, "🔑" * 200])
def test_a_comment_of_200_characters_fits(session_factory: SessionFactory, comment: str) -> None:
    added = _add(session_factory, KEY_1, comment=comment)
    assert added.key is not None
    assert storage.list_ssh_keys(session_factory, TEAM_A, ALICE)[0].comment == comment
