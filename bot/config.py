"""Configuration from the environment and a ``.env`` file (pydantic-settings).

Every variable of docs/CONFIGURATION.md is a field here. Secrets are
``SecretStr`` so that ``repr()``, logs and error messages never show them; :func:`load_settings`
turns pydantic's validation errors into one line per problem that names the variable, never its
value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    SettingsConfigDict,
)

from bot.crypto import GENERATE_HINT, EncryptionKeyError, SecretBox, parse_keys
from bot.logs import LOG_FORMATS, LOG_LEVELS, LogFormat, LogLevel
from bot.vast_limits import DEFAULT_MIN_INTERVALS, parse_min_intervals
from storage import DEFAULT_DATABASE_URL

#: The bot scopes of the manifest (``manifest.yml``), asked for by an OAuth install.
DEFAULT_SLACK_SCOPES: tuple[str, ...] = (
    "commands",
    "chat:write",
    "chat:write.public",
    "im:write",
    "users:read",
    "files:write",
)


#: Settings whose example values (``.env.example``, the manifests) must not reach a start-up.
PLACEHOLDER_FIELDS: tuple[str, ...] = (
    "slack_bot_token",
    "slack_signing_secret",
    "slack_app_token",
    "slack_client_id",
    "slack_client_secret",
    "slack_redirect_uri",
    "encryption_key",
    "vast_api_key",
)
#: An example value, not a real one: ``xoxb-your-bot-token``, ``https://YOUR-HOST/...``,
#: ``<signing secret>``, ``changeme``. Real tokens and keys are random and never read so.
_PLACEHOLDER = re.compile(
    r"(^|[^a-z0-9])your[-_]|^<[^<>]*>$|^(change-?me|replace-?me|todo|x{3,})$", re.IGNORECASE
)
#: A Slack member id: ``U…``, or ``W…`` for an Enterprise Grid user (never a name or @handle).
_MEMBER_ID = re.compile(r"[UW][A-Z0-9]+")


def is_placeholder(value: object) -> bool:
    """True when ``value`` (a string or ``SecretStr``) reads as an example value such as
    ``xoxb-your-bot-token`` rather than a real token, key or URL."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return isinstance(value, str) and bool(_PLACEHOLDER.search(value.strip()))


class ConfigError(Exception):
    """Start-up configuration is missing or malformed; ``str()`` is safe to print (no values)."""


