"""The `Template` model: one deployable app of the catalog (see DESIGN.md, "Packages").

A template is plain data. It is validated strictly (unknown keys, wrong types and impossible
figures are errors) because teams write templates by hand in YAML; `catalog.loader` turns
validation errors into one-line messages `<file>: <field>: <reason>`.

Units: VRAM and disk in GB (10^9-ish, as GPUs and disks are sold); ports are container ports;
`cuda_version` is the lowest CUDA version the image needs, as "major.minor".
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

SLUG_RE = re.compile(r"^[a-z0-9-]{1,40}$")
CUDA_RE = re.compile(r"^(\d+)\.(\d+)$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Smallest disk Vast.ai rents, in GB ([docs] search_offers.yaml: `allocated_storage` default 8).
MIN_DISK_GB = 8

Port = Annotated[int, Field(ge=1, le=65535)]

#: Slack's limit on a section block's text, in characters (slack_sdk
#: ``SectionBlock.text_max_length``; api.slack.com/reference/block-kit/blocks).
#: catalog imports nothing of bot, so the figure is kept here with its source.
SLACK_SECTION_TEXT_MAX = 3000
#: The template Details modal shows the docs link as one section, ``*Docs*: <docs_url>``, so
#: a docs_url longer than this (characters) cannot be shown and is refused by validation.
DOCS_LINK_PREFIX = "*Docs*: "
DOCS_URL_MAX = SLACK_SECTION_TEXT_MAX - len(DOCS_LINK_PREFIX) - len("<>")


def _problem(reason: str) -> PydanticCustomError:
    """A validation error whose message is exactly `reason` (no "Value error, " prefix)."""
    return PydanticCustomError("catalog", reason)


def parse_cuda_version(text: str) -> tuple[int, int]:
    """Turn a CUDA version string such as "12.1" into `(12, 1)`.

    Compared as tuples, "12.10" > "12.9" > "12.1" > "11.8", which string or float comparison
    gets wrong. Raises ValueError when `text` is not `<int>.<int>`.
    """
    match = CUDA_RE.match(text)
    if match is None:
        raise ValueError(f'"{text}" is not a CUDA version like "12.1"')
    return int(match.group(1)), int(match.group(2))


class Template(BaseModel):
    """A deployable app: Docker image, ports, launch command and its GPU needs.

    Fields (all required unless a default is given):
      slug: id used in buttons and commands; lowercase a-z, 0-9 and "-", 1..40 chars.
      name, description (one line, at most 200 chars), category (e.g. "notebook").
      docker_image: image reference as `docker pull` takes it.
      ports: container ports to publish (1..65535, at least one, no repeats).
      volumes: container paths worth keeping (absolute), default [].
      launch_command: command the container runs; "" means the image's own entrypoint.
      env: environment variables, names like shell variables, values strings. Default {}.
      min_vram_gb / recommended_vram_gb: VRAM per GPU, in GB; recommended >= min.
      cuda_version: lowest CUDA version the image needs, "major.minor" (a quoted string).
      disk_gb: default disk in GB (>= 8, the Vast.ai minimum; <= max_disk_gb).
      docs_url: http(s) link to the app's documentation, at most DOCS_URL_MAX (2990)
        characters (Slack's 3000 for a section's text, minus "*Docs*: <>").
      health_path: path the readiness probe GETs (e.g. "/api" for Jupyter).
      health_port: container port the probe uses; default the first of `ports`.
      password_env: env var that carries a per-deployment generated password/token
        (e.g. "JUPYTER_TOKEN"), or None when the app has no login.
      secret_env: env names whose values are secret and must never be shown. Default [].
      min_compute_cap: CUDA compute capability x100 floor (750 = Turing). Vast.ai's search
        pairs `cuda_max_good` with a `compute_cap` floor, because `cuda_max_good` alone hid
        H100/H200 offers (vast-api.md §2, dstackai/gpuhunt#142). Default 750.
      max_disk_gb: largest disk a user may ask for, GB. Default 500.
      default_lifetime_hours: how long a deployment runs by default before the bot stops it,
        in whole hours (1 to 720), preselected in the picker's "Run for"; None (the default)
        uses the bot's DEFAULT_LIFETIME_HOURS. A server (vLLM) is meant to run longer than a
        notebook. The bot's MAX_LIFETIME_HOURS still caps it for non-admins.

    The model is frozen; build a new one with `model_copy(update=...)` to change a field.
    Raises pydantic.ValidationError on bad data (catalog.loader formats it per field).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    slug: str
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=40)
    docker_image: str = Field(min_length=1)
    ports: list[Port] = Field(min_length=1)
    volumes: list[str] = Field(default_factory=list)
    launch_command: str = ""
    env: dict[str, str] = Field(default_factory=dict)
    min_vram_gb: int = Field(ge=1)
    recommended_vram_gb: int
    cuda_version: str
    disk_gb: int = Field(ge=MIN_DISK_GB)
    docs_url: str
    health_path: str
    health_port: int | None = Field(default=None, validate_default=True)
    password_env: str | None = None
    secret_env: list[str] = Field(default_factory=list)
    min_compute_cap: int = Field(default=750, ge=0)
    max_disk_gb: int = Field(default=500, ge=MIN_DISK_GB)
    default_lifetime_hours: int | None = Field(default=None, ge=1, le=720)

    @field_validator("slug")
    @classmethod
    def _check_slug(cls, value: str) -> str:
        if not SLUG_RE.match(value):
            raise _problem(f'"{value}" must be 1 to 40 characters of lowercase a-z, 0-9 and "-"')
        return value

    @field_validator("name", "category")
    @classmethod
    def _check_one_line(cls, value: str) -> str:
        if "\n" in value or not value.strip():
            raise _problem("must be one non-blank line")
        return value

    @field_validator("description")
    @classmethod
    def _check_description(cls, value: str) -> str:
        if "\n" in value.strip():
            raise _problem("must be one line")
        return value.strip()

    @field_validator("docker_image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise _problem(f'"{value}" is not an image reference (it contains spaces)')
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

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not ENV_NAME_RE.match(key):
                raise _problem(f'"{key}" is not a valid environment variable name')
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
        if len(value) > DOCS_URL_MAX:
            raise _problem(
                f"is {len(value)} characters; at most {DOCS_URL_MAX} can be shown (Slack "
                f"limits a section's text to {SLACK_SECTION_TEXT_MAX} characters, and Details "
                "shows the link in one section)"
            )
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise _problem(f'"{value[:200]}" is not an http:// or https:// URL')
        return value

    @field_validator("health_path")
    @classmethod
    def _check_health_path(cls, value: str) -> str:
        if not value.startswith("/") or any(ch.isspace() for ch in value):
            raise _problem(f'"{value}" must be a URL path starting with "/"')
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
        if value is not None and not ENV_NAME_RE.match(value):
            raise _problem(f'"{value}" is not a valid environment variable name')
        return value

    @field_validator("secret_env")
    @classmethod
    def _check_secret_env(cls, value: list[str]) -> list[str]:
        for name in value:
            if not ENV_NAME_RE.match(name):
                raise _problem(f'"{name}" is not a valid environment variable name')
        return value

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
