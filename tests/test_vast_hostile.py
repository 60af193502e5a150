"""Hostile Vast.ai data is checked where it enters (``Instance``) and never raises downstream:
an address that is not an IP is absent (the instance is unreachable), a port outside 1..65535
is dropped, and every URL built from an address brackets IPv6 (pure, fast)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.addresses import host_or_none, http_url, ip_or_none, port_or_none
from bot.slack.blocks.status import app_urls, ssh_command, status_message
from bot.vast import Instance
from storage import DeploymentStatus
from tests.test_states import NOW, assess, instance, record, template
from tests.test_vast_models import RAW_INSTANCE

LONG_LABEL = "a" * 64 + ".example.com"

HOSTILE_IPS: list[Any] = [
    LONG_LABEL,  # httpx: UnicodeError ("label too long")
    "127.0.0.1:9/x?y=",
    "203.0.113.42:41188",
    "http://203.0.113.42/",
    "[2001:db8::1]",
    "fe80::1%eth0",
    "host.example.com",
    "",
    " \n",
    "999.1.1.1",
    42,
    3.5,
    True,
    ["203.0.113.42"],
    {"ip": "203.0.113.42"},
    None,
]


@pytest.mark.parametrize("value", HOSTILE_IPS)
def test_a_public_ipaddr_that_is_not_an_ip_is_absent(value: Any) -> None:
    inst = Instance.from_api({**RAW_INSTANCE, "public_ipaddr": value})
    assert inst.public_ipaddr is None
    assert inst.public_url(8188) is None  # unreachable, not an error


@pytest.mark.parametrize(
    ("value", "expected", "url"),
    [
        ("203.0.113.42\n", "203.0.113.42", "http://203.0.113.42:41188/"),
        ("2001:db8::1", "2001:db8::1", "http://[2001:db8::1]:41188/"),
        (" 2001:DB8:0:0:0:0:0:1\n", "2001:db8::1", "http://[2001:db8::1]:41188/"),
        ("::ffff:203.0.113.42", "::ffff:cb00:712a", "http://[::ffff:cb00:712a]:41188/"),
    ],
)
def test_ipv4_and_ipv6_are_kept_and_urls_bracket_ipv6(value: str, expected: str, url: str) -> None:
    inst = Instance.from_api({**RAW_INSTANCE, "public_ipaddr": value})
    assert inst.public_ipaddr == expected
    assert inst.public_url(8188) == url


@pytest.mark.parametrize(
    "host_port", ["0", "65536", "70000", "-1", "", "abc", "41188.5", "٤١١٨٨", None, [1], True]
)
def test_host_ports_outside_the_range_or_not_numbers_are_dropped(host_port: Any) -> None:
    raw = {**RAW_INSTANCE, "ports": {"8188/tcp": [{"HostIp": "0.0.0.0", "HostPort": host_port}]}}
    inst = Instance.from_api(raw)
    assert inst.host_port(8188) is None and inst.public_url(8188) is None


def test_container_ports_outside_the_range_are_dropped() -> None:
    raw = {
        **RAW_INSTANCE,
        "ports": {
            "0/tcp": [{"HostPort": "41000"}],
            "99999/tcp": [{"HostPort": "41001"}],
            "8188/tcp": [{"HostIp": 7, "HostPort": 41188}],
        },
    }
    inst = Instance.from_api(raw)
    assert set(inst.ports) == {8188} and inst.host_port(8188) == 41188


@pytest.mark.parametrize(
    ("host", "port"),
    [(LONG_LABEL, 26926), ("ssh5.vast.ai", 0), ("ssh5.vast.ai", "x"), (7, 26926), ("a b", 22)],
)
def test_ssh_host_and_port_are_sane_or_absent(host: Any, port: Any) -> None:
    inst = Instance.from_api({**RAW_INSTANCE, "ssh_host": host, "ssh_port": port})
    assert inst.ssh_host is None or inst.ssh_port is None
    assert Instance.from_api(RAW_INSTANCE).ssh_host == "ssh5.vast.ai"


def test_garbage_in_other_fields_keeps_the_instance() -> None:
    """An instance the model refused would be dropped from its page by the client, i.e. read
    as gone while it bills: garbage in a field the bot only shows becomes None."""
    raw = {
        **RAW_INSTANCE,
        "actual_status": 5,
        "status_msg": {"x": 1},
        "num_gpus": "many",
        "machine_id": [1],
        "dph_total": "free",
        "start_date": "yesterday",
        "gpu_name": 4090,
    }
    inst = Instance.from_api(raw)
    assert inst.id == RAW_INSTANCE["id"]
    assert (inst.actual_status, inst.status_msg, inst.num_gpus, inst.dph_total) == (
        None,
        None,
        None,
        None,
    )


def test_helpers() -> None:
    assert ip_or_none("2001:db8::1\n") == "2001:db8::1"
    assert host_or_none("ssh5.vast.ai.") == "ssh5.vast.ai"
    assert host_or_none("-bad.example") is None and host_or_none("x" * 254) is None
    assert port_or_none(" 443 ") == 443 and port_or_none(65535) == 65535
    assert port_or_none(False) is None and port_or_none(1.0) is None
    assert http_url("2001:db8::1", 8080, "/health") == "http://[2001:db8::1]:8080/health"
    assert http_url("203.0.113.1", "8080", "api") == "http://203.0.113.1:8080/api"
    assert http_url("203.0.113.1", 0) is None and http_url(LONG_LABEL, 80) is None


# -- downstream: states, blocks ------------------------------------------------------------


@pytest.mark.parametrize("value", ["2001:db8::1", LONG_LABEL, "127.0.0.1:9/x?y=", 7])
def test_assess_never_builds_an_unusable_probe_url(value: Any) -> None:
    inst = instance(public_ipaddr=value)
    verdict = assess(record(), inst)
    if value == "2001:db8::1":
        assert verdict.probe_url is not None and verdict.probe_url.startswith(
            "http://[2001:db8::1]:41888/"
        )
    else:  # unreachable: still provisioning, nothing to probe
        assert verdict.status == DeploymentStatus.PROVISIONING and verdict.probe_url is None


@pytest.mark.parametrize(
    ("ip", "ports_json", "ssh_host", "ssh_port"),
    [
        ("2001:db8::1", '{"8888": 41888, "22": 41022}', "ssh5.vast.ai", 26926),
        (LONG_LABEL, '{"8888": 41888}', LONG_LABEL, 26926),
        ("127.0.0.1:9/x?y=", '{"8888": 0, "22": 70000}', "ssh5.vast.ai", 0),
        ("203.0.113.1", "not json", None, None),
    ],
)
def test_a_stored_connection_that_is_not_usable_never_breaks_the_message(
    ip: str, ports_json: str, ssh_host: str | None, ssh_port: int | None
) -> None:
    """Rows written before the check may hold anything: the status message still renders."""
    dep = record(
        status="ready",
        public_ip=ip,
        ports_json=ports_json,
        ssh_host=ssh_host,
        ssh_port=ssh_port,
        ready_at=NOW,
    )
    urls = [url for _, url in app_urls(dep, template())]
    if ip == "2001:db8::1":
        assert urls == ["http://[2001:db8::1]:41888/"]
        assert ssh_command(dep) == "ssh -p 41022 root@2001:db8::1"
    else:
        assert urls == [] and ssh_command(dep) is None
    text = str(status_message(dep, template(), now=NOW))
    assert LONG_LABEL not in text and "x?y=" not in text
