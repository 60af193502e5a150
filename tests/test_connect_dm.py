"""The ready DM's ways in (bot.slack.blocks.notify): SSH with the person's own key, an SSH
port-forward per web port with the login only in the localhost URL, the direct link labelled
as unencrypted HTTP, **Add an SSH key** for a person with no key, and the ``tls`` template
option (Vast.ai's base image serving HTTPS). Pure builder tests, then the DM end to end
through the fake Slack for deployments reaching ready on the simulator."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import storage
from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.services import states
from bot.slack.blocks import notify
from bot.slack.blocks.status import app_urls
from catalog import Template
from catalog.loader import validate_dir
from catalog.models import TLS_MODES, TLS_NONE, TLS_VAST_BASE_IMAGE
from catalog.schema import template_json_schema
from storage import DeploymentRecord
from tests.fixtures.slack import ALICE, BotFactory, BotHarness
from tests.test_deploy import pick_offer, settled, submitted_view, wait_until
from tests.test_mrkdwn_escaping import mrkdwn_texts
from tests.test_poller import deploy, dms, poller_of
from tests.test_states import instance, record, template

IP = "203.0.113.42"
DIRECT = {"public_ip": IP, "ports_json": '{"22": 41022, "8888": 41888}'}


def ready(**overrides: Any) -> DeploymentRecord:
    values: dict[str, Any] = {"status": "ready", **DIRECT}
    values.update(overrides)
    return record(**values)


def dm_of(
    dep: DeploymentRecord,
    tpl: Template | None = None,
    *,
    has_ssh_key: bool = True,
    jupyter_token: str | None = None,
) -> dict[str, Any]:
    payload = notify.secrets_dm(
        dep,
        template() if tpl is None else tpl,
        has_ssh_key=has_ssh_key,
        jupyter_token=jupyter_token,
    )
    assert payload is not None
    return payload


def text_of(payload: dict[str, Any]) -> str:
    return "\n".join(mrkdwn_texts(payload))


def buttons(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block["accessory"]
        for block in payload["blocks"]
        if block.get("accessory", {}).get("type") == "button"
    ]


def tls_template(**update: Any) -> Template:
    """A template on Vast.ai's base image that declares HTTPS (``tls: vast-base-image``)."""
    data = template("comfy-ui").model_dump()
    data.update(
        slug="vast-comfy",
        name="ComfyUI (Vast.ai)",
        docker_image="vastai/comfyui:@vastai-automatic-tag",
        launch_command="entrypoint.sh",
        env={"ENABLE_HTTPS": "true", "PORTAL_CONFIG": "localhost:8188:18188:/:ComfyUI"},
        tls=TLS_VAST_BASE_IMAGE,
    )
    data.update(update)
    return Template.model_validate(data)


# -- SSH: direct, proxy, IPv6 ---------------------------------------------------------------


def test_direct_ssh_uses_the_mapped_port_of_22_on_the_public_address() -> None:
    dm = dm_of(ready())
    text = text_of(dm)
    assert "```ssh -p 41022 root@203.0.113.42```" in text
    assert "straight to the instance" in text
    assert "Vast.ai account" not in text  # the old "with the SSH key of your Vast.ai account"
    endpoint = notify.ssh_endpoint(ready(), template())
    assert endpoint == notify.SshEndpoint(IP, 41022, proxy=False)


def test_without_a_direct_port_ssh_goes_through_vast_ai_proxy() -> None:
    dep = ready(ports_json='{"8888": 41888}', ssh_host="ssh5.vast.ai", ssh_port=26926)
    text = text_of(dm_of(dep))
    assert "```ssh -p 26926 root@ssh5.vast.ai```" in text
    assert "Vast.ai's SSH proxy" in text
    # the forward works through the proxy too
    assert "```ssh -p 26926 root@ssh5.vast.ai -L 8888:localhost:8888```" in text


def test_direct_ssh_wins_over_the_proxy_and_bad_values_give_none() -> None:
    both = ready(ssh_host="ssh5.vast.ai", ssh_port=26926)
    assert notify.ssh_endpoint(both, template()) == notify.SshEndpoint(IP, 41022, proxy=False)
    hostile = ready(ports_json='{"8888": 41888}', ssh_host="x; rm -rf /", ssh_port=70000)
    assert notify.ssh_endpoint(hostile, template()) is None
    damaged = ready(ports_json="{not json", ssh_host=None)
    assert notify.ssh_endpoint(damaged, template()) is None


