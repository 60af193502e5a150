"""SSH keys of one instance: the client's calls (list, attach, detach) against the Vast.ai
simulator, the simulator's answers (an unknown instance, a malformed key, an unknown key id),
their pacing and faults, and that the account-wide ``POST /api/v0/ssh/`` is never used."""

from __future__ import annotations

import ast
import inspect
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

import bot.vast.client as client_module
from bot.simulator import Fault, VastSimulator
from bot.vast import KeyRefused, NotFound, UnexpectedResponse, Unreachable, VastClient
from bot.vast.models import key_body
from bot.vast.pacing import NO_PACING
from tests.fixtures.vast import VAST_TEST_API_KEY, client_for

ACCOUNT_KEYS = "/api/v0/ssh"


def public_key(comment: str = "alice@laptop", kind: str = "ed25519") -> str:
    """A fresh OpenSSH public key line (``ssh-ed25519 AAAA… comment``)."""
    private: Any = (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    line = (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    return f"{line} {comment}"


def private_key_text() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


def running(sim: VastSimulator, api_key: str | None = VAST_TEST_API_KEY) -> int:
    instance_id = sim.create_instance_directly(api_key=api_key)
    sim.advance(4)
    return instance_id


def test_attach_list_and_detach_one_instance(vast_sim: VastSimulator) -> None:
    other = running(vast_sim)
    instance_id = running(vast_sim)
    alice, bob = public_key("alice@laptop"), public_key("bob@desk", kind="rsa")
    with client_for(vast_sim) as client:
        client.attach_ssh_key(instance_id, alice)
        client.attach_ssh_key(instance_id, "  " + bob + "\n")
        (sent,) = [r for r in vast_sim.requests if r.method == "POST"][:1]
        assert sent.path == f"/api/v0/instances/{instance_id}/ssh/"
        assert sent.json == {"ssh_key": alice}
        listed = client.list_instance_ssh_keys(instance_id)
        assert [k.public_key for k in listed] == [alice, bob]
        assert listed[0].matches(key_body(alice) + " another comment")
        assert not listed[0].matches(bob) and listed[0].id != listed[1].id
        assert vast_sim.instance_ssh_keys(other) == []  # that instance only

        assert client.detach_ssh_key(instance_id, listed[0].id) is True
        assert vast_sim.requests[-1].path == f"/api/v0/instances/{instance_id}/ssh/{listed[0].id}/"
        assert vast_sim.instance_ssh_keys(instance_id) == [bob]
        assert client.detach_ssh_key(instance_id, listed[0].id) is False  # already removed
    assert vast_sim.request_count(path_prefix=ACCOUNT_KEYS) == 0


def test_the_list_comes_as_a_json_encoded_string(vast_sim: VastSimulator) -> None:
    """As documented (show ssh-keys: ``ssh_keys`` is a "JSON string containing array")."""
    instance_id = running(vast_sim)
    key = public_key()
    with client_for(vast_sim) as client:
        client.attach_ssh_key(instance_id, key)
    raw = httpx.get(
        f"{vast_sim.base_url}/api/v0/instances/{instance_id}/ssh/",
        headers={"Authorization": f"Bearer {VAST_TEST_API_KEY}"},
    ).json()
    assert raw["success"] is True and isinstance(raw["ssh_keys"], str)
    (entry,) = json.loads(raw["ssh_keys"])
    assert set(entry) == {"id", "name", "public_key"} and isinstance(entry["id"], int)
    assert entry["public_key"] == key and entry["name"] == "alice@laptop"


def test_an_unknown_instance_or_another_accounts_is_not_found(
    make_vast_sim: Any,
) -> None:
    sim = make_vast_sim(accounts={"key-a": 1001, "key-b": 1002})
    theirs = running(sim, "key-b")
    with client_for(sim, "key-a") as client:
        for instance_id in (theirs, 999):
            with pytest.raises(NotFound):
                client.attach_ssh_key(instance_id, public_key())
            with pytest.raises(NotFound):
                client.list_instance_ssh_keys(instance_id)
            with pytest.raises(NotFound):
                client.detach_ssh_key(instance_id, 5)
    assert sim.instance_ssh_keys(theirs) == []


@pytest.mark.parametrize(
    "bad",
    [
        "ssh-ed25519 not-base64!!",
        "ssh-foo AAAAB3NzaC1yc2E=",
        "hello",
        "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOPd0SQ9ILK0M68W59XnNr9OHx/9jDNJFnYOITa/naGg",
        "PRIVATE",
    ],
)
def test_a_malformed_or_private_key_is_refused(vast_sim: VastSimulator, bad: str) -> None:
    instance_id = running(vast_sim)
    text = private_key_text() if bad == "PRIVATE" else bad
    with client_for(vast_sim) as client, pytest.raises(KeyRefused) as refused:
        client.attach_ssh_key(instance_id, text)
    assert refused.value.status_code == 400 and refused.value.error_code == "invalid_args"
    assert "public key" in refused.value.user_message
    assert vast_sim.instance_ssh_keys(instance_id) == []
    assert vast_sim.request_count("POST") == 1  # a refusal is not retried


def test_a_429_is_retried_but_a_lost_answer_is_not(vast_sim: VastSimulator) -> None:
    """A 429 means nothing was done: retried. A 504 may hide an attach Vast.ai carried out:
    raised, so the caller looks at the instance's keys before sending it again."""
    instance_id = running(vast_sim)
    key = public_key()
    with client_for(vast_sim) as client:
        vast_sim.inject(Fault.RATE_LIMIT, endpoint="ssh")
        client.attach_ssh_key(instance_id, key)
        assert vast_sim.request_count("POST") == 2
        vast_sim.clear_requests()
        vast_sim.inject(Fault.GATEWAY_TIMEOUT, endpoint="ssh")
        with pytest.raises(Unreachable):
            client.attach_ssh_key(instance_id, key)
        assert vast_sim.request_count("POST") == 1
        vast_sim.inject(Fault.GATEWAY_TIMEOUT, endpoint="ssh")  # list and detach: idempotent
        listed = client.list_instance_ssh_keys(instance_id)
        assert [k.public_key for k in listed] == [key]
    assert vast_sim.instance_ssh_keys(instance_id) == [key]


def test_ssh_key_calls_are_paced_on_their_own_endpoint(vast_sim: VastSimulator) -> None:
    assert VastClient("http://vast.test").pacers.interval("ssh") == 2.0  # detach_ssh.yaml
    instance_id = running(vast_sim)
    with client_for(vast_sim, min_intervals={"ssh": 0.05}) as client:
        client.attach_ssh_key(instance_id, public_key())
        client.list_instance_ssh_keys(instance_id)
        client.list_instance_ssh_keys(instance_id)
        assert client.pacers["ssh"].waited > 0
        assert client.pacers["manage"].waited == 0 and client.pacers["get"].waited == 0


def test_the_simulator_limits_and_faults_know_the_ssh_endpoint(make_vast_sim: Any) -> None:
    now = [100.0]
    sim = make_vast_sim(api_key=None, rate_limits=True, rate_clock=lambda: now[0])
    assert sim.rate_limits["ssh"] == 2.0
    instance_id = running(sim, None)
    with client_for(sim, None, max_attempts=1) as client:
        client.list_instance_ssh_keys(instance_id)
        with pytest.raises(Exception, match="threshold=2.0"):
            client.attach_ssh_key(instance_id, public_key())
        now[0] += 2.0
        client.attach_ssh_key(instance_id, public_key())
        assert client.get_instance(instance_id) is not None  # another endpoint, not limited
        # A fault named for another instance endpoint never hits the SSH keys, and back.
        sim.inject(Fault.BAD_KEY, endpoint="get", times=None)
        now[0] += 2.0
        assert len(client.list_instance_ssh_keys(instance_id)) == 1
        sim.clear_faults()
        sim.inject(Fault.BAD_KEY, endpoint="ssh", times=None)
        assert client.get_instance(instance_id) is not None
        sim.clear_faults()


def test_odd_list_answers() -> None:
    answers: list[tuple[int, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status, body = answers.pop(0)
        return httpx.Response(status, json=body)

    client = VastClient(
        "http://vast.test",
        "k",
        transport=httpx.MockTransport(handler),
        max_attempts=1,
        min_intervals=NO_PACING,
    )
    key = public_key()
    answers.append(
        (200, {"success": True, "ssh_keys": [{"id": "12", "public_key": key}, {"id": None}]})
    )
    (only,) = client.list_instance_ssh_keys(1)  # a plain list, a bad entry skipped
    assert only.id == "12" and only.name is None
    answers.append((200, {"success": True, "ssh_keys": None}))
    assert client.list_instance_ssh_keys(1) == []
    answers.append((200, {"success": True}))
    with pytest.raises(UnexpectedResponse):
        client.list_instance_ssh_keys(1)
    answers.append((200, {"success": True, "ssh_keys": "{not json"}))
    with pytest.raises(UnexpectedResponse):
        client.list_instance_ssh_keys(1)
    # The generated reference documents errors as 200 success:false too.
    answers.append(
        (200, {"success": False, "error": "no_such_instance", "msg": "Instance 1 not found."})
    )
    with pytest.raises(NotFound):
        client.list_instance_ssh_keys(1)
    answers.append((200, {"success": False, "error": "no_such_ssh_key", "msg": "nope"}))
    assert client.detach_ssh_key(1, "7") is False
    answers.append((200, {"success": False, "error": "invalid_args", "msg": "bad key"}))
    with pytest.raises(KeyRefused):
        client.attach_ssh_key(1, key)
    with pytest.raises(ValueError):
        client.detach_ssh_key(1, "7; rm")
    with pytest.raises(ValueError):
        client.attach_ssh_key(1, "  ")


def test_the_client_has_no_way_to_add_an_account_key() -> None:
    """``POST /api/v0/ssh/`` puts a key on every instance of the account (create_ssh_key.yaml):
    the client has neither a method nor a URL for it."""
    tree = ast.parse(inspect.getsource(client_module))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    docstrings |= {  # the literal parts of an f-string are read with it
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    paths = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr | ast.Constant)
        and id(node) not in docstrings
        and "/ssh" in ast.unparse(node)
    ]
    assert len(paths) == 3  # list and attach, detach
    for path in paths:  # every SSH path in the code is one instance's
        assert path.startswith("f'/api/v0/instances/{int(instance_id)}/ssh/"), path
    names = [n for n in dir(VastClient) if "ssh" in n.lower() and not n.startswith("__")]
    assert sorted(names) == ["attach_ssh_key", "detach_ssh_key", "list_instance_ssh_keys"]
