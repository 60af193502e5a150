"""Typed views of the Vast.ai JSON the bot reads.

Every model ignores unknown keys and tolerates missing ones (Vast.ai adds, drops and nulls
fields freely; docs/VAST_API.md §2 "Any field may be null"). Only ``id`` is required. Numbers sent
as strings (``"12.8"``, ``HostPort: "41188"``) are accepted.

Units are converted once, here: VRAM arrives in MB (``gpu_ram``) and is exposed in GB
(``gpu_ram_gb`` = MB / 1024); disk arrives and stays in GB; prices are $/hour except
``storage_cost`` ($/GB/month).

Secrets: ``Instance`` never keeps ``extra_env`` (it holds every env value sent on create,
passwords and tokens included; docs/VAST_API.md §4), and ``jupyter_token`` is left out of ``repr``.

Untrusted text: every field the bot may show in Slack or send back to Vast.ai is checked here
once. Free text shown to people (``gpu_name``, ``geolocation``, the status words,
``image_uuid``) becomes one line without control characters, at most :data:`MAX_NAME`
characters (``status_msg``: :data:`MAX_STATUS_MSG`, line breaks kept); Slack's mrkdwn
escaping (``&``, ``<``, ``>``) is left to the Block Kit builders, where the text meets Slack
(:func:`bot.formats.mrkdwn_escape`). Addresses and ports are :mod:`bot.addresses`'s.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.addresses import address_problem, host_or_none, http_url, ip_or_none, port_or_none

__all__ = [
    "INSTANCE_COLUMNS",
    "MAX_NAME",
    "MAX_STATUS_MSG",
    "CreateResult",
    "Instance",
    "InstanceSshKey",
    "Offer",
    "PortMapping",
    "User",
    "key_body",
]

_MB_PER_GB = 1024.0
#: Most characters kept of a one-line name from Vast.ai (``gpu_name``, ``geolocation``, the
#: status words, ``image_uuid``): the ``deployments.gpu_name`` column holds 100.
MAX_NAME = 100
#: Most characters kept of ``status_msg`` (the bot shows at most 300 of it).
MAX_STATUS_MSG = 2000
# A Jupyter token as Vast.ai makes them (hex, dashes); anything else is not shown to anyone.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")


def _first_present(data: Mapping[str, Any], *keys: str) -> Any:
    """Return the first value among ``keys`` that is present and not None, else None."""
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return None


def _float_or_none(value: Any) -> float | None:
    """A finite float from a number or numeric string; anything else (null, garbage, bool,
    NaN, inf) -> None. Never raises."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _int_or_none(value: Any) -> int | None:
    """An int from an integral number or numeric string; anything else -> None. Never raises."""
    number = _float_or_none(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _str_or_none(value: Any) -> str | None:
    """A string as sent; anything else (a number, a list, an object) -> None."""
    return value if isinstance(value, str) else None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(value: Any, limit: int = MAX_NAME) -> str | None:
    """A string as one line: control characters (line breaks, tabs, bidirectional overrides)
    and runs of spaces become one space, ends stripped, at most ``limit`` characters (the
    last one ``…`` when cut). None for a non-string or when nothing is left."""
    if not isinstance(value, str):
        return None
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())
    return _cut(text, limit) if text else None


def _message(value: Any) -> str | None:
    """``status_msg``: line breaks kept, other control characters dropped, at most
    :data:`MAX_STATUS_MSG` characters; None for a non-string."""
    if not isinstance(value, str):
        return None
    text = "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in value)
    return _cut(text, MAX_STATUS_MSG)


