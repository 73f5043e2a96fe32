"""Triton alone: direct kokoro calls (tritonclient) and perf_analyzer runs with corpus phonemes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.http as httpclient

from bench.triton_metrics import EXECUTIONS, REQUESTS, kokoro_counters

SAMPLE_RATE = 24_000


def _bytes(name: str, value: str) -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[value.encode("utf-8")]], dtype=np.object_))
    return tensor


def synthesize(client: httpclient.InferenceServerClient, phonemes: str, voice: str, seed: int = 0) -> float:
    """One kokoro inference, as the gateway sends it; returns seconds of audio."""
    seed_in = httpclient.InferInput("seed", [1, 1], "INT64")
    seed_in.set_data_from_numpy(np.array([[seed]], np.int64))
    result = client.infer(
        "kokoro",
        [_bytes("phonemes", phonemes), _bytes("voice", voice), seed_in],
        outputs=[httpclient.InferRequestedOutput("waveform", binary_data=True)],
    )
    return float(result.as_numpy("waveform").size) / SAMPLE_RATE


def timed(client: httpclient.InferenceServerClient, phonemes: str, voice: str) -> tuple[float, float]:
    """(latency seconds, audio seconds) of one direct call."""
    start = time.perf_counter()
    audio = synthesize(client, phonemes, voice)
    return time.perf_counter() - start, audio


def perf_analyzer_binary() -> Path | None:
    """``scripts/perf_analyzer.sh``: the tritonclient 2.51.0 wheel's ``perf_analyzer`` (installed next to
    the venv's python) with the libraries it links on its path."""
    if not (Path(sys.executable).parent / "perf_analyzer").is_file():
        return None
    return Path(__file__).resolve().parent.parent / "scripts" / "perf_analyzer.sh"


def write_input_data(path: Path, phonemes: list[str], voice: str) -> Path:
    """perf_analyzer ``--input-data`` JSON: one entry per phoneme chunk, all with ``voice``."""
    data = [{"phonemes": {"content": [p], "shape": [1]}, "voice": {"content": [voice], "shape": [1]}} for p in phonemes]
    path.write_text(json.dumps({"data": data}, ensure_ascii=False), encoding="utf-8")
    return path


def perf_analyzer(
    binary: Path,
    url: str,
    metrics_url: str,
    input_data: Path,
    concurrency: int,
    request_count: int,
    workdir: Path,
    timeout_s: float = 900,
) -> dict[str, Any]:
    """One perf_analyzer measurement of exactly ``request_count`` requests at ``concurrency``."""
    report = workdir / f"perf_c{concurrency}.csv"
    args = [
        str(binary),
        "-m",
        "kokoro",
        "-u",
        url,
        "-i",
        "http",
        "-b",
        "1",
        f"--input-data={input_data}",
        f"--concurrency-range={concurrency}",
        f"--request-count={request_count}",
        f"--max-threads={max(16, concurrency)}",
        "-f",
        str(report),
    ]
    before = kokoro_counters(metrics_url)
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    wall = time.perf_counter() - start
    after = kokoro_counters(metrics_url)
    out: dict[str, Any] = {
        "concurrency": concurrency,
        "requests": request_count,
        "rc": proc.returncode,
        "wall_s": round(wall, 2),
        "command": " ".join(args),
    }
    requests, executions = after[REQUESTS] - before[REQUESTS], after[EXECUTIONS] - before[EXECUTIONS]
    out["server_requests"] = requests
    out["server_executions"] = executions
    out["mean_batch"] = round(requests / executions, 2) if executions else None
    if proc.returncode != 0 or not report.is_file():
        out["error"] = (proc.stdout + proc.stderr)[-1500:]
        return out
    with report.open() as handle:
        row = next(csv.DictReader(handle))
    us = 1e-6
    out.update(
        infer_per_s=float(row["Inferences/Second"]),
        latency_p50_s=round(float(row["p50 latency"]) * us, 3),
        latency_p95_s=round(float(row["p95 latency"]) * us, 3),
        latency_p99_s=round(float(row["p99 latency"]) * us, 3),
        server_queue_s=round(float(row["Server Queue"]) * us, 3),
        server_compute_s=round(float(row["Server Compute Infer"]) * us, 3),
    )
    return out


class RequestTrace:
    """Triton's per-request trace timestamps while inside ``with``: when each kokoro request reached
    Triton and when its response had left, on the host's monotonic clock (``time.monotonic_ns``).

    Needs the server started with a trace file (pattern-tts ``PATTERN_TTS_TRITON_TRACE_FILE``);
    tracing is switched on and off through Triton's trace API.
    """

    # (start, end) timestamps of a request's time inside Triton, per protocol: from its arrival until
    # Triton starts sending the response. GRPC_SEND_END is stamped when gRPC's completion queue gets
    # round to it, often after the client already has the response: client latency minus that span
    # had a stdev of 4.5 ms, down to -12.7 ms, against 1.0 ms to GRPC_SEND_START (40 short calls,
    # AVX2-only EPYC). Over HTTP the two ends differ by under 0.1 ms.
    BOUNDS = (("HTTP_RECV_START", "HTTP_SEND_START"), ("GRPC_WAITREAD_END", "GRPC_SEND_START"))

    def __init__(self, http_url: str, trace_file: Path) -> None:
        self.setting_url = f"{http_url}/v2/trace/setting"
        self.trace_file = trace_file

    def _set(self, body: dict[str, Any]) -> None:
        reply = httpx.post(self.setting_url, json=body, timeout=5)
        if reply.status_code != 200:
            raise RuntimeError(f"Triton trace setting {body}: {reply.status_code} {reply.text}")

    def __enter__(self) -> RequestTrace:
        self._set({"trace_level": ["TIMESTAMPS"], "trace_rate": "1", "log_frequency": "1"})
        return self

    def __exit__(self, *exc: object) -> None:
        self._set({"trace_level": ["OFF"]})

    def spans(self, model: str = "kokoro") -> list[tuple[int, int]]:
        """(start ns, end ns) of each traced ``model`` request, in start order."""
        events: dict[int, dict[str, Any]] = {}
        for path in sorted(self.trace_file.parent.glob(self.trace_file.name + "*")):
            try:
                entries = json.loads(path.read_text() or "[]")
            except json.JSONDecodeError:  # a file Triton is still writing
                continue
            for entry in entries:
                record = events.setdefault(int(entry["id"]), {})
                if "model_name" in entry:
                    record["model_name"] = entry["model_name"]
                for stamp in entry.get("timestamps", []):
                    record[stamp["name"]] = int(stamp["ns"])
        out = []
        for record in events.values():
            if record.get("model_name") != model:
                continue
            for start, end in self.BOUNDS:
                if start in record and end in record:
                    out.append((record[start], record[end]))
        return sorted(out)

    def inside(self, window: tuple[int, int], timeout_s: float = 2.0) -> float:
        """Seconds Triton spent on the requests that reached it within ``window`` (monotonic ns),
        first arrival to last response; waits for their traces to be written."""
        first, last = self.span(window, timeout_s)
        return (last - first) / 1e9

    def span(self, window: tuple[int, int], timeout_s: float = 2.0) -> tuple[int, int]:
        """(first arrival, last response) in monotonic ns of the requests that reached Triton within
        ``window``; waits for their traces to be written."""
        deadline = time.monotonic() + timeout_s
        while True:
            spans = [(s, e) for s, e in self.spans() if window[0] <= s <= window[1]]
            if spans or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not spans:
            raise RuntimeError(f"no Triton trace of a kokoro request in {window} ({self.trace_file})")
        return min(s for s, _ in spans), max(e for _, e in spans)
