"""The `Template` model: one deployable app of the catalog (docs/TEMPLATES.md "Your own templates").

A template is plain data. It is validated strictly (unknown keys, wrong types and impossible
figures are errors) because teams write templates by hand in YAML; `catalog.loader` turns
validation errors into one-line messages `<file>: <field>: <reason>`.

Units: VRAM and disk in GB (10^9-ish, as GPUs and disks are sold); ports are container ports;
`cuda_version` is the lowest CUDA version the image needs, as "major.minor".
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

SLUG_RE = re.compile(r"^[a-z0-9-]{1,40}$")
CUDA_RE = re.compile(r"^(\d+)\.(\d+)$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Smallest disk Vast.ai rents, in GB (docs.vast.ai/api-reference/instances/create-instance:
#: ``disk`` at least 8).
MIN_DISK_GB = 8

# -- what Vast.ai takes -----------------------------------------------------------------------
# Vast.ai's create-instance endpoint (docs.vast.ai/api-reference/instances/create-instance; its
# OpenAPI file create_instance.yaml in github.com/vast-ai/docs, ``x-input-validation``) takes
# an image of at most 1024 characters, ``args`` + ``args_str`` + ``onstart`` of at most 4096
# together, env values of at most 256 each and 32768 in all. It does not say whether it counts
# characters or bytes, nor how it counts "all of env": the checks below count UTF-8 bytes and
# the env object as JSON (with the port requests and the password the bot adds), which is
# never less than either reading, so what validates is never refused by Vast.ai.

#: Longest ``docker_image`` Vast.ai takes (characters).
IMAGE_MAX = 1024
#: Longest ``launch_command`` (UTF-8 bytes, after stripping): the bot sends it as ``onstart``,
#: and Vast.ai takes at most 4096 for ``args``, ``args_str`` and ``onstart`` together.
LAUNCH_COMMAND_MAX = 4096
#: Longest env name and env value (UTF-8 bytes each): Vast.ai's 256 per env entry.
ENV_ENTRY_MAX = 256
#: Largest env object (UTF-8 bytes of its JSON, as the bot sends it): Vast.ai's 32768.
ENV_TOTAL_MAX = 32768
#: The longest password the bot could add under ``password_env`` (counted at Vast.ai's
#: per-value limit, so that the total never depends on the generator's length).
_PASSWORD_RESERVE = "x" * ENV_ENTRY_MAX

# -- Docker image references ------------------------------------------------------------------
# The grammar of github.com/distribution/reference (regexp.go and the grammar in reference.go),
# the one `docker pull` uses, copied term by term. Go's RE2 reads \w and [[:xdigit:]] as ASCII,
# hence re.ASCII and [0-9a-fA-F]. The length is checked first (IMAGE_MAX), which also bounds
# the work of Python's backtracking matcher.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_OPTIONAL_PORT = r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = _DOMAIN_NAME_COMPONENT + r"(?:\." + _DOMAIN_NAME_COMPONENT + r")*"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6_ADDRESS + r")"
_DOMAIN_AND_PORT = _HOST + _OPTIONAL_PORT
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME
#: ``name[:tag][@digest]``, groups name, tag and digest (distribution/reference ReferenceRegexp).
IMAGE_REFERENCE_RE = re.compile(
    r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII
)
_ANCHORED_NAME_RE = re.compile(
    r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")", re.ASCII
)
#: Longest repository path (the name without its domain): RepositoryNameTotalLengthMax.
IMAGE_PATH_MAX = 255
#: Vast.ai's own tag, which its server resolves to the image's build for the GPU's CUDA
#: (docs.vast.ai/api-reference/instances/create-instance: the default image is
#: ``vastai/base-image:@vastai-automatic-tag``). Not a Docker tag: accepted as Vast.ai documents it.
VAST_AUTOMATIC_TAG = ":@vastai-automatic-tag"
#: The same grammar as one anchored pattern for the JSON Schema, \w spelled out as ASCII (as
#: Go reads it; Python's re would not), Vast.ai's automatic tag included.
IMAGE_REFERENCE_PATTERN = (
    r"^(?:" + IMAGE_REFERENCE_RE.pattern + r"|" + _NAME + r":@vastai-automatic-tag)$"
).replace(r"\w", "A-Za-z0-9_")

Port = Annotated[int, Field(ge=1, le=65535)]

# -- TLS on the template's web ports ----------------------------------------------------------
#: A ``tls`` value (:data:`TLS_MODES`).
TlsMode = Literal["none", "vast-base-image"]
#: ``tls`` of a template whose web ports the bot knows nothing encrypted about: a direct link
#: is plain HTTP (the DM says so and offers an SSH port-forward instead).
TLS_NONE: TlsMode = "none"
#: ``tls`` of a template built on Vast.ai's base image (``vastai/base-image`` or a derivative
#: such as ``vastai/comfyui``) with ``ENABLE_HTTPS=true``: the image's Instance Portal runs Caddy
#: in front of each web port and serves it over HTTPS with ``/etc/instance.crt``, a certificate
#: the image has Vast.ai's console sign at boot (self-signed when the console cannot be reached).
#: Browsers warn unless Vast.ai's root certificate (``jvastai_root.cer``) is installed. Sources:
#: github.com/vast-ai/base-image README "Enabling HTTPS" and "PORTAL_CONFIG",
#: ROOT/etc/vast_boot.d/55-tls-cert-gen.sh; docs.vast.ai/guides/instances/connect/instance-portal
#: and /jupyter ("Installing the TLS certificate").
TLS_VAST_BASE_IMAGE: TlsMode = "vast-base-image"
#: Every ``tls`` value, the default first.
TLS_MODES: tuple[TlsMode, ...] = (TLS_NONE, TLS_VAST_BASE_IMAGE)
#: The env switch Vast.ai's base image reads to serve HTTPS (its README: default ``false``).
VAST_HTTPS_ENV = "ENABLE_HTTPS"

#: Slack's limit on a section block's text, in characters (slack_sdk
#: ``SectionBlock.text_max_length``; api.slack.com/reference/block-kit/blocks).
#: catalog imports nothing of bot, so the figure is kept here with its source.
SLACK_SECTION_TEXT_MAX = 3000
#: The template Details modal shows the docs link as one section, ``*Docs*: <docs_url>``, so
#: a docs_url longer than this (characters) cannot be shown and is refused by validation.
DOCS_LINK_PREFIX = "*Docs*: "
DOCS_URL_MAX = SLACK_SECTION_TEXT_MAX - len(DOCS_LINK_PREFIX) - len("<>")


def _problem(reason: str, *, field: str | None = None) -> PydanticCustomError:
    """A validation error whose message is exactly `reason` (no "Value error, " prefix).

    `field` names the field for an error raised by a model validator (whose location pydantic
    leaves empty); `catalog.loader` reports it under that name.
    """
    if field is None:
        return PydanticCustomError("catalog", reason)
    return PydanticCustomError("catalog", reason, {"field": field})


def shown(value: str, limit: int = 80) -> str:
    """`value` quoted for a one-line problem message: cut to `limit` characters (with "…"),
    and every character that is not printable (a newline, a control character, U+2028) written
    as an escape, so that a message stays one line whatever the file holds."""
    cut = value if len(value) <= limit else value[: limit - 1] + "…"
    return '"' + "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in cut) + '"'


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def image_problem(value: str) -> str | None:
    """Why `value` is not an image reference Vast.ai can pull, or None when it is.

    Accepted: the Docker reference grammar ``name[:tag][@digest]`` of
    github.com/distribution/reference (e.g. ``vllm/vllm-openai:v0.6.3``,
    ``ghcr.io/ai-dock/comfyui:latest-cuda``, ``localhost:5000/x@sha256:<64 hex>``), with a
    repository path of at most 255 characters, or a name with Vast.ai's documented
    ``:@vastai-automatic-tag``; at most IMAGE_MAX (1024) characters in all.
    """
    if len(value) > IMAGE_MAX:
        return f"is {len(value)} characters; Vast.ai takes at most {IMAGE_MAX}"
    reference = value
    if value.endswith(VAST_AUTOMATIC_TAG):
        reference = value[: -len(VAST_AUTOMATIC_TAG)]
    automatic = reference != value
    example = 'name[:tag][@digest], e.g. "vllm/vllm-openai:v0.6.3"'
    match = IMAGE_REFERENCE_RE.fullmatch(reference)
    if match is None or (automatic and (match.group(2) or match.group(3))):
        lower = reference.lower()
        if lower != reference and IMAGE_REFERENCE_RE.fullmatch(lower) is not None:
            return f"{shown(value)}: the repository name must be lowercase"
        return f"{shown(value)} is not a Docker image reference ({example})"
    name = _ANCHORED_NAME_RE.fullmatch(match.group(1))
    path = name.group(2) if name is not None else match.group(1)
    if len(path) > IMAGE_PATH_MAX:
        return f"the repository name is {len(path)} characters; at most {IMAGE_PATH_MAX}"
    return None


def parse_cuda_version(text: str) -> tuple[int, int]:
    """Turn a CUDA version string such as "12.1" into `(12, 1)`.

    Compared as tuples, "12.10" > "12.9" > "12.1" > "11.8", which string or float comparison
    gets wrong. Raises ValueError when `text` is not `<int>.<int>`.
    """
    match = CUDA_RE.fullmatch(text)
    if match is None:
        raise ValueError(f'"{text}" is not a CUDA version like "12.1"')
    return int(match.group(1)), int(match.group(2))


class Template(BaseModel):
    """A deployable app: Docker image, ports, launch command and its GPU needs.

    Each field's description (units, bounds, defaults) is part of the model, so that the JSON
    Schema (`catalog.schema.template_json_schema`, `python -m bot catalog schema`) shows it
    in editors. In short: VRAM per GPU and disk in GB; ports are container ports; the image,
    the launch command and env are bounded by what Vast.ai's create-instance takes (IMAGE_MAX,
    LAUNCH_COMMAND_MAX, ENV_ENTRY_MAX, ENV_TOTAL_MAX); texts are shown in Slack as typed.

    The model is frozen; build a new one with `model_copy(update=...)` to change a field.
    Raises pydantic.ValidationError on bad data (catalog.loader formats it per field).
    """

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        title="GPU template",
        json_schema_extra={
            "description": (
                "One deployable app of the GPU template bot's catalog. Check a folder with "
                "`python -m bot catalog validate DIR`."
            )
        },
    )

    slug: str = Field(
        description='Id used in buttons and commands: 1 to 40 of lowercase a-z, 0-9 and "-". '
        "A built-in's slug replaces that built-in.",
        json_schema_extra={"pattern": SLUG_RE.pattern},
    )
    name: str = Field(
        min_length=1,
        max_length=80,
        description="Name shown in Slack (one line, at most 80 characters, shown as typed).",
    )
    description: str = Field(
        min_length=1, max_length=200, description="One line, at most 200 characters."
    )
    category: str = Field(
        min_length=1,
        max_length=40,
        description='One line, at most 40 characters, e.g. "notebook" or "llm-serving".',
    )
    docker_image: str = Field(
        min_length=1,
        json_schema_extra={"maxLength": IMAGE_MAX, "pattern": IMAGE_REFERENCE_PATTERN},
        description="Docker image reference, name[:tag][@digest], as `docker pull` takes it "
        '(e.g. "vllm/vllm-openai:v0.6.3"); at most 1024 characters (Vast.ai\'s limit).',
    )
    ports: list[Port] = Field(
        min_length=1,
        description="Container ports to publish (1 to 65535, at least one, no repeats).",
        json_schema_extra={"uniqueItems": True},
    )
    volumes: list[str] = Field(
        default_factory=list,
        description='Container paths worth keeping, absolute (starting with "/").',
        json_schema_extra={"items": {"type": "string", "pattern": "^/"}},
    )
    launch_command: str = Field(
        default="",
        description="Shell command the instance runs on start (Vast.ai's onstart; ${VAR} "
        "expands). Empty or left out: the image's own entrypoint. At most 4096 bytes "
        "(Vast.ai's limit).",
        json_schema_extra={"type": ["string", "null"]},
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment variables: names like shell variables, values strings "
        '(quote "true" or "8080"), each at most 256 bytes; all of env as sent (with the '
        "port requests and the generated password) at most 32768 bytes (Vast.ai's limits).",
        json_schema_extra={
            "propertyNames": {"pattern": ENV_NAME_RE.pattern, "maxLength": ENV_ENTRY_MAX},
            "additionalProperties": {"type": "string", "maxLength": ENV_ENTRY_MAX},
        },
    )
    min_vram_gb: int = Field(ge=1, description="Least VRAM per GPU the app runs on, GB.")
    recommended_vram_gb: int = Field(
        ge=1, description="VRAM per GPU for good use, GB (at least min_vram_gb)."
    )
    cuda_version: str = Field(
        description='Lowest CUDA version the image needs, "major.minor" as a quoted string '
        "(YAML reads an unquoted 12.10 as 12.1).",
        json_schema_extra={"pattern": CUDA_RE.pattern},
    )
    disk_gb: int = Field(
        ge=MIN_DISK_GB, description="Default disk, GB (at least 8, Vast.ai's minimum)."
    )
    docs_url: str = Field(
        description="http:// or https:// link to the app's documentation, at most 2990 "
        'characters (Details shows it in one Slack section: 3000 minus "*Docs*: <>"); no '
        'spaces, "<", ">" or "|". The public catalog (GET /api/templates) shows only '
        "scheme://host/path: no user:password@, query or fragment.",
        json_schema_extra={
            "pattern": r"^https?://[^\s<>|]+$",
            "format": "uri",
            "maxLength": DOCS_URL_MAX,
        },
    )
    health_path: str = Field(
        description='Path the readiness probe GETs (e.g. "/api"); 200, 302 and 401 count as up.',
        json_schema_extra={"pattern": r"^/\S*$"},
    )
    health_port: int | None = Field(
        default=None,
        validate_default=True,
        description="Container port the probe uses (one of ports); default the first port.",
    )
    password_env: str | None = Field(
        default=None,
        description="Env variable that gets a password the bot generates per deployment "
        '(e.g. "JUPYTER_TOKEN") and DMs to the requester; null when the app has no login.',
    )
    secret_env: list[str] = Field(
        default_factory=list,
        description="Env names whose values are secret and never shown.",
        json_schema_extra={"items": {"type": "string", "pattern": ENV_NAME_RE.pattern}},
    )
    min_compute_cap: int = Field(
        default=750,
        ge=0,
        description="Least CUDA compute capability ×100 (750 = Turing, 800 = Ampere). "
        "Vast.ai's search pairs cuda_max_good with a compute_cap floor, because cuda_max_good "
        "alone hid H100/H200 offers (github.com/dstackai/gpuhunt/issues/142).",
    )
    max_disk_gb: int = Field(
        default=500, ge=MIN_DISK_GB, description="Largest disk a user may ask for, GB."
    )
    default_lifetime_hours: int | None = Field(
        default=None,
        ge=1,
        le=720,
        description="How long a deployment runs by default, whole hours (1 to 720), "
        "preselected in the picker's Run for; null: the bot's DEFAULT_LIFETIME_HOURS. The "
        "bot's MAX_LIFETIME_HOURS still caps it for non-admins.",
    )

    tls: TlsMode = Field(
        default=TLS_NONE,
        description='TLS on the web ports. "none" (default): plain HTTP; the ready DM labels a '
        "direct link as unencrypted and gives an SSH port-forward for each port. "
        '"vast-base-image": the image is Vast.ai\'s base image or a derivative and its Instance '
        "Portal (Caddy) serves every port in ports over HTTPS with Vast.ai's certificate "
        "(browsers warn unless Vast.ai's root certificate jvastai_root.cer is installed); "
        'needs env ENABLE_HTTPS: "true" and the image\'s start-up to run (launch_command '
        '"entrypoint.sh", as Vast.ai\'s own templates do, or none). See docs/CONNECTING.md.',
    )

    @field_validator("slug")
    @classmethod
    def _check_slug(cls, value: str) -> str:
        if not SLUG_RE.fullmatch(value):
            raise _problem(
                f'{shown(value)} must be 1 to 40 characters of lowercase a-z, 0-9 and "-"'
            )
        return value

    @field_validator("name", "category")
    @classmethod
    def _check_one_line(cls, value: str) -> str:
        if not value.strip():
            raise _problem("must be one non-blank line")
        if not value.isprintable():
            raise _problem("must be one line (no line breaks or control characters)")
        return value

    @field_validator("description")
    @classmethod
    def _check_description(cls, value: str) -> str:
        if not value.strip().isprintable():
            raise _problem("must be one line (no line breaks or control characters)")
        return value.strip()

    @field_validator("docker_image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        problem = image_problem(value)
        if problem is not None:
            raise _problem(problem)
        return value

    @field_validator("ports")
    @classmethod
    def _check_ports_unique(cls, value: list[int]) -> list[int]:
        repeated = sorted({p for p in value if value.count(p) > 1})
        if repeated:
            raise _problem(f"port {repeated[0]} is listed more than once")
        return value

    @field_validator("volumes")
    @classmethod
    def _check_volumes(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise _problem(f'"{path}" is not an absolute container path')
        return value

    @field_validator("launch_command", mode="before")
    @classmethod
    def _empty_launch_command(cls, value: Any) -> Any:
        # `launch_command:` left empty is YAML's null: "no launch command", as documented.
        return "" if value is None else value

    @field_validator("launch_command")
    @classmethod
    def _check_launch_command(cls, value: str) -> str:
        if "\x00" in value:
            raise _problem("must not contain a NUL character")
        size = _utf8_len(value.strip())
        if size > LAUNCH_COMMAND_MAX:
            raise _problem(
                f"is {size} bytes; Vast.ai takes at most {LAUNCH_COMMAND_MAX} for the on-start "
                "command (put a longer script in the image and call it)"
            )
        return value

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():  # messages never quote a value: it may be a secret
            if not ENV_NAME_RE.fullmatch(key):
                raise _problem(f"{shown(key)} is not a valid environment variable name")
            if _utf8_len(key) > ENV_ENTRY_MAX:
                raise _problem(f"the name {shown(key, 40)} is over {ENV_ENTRY_MAX} bytes")
            if _utf8_len(text) > ENV_ENTRY_MAX:
                raise _problem(
                    f"the value of {key} is {_utf8_len(text)} bytes; Vast.ai takes at most "
                    f"{ENV_ENTRY_MAX} per value"
                )
            if "\x00" in text:
                raise _problem(f"the value of {key} must not contain a NUL character")
        return value

    @field_validator("recommended_vram_gb")
    @classmethod
    def _check_recommended(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("min_vram_gb")
        if isinstance(minimum, int) and value < minimum:
            raise _problem(f"must be at least min_vram_gb ({minimum})")
        return value

    @field_validator("cuda_version", mode="before")
    @classmethod
    def _check_cuda(cls, value: Any) -> Any:
        if isinstance(value, float):
            # YAML reads `cuda_version: 12.10` as the number 12.1: refuse rather than guess.
            raise _problem(
                f'must be a quoted string such as "{value}" '
                "(YAML reads an unquoted 12.10 as the number 12.1)"
            )
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            try:
                parse_cuda_version(value)
            except ValueError as exc:
                raise _problem(str(exc)) from None
        return value

    @field_validator("max_disk_gb")
    @classmethod
    def _check_max_disk(cls, value: int, info: ValidationInfo) -> int:
        disk = info.data.get("disk_gb")
        if isinstance(disk, int) and value < disk:
            raise _problem(f"must be at least disk_gb ({disk})")
        return value

    @field_validator("docs_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        length = len(value) + 4 * value.count("&")  # Details writes "&" as "&amp;"
        if length > DOCS_URL_MAX:
            raise _problem(
                f"is {length} characters as Slack shows it (an & counts as &amp;); at most "
                f"{DOCS_URL_MAX} can be shown (Slack limits a section's text to "
                f"{SLACK_SECTION_TEXT_MAX} characters, and Details shows the link in one section)"
            )
        bad = next(
            (ch for ch in value if ch in "<>|\\" or not ch.isprintable() or ch.isspace()), None
        )
        if bad is not None:
            raise _problem(
                f"{shown(value)} contains {shown(bad)}: write it percent-encoded or leave it out"
            )
        try:
            parsed = urlsplit(value)
            web = parsed.scheme in ("http", "https") and bool(parsed.hostname)
            parsed.port  # noqa: B018 - raises ValueError on a port that is not 0..65535
        except ValueError:
            web = False
        if not web:
            raise _problem(f"{shown(value)} is not an http:// or https:// URL")
        return value

    @field_validator("health_path")
    @classmethod
    def _check_health_path(cls, value: str) -> str:
        if not value.startswith("/") or any(ch.isspace() or not ch.isprintable() for ch in value):
            raise _problem(f'{shown(value)} must be a URL path starting with "/"')
        return value

    @field_validator("health_port")
    @classmethod
    def _check_health_port(cls, value: int | None, info: ValidationInfo) -> int | None:
        ports = info.data.get("ports")
        if not ports:  # `ports` itself is invalid: its own error is reported
            return value
        if value is None:
            return int(ports[0])
        if value not in ports:
            raise _problem(f"{value} is not one of ports {list(ports)}")
        return value

    @field_validator("password_env")
    @classmethod
    def _check_password_env(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME_RE.fullmatch(value):
            raise _problem(f"{shown(value)} is not a valid environment variable name")
        return value

    @field_validator("secret_env")
    @classmethod
    def _check_secret_env(cls, value: list[str]) -> list[str]:
        for name in value:
            if not ENV_NAME_RE.fullmatch(name):
                raise _problem(f"{shown(name)} is not a valid environment variable name")
        return value

    @model_validator(mode="after")
    def _check_env_total(self) -> Template:
        """All of env as the bot sends it (JSON: the template's env, the generated password
        counted at ENV_ENTRY_MAX, one ``"-p N:N": "1"`` port request per port) must fit
        Vast.ai's ENV_TOTAL_MAX."""
        sent = dict(self.env)
        if self.password_env:
            sent[self.password_env] = _PASSWORD_RESERVE
        sent.update({f"-p {port}:{port}": "1" for port in self.ports})
        size = _utf8_len(json.dumps(sent, ensure_ascii=False))
        if size > ENV_TOTAL_MAX:
            raise _problem(
                f"is {size} bytes as sent (with the port requests and the generated password); "
                f"Vast.ai takes at most {ENV_TOTAL_MAX}",
                field="env",
            )
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Template:
        """``tls: vast-base-image`` needs ``ENABLE_HTTPS: "true"`` in env: Vast.ai's base image
        serves plain HTTP without it (github.com/vast-ai/base-image README, "Enabling HTTPS")."""
        if self.tls == TLS_VAST_BASE_IMAGE:
            value = self.env.get(VAST_HTTPS_ENV, "")
            if value.strip().lower() != "true":
                raise _problem(
                    f'"{TLS_VAST_BASE_IMAGE}" needs env {VAST_HTTPS_ENV}: "true" (Vast.ai\'s '
                    "base image serves plain HTTP without it)",
                    field="tls",
                )
        return self

    @property
    def https(self) -> bool:
        """True when the web ports answer HTTPS (``tls`` is not ``"none"``)."""
        return self.tls != TLS_NONE

    @property
    def cuda_tuple(self) -> tuple[int, int]:
        """`cuda_version` as `(major, minor)` so versions compare correctly ("12.10" > "12.9")."""
        return parse_cuda_version(self.cuda_version)

    @property
    def probe_port(self) -> int:
        """Container port of the readiness probe: `health_port`, else the first port."""
        return self.health_port if self.health_port is not None else self.ports[0]

    @property
    def secret_env_names(self) -> frozenset[str]:
        """Every env name whose value must never be shown: `secret_env` plus `password_env`."""
        names = set(self.secret_env)
        if self.password_env:
            names.add(self.password_env)
        return frozenset(names)

    def runs_on(self, vram_gb: float) -> bool:
        """True when a GPU with `vram_gb` GB (nominal size, per GPU) meets `min_vram_gb`.

        No tolerance here: `vram_gb` is the size as sold/typed ("12gb"). For VRAM measured by
        Vast.ai (24 GB cards report ~23.99 GB) use `catalog.matching`, which allows 7 %.
        """
        return vram_gb >= self.min_vram_gb

    def meets_recommended(self, vram_gb: float) -> bool:
        """True when `vram_gb` GB (nominal, per GPU) reaches `recommended_vram_gb`."""
        return vram_gb >= self.recommended_vram_gb