def test_an_ipv6_address_goes_into_ssh_without_brackets_and_into_urls_with_them() -> None:
    dep = ready(public_ip="2001:db8::1")
    text = text_of(dm_of(dep))
    assert "```ssh -p 41022 root@2001:db8::1```" in text
    assert "root@[" not in text  # OpenSSH would look "[2001:db8::1]" up as a host name
    assert "```ssh -p 41022 root@2001:db8::1 -L 8888:localhost:8888```" in text
    assert "http://[2001:db8::1]:41888/" in text


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no OpenSSH client here")
@pytest.mark.parametrize(
    ("public_ip", "host"), [(IP, IP), ("2001:db8::1", "2001:db8::1")], ids=["ipv4", "ipv6"]
)
def test_openssh_reads_the_forward_command_as_meant(public_ip: str, host: str) -> None:
    """``ssh -G`` prints the configuration a command line gives, without connecting."""
    dep = ready(public_ip=public_ip)
    (way,) = notify.web_ways(dep, template())
    assert way.forward is not None
    argv = shlex.split(way.forward)
    assert argv[0] == "ssh"
    result = subprocess.run(
        ["ssh", "-G", *argv[1:]], capture_output=True, text=True, timeout=10, check=True
    )
    config = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert config["hostname"] == host
    assert config["port"] == "41022"
    assert config["user"] == "root"
    assert config["localforward"] == "8888 [localhost]:8888"


# -- a forward per web port, the login in the localhost URL only ----------------------------


def test_each_web_port_gets_its_own_forward_and_localhost_url() -> None:
    tpl = template().model_copy(update={"ports": [8888, 6006, 80]})
    dep = ready(ports_json='{"22": 41022, "8888": 41888, "6006": 41006}')
    text = text_of(dm_of(dep, tpl))
    assert "```ssh -p 41022 root@203.0.113.42 -L 8888:localhost:8888```" in text
    assert "```ssh -p 41022 root@203.0.113.42 -L 6006:localhost:6006```" in text
    # only root may listen on a port below 1024: the forward listens 10000 higher
    assert "```ssh -p 41022 root@203.0.113.42 -L 10080:localhost:80```" in text
    assert "<http://localhost:6006/|http://localhost:6006/>" in text
    assert "<http://localhost:10080/|http://localhost:10080/>" in text
    # port 80 is not mapped on the host: no direct link for it, the forward still works
    assert "http://203.0.113.42:41006/" in text and ":80/" not in text


def test_the_jupyter_token_is_appended_to_the_localhost_url_only() -> None:
    dm = dm_of(ready())
    text = text_of(dm)
    assert "<http://localhost:8888/lab?token=pw-secret-1|http://localhost:8888/lab>" in text
    assert "• Token (`JUPYTER_TOKEN`): `pw-secret-1`" in text
    # the direct link carries no token: it would cross the internet in clear text
    assert "41888/lab" not in text and "41888/?token" not in text
    assert text.count("token=") == 1


def test_a_template_without_a_login_gets_no_token_in_any_url() -> None:
    tpl = template().model_copy(update={"password_env": None})
    dep = ready(web_password=None)
    text = text_of(dm_of(dep, tpl, jupyter_token="jt-secret"))
    assert "<http://localhost:8888/|http://localhost:8888/>" in text
    assert "token=" not in text
    assert "• Vast.ai Jupyter token: `jt-secret`" in text


def test_many_ports_stay_within_slack_limits() -> None:
    ports = list(range(7000, 7030))
    tpl = template().model_copy(update={"ports": ports})
    dep = ready(
        ports_json=json.dumps({"22": 41022, **{str(p): 40000 + p - 7000 for p in ports}}),
        template_name="N" * 80,
    )
    dm = dm_of(dep, tpl)
    blocks = dm["blocks"]
    assert len(blocks) <= 50
    forwards = [t for t in mrkdwn_texts(dm) if " -L " in t and "keep it open" in t]
    assert len(forwards) == notify.MAX_FORWARDS
    assert "Ports 7010, 7011" in text_of(dm) and "`-L` again" in text_of(dm)
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000


# -- the person's keys --------------------------------------------------------------------


def test_a_person_without_a_key_gets_the_add_button_with_the_deployment_id() -> None:
    dm = dm_of(ready(id=31), has_ssh_key=False)
    (button,) = buttons(dm)
    assert button["action_id"] == notify.ACTION_SSH_KEY_OPEN == "ssh_key_open"
    assert button["value"] == "31"
    assert button["text"]["text"] == "Add an SSH key"
    text = text_of(dm)
    assert "the SSH commands above need one" in text
    assert "it is attached to this instance when you add it" in text
    # the commands are still there: they work as soon as the key is attached
    assert "```ssh -p 41022 root@203.0.113.42```" in text


def test_a_person_with_a_key_gets_no_button() -> None:
    dm = dm_of(ready(), has_ssh_key=True)
    assert buttons(dm) == []
    assert "no SSH key" not in text_of(dm)


