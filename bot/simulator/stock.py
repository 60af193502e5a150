"""Seeded, realistic GPU offer stock for the Vast.ai simulator.

Field names, units and shapes follow the offer object in docs/VAST_API.md §2 (from vast-ai/docs
``search_offers.yaml`` and [cli] ``vastai/data/offer.py``): ``gpu_ram`` in MB per GPU,
``disk_space`` in GB, ``dph_*`` in $/hour, ``storage_cost`` in $/GB/month, ``compute_cap``
×100, ``geolocation`` free text ending with a country code.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["GPU_MODELS", "GpuModel", "generate_offers", "make_offer"]


@dataclass(frozen=True)
class GpuModel:
    """One GPU model: Vast.ai name, VRAM (MB), compute capability ×100, $/hour/GPU range,
    TFLOPs per GPU, memory bandwidth (GB/s), how many offers to generate, GPU counts."""

    name: str
    gpu_ram_mb: int
    compute_cap: int
    price_low: float
    price_high: float
    tflops: float
    mem_bw: float
    count: int
    gpu_counts: tuple[int, ...]
    min_cuda: float = 11.8


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel("RTX 3060", 12288, 860, 0.05, 0.10, 12.7, 360.0, 13, (1, 1, 1, 2, 4)),
    GpuModel("RTX 3080", 10240, 860, 0.08, 0.15, 29.8, 760.0, 11, (1, 1, 2, 4)),
    GpuModel("RTX 3090", 24576, 860, 0.14, 0.28, 35.6, 936.0, 15, (1, 1, 1, 2, 4, 8)),
    GpuModel("RTX 4090", 24564, 890, 0.28, 0.55, 82.6, 1008.0, 17, (1, 1, 1, 2, 4, 8)),
    GpuModel("A100 PCIE", 40960, 800, 0.55, 1.00, 19.5, 1555.0, 8, (1, 1, 2, 4, 8)),
    GpuModel("A100 SXM4", 81920, 800, 0.85, 1.50, 19.5, 2039.0, 9, (1, 2, 4, 8)),
    GpuModel("H100 SXM", 81559, 900, 1.70, 2.80, 67.0, 3352.0, 9, (1, 2, 4, 8), 12.0),
)
"""The stock: 83 offers in all with the default counts."""

_LOCATIONS = (
    "Oregon, US",
    "Texas, US",
    "California, US",
    "Virginia, US",
    ", US",
    "Quebec, CA",
    "Ontario, CA",
    "Bavaria, DE",
    "Hesse, DE",
    ", FI",
    "Tokyo, JP",
    "North Holland, NL",
    "Stockholm County, SE",
    "Guangdong, CN",
    "Taipei City, TW",
)
_CUDA = (11.8, 12.0, 12.2, 12.4, 12.6, 12.8)
_DRIVERS = {11.8: "520.61.05", 12.0: "525.147.05", 12.2: "535.183.01", 12.4: "550.127.05"}
_CPUS = (
    "AMD Ryzen 9 7950X 16-Core Processor",
    "AMD EPYC 7742 64-Core Processor",
    "Intel Xeon Gold 6338",
    "AMD Ryzen Threadripper PRO 5975WX",
)


def _driver(cuda: float) -> str:
    return _DRIVERS.get(cuda, "570.124.04")


def make_offer(
    rng: random.Random, offer_id: int, model: GpuModel, *, now: float, **overrides: Any
) -> dict[str, Any]:
    """One raw offer dict for ``model`` (values drawn from ``rng``), then ``overrides``.

    ``dph_total`` here is for 8 GB of storage; the search endpoint recomputes it for the
    query's ``allocated_storage``.
    """
    num_gpus = rng.choice(model.gpu_counts)
    per_gpu = round(rng.uniform(model.price_low, model.price_high), 4)
    dph_base = round(per_gpu * num_gpus, 4)
    storage_cost = round(rng.uniform(0.08, 0.30), 4)
    cuda = rng.choice([c for c in _CUDA if c >= model.min_cuda])
    verification = rng.choices(("verified", "unverified", "deverified"), (85, 11, 4))[0]
    direct_ports = 0 if rng.random() < 0.13 else rng.choice((8, 16, 40, 100, 500))
    reliability = round(rng.uniform(0.90, 0.9995), 4)
    disk_space = round(
        rng.choice((rng.uniform(20, 60), rng.uniform(60, 500), rng.uniform(500, 2500))), 1
    )
    inet_down = round(rng.uniform(40, 5000), 1)
    cpu_cores = rng.choice((16, 32, 64, 128))
    machine_id = rng.randint(10_000, 60_000)
    duration = round(rng.uniform(3, 180) * 86400, 1)
    dlperf = round(model.tflops * num_gpus * rng.uniform(0.7, 0.9), 2)
    dph_total = round(dph_base + 8 * storage_cost / 720, 6)
    offer: dict[str, Any] = {
        "id": offer_id,
        "ask_contract_id": offer_id,
        "bundle_id": offer_id * 7 + 3,
        "machine_id": machine_id,
        "host_id": rng.randint(1_000, 300_000),
        "hosting_type": 0,
        "num_gpus": num_gpus,
        "gpu_name": model.name,
        "gpu_arch": "nvidia",
        "gpu_ram": model.gpu_ram_mb,
        "gpu_total_ram": model.gpu_ram_mb * num_gpus,
        "gpu_frac": 1.0,
        "gpu_mem_bw": model.mem_bw,
        "gpu_max_power": 450,
        "gpu_max_temp": 83,
        "gpu_lanes": 16,
        "gpu_display_active": False,
        "bw_nvlink": 0.0,
        "compute_cap": model.compute_cap,
        "cuda_max_good": cuda,
        "driver_version": _driver(cuda),
        "cpu_name": rng.choice(_CPUS),
        "cpu_arch": "amd64",
        "cpu_cores": cpu_cores,
        "cpu_cores_effective": float(min(cpu_cores, 8 * num_gpus)),
        "cpu_ghz": round(rng.uniform(2.2, 4.5), 2),
        "cpu_ram": rng.choice((32, 64, 128, 256, 512)) * 1024,
        "disk_space": disk_space,
        "disk_bw": round(rng.uniform(300, 6000), 1),
        "disk_name": "Samsung SSD 990 PRO 2TB",
        "inet_up": round(inet_down * rng.uniform(0.3, 1.0), 1),
        "inet_down": inet_down,
        "inet_up_cost": 0.003,
        "inet_down_cost": 0.003,
        "direct_port_count": direct_ports,
        "public_ipaddr": f"203.0.113.{rng.randint(2, 254)}",
        "static_ip": rng.random() < 0.4,
        "geolocation": rng.choice(_LOCATIONS),
        "geolocode": rng.randint(1_000_000, 9_999_999),
        "reliability": reliability,
        "reliability2": reliability,
        "reliability_mult": round(reliability - 0.01, 4),
        "verification": verification,
        "vericode": 1 if verification == "verified" else 0,
        "rentable": rng.random() > 0.05,
        "rented": False,
        "is_bid": False,
        "external": False,
        "datacenter": rng.random() < 0.3,
        "vms_enabled": False,
        "dph_base": dph_base,
        "dph_total": dph_total,
        "min_bid": round(dph_base * rng.uniform(0.4, 0.7), 4),
        "storage_cost": storage_cost,
        "storage_total_cost": round(8 * storage_cost / 720, 6),
        "vram_costperhour": round(dph_base / (model.gpu_ram_mb * num_gpus), 8),
        "credit_discount_max": 0.4,
        "dlperf": dlperf,
        "dlperf_per_dphtotal": round(dlperf / dph_total, 2),
        "total_flops": round(model.tflops * num_gpus, 2),
        "flops_per_dphtotal": round(model.tflops * num_gpus / dph_total, 2),
        "score": round(dlperf / dph_total * reliability, 2),
        "start_date": round(now - rng.uniform(1, 90) * 86400, 1),
        "end_date": round(now + duration, 1),
        "duration": duration,
        "pci_gen": 4.0,
        "pcie_bw": 25.1,
        "mobo_name": "ProArt B650-CREATOR",
        "has_avx": 1,
        "os_version": "22.04",
        "cluster_id": None,
        "resource_type": "gpu",
        "time_remaining": "",
        "time_remaining_isbid": "",
    }
    offer.update(overrides)
    # the official client derives its "datacenter" column from hosting_type == 1
    # ([cli] vastai/utils.py::postprocess_search_results): keep the two in step
    if "hosting_type" not in overrides:
        offer["hosting_type"] = 1 if offer["datacenter"] else 0
    if "verified" in overrides:  # convenience: verified=False -> verification "unverified"
        offer["verification"] = "verified" if overrides["verified"] else "unverified"
        del offer["verified"]
    return offer


def generate_offers(seed: int, *, now: float, first_id: int = 23_800_000) -> list[dict[str, Any]]:
    """The simulator's stock: one offer per ``GpuModel.count``, ids increasing, deterministic
    for a given ``seed`` (apart from ``start_date``/``end_date``, which follow ``now``)."""
    rng = random.Random(seed)
    offers: list[dict[str, Any]] = []
    offer_id = first_id + rng.randint(0, 9_999)
    for model in GPU_MODELS:
        for _ in range(model.count):
            offer_id += rng.randint(1, 4_000)
            offers.append(make_offer(rng, offer_id, model, now=now))
    return offers
