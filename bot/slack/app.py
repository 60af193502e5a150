"""The Bolt app factory: one ``App`` with every listener attached."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.error import URLError

from slack_bolt import App, BoltContext, BoltResponse
from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_bolt.oauth.callback_options import CallbackOptions, SuccessArgs
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.oauth.installation_store import InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from bot import logsafe
from bot.config import Settings
from bot.logs import ContextExecutor
from bot.metrics import BotMetrics, SlackRequestCounter
from bot.services.context import Services
from bot.slack import limits as slack_limits
from bot.slack.blocks.common import notice_modal
from bot.slack.blocks.picker import CALLBACK_DEPLOY
from bot.slack.listeners import (
    approvals,
    budgets,
    deploy,
    home,
    install,
    manage,
    membership,
    setup,
    sharing,
    sshkeys,
    submit,
    templates,
)
from bot.slack.listeners.gate import PayloadGate, gate_origins
from bot.slack.notifier import copy_client

logger = logging.getLogger(__name__)

LISTENER_THREADS = 16


class _TokenFromClientFilter(logging.Filter):
    """Drop Bolt's "As you gave `client` as well, `token` will be unused" warning: Bolt reads
    SLACK_BOT_TOKEN from the environment itself, while our client already carries that token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


class _NoRefusedBodyFilter(logging.Filter):
    """Bolt logs a request whose signature fails with its whole body (a `/templates setup`
    submission carries a Vast.ai key): keep the line, drop the body."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Invalid request signature detected"):
            record.msg, record.args = "Invalid request signature detected (body not logged)", ()
        return True


_BOLT_LOGGER = logging.getLogger("slack_bolt")
_TOKEN_FILTER = _TokenFromClientFilter()
_VERIFICATION_LOGGER = logging.getLogger("slack_bolt.RequestVerification")
_BODY_FILTER = _NoRefusedBodyFilter()


class CheckedWebClient(WebClient):
    """A WebClient that checks every message's ``blocks`` and every view against Slack's
    documented limits (:mod:`bot.slack.limits`) before sending, and refuses locally what Slack
    would refuse: it raises ``SlackApiError`` with the response Slack gives
    (``{"ok": false, "error": "invalid_blocks" | "invalid_arguments", "response_metadata":
    {"messages": ["[ERROR] …"]}}``), so callers handle it as a refusal, and logs one line
    naming the rules."""

    def api_call(
        self, api_method: str, *, json: dict[str, Any] | None = None, **kwargs: Any
    ) -> SlackResponse:
        args = json if json is not None else kwargs.get("data") or kwargs.get("params")
        violations = slack_limits.check_api_call(api_method, args)
        if violations:
            answer = slack_limits.refusal(api_method, violations)
            logger.error(
                "refused locally: %s breaks Slack's limits (%s): %s",
                api_method,
                ", ".join(slack_limits.iter_rules(violations)),
                "; ".join(v.slack_message() for v in violations[:5]),
            )
            response = SlackResponse(
                client=self,
                http_verb="POST",
                api_url=self.base_url + api_method,
                req_args={},
                data=answer,
                headers={},
                status_code=200,
            )
            raise SlackApiError(
                f"The request to the Slack API failed. (url: {self.base_url}{api_method})",
                response,
            )
        return super().api_call(api_method, json=json, **kwargs)


def checked_copy(client: WebClient) -> WebClient:
    """A :class:`CheckedWebClient` copy of ``client`` (:func:`bot.slack.notifier.copy_client`: Bolt
    builds a plain WebClient per request; this replaces it)."""
    return copy_client(client, cls=CheckedWebClient)


def _check_listener_client(context: BoltContext, next: Any) -> None:
    """Global middleware: the listeners' ``client`` checks payloads too."""
    current = context.get("client")
    if isinstance(current, WebClient) and not isinstance(current, CheckedWebClient):
        context["client"] = checked_copy(current)
    next()


def make_web_client(settings: Settings, *, metrics: BotMetrics | None = None) -> WebClient:
    """A :class:`CheckedWebClient` on ``SLACK_API_URL`` that waits out 429s (Retry-After) and
    retries 5xx once; with ``metrics``, each HTTP request it (and every copy of it) sends is
    counted per method (:class:`bot.metrics.SlackRequestCounter`, first of its handlers).

    Source: docs/SLACK_API.md §5 (slack_sdk's built-in retry handlers; Bolt adds none itself).
    """
    token = settings.slack_bot_token
    return CheckedWebClient(
        token=token.get_secret_value() if token is not None else None,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[
            *([SlackRequestCounter(metrics)] if metrics is not None else []),
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            ServerErrorRetryHandler(max_retry_count=1),
        ],
    )


def _is_deploy_submission(body: dict[str, Any]) -> bool:
    view = body.get("view") or {}
    return body.get("type") == "view_submission" and view.get("callback_id") == CALLBACK_DEPLOY


def error_text(body: dict[str, Any], reference: str) -> str:
    """What a user reads when a listener failed: only a failed deploy submission may have
    started a deployment, so only then does it say to check ``/templates mine`` first."""
    if _is_deploy_submission(body):
        return (
            ":x: Something went wrong on our side. Check `/templates mine` before trying "
            "again (a deployment may have started); if it keeps happening, give your admin "
            f"this reference: `{reference}`."
        )
    return (
        ":x: Something went wrong on our side. Please try again; if it keeps happening, give "
        f"your admin this reference: `{reference}`."
    )


