"""CPU quota from cgroup limits (what a Kubernetes pod may use), not the host's core count."""

from __future__ import annotations

import math
import os
from pathlib import Path


def cpu_quota() -> int:
    """Whole CPUs this process may use: the cgroup quota, else its CPU affinity."""
    available = len(os.sched_getaffinity(0))
    quota = _cgroup_v2_quota() or _cgroup_v1_quota()
    if quota is None:
        return available
    return max(1, min(available, math.ceil(quota)))


def _cgroup_v2_quota() -> float | None:
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except OSError:
        return None
    if len(text) != 2 or text[0] == "max":
        return None
    return int(text[0]) / int(text[1])


def _cgroup_v1_quota() -> float | None:
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
