"""The Vast.ai simulator: stock, search semantics, timeline, ports, faults, pagination, and
answers validated against the vendor's OpenAPI schemas (tests/specs/vast-*.yaml)."""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from bot.simulator import GPU_MODELS, Fault, Timeline, VastSimulator
from bot.simulator.cli import parse_account
from bot.simulator.stock import generate_offers
from bot.vast.errors import AuthError, NotFound
from tests.fixtures.vast import VAST_TEST_API_KEY, client_for

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "specs"  # vendored copies, see specs/README.md
AUTH = {"Authorization": f"Bearer {VAST_TEST_API_KEY}"}
PORTS_ENV = {"-p 8188:8188": "1", "-p 7860:7860": "1", "-p 9000:9000/udp": "1", "SECRET": "s3"}


def api(sim: VastSimulator, method: str, path: str, **kwargs: Any) -> httpx.Response:
    assert sim.base_url is not None
    headers = kwargs.pop("headers", AUTH)
    return httpx.request(method, sim.base_url + path, headers=headers, timeout=5, **kwargs)


def search(sim: VastSimulator, query: dict[str, Any]) -> list[dict[str, Any]]:
    response = api(sim, "POST", "/api/v0/bundles/", json=query)
    assert response.status_code == 200, response.text
    offers: list[dict[str, Any]] = response.json()["offers"]
    return offers


def rent(sim: VastSimulator, offer_id: int, **body: Any) -> int:
    payload = {"client_id": "me", "image": "vastai/comfyui:latest", "env": PORTS_ENV, "disk": 20}
    payload.update(body)
    response = api(sim, "PUT", f"/api/v0/asks/{offer_id}/", json=payload)
    assert response.status_code == 200, response.text
    new_contract: int = response.json()["new_contract"]
    return new_contract


def show(sim: VastSimulator, instance_id: int) -> dict[str, Any] | None:
    response = api(sim, "GET", f"/api/v0/instances/{instance_id}/")
    assert response.status_code == 200
    shown: dict[str, Any] | None = response.json()["instances"]
    return shown


def direct_offer(sim: VastSimulator) -> int:
    return next(o["id"] for o in sim.offers if o["direct_port_count"] > 0 and o["rentable"])


# -- stock --------------------------------------------------------------------------------------


def test_stock_is_realistic_and_deterministic() -> None:
    offers = generate_offers(7, now=1.8e9)
    assert 60 <= len(offers) <= 120
    assert offers == generate_offers(7, now=1.8e9)
    assert offers != generate_offers(8, now=1.8e9)
    assert {o["gpu_name"] for o in offers} == {m.name for m in GPU_MODELS}
    countries = {o["geolocation"].rsplit(",", 1)[-1].strip() for o in offers}
    assert {"US", "CA", "DE", "FI", "JP"} <= countries
    assert any(o["direct_port_count"] == 0 for o in offers)
    assert any(o["verification"] != "verified" for o in offers)
    assert {o["num_gpus"] for o in offers} >= {1, 2, 4, 8}
    assert {o["compute_cap"] for o in offers} == {800, 860, 890, 900}
    assert all(11.8 <= o["cuda_max_good"] <= 12.8 for o in offers)
    assert 24564 in {o["gpu_ram"] for o in offers}
    assert len({o["id"] for o in offers}) == len(offers)
    for o in offers:
        assert o["dph_total"] == pytest.approx(
            o["dph_base"] + 8 * o["storage_cost"] / 720, abs=1e-5
        )
        assert 0 < o["dph_base"] < 30 and 0.9 <= o["reliability2"] <= 1


# -- search -------------------------------------------------------------------------------------


def test_search_default_limit_is_64(vast_sim: VastSimulator) -> None:
    assert len(vast_sim.offers) > 64
    assert len(search(vast_sim, {})) == 64
    assert len(search(vast_sim, {"limit": 500})) == len(vast_sim.offers)
    assert len(search(vast_sim, {"limit": 3})) == 3


@pytest.mark.parametrize(
    ("field", "cond", "check"),
    [
        ("gpu_name", {"eq": "RTX 3090"}, lambda o: o["gpu_name"] == "RTX 3090"),
        ("gpu_name", {"neq": "RTX 3090"}, lambda o: o["gpu_name"] != "RTX 3090"),
        (
            "gpu_name",
            {"in": ["H100 SXM", "A100 SXM4"]},
            lambda o: o["gpu_name"] in ("H100 SXM", "A100 SXM4"),
        ),
        ("num_gpus", {"notin": [1, 2]}, lambda o: o["num_gpus"] >= 4),
        ("gpu_ram", {"gte": 22800}, lambda o: o["gpu_ram"] >= 22800),
        ("gpu_ram", {"gt": 40960}, lambda o: o["gpu_ram"] > 40960),
        ("dph_total", {"lt": 0.3}, lambda o: o["dph_total"] < 0.3),
        ("cuda_max_good", {"lte": 12.0}, lambda o: o["cuda_max_good"] <= 12.0),
        ("num_gpus", {"gte": 2, "lte": 4}, lambda o: 2 <= o["num_gpus"] <= 4),
        ("verified", {"eq": True}, lambda o: o["verification"] == "verified"),
        ("verified", {"eq": False}, lambda o: o["verification"] != "verified"),
        ("rentable", {"eq": True}, lambda o: o["rentable"] is True),
        ("geolocation", {"in": ["US", "ca"]}, lambda o: o["geolocation"][-2:] in ("US", "CA")),
        ("geolocation", {"notin": ["CN", "TW"]}, lambda o: o["geolocation"][-2:] not in "CN TW"),
        ("cuda_vers", {"gte": 12.6}, lambda o: o["cuda_max_good"] >= 12.6),
        # numbers and booleans as the official client sends them: strings (query.py)
        ("num_gpus", {"eq": "1"}, lambda o: o["num_gpus"] == 1),
        ("num_gpus", {"in": ["1", "2"]}, lambda o: o["num_gpus"] in (1, 2)),
        ("num_gpus", {"notin": ["1", "2"]}, lambda o: o["num_gpus"] >= 4),
        ("gpu_ram", {"gte": "22800.0"}, lambda o: o["gpu_ram"] >= 22800),
        ("gpu_ram", {"lt": "12288"}, lambda o: o["gpu_ram"] < 12288),
        ("dph_total", {"lt": "0.3"}, lambda o: o["dph_total"] < 0.3),
        ("reliability", {"gt": "0.95"}, lambda o: o["reliability"] > 0.95),
        ("compute_cap", {"gte": "890"}, lambda o: o["compute_cap"] >= 890),
        ("disk_space", {"gte": "500"}, lambda o: o["disk_space"] >= 500),
        ("cuda_max_good", {"gte": "12.4"}, lambda o: o["cuda_max_good"] >= 12.4),
        ("direct_port_count", {"gte": "16"}, lambda o: o["direct_port_count"] >= 16),
        ("verified", {"eq": "true"}, lambda o: o["verification"] == "verified"),
        ("static_ip", {"eq": "false"}, lambda o: o["static_ip"] is False),
        ("datacenter", {"eq": True}, lambda o: o["hosting_type"] == 1),
        # driver_version: the client sends 535.183.01 as 535183001 (query.py numeric_version)
        ("driver_version", {"gte": 550000000}, lambda o: int(o["driver_version"][:3]) >= 550),
        ("driver_version", {"eq": "535.183.01"}, lambda o: o["driver_version"] == "535.183.01"),
    ],
)
def test_search_filters(
    vast_sim: VastSimulator, field: str, cond: dict[str, Any], check: Any
) -> None:
    got = search(vast_sim, {field: cond, "limit": 1000})
    expected = [o for o in vast_sim.offers if check(o)]
    assert got and len(got) == len(expected)
    assert all(check(o) for o in got)


