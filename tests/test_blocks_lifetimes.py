"""Block Kit builders for lifetimes, idle GPUs, reminders, the digest and unmanaged instances,
plus the end-time line in the status message, listings, Home and the picker's **Run for**
(called directly: no Slack, no database)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.services.ports import (
    AutoAction,
    DigestData,
    DigestLine,
    ExpiryNotice,
    IdleNotice,
    Reminder,
    UnmanagedInstance,
)
from bot.slack.blocks import lifetimes as lt
from bot.slack.blocks import picker
from bot.slack.blocks.home import home_view
from bot.slack.blocks.manage import LIST_MINE, LIST_RUNNING, deployment_list_message
from bot.slack.blocks.status import (
    ACTION_DESTROY,
    ACTION_START,
    ACTION_STOP,
    deployment_buttons,
    destroy_button,
    status_message,
    visible_key,
)
from catalog import RankedOffer, Template
from storage import DeploymentRecord, DeploymentStatus
from tests.blockkit import buttons, texts

NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
DATE = re.compile(r"<!date\^(\d+)\^([^^|>]+)\|([^>]+)>")


def make_dep(
    *,
    id: int = 12,
    status: DeploymentStatus = DeploymentStatus.READY,
    ready_hours: float = 2.0,
    dph: float = 0.5,
    disk: float = 60,
    ends_in: timedelta | None = timedelta(minutes=30),
    instance_id: int | None = 777,
    name: str = "JupyterLab",
    user: str = "U0ALICE01",
    stopped_hours: float = 0.0,
) -> DeploymentRecord:
    """A deployment ``ready`` (or ``status``) for ``ready_hours`` at ``dph`` $/h, ending
    ``ends_in`` after :data:`NOW` (None: no end)."""
    created = NOW - timedelta(hours=ready_hours + stopped_hours, minutes=10)
    ready_at = created + timedelta(minutes=10)
    stopped = status == DeploymentStatus.STOPPED
    return DeploymentRecord(
        id=id,
        team_id="T0GPU0001",
        user_id=user,
        channel_id="C0DEPLOYS1",
        message_channel="C0DEPLOYS1",
        message_ts="1732900000.900012",
        template_slug="jupyter-lab",
        template_name=name,
        offer_id=1,
        instance_id=instance_id,
        gpu_name="RTX 4090",
        num_gpus=1,
        gpu_ram_gb=24,
        dph_total=dph,
        disk_gb=disk,
        status=status,
        reason=None,
        status_msg=None,
        request_key=f"key-{id}",
        simulated=False,
        web_password=None,
        public_ip="203.0.113.7",
        ports_json=None,
        ssh_host=None,
        ssh_port=None,
        created_at=created,
        updated_at=NOW,
        provisioning_at=created,
        ready_at=ready_at,
        ready_notified_at=ready_at,
        secrets_sent_at=None,
        stopped_at=NOW - timedelta(hours=stopped_hours) if stopped else None,
        destroyed_at=None,
        failed_at=None,
        # Closed periods are accumulated; the open one is counted from last_state_change_at.
        ready_seconds=ready_hours * 3600 if stopped else 0.0,
        stopped_seconds=0.0,
        last_state_change_at=NOW - timedelta(hours=stopped_hours if stopped else ready_hours),
        version=3,
        lifetime_hours=8.0 if ends_in is not None else None,
        lifetime_started_at=created if ends_in is not None else None,
        ends_at=NOW + ends_in if ends_in is not None else None,
    )


def check_blocks(blocks: list[dict[str, Any]], *, max_blocks: int = 50) -> None:
    """Slack's limits on built blocks: slack_sdk re-parses and re-validates each one; plus
    what it does not check (block count, unique block ids and per-block action ids, date
    tokens well formed)."""
    assert len(blocks) <= max_blocks
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), block_ids
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None and block.to_dict() == raw  # validates its own limits
        if raw["type"] == "section" and "text" in raw:
            assert len(raw["text"]["text"]) <= 3000
        if raw["type"] == "header":
            assert len(raw["text"]["text"]) <= 150
        if raw["type"] == "context":
            assert len(raw["elements"]) <= 10
        if raw["type"] == "actions":
            ids = [e["action_id"] for e in raw["elements"]]
            assert len(ids) == len(set(ids)), ids  # Slack: invalid_blocks otherwise
            assert len(ids) <= 25
    for button in buttons(blocks):
        assert len(button["text"]["text"]) <= 75
        assert len(button.get("value", "")) <= 2000
    text = texts(blocks)
    for start in [m.start() for m in re.finditer(r"<!date", text)]:
        assert DATE.match(text, start), text[start : start + 80]


def check_message(payload: dict[str, Any]) -> None:
    assert set(payload) == {"text", "blocks"}
    assert payload["text"] and len(payload["text"]) <= 4000
    assert "<!date" not in payload["text"]  # notifications show the fallback text raw
    check_blocks(payload["blocks"])


def by_action(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["action_id"]: b for b in buttons(payload["blocks"])}


def expiry_notice(dep: DeploymentRecord, **overrides: Any) -> ExpiryNotice:
    assert dep.ends_at is not None
    values: dict[str, Any] = {
        "ends_at": dep.ends_at,
        "action": "stop",
        "cost_by_end": 1.25,
        "extend_hours": (2, 8),
        "needs_admin": frozenset(),
        "admins": frozenset({"U0ADMIN01"}),
    }
    values.update(overrides)
    return ExpiryNotice(**values)


# --- times and values ----------------------------------------------------------------------


def test_slack_date_renders_the_epoch_token_and_a_utc_fallback() -> None:
    when = datetime(2026, 12, 2, 18, 30, 59, 999_999, tzinfo=UTC)
    text = lt.slack_date(when)
    match = DATE.fullmatch(text)
    assert match is not None
    assert int(match.group(1)) == int(when.timestamp())  # whole seconds, rounded down
    assert match.group(2) == "{date_short_pretty} at {time}"
    assert match.group(3) == "Dec 2, 18:30 UTC"
    assert lt.slack_date(when, "{time}").startswith(f"<!date^{match.group(1)}^{{time}}|")
    # Another zone is the same instant; a naive time is taken as UTC.
    tokyo = when.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert lt.slack_date(tokyo) == text
    assert lt.slack_date(when.replace(tzinfo=None)) == text
    with pytest.raises(ValueError):
        lt.slack_date(when, "{time}|x")


@pytest.mark.parametrize(
    "when",
    [
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 2, 18, 30, 59, 999_999, tzinfo=UTC),
        datetime(2038, 1, 19, 3, 14, 8, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
)
def test_micros_is_exact_and_round_trips(when: datetime) -> None:
    value = lt.micros(when)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    assert value == (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    assert lt.from_micros(value) == when


def test_extend_and_keep_values_round_trip() -> None:
    ends = datetime(2026, 12, 2, 18, 30, 0, 123_456, tzinfo=UTC)
    value = lt.extend_value(12, 8, ends)
    assert lt.parse_extend_value(value) == (12, 8, lt.micros(ends))
    assert lt.from_micros(lt.parse_extend_value(value)[2]) == ends  # type: ignore[index]
    warned = datetime(2026, 12, 2, 17, 0, 0, 999_999, tzinfo=UTC)
    assert lt.parse_keep_value(lt.keep_value(7, warned)) == (7, lt.micros(warned))
    assert lt.ACTION_EXTEND_PATTERN.match(lt.extend_action_id(8))
    assert lt.ACTION_EXTEND_PATTERN.match(lt.ACTION_EXTEND)
    assert not lt.ACTION_EXTEND_PATTERN.match("lifetime_extend:8:x")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "12",
        "12:8",
        "12:8:",
        ":8:1",
        "a:8:1",
        "0:8:1",
        "12:0:1",
        "12:-8:1",
        "-12:8:1",
        "12:8:1:4",
        " 12:8:1",
        "12:8:1\n",
        "12:8:1.5",
        "١٢:8:1",  # Arabic-Indic digits: int() would take them, the regex must not
        "12:99999:1",
        "12:8:" + "9" * 19,
        "12:8:999999999999999999",  # past year 9999
        "9" * 20 + ":8:1",
        "2147483648:8:1",  # past the id column (INTEGER): the database would raise
        "12:8:1 OR 1=1",
    ],
)
def test_malformed_extend_values_are_rejected(value: str) -> None:
    assert lt.parse_extend_value(value) is None


@pytest.mark.parametrize(
    "value",
    ["", "12", "12:", ":1", "0:1", "12:1:2", "12:x", "12:1 ", "12:" + "9" * 19, "٣:1",
     "2147483648:1"],
)  # fmt: skip
def test_malformed_keep_values_are_rejected(value: str) -> None:
    assert lt.parse_keep_value(value) is None


def test_parsers_reject_non_strings() -> None:
    assert lt.parse_extend_value(None) is None  # type: ignore[arg-type]
    assert lt.parse_keep_value(12) is None  # type: ignore[arg-type]


# --- the end-time line ---------------------------------------------------------------------


def test_ends_line_adds_the_remaining_hours_to_the_cost_so_far() -> None:
    dep = make_dep(ready_hours=2, dph=0.5, ends_in=timedelta(hours=3))
    line = lt.ends_line(dep, NOW)
    assert line is not None
    # 2 h ready × $0.50 = $1.00 so far, + 3 h × $0.50 = $2.50 by the end.
    assert line.startswith(":alarm_clock: Stops at <!date^")
    assert line.endswith("· ≈ $2.50 by then")
    assert lt.cost_by_end(dep, NOW) == pytest.approx(2.5)
    assert "Destroyed at <!date^" in (lt.ends_line(dep, NOW, action="destroy") or "")
    epoch = int(DATE.search(line).group(1))  # type: ignore[union-attr]
    assert epoch == int((NOW + timedelta(hours=3)).timestamp())


def test_ends_line_never_counts_negative_hours() -> None:
    late = make_dep(ready_hours=2, dph=0.5, ends_in=timedelta(minutes=-20))
    assert "≈ $1.00 by then" in (lt.ends_line(late, NOW) or "")


def test_ends_line_by_state() -> None:
    assert lt.ends_line(make_dep(ends_in=None), NOW) == ":infinity: Runs until someone stops it"
    provisioning = make_dep(status=DeploymentStatus.PROVISIONING, ends_in=timedelta(hours=8))
    assert "≈ $4.00 by then" in (lt.ends_line(provisioning, NOW) or "")  # nothing spent yet
    for status in (DeploymentStatus.STOPPED, DeploymentStatus.DESTROYED, DeploymentStatus.FAILED):
        assert lt.ends_line(make_dep(status=status), NOW) is None


def test_status_message_shows_the_end_and_redraws_when_it_moves() -> None:
    dep = make_dep(ends_in=timedelta(hours=3))
    payload = status_message(dep, None, now=NOW)
    check_message(payload)
    ends = next(b for b in payload["blocks"] if b.get("block_id") == f"dep_ends_{dep.id}")
    assert ends["type"] == "context"
    assert "Stops at <!date^" in ends["elements"][0]["text"]
    destroying = status_message(dep, None, now=NOW, expiry_action="destroy")
    assert "Destroyed at" in texts(destroying["blocks"])

    assert dep.ends_at is not None
    extended = replace(dep, ends_at=dep.ends_at + timedelta(hours=2))
    assert visible_key(extended, now=NOW) != visible_key(dep, now=NOW)
    assert visible_key(replace(dep), now=NOW + timedelta(minutes=7)) == visible_key(dep, now=NOW)
    stopped = status_message(make_dep(status=DeploymentStatus.STOPPED), None, now=NOW)
    assert not any(b.get("block_id", "").startswith("dep_ends_") for b in stopped["blocks"])


def test_destroy_button_is_shared_and_always_confirmed() -> None:
    dep = make_dep()
    button = destroy_button(dep, NOW)
    assert button is not None
    raw = button.to_dict()
    assert raw["action_id"] == ACTION_DESTROY and raw["value"] == "12"
    assert "cost so far $1.00. This cannot be undone" in raw["confirm"]["text"]["text"]
    assert deployment_buttons(dep, NOW)[-1].to_dict() == raw
    assert destroy_button(make_dep(instance_id=None), NOW) is None
    assert destroy_button(make_dep(status=DeploymentStatus.DESTROYED), NOW) is None


# --- the expiry warning ---------------------------------------------------------------------


def test_expiry_warning_offers_extensions_stop_and_destroy() -> None:
    dep = make_dep(ends_in=timedelta(minutes=29, seconds=30))
    notice = expiry_notice(dep, needs_admin=frozenset({8}), admins=frozenset({"U0B", "U0A"}))
    payload = lt.expiry_warning_message(dep, notice, now=NOW)
    check_message(payload)
    text = texts(payload["blocks"])
    assert text.startswith(":hourglass: *JupyterLab* (#12) on 1× RTX 4090 stops at <!date^")
    assert "(in 30 min)" in text and "the bot will stop it (the disk is kept" in text
    assert "≈ $1.25 by then." in text
    assert "Extending past the maximum needs a bot admin: <@U0A>, <@U0B>" in text

    found = by_action(payload)
    two, eight = found[lt.extend_action_id(2)], found[lt.extend_action_id(8)]
    assert two["text"]["text"] == "Extend 2 h" and two["style"] == "primary"
    assert eight["text"]["text"] == "Extend 8 h (admin)" and "style" not in eight
    assert lt.parse_extend_value(eight["value"]) == (12, 8, lt.micros(notice.ends_at))
    assert found[ACTION_STOP]["text"]["text"] == "Stop now" and found[ACTION_STOP]["value"] == "12"
    assert "confirm" in found[ACTION_DESTROY] and found[ACTION_DESTROY]["value"] == "12"
    assert "Dec 2, 18:29 UTC" in payload["text"]


def test_expiry_warning_destroy_variant_and_no_admins() -> None:
    dep = make_dep()
    notice = expiry_notice(dep, action="destroy", needs_admin=frozenset({2, 8}), admins=frozenset())
    payload = lt.expiry_warning_message(dep, notice, now=NOW)
    check_message(payload)
    text = texts(payload["blocks"])
    assert "ends at <!date^" in text and "the bot will destroy it with its disk" in text
    assert "no bot admins are configured (`BOT_ADMINS`)" in text
    assert all("style" not in b for b in buttons(payload["blocks"]) if "Extend" in str(b))
    # Without an admin-only extension there is no admin line.
    plain = lt.expiry_warning_message(dep, expiry_notice(dep), now=NOW)
    assert "bot admin" not in texts(plain["blocks"])


def test_expiry_note_is_one_section_with_the_same_buttons() -> None:
    dep = make_dep()
    notice = expiry_notice(dep)
    note = lt.expiry_note_message(dep, notice, now=NOW)
    check_message(note)
    assert [b["type"] for b in note["blocks"]] == ["section", "actions"]
    assert note["blocks"][0]["text"]["text"].startswith(":hourglass: Stops at <!date^")
    dm = lt.expiry_warning_message(dep, notice, now=NOW)
    strip = [{k: v for k, v in b.items()} for b in buttons(dm["blocks"])]
    assert buttons(note["blocks"]) == strip


def test_expiry_warning_while_provisioning_has_no_stop() -> None:
    dep = make_dep(status=DeploymentStatus.PROVISIONING)
    payload = lt.expiry_warning_message(dep, expiry_notice(dep), now=NOW)
    check_message(payload)
    assert ACTION_STOP not in by_action(payload)


# --- the idle warning -----------------------------------------------------------------------


def test_idle_warning_asks_with_keep_running_stop_and_destroy() -> None:
    dep = make_dep(ready_hours=4.2)
    warned = NOW - timedelta(seconds=3, microseconds=17)
    notice = IdleNotice(
        idle_since=NOW - timedelta(hours=1, minutes=2),
        warned_at=warned,
        gpu_util=2.4,
        cost_so_far=2.1,
        acts_at=NOW + timedelta(minutes=30),
        action="stop",
        snooze_hours=4,
    )
    payload = lt.idle_warning_message(dep, notice, now=NOW)
    check_message(payload)
    text = texts(payload["blocks"])
    assert text.startswith(
        ":zzz: The GPU of *JupyterLab* (#12) has been idle for 1 h 2 min (GPU 2 %), $2.10 so far."
    )
    assert "Unless you answer, the bot stops it at <!date^" in text
    assert "no idle checks for the next 4 h" in text
    found = by_action(payload)
    keep = found[lt.ACTION_KEEP_RUNNING]
    assert keep["style"] == "primary" and keep["text"]["text"] == "Keep running"
    assert lt.parse_keep_value(keep["value"]) == (12, lt.micros(warned))
    assert found[ACTION_STOP]["value"] == "12" and "confirm" in found[ACTION_DESTROY]
    destroying = lt.idle_warning_message(dep, replace(notice, action="destroy"), now=NOW)
    assert "the bot destroys it (and its disk) at" in texts(destroying["blocks"])


# --- automatic actions and reminders --------------------------------------------------------


def test_auto_action_texts() -> None:
    dep = make_dep(status=DeploymentStatus.STOPPED)
    stopped = lt.auto_action_text(dep, AutoAction("stop", "expiry", 0.3, 12.4))
    assert stopped == (
        ":double_vertical_bar: Stopped automatically: its lifetime ended. *JupyterLab* (#12) "
        "keeps its disk, so no work is lost; it still costs about $0.30/day. *Start* brings it "
        "back. Total so far $12.40."
    )
    idle = lt.auto_action_text(dep, AutoAction("stop", "idle", None, 1))
    assert "its GPU was idle and nobody answered" in idle and "still bills a little" in idle
    gone = lt.auto_action_text(dep, AutoAction("destroy", "expiry", None, 12.4))
    assert gone == (
        ":wastebasket: Destroyed automatically: its lifetime ended. The instance of *JupyterLab* "
        "(#12) and its disk are gone; billing has stopped. Total $12.40."
    )
    odd = lt.auto_action_text(dep, AutoAction("stop", "???", 0.3, 1))
    assert odd.startswith(":double_vertical_bar: Stopped automatically. *JupyterLab*")
    message = lt.auto_action_message(dep, AutoAction("stop", "idle", 0.3, 1), now=NOW)
    check_message(message)
    assert set(by_action(message)) == {ACTION_START, ACTION_DESTROY}


def test_stopped_reminder_offers_start_and_destroy() -> None:
    dep = make_dep(status=DeploymentStatus.STOPPED, stopped_hours=96)
    reminder = Reminder("stopped", NOW - timedelta(days=4), 1.2, 9.0)
    payload = lt.reminder_message(dep, reminder, now=NOW)
    check_message(payload)
    assert texts(payload["blocks"]).startswith(
        ":floppy_disk: *JupyterLab* (#12) has been stopped for 4 days and still pays for its "
        "60 GB disk: $1.20 so far, about $9.00/month."
    )
    found = by_action(payload)
    assert list(found) == [ACTION_START, ACTION_DESTROY]
    assert found[ACTION_START]["style"] == "primary"


def test_running_reminder_offers_stop_and_destroy_with_the_end() -> None:
    dep = make_dep(id=7, name="vLLM", ready_hours=27, ends_in=timedelta(hours=5))
    payload = lt.reminder_message(
        dep, Reminder("running", NOW - timedelta(hours=27), 30.1, None), now=NOW
    )
    check_message(payload)
    text = texts(payload["blocks"])
    assert text.startswith(":stopwatch: *vLLM* (#7) has been running for 1 d 3 h, $30.10 so far.")
    assert "\n:alarm_clock: Stops at <!date^" in text
    assert list(by_action(payload)) == [ACTION_STOP, ACTION_DESTROY]


# --- the digest -----------------------------------------------------------------------------


def digest(running: int, stopped: int, spenders: int, unmanaged: int) -> DigestData:
    return DigestData(
        now=NOW,
        tz="Europe/Berlin",
        running=[
            DigestLine(make_dep(id=i + 1, name="T" * 80, ends_in=timedelta(hours=i % 5)), 1.85)
            for i in range(running)
        ],
        stopped=[
            DigestLine(make_dep(id=1000 + i, status=DeploymentStatus.STOPPED, stopped_hours=5), 3)
            for i in range(stopped)
        ],
        spend=[(f"U{i:08d}", 100.0 - i / 10) for i in range(spenders)],
        month_label="December 2026",
        unmanaged=[UnmanagedInstance(i, "RTX 4090", 1, 0.55, "running") for i in range(unmanaged)],
    )


def test_empty_digest_says_nothing_is_running() -> None:
    payload = lt.digest_message(digest(0, 0, 0, 0))
    check_message(payload)
    assert payload["blocks"][0]["type"] == "header"
    assert payload["blocks"][0]["text"]["text"] == "GPU digest · Wed, Dec 2"
    text = texts(payload["blocks"])
    assert "Nothing is running." in text and "Stopped" not in text and "Unmanaged" not in text
    assert "*This month (December 2026)* · $0.00\nNothing spent yet." in text


def test_digest_lines_are_scannable() -> None:
    payload = lt.digest_message(digest(2, 1, 3, 2))
    check_message(payload)
    text = texts(payload["blocks"])
    assert "*Running (2) · $1.00/h*" in text
    assert re.search(
        r"<@U0ALICE01> · \*T{59}…\* #1 · 1× RTX 4090 · \$0\.50/h · up 2 h · stops <!date\^\d+\^"
        r"[^|]+\|[^>]+> · \$1\.85",
        text,
    )
    assert "*Stopped (1) · disk $0.30/day*" in text and "60 GB disk · stopped 5 h" in text
    assert "<@U00000000> $100.00 · <@U00000001> $99.90 · <@U00000002> $99.80" in text
    assert "Unmanaged: 2 instances, $1.10/h (rented outside the bot; never touched by it)" in text


@pytest.mark.parametrize("count", [1, 30, 31, 300])
def test_long_digests_stay_within_limits_and_count_the_rest(count: int) -> None:
    payload = lt.digest_message(digest(count, count, count, count))
    check_message(payload)
    assert len(payload["blocks"]) <= 25
    text = texts(payload["blocks"])
    shown_running = len(re.findall(r"\* #\d+ · 1× RTX 4090", text))
    shown_stopped = len(re.findall(r"GB disk · stopped", text))
    for shown in (shown_running, shown_stopped):
        assert 1 <= shown <= lt.MAX_DIGEST_LINES
        if shown < count:
            assert f"…and {count - shown} more" in text
    assert len(json.dumps(payload)) < 40_000


def test_digest_with_a_bad_time_zone_falls_back_to_utc() -> None:
    payload = lt.digest_message(replace(digest(0, 0, 0, 0), tz="Not/AZone"))
    assert payload["blocks"][0]["text"]["text"] == "GPU digest · Wed, Dec 2"


# --- unmanaged instances --------------------------------------------------------------------

UNMANAGED = [
    UnmanagedInstance(123, "RTX 4090", 1, 0.40, "running"),
    UnmanagedInstance(124, "A100 SXM4", 2, 0.70, "exited"),
]


def test_unmanaged_text() -> None:
    assert lt.unmanaged_text([]) is None
    assert lt.unmanaged_text(UNMANAGED) == (
        ":warning: Unmanaged: 2 instances, $1.10/h — rented outside the bot, which never stops "
        "or destroys them: #123 1× RTX 4090 $0.40/h running, #124 2× A100 SXM4 $0.70/h exited"
    )
    huge = [UnmanagedInstance(i, "G" * 500, 8, 9.5, "s" * 500) for i in range(99)]
    many = lt.unmanaged_text(huge)
    assert many is not None and len(many) <= 3000 and "…and 79 more" in many


def test_listing_and_home_show_unmanaged_to_whoever_gets_them() -> None:
    deps = [make_dep(id=i, ends_in=timedelta(hours=i)) for i in range(1, 12)]
    running = deployment_list_message(
        LIST_RUNNING, deps, now=NOW, can_manage=lambda d: True, unmanaged=UNMANAGED
    )
    check_message(running)
    assert "Unmanaged: 2 instances" in texts(running["blocks"])
    assert "Stops at <!date^" in texts(running["blocks"])
    mine = deployment_list_message(
        LIST_MINE, deps, now=NOW, can_manage=lambda d: True, unmanaged=UNMANAGED
    )
    assert "Unmanaged" not in texts(mine["blocks"])
    empty = deployment_list_message(
        LIST_RUNNING, [], now=NOW, can_manage=lambda d: True, unmanaged=UNMANAGED
    )
    check_message(empty)
    assert "no GPU is billing" not in texts(empty["blocks"])  # the unmanaged ones are

    home = home_view(
        deployments=[make_dep(ends_in=None), *deps[:40]],
        now=NOW,
        user_month=3,
        workspace_month=9,
        month_label="December 2026",
        unmanaged=UNMANAGED,
    )
    check_blocks(home["blocks"], max_blocks=100)
    home_text = texts(home["blocks"])
    assert "Unmanaged: 2 instances" in home_text
    assert ":infinity: Runs until someone stops it" in home_text
    plain = home_view(
        deployments=deps, now=NOW, user_month=0, workspace_month=0, month_label="December 2026"
    )
    assert "Unmanaged" not in texts(plain["blocks"])


# --- the picker's "Run for" -----------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    id: int = 4242
    gpu_name: str = "RTX 4090"
    num_gpus: int = 1
    gpu_ram_gb: float = 24
    cuda_max_good: float | None = 12.4
    compute_cap: int | None = 890
    disk_space_gb: float = 200
    direct_port_count: int = 10
    dph_total: float = 0.367
    verified: bool = True
    rentable: bool = True
    reliability: float | None = 0.995
    geolocation: str | None = "Oregon, US"


TEMPLATE = Template.model_validate(
    {
        "slug": "jupyter-lab",
        "name": "JupyterLab",
        "description": "Notebooks",
        "category": "notebooks",
        "docker_image": "jupyter/base-notebook:latest",
        "ports": [8888],
        "launch_command": "",
        "min_vram_gb": 8,
        "recommended_vram_gb": 16,
        "cuda_version": "12.1",
        "disk_gb": 40,
        "docs_url": "https://jupyter.org/",
        "health_path": "/",
    }
)
CHOICES = [picker.LifetimeChoice.for_hours(h) for h in (2, 4, 8, 24, 72, 168, None)]


def test_lifetime_labels_and_values_round_trip() -> None:
    assert [c.label for c in CHOICES] == [
        "2 hours",
        "4 hours",
        "8 hours",
        "1 day",
        "3 days",
        "1 week",
        "Until I stop it",
    ]
    for hours in (2, 4, 8, 24, 72, 168, None, 1.5, 0.25, 36, 8760):
        assert picker.parse_lifetime_value(picker.lifetime_value(hours)) == hours
    assert picker.lifetime_value(8.0) == "8" and picker.lifetime_value(1.5) == "1.5"
    assert picker.lifetime_value(None) == "unlimited"
    for bad in (0, -1, float("inf"), float("nan"), 0.001):
        with pytest.raises(ValueError):
            picker.lifetime_value(bad)


@pytest.mark.parametrize(
    "value",
    [None, "", "0", "0.00", "-8", "8h", "1e3", "8.123", " 8", "8 ", "Unlimited", "inf", "nan",
     "١", "8761", "99999", 8, 8.0, {"value": "8"}],
)  # fmt: skip
def test_garbage_lifetime_values_raise(value: object) -> None:
    with pytest.raises(ValueError):
        picker.parse_lifetime_value(value)


def picker_blocks(view: View) -> list[dict[str, Any]]:
    data = view.to_dict()
    check_blocks(data["blocks"], max_blocks=100)
    return list(data["blocks"])


def test_picker_asks_how_long_after_the_disk() -> None:
    state = picker.PickerState(template="jupyter-lab", channel="C0DEPLOYS1")
    offers = [RankedOffer(Offer(), True)]
    view = picker.picker_view(
        TEMPLATE,
        state,
        offers,
        simulated=False,
        selected_offer_id=4242,
        lifetimes=CHOICES,
        lifetime_hours=8,
    )
    blocks = picker_blocks(view)
    ids = [b.get("block_id") for b in blocks]
    assert ids.index(picker.BLOCK_LIFETIME) == ids.index(picker.BLOCK_DISK) + 1
    block = blocks[ids.index(picker.BLOCK_LIFETIME)]
    assert block["label"]["text"] == "Run for"
    assert block["hint"]["text"] == (
        "The bot stops it then (you are asked 30 min before, and can extend)."
    )
    element = block["element"]
    assert element["action_id"] == picker.ACTION_LIFETIME
    assert element["initial_option"]["value"] == "8"
    assert [o["value"] for o in element["options"]][-1] == "unlimited"
    cost = blocks[ids.index(picker.BLOCK_COST)]["elements"][0]["text"]
    assert "$0.367 per hour" in cost and "· $2.94 for the 8 h run" in cost

    unlimited = picker_blocks(
        picker.picker_view(TEMPLATE, state, offers, simulated=False, lifetimes=CHOICES)
    )
    select = next(b for b in unlimited if b.get("block_id") == picker.BLOCK_LIFETIME)["element"]
    assert select["initial_option"]["value"] == "unlimited"  # None preselects "Until I stop it"
    without = picker_blocks(picker.picker_view(TEMPLATE, state, offers, simulated=False))
    assert picker.BLOCK_LIFETIME not in [b.get("block_id") for b in without]
    assert "for the" not in texts(without)


def test_picker_without_offers_is_unchanged_by_lifetimes() -> None:
    state = picker.PickerState(template="jupyter-lab")
    plain = picker.picker_view(TEMPLATE, state, [], simulated=True).to_dict()
    with_lifetimes = picker.picker_view(
        TEMPLATE, state, [], simulated=True, lifetimes=CHOICES, lifetime_hours=8
    ).to_dict()
    assert with_lifetimes == plain


def test_selected_values_reads_the_run_length() -> None:
    view = {
        "state": {
            "values": {
                picker.BLOCK_LIFETIME: {
                    picker.ACTION_LIFETIME: {"selected_option": {"value": "72"}}
                }
            }
        }
    }
    values = picker.selected_values(view)
    assert values["lifetime"] == "72"
    assert picker.parse_lifetime_value(values["lifetime"]) == 72
    assert picker.selected_values({})["lifetime"] is None