def test_a_template_that_runs_no_ssh_gets_no_ssh_and_no_key_button() -> None:
    """Without a launch command the bot rents with Vast.ai's ``args`` launch mode: no SSH."""
    tpl = template().model_copy(update={"launch_command": ""})
    dep = ready(ssh_host="ssh5.vast.ai", ssh_port=26926)
    dm = dm_of(dep, tpl, has_ssh_key=False)
    text = text_of(dm)
    assert "ssh -p" not in text and buttons(dm) == []
    assert "runs no SSH server" in text
    assert "http://203.0.113.42:41888/" in text
    assert "I sent you the login details by DM." in notify.ready_text(dep, tpl)


# -- direct links: unencrypted HTTP, or HTTPS when the template declares it ------------------


def test_a_direct_http_link_is_labelled_unencrypted_in_the_dm_and_the_thread() -> None:
    dep = ready()
    text = text_of(dm_of(dep))
    assert ":warning: *Direct link, unencrypted HTTP*: " in text
    assert "<http://203.0.113.42:41888/|http://203.0.113.42:41888/>" in text
    assert "Whatever you type there, the token included, crosses the internet in clear" in text
    bare = text_of(dm_of(replace(dep, web_password=None)))
    assert "Whatever you type there crosses the internet in clear text" in bare
    thread = notify.ready_text(dep, template())
    assert "<http://203.0.113.42:41888/|http://203.0.113.42:41888/> (unencrypted HTTP)" in thread
    assert "I sent you the SSH commands and the login details by DM." in thread
    assert "pw-secret-1" not in thread


def test_a_tls_template_gets_https_links_probe_and_no_unencrypted_label() -> None:
    tpl = tls_template()
    assert tpl.https and tpl.tls == TLS_VAST_BASE_IMAGE
    dep = ready(ports_json='{"22": 41022, "8188": 48188}', template_name=tpl.name)
    text = text_of(dm_of(dep, tpl))
    assert ":lock: *Direct link over HTTPS*: " in text
    assert "<https://203.0.113.42:48188/|https://203.0.113.42:48188/>" in text
    assert notify.VAST_ROOT_CERT_URL in text
    assert "unencrypted" not in text and "http://203.0.113.42" not in text
    # through the tunnel the port still speaks TLS only
    assert "```ssh -p 41022 root@203.0.113.42 -L 8188:localhost:8188```" in text
    assert "<https://localhost:8188/|https://localhost:8188/>" in text
    # Vast.ai's base image: basic auth as WEB_USERNAME, vastai by default
    assert "• User: `vastai`" in text
    assert app_urls(dep, tpl) == [(8188, "https://203.0.113.42:48188/")]
    thread = notify.ready_text(dep, tpl)
    assert "https://203.0.113.42:48188/" in thread and "unencrypted" not in thread
    inst = instance(ports={"8188/tcp": [{"HostIp": "0.0.0.0", "HostPort": "48188"}]})
    assert states.probe_url(inst, tpl) == "https://203.0.113.42:48188/system_stats"
    assert states.probe_url(inst, template("comfy-ui")) == "http://203.0.113.42:48188/system_stats"


def test_the_tls_option_is_validated_and_in_the_schema(tmp_path: Path) -> None:
    assert template().tls == TLS_NONE and not template().https
    with pytest.raises(ValidationError, match='needs env ENABLE_HTTPS: "true"'):
        tls_template(env={"PORTAL_CONFIG": "localhost:8188:18188:/:ComfyUI"})
    with pytest.raises(ValidationError, match="Input should be 'none' or 'vast-base-image'"):
        tls_template(tls="letsencrypt")
    data = tls_template().model_dump()
    data["env"] = {"ENABLE_HTTPS": "false"}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(data))
    problems = validate_dir(tmp_path)
    assert any('tls: "vast-base-image" needs env ENABLE_HTTPS' in p for p in problems), problems
    schema = template_json_schema()["$defs"]["Template"]["properties"]["tls"]
    assert schema["enum"] == list(TLS_MODES) and schema["default"] == TLS_NONE


# -- storage: counting a person's keys --------------------------------------------------------


def test_count_ssh_keys_counts_one_person_in_one_workspace(
    session_factory: storage.SessionFactory,
) -> None:
    sf = session_factory
    assert storage.count_ssh_keys(sf, "T1", "U1") == 0
    now = storage.utcnow()
    with sf() as session, session.begin():
        for team, user, n in [("T1", "U1", 1), ("T1", "U1", 2), ("T2", "U1", 3), ("T1", "U2", 4)]:
            session.add(
                storage.SshKey(
                    team_id=team,
                    user_id=user,
                    key_type="ssh-ed25519",
                    public_key=f"ssh-ed25519 AAAA{n}",
                    fingerprint=f"SHA256:{n}",
                    created_at=now,
                )
            )
    assert storage.count_ssh_keys(sf, "T1", "U1") == 2
    assert storage.count_ssh_keys(sf, "T2", "U1") == 1
    assert storage.count_ssh_keys(sf, "T2", "U2") == 0


