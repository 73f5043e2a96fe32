"""Starting a benchmarked stack: ``pattern-tts serve`` on free loopback ports, offline, with the
benchmark's cache dir and the settings under test."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench import procs
from bench.workload import CACHE

# Dynamic batching on (the defaults) and off (batches of one, no queue delay): the settings of each.
BATCHING: dict[str, dict[str, str]] = {
    "on": {},
    "off": {"PATTERN_TTS_MAX_BATCH_SIZE": "1", "PATTERN_TTS_MAX_QUEUE_DELAY_US": "0"},
}


@dataclass(frozen=True)
class StackPorts:
    """Loopback ports of one ``pattern-tts serve``: the gateway and Triton's three."""

    gateway: int
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> StackPorts:
        return cls(*procs.free_ports(4))

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return f"http://127.0.0.1:{self.gateway}"


def stack_env(settings: dict[str, str]) -> dict[str, str]:
    """The environment of a benchmarked stack: this one without its ``PATTERN_TTS_*`` variables,
    offline, the benchmark's cache dir, then ``settings`` (``PATTERN_TTS_*``) on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATTERN_TTS_")}
    env.update(PATTERN_TTS_CACHE_DIR=str(CACHE / "stack-cache"), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    env.update(settings)
    return env


def start_stack(weights: Path, ports: StackPorts, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``pattern-tts serve`` on ``ports`` with ``env``, its output to ``log_path``."""
    return procs.start(
        procs.python_module(
            "pattern_tts",
            "serve",
            f"--weights={weights}",
            f"--port={ports.gateway}",
            f"--triton-http-port={ports.http}",
            f"--triton-grpc-port={ports.grpc}",
            f"--triton-metrics-port={ports.metrics}",
        ),
        env,
        log_path,
    )
