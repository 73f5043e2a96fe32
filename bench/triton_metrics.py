"""The kokoro model's counters from Triton's Prometheus endpoint (standard library only, so that
``bench/gpu_triton.py`` runs on a bare GPU machine too)."""

from __future__ import annotations

import re
import urllib.request

REQUESTS = "nv_inference_request_success"
EXECUTIONS = "nv_inference_exec_count"  # batches


def kokoro_counters(metrics_url: str, names: tuple[str, ...] = (REQUESTS, EXECUTIONS)) -> dict[str, float]:
    """The kokoro model's cumulative counters ``names`` (0 where Triton has not reported one)."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    values = {}
    for name in names:
        m = re.search(rf'^{name}{{[^}}]*model="kokoro"[^}}]*}} ([0-9.e+]+)', text, re.M)
        values[name] = float(m.group(1)) if m else 0.0
    return values
