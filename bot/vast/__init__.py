"""Vast.ai REST client: typed models, errors with user-facing messages, and the client.

See docs/VAST_API.md for every endpoint, unit and pitfall used here, each with its public source.
"""

from bot.vast.client import DEFAULT_BASE_URL, LIST_PAGE_SIZE, VastClient, port_env
from bot.vast.errors import (
    AuthError,
    InsufficientCredit,
    KeyRefused,
    NotFound,
    OfferUnavailable,
    RateLimited,
    UnexpectedResponse,
    Unreachable,
    VastError,
    classify,
)
from bot.vast.models import CreateResult, Instance, InstanceSshKey, Offer, PortMapping, User

__all__ = [
    "DEFAULT_BASE_URL",
    "LIST_PAGE_SIZE",
    "AuthError",
    "CreateResult",
    "InsufficientCredit",
    "Instance",
    "InstanceSshKey",
    "KeyRefused",
    "NotFound",
    "Offer",
    "OfferUnavailable",
    "PortMapping",
    "RateLimited",
    "UnexpectedResponse",
    "Unreachable",
    "User",
    "VastClient",
    "VastError",
    "classify",
    "port_env",
]
