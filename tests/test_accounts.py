"""Which Vast.ai account a workspace or a deployment rents on (bot.services.accounts)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from bot.services.accounts import (
    SIMULATOR,
    AccountUnavailable,
    StoredKey,
    VastAccount,
    VastAccounts,
)
from bot.vast.client import VastClient
from storage import DeploymentRecord, DeploymentStatus

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _row(team_id: str, *, simulated: bool = False, id: int = 1) -> DeploymentRecord:
    fields = {f.name: None for f in dataclasses.fields(DeploymentRecord)}
    fields.update(
        id=id,
        team_id=team_id,
        simulated=simulated,
        status=DeploymentStatus.READY,
        created_at=NOW,
        updated_at=NOW,
        last_state_change_at=NOW,
    )
    return DeploymentRecord(**fields)  # type: ignore[arg-type]


def _multi(keys: dict[str, StoredKey]) -> tuple[VastAccounts, list[str]]:
    built: list[str] = []

    def make(api_key: str) -> VastClient:
        built.append(api_key)
        return VastClient("http://127.0.0.1:9", api_key)

    simulator = VastAccount(SIMULATOR, VastClient("http://127.0.0.1:9", None), simulated=True)
    return VastAccounts(simulator, stored_key=keys.get, make_client=make), built


def test_single_mode_puts_every_workspace_and_row_on_its_one_account() -> None:
    client = VastClient("http://127.0.0.1:9", "env-key")
    accounts = VastAccounts.single(client, simulated=False)
    assert not accounts.multi
    assert accounts.for_team("T0A").client is client
    assert accounts.for_deployment(_row("T0B")).name == "env"
    assert accounts.simulator is None


def test_a_workspace_without_a_key_and_every_simulated_row_rent_on_the_simulator() -> None:
    accounts, built = _multi({"T0A": StoredKey("key-a", "1001")})
    assert accounts.for_team("T0B").simulated
    assert accounts.for_deployment(_row("T0A", simulated=True)).name == SIMULATOR
    a = accounts.for_deployment(_row("T0A"))
    assert (a.name, a.simulated, built) == ("vast-user:1001", False, ["key-a"])
    assert accounts.for_team("T0A").client is a.client  # one client per key, reused


def test_two_keys_of_one_vast_user_are_one_account_and_no_client_is_closed_under_another() -> None:
    accounts, built = _multi({"T0A": StoredKey("key-a", "1001"), "T0C": StoredKey("key-c", "1001")})
    a, c = accounts.for_team("T0A"), accounts.for_team("T0C")
    assert a.name == c.name == "vast-user:1001"
    again = accounts.for_team("T0A")  # before: C's lookup closed A's client and built another
    assert again.client is a.client and not a.client._http.is_closed
    assert built == ["key-a", "key-c"]
    assert accounts.for_deployment(_row("T0C", id=2)).name == "vast-user:1001"
    assert repr(StoredKey("key-a", "1001")).count("key-a") == 0
    accounts.close()
    assert a.client._http.is_closed


def test_a_real_row_whose_workspace_has_no_key_is_never_sent_to_the_simulator() -> None:
    # It rented on Vast.ai (e.g. on VAST_API_KEY before OAuth mode): the simulator would
    # answer a Stop or Destroy as done while the instance bills on.
    accounts, _ = _multi({})
    with pytest.raises(AccountUnavailable) as raised:
        accounts.for_deployment(_row("T0B", simulated=False))
    assert "still running" in raised.value.user_message
    assert accounts.for_deployment(_row("T0B", simulated=True)).name == SIMULATOR