def _error_handler(
    error: Exception, body: dict[str, Any], response: BoltResponse | None
) -> BoltResponse | None:
    """A listener raised: users get a short message with a reference (the log gets the details,
    never the payload). Before the listener acked (``response`` not None) the answer is a 200
    that says it: a modal replaced by the message, a command's ephemeral answer; never a 500.
    Payloads reach listeners parsed (:class:`bot.slack.listeners.gate.PayloadGate`), so the shapes
    read here are Slack's."""
    reference = uuid.uuid4().hex[:8]
    logger.error("listener failed (ref %s): %s", reference, type(error).__name__, exc_info=error)
    text = error_text(body, reference)
    if response is not None and body.get("type") == "view_submission":
        view = notice_modal("Something went wrong", text, block_id="listener_failed")
        return BoltResponse(status=200, body={"response_action": "update", "view": view.to_dict()})
    if response is not None and "command" in body:
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text})
    response_url = body.get("response_url") or next(
        (url.get("response_url") for url in body.get("response_urls") or []), None
    )
    if response_url:
        try:
            WebhookClient(response_url).send(
                text=text, response_type="ephemeral", replace_original=False
            )
        except (URLError, OSError, SlackClientError) as failure:
            logger.warning("response_url unavailable: %s", type(failure).__name__)
    return BoltResponse(status=200, body="") if response is not None else None


#: How long an OAuth ``state`` (the "Add to Slack" link) stays valid, seconds.
OAUTH_STATE_SECONDS = 600


def oauth_settings(
    settings: Settings,
    client: WebClient,
    installation_store: InstallationStore,
    state_store: OAuthStateStore,
    services: Services,
) -> OAuthSettings:
    """Bolt's OAuth flow for OAuth mode: ``GET /slack/install`` (the "Add to Slack" page) and
    ``GET /slack/oauth_redirect``, installations and states in the bot's database (slack_sdk's
    SQLAlchemy stores, tables by migration 0007), token rotation through ``client`` (so on
    ``SLACK_API_URL``), and each install recorded by the install service."""
    assert settings.slack_client_id is not None and settings.slack_client_secret is not None
    client_id = settings.slack_client_id
    client_secret = settings.slack_client_secret.get_secret_value()

    def success(args: SuccessArgs) -> BoltResponse:
        installation = args.installation
        if services.installs is not None:
            try:
                services.installs.installed(
                    installation.team_id,
                    installation.enterprise_id,
                    installation.team_name,
                    installation.user_id,
                )
            except Exception:  # the installation is saved: the page must still say so
                logger.exception("install in %s not recorded", installation.team_id)
        return args.default.success(args)

    result = OAuthSettings(
        client_id=client_id,
        client_secret=client_secret,
        scopes=sorted(settings.slack_scopes),
        redirect_uri=settings.slack_redirect_uri,
        installation_store=installation_store,
        state_store=state_store,
        state_expiration_seconds=OAUTH_STATE_SECONDS,
        callback_options=CallbackOptions(
            success=success, failure=lambda args: args.default.failure(args)
        ),
    )
    # Bolt's default authorize rotates tokens with a WebClient on slack.com; ours uses
    # SLACK_API_URL like every other call.
    result.authorize = InstallationStoreAuthorize(
        logger=_BOLT_LOGGER,
        installation_store=installation_store,
        client_id=client_id,
        client_secret=client_secret,
        token_rotation_expiration_minutes=result.token_rotation_expiration_minutes,
        client=copy_client(client),
        # auth.test's answer is kept per token (not a call per request); the store is still
        # read on every request, so an uninstalled workspace is refused at once.
        cache_enabled=True,
    )
    return result


def create_app(
    settings: Settings,
    services: Services,
    *,
    client: WebClient | None = None,
    installation_store: InstallationStore | None = None,
    state_store: OAuthStateStore | None = None,
) -> App:
    """Build the Bolt ``App`` with its listeners.

    HTTP mode verifies every request's signature and timestamp (Bolt's RequestVerification: 401
    on a bad or missing signature or a timestamp more than 5 minutes off). Socket Mode carries no
    signatures, so verification is off there. Then every payload is parsed into its typed model
    (:class:`bot.slack.listeners.gate.PayloadGate`, before authorization); a malformed one is
    answered
    there and reaches no listener. Single-workspace mode: Bolt calls ``auth.test``
    once here. OAuth mode (``installation_store`` and ``state_store`` given): Bolt's OAuth flow
    (:func:`oauth_settings`) and a token per request from the installation store.
    """
    signing_secret = settings.slack_signing_secret
    logsafe.install()  # no request or response body in any log line, DEBUG included
    if _TOKEN_FILTER not in _BOLT_LOGGER.filters:
        _BOLT_LOGGER.addFilter(_TOKEN_FILTER)
    if _BODY_FILTER not in _VERIFICATION_LOGGER.filters:
        _VERIFICATION_LOGGER.addFilter(_BODY_FILTER)
    client = client or make_web_client(settings)
    oauth = (
        oauth_settings(settings, client, installation_store, state_store, services)
        if installation_store is not None and state_store is not None
        else None
    )
    app = App(
        client=client,
        signing_secret=signing_secret.get_secret_value() if signing_secret else None,
        request_verification_enabled=not settings.socket_mode,
        listener_executor=ContextExecutor(max_workers=LISTENER_THREADS),
        logger=_BOLT_LOGGER,
        oauth_settings=oauth,
        # Malformed payloads are answered before authorization and the listeners.
        before_authorize=PayloadGate(services, origins=gate_origins(settings.slack_api_url)),
    )
    app.error(_error_handler)
    app.use(_check_listener_client)
    # membership first: its middleware runs before every listener.
    for listeners in (
        membership,
        templates,
        deploy,
        submit,
        manage,
        sharing,
        home,
        approvals,
        budgets,
        install,
        setup,
        sshkeys,
    ):
        listeners.register(app, services)
    return app
