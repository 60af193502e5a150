"""The Bolt app factory: one ``App`` with every listener attached."""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from bot.config import Settings
from bot.listeners import approvals, budgets, deploy, home, manage, submit, templates
from bot.services.context import Services

logger = logging.getLogger(__name__)

LISTENER_THREADS = 16


class _TokenFromClientFilter(logging.Filter):
    """Drop Bolt's "As you gave `client` as well, `token` will be unused" warning: Bolt reads
    SLACK_BOT_TOKEN from the environment itself, while our client already carries that token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_BOLT_LOGGER = logging.getLogger("slack_bolt")
_TOKEN_FILTER = _TokenFromClientFilter()


def make_web_client(settings: Settings) -> WebClient:
    """A WebClient on ``SLACK_API_URL`` that waits out 429s (Retry-After) and retries 5xx once.

    Source: reference/slack.md §5 (slack_sdk's built-in retry handlers; Bolt adds none itself).
    """
    return WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=1),
        ],
    )


def _error_handler(error: Exception, body: dict[str, Any]) -> BoltResponse | None:
    # Users get a short message with a reference; the log gets the details, never the payload.
    reference = uuid.uuid4().hex[:8]
    logger.error("listener failed (ref %s): %s", reference, type(error).__name__, exc_info=error)
    response_url = body.get("response_url") or next(
        (url.get("response_url") for url in body.get("response_urls") or []), None
    )
    if response_url:
        WebhookClient(response_url).send(
            text=(
                ":x: Something went wrong on our side. Check `/templates mine` before trying "
                "again (a deployment may have started); if it keeps happening, give your admin "
                f"this reference: `{reference}`."
            ),
            response_type="ephemeral",
            replace_original=False,
        )
    return None


def create_app(settings: Settings, services: Services, *, client: WebClient | None = None) -> App:
    """Build the Bolt ``App`` with its listeners.

    HTTP mode verifies every request's signature and timestamp (Bolt's RequestVerification: 401
    on a bad or missing signature or a timestamp more than 5 minutes off). Socket Mode carries no
    signatures, so verification is off there. Bolt calls ``auth.test`` once here.
    """
    signing_secret = settings.slack_signing_secret
    if _TOKEN_FILTER not in _BOLT_LOGGER.filters:
        _BOLT_LOGGER.addFilter(_TOKEN_FILTER)
    app = App(
        client=client or make_web_client(settings),
        signing_secret=signing_secret.get_secret_value() if signing_secret else None,
        request_verification_enabled=not settings.socket_mode,
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS),
        logger=_BOLT_LOGGER,
    )
    app.error(_error_handler)
    for listeners in (templates, deploy, submit, manage, home, approvals, budgets):
        listeners.register(app, services)
    return app