# -- end to end: the ready DM through the fake Slack -----------------------------------------


def add_key(harness: BotHarness, user: str) -> None:
    """A key on file for ``user``, as ``/templates ssh-key`` stores it (row written directly)."""
    with harness.services.session_factory() as session, session.begin():
        session.add(
            storage.SshKey(
                team_id=TEAM_ID,
                user_id=user,
                key_type="ssh-ed25519",
                public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO2Xn0bWlU0y2bDD3EwqYq0fD0kl3r3CwW",
                fingerprint="SHA256:abc",
                created_at=storage.utcnow(),
            )
        )


def test_the_ready_dm_gives_the_simulator_instances_mapped_ssh_port(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    """Deploy through the picker (signed requests), the poller to ready on the simulator: the
    DM's SSH command and forward name the port the simulator mapped 22/tcp to, and a person
    with no key gets **Add an SSH key**; once a key is on file, **Send me the login** brings
    the same DM without it."""
    chosen = pick_offer(bot).offer
    assert bot.view_submission(submitted_view(chosen.id)).status_code == 200
    (dep,) = settled(bot)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(4)
    poller.tick()
    (ready_dm,) = wait_until(lambda: dms(fake_slack))
    assert ready_dm.args["channel"].startswith("D")

    inst = bot.vast.instance(dep.instance_id or 0)
    assert inst is not None
    ssh_port = inst["ports"]["22/tcp"][0]["HostPort"]
    app_port = inst["ports"]["8888/tcp"][0]["HostPort"]
    text = text_of(ready_dm.args)
    assert f"```ssh -p {ssh_port} root@127.0.0.1```" in text
    assert f"```ssh -p {ssh_port} root@127.0.0.1 -L 8888:localhost:8888```" in text
    assert "http://localhost:8888/lab?token=" in text
    assert f"<http://127.0.0.1:{app_port}/|http://127.0.0.1:{app_port}/>" in text
    assert "unencrypted HTTP" in text
    (button,) = buttons(ready_dm.args)
    assert (button["action_id"], button["value"]) == ("ssh_key_open", str(dep.id))

    add_key(bot, ALICE)
    bot.block_action("deployment_credentials", str(dep.id), user=ALICE, is_ephemeral=False)
    again = wait_until(lambda: dms(fake_slack)[1:])[0]
    assert f"```ssh -p {ssh_port} root@127.0.0.1```" in text_of(again.args)
    assert buttons(again.args) == []


def test_a_tls_template_reaches_ready_over_https_on_the_simulator(
    bot_factory: BotFactory, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """A ``tls: vast-base-image`` template: the simulator serves its port over TLS only (as
    Vast.ai's base image does with ENABLE_HTTPS=true), the readiness probe speaks HTTPS, and the
    DM links ``https://``."""
    data = tls_template().model_dump()
    (tmp_path / "vast-comfy.yaml").write_text(yaml.safe_dump(data))
    harness = bot_factory(catalog_dir=tmp_path, allow_private_instance_addresses=True)
    dep = deploy(harness, "vast-comfy")
    poller = poller_of(harness)
    poller.tick()
    harness.vast.advance(4)
    poller.tick()
    fresh = storage.get_deployment(harness.services.session_factory, dep.id)
    assert fresh is not None and fresh.status == "ready", fresh and fresh.status
    inst = harness.vast.instance(dep.instance_id or 0)
    assert inst is not None
    app_port = inst["ports"]["8188/tcp"][0]["HostPort"]
    (ready_dm,) = wait_until(lambda: dms(fake_slack))
    text = text_of(ready_dm.args)
    assert f"https://127.0.0.1:{app_port}/" in text and "unencrypted" not in text


def test_a_deployment_without_password_still_gets_the_ready_dm(
    bot: BotHarness, fake_slack: FakeSlack
) -> None:
    dep = deploy(bot, web_password=None)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(4)
    poller.tick()
    (ready_dm,) = wait_until(lambda: dms(fake_slack))
    inst = bot.vast.instance(dep.instance_id or 0)
    assert inst is not None
    ssh_port = inst["ports"]["22/tcp"][0]["HostPort"]
    assert f"ssh -p {ssh_port} root@127.0.0.1" in text_of(ready_dm.args)
    assert "token=" not in json.dumps(ready_dm.args)
    replies = [
        c for c in fake_slack.calls_to("chat.postMessage") if c.args.get("thread_ts") is not None
    ]
    assert any("I sent you the SSH commands by DM." in str(c.args) for c in replies)
