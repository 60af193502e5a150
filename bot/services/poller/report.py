"""What a poller tick counts (:class:`TickReport`) and the small records its stages hand each
other: an account's sweep and state between ticks, an account's share of a tick, what a pass
read, and one deployment's verdict on its way to being applied."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime

from bot.services import states
from bot.services.accounts import VastAccount
from bot.services.ports import UnmanagedInstance
from bot.vast.client import VastClient
from bot.vast.models import Instance
from catalog import Template
from storage import DeploymentRecord


@dataclass
class TickReport:
    """What one tick did (for logs, tests and the benchmark).

    ``ran`` is False when another process holds the lease. ``accounts`` is the number of
    Vast.ai accounts whose pass ran. ``vast_requests`` counts HTTP requests to Vast.ai, all
    accounts together (list pages, confirmations, destroys; retries included);
    ``slack_calls`` counts Slack Web API calls the poller made (retries after a 429 not
    included); ``seconds`` is wall time. ``in_transition`` deployments were read by id
    (``transition_requests`` list requests), ``sweep_pages`` pages of the rolling sweep were
    read, ``assessed`` deployments were judged with what this tick read, ``sweep_passes``
    counts the accounts whose whole list this tick finished a pass over (single-workspace
    mode: 1 or 0). ``row_errors`` counts the steps that failed for one deployment this tick
    (assessing, probing, confirming, applying or reviewing its lifetime: bad data, a database
    error on that row, a bug): each is logged with the deployment's id, the row is left as it
    was and tried again on the next pass, and the other rows go on. Counts are summed over the
    accounts.
    """

    ran: bool = True
    accounts: int = 0
    deployments: int = 0
    instances: int = 0
    in_transition: int = 0
    transition_requests: int = 0
    sweep_pages: int = 0
    sweep_passes: int = 0
    assessed: int = 0
    vast_requests: int = 0
    slack_calls: int = 0
    changes: int = 0
    notified: int = 0
    destroyed: int = 0
    probes: int = 0
    row_errors: int = 0
    seconds: float = 0.0
    error: str | None = None

    def add(self, part: TickReport) -> None:
        """Add the counts of ``part`` (one account's pass) to this report's; keep this
        report's ``error``, else take ``part``'s. ``ran`` is left as it is."""
        for item in fields(self):
            mine, theirs = getattr(self, item.name), getattr(part, item.name)
            if item.name == "error":
                self.error = mine or theirs
            elif isinstance(mine, int | float) and not isinstance(mine, bool):
                setattr(self, item.name, mine + theirs)


@dataclass
class Sweep:
    """Where the rolling sweep over the account's instance list stands.

    ``token`` resumes the pass (None: the next page is the first); ids up to ``after_id`` were
    read in this pass. Over the pass it gathers the instances nobody owns and the stray
    candidates; ``total`` is the list's last ``total_instances``.
    """

    token: str | None = None
    after_id: int = 0
    total: int | None = None
    unmanaged: list[UnmanagedInstance] = field(default_factory=list)
    candidates: set[int] = field(default_factory=set)


@dataclass
class AccountState:
    """What the poller keeps between ticks for one Vast.ai account: its rolling sweep, whether
    Vast.ai refused the sweep's ``order_by`` once, the instance ids that looked stray in its
    last pass, and its unmanaged instances as last written (and when)."""

    sweep: Sweep = field(default_factory=Sweep)
    plain_sweep: bool = False
    strays: set[int] = field(default_factory=set)
    unmanaged: tuple[list[UnmanagedInstance], datetime] | None = None


@dataclass
class Group:
    """One account's share of a tick: its followed rows (``{deployment id: instance id}``),
    those of them in transition, and whose rows are its own (``owns``). ``spares``: the same
    Vast.ai account through other workspaces' keys, tried in turn when Vast.ai refuses the
    key in use (one workspace's revoked key must not blind the poller to the others' rows)."""

    account: VastAccount
    owns: Callable[[DeploymentRecord], bool]
    followed: dict[int, int] = field(default_factory=dict)
    hot: list[DeploymentRecord] = field(default_factory=list)
    spares: list[VastAccount] = field(default_factory=list)


@dataclass
class Read:
    """What one account's pass read: instances by id, the deployments read by id, the
    instance-id range ``(low, high]`` the sweep's pages covered (None: no sweep page read),
    and how many sweep pages it read."""

    instances: dict[int, Instance] = field(default_factory=dict)
    by_id: set[int] = field(default_factory=set)
    swept: tuple[float, float] | None = None
    pages: int = 0

    def covers(self, dep: DeploymentRecord) -> bool:
        """Whether this tick read ``dep``'s instance (or learnt that it is absent)."""
        if dep.id in self.by_id:
            return True
        if self.swept is None or dep.instance_id is None:
            return False
        low, high = self.swept
        return low < dep.instance_id <= high


@dataclass
class Work:
    """One deployment judged this tick: its row, its instance as read (None: absent), its
    template, the verdict (:func:`bot.services.states.assess`), the client of the
    deployment's account (for confirmations and destroys), and whether its instance may have
    an address that is not public (``allow_private``: a local simulator's)."""

    dep: DeploymentRecord
    instance: Instance | None
    template: Template | None
    verdict: states.Verdict
    vast: VastClient  # the client of the deployment's account
    allow_private: bool = False