def test_search_order_and_storage_pricing(vast_sim: VastSimulator) -> None:
    asc = search(
        vast_sim, {"order": [["dph_total", "asc"]], "limit": 500, "allocated_storage": 100}
    )
    prices = [o["dph_total"] for o in asc]
    assert len(prices) > 1 and prices == sorted(prices)
    for o in asc:
        assert o["dph_total"] == pytest.approx(
            o["dph_base"] + 100 * o["storage_cost"] / 720, abs=1e-5
        )
        assert o["search"]["totalHour"] == o["dph_total"]
    desc = search(vast_sim, {"order": [["num_gpus", "desc"], ["dph_total", "asc"]], "limit": 500})
    keys = [(-o["num_gpus"], o["dph_total"]) for o in desc]
    assert len(keys) > 1 and keys == sorted(keys)
    cheap = search(vast_sim, {"dph_total": {"lte": 0.2}, "allocated_storage": 500, "limit": 500})
    assert cheap and all(o["dph_total"] <= 0.2 for o in cheap)
    bid = search(vast_sim, {"type": "bid", "limit": 500, "allocated_storage": 8})
    assert bid and all(
        o["dph_total"] == pytest.approx(o["min_bid"] + 8 * o["storage_cost"] / 720, abs=1e-5)
        for o in bid
    )


def test_search_bad_operator_is_400(vast_sim: VastSimulator) -> None:
    response = api(vast_sim, "POST", "/api/v0/bundles/", json={"num_gpus": {"like": 1}})
    assert response.status_code == 400 and response.json()["error"] == "invalid_args"


def test_add_and_take_offer(vast_sim: VastSimulator) -> None:
    offer_id = vast_sim.add_offer(gpu_name="RTX 4090", num_gpus=2, dph_base=0.01, verified=False)
    offer = next(o for o in search(vast_sim, {"id": {"eq": offer_id}, "limit": 5}))
    assert offer["verification"] == "unverified" and offer["gpu_total_ram"] == 2 * 24564
    vast_sim.take_offer(offer_id)
    assert search(vast_sim, {"id": {"eq": offer_id}, "limit": 5}) == []
    response = api(vast_sim, "PUT", f"/api/v0/asks/{offer_id}/", json={"image": "x", "env": {}})
    assert response.status_code == 404 and "no_such_ask" in response.json()["msg"]


# -- create, timeline, ports ----------------------------------------------------------------------


def test_rented_offer_leaves_search_and_returns_on_destroy(vast_sim: VastSimulator) -> None:
    offer_id = direct_offer(vast_sim)
    instance_id = rent(vast_sim, offer_id, label="slackbot:1")
    assert offer_id not in {o["id"] for o in search(vast_sim, {"limit": 500})}
    assert api(vast_sim, "DELETE", f"/api/v0/instances/{instance_id}/").json() == {"success": True}
    assert offer_id in {o["id"] for o in search(vast_sim, {"limit": 500})}
    assert show(vast_sim, instance_id) is None
    gone = api(vast_sim, "DELETE", f"/api/v0/instances/{instance_id}/")
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"env": "-e A=b -p 80:80"}, "env"),
        ({"disk": 4}, "disk"),
        ({"image": ""}, "image"),
        ({"label": "x" * 257}, "label"),
        ({"runtype": "magic"}, "runtype"),
    ],
)
def test_create_rejects_bad_input(
    vast_sim: VastSimulator, body: dict[str, Any], needle: str
) -> None:
    payload = {"image": "img", "env": {}, "disk": 10, **body}
    response = api(vast_sim, "PUT", f"/api/v0/asks/{direct_offer(vast_sim)}/", json=payload)
    assert response.status_code == 400 and needle in response.json()["msg"]
    assert vast_sim.instances == {}


def test_timeline_states_ports_and_app(vast_sim: VastSimulator) -> None:
    offer = next(o for o in vast_sim.offers if o["id"] == direct_offer(vast_sim))
    instance_id = rent(vast_sim, offer["id"], disk=30, label="slackbot:7", runtype="jupyter_direct")
    inst = show(vast_sim, instance_id)
    assert inst is not None
    assert (inst["actual_status"], inst["intended_status"], inst["ports"]) == (
        "created",
        "running",
        None,
    )
    assert inst["public_ipaddr"] == "127.0.0.1\n"
    assert inst["extra_env"] == [[k, v] for k, v in PORTS_ENV.items()]
    assert inst["dph_total"] == pytest.approx(offer["dph_base"] + 30 * offer["storage_cost"] / 720)
    assert (inst["gpu_name"], inst["num_gpus"], inst["gpu_ram"]) == (
        offer["gpu_name"],
        offer["num_gpus"],
        offer["gpu_ram"],
    )
    assert inst["label"] == "slackbot:7" and inst["start_date"] > 1e9 and inst["jupyter_token"]

    vast_sim.advance(1)
    inst = show(vast_sim, instance_id)
    assert inst is not None and inst["actual_status"] == "loading" and inst["ports"] is None

    vast_sim.advance(1)
    inst = show(vast_sim, instance_id)
    assert inst is not None and inst["actual_status"] == "running"
    assert inst["status_msg"].startswith("success, running vastai/comfyui")
    assert set(inst["ports"]) == {"8188/tcp", "7860/tcp", "9000/udp", "22/tcp", "8080/tcp"}
    host_port = int(inst["ports"]["8188/tcp"][0]["HostPort"])
    assert inst["ports"]["8188/tcp"][0]["HostIp"] == "0.0.0.0"
    url = f"http://{inst['public_ipaddr'].strip()}:{host_port}/any/path"
    assert httpx.get(url, timeout=2).status_code == 503

    vast_sim.advance(1)
    assert httpx.get(url, timeout=2).status_code == 200
    assert httpx.head(url, timeout=2).status_code == 200

    assert api(
        vast_sim, "PUT", f"/api/v0/instances/{instance_id}/", json={"state": "stopped"}
    ).json()["success"]
    inst = show(vast_sim, instance_id)
    assert inst is not None
    assert (inst["actual_status"], inst["intended_status"]) == ("exited", "stopped")
    assert inst["ports"] is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)

    api(vast_sim, "PUT", f"/api/v0/instances/{instance_id}/", json={"state": "running"})
    inst = show(vast_sim, instance_id)
    assert inst is not None and inst["actual_status"] == "created"
    vast_sim.advance(3)
    inst = show(vast_sim, instance_id)
    assert inst is not None and inst["actual_status"] == "running"
    new_url = f"http://127.0.0.1:{inst['ports']['8188/tcp'][0]['HostPort']}/"
    assert httpx.get(new_url, timeout=2).status_code == 200


