"""The readiness probe: which answers count as "the app is up"."""

from __future__ import annotations

import httpx
import pytest

from bot.services.probe import Prober


def _prober(status: int | None) -> Prober:
    def handler(request: httpx.Request) -> httpx.Response:
        if status is None:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, headers={"Location": "/login"})

    return Prober(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "up"),
    [
        (200, True),
        (302, True),
        (401, True),
        (404, False),
        (502, False),
        (503, False),
        (None, False),
    ],
)
def test_up_statuses(status: int | None, up: bool) -> None:
    prober = _prober(status)
    try:
        assert prober.is_up("http://203.0.113.42:41888/api") is up
    finally:
        prober.close()


def test_are_up_probes_each_url_once() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200 if request.url.port == 1 else 503)

    prober = Prober(transport=httpx.MockTransport(handler))
    try:
        result = prober.are_up(["http://h:1/a", "http://h:2/a", "http://h:1/a"])
    finally:
        prober.close()
    assert result == {"http://h:1/a": True, "http://h:2/a": False}
    assert sorted(seen) == ["http://h:1/a", "http://h:2/a"]
