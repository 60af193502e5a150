"""The benchmarks measure what they say: a small run of each quick one, checked for the
figures' meaning rather than their size."""

from __future__ import annotations

from pathlib import Path

from benchmarks import deploy_throughput


def test_deploy_throughput_measures_the_service_not_vast_pacing(tmp_path: Path) -> None:
    """With production pacing every create waits 4.5 s (+10 %) for its slot: 6 deploys would
    take about 25 s and the figure would be Vast.ai's pacing (0.2 deploys/s), not the service."""
    figures = deploy_throughput.run(
        f"sqlite:///{tmp_path / 'bench.db'}", deploys=6, submitters=2, duplicate_every=3
    )
    assert figures["pacing_wait_seconds"] == 0
    assert figures["creates"] == figures["distinct"] == 6
    assert figures["seconds"] < 15  # paced, the creates alone need 5 × 4.95 s