def _token(value: Any) -> str | None:
    """A Jupyter token made of URL-safe characters (Vast.ai's are hex), else None: a token
    that could carry Slack markup or break a URL is never shown."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if _TOKEN.fullmatch(text) else None


def _mb_to_gb(value: Any) -> Any:
    """MB (as Vast.ai sends ``gpu_ram``) to GB; non-numbers are passed on for pydantic to judge."""
    try:
        return float(value) / _MB_PER_GB
    except (TypeError, ValueError):
        return value


class _VastModel(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Offer(_VastModel):
    """One rentable GPU offer ("ask") from ``POST /api/v0/bundles/`` (docs/VAST_API.md §2).

    Build it from the raw offer JSON with :meth:`from_api` (or ``Offer.model_validate``); the
    raw field names are mapped for you. Constructing with the attribute names below works too.
    ``catalog.matching.OfferLike`` relies on these attribute names.
    """

    id: int
    """Offer (ask) id, the ``{id}`` of ``PUT /api/v0/asks/{id}/``. From ``id``."""
    gpu_name: str = ""
    """GPU model exactly as Vast.ai spells it, e.g. ``"RTX 4090"``. From ``gpu_name``."""
    num_gpus: int = 0
    """Number of GPUs in the offer. From ``num_gpus``."""
    gpu_ram_gb: float = 0.0
    """VRAM **per GPU** in GB = ``gpu_ram`` (MB) / 1024; a 24 GB card gives ~23.99."""
    cuda_max_good: float | None = None
    """Highest CUDA version the host driver supports, e.g. ``12.8``. From ``cuda_max_good``."""
    compute_cap: int | None = None
    """CUDA compute capability ×100, e.g. ``890``. From ``compute_cap``."""
    disk_space_gb: float = 0.0
    """Most disk the offer can give, GB. From ``disk_space`` (already GB)."""
    direct_port_count: int = 0
    """Open direct ports on the host; 0 means proxy-only (no public app ports)."""
    dph_total: float = math.inf
    """Total $/hour: GPU + storage for the query's ``allocated_storage`` GB (bandwidth not
    included). From ``dph_total``; missing means ``inf`` so an unpriced offer never ranks first."""
    dph_base: float | None = None
    """GPU-only $/hour. From ``dph_base``."""
    storage_cost: float | None = None
    """Storage price in $/GB/**month**. From ``storage_cost``."""
    verified: bool = False
    """True when ``verification == "verified"`` (or, without ``verification``, ``verified``)."""
    rentable: bool = False
    """Whether the offer can be rented now. From ``rentable``; missing means False."""
    reliability: float | None = None
    """Host reliability 0–1. From ``reliability2``, else ``reliability``."""
    geolocation: str | None = None
    """Free text such as ``"Oregon, US"`` or ``", FI"``. From ``geolocation``."""
    inet_down: float | None = None
    """Download bandwidth (unit unclear: MB/s per OpenAPI, Mb/s per CLI). From ``inet_down``."""
    machine_id: int | None = None
    """Physical machine id. From ``machine_id``."""
    host_id: int | None = None
    """Host (owner) user id. From ``host_id``."""

    @model_validator(mode="before")
    @classmethod
    def _from_raw(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        if out.get("gpu_ram_gb") is None and out.get("gpu_ram") is not None:
            out["gpu_ram_gb"] = _mb_to_gb(out["gpu_ram"])
        if out.get("disk_space_gb") is None and out.get("disk_space") is not None:
            out["disk_space_gb"] = out["disk_space"]
        verification = out.get("verification")
        if isinstance(verification, str):
            out["verified"] = verification.strip().lower() == "verified"
        elif out.get("verified") is None:
            out.pop("verified", None)
        if "reliability2" in out or "reliability" in out:
            out["reliability"] = _first_present(out, "reliability2", "reliability")
        for key in ("gpu_name", "geolocation"):
            if isinstance(out.get(key), str):
                out[key] = one_line(out[key])
        # Keys whose value is null fall back to the field default.
        for key in ("gpu_name", "num_gpus", "direct_port_count", "dph_total", "rentable"):
            if key in out and out[key] is None:
                del out[key]
        return out

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Offer:
        """Parse one raw offer dict from ``{"offers": [...]}``.

        Raises ``pydantic.ValidationError`` when ``id`` is missing or a field has a wrong type.
        """
        return cls.model_validate(data)


class PortMapping(_VastModel):
    """One public mapping of a container port: ``{"HostIp": "0.0.0.0", "HostPort": "41188"}``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    host_ip: str = "0.0.0.0"
    """``HostIp``: ``"0.0.0.0"`` (IPv4, all interfaces) or ``"::"`` (IPv6)."""
    host_port: int = Field(ge=1, le=65535)
    """``HostPort`` parsed from its string form; the public port on ``public_ipaddr``
    (1..65535: :func:`_parse_ports` drops any other)."""

    @property
    def is_ipv4(self) -> bool:
        """True for IPv4 entries (``0.0.0.0``, empty, or a dotted address)."""
        return ":" not in self.host_ip


def _is_mapping(item: Any) -> bool:
    return isinstance(item, PortMapping)


def _parse_ports(raw: Any) -> dict[int, list[PortMapping]]:
    """Parse Vast.ai's ``ports`` dict; keeps TCP only. Null, a list (the OpenAPI typo) -> ``{}``.
    Container and host ports outside 1..65535 (or not numbers) are dropped. Never raises."""
    if not isinstance(raw, Mapping):
        return {}
    result: dict[int, list[PortMapping]] = {}
    for key, entries in raw.items():
        port_text, _, proto = str(key).partition("/")
        if proto and proto.lower() != "tcp":
            continue
        container_port = port_or_none(port_text)
        if container_port is None or not isinstance(entries, list):
            continue
        mappings: list[PortMapping] = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            host_port = port_or_none(entry.get("HostPort"))
            if host_port is None:  # 0, 70000, "", "abc", null: not a usable port
                continue
            host_ip = entry.get("HostIp")
            mappings.append(
                PortMapping(
                    host_ip=host_ip.strip() if isinstance(host_ip, str) and host_ip else "0.0.0.0",
                    host_port=host_port,
                )
            )
        if mappings:
            result[container_port] = mappings
    return result


class Instance(_VastModel):
    """A rented instance from ``GET /api/v0/instances/{id}/`` or ``GET /api/v1/instances/``.

    Status fields (docs/VAST_API.md §4): ``actual_status`` is the container state (``None``,
    ``created``, ``loading``, ``running``, ``stopped``, ``exited``, ``offline``, ``unknown``...);
    ``intended_status`` what the user asked for; ``cur_state``/``next_state`` the contract state.
    ``extra_env`` is deliberately not kept (it holds secrets).
    """

    id: int
    """Instance (contract) id = ``new_contract`` from create."""
    actual_status: str | None = None
    intended_status: str | None = None
    cur_state: str | None = None
    next_state: str | None = None
    status_msg: str | None = None
    """Free text, e.g. ``"success, running vastai/comfyui"`` or an ``OCI runtime create failed``."""
    label: str | None = None
    public_ipaddr: str | None = None
    """Public IPv4 or IPv6 address (normalised, no brackets), stripped of the trailing newline
    Vast.ai sends; ``None`` when empty or not an IP address (a host name, ``"1.2.3.4:9/x"``,
    a non-string): such an instance is unreachable, never an error."""
    address_problem: str | None = None
    """Why the raw ``public_ipaddr`` could not be used (:data:`bot.addresses.NOT_AN_ADDRESS`),
    None when it is an IP address or absent. Whether the bot may connect to the address is
    decided where it is used (:func:`bot.addresses.reachable_ip`)."""
    ports: dict[int, list[PortMapping]] = Field(default_factory=dict)
    """Container TCP port -> public mappings, from ``{"8188/tcp": [{"HostIp", "HostPort"}]}``.
    Empty until the instance runs."""
    ssh_host: str | None = None
    """Vast.ai's SSH proxy host (an IP address or RFC 1123 host name), else None."""
    ssh_port: int | None = None
    """Its port, 1..65535, else None."""
    gpu_name: str | None = None
    num_gpus: int | None = None
    gpu_ram_gb: float | None = None
    """VRAM per GPU, GB (``gpu_ram`` MB / 1024)."""
    dph_total: float | None = None
    """Total $/hour including storage."""
    disk_space_gb: float | None = None
    """Disk allocated to the instance, GB (``disk_space``)."""
    jupyter_token: str | None = Field(default=None, repr=False)
    """Jupyter token: a secret, never logged or posted in a channel."""
    start_date: float | None = None
    """Epoch seconds; may be null just after create."""
    geolocation: str | None = None
    machine_id: int | None = None
    image_uuid: str | None = None
    """Docker image the instance runs."""
    gpu_util: float | None = None
    """GPU utilisation as Vast.ai's instance list reports it (``gpu_util``, nullable in
    show_instances.yaml); None = unknown or non-numeric. Kept as sent: show_instance.yaml calls
    it "a fraction", the CLI prints it under "Util. %"; :func:`bot.services.lifetimes.gpu_percent`
    reads it safely either way."""
    cpu_util: float | None = None
    """CPU utilisation as Vast.ai reports it (``cpu_util``), kept as sent like ``gpu_util``; its
    unit is unconfirmed (show_instance.yaml: "a fraction"). None = unknown or non-numeric."""

    @model_validator(mode="before")
    @classmethod
    def _from_raw(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = {k: v for k, v in data.items() if k not in ("extra_env", "onstart")}
        if "address_problem" not in out:
            out["address_problem"] = address_problem(out.get("public_ipaddr"))
        if out.get("gpu_ram_gb") is None and out.get("gpu_ram") is not None:
            out["gpu_ram_gb"] = _mb_to_gb(out["gpu_ram"])
        if out.get("disk_space_gb") is None and out.get("disk_space") is not None:
            out["disk_space_gb"] = out["disk_space"]
        return out

    @field_validator(
        "actual_status",
        "intended_status",
        "cur_state",
        "next_state",
        "gpu_name",
        "image_uuid",
        "geolocation",
        mode="before",
    )
    @classmethod
    def _text(cls, value: Any) -> str | None:
        # A non-string here would fail the whole instance, which the client would then drop
        # from its page: a billing instance read as gone.
        return one_line(value)

    @field_validator("status_msg", mode="before")
    @classmethod
    def _status_msg(cls, value: Any) -> str | None:
        return _message(value)

    @field_validator("jupyter_token", mode="before")
    @classmethod
    def _jupyter_token(cls, value: Any) -> str | None:
        return _token(value)

    @field_validator("label", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> str | None:
        text = _str_or_none(value)
        return (text.strip() or None) if text is not None else None

    @field_validator("public_ipaddr", mode="before")
    @classmethod
    def _ip(cls, value: Any) -> str | None:
        return ip_or_none(value)

    @field_validator("ssh_host", mode="before")
    @classmethod
    def _host(cls, value: Any) -> str | None:
        return host_or_none(value)

    @field_validator("ssh_port", mode="before")
    @classmethod
    def _port(cls, value: Any) -> int | None:
        return port_or_none(value)

    @field_validator("num_gpus", "machine_id", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> int | None:
        return _int_or_none(value)

    @field_validator("gpu_ram_gb", "dph_total", "disk_space_gb", "start_date", mode="before")
    @classmethod
    def _number(cls, value: Any) -> float | None:
        return _float_or_none(value)

    @field_validator("gpu_util", "cpu_util", mode="before")
    @classmethod
    def _utilisation(cls, value: Any) -> float | None:
        return _float_or_none(value)

    @field_validator("ports", mode="before")
    @classmethod
    def _ports(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and all(
            isinstance(k, int)
            and isinstance(v, list)
            and all(isinstance(m, PortMapping) for m in v)
            for k, v in value.items()
        ):
            return value
        return _parse_ports(value)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Instance:
        """Parse one raw instance dict. Raises ``pydantic.ValidationError`` without ``id``."""
        return cls.model_validate(data)

    def host_port(self, container_port: int) -> int | None:
        """Public port mapped to ``container_port`` (TCP), or None when not (yet) mapped.

        Takes the first IPv4/``0.0.0.0`` entry; falls back to the first entry when only
        IPv6 entries exist (Docker publishes the same number on both).
        """
        mappings = self.ports.get(container_port) or []
        for mapping in mappings:
            if mapping.is_ipv4:
                return mapping.host_port
        return mappings[0].host_port if mappings else None

    def public_url(self, container_port: int, scheme: str = "http") -> str | None:
        """``{scheme}://{public_ipaddr}:{host_port}/`` (an IPv6 address in brackets) for a
        mapped port, else None (:func:`bot.addresses.http_url`)."""
        port = self.host_port(container_port)
        if port is None or self.public_ipaddr is None:
            return None
        return http_url(self.public_ipaddr, port, scheme=scheme)


INSTANCE_COLUMNS: tuple[str, ...] = (
    "id",
    "actual_status",
    "intended_status",
    "cur_state",
    "next_state",
    "status_msg",
    "label",
    "public_ipaddr",
    "ports",
    "ssh_host",
    "ssh_port",
    "gpu_name",
    "num_gpus",
    "gpu_ram",
    "dph_total",
    "disk_space",
    "jupyter_token",
    "start_date",
    "geolocation",
    "machine_id",
    "image_uuid",
    "gpu_util",
    "cpu_util",
)
"""The raw columns :class:`Instance` reads: the v1 list's ``select_cols`` (show_instances.yaml),
so a page carries nothing else (``extra_env``, with its secrets, included)."""


class CreateResult(_VastModel):
    """Success body of ``PUT /api/v0/asks/{id}/``: ``new_contract`` is the new instance id.

    ``instance_api_key`` (a per-instance secret) is deliberately not kept.
    """

    instance_id: int
    """The new instance id, from ``new_contract``."""

    @model_validator(mode="before")
    @classmethod
    def _from_raw(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "instance_id" not in data and "new_contract" in data:
            return {**data, "instance_id": data["new_contract"]}
        return data


class User(_VastModel):
    """``GET /api/v0/users/current/``: ``credit`` is the available balance in US dollars
    (docs/VAST_API.md §5)."""

    credit: float
    id: int | None = None
    """The Vast.ai user id the key belongs to (show_user.yaml ``id``); None when absent. Two
    keys of one user answer the same id, so it names the account a key rents on."""


def key_body(public_key: str) -> str:
    """The part of an OpenSSH public key line that names the key: ``"<type> <base64>"``
    (the comment and extra spaces dropped), so two lines of one key compare equal.
    ``"ssh-ed25519  AAAA… alice@laptop"`` -> ``"ssh-ed25519 AAAA…"``."""
    return " ".join(public_key.split()[:2])


class InstanceSshKey(_VastModel):
    """One SSH key attached to one instance, as ``GET /api/v0/instances/{id}/ssh/`` lists it
    (``{"id": 1, "name": "my-key", "public_key": "ssh-rsa AAAA..."}``; docs.vast.ai API
    reference › Instances › show ssh-keys). ``id`` is what ``DELETE
    /api/v0/instances/{id}/ssh/{ssh_key_id}/`` takes, kept as text (the CLI passes it as a
    string)."""

    id: str
    public_key: str
    name: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("id is not a number")
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str) and value.strip().isdigit():
            return value.strip()
        raise ValueError("id is not a number")

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str | None:
        return one_line(value)

    def matches(self, public_key: str) -> bool:
        """Whether this is ``public_key`` (compared by :func:`key_body`, comments ignored)."""
        return key_body(self.public_key) == key_body(public_key) != ""
