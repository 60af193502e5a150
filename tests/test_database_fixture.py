"""The ``database_url`` fixture hands each test a database at head with no rows, although the
migrations run once per session (a copied SQLite template, a reused PostgreSQL schema): what one
test writes or changes never reaches the next. The rounds run in order in one process, so the
later rounds get what the earlier ones left behind."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text

import storage
from storage import repo
from storage.db import SessionFactory


def _new_deployment(session_factory: SessionFactory, key: str) -> int:
    record, created = repo.create_deployment(
        session_factory,
        request_key=key,
        team_id="T0GPU0001",
        user_id="U0ALICE01",
        channel_id="C0DEPLOYS1",
        template_slug="jupyter-lab",
        template_name="JupyterLab",
        offer_id=4242,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24.0,
        dph_total=0.5,
        disk_gb=60.0,
    )
    assert created
    return record.id


def _row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one())
            for name in inspect(conn).get_table_names()
            if name != "alembic_version"
        }


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_each_test_starts_at_head_with_no_rows_and_ids_from_one(
    engine: Engine, session_factory: SessionFactory, round_: int
) -> None:
    assert storage.current_revision(engine) == storage.head_revision() is not None
    counts = _row_counts(engine)
    assert counts and set(counts.values()) == {0}, counts
    # Ids start at 1 as after a fresh migration (PostgreSQL's sequences are restarted).
    assert _new_deployment(session_factory, f"round-{round_}-a") == 1
    assert _new_deployment(session_factory, f"round-{round_}-b") == 2
    if round_ == 2:
        # A test that changes the schema's shape: the next test must not see the column.
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE deployments ADD COLUMN left_by_a_test INTEGER"))
    columns = {column["name"] for column in inspect(engine).get_columns("deployments")}
    assert ("left_by_a_test" in columns) is (round_ == 2)


@pytest.mark.parametrize("round_", [1, 2])
def test_the_empty_database_has_no_tables(empty_database_url: str, round_: int) -> None:
    engine = storage.make_engine(empty_database_url)
    try:
        assert inspect(engine).get_table_names() == []
        if round_ == 1:
            storage.migrate(engine)
    finally:
        engine.dispose()
