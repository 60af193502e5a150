"""``/templates costs export [YYYY-MM]`` (bot/services/cost_export.py): a bot admin gets the
month's costs as a CSV file in their DM (Slack's files.getUploadURLExternal + upload +
files.completeUploadExternal), whose rows add up to ``/templates costs``; anyone else is
refused; cells are escaped against formula injection."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from bot.playground.slack_api import TEAM_ID, FakeFile
from bot.services.cost_export import COLUMNS, MonthError, escape_cell, parse_month
from tests.blockkit import texts
from tests.fixtures.slack import ALICE, BOB, BotFactory, BotHarness
from tests.test_manage import ADMIN, make_deployment


def _rows(file: FakeFile) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(file.text)))


def _shared(bot: BotHarness) -> list[FakeFile]:
    return [f for f in bot.slack.files.values() if f.channel is not None]


def test_an_admin_gets_the_months_csv_in_a_dm_matching_the_costs_report(
    bot_factory: BotFactory,
) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    mine = make_deployment(bot, ready_hours=2, dph=0.5)
    theirs = make_deployment(bot, user=BOB, ready_hours=1, dph=2.0, template=("vllm", "=vLLM"))
    make_deployment(bot, user=BOB, status="stopped", ready_hours=3, dph=1.0, disk=600)

    answer = texts(bot.command("costs export", user=ADMIN).json()["blocks"])
    month = f"{datetime.now(UTC):%Y-%m}"
    assert f"Sent you the costs of {month}" in answer and "3 deployments" in answer

    (file,) = _shared(bot)
    assert file.channel == "D" + ADMIN[1:]  # the admin's DM (conversations.open)
    assert file.filename == f"gpu-costs-{month}.csv" and "3 deployments" in (
        file.initial_comment or ""
    )
    assert file.text.splitlines()[0] == ",".join(COLUMNS)
    rows = _rows(file)
    assert [row["deployment id"] for row in rows[:2]] == [str(mine.id), str(theirs.id)]
    assert rows[1]["template"] == "'=vLLM"  # a formula is never a formula in the sheet
    assert rows[0]["GPU"] == "1x RTX 4090" and rows[0]["$/hour"] == "0.5000"
    assert rows[0]["hours ready"] == "2.00" and rows[0]["compute $"] == "1.00"
    assert rows[2]["status"] == "stopped"

    # Each person's rows add up to their line of /templates costs.
    report = bot.services.listings.month_report(TEAM_ID, datetime.now(UTC))
    by_person: dict[str, float] = {}
    for row in rows:
        by_person[row["person"]] = by_person.get(row["person"], 0.0) + float(row["total $"])
    expected = {line.user_id: line.dollars for line in report.per_user}
    assert by_person.keys() == expected.keys()
    for person, dollars in expected.items():
        assert by_person[person] == pytest.approx(dollars, abs=0.02)


def test_a_non_admin_is_refused_and_nothing_is_uploaded(bot_factory: BotFactory) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    make_deployment(bot, ready_hours=2, dph=0.5)
    payload = bot.command("costs export", user=ALICE).json()
    assert payload["response_type"] == "ephemeral"
    refused = texts(payload["blocks"])
    assert "Only bot admins can export the costs" in refused and f"<@{ADMIN}>" in refused
    assert bot.slack.calls_to("files.getUploadURLExternal") == []
    assert bot.slack.files == {}


def test_without_files_write_the_admin_is_told_to_reinstall(bot_factory: BotFactory) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    bot.slack.scopes = "commands,chat:write,chat:write.public,im:write,users:read"
    make_deployment(bot, ready_hours=1, dph=0.5)
    answer = texts(bot.command("costs export", user=ADMIN).json()["blocks"])
    assert "files:write" in answer and "Reinstall" in answer
    assert _shared(bot) == []


def test_an_earlier_month_and_a_bad_one(bot_factory: BotFactory) -> None:
    bot = bot_factory(bot_admins=ADMIN)
    make_deployment(bot, ready_hours=1, dph=0.5)  # this month: not in an earlier one
    answer = texts(bot.command("costs export 2026-01", user=ADMIN).json()["blocks"])
    assert "Sent you the costs of 2026-01" in answer and "0 deployments" in answer
    (file,) = _shared(bot)
    assert file.text.strip() == ",".join(COLUMNS)
    bad = texts(bot.command("costs export november", user=ADMIN).json()["blocks"])
    assert "is not a month" in bad and "2026-11" in bad
    assert len(_shared(bot)) == 1


def test_parse_month() -> None:
    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert parse_month("", now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_month(" 2026-11 ", now) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_month("2025-3", now) == datetime(2025, 3, 1, tzinfo=UTC)
    for text in ("2026-13", "2026-00", "nov", "2026-11-01", "2027-01"):
        with pytest.raises(MonthError):
            parse_month(text, now)


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("JupyterLab", "JupyterLab"),
        ("0.50", "0.50"),
    ],
)
def test_cells_are_escaped_against_formulas(value: str, escaped: str) -> None:
    assert escape_cell(value) == escaped
