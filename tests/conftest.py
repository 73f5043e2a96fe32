"""Shared fixtures: a tiny random-weight Kokoro on disk, and the real stack started on it.

The stack is the real thing: ``pattern-tts serve`` starts a real ``tritonserver`` (the kokoro and
g2p python-backend models) and the gateway, on free loopback ports; tests talk to it with real
clients. Nothing here is mocked.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import torch

os.environ["HF_HUB_OFFLINE"] = "1"

from pattern_tts.synthesis.random_weights import write_random_kokoro  # noqa: E402

STARTUP_TIMEOUT_S = 600


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that are free on the loopback interface right now (all bound at once:
    ports picked one at a time can repeat, and Triton then refuses HTTP and gRPC on the same port)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config.json, kokoro-v1_0.pth and voices/*.pt of a tiny Kokoro with random weights."""
    return write_random_kokoro(tmp_path_factory.mktemp("tiny-kokoro"), size="tiny")


@dataclass
class Stack:
    """A running ``pattern-tts serve``: where to reach it and where its log goes."""

    gateway_url: str  # http://127.0.0.1:PORT
    triton_http_url: str  # 127.0.0.1:PORT (tritonclient style)
    triton_grpc_url: str  # 127.0.0.1:PORT
    metrics_url: str  # http://127.0.0.1:PORT/metrics
    weights_dir: Path
    cache_dir: Path  # PATTERN_TTS_CACHE_DIR: the rendered model repository, compile cache, ...
    log_path: Path
    process: subprocess.Popen[bytes]
    trace_file: Path  # Triton's per-request trace, off until turned on through its trace API

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def process_under(stack: Stack, matches: Callable[[list[bytes]], bool], what: str) -> int:
    """The pid of the process below ``stack``'s launcher whose argv ``matches``."""
    for pid in descendants(stack.process.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if matches(argv):
            return pid
    raise AssertionError(f"no {what} under pid {stack.process.pid}")


def model_process(stack: Stack, model: str) -> int:
    """The pid of the python-backend stub that runs ``model`` in ``stack``."""
    script = f"/{model}/1/model.py".encode()
    return process_under(
        stack,
        lambda argv: argv[0].endswith(b"triton_python_backend_stub") and argv[1].endswith(script),
        f"python stub for model {model!r}",
    )


def gateway_process(stack: Stack) -> int:
    """The pid of ``stack``'s gateway (``python -m pattern_tts gateway``)."""
    return process_under(stack, lambda argv: argv[1:4] == [b"-m", b"pattern_tts", b"gateway"], "gateway")


def idle_releases(stack: Stack, since: dt.datetime) -> list[dict[str, Any]]:
    """The kokoro model's idle-release log events (``release_memory_after_idle_s``) stamped after ``since``."""
    events = [json.loads(line) for line in stack.log_text().splitlines() if "released freed memory" in line]
    return [e for e in events if dt.datetime.fromisoformat(e["ts"]) > since]


def wait_for_idle_release(stack: Stack, since: dt.datetime, timeout_s: float) -> dict[str, Any]:
    """The kokoro model's first idle-release event stamped after ``since``, waited for up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = idle_releases(stack, since)
        if events:
            return events[0]
        time.sleep(0.2)
    raise AssertionError(f"the kokoro model logged no idle release within {timeout_s} s")


def assert_synthesised_in_full(result: dict[str, Any], text: str) -> None:
    """A ``/v1/audio/speech/timestamps`` result for ``text`` as pcm: every word of ``text`` in its
    timestamps, in order, monotone and inside the audio, and the audio as long as its duration."""
    spoken = " ".join(w["word"] for w in result["words"])
    assert re.findall(r"[A-Za-z]+", spoken) == re.findall(r"[A-Za-z]+", text)
    previous_end = 0.0
    for w in result["words"]:
        assert previous_end <= w["start"] <= w["end"] <= result["duration"]
        previous_end = w["end"]
    samples = len(base64.b64decode(result["audio"])) // 2  # 16-bit pcm
    assert abs(samples / 24000 - result["duration"]) < 0.05


def stack_env(cache_dir: Path, **settings: object) -> dict[str, str]:
    """The environment for a pattern-tts process under test: offline, its own cache dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATTERN_TTS_")}
    env.update(HF_HUB_OFFLINE="1", PATTERN_TTS_CACHE_DIR=str(cache_dir), PYTHONUNBUFFERED="1")
    # Eager unless a test asks: torch.compile's warm-up adds about 10 s to a Triton start with the tiny
    # model. The shared stack runs compiled, as the product does by default on CPU.
    env["PATTERN_TTS_COMPILE"] = "false"
    env.update({f"PATTERN_TTS_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def wait_for(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fail early (with the log's tail) if ``process`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            pytest.fail(f"process exited with {process.returncode} before {url} was up:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not ready after {timeout_s} s")


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """SIGTERM, then SIGKILL the whole process group if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def processes_under(path: Path) -> list[str]:
    """The command lines of running processes that name ``path`` (a test's own files): what a test
    leaves behind."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(path) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(cmdline)
    return found


def start_pattern_tts(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pattern_tts", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextmanager
def float64_default_dtype() -> Iterator[None]:
    """float64 as torch's default dtype inside the block (Kokoro makes float tensors with ``torch.zeros``
    inside its forward pass, so the model alone cannot be switched)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def serve_args(weights_dir: Path, gateway: int, http: int, grpc: int, metrics: int) -> list[str]:
    """``pattern-tts serve``'s arguments for ``weights_dir`` and the four ports (gateway, Triton's HTTP,
    gRPC and metrics)."""
    return [
        "serve",
        f"--weights={weights_dir}",
        f"--port={gateway}",
        f"--triton-http-port={http}",
        f"--triton-grpc-port={grpc}",
        f"--triton-metrics-port={metrics}",
    ]


@contextmanager
def serve_stack(weights_dir: Path, work: Path, **settings: object) -> Iterator[Stack]:
    """``pattern-tts serve`` on ``weights_dir``, ready; stopped (and its log checked) on exit."""
    gateway, http, grpc, metrics = free_ports(4)
    log_path, cache_dir = work / "serve.log", work / "cache"
    settings.setdefault("triton_trace_file", work / "triton-trace.json")
    process = start_pattern_tts(
        serve_args(weights_dir, gateway, http, grpc, metrics), stack_env(cache_dir, **settings), log_path
    )
    running = Stack(
        gateway_url=f"http://127.0.0.1:{gateway}",
        triton_http_url=f"127.0.0.1:{http}",
        triton_grpc_url=f"127.0.0.1:{grpc}",
        metrics_url=f"http://127.0.0.1:{metrics}/metrics",
        weights_dir=weights_dir,
        cache_dir=cache_dir,
        log_path=log_path,
        process=process,
        trace_file=Path(str(settings["triton_trace_file"])),
    )
    try:
        wait_for(f"{running.gateway_url}/ready", process, log_path, STARTUP_TIMEOUT_S)
        yield running
    finally:
        stop_process(process)
    log = running.log_text()
    assert process.returncode == 0, f"serve exited with {process.returncode}:\n{log[-3000:]}"
    assert "Traceback" not in log, f"a traceback was logged:\n{log[log.index('Traceback') - 500:][:4000]}"
    assert_structured(log)


def assert_structured(log: str) -> list[dict[str, Any]]:
    """Every line of a pattern-tts log is one JSON event (Triton's own output included), and
    nothing logged an error; the events."""
    events = []
    for line in log.splitlines():
        event = json.loads(line)
        assert isinstance(event, dict) and {"ts", "level", "logger", "msg"} <= set(event), line
        assert event["level"] not in ("error", "critical"), line
        events.append(event)
    return events


@pytest.fixture(scope="session")
def stack(tiny_weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``pattern-tts serve`` on the tiny model, shared by the tests of a session."""
    # A longer batching window than production makes batch formation in tests deterministic. Lead
    # pieces whatever the load: a request is then cut the same alone and among others, and tests
    # compare the two (the load rule itself: test_gateway_protocol.py).
    with serve_stack(
        tiny_weights_dir,
        tmp_path_factory.mktemp("stack"),
        compile="true",
        max_queue_delay_us=20000,
        max_input_chars=30000,
        lead_split_max_in_flight=1000,
    ) as running:
        yield running


@pytest.fixture(scope="session")
def packaged_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real Kokoro v1.0 weights converted from the packaged int8 model (the `weights` extra, which
    the README's test command installs); about a minute on 2 cores."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from pattern_tts.weights.prepare import prepare_weights

    return prepare_weights("packaged", tmp_path_factory.mktemp("weights") / "packaged", progress=False)
