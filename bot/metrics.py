"""Prometheus metrics: what ``GET /metrics`` exposes, in the text exposition format.

One :class:`BotMetrics` per runtime, on its own ``CollectorRegistry`` (not prometheus_client's
global one, so tests and several bots in one process do not mix their figures). Counters are
incremented where the events happen (each Vast.ai request, each Slack Web API request, each
rule action, each reconciler pass); the state (deployments by status, what bills now, queue
lengths, the age of the last reconciler pass) is read at scrape time by
:class:`StateCollector`, with one ``GROUP BY`` query.

Names follow Prometheus' naming practices (https://prometheus.io/docs/practices/naming/): a
``gpubot_`` prefix, base units in the name (``_seconds``, ``_dollars_per_hour``), ``_total``
on counters. No label carries a user id, a workspace name or a secret: the labels are a
deployment status, a Vast.ai endpoint name (:data:`bot.vast.pacing.ENDPOINTS`), a Slack Web
API method name, a rule name, an action kind and an outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlparse

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

import storage
from storage.health import read_heartbeat
from storage.metrics import deployment_figures, workspace_figures

logger = logging.getLogger(__name__)

#: Buckets of the reconciler pass duration, seconds (a pass is paced by Vast.ai's intervals).
PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :meth:`BotMetrics.exposition` (prometheus_client's, which matches
the text format its ``generate_latest`` writes)."""


class BotMetrics:
    """The bot's counters and histogram on a dedicated ``CollectorRegistry``.

    Thread-safe (prometheus_client's metrics lock themselves). ``registry``: where to register
    (default: a new one).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.vast_requests = Counter(
            "gpubot_vast_requests",
            "HTTP requests sent to Vast.ai, per pacing endpoint (each retry counts)",
            ["endpoint"],
            registry=r,
        )
        self.vast_rate_limited = Counter(
            "gpubot_vast_rate_limited_responses",
            "HTTP 429 answers from Vast.ai, per pacing endpoint",
            ["endpoint"],
            registry=r,
        )
        self.slack_requests = Counter(
            "gpubot_slack_requests",
            "HTTP requests sent to the Slack Web API, per method (each retry counts)",
            ["method"],
            registry=r,
        )
        self.slack_rate_limited = Counter(
            "gpubot_slack_rate_limited_responses",
            "HTTP 429 answers from the Slack Web API, per method",
            ["method"],
            registry=r,
        )
        self.rule_actions = Counter(
            "gpubot_rule_actions",
            "Actions of the lifetime and idle rules, per rule, action kind and outcome",
            ["rule", "action", "outcome"],
            registry=r,
        )
        self.reconciler_pass = Histogram(
            "gpubot_reconciler_pass_duration_seconds",
            "Wall time of the reconciler's passes in this process (the lease holder's)",
            buckets=PASS_BUCKETS,
            registry=r,
        )

    # -- hooks the collaborators call -------------------------------------------------------

    def vast_request(self, endpoint: str, status: int | None) -> None:
        """One HTTP request to Vast.ai on pacing ``endpoint`` (e.g. ``"create"``), answered
        with ``status`` (None: no answer, e.g. a timeout)."""
        self.vast_requests.labels(endpoint=endpoint).inc()
        if status == 429:
            self.vast_rate_limited.labels(endpoint=endpoint).inc()

    def slack_request(self, method: str, status: int | None) -> None:
        """One HTTP request to Slack's Web API ``method`` (e.g. ``"chat.postMessage"``),
        answered with ``status`` (None: no answer)."""
        self.slack_requests.labels(method=method).inc()
        if status == 429:
            self.slack_rate_limited.labels(method=method).inc()

    def rule_action(self, rule: str, action: str, outcome: str) -> None:
        """A rule's action (``rule`` its name, ``action`` its kind, ``outcome`` e.g.
        ``"done"``, ``"failed"`` or ``"error"``)."""
        self.rule_actions.labels(rule=rule, action=action, outcome=outcome).inc()

    def reconciler_passed(self, seconds: float) -> None:
        """A reconciler pass of ``seconds`` wall time ended in this process."""
        self.reconciler_pass.observe(seconds)

    # -- exposition --------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (:data:`CONTENT_TYPE`). A collector that
        raises is logged and left out of the answer by :class:`StateCollector` itself."""
        return generate_latest(self.registry)


