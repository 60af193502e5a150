"""VastClient against the Vast.ai simulator (and httpx.MockTransport for odd shapes)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.simulator import Fault, VastSimulator
from bot.vast import (
    AuthError,
    InsufficientCredit,
    NotFound,
    OfferUnavailable,
    RateLimited,
    UnexpectedResponse,
    Unreachable,
    VastClient,
    VastError,
    port_env,
)
from bot.vast.pacing import NO_PACING
from tests.fixtures.vast import VAST_TEST_API_KEY

CREATE = "/api/v0/asks/"
SEARCH = "/api/v0/bundles/"
LIST = "/api/v1/instances/"

BASE_QUERY: dict[str, Any] = {
    "verified": {"eq": True},
    "rentable": {"eq": True},
    "rented": {"eq": False},
    "direct_port_count": {"gte": 1},
    "type": "on-demand",
    "order": [["dph_total", "asc"]],
    "limit": 50,
}


def first_offer_id(client: VastClient) -> int:
    return client.search_offers(BASE_QUERY)[0].id


def create(client: VastClient, offer_id: int, **overrides: Any) -> int:
    kwargs: dict[str, Any] = {
        "image": "vastai/comfyui:latest",
        "env": {"WEB_PASSWORD": "pw-9d8c7b6a", **port_env([8188])},
        "disk_gb": 20,
        "label": "slackbot:dep-1",
    }
    kwargs.update(overrides)
    return client.create_instance(offer_id, **kwargs)


# -- every call ---------------------------------------------------------------------------------


def test_search_offers_applies_filters_and_order(vast_client: VastClient) -> None:
    offers = vast_client.search_offers({**BASE_QUERY, "gpu_name": {"eq": "RTX 4090"}})
    assert offers and all(o.gpu_name == "RTX 4090" and o.verified and o.rentable for o in offers)
    prices = [o.dph_total for o in offers]
    assert prices == sorted(prices)
    assert all(o.gpu_ram_gb == pytest.approx(24564 / 1024) for o in offers)


def test_search_requires_limit(vast_client: VastClient, vast_sim: VastSimulator) -> None:
    with pytest.raises(ValueError, match="limit"):
        vast_client.search_offers({"verified": {"eq": True}})
    assert vast_sim.request_count() == 0


def test_create_sends_documented_body(vast_client: VastClient, vast_sim: VastSimulator) -> None:
    offer_id = first_offer_id(vast_client)
    instance_id = create(vast_client, offer_id, onstart="echo hi", args=["--listen"])
    body = [r.json for r in vast_sim.requests if r.method == "PUT" and r.path.startswith(CREATE)][0]
    assert body["client_id"] == "me" and body["cancel_unavail"] is True
    assert body["env"] == {"WEB_PASSWORD": "pw-9d8c7b6a", "-p 8188:8188": "1"}
    assert (body["disk"], body["label"], body["runtype"]) == (20, "slackbot:dep-1", "args")
    assert (body["onstart"], body["args"]) == ("echo hi", ["--listen"])
    assert instance_id in vast_sim.instances
    # the rented offer leaves the search
    assert offer_id not in {o.id for o in vast_client.search_offers(BASE_QUERY)}


def test_create_validates_locally(vast_client: VastClient, vast_sim: VastSimulator) -> None:
    with pytest.raises(ValueError):
        create(vast_client, 1, disk_gb=4)
    with pytest.raises(ValueError):
        create(vast_client, 1, label="x" * 257)
    assert vast_sim.request_count() == 0


def test_instance_lifecycle(vast_client: VastClient, vast_sim: VastSimulator) -> None:
    instance_id = create(vast_client, first_offer_id(vast_client))
    inst = vast_client.get_instance(instance_id)
    assert inst is not None and inst.actual_status == "created" and inst.ports == {}
    vast_sim.advance(2)
    inst = vast_client.get_instance(instance_id)
    assert inst is not None and inst.actual_status == inst.intended_status == "running"
    assert inst.public_ipaddr == "127.0.0.1" and inst.host_port(8188) is not None
    vast_sim.advance(1)
    url = inst.public_url(8188)
    assert url is not None and httpx.get(url, timeout=2).status_code == 200

    vast_client.label_instance(instance_id, "slackbot:dep-1:renamed")
    vast_client.stop_instance(instance_id)
    inst = vast_client.get_instance(instance_id)
    assert inst is not None and (inst.actual_status, inst.intended_status) == ("exited", "stopped")
    assert inst.label == "slackbot:dep-1:renamed" and inst.ports == {}
    vast_client.start_instance(instance_id)
    vast_sim.advance(2)
    inst = vast_client.get_instance(instance_id)
    assert inst is not None and inst.actual_status == "running"

    assert vast_client.destroy_instance(instance_id) is True
    assert vast_client.get_instance(instance_id) is None  # {"instances": null}
    assert vast_client.list_instances() == []


def test_get_unknown_instance_is_none(vast_client: VastClient) -> None:
    assert vast_client.get_instance(1) is None


def test_manage_unknown_instance_is_not_found(vast_client: VastClient) -> None:
    with pytest.raises(NotFound) as info:
        vast_client.stop_instance(1)
    assert "no longer exists" in info.value.user_message


def test_destroy_of_gone_instance_is_success(
    vast_client: VastClient, vast_sim: VastSimulator
) -> None:
    instance_id = create(vast_client, first_offer_id(vast_client))
    assert vast_client.destroy_instance(instance_id) is True
    assert vast_client.destroy_instance(instance_id) is False
    vanishing = create(vast_client, first_offer_id(vast_client))
    vast_sim.vanish(vanishing)
    assert vast_client.destroy_instance(vanishing) is False


def test_destroy_404_without_instance_error_is_not_success() -> None:
    page = httpx.Response(404, text="<html>Not Found</html>", headers={"content-type": "text/html"})
    client = mock_client(lambda request: page)
    with pytest.raises(UnexpectedResponse):
        client.destroy_instance(5)


def test_get_credit(vast_client: VastClient, vast_sim: VastSimulator) -> None:
    assert vast_client.get_credit() == 25.0
    vast_sim.credit = 3.5
    assert vast_client.get_credit() == 3.5
    assert vast_client.get_user().credit == 3.5


# -- pagination ---------------------------------------------------------------------------------


def test_list_paginates_60_instances_in_3_requests(
    vast_client: VastClient, vast_sim: VastSimulator
) -> None:
    ids = {vast_sim.create_instance_directly(label=f"slackbot:{n}") for n in range(55)}
    ids |= {vast_sim.create_instance_directly(label=f"other:{n}") for n in range(5)}
    instances = vast_client.list_instances()
    assert {i.id for i in instances} == ids and len(instances) == 60
    assert vast_sim.request_count("GET", LIST) == 3
    tokens = [r.query.get("after_token") for r in vast_sim.requests if r.path == LIST]
    assert tokens[0] is None and all(tokens[1:])
    assert all(r.query["limit"] == "25" for r in vast_sim.requests if r.path == LIST)

    mine = vast_client.list_instances(label_prefix="slackbot:")
    assert len(mine) == 55 and all(i.label and i.label.startswith("slackbot:") for i in mine)
    pages = list(vast_client.list_instances_pages())
    assert [len(p) for p in pages] == [25, 25, 10]


def test_list_with_no_instances_is_one_request(
    vast_client: VastClient, vast_sim: VastSimulator
) -> None:
    assert vast_client.list_instances() == []
    assert vast_sim.request_count("GET", LIST) == 1


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> VastClient:
    # No pacing: the spacing of requests per endpoint is tests/test_vast_pacing.py's subject;
    # here it only made consecutive calls wait (seconds per test).
    options: dict[str, Any] = {
        "backoff_initial": 0.001,
        "backoff_max": 0.002,
        "min_intervals": NO_PACING,
    }
    options.update(kwargs)
    return VastClient("http://vast.test", "k", transport=httpx.MockTransport(handler), **options)


@pytest.mark.parametrize(
    "payload",
    [
        {"instances": None},
        {"instances": {"id": 1}},
        {"success": True},
        [],
        {"instances": [{"label": "no id"}]},
    ],
)
def test_list_non_list_answer_is_unexpected(payload: Any) -> None:
    client = mock_client(lambda request: httpx.Response(200, json=payload))
    with pytest.raises(UnexpectedResponse):
        client.list_instances()


def test_list_repeating_token_is_unexpected() -> None:
    client = mock_client(
        lambda request: httpx.Response(200, json={"instances": [], "next_token": "same"})
    )
    with pytest.raises(UnexpectedResponse):
        client.list_instances()


def test_get_instance_shapes() -> None:
    answers = iter(
        [
            {"instances": [{"id": 5, "actual_status": "running"}]},
            {"instances": []},
            {"nope": 1},
        ]
    )
    client = mock_client(lambda request: httpx.Response(200, json=next(answers)))
    inst = client.get_instance(5)
    assert inst is not None and inst.id == 5
    assert client.get_instance(5) is None
    with pytest.raises(UnexpectedResponse):
        client.get_instance(5)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={"offers": {"id": 1}}),
        httpx.Response(200, json={"success": False, "error": "mystery"}),
        httpx.Response(200, text="<html>maintenance</html>", headers={"content-type": "text/html"}),
        httpx.Response(200, text='{"offers": []}', headers={"content-type": "text/plain"}),
    ],
)
def test_search_unexpected_answers(response: httpx.Response) -> None:
    client = mock_client(lambda request: response)
    with pytest.raises(UnexpectedResponse):
        client.search_offers({"limit": 5})


def test_create_without_new_contract_is_unexpected() -> None:
    client = mock_client(lambda request: httpx.Response(200, json={"success": True}))
    with pytest.raises(UnexpectedResponse):
        create(client, 1)


def test_search_skips_unparseable_offers() -> None:
    body = {"offers": [{"id": 1, "gpu_name": "RTX 3090"}, {"gpu_name": "no id"}]}
    client = mock_client(lambda request: httpx.Response(200, json=body))
    assert [o.id for o in client.search_offers({"limit": 5})] == [1]


# -- faults -------------------------------------------------------------------------------------


def test_offer_taken(vast_client: VastClient, vast_sim: VastSimulator) -> None:
    offer_id = first_offer_id(vast_client)
    vast_sim.inject(Fault.OFFER_TAKEN)
    with pytest.raises(OfferUnavailable) as info:
        create(vast_client, offer_id)
    assert "no longer available" in info.value.user_message
    assert info.value.status_code == 404 and info.value.instance_id is None
    assert vast_sim.request_count("PUT", CREATE) == 1
    assert vast_sim.instances == {}
    with pytest.raises(OfferUnavailable):  # it stays rented by "someone else"
        create(vast_client, offer_id)


def test_offer_gone_410(vast_client: VastClient, vast_sim: VastSimulator) -> None:
    vast_sim.inject(Fault.OFFER_TAKEN, status=410)
    with pytest.raises(OfferUnavailable) as info:
        create(vast_client, first_offer_id(vast_client))
    assert info.value.status_code == 410


def test_not_enough_credit(vast_client: VastClient, vast_sim: VastSimulator) -> None:
    offer_id = first_offer_id(vast_client)
    vast_sim.inject(Fault.NO_CREDIT)
    with pytest.raises(InsufficientCredit) as info:
        create(vast_client, offer_id)
    assert "credit" in info.value.user_message
    vast_sim.credit = 0
    with pytest.raises(InsufficientCredit):
        create(vast_client, offer_id)
    assert vast_sim.instances == {}


def test_failed_create_with_contract_sets_instance_id(
    vast_client: VastClient, vast_sim: VastSimulator
) -> None:
    vast_sim.inject(Fault.CREATE_FAILED_WITH_CONTRACT)
    with pytest.raises(VastError) as info:
        create(vast_client, first_offer_id(vast_client))
    instance_id = info.value.instance_id
    assert instance_id is not None
    inst = vast_client.get_instance(instance_id)
    assert inst is not None and (inst.actual_status, inst.intended_status) == ("exited", "stopped")
    assert vast_client.destroy_instance(instance_id) is True


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.RATE_LIMIT, RateLimited),
        (Fault.UNAVAILABLE, Unreachable),
        (Fault.BAD_GATEWAY, Unreachable),
        (Fault.GATEWAY_TIMEOUT, Unreachable),
    ],
)
def test_create_is_never_retried(
    vast_client: VastClient, vast_sim: VastSimulator, fault: Fault, kind: type[VastError]
) -> None:
    offer_id = first_offer_id(vast_client)
    vast_sim.inject(fault, times=None)
    with pytest.raises(kind) as info:
        create(vast_client, offer_id)
    assert vast_sim.request_count("PUT", CREATE) == 1
    # a gateway error may hide a create that happened
    assert info.value.outcome_unknown is (fault in (Fault.BAD_GATEWAY, Fault.GATEWAY_TIMEOUT))


def test_create_timeout_is_not_retried_and_flags_unknown_outcome(
    vast_sim: VastSimulator, make_vast_client: Callable[..., VastClient]
) -> None:
    client = make_vast_client(create_timeout=0.3)
    offer_id = first_offer_id(client)
    vast_sim.inject(Fault.SLOW, seconds=1.0, endpoint="create")
    with pytest.raises(Unreachable) as info:
        create(client, offer_id)
    assert info.value.outcome_unknown is True
    assert "may" in info.value.user_message
    assert vast_sim.request_count("PUT", CREATE) == 1
    # the simulator did create it: the caller must look it up by label
    assert [i.label for i in client.list_instances(label_prefix="slackbot:")] == ["slackbot:dep-1"]


def test_429_twice_then_success_is_three_requests(
    vast_client: VastClient, vast_sim: VastSimulator
) -> None:
    vast_sim.inject(Fault.RATE_LIMIT, times=2, endpoint="search")
    assert vast_client.search_offers(BASE_QUERY)
    assert vast_sim.request_count("POST", SEARCH) == 3


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.UNAVAILABLE, Unreachable),
        (Fault.BAD_GATEWAY, Unreachable),
        (Fault.RATE_LIMIT, RateLimited),
    ],
)
def test_persistent_fault_stops_after_max_attempts(
    vast_client: VastClient, vast_sim: VastSimulator, fault: Fault, kind: type[VastError]
) -> None:
    vast_sim.inject(fault, times=None)
    with pytest.raises(kind) as info:
        vast_client.list_instances()
    assert vast_sim.request_count("GET", LIST) == vast_client.max_attempts == 4
    assert info.value.user_message


@pytest.mark.parametrize(
    ("endpoint", "call"),
    [
        ("get", lambda c, i: c.get_instance(i)),
        ("manage", lambda c, i: c.stop_instance(i)),
        ("manage", lambda c, i: c.start_instance(i)),
        ("manage", lambda c, i: c.label_instance(i, "x")),
        ("destroy", lambda c, i: c.destroy_instance(i)),
        ("user", lambda c, i: c.get_credit()),
    ],
)
def test_idempotent_calls_are_retried(
    vast_client: VastClient,
    vast_sim: VastSimulator,
    endpoint: str,
    call: Callable[[VastClient, int], object],
) -> None:
    instance_id = vast_sim.create_instance_directly()
    vast_sim.inject(Fault.UNAVAILABLE, times=1, endpoint=endpoint)
    vast_sim.inject(Fault.RATE_LIMIT, times=1, endpoint=endpoint)
    vast_sim.clear_requests()
    call(vast_client, instance_id)
    assert len(vast_sim.requests) == 3


def test_timeout_on_read_is_retried(
    vast_sim: VastSimulator, make_vast_client: Callable[..., VastClient]
) -> None:
    client = make_vast_client(timeout=0.3)
    vast_sim.inject(Fault.SLOW, seconds=1.0, endpoint="user")
    assert client.get_credit() == 25.0
    assert vast_sim.request_count("GET", "/api/v0/users/") == 2


def test_bad_key(vast_sim: VastSimulator, make_vast_client: Callable[..., VastClient]) -> None:
    client = make_vast_client(api_key="wrong-key-123456")
    for call in (
        lambda: client.search_offers({"limit": 1}),
        client.list_instances,
        lambda: client.get_instance(1),
        client.get_credit,
    ):
        with pytest.raises(AuthError) as info:
            call()
        assert info.value.status_code == 404
        assert "VAST_API_KEY" in info.value.user_message
    assert vast_sim.request_count() == 4  # auth errors are not retried


def test_injected_bad_key(vast_client: VastClient, vast_sim: VastSimulator) -> None:
    vast_sim.inject(Fault.BAD_KEY)
    with pytest.raises(AuthError):
        vast_client.get_credit()
    assert vast_client.get_credit() == 25.0


@pytest.mark.parametrize("status", [500, 200])
def test_html_error_page_is_unexpected(
    vast_client: VastClient, vast_sim: VastSimulator, status: int
) -> None:
    vast_sim.inject(Fault.HTML_ERROR, status=status, endpoint="list")
    with pytest.raises(UnexpectedResponse) as info:
        vast_client.list_instances()
    assert "could not understand" in info.value.user_message
    assert vast_sim.request_count("GET", LIST) == 1  # not a transient error


def test_unreachable_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with VastClient(
        f"http://127.0.0.1:{port}",
        "k",
        timeout=1,
        backoff_initial=0.001,
        backoff_max=0.002,
        min_intervals=NO_PACING,
    ) as client:
        with pytest.raises(Unreachable) as info:
            client.get_credit()
        assert client.request_count == 4
        with pytest.raises(Unreachable) as info:
            create(client, 1)
        assert info.value.outcome_unknown is False  # never sent: nothing was created
        assert client.request_count == 5


# -- secrets ------------------------------------------------------------------------------------


def test_api_key_never_leaks(
    vast_sim: VastSimulator,
    make_vast_client: Callable[..., VastClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_vast_client()
    errors: list[VastError] = []
    offer_id = first_offer_id(client)
    instance_id = create(client, offer_id)
    client.list_instances()
    client.get_instance(instance_id)
    for fault in (Fault.RATE_LIMIT, Fault.UNAVAILABLE, Fault.HTML_ERROR, Fault.BAD_KEY):
        vast_sim.inject(fault, times=None)
        with pytest.raises(VastError) as info:
            client.get_credit()
        errors.append(info.value)
        vast_sim.clear_faults()
    vast_sim.inject(Fault.OFFER_TAKEN)
    with pytest.raises(VastError) as info:
        create(client, first_offer_id(client))
    errors.append(info.value)
    bad = make_vast_client(api_key="wrong-" + VAST_TEST_API_KEY)
    with pytest.raises(AuthError) as info:
        bad.get_credit()
    errors.append(info.value)

    assert any("GET /api/v1/instances/ -> 200" in r.getMessage() for r in caplog.records)
    assert VAST_TEST_API_KEY not in caplog.text
    assert VAST_TEST_API_KEY not in repr(client) and VAST_TEST_API_KEY not in repr(bad)
    for error in errors:
        for text in (str(error), repr(error), error.user_message, repr(error.__cause__)):
            assert VAST_TEST_API_KEY not in text


def test_create_error_echoing_env_is_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        echo = f"error 400/1782: Invalid args: invalid json: {sent['env']}"
        return httpx.Response(400, json={"success": False, "error": "invalid_args", "msg": echo})

    client = mock_client(handler)
    with pytest.raises(VastError) as info:
        create(client, 1)
    assert "pw-9d8c7b6a" not in str(info.value)
    assert "pw-9d8c7b6a" not in info.value.user_message
    assert "[redacted]" in info.value.user_message


def test_bearer_header_and_no_key_in_url() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"credit": 1.0})

    client = VastClient("http://vast.test/", "s3cr3t-key", transport=httpx.MockTransport(handler))
    client.get_credit()
    assert seen[0].headers["authorization"] == "Bearer s3cr3t-key"
    assert str(seen[0].url) == "http://vast.test/api/v0/users/current/"
    anonymous = VastClient("http://vast.test", None, transport=httpx.MockTransport(handler))
    anonymous.get_credit()
    assert "authorization" not in seen[1].headers


def test_an_odd_instance_is_kept_with_its_odd_fields_absent_not_the_whole_list() -> None:
    """Dropping it would read a billing instance as gone: its odd fields become None."""

    def answer(request: httpx.Request) -> httpx.Response:
        good = {"id": 1, "actual_status": "running", "label": "slackbot:dep-1"}
        odd = {
            "id": 2,
            "actual_status": "running",
            "gpu_ram": "N/A",
            "ports": "broken",
            "ssh_port": "x",
            "public_ipaddr": "203.0.113.9:8080",
            "num_gpus": "two",
        }
        body = {"success": True, "next_token": None, "instances": [good, odd]}
        return httpx.Response(200, json=body)

    client = VastClient("http://vast.test", "k", transport=httpx.MockTransport(answer))
    first, odd = client.list_instances()
    assert (first.id, odd.id, odd.actual_status) == (1, 2, "running")
    assert (odd.gpu_ram_gb, odd.ports, odd.ssh_port, odd.num_gpus) == (None, {}, None, None)
    assert odd.public_ipaddr is None

    def no_id(request: httpx.Request) -> httpx.Response:
        body = {"success": True, "next_token": None, "instances": [{"actual_status": "running"}]}
        return httpx.Response(200, json=body)

    client = VastClient("http://vast.test", "k", transport=httpx.MockTransport(no_id))
    with pytest.raises(UnexpectedResponse):
        client.list_instances()


def test_a_secret_cut_by_the_detail_limit_is_still_redacted() -> None:
    secret = "pw-" + "s" * 40
    echoed = "x" * 280 + "invalid env " + secret  # Vast.ai echoing the request; cut at 300

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"success": False, "error": "invalid_args", "msg": echoed})

    client = VastClient("http://vast.test", "k", transport=httpx.MockTransport(answer))
    with pytest.raises(VastError) as info:
        client.create_instance(1, image="i", env={"WEB_PASSWORD": secret}, disk_gb=10, label="l")
    for text in (str(info.value), info.value.user_message):
        assert secret[:8] not in text
