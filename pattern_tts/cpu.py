"""The CPU this process runs on: its quota from cgroup limits (what a Kubernetes pod may use), not
the host's core count, and what /proc/cpuinfo says of it."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

# oneDNN (torch's CPU convolutions) caches each primitive it builds, keyed by shape: 1024 of them by
# default. The decoder's shapes follow each item's length, so under real traffic that cache fills with
# lengths that rarely come again: 115 MiB more at the kokoro process's peak (python -m bench.allocator,
# float32 on an AVX2 CPU); 64 keeps the primitives every item reuses, and is no slower.
ONEDNN_CACHE_ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_CAPACITY = 64


def onednn_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment that bounds oneDNN's primitive cache in the model processes; an operator's own
    ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` wins."""
    environ = dict(os.environ) if environ is None else environ
    return {ONEDNN_CACHE_ENV: environ.get(ONEDNN_CACHE_ENV) or str(ONEDNN_CACHE_CAPACITY)}


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


def _cpuinfo_field(name: str) -> str:
    """The value of the first ``name : value`` line of /proc/cpuinfo ("" where unreadable or absent)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


@lru_cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is unreadable)."""
    return frozenset(_cpuinfo_field("flags").split())


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it ("" where unknown)."""
    return _cpuinfo_field("model name")
