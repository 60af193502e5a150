"""SshKeyService (bot.services.sshkeys) on a real database: outcomes and their words, the hook
that follows a change, and a pasted private key recorded nowhere (no table, no log line, DEBUG
included)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import inspect, text

from bot.services.sshkeys import KeyAct, SshKeyService
from bot.sshkeys import PRIVATE_KEY_TEXT
from storage import SessionFactory, list_audit

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TEAM, ALICE, BOB = "T0GPU0001", "U0ALICE01", "U0BOB0002"


def public_line(comment: str = "alice@laptop") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


def private_pem() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


def secret_parts(pem: str) -> list[str]:
    """Pieces of a private key that must appear nowhere: each body line, and 16-character
    slices of them."""
    lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return lines + [line[i : i + 16] for line in lines for i in range(0, len(line) - 16, 16)]


def every_value(sf: SessionFactory) -> str:
    """Every value of every table, as text."""
    with sf() as session:
        names = inspect(session.get_bind()).get_table_names()
        rows = [
            repr(tuple(row))
            for name in names
            for row in session.execute(text(f'SELECT * FROM "{name}"'))
        ]
    return "\n".join(rows)


@pytest.fixture
def changes() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def service(session_factory: SessionFactory, changes: list[tuple[str, str]]) -> SshKeyService:
    return SshKeyService(
        session_factory=session_factory,
        clock=lambda: T0,
        max_keys=2,
        on_change=lambda team, user: changes.append((team, user)),
    )


def test_add_list_again_and_remove(service: SshKeyService, changes: list[tuple[str, str]]) -> None:
    line = public_line()
    added = service.add(TEAM, ALICE, line)
    assert added.act == KeyAct.ADDED and added.ok and added.key is not None
    assert added.message == f"Added your ED25519 key {added.key.fingerprint}."
    assert added.key.public_key == " ".join(line.split()[:2])
    assert added.key.created_at == T0
    assert changes == [(TEAM, ALICE)]

    again = service.add(TEAM, ALICE, line)
    assert again.act == KeyAct.ALREADY and again.ok and again.key == added.key
    assert "already there" in again.message
    assert changes == [(TEAM, ALICE)]  # nothing changed: no hook

    assert [k.id for k in service.list_keys(TEAM, ALICE)] == [added.key.id]
    assert service.list_keys(TEAM, BOB) == []

    not_bobs = service.remove(TEAM, BOB, added.key.id)
    assert not_bobs.act == KeyAct.NOT_FOUND and not not_bobs.ok
    assert service.remove(TEAM, ALICE, None).act == KeyAct.NOT_FOUND
    assert len(service.list_keys(TEAM, ALICE)) == 1

    removed = service.remove(TEAM, ALICE, added.key.id)
    assert removed.act == KeyAct.REMOVED and removed.key == added.key
    assert removed.message == f"Removed your ED25519 key {added.key.fingerprint}."
    assert service.list_keys(TEAM, ALICE) == []
    assert changes == [(TEAM, ALICE), (TEAM, ALICE)]


def test_refusals_and_the_limit(service: SshKeyService, changes: list[tuple[str, str]]) -> None:
    refused = service.add(TEAM, ALICE, "ssh-dss AAAAB3NzaC1kc3MAAACBAOZM me")
    assert refused.act == KeyAct.REFUSED and "DSA" in refused.message
    assert service.add(TEAM, ALICE, public_line()).act == KeyAct.ADDED
    assert service.add(TEAM, ALICE, public_line()).act == KeyAct.ADDED
    full = service.add(TEAM, ALICE, public_line())
    assert full.act == KeyAct.LIMIT and "2 keys" in full.message and "Remove one" in full.message
    assert len(service.list_keys(TEAM, ALICE)) == 2
    assert len(changes) == 2


def test_a_failing_hook_does_not_undo_the_key(
    session_factory: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(team: str, user: str) -> None:
        raise RuntimeError("attach queue down")

    service = SshKeyService(session_factory=session_factory, clock=lambda: T0, on_change=broken)
    with caplog.at_level(logging.ERROR, logger="bot.services.sshkeys"):
        assert service.add(TEAM, ALICE, public_line()).act == KeyAct.ADDED
    assert len(service.list_keys(TEAM, ALICE)) == 1
    assert "change hook failed" in caplog.text


def test_a_private_key_is_refused_and_recorded_nowhere(
    service: SshKeyService,
    session_factory: SessionFactory,
    changes: list[tuple[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pem = private_pem()
    caplog.set_level(logging.DEBUG)  # every logger, DEBUG included
    outcome = service.add(TEAM, ALICE, pem)
    assert outcome.act == KeyAct.PRIVATE and not outcome.ok and outcome.key is None
    assert outcome.message == PRIVATE_KEY_TEXT
    # Also with a public key line in front of it, or as its comment.
    assert service.add(TEAM, ALICE, public_line() + "\n" + pem).act == KeyAct.PRIVATE
    body = "".join(pem.splitlines()[1:-1])
    assert service.add(TEAM, ALICE, public_line(comment=body)).act == KeyAct.PRIVATE

    assert service.list_keys(TEAM, ALICE) == [] and changes == []
    assert list_audit(session_factory, TEAM) == []
    stored = every_value(session_factory)
    logged = caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    assert "private key" in caplog.text  # the refusal is logged, without the key
    for part in secret_parts(pem):
        assert part not in stored
        assert part not in logged
        assert part not in repr(outcome)
