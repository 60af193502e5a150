"""One simulated Vast.ai instance: its state over time and its JSON.

The JSON mirrors ``GET /api/v0/instances/{id}/`` and the v1 list items (docs/VAST_API.md §4;
vast-ai/docs ``show_instances.yaml``): ``public_ipaddr`` with a trailing newline, ``ports`` as
``{"<port>/tcp": [{"HostIp": "0.0.0.0", "HostPort": "<str>"}]}`` (null until running),
``extra_env`` as a list of ``[key, value]`` pairs, ``start_date`` epoch seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bot.simulator.clock import Timeline

__all__ = ["SimInstance", "requested_ports"]

_PORT_KEY = re.compile(r"^-p\s+(\d+):(\d+)(?:/(tcp|udp))?$")

STUCK_LOADING = "stuck_loading"
EXITED = "exited"
STATUS_ERROR = "status_error"
STOPPED_BY_VAST = "stopped_by_vast"


def requested_ports(env: dict[str, str], runtype: str) -> list[tuple[int, str]]:
    """(container port, protocol) asked for through ``-p`` env keys, plus the ports the
    runtype opens itself (docs/VAST_API.md §3 runtype table: ssh -> 22, jupyter -> 8080 + 22)."""
    ports: list[tuple[int, str]] = []
    for key in env:
        match = _PORT_KEY.match(key.strip())
        if match:
            ports.append((int(match.group(2)), match.group(3) or "tcp"))
    if "ssh" in runtype or "jupyter" in runtype:
        ports.append((22, "tcp"))
    if "jupyter" in runtype:
        ports.append((8080, "tcp"))
    return list(dict.fromkeys(ports))


@dataclass
class SimInstance:
    """Mutable record of one instance. The simulator holds its lock while touching it, except
    for :meth:`app_ready`, which the app-port thread calls lock-free."""

    id: int
    offer: dict[str, Any]
    image: str
    env: dict[str, str]
    disk_gb: float
    label: str | None
    runtype: str
    onstart: str | None
    args: list[str]
    created_wall: float
    phase_start: float
    timeline: Timeline
    jupyter_token: str
    ssh_host: str
    ssh_port: int
    intended: str = "running"
    override: str | None = None
    override_msg: str | None = None
    never_ready: bool = False
    gpu_util: float | None = 0.02
    """``gpu_util`` reported while running (None = null, unknown); null when not running."""
    cpu_util: float | None = 1.0
    """``cpu_util`` reported while running (None = null, unknown); ``0.0`` when not running,
    since both OpenAPI files type ``cpu_util`` as a non-nullable number."""
    public_ipaddr: Any = "127.0.0.1\n"
    """``public_ipaddr`` as listed (with Vast.ai's trailing newline); tests set odd values."""
    listed: dict[str, Any] = field(default_factory=dict)
    """Raw fields listed as given, over what the instance computes (tests of hostile data)."""
    host_ports: dict[tuple[int, str], int] = field(default_factory=dict)
    app_ports: list[int] = field(default_factory=list)
    owner: int = 0
    """Vast.ai user id of the account that rented it (only that account's key sees it)."""
    ssh_keys: list[tuple[str, str]] = field(default_factory=list)
    """SSH keys attached to this instance alone, ``(key id, public key line)``, oldest first
    (``POST /api/v0/instances/{id}/ssh/``; an attach of a key it already holds adds a copy)."""

    # -- state ------------------------------------------------------------------------------

    def state(self, now: float) -> dict[str, Any]:
        """``actual_status``, ``intended_status``, ``cur_state``, ``next_state``, ``status_msg``
        at simulator time ``now``."""
        tl = self.timeline
        t = now - self.phase_start
        if self.override == STOPPED_BY_VAST:
            return _state("stopped", "stopped", "stopped", "stopped", self.override_msg)
        if self.intended == "stopped":
            # A stopped container has exited: Vast.ai lists it as ``exited`` with the intended
            # state ``stopped`` (SkyPilot's Vast provider maps EXITED to a resumable STOPPED).
            return _state("exited", "stopped", "stopped", "stopped", self._running_msg())
        if self.override == EXITED:
            return _state("exited", "running", "running", "running", self.override_msg)
        if t < tl.created_after:
            return _state(None, "running", "running", "running", None)
        if self.override == STATUS_ERROR:
            return _state("created", "running", "running", "running", self.override_msg)
        if t < tl.loading_after:
            return _state("created", "running", "running", "running", "Creating container")
        if t < tl.running_after or self.override == STUCK_LOADING:
            msg = f"Downloading image layers for {self.image}"
            return _state("loading", "running", "running", "running", msg)
        return _state("running", "running", "running", "running", self._running_msg())

    def _running_msg(self) -> str:
        return f"success, running {self.image.replace(':', '_')}/{self.runtype}"

    def is_running(self, now: float) -> bool:
        """True when ``actual_status`` is ``running`` at ``now``."""
        return self.state(now)["actual_status"] == "running"

    def app_ready(self, now: float) -> bool:
        """Whether the app behind the ports answers 200 at ``now`` (lock-free read)."""
        return (
            not self.never_ready
            and self.is_running(now)
            and now - self.phase_start >= self.timeline.app_ready_after
        )

    @property
    def dph_total(self) -> float:
        """$/hour: ``dph_base + disk_gb * storage_cost / 720`` (docs/VAST_API.md §2, price
        identity)."""
        base = float(self.offer.get("dph_base") or 0.0)
        storage = float(self.offer.get("storage_cost") or 0.0)
        return round(base + self.disk_gb * storage / 720.0, 8)

    # -- JSON -------------------------------------------------------------------------------

    def to_json(self, now: float, wall: float) -> dict[str, Any]:
        """The instance as Vast.ai shows it at simulator time ``now`` (``wall`` = epoch)."""
        st = self.state(now)
        offer = self.offer
        running = st["actual_status"] == "running"
        ports: dict[str, list[dict[str, str]]] | None = None
        if running and self.host_ports:
            ports = {}
            for (cport, proto), hport in sorted(self.host_ports.items()):
                entries = [{"HostIp": "0.0.0.0", "HostPort": str(hport)}]
                if cport == 22:
                    entries.append({"HostIp": "::", "HostPort": str(hport)})
                ports[f"{cport}/{proto}"] = entries
        storage_hour = round(self.disk_gb * float(offer.get("storage_cost") or 0.0) / 720.0, 8)
        gpu_hour = float(offer.get("dph_base") or 0.0)
        uptime = round((now - self.phase_start) / 60.0, 2) if running else None
        direct = int(offer.get("direct_port_count") or 0)
        data = {
            "id": self.id,
            "bundle_id": offer.get("bundle_id"),
            "machine_id": offer.get("machine_id"),
            "host_id": offer.get("host_id"),
            "actual_status": st["actual_status"],
            "intended_status": st["intended_status"],
            "cur_state": st["cur_state"],
            "next_state": st["next_state"],
            "status_msg": st["status_msg"],
            "label": self.label,
            "template_id": None,
            "template_hash_id": None,
            "template_name": None,
            "image_uuid": self.image,
            "image_args": list(self.args),
            "image_runtype": self.runtype,
            "extra_env": [[k, v] for k, v in self.env.items()],
            "onstart": self.onstart or "",
            "jupyter_token": self.jupyter_token,
            "public_ipaddr": self.public_ipaddr,
            "local_ipaddrs": "172.17.0.2 \n",
            "ssh_host": self.ssh_host,
            "ssh_idx": self.ssh_host.removeprefix("ssh").split(".")[0],
            "ssh_port": self.ssh_port,
            "machine_dir_ssh_port": self.ssh_port + 1,
            "direct_port_count": direct,
            "direct_port_start": 40000 if direct else -1,
            "direct_port_end": 40000 + direct - 1 if direct else -1,
            "ports": ports,
            "start_date": self.created_wall if st["actual_status"] is not None else None,
            "end_date": offer.get("end_date"),
            "uptime_mins": uptime,
            "duration": offer.get("duration"),
            "gpu_name": offer.get("gpu_name"),
            "gpu_arch": offer.get("gpu_arch", "nvidia"),
            "num_gpus": offer.get("num_gpus"),
            "gpu_ram": offer.get("gpu_ram"),
            "gpu_totalram": offer.get("gpu_total_ram"),
            "gpu_frac": 1.0,
            "gpu_lanes": offer.get("gpu_lanes"),
            "gpu_mem_bw": offer.get("gpu_mem_bw"),
            "gpu_util": self.gpu_util if running else None,
            "gpu_temp": 41.0 if running else None,
            "bw_nvlink": 0.0,
            "compute_cap": offer.get("compute_cap"),
            "cuda_max_good": offer.get("cuda_max_good"),
            "driver_version": offer.get("driver_version"),
            "cpu_name": offer.get("cpu_name"),
            "cpu_arch": offer.get("cpu_arch", "amd64"),
            "cpu_cores": offer.get("cpu_cores"),
            "cpu_cores_effective": offer.get("cpu_cores_effective"),
            "cpu_ram": offer.get("cpu_ram"),
            "cpu_util": self.cpu_util if running else 0.0,  # not nullable in the specs
            "mem_limit": None,
            "mem_usage": None,
            "vmem_usage": None,
            "disk_name": offer.get("disk_name"),
            "disk_space": self.disk_gb,
            "disk_bw": offer.get("disk_bw"),
            "disk_util": 0.0,
            "disk_usage": 0.0,
            "inet_up": offer.get("inet_up"),
            "inet_down": offer.get("inet_down"),
            "static_ip": offer.get("static_ip", False),
            "geolocation": offer.get("geolocation"),
            "verification": offer.get("verification"),
            "rentable": True,
            "reliability2": offer.get("reliability2"),
            "is_bid": False,
            "min_bid": offer.get("min_bid"),
            "dph_base": gpu_hour,
            "dph_total": self.dph_total,
            "storage_cost": offer.get("storage_cost"),
            "storage_total_cost": storage_hour,
            "vram_costperhour": offer.get("vram_costperhour"),
            "dlperf": offer.get("dlperf"),
            "dlperf_per_dphtotal": offer.get("dlperf_per_dphtotal"),
            "flops_per_dphtotal": offer.get("flops_per_dphtotal"),
            "total_flops": offer.get("total_flops"),
            "score": offer.get("score"),
            "os_version": offer.get("os_version"),
            "mobo_name": offer.get("mobo_name"),
            "pci_gen": offer.get("pci_gen"),
            "pcie_bw": offer.get("pcie_bw"),
            "credit_balance": None,
            "credit_discount": None,
            "credit_discount_max": 0.4,
            "external": False,
            "webpage": None,
            "logo": "/static/logos/vastai_small2.png",
            "time_remaining": "",
            "time_remaining_isbid": "",
            "volume_info": [],
            "search": {
                "gpuCostPerHour": gpu_hour,
                "diskHour": storage_hour,
                "totalHour": self.dph_total,
                "discountTotalHour": 0,
                "discountedTotalPerHour": self.dph_total,
            },
            "instance": {
                "gpuCostPerHour": gpu_hour if running else 0.0,
                "diskHour": storage_hour,
                "totalHour": round((gpu_hour if running else 0.0) + storage_hour, 8),
                "discountTotalHour": 0,
                "discountedTotalPerHour": round((gpu_hour if running else 0.0) + storage_hour, 8),
            },
        }
        data.update((key, value) for key, value in self.listed.items() if key != "id")
        return data


def _state(
    actual: str | None, intended: str, cur: str, nxt: str, msg: str | None
) -> dict[str, Any]:
    return {
        "actual_status": actual,
        "intended_status": intended,
        "cur_state": cur,
        "next_state": nxt,
        "status_msg": msg,
    }
