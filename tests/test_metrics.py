"""``GET /metrics``: Prometheus' text format from the real app after a deploy, the poller to
ready and a Stop; names, a few values, no user or workspace id; Socket Mode's health port; and
the pieces (the Slack request counter on copies, the rule action hook, a database that
cannot be read)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

import storage
from bot.metrics import BotMetrics, Queues, SlackRequestCounter, StateCollector, slack_method
from bot.playground.slack_api import TEAM_ID, FakeSlack
from bot.slack.notifier import copy_client, without_rate_limit_retries
from bot.slack.server import BackgroundServer, make_health_app
from storage import make_engine, make_session_factory, migrate
from tests.fixtures.slack import ALICE, BotHarness
from tests.test_deploy import pick_offer, settled, submitted_view, wait_until
from tests.test_manage import click, replies
from tests.test_poller import poller_of

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(get: Callable[[str], httpx.Response]) -> tuple[str, Samples]:
    """GET /metrics: (the body, ``{(sample name, sorted labels): value}``)."""
    response = get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_after_a_deploy_and_a_stop(bot: BotHarness, fake_slack: FakeSlack) -> None:
    text, before = scrape(bot.http.get)
    for name in (
        "gpubot_deployments",
        "gpubot_billing_gpus",
        "gpubot_billing_dollars_per_hour",
        "gpubot_outbox_queued_messages",
        "gpubot_work_queued_jobs",
        "gpubot_work_in_flight_jobs",
        "gpubot_work_refused_jobs_total",
        "gpubot_reconciler_pass_duration_seconds",
        "gpubot_spend_this_month_dollars",
    ):
        assert f"# TYPE {name} " in text, name
    assert value(before, "gpubot_deployments", status="ready") == 0

    chosen = pick_offer(bot).offer
    assert bot.view_submission(submitted_view(chosen.id)).status_code == 200
    (dep,) = settled(bot)
    poller = poller_of(bot)
    poller.tick()
    bot.vast.advance(4)
    poller.tick()
    dep = wait_until(
        lambda: (
            (row := storage.get_deployment(bot.services.session_factory, dep.id)) is not None
            and row.status == "ready"
            and row.message_ts
            and row
        )
    )

    _, ready = scrape(bot.http.get)
    assert value(ready, "gpubot_deployments", status="ready") == 1
    assert value(ready, "gpubot_billing_gpus") == dep.num_gpus
    assert value(ready, "gpubot_billing_dollars_per_hour") == pytest.approx(dep.dph_total)
    assert value(ready, "gpubot_vast_requests_total", endpoint="create") >= 1
    assert value(ready, "gpubot_reconciler_pass_duration_seconds_count") >= 2
    assert value(ready, "gpubot_reconciler_last_pass_age_seconds") >= 0
    assert ("gpubot_reconciler_last_pass_age_seconds", ()) in ready

    click(bot, "deployment_stop", dep)
    assert "Stopped" in replies(fake_slack, 1)[0]

    text, after = scrape(bot.http.get)
    assert value(after, "gpubot_deployments", status="ready") == 0
    assert value(after, "gpubot_deployments", status="stopped") == 1
    assert value(after, "gpubot_billing_gpus") == 0
    assert value(after, "gpubot_billing_dollars_per_hour") == 0
    assert value(after, "gpubot_vast_requests_total", endpoint="manage") >= 1
    assert value(after, "gpubot_vast_rate_limited_responses_total", endpoint="manage") == 0
    posted = value(after, "gpubot_slack_requests_total", method="chat.postMessage")
    assert posted >= len(fake_slack.calls_to("chat.postMessage")) >= 1
    assert value(after, "gpubot_work_refused_jobs_total") == 0
    # No user id, workspace id or token in any label or value.
    for secret in (ALICE, TEAM_ID, dep.user_id, "xoxb-"):
        assert secret not in text
    # The sample Grafana dashboard asks only for metrics the bot exposes.
    dashboard = (Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text()
    asked = set(re.findall(r"gpubot_[a-z_]+", dashboard))
    families = {family.name for family in text_string_to_metric_families(text)}
    missing = {
        name
        for name in asked
        if name.removesuffix("_total").removesuffix("_bucket") not in families
    }
    assert asked and not missing


def test_metrics_counts_slack_429s_per_method(bot: BotHarness, fake_slack: FakeSlack) -> None:
    fake_slack.fail("users.info", "ratelimited", status=429, headers={"Retry-After": "0"})
    client = bot.runtime.app.client
    client.users_info(user=ALICE)
    _, samples = scrape(bot.http.get)
    assert value(samples, "gpubot_slack_rate_limited_responses_total", method="users.info") == 1
    assert value(samples, "gpubot_slack_requests_total", method="users.info") == 2


def test_the_request_counter_stays_first_on_every_copy() -> None:
    counter = SlackRequestCounter(BotMetrics())
    client = WebClient(retry_handlers=[counter, RateLimitErrorRetryHandler(max_retry_count=1)])
    assert copy_client(client, retry_handlers=[]).retry_handlers == [counter]
    assert without_rate_limit_retries(client).retry_handlers == [counter]
    assert copy_client(client).retry_handlers[0] is counter
    assert len(copy_client(client).retry_handlers) == 2
    assert slack_method("https://slack.com/api/chat.postMessage") == "chat.postMessage"


def test_socket_mode_health_port_serves_metrics(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/m.db")
    migrate(engine)
    metrics = BotMetrics()
    metrics.registry.register(
        StateCollector(
            make_session_factory(engine),
            Queues(
                outbox=lambda: 3, work_in_flight=lambda: 20, work_threads=16, work_refused=lambda: 2
            ),
        )
    )
    metrics.rule_action("idle_stop", "stop", "done")
    metrics.vast_request("get", 429)
    app = make_health_app(lambda: {"socket": True}, metrics=metrics.exposition)
    server = BackgroundServer(app).start()
    try:
        with httpx.Client(base_url=server.url) as http:
            _, samples = scrape(http.get)
            assert http.get("/nothing").status_code == 404
        engine.dispose()
    finally:
        server.stop()
    assert value(samples, "gpubot_outbox_queued_messages") == 3
    assert value(samples, "gpubot_work_queued_jobs") == 4
    assert value(samples, "gpubot_work_refused_jobs_total") == 2
    assert value(samples, "gpubot_deployments", status="ready") == 0
    assert (
        value(samples, "gpubot_rule_actions_total", rule="idle_stop", action="stop", outcome="done")
        == 1
    )
    assert value(samples, "gpubot_vast_rate_limited_responses_total", endpoint="get") == 1


def test_per_workspace_figures_only_when_asked(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    migrate(engine)
    sf = make_session_factory(engine)
    now = storage.utcnow()
    for n, team in enumerate(("T0AAAAAAA", "T0AAAAAAA", "T0BBBBBBB")):
        dep, _ = storage.create_deployment(
            sf,
            request_key=f"key{n}",
            team_id=team,
            user_id=ALICE,
            channel_id="C0DEPLOYS1",
            template_slug="jupyter-lab",
            template_name="JupyterLab",
            offer_id=n + 1,
            gpu_name="RTX 4090",
            num_gpus=2,
            gpu_ram_gb=24,
            dph_total=0.5,
            disk_gb=20,
            simulated=True,
            now=now,
        )
        storage.set_instance(sf, dep.id, 100 + n, now=now)
        for old, new in (("creating", "provisioning"), ("provisioning", "ready")):
            storage.update_status(sf, dep.id, expected_status=old, new_status=new, now=now)
    queues = Queues(
        outbox=lambda: 0, work_in_flight=lambda: 0, work_threads=1, work_refused=lambda: 0
    )
    texts = {}
    for per_workspace in (False, True):
        metrics = BotMetrics()
        metrics.registry.register(StateCollector(sf, queues, per_workspace=per_workspace))
        texts[per_workspace] = metrics.exposition().decode()
    engine.dispose()
    assert "T0AAAAAAA" not in texts[False] and "gpubot_workspace" not in texts[False]
    samples: Samples = {}
    for family in text_string_to_metric_families(texts[True]):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert value(samples, "gpubot_billing_gpus") == 6
    assert value(samples, "gpubot_workspace_billing_gpus", team_id="T0AAAAAAA") == 4
    ours = {"team_id": "T0BBBBBBB"}
    assert value(samples, "gpubot_workspace_billing_dollars_per_hour", **ours) == 0.5
    assert value(samples, "gpubot_workspace_deployments", status="ready", **ours) == 1
    assert ALICE not in texts[True]


def test_spend_this_month_is_reused_for_a_minute_and_left_out_when_it_fails(
    session_factory: Any,
) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.metrics import SPEND_REFRESH_SECONDS, Queues, StateCollector

    now = [datetime(2026, 12, 7, 12, tzinfo=UTC)]
    calls: list[datetime] = []
    spend = [12.5]

    def month_spend(at: datetime) -> float:
        calls.append(at)
        if spend[0] < 0:
            raise RuntimeError("database down")
        return spend[0]

    queues = Queues(
        outbox=lambda: 0, work_in_flight=lambda: 0, work_threads=1, work_refused=lambda: 0
    )
    collector = StateCollector(
        session_factory, queues, clock=lambda: now[0], month_spend=month_spend
    )

    def spent() -> float | None:
        for family in collector.collect():
            if family.name == "gpubot_spend_this_month_dollars":
                return float(family.samples[0].value)
        return None

    assert spent() == 12.5
    spend[0] = 20.0
    now[0] += timedelta(seconds=SPEND_REFRESH_SECONDS - 1)
    assert spent() == 12.5 and len(calls) == 1  # reused within the minute
    now[0] += timedelta(seconds=2)
    assert spent() == 20.0 and len(calls) == 2
    spend[0] = -1
    now[0] += timedelta(seconds=SPEND_REFRESH_SECONDS + 1)
    assert spent() is None  # left out, the rest still answered