def test_real_clock_with_instant_timeline(make_vast_sim: Any) -> None:
    sim = make_vast_sim(timeline=Timeline.instant(), frozen_clock=False)
    instance_id = rent(sim, direct_offer(sim))
    inst = show(sim, instance_id)
    assert inst is not None and inst["actual_status"] == "running"
    port = inst["ports"]["8188/tcp"][0]["HostPort"]
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200


def test_real_clock_moves_on_its_own(make_vast_sim: Any) -> None:
    sim = make_vast_sim(timeline=Timeline(0, 0.05, 0.1, 0.15), frozen_clock=False)
    instance_id = rent(sim, direct_offer(sim))
    deadline = time.monotonic() + 5
    status = None
    while time.monotonic() < deadline:
        inst = show(sim, instance_id)
        status = inst["actual_status"] if inst else None
        if status == "running":
            break
        time.sleep(0.02)
    assert status == "running"


def test_no_direct_ports_means_no_mapping(vast_sim: VastSimulator) -> None:
    offer_id = vast_sim.add_offer(direct_port_count=0)
    instance_id = rent(vast_sim, offer_id)
    vast_sim.advance(5)
    inst = show(vast_sim, instance_id)
    assert inst is not None and inst["actual_status"] == "running" and inst["ports"] is None


def test_disk_is_silently_capped(vast_sim: VastSimulator) -> None:
    offer_id = vast_sim.add_offer(disk_space=25.0)
    inst = show(vast_sim, rent(vast_sim, offer_id, disk=100))
    assert inst is not None and inst["disk_space"] == 25.0


# -- per-instance faults ------------------------------------------------------------------------


def test_per_instance_faults(vast_sim: VastSimulator) -> None:
    ids = [vast_sim.create_instance_directly(env={"-p 80:80": "1"}) for _ in range(6)]
    stuck, exited, oci, gone, never, outbid = ids
    vast_sim.stuck_loading(stuck)
    vast_sim.exit_instance(exited, "python: can't open file 'app.py'")
    vast_sim.status_msg_error(oci, "OCI runtime create failed: unable to start container")
    vast_sim.app_never_ready(never)
    vast_sim.advance(60)
    vast_sim.vanish(gone)
    vast_sim.stop_by_vast(outbid)

    assert show(vast_sim, stuck)["actual_status"] == "loading"  # type: ignore[index]
    inst = show(vast_sim, exited)
    assert inst is not None and inst["actual_status"] == "exited" and "app.py" in inst["status_msg"]
    inst = show(vast_sim, oci)
    assert inst is not None and inst["actual_status"] == "created"
    assert "OCI runtime create failed" in inst["status_msg"]
    assert show(vast_sim, gone) is None
    assert gone not in {
        i["id"] for i in api(vast_sim, "GET", "/api/v1/instances/").json()["instances"]
    }
    inst = show(vast_sim, outbid)
    assert inst is not None
    assert inst["cur_state"] == inst["intended_status"] == inst["next_state"] == "stopped"
    inst = show(vast_sim, never)
    assert inst is not None and inst["actual_status"] == "running"
    port = inst["ports"]["80/tcp"][0]["HostPort"]
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 503
    with pytest.raises(KeyError):
        vast_sim.stuck_loading(gone)


def _listed(sim: VastSimulator, instance_id: int) -> dict[str, Any]:
    rows = api(sim, "GET", "/api/v1/instances/").json()["instances"]
    row: dict[str, Any] = next(r for r in rows if r["id"] == instance_id)
    return row


def test_set_utilisation(vast_sim: VastSimulator) -> None:
    busy, idle = (vast_sim.create_instance_directly() for _ in range(2))
    vast_sim.advance(60)
    shown, listed = show(vast_sim, idle), _listed(vast_sim, idle)
    assert shown is not None
    assert (shown["gpu_util"], shown["cpu_util"]) == (0.02, 1.0)  # the defaults
    assert (listed["gpu_util"], listed["cpu_util"]) == (0.02, 1.0)

    vast_sim.set_utilisation(busy, gpu_util=97.5, cpu_util=42.0)
    shown, listed = show(vast_sim, busy), _listed(vast_sim, busy)
    assert shown is not None
    assert (shown["gpu_util"], shown["cpu_util"]) == (97.5, 42.0)
    assert (listed["gpu_util"], listed["cpu_util"]) == (97.5, 42.0)
    narrow = api(
        vast_sim,
        "GET",
        "/api/v1/instances/",
        params={"select_cols": json.dumps(["id", "gpu_util", "cpu_util"])},
    ).json()["instances"]
    assert {"id": busy, "gpu_util": 97.5, "cpu_util": 42.0} in narrow
    assert show(vast_sim, idle)["gpu_util"] == 0.02  # type: ignore[index]  # per instance

    vast_sim.set_utilisation(busy, gpu_util=None)  # cpu_util defaults to None too
    shown, listed = show(vast_sim, busy), _listed(vast_sim, busy)
    assert shown is not None
    assert shown["gpu_util"] is None and shown["cpu_util"] is None
    assert listed["gpu_util"] is None and listed["cpu_util"] is None

    vast_sim.set_utilisation(busy, gpu_util=80.0, cpu_util=30.0)
    api(vast_sim, "PUT", f"/api/v0/instances/{busy}/", json={"state": "stopped"})
    shown, listed = show(vast_sim, busy), _listed(vast_sim, busy)
    assert shown is not None and shown["actual_status"] == "exited"
    # stopped: gpu_util null; cpu_util 0.0, since the specs do not let it be null
    assert (shown["gpu_util"], shown["cpu_util"]) == (None, 0.0)
    assert (listed["gpu_util"], listed["cpu_util"]) == (None, 0.0)
    vast_sim.stop_by_vast(idle)
    assert (show(vast_sim, idle) or {}).get("gpu_util", "missing") is None

    with pytest.raises(KeyError):
        vast_sim.set_utilisation(1, gpu_util=1.0)


# -- list / pagination ----------------------------------------------------------------------------