@dataclass(frozen=True)
class Queues:
    """What :class:`StateCollector` reads of the in-process queues: ``outbox()``: Slack
    messages waiting or being sent; ``work_in_flight()``: jobs accepted by the work pool and not
    finished; ``work_threads``: its threads (in flight beyond them are queued);
    ``work_refused()``: jobs refused since start (the pool was full)."""

    outbox: Callable[[], int]
    work_in_flight: Callable[[], int]
    work_threads: int
    work_refused: Callable[[], int]


#: How long ``gpubot_spend_this_month_dollars`` is reused between scrapes, seconds.
SPEND_REFRESH_SECONDS = 60.0


class StateCollector(Collector):
    """Reads the state at scrape time: deployments by status, GPUs and $/hour billing now
    (``ready`` deployments, :func:`storage.metrics.deployment_figures`), the queues, and the age
    of the reconciler's last clean pass (the heartbeat row, whichever process wrote it).

    With ``per_workspace`` (``METRICS_PER_WORKSPACE``), also ``gpubot_workspace_deployments``,
    ``gpubot_workspace_billing_gpus`` and ``gpubot_workspace_billing_dollars_per_hour``,
    labelled ``team_id`` (the Slack team id, never a name).

    A figure that cannot be read (the database is down) is left out and logged once per
    scrape at WARNING: ``/metrics`` still answers with the rest."""

    def __init__(
        self,
        sf: storage.SessionFactory,
        queues: Queues,
        *,
        clock: Callable[[], datetime] = storage.utcnow,
        per_workspace: bool = False,
        month_spend: Callable[[datetime], float] | None = None,
    ) -> None:
        self.sf = sf
        self.queues = queues
        self.clock = clock
        self.per_workspace = per_workspace
        self.month_spend = month_spend
        self._spend: tuple[datetime, float] | None = None

    def collect(self) -> Iterator[Metric]:
        """The gauges and counters above (prometheus_client calls this on each scrape)."""
        try:
            figures = deployment_figures(self.sf)
        except Exception as error:
            logger.warning("metrics: could not read the deployments: %s", type(error).__name__)
        else:
            by_status = GaugeMetricFamily(
                "gpubot_deployments", "Deployments per status", labels=["status"]
            )
            for status, count in sorted(figures.by_status.items()):
                by_status.add_metric([status], count)
            yield by_status
            yield GaugeMetricFamily(
                "gpubot_billing_gpus",
                "GPUs of ready deployments (billing now)",
                value=figures.gpus_billing,
            )
            yield GaugeMetricFamily(
                "gpubot_billing_dollars_per_hour",
                "Summed Vast.ai dph_total of ready deployments, US dollars per hour",
                value=figures.dph_billing,
            )
        spend = self._month_spend()
        if spend is not None:
            yield GaugeMetricFamily(
                "gpubot_spend_this_month_dollars",
                "Estimated spend of every workspace this month (UTC) so far, US dollars, as "
                "/templates costs counts it (refreshed at most once a minute)",
                value=spend,
            )
        if self.per_workspace:
            yield from self._per_workspace()
        try:
            beat = read_heartbeat(self.sf)
        except Exception as error:
            logger.warning("metrics: could not read the heartbeat: %s", type(error).__name__)
        else:
            if beat is not None and beat.last_pass is not None:
                age = max(0.0, (self.clock() - beat.last_pass).total_seconds())
                yield GaugeMetricFamily(
                    "gpubot_reconciler_last_pass_age_seconds",
                    "Seconds since the reconciler's last clean pass (any process)",
                    value=age,
                )
        q = self.queues
        yield GaugeMetricFamily(
            "gpubot_outbox_queued_messages",
            "Slack messages in the outbox (waiting or being sent)",
            value=q.outbox(),
        )
        yield GaugeMetricFamily(
            "gpubot_work_queued_jobs",
            "Jobs waiting for a thread of the work pool",
            value=max(0, q.work_in_flight() - q.work_threads),
        )
        yield GaugeMetricFamily(
            "gpubot_work_in_flight_jobs",
            "Jobs accepted by the work pool and not finished (running or waiting)",
            value=q.work_in_flight(),
        )
        yield CounterMetricFamily(
            "gpubot_work_refused_jobs",
            "Jobs the work pool refused because it was full (the user was told to retry)",
            value=q.work_refused(),
        )

    def _month_spend(self) -> float | None:
        """This month's spend, computed at most once per :data:`SPEND_REFRESH_SECONDS` (the
        month report sums each deployment's periods in Python: not one cheap query); None
        when there is no ``month_spend`` or it failed (logged)."""
        if self.month_spend is None:
            return None
        now = self.clock()
        if self._spend is not None and (now - self._spend[0]).total_seconds() < (
            SPEND_REFRESH_SECONDS
        ):
            return self._spend[1]
        try:
            value = float(self.month_spend(now))
        except Exception as error:
            logger.warning(
                "metrics: could not compute this month's spend: %s", type(error).__name__
            )
            return None
        self._spend = (now, value)
        return value

    def _per_workspace(self) -> Iterator[Metric]:
        try:
            teams = workspace_figures(self.sf)
        except Exception as error:
            logger.warning("metrics: could not read the workspaces: %s", type(error).__name__)
            return
        by_status = GaugeMetricFamily(
            "gpubot_workspace_deployments",
            "Deployments per workspace (Slack team id) and status",
            labels=["team_id", "status"],
        )
        gpus = GaugeMetricFamily(
            "gpubot_workspace_billing_gpus",
            "GPUs of ready deployments per workspace (Slack team id)",
            labels=["team_id"],
        )
        dph = GaugeMetricFamily(
            "gpubot_workspace_billing_dollars_per_hour",
            "Summed dph_total of ready deployments per workspace, US dollars per hour",
            labels=["team_id"],
        )
        for team_id, figures in sorted(teams.items()):
            for status, count in sorted(figures.by_status.items()):
                by_status.add_metric([team_id, status], count)
            gpus.add_metric([team_id], figures.gpus_billing)
            dph.add_metric([team_id], figures.dph_billing)
        yield by_status
        yield gpus
        yield dph


def slack_method(url: str) -> str:
    """The Web API method of a request URL: ``https://slack.com/api/chat.postMessage`` →
    ``"chat.postMessage"`` (the last path segment; ``"unknown"`` when there is none)."""
    return urlparse(url).path.rstrip("/").rsplit("/", 1)[-1] or "unknown"


class SlackRequestCounter(RetryHandler):
    """A slack_sdk retry handler that never retries: it counts each HTTP request's answer
    (:meth:`BotMetrics.slack_request`). slack_sdk asks the handlers in order after every
    attempt, until one retries, so this one goes first in ``retry_handlers`` to see them all
    (https://docs.slack.dev/tools/python-slack-sdk/web#retryhandler).
    :func:`bot.slack.notifier.copy_client` keeps it on every copy of a client."""

    def __init__(self, metrics: BotMetrics) -> None:
        super().__init__(max_retry_count=0)
        self.metrics = metrics

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        """Count the attempt; always False (the next handlers decide about retrying)."""
        try:
            status = response.status_code if response is not None else None
            self.metrics.slack_request(slack_method(request.url), status)
        except Exception:  # counting must never break a Slack call
            logger.debug("metrics: could not count a Slack request", exc_info=True)
        return False
