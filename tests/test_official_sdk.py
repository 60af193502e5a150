"""The official Vast.ai Python SDK (``pip install vastai``, ``from vastai import VastAI``)
against the simulator: its own query strings, create/show/list/stop/start/label/destroy and
show user, checked against the vendored OpenAPI specs (tests/specs/vast-*.yaml) and against
what the simulator holds. Where the two disagree, the simulator is wrong.

The SDK uses ``requests`` and would read a key from ``VAST_API_KEY`` or ``~/.config/vastai``:
here it gets the key and ``server_url`` explicitly, HOME and XDG_CONFIG_HOME point at an
empty folder, proxies are cleared and any connection outside 127.0.0.1 fails the test. The
CLI (``vastai attach ssh``) runs in a child process with the same empty HOME, ``--url`` of
the simulator and its update check off (``VASTAI_NO_UPDATE_CHECK``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from vastai import VastAI  # the official SDK, in the test extra: a missing one fails loudly
from vastai.api.client import is_search_quota_exceeded

from bot.simulator import Fault, Timeline, VastSimulator
from tests.test_simulator import _list_item_schema, _response_schema, _validate
from tests.test_vast_ssh_keys import public_key

SDK_KEY = "sim-sdk-key-0d9c41be"
MB_PER_GB = 1000  # the SDK multiplies gpu_ram/cpu_ram GB by 1000 (vastai/api/query.py)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key file, no proxy, no environment defaults, and no connection but to 127.0.0.1."""
    for name in ("VAST_API_KEY", "VAST_URL", "VAST_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    real_connect = socket.socket.connect

    def local_only(sock: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"the test tried to reach {address}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


@pytest.fixture
def sim(make_vast_sim: Callable[..., VastSimulator]) -> VastSimulator:
    """Running instances at once (the SDK reads ``start_date``, null before ``created``)."""
    return make_vast_sim(api_key=SDK_KEY, timeline=Timeline.instant())


@pytest.fixture
def sdk(sim: VastSimulator) -> Iterator[VastAI]:
    yield VastAI(api_key=SDK_KEY, server_url=sim.base_url, retry=1)


def test_the_network_guard_holds() -> None:
    with pytest.raises(AssertionError, match="tried to reach"):
        socket.create_connection(("192.0.2.1", 443), timeout=0.5)  # TEST-NET-1


def _answer(error: pytest.ExceptionInfo[requests.HTTPError]) -> requests.Response:
    """The HTTP answer behind the SDK's ``raise_for_status``."""
    assert error.value.response is not None
    return error.value.response


def _defaults(offer: dict[str, Any]) -> bool:
    """The SDK's default filters for a query string: verified, not external, rentable."""
    return offer["verification"] == "verified" and not offer["external"] and offer["rentable"]


QUERIES: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
    (
        "gpu_ram>=8 num_gpus=1 verified=true",
        lambda o: o["gpu_ram"] >= 8 * MB_PER_GB and o["num_gpus"] == 1,
    ),
    ("dph<1.5 reliability>0.9", lambda o: o["dph_total"] < 1.5 and o["reliability"] > 0.9),
    ("compute_cap>=800", lambda o: o["compute_cap"] >= 800),
    ("disk_space>=50", lambda o: o["disk_space"] >= 50),
    ("cuda_vers>=12.4 num_gpus<=2", lambda o: o["cuda_max_good"] >= 12.4 and o["num_gpus"] <= 2),
    ("gpu_name=RTX_4090", lambda o: o["gpu_name"] == "RTX 4090"),
    (
        "num_gpus in [2,4] gpu_total_ram>=48",
        lambda o: o["num_gpus"] in (2, 4) and o["gpu_total_ram"] >= 48 * MB_PER_GB,
    ),
    ("geolocation in [US,CA]", lambda o: o["geolocation"][-2:] in ("US", "CA")),
    (
        "direct_port_count>=16 inet_down>=500",
        lambda o: o["direct_port_count"] >= 16 and o["inet_down"] >= 500,
    ),
    ("driver_version>=550.0.0", lambda o: int(o["driver_version"].split(".")[0]) >= 550),
    ("static_ip=false datacenter=true", lambda o: not o["static_ip"] and o["hosting_type"] == 1),
]


def _dph_at(offer: dict[str, Any], storage_gb: float) -> float:
    """The price the search should show for ``storage_gb`` (docs/VAST_API.md §2 price identity)."""
    return float(offer["dph_base"]) + storage_gb * float(offer["storage_cost"]) / 720


@pytest.mark.parametrize(("query", "check"), QUERIES, ids=[q for q, _ in QUERIES])
def test_search_offers_with_sdk_query_strings(
    sim: VastSimulator, sdk: VastAI, query: str, check: Callable[[dict[str, Any]], bool]
) -> None:
    found = sdk.search_offers(query, limit=1000)
    sent = sim.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/api/v0/bundles/")
    storage = sent.json["allocated_storage"]  # the SDK's default, 5.0 GB
    held = {o["id"]: o for o in sim.offers}
    priced = {i: {**o, "dph_total": round(_dph_at(o, storage), 6)} for i, o in held.items()}
    expected = {i for i, o in priced.items() if _defaults(o) and check(o)}
    assert found, query
    assert {o["id"] for o in found} == expected, query
    for offer in found:  # every answer satisfies the query numerically
        assert check(offer) and _defaults(offer), (query, offer["id"])
        assert offer["dph_total"] == pytest.approx(_dph_at(held[offer["id"]], storage), abs=1e-5)
    scores = [o["score"] for o in found]
    assert scores == sorted(scores, reverse=True)  # the SDK's default order "score-"
    _validate({"offers": found}, _response_schema("search_offers", "/api/v0/bundles/", "post"))


def test_search_numbers_arrive_as_strings(sim: VastSimulator, sdk: VastAI) -> None:
    """What the SDK sends (and so what the simulator must compare as numbers)."""
    sdk.search_offers("num_gpus=1 dph<1.5 gpu_ram>=8 compute_cap>=800", order="dph", limit=5)
    body = sim.requests[-1].json
    assert body["num_gpus"] == {"eq": "1"} and body["dph_total"] == {"lt": "1.5"}
    assert body["compute_cap"] == {"gte": "800"} and body["gpu_ram"] == {"gte": 8000.0}
    assert body["order"] == [["dph_total", "asc"]] and body["limit"] == 5
    found = sdk.search_offers("num_gpus=1 dph<1.5", order="dph", limit=5)
    prices = [o["dph_total"] for o in found]
    assert len(found) == 5 and prices == sorted(prices)


def test_instance_lifecycle_with_sdk(sim: VastSimulator, sdk: VastAI) -> None:
    offer = sdk.search_offers("direct_port_count>=4 disk_space>=20", order="dph", limit=1)[0]
    # as `vastai create instance ID --image … --disk 20 --ssh --direct` sends it
    created = sdk.create_instance(
        offer["id"], image="vastai/base-image:latest", disk=20, ssh=True, direct=True
    )
    _validate(created, _response_schema("create_instance", "/api/v0/asks/{id}/", "put"))
    assert created["success"] is True
    instance_id = created["new_contract"]
    sent = sim.requests[-1]
    assert (sent.method, sent.path) == ("PUT", f"/api/v0/asks/{offer['id']}/")
    assert sent.json["runtype"] == "ssh_direc ssh_proxy" and sent.json["disk"] == 20
    held = sim.instance(instance_id)
    assert held is not None and held["image_runtype"] == "ssh_direc ssh_proxy"
    assert offer["id"] not in {o["id"] for o in sim.offers}  # rented: out of the search

    shown = sdk.show_instance(instance_id)
    assert shown is not None
    assert sim.requests[-1].query == {"owner": "me"}
    held = sim.instance(instance_id)
    assert held is not None
    for key in ("id", "actual_status", "intended_status", "image_uuid", "ssh_host", "ssh_port"):
        assert shown[key] == held[key], key
    assert shown["actual_status"] == "running" and shown["disk_space"] == 20
    assert shown["ports"]["22/tcp"][0]["HostPort"] == held["ports"]["22/tcp"][0]["HostPort"]
    assert shown["public_ipaddr"] == held["public_ipaddr"]  # show_instance does not strip
    assert shown["extra_env"] == {}  # the SDK turns [[key, value], …] into a dict

    stopped = sdk.stop_instance(instance_id)
    _validate(stopped, _response_schema("manage_instance", "/api/v0/instances/{id}/", "put"))
    held = sim.instance(instance_id)
    assert stopped["success"] is True and held is not None
    # a stopped container has exited (bot/simulator/instances.py, as Vast.ai lists it)
    assert (held["intended_status"], held["cur_state"]) == ("stopped", "stopped")
    assert held["actual_status"] == "exited"
    started = sdk.start_instance(instance_id)
    _validate(started, _response_schema("manage_instance", "/api/v0/instances/{id}/", "put"))
    held = sim.instance(instance_id)
    assert held is not None and held["intended_status"] == "running"
    labelled = sdk.label_instance(instance_id, "sdk-label")
    _validate(labelled, _response_schema("label_instance", "/api/v0/instances/{id}/", "put"))
    held = sim.instance(instance_id)
    assert labelled["success"] is True and held is not None and held["label"] == "sdk-label"

    destroyed = sdk.destroy_instance(instance_id)
    _validate(destroyed, _response_schema("destroy_instance", "/api/v0/instances/{id}/", "delete"))
    assert destroyed["success"] is True and sim.instance(instance_id) is None
    assert sdk.show_instance(instance_id) is None  # {"instances": null} once gone
    assert offer["id"] in {o["id"] for o in sim.offers}  # back in the search


def test_list_instances_pages_with_sdk(sim: VastSimulator, sdk: VastAI) -> None:
    ids = sorted(sim.create_instance_directly(label=f"job-{n % 3}") for n in range(30))
    rows = sdk.show_instances()  # v1 list, order_by id asc, 25 per page, follows next_token
    assert [r["id"] for r in rows] == ids
    pages = [r for r in sim.requests if r.path == "/api/v1/instances/"]
    assert len(pages) == 2 and "after_token" in pages[1].query
    held = sim.instances
    assert all(r["label"] == held[r["id"]]["label"] for r in rows)

    page = sdk.show_instances_v1(
        {
            "select_filters": {"id": {"in": ids[3:8]}, "label": {"eq": "job-0"}},
            "order_by": [{"col": "label", "dir": "desc"}],
            "limit": 2,
        }
    )
    _validate(page, _response_schema("show_instances", "/api/v1/instances/", "get"))
    wanted = [i for i in ids[3:8] if held[i]["label"] == "job-0"]
    assert page["total_instances"] == len(wanted) and page["label_counts"] == {"job-0": len(wanted)}
    assert [r["id"] for r in page["instances"]] == wanted[:2]
    item = _list_item_schema()
    for row in page["instances"]:
        _validate(row, item)
    with pytest.raises(requests.HTTPError) as bad:
        sdk.show_instances_v1({"select_filters": {"dph_total": {"lt": 1}}})
    assert _answer(bad).status_code == 400 and _answer(bad).json()["error"] == "invalid_request"


def test_show_user_with_sdk(sim: VastSimulator, sdk: VastAI) -> None:
    sim.credit = 12.5
    user = sdk.show_user()
    _validate(user, _response_schema("show_user", "/api/v0/users/current/", "get"))
    assert user["credit"] == 12.5 and "api_key" not in user
    wrong = VastAI(api_key="not-the-key", server_url=sim.base_url, retry=1)
    with pytest.raises(requests.HTTPError) as refused:
        wrong.show_user()
    assert _answer(refused).json()["error"] == "auth_error"


def test_sdk_reads_the_simulated_429s(sim: VastSimulator) -> None:
    sdk = VastAI(api_key=SDK_KEY, server_url=sim.base_url, retry=3)
    sim.inject(Fault.SEARCH_QUOTA_EXCEEDED)
    sim.clear_requests()
    with pytest.raises(requests.HTTPError) as quota:
        sdk.search_offers("num_gpus=1")
    assert is_search_quota_exceeded(_answer(quota))
    assert int(_answer(quota).headers["X-RateLimit-Reset"]) % 86_400 == 0
    assert sim.request_count() == 1  # the SDK does not retry a daily quota
    sim.inject(Fault.RATE_LIMIT_RETRY_AFTER, endpoint="user", seconds=0.2)
    sim.clear_requests()
    assert sdk.show_user()["id"]  # waited out Retry-After and tried again
    assert sim.request_count() == 2


def test_sdk_meets_the_rate_limiter(make_vast_sim: Callable[..., VastSimulator]) -> None:
    now = [100.0]
    sim = make_vast_sim(
        api_key=SDK_KEY, timeline=Timeline.instant(), rate_limits=True, rate_clock=lambda: now[0]
    )
    sdk = VastAI(api_key=SDK_KEY, server_url=sim.base_url, retry=1)
    sdk.show_user()
    with pytest.raises(requests.HTTPError) as limited:
        sdk.show_user()
    response = _answer(limited)
    assert response.status_code == 429 and "Retry-After" not in response.headers
    assert response.text == "API requests too frequent endpoint threshold=1.0"
    assert sim.rate_limited_count == 1
    now[0] += 1.0
    assert sdk.show_user()["id"]


# -- SSH keys of one instance ------------------------------------------------------------


def test_sdk_attaches_and_detaches_a_key_on_one_instance(sim: VastSimulator, sdk: VastAI) -> None:
    """``VastAI.attach_ssh`` / ``detach_ssh`` (vastai/api/keys.py) on the simulator: one
    instance gets the key, the other does not, and nothing goes to the account's keys."""
    mine, other = sim.create_instance_directly(), sim.create_instance_directly()
    key = public_key("sdk@laptop")
    answer = sdk.attach_ssh(mine, key)
    assert answer == {"success": True, "msg": "SSH key attached successfully"}
    assert sim.instance_ssh_keys(mine) == [key] and sim.instance_ssh_keys(other) == []
    listed = requests.get(
        f"{sim.base_url}/api/v0/instances/{mine}/ssh/",
        headers={"Authorization": f"Bearer {SDK_KEY}"},
        timeout=5,
    ).json()
    (entry,) = json.loads(listed["ssh_keys"])
    assert sdk.detach_ssh(mine, str(entry["id"])) == {
        "success": True,
        "msg": "SSH key removed from instance.",
    }
    assert sim.instance_ssh_keys(mine) == []
    with pytest.raises(requests.HTTPError) as unknown_key:
        sdk.detach_ssh(mine, str(entry["id"]))
    assert _answer(unknown_key).json()["error"] == "no_such_ssh_key"
    with pytest.raises(requests.HTTPError) as unknown_instance:
        sdk.attach_ssh(999, key)
    assert _answer(unknown_instance).status_code == 404
    assert _answer(unknown_instance).json()["error"] == "no_such_instance"
    with pytest.raises(requests.HTTPError) as malformed:
        sdk.attach_ssh(mine, "ssh-ed25519 not-a-key")
    assert _answer(malformed).status_code == 400
    assert _answer(malformed).json()["success"] is False
    assert sim.request_count(path_prefix="/api/v0/ssh") == 0


def _cli(sim: VastSimulator, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the official ``vastai`` CLI against ``sim`` (its own process: the CLI builds a
    global parser once per process), with an empty HOME and no update check."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "VASTAI_NO_UPDATE_CHECK": "1",
        "NO_PROXY": "127.0.0.1",
    }
    code = "import sys; from vastai.cli.main import main; sys.argv[0] = 'vastai'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, "--url", str(sim.base_url), "--api-key", SDK_KEY, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cli_attach_ssh_runs_against_the_simulator(sim: VastSimulator, tmp_path: Path) -> None:
    """``vastai attach ssh <instance_id> <ssh_key>`` (docs.vast.ai/cli/reference/attach-ssh),
    with the key as text and as a ``.pub`` file, and a malformed key's 400."""
    instance_id = sim.create_instance_directly()
    as_text, as_file = public_key("cli@laptop"), public_key("file@laptop")
    pub = tmp_path / "id_ed25519.pub"
    pub.write_text(as_file + "\n")
    done = _cli(sim, tmp_path, "attach", "ssh", str(instance_id), as_text)
    assert done.returncode == 0 and "SSH key attached successfully" in done.stdout, done.stderr
    done = _cli(sim, tmp_path, "attach", "ssh", str(instance_id), str(pub))
    assert "SSH key attached successfully" in done.stdout, done.stderr
    assert sim.instance_ssh_keys(instance_id) == [as_text, as_file]
    refused = _cli(sim, tmp_path, "attach", "ssh", str(instance_id), "ssh-rsa AAAA")
    assert "Failed with error 400" in refused.stderr
    posts = [r for r in sim.requests if r.method == "POST"]
    assert [r.path for r in posts] == [f"/api/v0/instances/{instance_id}/ssh/"] * 3
    assert sim.request_count(path_prefix="/api/v0/ssh") == 0
