"""The ``database_url`` fixture hands each test a database at head with no rows, although the
migrations run once per session (a copied SQLite template, a reused PostgreSQL schema): what one
test writes or changes never reaches the next. The PostgreSQL schemas are lent and given back
here by hand, as the fixture does between two tests (pytest-xdist may run two tests in a row in
different processes, so the reuse is checked within one test)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect, text

import storage
from storage.db import SessionFactory
from tests.factories import new_deployment
from tests.fixtures.storage import TEST_DATABASE_URL, MigratedSchemas


def _row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one())
            for name in inspect(conn).get_table_names()
            if name != "alembic_version"
        }


def _write_two(session_factory: SessionFactory) -> list[int]:
    return [new_deployment(session_factory).id for _ in range(2)]


def test_a_test_starts_at_head_with_no_rows_and_ids_from_one(
    engine: Engine, session_factory: SessionFactory
) -> None:
    assert storage.current_revision(engine) == storage.head_revision() is not None
    counts = _row_counts(engine)
    assert counts and set(counts.values()) == {0}, counts
    assert _write_two(session_factory) == [1, 2]


def _check_fresh(url: str) -> list[int]:
    """Assert the schema at ``url`` is at head with no rows; write two rows; return their ids."""
    engine = storage.make_engine(url)
    try:
        assert storage.current_revision(engine) == storage.head_revision()
        counts = _row_counts(engine)
        assert counts and set(counts.values()) == {0}, counts
        return _write_two(storage.make_session_factory(engine))
    finally:
        engine.dispose()


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="TEST_DATABASE_URL is not set (PostgreSQL)")
def test_a_schema_given_back_is_emptied_and_one_whose_shape_changed_is_replaced(
    _postgres_migrated: MigratedSchemas,
) -> None:
    schemas = _postgres_migrated
    first = schemas.take()
    assert _check_fresh(schemas.url(first)) == [1, 2]
    # A test that leaves a connection open in a transaction: the schema is emptied all the same.
    leftover_engine = storage.make_engine(schemas.url(first))
    leftover = leftover_engine.connect()
    leftover.execute(text("SELECT count(*) FROM deployments"))
    schemas.give_back(first)
    leftover.invalidate()  # its server process was ended
    leftover_engine.dispose()

    again = schemas.take()
    assert again == first  # reused, not migrated again
    assert _check_fresh(schemas.url(again)) == [1, 2]  # no rows, sequences restarted
    engine = storage.make_engine(schemas.url(again))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE deployments ADD COLUMN left_by_a_test INTEGER"))
    engine.dispose()
    schemas.give_back(again)

    replaced = schemas.take()
    try:
        assert replaced != first  # the changed schema was dropped
        engine = storage.make_engine(schemas.url(replaced))
        columns = {column["name"] for column in inspect(engine).get_columns("deployments")}
        engine.dispose()
        assert "left_by_a_test" not in columns
        assert _check_fresh(schemas.url(replaced)) == [1, 2]
    finally:
        schemas.give_back(replaced)


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="TEST_DATABASE_URL is not set (PostgreSQL)")
def test_a_schema_whose_sequence_a_test_altered_is_replaced(
    _postgres_migrated: MigratedSchemas,
) -> None:
    schemas = _postgres_migrated
    altered = schemas.take()
    engine = storage.make_engine(schemas.url(altered))
    with engine.begin() as conn:
        conn.execute(text("ALTER SEQUENCE deployments_id_seq INCREMENT BY 10"))
    engine.dispose()
    schemas.give_back(altered)
    next_one = schemas.take()
    try:
        assert _check_fresh(schemas.url(next_one)) == [1, 2]
    finally:
        schemas.give_back(next_one)


def test_the_empty_database_has_no_tables(empty_database_url: str) -> None:
    engine = storage.make_engine(empty_database_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