class Settings(BaseSettings):
    """The bot's settings; field names map to upper-case environment variables.

    Raises ``pydantic.ValidationError`` on bad values; use :func:`load_settings` for a message
    fit for a terminal.
    """

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    """Single-workspace mode's bot token (``xoxb-…``); required unless :attr:`oauth_mode`."""
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    # OAuth mode (docs/SLACK_APP.md › Several workspaces (OAuth mode)): both or neither.
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_redirect_uri: str | None = None
    """Where Slack sends the installer back, e.g. https://host/slack/oauth_redirect; None: the
    app's single Redirect URL configured at Slack."""
    slack_scopes: Annotated[tuple[str, ...], NoDecode] = DEFAULT_SLACK_SCOPES
    """Bot scopes an OAuth install asks for (comma list)."""
    encryption_key: SecretStr | None = None
    """Fernet key, or several separated by commas (the first encrypts, each decrypts: see
    ``python -m bot rotate-key``), that encrypts the secrets at rest (Vast.ai keys, Slack
    tokens, web passwords); required in OAuth mode."""
    slack_api_url: str = "https://slack.com/api/"
    vast_api_key: SecretStr | None = None
    vast_api_url: str = "https://console.vast.ai"
    database_url: str = DEFAULT_DATABASE_URL
    port: int = Field(default=3000, ge=1, le=65535)
    catalog_dir: Path | None = None
    status_poll_seconds: float = Field(default=15.0, gt=0, le=3600)
    poller_lease_seconds: float | None = Field(default=None, ge=1, le=3600)
    """How long the status poller's lease (``leases`` row ``status-poller``) lives without a
    renewal: a dead holder is replaced by another process this long after its last tick at
    most (plus one poll interval). None (unset): three poll intervals, at least 30 s. Keep it
    longer than a tick takes, or two processes may poll at once for a while (harmless, but
    twice the Vast.ai requests)."""
    deploy_timeout_minutes: float = Field(default=30.0, gt=0, le=24 * 60)
    bot_admins: Annotated[frozenset[str], NoDecode] = frozenset()
    # Lifetimes, idle stop, reminders and the digest (docs/USING.md › Lifetimes and reminders).
    default_lifetime_hours: float = Field(default=8.0, gt=0, le=24 * 365)
    max_lifetime_hours: float = Field(default=72.0, gt=0, le=24 * 365)
    allow_unlimited_lifetime: bool = False
    lifetime_warning_minutes: float = Field(default=30.0, ge=1, le=24 * 60)
    on_expiry: Literal["stop", "destroy"] = "stop"
    idle_gpu_percent: float = Field(default=5.0, ge=0, le=100)
    idle_minutes: float = Field(default=60.0, gt=0, le=7 * 24 * 60)
    idle_snooze_hours: float = Field(default=4.0, gt=0, le=24 * 30)
    idle_grace_minutes: float = Field(default=30.0, ge=1, le=24 * 60)
    stopped_reminder_days: float = Field(default=3.0, gt=0, le=365)
    digest_channel: str | None = None
    digest_hour: int = Field(default=9, ge=0, le=23)
    digest_timezone: str = "UTC"
    # Budgets and approvals (docs/USING.md › Budgets and approvals).
    workspace_monthly_budget: float | None = Field(default=None, ge=0, le=1_000_000)
    user_monthly_budget: float | None = Field(default=None, ge=0, le=1_000_000)
    approval_dph: float | None = Field(default=None, ge=0, le=10_000)
    approvers: Annotated[frozenset[str], NoDecode] = frozenset()
    approval_channel: str | None = None
    approval_ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # Living within Vast.ai's limits (docs/OPERATIONS.md › Vast.ai's rate limits).
    vast_min_intervals: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_MIN_INTERVALS)
    )
    offer_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    steady_sweep_seconds: float = Field(default=120.0, ge=1, le=24 * 3600)
    # Data retention (docs/OPERATIONS.md › Data retention).
    retention_days: int = Field(default=400, ge=31, le=100 * 365)
    """Ended deployments (with their events), decided approvals, workspace events and claims
    older than this many days are deleted. At least 31, so that no row the current month's
    costs and budgets read is ever deleted."""
    uninstall_grace_days: float = Field(default=30.0, ge=1, le=10 * 365)
    """A workspace that uninstalled is purged this many days later, once nothing of it bills."""
    metrics_per_workspace: bool = False
    """``GET /metrics`` also reports deployments by status and what bills now per workspace,
    labelled with the Slack team id only (never a name). Off by default: one series per
    workspace grows with the installs."""
    # Vast.ai's data as untrusted input (docs/SECURITY.md › Vast.ai's data).
    allow_private_instance_addresses: bool = False
    """Let the bot connect to (probe, link) instance addresses that are not public: loopback,
    private, link-local, ... Only for a simulator on this machine or network (``python -m bot
    simulator`` serves its instances on 127.0.0.1); a real Vast.ai instance has a public
    address, and connecting to any other would let a host aim the bot at its own network.
    The built-in simulator (``VAST_API_KEY`` unset, or a workspace without a key) is allowed
    without it: its rows are marked simulated."""
    # Logs (docs/OPERATIONS.md › Logs).
    log_level: LogLevel = "INFO"
    """The least severe log lines written: DEBUG, INFO, WARNING or ERROR (any case)."""
    log_format: LogFormat = "text"
    """``text`` (one readable line per record) or ``json`` (one JSON object per line)."""

    @model_validator(mode="before")
    @classmethod
    def _no_placeholders(cls, data: Any) -> Any:
        """Refuse ``.env.example``'s example values in one sentence naming every such variable
        (never the values): a copy left unchanged would otherwise fail later and less clearly."""
        if isinstance(data, dict):
            named = [name.upper() for name in PLACEHOLDER_FIELDS if is_placeholder(data.get(name))]
            if named:
                names = ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0]
                several = len(named) > 1
                raise ValueError(
                    f"{names} still {'hold placeholders' if several else 'holds a placeholder'} "
                    "(an example value such as xoxb-your-bot-token, as in .env.example): put in "
                    "the Slack app's own values (docs/SLACK_APP.md), or leave "
                    f"{'them' if several else 'it'} empty"
                )
        return data

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token that starts with xoxb-")
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _log_choice(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or value == "":
            return "INFO" if info.field_name == "log_level" else "text"
        if isinstance(value, str):
            choices: tuple[str, ...] = LOG_LEVELS if info.field_name == "log_level" else LOG_FORMATS
            normal = (
                value.strip().upper() if info.field_name == "log_level" else value.strip().lower()
            )
            if normal not in choices:
                raise ValueError(
                    "unknown " + ("level" if info.field_name == "log_level" else "format")
                )
            return normal
        return value

    @field_validator("encryption_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                SecretBox(value.get_secret_value())
            except EncryptionKeyError:
                raise ValueError(
                    "must be a Fernet key (32 bytes in URL-safe base64), or several separated "
                    "by commas"
                ) from None
        return value

    @field_validator("slack_scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
            return value or DEFAULT_SLACK_SCOPES
        return value

    @field_validator("slack_scopes")
    @classmethod
    def _scope_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or not all(re.fullmatch(r"[a-z][a-z0-9_.:-]*", scope) for scope in value):
            raise ValueError(
                "must be Slack scope names separated by commas, e.g. commands,chat:write"
            )
        return tuple(dict.fromkeys(value))

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token that starts with xapp-")
        return value

    @field_validator(
        "slack_bot_token",
        "slack_signing_secret",
        "vast_api_key",
        "slack_client_id",
        "slack_client_secret",
        "slack_redirect_uri",
        "encryption_key",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator(
        "digest_channel",
        "approval_channel",
        "poller_lease_seconds",
        "workspace_monthly_budget",
        "user_monthly_budget",
        "approval_dph",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("digest_channel", "approval_channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[CG][A-Z0-9]{2,30}", value):
            raise ValueError("must be a channel id such as C0123456789 (not a #name)")
        return value

    @field_validator("digest_timezone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as UTC or Europe/Berlin") from None
        return value

    @field_validator("catalog_dir", mode="before")
    @classmethod
    def _empty_dir_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("slack_api_url", "vast_api_url", "slack_redirect_uri")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("vast_min_intervals", mode="before")
    @classmethod
    def _min_intervals(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_min_intervals(value)
        if isinstance(value, dict):
            return {**DEFAULT_MIN_INTERVALS, **value}
        return value

    @field_validator("bot_admins", "approvers", mode="before")
    @classmethod
    def _split_admins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("bot_admins", "approvers")
    @classmethod
    def _member_ids(cls, value: frozenset[str]) -> frozenset[str]:
        # Not echoed: the module's rule is to name the variable, never its value.
        wrong = sum(1 for member in value if not _MEMBER_ID.fullmatch(member))
        if wrong:
            which = (
                "its entry is"
                if len(value) == 1
                else f"{wrong} of its {len(value)} entries {'is' if wrong == 1 else 'are'}"
            )
            raise ValueError(
                f"{which} not a Slack member id: member ids start with U or W, such as "
                "U0123ABCD, never a name or @handle"
            )
        return value

    @model_validator(mode="after")
    def _slack_credentials(self) -> Settings:
        """Single-workspace mode needs the bot token; OAuth mode needs the client id and secret
        together, an encryption key and HTTP mode."""
        has_id, has_secret = self.slack_client_id is not None, self.slack_client_secret is not None
        if has_id != has_secret:
            missing = "SLACK_CLIENT_SECRET" if has_id else "SLACK_CLIENT_ID"
            raise ValueError(
                f"{missing} is missing: SLACK_CLIENT_ID and SLACK_CLIENT_SECRET turn on OAuth mode "
                "together; set both (Basic Information › App Credentials), or neither for "
                "single-workspace mode"
            )
        if not self.oauth_mode:
            if self.slack_bot_token is None:
                raise ValueError(
                    f"SLACK_BOT_TOKEN is missing: {_HINTS['SLACK_BOT_TOKEN']}, or set "
                    "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for OAuth mode (environment or .env)"
                )
            return self._signing_secret_in_http_mode()
        if self.slack_app_token is not None:
            raise ValueError(
                "SLACK_APP_TOKEN is set in OAuth mode: installing by OAuth needs HTTP mode; unset "
                "SLACK_APP_TOKEN, or unset SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for "
                "single-workspace Socket Mode"
            )
        if self.encryption_key is None:
            raise ValueError(
                "ENCRYPTION_KEY is missing: OAuth mode keeps each workspace's Vast.ai key "
                f"encrypted with it; {GENERATE_HINT} (environment or .env)"
            )
        if self.vast_api_key is not None:
            # One operator key for every workspace would bill all their GPUs to one account.
            raise ValueError(
                "VAST_API_KEY is set in OAuth mode: each workspace enters its own Vast.ai key "
                "with `/templates setup`; unset VAST_API_KEY (or unset SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET for single-workspace mode)"
            )
        return self._signing_secret_in_http_mode()

    def _signing_secret_in_http_mode(self) -> Settings:
        # Checked after the tokens, so that a fresh .env names the bot token first.
        if self.oauth_mode and self.slack_signing_secret is None:
            raise ValueError(
                "SLACK_SIGNING_SECRET is missing: OAuth mode serves Slack over HTTP, so set it to "
                "the app's Signing Secret (Basic Information)"
            )
        if not self.socket_mode and self.slack_signing_secret is None:
            raise ValueError("SLACK_SIGNING_SECRET is required in HTTP mode")
        return self

    @model_validator(mode="after")
    def _default_within_maximum(self) -> Settings:
        if self.default_lifetime_hours > self.max_lifetime_hours:
            raise ValueError(
                "DEFAULT_LIFETIME_HOURS is larger than MAX_LIFETIME_HOURS: lower the default or "
                "raise the maximum"
            )
        return self

    @property
    def oauth_mode(self) -> bool:
        """True when ``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET`` are set: workspaces install
        the app by OAuth (HTTP mode) and bring their own Vast.ai keys."""
        return self.slack_client_id is not None and self.slack_client_secret is not None

    @property
    def socket_mode(self) -> bool:
        """True when ``SLACK_APP_TOKEN`` is set: the bot connects over Socket Mode."""
        return self.slack_app_token is not None

    @property
    def approver_ids(self) -> frozenset[str]:
        """Who decides on approvals: ``APPROVERS``, else ``BOT_ADMINS``."""
        return self.approvers or self.bot_admins

    @property
    def simulated(self) -> bool:
        """True when ``VAST_API_KEY`` is unset: the bot rents from the built-in simulator."""
        return self.vast_api_key is None


_HINTS = {
    "SLACK_BOT_TOKEN": "set it to the app's Bot User OAuth Token (xoxb-…)",
    "SLACK_SIGNING_SECRET": "set it to the app's Signing Secret (Basic Information), "
    "or set SLACK_APP_TOKEN to run in Socket Mode",
    "SLACK_APP_TOKEN": "set it to an app-level token (xapp-…) with connections:write, or unset it",
    "SLACK_REDIRECT_URI": "set it to the app's Redirect URL, e.g. "
    "https://bot.example.com/slack/oauth_redirect, or unset it",
    "SLACK_SCOPES": "list bot scopes separated by commas, or unset it for the manifest's",
    "ENCRYPTION_KEY": GENERATE_HINT,
    "LOG_LEVEL": "set it to DEBUG, INFO, WARNING or ERROR, or unset it for INFO",
    "LOG_FORMAT": "set it to text or json, or unset it for text",
    "BOT_ADMINS": "list member ids separated by commas (a Slack profile's ⋮ menu → Copy member ID)",
    "APPROVERS": "list member ids separated by commas (a Slack profile's ⋮ menu → Copy member "
    "ID), or unset it for BOT_ADMINS",
}


def _describe(error: Any) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part != "__root__"]
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    if not loc:
        if message.startswith("SLACK_SIGNING_SECRET is required"):
            return f"SLACK_SIGNING_SECRET is missing: {_HINTS['SLACK_SIGNING_SECRET']}."
        return message.rstrip(".") + "."
    name = loc[0].upper()
    if error.get("type") == "missing":
        return f"{name} is missing: {_HINTS.get(name, 'set it')} (environment or .env)."
    hint = _HINTS.get(name, "fix it")
    return f"{name} is invalid ({message.rstrip('.')}): {hint} (see docs/CONFIGURATION.md)."


def load_settings(**overrides: Any) -> Settings:
    """Read :class:`Settings` from the environment and ``.env``.

    Raises :class:`ConfigError` whose text names each bad variable and what to do, without the
    value (pydantic's own messages echo the input, which may be a secret).
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors(include_input=False, include_url=False)]
        raise ConfigError(" ".join(lines)) from None


def configured_secrets(settings: Settings) -> list[str]:
    """The secret values of ``settings`` (tokens, signing and client secrets, the Vast.ai key,
    each key of ``ENCRYPTION_KEY``), for log scrubbing; unset ones left out."""
    values = [
        secret.get_secret_value()
        for secret in (
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.slack_app_token,
            settings.slack_client_secret,
            settings.vast_api_key,
        )
        if secret is not None
    ]
    if settings.encryption_key is not None:
        values += parse_keys(settings.encryption_key.get_secret_value())
    return values


def catalog_dir_from_env() -> Path | None:
    """``CATALOG_DIR`` from the environment or ``.env`` (the environment wins), without
    requiring the rest of the settings: ``python -m bot catalog list`` needs no Slack token."""
    values = {**DotEnvSettingsSource(Settings)(), **EnvSettingsSource(Settings)()}
    raw = values.get("catalog_dir")
    return Path(str(raw)) if raw else None
