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


def test_a_url_httpx_cannot_use_is_not_up_and_the_others_are_probed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unbracketed IPv6 address (``httpx.InvalidURL``) or a host label over 63 characters
    (``UnicodeError``) makes that URL "not up", never an exception out of ``are_up``."""
    seen: list[str] = []
    long_host = "a" * 64 + ".example.com"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == long_host:  # as the real transport's IDNA encoding does
            raise UnicodeError("encoding with 'idna' codec failed (label too long)")
        if request.url.host == "bug.example":
            raise RuntimeError("anything else")
        seen.append(str(request.url))
        return httpx.Response(200 if request.url.port == 1 else 503)

    bad = [
        "http://2001:db8::1:8080/api",
        f"http://{long_host}:1/?token=s3cret",
        "http://bug.example:1/",
    ]
    prober = Prober(transport=httpx.MockTransport(handler))
    try:
        result = prober.are_up(["http://h:1/a", *bad, "http://h:2/a"])
        again = prober.are_up([*bad, "http://h:1/a"])
    finally:
        prober.close()
    assert result == {"http://h:1/a": True, **dict.fromkeys(bad, False), "http://h:2/a": False}
    assert again == {**dict.fromkeys(bad, False), "http://h:1/a": True}
    assert sorted(seen) == ["http://h:1/a", "http://h:1/a", "http://h:2/a"]
    warnings = [r for r in caplog.records if "cannot be probed" in r.getMessage()]
    assert len(warnings) == len(bad)  # once per URL, not every tick
    assert not any("s3cret" in r.getMessage() for r in caplog.records)
