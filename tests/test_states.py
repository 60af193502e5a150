"""Unit tests of the pure state mapping (bot.services.states) and the poller's texts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.services import states
from bot.slack.blocks import notify
from bot.slack.blocks.status import format_elapsed, status_message, visible_key
from bot.vast.models import Instance
from catalog import Template, load_catalog
from storage import DeploymentRecord

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=30)
CATALOG = load_catalog()


def template(slug: str = "jupyter-lab") -> Template:
    found = CATALOG.get(slug)
    assert found is not None
    return found


def record(**overrides: Any) -> DeploymentRecord:
    created = overrides.pop("created_at", NOW - timedelta(minutes=2))
    values: dict[str, Any] = {
        "id": 7,
        "team_id": "T1",
        "user_id": "U0ALICE01",
        "channel_id": "C1",
        "message_channel": "C1",
        "message_ts": "1.000100",
        "template_slug": "jupyter-lab",
        "template_name": "JupyterLab",
        "offer_id": 11,
        "instance_id": 4242,
        "gpu_name": "RTX 4090",
        "num_gpus": 1,
        "gpu_ram_gb": 24.0,
        "dph_total": 0.4,
        "disk_gb": 20.0,
        "status": "provisioning",
        "reason": None,
        "status_msg": None,
        "request_key": "V1",
        "simulated": False,
        "web_password": "pw-secret-1",
        "public_ip": None,
        "ports_json": None,
        "ssh_host": None,
        "ssh_port": None,
        "created_at": created,
        "updated_at": created,
        "provisioning_at": None,
        "ready_at": None,
        "ready_notified_at": None,
        "secrets_sent_at": None,
        "stopped_at": None,
        "destroyed_at": None,
        "failed_at": None,
        "ready_seconds": 0.0,
        "stopped_seconds": 0.0,
        "last_state_change_at": created,
        "version": 1,
    }
    values.update(overrides)
    return DeploymentRecord(**values)


def instance(actual: str | None = "running", **overrides: Any) -> Instance:
    raw: dict[str, Any] = {
        "id": 4242,
        "actual_status": actual,
        "intended_status": "running",
        "cur_state": "running",
        "next_state": "running",
        "status_msg": "success, running image/ssh" if actual == "running" else None,
        "public_ipaddr": "203.0.113.42\n",
        "ssh_host": "ssh5.vast.ai",
        "ssh_port": 26926,
        "jupyter_token": "jt-secret",
        "ports": {
            "22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41022"}],
            "8888/tcp": [
                {"HostIp": "::", "HostPort": "41888"},
                {"HostIp": "0.0.0.0", "HostPort": "41888"},
            ],
        }
        if actual == "running"
        else None,
    }
    raw.update(overrides)
    return Instance.from_api(raw)


def assess(dep: DeploymentRecord, inst: Instance | None, **kwargs: Any) -> states.Verdict:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("timeout", TIMEOUT)
    # The documentation addresses used here (RFC 5737's 203.0.113.0/24, RFC 3849's
    # 2001:db8::/32) are not public: the rules for addresses are tested in test_vast_data.py.
    kwargs.setdefault("allow_private", True)
    return states.assess(dep, inst, template(dep.template_slug), **kwargs)


# -- provisioning -----------------------------------------------------------------------------


@pytest.mark.parametrize("actual", [None, "created", "loading", "rebooting"])
def test_booting_is_provisioning(actual: str | None) -> None:
    inst = instance(actual, status_msg="Downloading image layers")
    verdict = assess(record(status="creating"), inst)
    assert verdict.status == "provisioning"
    assert verdict.status_msg == "Downloading image layers"
    assert not verdict.destroy and verdict.probe_url is None
    assert assess(record(), inst).status == "provisioning"


def test_running_with_every_port_mapped_needs_the_probe() -> None:
    verdict = assess(record(), instance())
    assert verdict.status == "provisioning"
    assert verdict.probe_url == "http://203.0.113.42:41888/api"
    assert verdict.connection is not None
    assert verdict.connection.public_ip == "203.0.113.42"
    assert verdict.connection.ports_json == '{"22": 41022, "8888": 41888}'
    up = states.after_probe(verdict, record(), True, now=NOW, timeout=TIMEOUT)
    assert up.status == "ready" and up.probe_url is None
    down = states.after_probe(verdict, record(), False, now=NOW, timeout=TIMEOUT)
    assert down.status == "provisioning"


def test_running_but_intended_stopped_or_a_port_missing_is_not_ready() -> None:
    half = instance(ports={"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41022"}]})
    verdict = assess(record(), half)
    assert verdict.status == "provisioning" and verdict.probe_url is None
    no_ip = instance(public_ipaddr="")
    assert assess(record(), no_ip).probe_url is None
    not_intended = instance(intended_status="stopped")
    assert assess(record(), not_intended).probe_url is None


def test_not_answering_past_the_timeout_fails() -> None:
    dep = record(created_at=NOW - timedelta(minutes=31))
    verdict = assess(dep, instance())
    assert verdict.probe_url is not None  # it is still probed first
    down = states.after_probe(verdict, dep, False, now=NOW, timeout=TIMEOUT)
    assert down.status == "failed" and down.destroy
    assert "did not answer" in str(down.reason)
    assert states.after_probe(verdict, dep, True, now=NOW, timeout=TIMEOUT).status == "ready"


# -- failures ---------------------------------------------------------------------------------


def test_exited_fails_and_destroys() -> None:
    verdict = assess(record(), instance("exited", status_msg="exit code 1"))
    assert verdict.status == "failed" and verdict.destroy
    assert "exited" in str(verdict.reason) and "exit code 1" in str(verdict.reason)


@pytest.mark.parametrize(
    ("msg", "words"),
    [
        ("Error response from daemon: OCI runtime create failed: exec: start.sh", "started"),
        ("error pulling image: manifest unknown", "pulled"),
        ("unauthorized: authentication required", "pulled"),
    ],
)
def test_error_words_in_status_msg_fail(msg: str, words: str) -> None:
    verdict = assess(record(), instance("created", status_msg=msg))
    assert verdict.status == "failed" and verdict.destroy
    assert words in str(verdict.reason)


@pytest.mark.parametrize(
    "msg",
    [None, "", "success, running vastai/comfyui_latest/jupyter", "Downloading image layers"],
)
def test_ordinary_status_msgs_are_not_errors(msg: str | None) -> None:
    assert not states.error_in_status_msg(msg)


def test_offline_fails_only_after_the_grace_period() -> None:
    lost = instance("offline")
    first = assess(record(), lost)
    assert first.status == "provisioning" and first.host_lost
    within = assess(record(), lost, host_lost_since=NOW - timedelta(minutes=2))
    assert within.status == "provisioning"
    past = assess(record(), lost, host_lost_since=NOW - timedelta(minutes=4))
    assert past.status == "failed" and past.destroy and "offline" in str(past.reason)
    unknown = assess(record(status="ready"), instance("unknown"), host_lost_since=NOW)
    assert unknown.status == "ready"


def test_stopped_by_vast_before_ready_fails_and_after_ready_stops() -> None:
    stopped = instance(
        "stopped", intended_status="stopped", cur_state="stopped", next_state="stopped"
    )
    before = assess(record(), stopped)
    assert before.status == "failed" and before.destroy and "credit" in str(before.reason)
    after = assess(record(status="ready"), stopped)
    assert after.status == "stopped" and not after.destroy
    assert assess(record(status="stopped"), stopped).status == "stopped"


def test_timeout_counts_from_creation() -> None:
    loading = instance("loading", status_msg="Downloading image layers")
    assert assess(record(created_at=NOW - timedelta(minutes=29)), loading).status == (
        "provisioning"
    )
    verdict = assess(record(created_at=NOW - timedelta(minutes=30)), loading)
    assert verdict.status == "failed" and verdict.destroy
    assert "Not ready after 30 minutes" in str(verdict.reason)
    assert "loading" in str(verdict.reason)
    # a ready or stopped deployment never times out
    old = NOW - timedelta(days=3)
    assert assess(record(status="ready", created_at=old), loading).status == "ready"


# -- gone ---------------------------------------------------------------------------------------


def test_missing_instance_waits_then_asks_for_confirmation() -> None:
    young = assess(record(created_at=NOW - timedelta(seconds=30)), None)
    assert young.status == "provisioning" and not young.confirm_gone
    old = assess(record(), None, list_grace=timedelta(minutes=1))
    assert old.status == "destroyed" and old.confirm_gone and not old.destroy
    assert "gone from Vast.ai" in str(old.reason)


# -- ready and stopped deployments ---------------------------------------------------------------


def test_ready_keeps_its_ports_when_they_vanish_briefly() -> None:
    dep = record(status="ready", public_ip="203.0.113.42", ports_json='{"8888": 41888}')
    verdict = assess(dep, instance(ports=None))
    assert verdict.status == "ready" and verdict.connection is None
    moved = assess(dep, instance())
    assert moved.connection is not None and moved.connection.differs_from(dep)


def test_stopped_deployment_started_again_becomes_ready_after_the_probe() -> None:
    dep = record(status="stopped", created_at=NOW - timedelta(days=1))
    booting = assess(dep, instance("loading"))
    assert booting.status == "stopped"
    running = assess(dep, instance())
    assert running.status == "stopped" and running.probe_url is not None
    assert states.after_probe(running, dep, True, now=NOW, timeout=TIMEOUT).status == "ready"
    assert states.after_probe(running, dep, False, now=NOW, timeout=TIMEOUT).status == "stopped"


def test_unknown_template_is_ready_when_running() -> None:
    dep = record(template_slug="gone-from-catalog")
    verdict = states.assess(dep, instance(), None, now=NOW, timeout=TIMEOUT, allow_private=True)
    assert verdict.status == "ready"


# -- what the user sees ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "under a minute"),
        (59, "under a minute"),
        (60, "1 min"),
        (599, "9 min"),
        (600, "10 min"),
        (899, "10 min"),
        (3599, "55 min"),
        (3600, "1 h 00 min"),
        (3600 + 29 * 60, "1 h 15 min"),
    ],
)
def test_format_elapsed_is_coarse(seconds: int, text: str) -> None:
    assert format_elapsed(seconds) == text


def test_visible_key_changes_only_with_what_is_shown() -> None:
    dep = record(status_msg="Downloading image layers")
    key = visible_key(dep, now=NOW)
    assert visible_key(dep, now=NOW + timedelta(seconds=30)) == key
    assert visible_key(dep, now=NOW + timedelta(minutes=1)) != key
    assert visible_key(replace(dep, status_msg="other"), now=NOW) != key
    ready = record(status="ready", ready_at=NOW, status_msg="success, running a")
    ready_key = visible_key(ready, now=NOW)
    later = NOW + timedelta(hours=5)
    assert visible_key(replace(ready, status_msg="success, running b"), now=later) == ready_key
    # a ready container that exited shows Vast.ai's message: that redraws
    assert visible_key(replace(ready, status_msg="exit code 1"), now=NOW) != ready_key
    assert visible_key(replace(ready, ports_json='{"8888": 1}'), now=NOW) != ready_key


def test_ready_texts_keep_secrets_out_of_the_channel() -> None:
    dep = record(
        status="ready",
        ready_at=NOW,
        public_ip="203.0.113.42",
        ports_json='{"22": 41022, "8888": 41888}',
    )
    tpl = template()
    text = notify.ready_text(dep, tpl, jupyter_token="jt-secret")
    assert text.startswith("<@U0ALICE01> your JupyterLab on 1× RTX 4090 is ready")
    assert "http://203.0.113.42:41888/" in text
    channel = str(status_message(dep, tpl, now=NOW)) + text
    assert "pw-secret-1" not in channel and "jt-secret" not in channel
    dm = notify.secrets_dm(dep, tpl, has_ssh_key=True, jupyter_token="jt-secret")
    assert dm is not None
    assert "pw-secret-1" in str(dm) and "JUPYTER_TOKEN" in str(dm)
    assert "jt-secret" not in str(dm)  # the template brings its own token
    # the token travels only in the localhost URL, through the SSH tunnel
    assert "http://localhost:8888/lab?token=pw-secret-1" in str(dm)
    assert "203.0.113.42:41888/lab?token" not in str(dm)
    # without a password the DM still gives the SSH commands, and no login
    no_password = replace(dep, web_password=None)
    bare = notify.secrets_dm(no_password, tpl, has_ssh_key=True)
    assert bare is not None and "ssh -p 41022 root@203.0.113.42" in str(bare)
    assert "token=" not in str(bare) and "JUPYTER_TOKEN" not in str(bare)
    assert "I sent you the SSH commands by DM." in notify.ready_text(no_password, tpl)
    # neither a password nor SSH: nothing for a DM, and the thread points to none
    nothing = replace(no_password, ports_json='{"8888": 41888}')
    assert notify.secrets_dm(nothing, tpl, has_ssh_key=True) is None
    assert "DM" not in notify.ready_text(nothing, tpl)


@pytest.mark.parametrize("status", ["ready", "stopped"])
def test_a_stopped_container_reported_exited_is_stopped_not_failed(status: str) -> None:
    # Vast.ai lists a stopped instance as actual ``exited`` with intended ``stopped``.
    stopped = instance(
        "exited", intended_status="stopped", cur_state="stopped", next_state="stopped"
    )
    verdict = states.assess(
        record(status=status), stopped, template(), now=NOW, timeout=TIMEOUT, allow_private=True
    )
    assert verdict.status == "stopped"
    assert not verdict.destroy


def test_exited_while_being_started_again_waits() -> None:
    starting = instance("exited", intended_status="running")  # Start clicked, not up yet
    verdict = states.assess(
        record(status="stopped"), starting, template(), now=NOW, timeout=TIMEOUT, allow_private=True
    )
    assert verdict.status == "stopped" and not verdict.destroy


def test_exited_while_meant_to_run_is_a_crash_before_ready() -> None:
    crashed = instance("exited", intended_status="running", status_msg="exit code 1")
    for status in ("creating", "provisioning"):
        verdict = states.assess(
            record(status=status), crashed, template(), now=NOW, timeout=TIMEOUT, allow_private=True
        )
        assert verdict.status == "failed" and verdict.destroy


def test_a_ready_container_that_exited_stays_ready_and_keeps_its_disk() -> None:
    # Its disk may hold the user's work: no destroy here; the exited-container rule stops it
    # (keeping the disk) if it stays exited.
    crashed = instance("exited", intended_status="running", status_msg="exit code 1")
    verdict = states.assess(
        record(status="ready"), crashed, template(), now=NOW, timeout=TIMEOUT, allow_private=True
    )
    assert verdict.status == "ready" and not verdict.destroy
    assert verdict.status_msg == "exit code 1" and verdict.reason is None


def test_a_just_stopped_deployment_is_not_read_as_started_again() -> None:
    running = instance("running")  # Vast.ai's list still shows the state before the stop
    just_stopped = record(status="stopped", stopped_at=NOW - timedelta(seconds=10))
    verdict = states.assess(
        just_stopped, running, template(), now=NOW, timeout=TIMEOUT, allow_private=True
    )
    assert verdict.status == "stopped" and verdict.probe_url is None
    started = states.assess(
        just_stopped,
        running,
        template(),
        now=NOW,
        timeout=TIMEOUT,
        allow_private=True,
        start_requested=True,
    )
    assert started.probe_url is not None  # a real Start: probed, then ready
    long_ago = record(status="stopped", stopped_at=NOW - states.STOP_SETTLE * 2)
    from_console = states.assess(
        long_ago, running, template(), now=NOW, timeout=TIMEOUT, allow_private=True
    )
    assert from_console.probe_url is not None  # started elsewhere (e.g. the Vast.ai console)


# -- a recorded desired state ---------------------------------------------------------------


def pending(state: str, **overrides: Any) -> DeploymentRecord:
    """A row whose desired ``state`` is recorded and not confirmed by Vast.ai yet."""
    values: dict[str, Any] = {
        "desired_state": state,
        "desired_actor": "U0ALICE01",
        "desired_at": NOW - timedelta(minutes=10),
        "desired_next_try_at": NOW + timedelta(seconds=15),
        "desired_tries": 1,
    }
    values.update(overrides)
    return record(**values)


def test_a_pending_stop_is_never_read_as_started_again() -> None:
    # A stopped row whose instance runs (a Start in flight) and whose stop is recorded but
    # not confirmed: long past the settle time, running is still not "started again".
    dep = pending("stopped", status="stopped", stopped_at=NOW - timedelta(hours=3))
    verdict = assess(dep, instance())
    assert verdict.status == "stopped" and verdict.probe_url is None
    assert assess(replace(dep, desired_state="destroyed"), instance()).status == "stopped"
    # Once the stop is confirmed, running after the settle time is a start from elsewhere.
    done = replace(dep, desired_next_try_at=None, desired_done_at=NOW - timedelta(hours=3))
    assert assess(done, instance()).probe_url is not None


def test_the_bots_own_stop_is_left_to_the_reconciler() -> None:
    # The stop reached Vast.ai, its confirmation did not reach the row: the poller does not
    # report it as stopped outside the bot; the reconciler confirms it right after.
    stopped = instance("exited", intended_status="stopped", cur_state="stopped")
    dep = pending("stopped", status="ready", ready_at=NOW - timedelta(hours=1))
    assert assess(dep, stopped).status == "ready"
    assert assess(replace(dep, desired_state=None, desired_next_try_at=None), stopped).status == (
        "stopped"
    )


def test_a_pending_destroy_whose_instance_is_gone_is_left_to_the_reconciler() -> None:
    dep = pending("destroyed", status="ready", created_at=NOW - timedelta(hours=1))
    verdict = assess(dep, None)
    assert verdict.status == "ready" and not verdict.confirm_gone
    assert assess(replace(dep, desired_next_try_at=None), None).status == "destroyed"


def test_a_desired_running_on_a_stopped_row_is_a_start_in_flight() -> None:
    just_stopped = record(status="stopped", stopped_at=NOW - timedelta(seconds=30))
    starting = replace(
        just_stopped,
        desired_state="running",
        desired_at=NOW - timedelta(seconds=5),
        desired_done_at=NOW - timedelta(seconds=5),
    )
    assert assess(just_stopped, instance()).probe_url is None  # Vast.ai catching up
    assert assess(starting, instance()).probe_url is not None  # our Start: probe the app


def test_the_status_message_says_an_act_is_pending() -> None:
    dep = pending("stopped", status="ready", ready_at=NOW - timedelta(hours=1), desired_tries=3)
    message = status_message(dep, template(), now=NOW)
    text = str(message["blocks"])
    assert "Stopping…" in text and "may still bill" in text and "Tried 3 times" in text
    assert "deployment_stop" not in text  # no second Stop while one is being sent
    assert visible_key(dep, now=NOW) != visible_key(replace(dep, desired_next_try_at=None), now=NOW)
    destroying = pending("destroyed", status="stopped", stopped_at=NOW - timedelta(hours=1))
    assert "Destroying…" in str(status_message(destroying, template(), now=NOW)["blocks"])
    assert "deployment_" not in str(status_message(destroying, template(), now=NOW)["blocks"])
