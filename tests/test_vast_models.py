"""Models and error classification: pure parsing of Vast.ai JSON (docs/VAST_API.md §§1–4)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from bot.vast import (
    AuthError,
    CreateResult,
    Instance,
    InsufficientCredit,
    NotFound,
    Offer,
    OfferUnavailable,
    RateLimited,
    UnexpectedResponse,
    Unreachable,
    User,
    VastError,
    classify,
    port_env,
)

# The example offer of docs/VAST_API.md §2 (subset; shapes as in search_offers.yaml).
RAW_OFFER = {
    "id": 23817455,
    "machine_id": 40112,
    "host_id": 181920,
    "num_gpus": 1,
    "gpu_name": "RTX 4090",
    "gpu_ram": 24564,
    "compute_cap": 890,
    "cuda_max_good": 12.8,
    "disk_space": 412.7,
    "inet_down": 861.9,
    "direct_port_count": 40,
    "geolocation": "Oregon, US",
    "reliability": 0.9962,
    "reliability2": 0.9951,
    "verification": "verified",
    "rentable": True,
    "dph_base": 0.35,
    "dph_total": 0.36667,
    "storage_cost": 0.2,
    "extra_field_from_the_future": {"x": 1},
}

RAW_INSTANCE = {
    "id": 31415926,
    "actual_status": "running",
    "intended_status": "running",
    "cur_state": "running",
    "next_state": "running",
    "status_msg": "success, running vastai/comfyui_latest/jupyter",
    "label": "slackbot:req-8f2c",
    "extra_env": [["WEB_PASSWORD", "s3cret-pw"], ["-p 8188:8188", "1"]],
    "onstart": "export HF_TOKEN=hf_secret",
    "public_ipaddr": "203.0.113.42\n",
    "ports": {
        "22/tcp": [
            {"HostIp": "::", "HostPort": "41023"},
            {"HostIp": "0.0.0.0", "HostPort": "41022"},
        ],
        "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41080"}],
        "8188/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41188"}],
        "8082/udp": [{"HostIp": "0.0.0.0", "HostPort": "41082"}],
    },
    "ssh_host": "ssh5.vast.ai",
    "ssh_port": 26926,
    "jupyter_token": "53fc448d-jupyter-token",
    "start_date": 1786001234.56,
    "dph_total": 0.36667,
    "disk_space": 60.0,
    "gpu_name": "RTX 4090",
    "num_gpus": 1,
    "gpu_ram": 24564,
    "cuda_max_good": "12.8",
    "geolocation": "Oregon, US",
}


def test_offer_from_api_maps_units_and_names() -> None:
    offer = Offer.from_api(RAW_OFFER)
    assert offer.id == 23817455
    assert offer.gpu_ram_gb == pytest.approx(24564 / 1024)
    assert offer.disk_space_gb == pytest.approx(412.7)
    assert offer.verified is True
    assert offer.reliability == pytest.approx(0.9951)  # reliability2 wins
    assert (offer.compute_cap, offer.cuda_max_good) == (890, 12.8)
    assert (offer.dph_total, offer.dph_base, offer.storage_cost) == (0.36667, 0.35, 0.2)
    assert (offer.machine_id, offer.host_id, offer.direct_port_count) == (40112, 181920, 40)
    assert offer.geolocation == "Oregon, US"
    assert not hasattr(offer, "extra_field_from_the_future")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"verification": "verified"}, True),
        ({"verification": "unverified"}, False),
        ({"verification": "deverified", "verified": True}, False),
        ({"verified": True}, True),
        ({}, False),
    ],
)
def test_offer_verified(fields: dict[str, object], expected: bool) -> None:
    assert Offer.from_api({"id": 1, **fields}).verified is expected


def test_offer_tolerates_missing_and_string_fields() -> None:
    offer = Offer.from_api(
        {"id": "7", "cuda_max_good": "12.4", "compute_cap": "800", "dph_total": None}
    )
    assert offer.id == 7 and offer.cuda_max_good == 12.4 and offer.compute_cap == 800
    assert offer.gpu_ram_gb == 0.0 and offer.num_gpus == 0 and offer.rentable is False
    assert math.isinf(offer.dph_total)  # an unpriced offer never ranks first
    assert Offer.from_api({"id": 1, "reliability": 0.97}).reliability == 0.97
    with pytest.raises(ValidationError):
        Offer.from_api({"gpu_name": "RTX 4090"})


def test_offer_can_be_built_with_attribute_names() -> None:
    offer = Offer(
        id=5, gpu_name="RTX 3090", num_gpus=2, gpu_ram_gb=24.0, verified=True, rentable=True
    )
    assert offer.gpu_ram_gb == 24.0 and offer.verified is True


def test_instance_ports_ip_and_secrets() -> None:
    inst = Instance.from_api(RAW_INSTANCE)
    assert inst.public_ipaddr == "203.0.113.42"
    assert set(inst.ports) == {22, 8080, 8188}  # udp dropped
    assert inst.host_port(8188) == 41188
    assert inst.host_port(22) == 41022  # the IPv4 entry even when IPv6 comes first
    assert inst.host_port(9999) is None
    assert inst.public_url(8188) == "http://203.0.113.42:41188/"
    assert inst.gpu_ram_gb == pytest.approx(24564 / 1024) and inst.disk_space_gb == 60.0
    assert inst.jupyter_token == "53fc448d-jupyter-token"
    dumped = inst.model_dump_json()
    assert "s3cret-pw" not in dumped and "hf_secret" not in dumped
    assert "53fc448d" not in repr(inst)


@pytest.mark.parametrize("ports", [None, [8080, 8081], {}, {"8188/tcp": None}, {"x/tcp": []}])
def test_instance_ports_null_or_odd_shapes(ports: object) -> None:
    inst = Instance.from_api({"id": 1, "ports": ports, "public_ipaddr": " \n"})
    assert inst.ports == {} and inst.host_port(8188) is None
    assert inst.public_ipaddr is None and inst.public_url(8188) is None


def test_instance_ipv6_only_falls_back() -> None:
    inst = Instance.from_api({"id": 1, "ports": {"80/tcp": [{"HostIp": "::", "HostPort": 4100}]}})
    assert inst.host_port(80) == 4100


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (37.5, 37.5),
        (0, 0.0),
        ("12.8", 12.8),
        (None, None),
        ("n/a", None),
        ("", None),
        ([1], None),
        ({"x": 1}, None),
        (True, None),
        ("nan", None),
        (float("inf"), None),
    ],
)
def test_instance_utilisation(raw: object, expected: float | None) -> None:
    inst = Instance.from_api({"id": 1, "gpu_util": raw, "cpu_util": raw})
    assert inst.gpu_util == expected and inst.cpu_util == expected


def test_instance_utilisation_missing_and_from_the_full_json() -> None:
    inst = Instance.from_api({"id": 1})
    assert inst.gpu_util is None and inst.cpu_util is None
    inst = Instance.from_api({**RAW_INSTANCE, "gpu_util": 93.0, "cpu_util": None})
    assert inst.gpu_util == 93.0 and inst.cpu_util is None


def test_create_result_and_user() -> None:
    assert (
        CreateResult.model_validate({"success": True, "new_contract": 12345678}).instance_id
        == 12345678
    )
    assert CreateResult(instance_id=3).instance_id == 3
    assert User.model_validate({"credit": 25.0, "balance": 0, "email": "a@b.c"}).credit == 25.0


def test_user_id() -> None:
    """``users/current`` ``id`` names the Vast.ai account a key belongs to."""
    user = User.model_validate({"id": 1001, "credit": "4.5", "email": "a@b.c", "key_id": 17})
    assert (user.id, user.credit) == (1001, 4.5)
    assert User.model_validate({"id": "1002", "credit": 1}).id == 1002  # numeric string
    assert User.model_validate({"credit": 1}).id is None
    assert User.model_validate({"id": None, "credit": 1}).id is None


def test_port_env() -> None:
    assert port_env([8188, "8082/udp", "7860/tcp"]) == {
        "-p 8188:8188": "1",
        "-p 8082:8082/udp": "1",
        "-p 7860:7860": "1",
    }
    with pytest.raises(ValueError):
        port_env([0])


# -- classify ---------------------------------------------------------------------------------

JSON = "application/json"


@pytest.mark.parametrize(
    ("status", "body", "ctype", "operation", "kind"),
    [
        (200, '{"success": true}', JSON, "", None),
        (200, '{"offers": []}', JSON, "", None),
        (
            404,
            '{"success": false, "error": "auth_error", "msg": "Invalid user key"}',
            JSON,
            "",
            AuthError,
        ),
        (404, '{"error": "x", "msg": "Invalid user key"}', JSON, "", AuthError),
        (401, "", "text/plain", "", AuthError),
        (429, "API requests too frequent", "text/plain", "", RateLimited),
        (
            429,
            '{"detail": "API requests too frequent endpoint threshold=4.5"}',
            JSON,
            "",
            RateLimited,
        ),
        (
            404,
            '{"success": false, "error": "invalid_args",'
            ' "msg": "error 404/3603: no_such_ask Instance type by id 1 is not available."}',
            JSON,
            "create PUT /api/v0/asks/1/",
            OfferUnavailable,
        ),
        (
            410,
            '{"success": false, "error": "no_such_ask", "msg": "gone"}',
            JSON,
            "",
            OfferUnavailable,
        ),
        (410, '{"success": false, "msg": "error 410/3907: gone"}', JSON, "", OfferUnavailable),
        (404, '{"success": false}', JSON, "create PUT /api/v0/asks/1/", OfferUnavailable),
        (
            400,
            '{"success": false, "error": "insufficient_credit", "msg": "Insufficient credit"}',
            JSON,
            "",
            InsufficientCredit,
        ),
        (411, '{"success": false, "msg": "insufficient credit"}', JSON, "", InsufficientCredit),
        (502, "<html>Bad Gateway</html>", "text/html", "", Unreachable),
        (503, "", "text/plain", "", Unreachable),
        (504, "{}", JSON, "", Unreachable),
        (
            500,
            "<html><body>Internal Server Error</body></html>",
            "text/html",
            "",
            UnexpectedResponse,
        ),
        (200, "<html>maintenance</html>", "text/html", "", UnexpectedResponse),
        (200, '{"success": false, "error": "weird_thing"}', JSON, "", UnexpectedResponse),
        (200, "{not json", JSON, "", UnexpectedResponse),
        (
            404,
            '{"success": false, "error": "no_such_instance", "msg": "Instance 1 not found."}',
            JSON,
            "",
            NotFound,
        ),
        (
            404,
            '{"success": false, "error": "not_found", "msg": "Instance not found"}',
            JSON,
            "",
            NotFound,
        ),
        (404, '{"success": false, "msg": "Instance 9 not found"}', JSON, "", NotFound),
        (404, "<html>404 Not Found</html>", "text/html", "", UnexpectedResponse),
        (404, '{"detail": "Not Found"}', JSON, "", VastError),
        (400, '{"success": false, "error": "invalid_args", "msg": "bad"}', JSON, "", VastError),
        (
            403,
            '{"success": false, "error": "invalid_args", "msg": "Offer 1 is not your own."}',
            JSON,
            "",
            VastError,
        ),
        (403, '{"success": false, "error": "forbidden"}', JSON, "", AuthError),
    ],
)
def test_classify(
    status: int, body: str, ctype: str, operation: str, kind: type[VastError] | None
) -> None:
    error = classify(status, body, ctype, operation=operation)
    if kind is None:
        assert error is None
    else:
        assert type(error) is kind
        assert error is not None and error.status_code == status and error.user_message


def test_classify_keeps_new_contract_and_vast_message() -> None:
    body = '{"success": false, "error": "unschedulable", "msg": "left stopped", "new_contract": 77}'
    error = classify(400, body, JSON, operation="create PUT /api/v0/asks/1/")
    assert error is not None and error.instance_id == 77 and error.error_code == "unschedulable"
    assert "left stopped" in error.user_message and "left stopped" in str(error)


def test_redact() -> None:
    error = VastError("invalid json: {'WEB_PASSWORD': 'hunter22'}", user_message="echo hunter22")
    error.redact(["hunter22", "x"])
    assert "hunter22" not in str(error) and "hunter22" not in error.user_message
    assert "hunter22" not in repr(error)