def test_v1_list_pagination_and_filters(vast_sim: VastSimulator) -> None:
    ids = sorted(vast_sim.create_instance_directly(label=f"l{n % 3}") for n in range(30))
    first = api(vast_sim, "GET", "/api/v1/instances/", params={"limit": 100}).json()
    assert first["instances_found"] == 25 and first["total_instances"] == 30
    assert first["label_counts"] == {"l0": 10, "l1": 10, "l2": 10}
    assert [i["id"] for i in first["instances"]] == ids[:25]
    json.loads(base64.b64decode(first["next_token"]))  # opaque but decodable, like Vast's
    second = api(
        vast_sim, "GET", "/api/v1/instances/", params={"after_token": first["next_token"]}
    ).json()
    assert [i["id"] for i in second["instances"]] == ids[25:] and second["next_token"] is None
    small = api(vast_sim, "GET", "/api/v1/instances/", params={"limit": 0}).json()
    assert small["instances_found"] == 5

    filt = {"select_filters": json.dumps({"label": {"eq": "l1"}}), "select_cols": '["id","label"]'}
    only = api(vast_sim, "GET", "/api/v1/instances/", params=filt).json()
    assert {tuple(i) for i in only["instances"]} == {("id", "label")} and only[
        "total_instances"
    ] == 10

    bad = api(vast_sim, "GET", "/api/v1/instances/", params={"after_token": "garbage!"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_token"
    computed = {"select_filters": json.dumps({"dph_total": {"lt": 1}})}
    assert api(vast_sim, "GET", "/api/v1/instances/", params=computed).status_code == 400
    unknown = api(vast_sim, "GET", "/api/v0/nothing-here/")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("text/html")
    v0 = api(vast_sim, "GET", "/api/v0/instances/")
    assert v0.status_code == 410 and v0.json()["error"] == "deprecated_endpoint"


def _list(sim: VastSimulator, **params: Any) -> httpx.Response:
    encoded = {k: v if isinstance(v, str | int) else json.dumps(v) for k, v in params.items()}
    return api(sim, "GET", "/api/v1/instances/", params=encoded)


def _all_pages(sim: VastSimulator, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _ in range(100):  # a paging bug must fail, not loop
        page = _list(sim, **params)
        assert page.status_code == 200, page.text
        body = page.json()
        rows += body["instances"]
        if not body["next_token"]:
            return rows
        params["after_token"] = body["next_token"]
    raise AssertionError("more than 100 pages")


def test_v1_list_order_by_pages_in_order(vast_sim: VastSimulator) -> None:
    for n in range(31):
        vast_sim.create_instance_directly(label=None if n % 7 == 0 else f"l{n % 4}")
    # label descending with nulls first (PostgreSQL's order), ids ascending as tie-breaker
    live = vast_sim.instances.values()
    rest = sorted((r for r in live if r["label"] is not None), key=lambda r: r["id"])
    rest.sort(key=lambda r: r["label"], reverse=True)  # stable: ids stay ascending
    wanted = sorted(r["id"] for r in live if r["label"] is None) + [r["id"] for r in rest]
    order = [{"col": "label", "dir": "desc"}]
    rows = _all_pages(vast_sim, order_by=order, limit=4)
    assert [r["id"] for r in rows] == wanted
    token = json.loads(
        base64.b64decode(_list(vast_sim, order_by=order, limit=4).json()["next_token"])
    )
    assert set(token["values"]) == {"label", "id"}

    desc = _all_pages(vast_sim, order_by=[{"col": "id", "dir": "desc"}], limit=10)
    assert [r["id"] for r in desc] == sorted(vast_sim.instances, reverse=True)
    odd_dir = _list(vast_sim, order_by=[{"col": "id", "dir": "sideways"}]).json()
    assert [r["id"] for r in odd_dir["instances"]] == sorted(vast_sim.instances)[:25]
    filtered = _all_pages(
        vast_sim,
        select_filters={"label": {"in": ["l1", "l2"]}},
        order_by=[{"col": "label", "dir": "asc"}],
        limit=3,
    )
    assert [(r["label"], r["id"]) for r in filtered] == sorted(
        (r["label"], r["id"]) for r in vast_sim.instances.values() if r["label"] in ("l1", "l2")
    )

    bad_col = _list(vast_sim, order_by=[{"col": "dph_total", "dir": "asc"}])
    assert bad_col.status_code == 400 and bad_col.json()["error"] == "invalid_request"
    # a token from another ordering lacks that ordering's columns
    id_token = _list(vast_sim, limit=2).json()["next_token"]
    mixed = _list(vast_sim, order_by=order, after_token=id_token)
    assert mixed.status_code == 400 and mixed.json()["error"] == "invalid_token"


def test_v1_list_filter_columns_and_operators(vast_sim: VastSimulator) -> None:
    ids = sorted(vast_sim.create_instance_directly(label=f"l{n % 3}") for n in range(6))
    for computed in ("dph_total", "num_gpus", "gpu_util"):
        bad = _list(vast_sim, select_filters={computed: {"gt": 0}})
        assert bad.status_code == 400 and bad.json()["msg"] == (
            f"Error in query parameters: {computed} is not a valid search key"
        )
    bad_op = _list(vast_sim, select_filters={"label": {"like": "l%"}})
    assert bad_op.status_code == 400 and bad_op.json()["error"] == "invalid_request"
    unknown_col = _list(vast_sim, select_cols=["id", "no_such_col"]).json()["instances"]
    assert unknown_col[0] == {"id": ids[0], "no_such_col": None}  # the spec: unknown -> null
    cases: list[tuple[dict[str, Any], list[int]]] = [
        ({"id": {"eq": ids[2]}}, [ids[2]]),
        ({"id": {"neq": ids[2]}}, ids[:2] + ids[3:]),
        ({"id": {"gt": ids[3]}}, ids[4:]),
        ({"id": {"gte": ids[3]}}, ids[3:]),
        ({"id": {"lt": ids[1]}}, ids[:1]),
        ({"id": {"lte": ids[1]}}, ids[:2]),
        ({"id": {"in": [ids[0], ids[5], 1]}}, [ids[0], ids[5]]),
        ({"id": {"notin": ids[1:]}}, ids[:1]),
        ({"id": {"in": [str(ids[1])]}}, [ids[1]]),
        (
            {"id": {"in": ids[:4]}, "label": {"eq": "l0"}},
            [i for i in ids[:4] if vast_sim.instances[i]["label"] == "l0"],
        ),
    ]
    for filters, expected in cases:
        body = _list(vast_sim, select_filters=filters).json()
        assert [r["id"] for r in body["instances"]] == expected, filters
        assert body["total_instances"] == len(expected)


def test_v1_list_by_ids_renders_only_those(vast_sim: VastSimulator) -> None:
    """The poller asks for 25 ids out of 10,000: only those are rendered (O(page))."""
    for n in range(10_000):
        vast_sim.add_offer(id=70_000_000 + n)
    with vast_sim._lock:  # 10,000 creates without HTTP, as benchmarks/poller_cost.py does
        ids = [
            vast_sim.create_instance_directly(70_000_000 + n, label=f"slackbot:{n}")
            for n in range(10_000)
        ]
    wanted = ids[5000:5025]
    rendered: list[int] = []
    original = vast_sim._render

    def counting(inst: Any) -> dict[str, Any]:
        rendered.append(inst.id)
        return original(inst)

    vast_sim._render = counting  # type: ignore[method-assign]
    body = _list(vast_sim, select_filters={"id": {"in": wanted}}).json()
    assert sorted(r["id"] for r in body["instances"]) == sorted(wanted)
    assert body["total_instances"] == 25 and body["next_token"] is None
    assert sum(body["label_counts"].values()) == 25
    assert len(rendered) <= 25
    rendered.clear()
    page = _list(vast_sim, order_by=[{"col": "id", "dir": "asc"}]).json()  # the SDK's default
    assert page["total_instances"] == 10_000 and len(rendered) <= 25


def test_label_and_manage_errors(vast_sim: VastSimulator) -> None:
    instance_id = vast_sim.create_instance_directly()
    ok = api(vast_sim, "PUT", f"/api/v0/instances/{instance_id}/", json={"label": "new"})
    assert ok.json()["success"] and vast_sim.instances[instance_id]["label"] == "new"
    too_long = api(vast_sim, "PUT", f"/api/v0/instances/{instance_id}/", json={"label": "x" * 1025})
    assert too_long.status_code == 400 and too_long.json()["error"] == "label_too_long"
    missing = api(vast_sim, "PUT", "/api/v0/instances/1/", json={"state": "stopped"})
    assert missing.status_code == 404 and missing.json()["error"] == "no_such_instance"


# -- auth, faults, request log ------------------------------------------------------------------


AUTH_ERROR = {"success": False, "error": "auth_error", "msg": "Invalid user key"}


def test_auth_required_when_key_set(vast_sim: VastSimulator) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": VAST_TEST_API_KEY}):
        for method, path in (
            ("GET", "/api/v0/users/current/"),
            ("GET", "/api/v1/instances/"),
            ("GET", "/api/v0/instances/1/"),
            ("PUT", "/api/v0/instances/1/"),
            ("DELETE", "/api/v0/instances/1/"),
            ("PUT", f"/api/v0/asks/{direct_offer(vast_sim)}/"),
        ):
            response = api(vast_sim, method, path, headers=headers, json={"state": "stopped"})
            assert response.status_code == 404, (headers, method, path)
            assert response.json() == AUTH_ERROR
    assert api(vast_sim, "GET", "/api/v0/users/current/").json()["credit"] == 25.0
    # the offer search answers without a key (docs/VAST_API.md §1) but refuses a wrong one with
    # the 404 its spec documents (search_offers.yaml)
    assert api(vast_sim, "POST", "/api/v0/bundles/", json={}, headers={}).status_code == 200
    wrong = api(
        vast_sim, "POST", "/api/v0/bundles/", json={}, headers={"Authorization": "Bearer x"}
    )
    assert wrong.status_code == 404 and wrong.json() == AUTH_ERROR


def test_no_auth_when_no_key(make_vast_sim: Any) -> None:
    sim = make_vast_sim(api_key=None)
    assert api(sim, "GET", "/api/v0/users/current/", headers={}).status_code == 200


# -- several accounts ----------------------------------------------------------------------------

KEY_A, KEY_B = "sim-key-a-51f0", "sim-key-b-9c2d"
USER_A, USER_B = 1001, 1002


def _as(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def test_accounts_each_see_and_act_on_their_own_instances(make_vast_sim: Any) -> None:
    sim = make_vast_sim(accounts={KEY_A: USER_A, KEY_B: USER_B})
    offers = [o["id"] for o in sim.offers if o["rentable"]]
    body = {"image": "vastai/base-image:latest", "disk": 10, "label": "mine"}
    created = {}
    for key, offer_id in ((KEY_A, offers[0]), (KEY_B, offers[1]), (None, offers[2])):
        answer = api(sim, "PUT", f"/api/v0/asks/{offer_id}/", headers=_as(key), json=body)
        assert answer.status_code == 200, answer.text
        created[key] = answer.json()["new_contract"]
    a, b, default = created[KEY_A], created[KEY_B], created[None]
    assert set(sim.instances) == {a, b, default}  # the test view: every account
    assert list(sim.instances_of(KEY_A)) == [a] and list(sim.instances_of(KEY_B)) == [b]
    assert list(sim.instances_of(None)) == [default]
    assert (sim.account_of(a), sim.account_of(b), sim.account_of(default)) == (
        USER_A,
        USER_B,
        424242,
    )
    assert sim.account_of(1) is None

    listed = api(sim, "GET", "/api/v1/instances/", headers=_as(KEY_A)).json()
    assert [i["id"] for i in listed["instances"]] == [a] and listed["total_instances"] == 1
    assert listed["label_counts"] == {"mine": 1}
    by_id = {"select_filters": json.dumps({"id": {"in": [a, b, default]}})}
    filtered = api(sim, "GET", "/api/v1/instances/", headers=_as(KEY_A), params=by_id).json()
    assert [i["id"] for i in filtered["instances"]] == [a]
    keyless = api(sim, "GET", "/api/v1/instances/", headers={}).json()["instances"]
    assert [i["id"] for i in keyless] == [default]  # no key: the default account

    # A naming B's instance: answered as an instance that does not exist, and nothing happens
    shown = api(sim, "GET", f"/api/v0/instances/{b}/", headers=_as(KEY_A))
    assert shown.status_code == 200 and shown.json() == {"instances": None}
    for change in ({"state": "stopped"}, {"label": "hijacked"}, {"state": "running"}):
        refused = api(sim, "PUT", f"/api/v0/instances/{b}/", headers=_as(KEY_A), json=change)
        assert refused.status_code == 404
        assert refused.json() == {
            "success": False,
            "error": "no_such_instance",
            "msg": f"Instance {b} not found.",
        }
    gone = api(sim, "DELETE", f"/api/v0/instances/{b}/", headers=_as(KEY_A))
    assert gone.status_code == 404 and gone.json()["error"] == "not_found"
    b_now = sim.instance(b)
    assert b_now is not None and b_now["label"] == "mine"
    assert b_now["intended_status"] == "running"
    # B itself can
    assert api(
        sim, "PUT", f"/api/v0/instances/{b}/", headers=_as(KEY_B), json={"state": "stopped"}
    ).json()["success"]
    assert sim.instances_of(KEY_B)[b]["intended_status"] == "stopped"
    assert api(sim, "DELETE", f"/api/v0/instances/{b}/", headers=_as(KEY_B)).status_code == 200
    assert sim.instances_of(KEY_B) == {} and sim.account_of(b) is None
    assert api(sim, "GET", f"/api/v0/instances/{b}/", headers=_as(KEY_B)).json() == {
        "instances": None
    }
    assert list(sim.instances_of(KEY_A)) == [a]  # A untouched


def test_accounts_have_their_own_user_and_credit(make_vast_sim: Any) -> None:
    sim = make_vast_sim(accounts={KEY_A: USER_A, KEY_B: USER_B, "sim-key-a2": USER_A}, credit=9.5)
    user_a = api(sim, "GET", "/api/v0/users/current/", headers=_as(KEY_A)).json()
    user_b = api(sim, "GET", "/api/v0/users/current/", headers=_as(KEY_B)).json()
    assert (user_a["id"], user_a["credit"]) == (USER_A, 9.5)
    assert (user_b["id"], user_b["credit"]) == (USER_B, 9.5)
    assert user_a["email"] != user_b["email"] and KEY_A not in json.dumps(user_a)
    _validate(user_a, _response_schema("show_user", "/api/v0/users/current/", "get"))
    sim.set_credit(KEY_B, 0)
    assert (sim.credit_of(KEY_A), sim.credit_of(KEY_B), sim.credit) == (9.5, 0.0, 9.5)
    user_b = api(sim, "GET", "/api/v0/users/current/", headers=_as(KEY_B)).json()
    assert user_b["credit"] == 0.0
    # a second key of user A is the same account: same id, credit and instances
    sim.set_credit("sim-key-a2", 3.25)
    assert api(sim, "GET", "/api/v0/users/current/", headers=_as(KEY_A)).json()["credit"] == 3.25
    instance_id = sim.create_instance_directly(api_key="sim-key-a2")
    assert list(sim.instances_of(KEY_A)) == [instance_id] and sim.user_id_of("sim-key-a2") == 1001
    # B has no credit: its create is refused, A's goes through
    offers = [o["id"] for o in sim.offers if o["rentable"]]
    body = {"image": "vastai/base-image:latest", "disk": 10}
    poor = api(sim, "PUT", f"/api/v0/asks/{offers[0]}/", headers=_as(KEY_B), json=body)
    assert poor.status_code == 400 and poor.json()["error"] == "insufficient_credit"
    rich = api(sim, "PUT", f"/api/v0/asks/{offers[0]}/", headers=_as(KEY_A), json=body)
    assert rich.status_code == 200 and sim.account_of(rich.json()["new_contract"]) == USER_A
    with pytest.raises(KeyError):
        sim.set_credit("unknown-key", 1.0)


def test_accounts_refuse_unknown_keys(make_vast_sim: Any) -> None:
    sim = make_vast_sim(accounts={KEY_A: USER_A})
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": KEY_A}):
        for method, path in (("GET", "/api/v0/users/current/"), ("GET", "/api/v1/instances/")):
            refused = api(sim, method, path, headers=headers)
            assert refused.status_code == 401 and refused.json() == AUTH_ERROR
        search = api(sim, "POST", "/api/v0/bundles/", json={"limit": 1}, headers=headers)
        assert search.status_code == 404 and search.json() == AUTH_ERROR
    # no key at all: the offer search is open, and the rest is the default account
    assert (
        len(api(sim, "POST", "/api/v0/bundles/", json={"limit": 1}, headers={}).json()["offers"])
        == 1
    )
    assert api(sim, "GET", "/api/v0/users/current/", headers={}).json()["id"] == 424242
    # keys added and revoked while running
    sim.add_account(KEY_B, USER_B, credit=4.0)
    assert api(sim, "GET", "/api/v0/users/current/", headers=_as(KEY_B)).json()["credit"] == 4.0
    kept = sim.create_instance_directly(api_key=KEY_B)
    sim.revoke_key(KEY_B)
    assert api(sim, "GET", "/api/v0/users/current/", headers=_as(KEY_B)).status_code == 401
    assert sim.account_of(kept) == USER_B and sim.accounts == {KEY_A: USER_A}


def test_a_default_key_with_accounts_refuses_requests_without_a_key(make_vast_sim: Any) -> None:
    sim = make_vast_sim(api_key="sim-main", accounts={KEY_A: USER_A}, auth_status=404)
    assert api(sim, "GET", "/api/v0/users/current/", headers={}).status_code == 404
    sim.auth_status = 401  # the status the OpenAPI files document
    assert api(sim, "GET", "/api/v0/users/current/", headers={}).status_code == 401
    main = api(sim, "GET", "/api/v0/users/current/", headers=_as("sim-main")).json()
    assert main["id"] == 424242 and sim.user_id_of("sim-main") == 424242
    assert api(sim, "GET", "/api/v0/users/current/", headers=_as(KEY_A)).json()["id"] == USER_A


def test_rate_limits_are_per_key_across_accounts(make_vast_sim: Any) -> None:
    clock = _FakeClock()
    sim = make_vast_sim(accounts={KEY_A: USER_A, KEY_B: USER_B}, rate_limits=True, rate_clock=clock)
    assert api(sim, "GET", "/api/v1/instances/", headers=_as(KEY_A)).status_code == 200
    assert api(sim, "GET", "/api/v1/instances/", headers=_as(KEY_B)).status_code == 200
    assert api(sim, "GET", "/api/v1/instances/", headers=_as(KEY_A)).status_code == 429
    clock.now += 1.0
    assert api(sim, "GET", "/api/v1/instances/", headers=_as(KEY_A)).status_code == 200


def test_vast_client_per_account(make_vast_sim: Any) -> None:
    sim = make_vast_sim(accounts={KEY_A: USER_A, KEY_B: USER_B})
    sim.set_credit(KEY_B, 7.0)
    a, b = client_for(sim, KEY_A), client_for(sim, KEY_B)
    try:
        assert (a.get_user().id, a.get_user().credit) == (USER_A, 25.0)
        assert (b.get_user().id, b.get_user().credit) == (USER_B, 7.0)
        offer = a.search_offers({"rentable": {"eq": True}, "limit": 2})
        b_id = b.create_instance(
            offer[0].id, image="vastai/base-image:latest", env={}, disk_gb=10, label="b-job"
        )
        a_id = sim.create_instance_directly(api_key=KEY_A)
        assert [i.id for i in a.list_instances()] == [a_id]
        assert [i.id for i in b.list_instances()] == [b_id]
        assert a.get_instance(b_id) is None
        with pytest.raises(NotFound):
            a.stop_instance(b_id)
        with pytest.raises(NotFound):
            a.label_instance(b_id, "hijacked")
        assert a.destroy_instance(b_id) is False  # "already gone" from A's side ...
        still = b.get_instance(b_id)  # ... while B's instance lives on, untouched
        assert still is not None and still.intended_status == "running"
        assert still.label == "b-job"
        assert sim.account_of(b_id) == USER_B
        assert b.destroy_instance(b_id) is True and sim.account_of(b_id) is None
        stranger = client_for(sim, "wrong-key")
        with pytest.raises(AuthError):
            stranger.get_user()
        with pytest.raises(AuthError):
            stranger.list_instances()
        stranger.close()
    finally:
        a.close()
        b.close()


def test_fault_shapes_and_targeting(vast_sim: VastSimulator) -> None:
    vast_sim.inject(Fault.RATE_LIMIT, times=2, endpoint="list")
    assert api(vast_sim, "GET", "/api/v0/users/current/").status_code == 200  # other endpoint
    for _ in range(2):
        limited = api(vast_sim, "GET", "/api/v1/instances/")
        assert limited.status_code == 429 and limited.text == "API requests too frequent"
        assert "retry-after" not in limited.headers
        assert limited.headers["content-type"].startswith("text/plain")
    assert api(vast_sim, "GET", "/api/v1/instances/").status_code == 200

    vast_sim.inject(Fault.BAD_GATEWAY, endpoint="GET /api/v0/users/")
    bad = api(vast_sim, "GET", "/api/v0/users/current/")
    assert bad.status_code == 502 and bad.headers["content-type"].startswith("text/html")
    vast_sim.inject(Fault.UNAVAILABLE, times=None)
    assert api(vast_sim, "POST", "/api/v0/bundles/", json={}).status_code == 503
    assert api(vast_sim, "GET", "/api/v1/instances/").status_code == 503
    vast_sim.clear_faults()
    assert api(vast_sim, "GET", "/api/v1/instances/").status_code == 200
    vast_sim.inject(Fault.HTML_ERROR)
    page = api(vast_sim, "GET", "/api/v1/instances/")
    assert page.status_code == 500 and "<html>" in page.text
    vast_sim.inject(Fault.SLOW, seconds=0.3)
    started = time.monotonic()
    assert api(vast_sim, "GET", "/api/v1/instances/").status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(ValueError):
        vast_sim.inject(Fault.SLOW, endpoint="nonsense endpoint")


def test_search_quota_and_retry_after_faults(vast_sim: VastSimulator) -> None:
    vast_sim.inject(Fault.SEARCH_QUOTA_EXCEEDED)  # search is its default endpoint
    assert api(vast_sim, "GET", "/api/v1/instances/").status_code == 200
    quota = api(vast_sim, "POST", "/api/v0/bundles/", json={})
    assert quota.status_code == 429 and quota.json() == {
        "success": False,
        "error": "search_quota_exceeded",
        "msg": "Daily search quota exceeded",
    }
    reset = int(quota.headers["X-RateLimit-Reset"])
    assert reset % 86_400 == 0 and 0 < reset - time.time() <= 86_400  # next UTC midnight
    assert api(vast_sim, "POST", "/api/v0/bundles/", json={}).status_code == 200

    vast_sim.inject(Fault.RATE_LIMIT_RETRY_AFTER, endpoint="get", seconds=7)
    limited = api(vast_sim, "GET", "/api/v0/instances/1/")
    assert limited.status_code == 429 and limited.text == "API requests too frequent"
    assert limited.headers["Retry-After"] == "7"
    assert limited.headers["content-type"].startswith("text/plain")
    vast_sim.inject(Fault.RATE_LIMIT_RETRY_AFTER)  # default 2 s, any endpoint
    assert api(vast_sim, "GET", "/api/v0/users/current/").headers["Retry-After"] == "2"
    assert vast_sim.rate_limited_count == 0  # injected faults are not the limiter's


class _FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limits_per_endpoint_and_key(make_vast_sim: Any) -> None:
    clock = _FakeClock()
    sim = make_vast_sim(api_key=None, rate_limits=True, rate_clock=clock)
    assert sim.rate_limits == {
        "list": 1.0,
        "get": 2.0,
        "create": 4.5,
        "manage": 1.0,
        "destroy": 3.0,
        "search": 6.0,
        "user": 1.0,
        "ssh": 2.0,
    }
    key_a, key_b = {"Authorization": "Bearer a"}, {"Authorization": "Bearer b"}
    assert api(sim, "POST", "/api/v0/bundles/", json={}, headers=key_a).status_code == 200
    too_soon = api(sim, "POST", "/api/v0/bundles/", json={}, headers=key_a)
    assert too_soon.status_code == 429
    assert too_soon.text == "API requests too frequent endpoint threshold=6.0"
    assert too_soon.headers["content-type"].startswith("text/plain")
    assert "retry-after" not in too_soon.headers
    # another key, and another endpoint of the same key, are not limited by it
    assert api(sim, "POST", "/api/v0/bundles/", json={}, headers=key_b).status_code == 200
    assert api(sim, "GET", "/api/v1/instances/", headers=key_a).status_code == 200
    clock.now += 5.9
    assert api(sim, "POST", "/api/v0/bundles/", json={}, headers=key_a).status_code == 429
    clock.now += 0.1  # 6.0 s after the last *accepted* call: the refused ones do not count
    assert api(sim, "POST", "/api/v0/bundles/", json={}, headers=key_a).status_code == 200
    assert sim.rate_limited_count == 2

    # without Authorization the caller is its address
    assert api(sim, "GET", "/api/v0/users/current/", headers={}).status_code == 200
    user = api(sim, "GET", "/api/v0/users/current/", headers={})
    assert user.text == "API requests too frequent endpoint threshold=1.0"
    instance_id = sim.create_instance_directly()
    path = f"/api/v0/instances/{instance_id}/"
    for method, endpoint_path, threshold in (
        ("GET", path, "2.0"),
        ("PUT", path, "1.0"),
        ("DELETE", path, "3.0"),
        ("PUT", f"/api/v0/asks/{direct_offer(sim)}/", "4.5"),
    ):
        first = api(sim, method, endpoint_path, headers=key_b, json={"label": "x"})
        assert first.status_code != 429, (method, endpoint_path)
        second = api(sim, method, endpoint_path, headers=key_b, json={"label": "x"})
        assert second.status_code == 429 and second.text.endswith(f"threshold={threshold}")
    assert sim.rate_limited_count == 7


def test_rate_limit_overrides_and_default_off(make_vast_sim: Any) -> None:
    clock = _FakeClock()
    sim = make_vast_sim(api_key=None, rate_limits={"search": 0.5, "list": None}, rate_clock=clock)
    assert sim.rate_limits["search"] == 0.5 and "list" not in sim.rate_limits
    assert sim.rate_limits["user"] == 1.0  # the other defaults stay
    for _ in range(3):
        assert api(sim, "GET", "/api/v1/instances/", headers={}).status_code == 200
    assert api(sim, "POST", "/api/v0/bundles/", json={}, headers={}).status_code == 200
    limited = api(sim, "POST", "/api/v0/bundles/", json={}, headers={})
    assert limited.text == "API requests too frequent endpoint threshold=0.5"
    with pytest.raises(ValueError):
        VastSimulator(rate_limits={"nonsense": 1.0})
    off = make_vast_sim(api_key=None)
    for _ in range(5):
        assert api(off, "POST", "/api/v0/bundles/", json={}, headers={}).status_code == 200
    assert off.rate_limited_count == 0 and off.rate_limits == {}


def test_create_faults(vast_sim: VastSimulator) -> None:
    offer_id = direct_offer(vast_sim)
    body = {"image": "img", "env": {}, "disk": 10}
    vast_sim.inject(Fault.NO_CREDIT)
    no_credit = api(vast_sim, "PUT", f"/api/v0/asks/{offer_id}/", json=body)
    assert no_credit.status_code == 400 and no_credit.json()["error"] == "insufficient_credit"
    vast_sim.inject(Fault.CREATE_FAILED_WITH_CONTRACT)
    failed = api(vast_sim, "PUT", f"/api/v0/asks/{offer_id}/", json=body).json()
    assert failed["success"] is False
    inst = vast_sim.instances[failed["new_contract"]]
    assert (inst["actual_status"], inst["intended_status"]) == ("exited", "stopped")
    vast_sim.inject(Fault.OFFER_TAKEN)
    taken = api(vast_sim, "PUT", f"/api/v0/asks/{direct_offer(vast_sim)}/", json=body)
    assert taken.status_code == 404 and "3603" in taken.json()["msg"]


def test_request_log(vast_sim: VastSimulator) -> None:
    search(vast_sim, {"limit": 2})
    api(vast_sim, "GET", "/api/v1/instances/", params={"limit": 25})
    method, path, query, body = vast_sim.requests[0]
    assert (method, path, query, body) == ("POST", "/api/v0/bundles/", {}, {"limit": 2})
    assert vast_sim.requests[1].query == {"limit": "25"}
    assert vast_sim.request_count("GET") == 1 and vast_sim.request_count(path_prefix="/api/") == 2
    vast_sim.clear_requests()
    assert vast_sim.requests == []


def test_stop_closes_app_ports(make_vast_sim: Any) -> None:
    sim = make_vast_sim(timeline=Timeline.instant())
    instance_id = sim.create_instance_directly(offer_id=direct_offer(sim), env={"-p 80:80": "1"})
    port = sim.instances[instance_id]["ports"]["80/tcp"][0]["HostPort"]
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
    sim.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


# -- OpenAPI schema validation ------------------------------------------------------------------


def _jsonschema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: ``nullable: true`` becomes ``type: [t, "null"]``."""
    if isinstance(node, list):
        return [_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _jsonschema(v) for k, v in node.items() if k not in ("example", "nullable")}
    if node.get("nullable") and "type" in node:
        out["type"] = [node["type"], "null"]
    return out


def _spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((SPECS / f"vast-{name}.yaml").read_text())
    return spec


def _response_schema(name: str, path: str, method: str, status: str = "200") -> dict[str, Any]:
    spec = _spec(name)
    schema = spec["paths"][path][method]["responses"][status]["content"]["application/json"][
        "schema"
    ]
    out: dict[str, Any] = _jsonschema(copy.deepcopy(schema))
    out["components"] = _jsonschema(spec.get("components", {}))
    return out


def _validate(instance: Any, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(instance)


def _list_item_schema() -> dict[str, Any]:
    schema = _response_schema("show_instances", "/api/v1/instances/", "get")
    item: dict[str, Any] = schema["properties"]["instances"]["items"]
    return item


def _running_instance(sim: VastSimulator) -> int:
    instance_id = rent(sim, direct_offer(sim), label="schema", runtype="ssh_direct")
    sim.advance(5)
    return instance_id


def test_search_offers_matches_spec(vast_sim: VastSimulator) -> None:
    offers = search(vast_sim, {"limit": 10})
    _validate({"offers": offers}, _response_schema("search_offers", "/api/v0/bundles/", "post"))
    # the spec's schema is loose, so also compare each field's JSON type with its example
    example = _spec("search_offers")["paths"]["/api/v0/bundles/"]["post"]["responses"]["200"][
        "content"
    ]["application/json"]["example"]["offers"]
    numeric = (int, float)
    assert len(offers) == 10 and example
    for offer in offers:
        for key, sample in example.items():
            if key not in offer or sample is None or offer[key] is None:
                continue
            if isinstance(sample, numeric) and not isinstance(sample, bool):
                assert isinstance(offer[key], numeric) and not isinstance(offer[key], bool), key
            else:
                assert type(offer[key]) is type(sample), key


def test_show_instances_matches_spec(vast_sim: VastSimulator) -> None:
    _running_instance(vast_sim)
    vast_sim.create_instance_directly()  # one not yet running (ports null)
    body = api(vast_sim, "GET", "/api/v1/instances/").json()
    _validate(body, _response_schema("show_instances", "/api/v1/instances/", "get"))
    assert len(body["instances"]) == 2


def test_show_instance_matches_spec(vast_sim: VastSimulator) -> None:
    instance_id = _running_instance(vast_sim)
    schema = _response_schema("show_instance", "/api/v0/instances/{id}/", "get")
    instance_schema = schema["components"]["schemas"]["Instance"]["properties"]
    # Known errors in show_instance.yaml (tests/specs/README.md): ``ports`` is a dict of
    # "<port>/tcp" -> [{HostIp, HostPort}], and ``extra_env`` is a list of [key, value] pairs
    # (as show_instances.yaml says). Take both from the v1 list schema.
    item = _list_item_schema()["properties"]
    instance_schema["ports"] = item["ports"]
    instance_schema["extra_env"] = item["extra_env"]
    body = api(vast_sim, "GET", f"/api/v0/instances/{instance_id}/").json()
    assert body["instances"]["ports"]
    _validate(body, schema)


def test_other_answers_match_spec(vast_sim: VastSimulator) -> None:
    offer_id = direct_offer(vast_sim)
    body = {"image": "img", "env": {}, "disk": 10}
    created = api(vast_sim, "PUT", f"/api/v0/asks/{offer_id}/", json=body).json()
    _validate(created, _response_schema("create_instance", "/api/v0/asks/{id}/", "put"))
    vast_sim.inject(Fault.OFFER_TAKEN)
    taken = api(vast_sim, "PUT", f"/api/v0/asks/{direct_offer(vast_sim)}/", json=body).json()
    _validate(taken, _response_schema("create_instance", "/api/v0/asks/{id}/", "put", "404"))
    user = api(vast_sim, "GET", "/api/v0/users/current/").json()
    _validate(user, _response_schema("show_user", "/api/v0/users/current/", "get"))
    instance_id = created["new_contract"]
    stopped = api(vast_sim, "PUT", f"/api/v0/instances/{instance_id}/", json={"state": "stopped"})
    _validate(stopped.json(), _response_schema("manage_instance", "/api/v0/instances/{id}/", "put"))
    labelled = api(vast_sim, "PUT", f"/api/v0/instances/{instance_id}/", json={"label": "x"}).json()
    label_spec = _spec("label_instance")
    label_path = next(iter(label_spec["paths"]))
    _validate(labelled, _response_schema("label_instance", label_path, "put"))
    destroyed = api(vast_sim, "DELETE", f"/api/v0/instances/{instance_id}/").json()
    _validate(destroyed, _response_schema("destroy_instance", "/api/v0/instances/{id}/", "delete"))
    gone = api(vast_sim, "DELETE", f"/api/v0/instances/{instance_id}/").json()
    _validate(
        gone, _response_schema("destroy_instance", "/api/v0/instances/{id}/", "delete", "404")
    )


# -- python -m bot simulator ----------------------------------------------------------------------


def test_simulator_command_serves_until_sigterm(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "VAST_"))}
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "simulator", "--port", str(port), "--rate-limits"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        url = f"http://127.0.0.1:{port}"
        assert lines[0].startswith(f"Vast.ai simulator at {url} ")
        key = lines[1].removeprefix("API key: ").strip()
        assert len(key) >= 16  # generated, since no --api-key was given
        assert lines[2].strip() == (
            f"Try: vastai --url {url} --api-key {key} search offers 'gpu_ram>=8 num_gpus=1'"
        )
        user = httpx.get(f"{url}/api/v0/users/current/", headers={"Authorization": f"Bearer {key}"})
        assert user.status_code == 200 and "credit" in user.json()
        wrong = httpx.get(f"{url}/api/v0/users/current/", headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 404 and wrong.json()["error"] == "auth_error"
        again = httpx.get(
            f"{url}/api/v0/users/current/", headers={"Authorization": f"Bearer {key}"}
        )
        assert again.status_code == 429  # --rate-limits: user is 1 call per 1.0 s
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert out.strip().endswith("Simulator stopped.") and "Traceback" not in err
    with socket.socket() as sock:  # the port is free again
        sock.bind(("127.0.0.1", port))


def test_simulator_command_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "bot", "simulator", "--port", str(port), "--api-key", "k"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"Cannot start: port {port} is already in use. Stop the other process or pass "
        "--port with a free port."
    )


def test_parse_account_option() -> None:
    assert parse_account("key-a=1001") == ("key-a", 1001)
    assert parse_account(" key-b = 1002") == ("key-b", 1002)
    for bad in ("key-a", "=1001", "key-a=", "key-a=abc", "key-a=0", "key-a=-3"):
        with pytest.raises(ValueError):
            parse_account(bad)
