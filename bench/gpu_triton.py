"""Triton on a GPU: the kokoro model as KIND_GPU, dynamic batching on vs off, over Triton's HTTP API.

For a bare GPU machine: it needs a ``tritonserver`` with the python backend, torch with CUDA and
this repository; the client is the standard library only. For each mode it renders the kokoro model
of ``model_repository/`` (KIND_GPU; on: ``max_batch_size`` 16 with dynamic batching, off: 1 with no
queue delay, as ``bench.run`` does), starts tritonserver on free loopback ports, sends the corpus
workload of ``bench.gpu`` at each concurrency, prints audio seconds per wall second, latency
percentiles and, from Triton's metrics, the mean batch size and each request's milliseconds queued
and computing, and writes ``bench/results/gpu-triton-<date>.json`` (or ``--out``).

    python -m bench.gpu_triton --tritonserver PATH --backend-dir DIR [--weights DIR]

By default it runs the fast path as deployed (``compile=auto``: compiled bfloat16) and eager.

``--configs 1x16,2x16,2x32`` compares instance counts and max batch sizes (INSTANCESxMAX_BATCH, the
batching-on mode's ``max_batch_size``) in one run; ``--rounds 2`` runs them again in reverse order, so
that a drift of the machine over the run shows as a difference between rounds rather than between
configurations. All starts of one compile setting share one compile cache.

Without ``--weights`` it uses full-size random weights with realistic durations.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import shutil
import statistics
import string
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.gpu import workload
from bench.procs import free_ports
from bench.triton_metrics import EXECUTIONS, REQUESTS, kokoro_counters

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SAMPLE_RATE = 24000
QUEUE_DELAY_US = {"on": "3000", "off": "0"}


def parse_configs(text: str) -> list[tuple[int, int]]:
    """``"1x16,2x32"`` -> ``[(1, 16), (2, 32)]``: (kokoro instances, max batch size with batching on)."""
    configs = []
    for item in text.split(","):
        instances, _, max_batch = item.strip().partition("x")
        configs.append((int(instances), int(max_batch or 16)))
    return configs


def render_kokoro(dest: Path, weights: Path, mode: str, setup: tuple[int, int], args: argparse.Namespace) -> Path:
    """``model_repository/kokoro`` alone, its placeholders filled for ``args.kind``, ``mode`` and
    ``setup`` (instances, max batch size when batching is on)."""
    from pattern_tts.settings import Settings

    instances, max_batch = setup
    repository = dest / f"repository-{instances}x{max_batch}-{mode}"
    shutil.rmtree(repository, ignore_errors=True)  # a later round renders the same configuration again
    shutil.copytree(ROOT / "model_repository" / "kokoro", repository / "kokoro",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    config = repository / "kokoro" / "config.pbtxt"
    config.write_text(string.Template(config.read_text()).substitute(
        weights_dir=str(weights), instance_count=str(instances), instance_kind=f"KIND_{args.kind.upper()}",
        threads="0",
        batch_decoder="auto", compile=args.compile, precision=args.precision,
        compile_cache_dir=str(dest / "compile"), priority_levels="0",
        release_memory_after_idle_s=str(Settings.model_fields["release_memory_after_idle_s"].default),
        max_batch_size=str(max_batch if mode == "on" else 1), max_queue_delay_us=QUEUE_DELAY_US[mode],
    ))  # fmt: skip
    return repository


def infer(url: str, phonemes: str, voice: str) -> tuple[float, float]:
    """One kokoro call; (seconds it took, seconds of audio returned)."""
    body = json.dumps({
        "inputs": [
            {"name": "phonemes", "shape": [1, 1], "datatype": "BYTES", "data": [phonemes]},
            {"name": "voice", "shape": [1, 1], "datatype": "BYTES", "data": [voice]},
        ],
        "outputs": [{"name": "waveform", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    request = urllib.request.Request(f"{url}/v2/models/kokoro/infer", data=body,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            header_length = int(response.headers["Inference-Header-Content-Length"])
            payload = response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"kokoro answered HTTP {exc.code}: {exc.read()[:500]!r}") from None
    elapsed = time.perf_counter() - start
    return elapsed, (len(payload) - header_length) / 4 / SAMPLE_RATE


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"tritonserver exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v2/models/kokoro/ready", timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(1)
    raise RuntimeError(f"kokoro not ready after {timeout_s} s")


# Triton's per-model counters (cumulative): requests, executions (batches) and microseconds spent
COUNTERS = (REQUESTS, EXECUTIONS, "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
            "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us")  # fmt: skip


def server_side(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What Triton saw between two counter readings: mean batch size and per-request milliseconds
    queued and computing (the python backend's input, execute and output, shared by a batch)."""
    delta = {name: after[name] - before[name] for name in COUNTERS}
    requests, executions = delta[REQUESTS], delta[EXECUTIONS]
    if not requests or not executions:
        return {}
    compute_us = sum(delta[f"nv_inference_compute_{part}_duration_us"] for part in ("input", "infer", "output"))
    return {
        "mean_batch": round(requests / executions, 2),
        "queue_ms_per_request": round(delta["nv_inference_queue_duration_us"] / requests / 1000, 1),
        "compute_ms_per_request": round(compute_us / requests / 1000, 1),  # its whole batch's execution
    }


def load(url: str, metrics_url: str, items: list[str], voice: str, concurrency: int) -> dict[str, float]:
    """All ``items`` at ``concurrency`` requests in flight, and what Triton saw of them."""
    before = kokoro_counters(metrics_url, COUNTERS)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda p: infer(url, p, voice), items))
    wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    audio = sum(r[1] for r in results)
    return {
        "concurrency": concurrency,
        "requests": len(items),
        "audio_s": round(audio, 2),
        "wall_s": round(wall, 3),
        "audio_s_per_s": round(audio / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1),
        "p95_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
        **server_side(before, kokoro_counters(metrics_url, COUNTERS)),
    }


def run_mode(args: argparse.Namespace, work: Path, weights: Path, voice: str, mode: str,
             setup: tuple[int, int], round_: int) -> dict:  # fmt: skip
    repository = render_kokoro(work, weights, mode, setup, args)
    http, grpc, metrics = free_ports(3)
    log_path = work / f"triton-{setup[0]}x{setup[1]}-{mode}-round{round_}.log"
    command = [args.tritonserver, f"--model-repository={repository}", f"--backend-directory={args.backend_dir}",
               "--http-address=127.0.0.1", f"--http-port={http}", f"--grpc-port={grpc}",
               f"--metrics-port={metrics}", "--strict-readiness=true", "--exit-on-error=true",
               "--backend-config=python,shm-default-byte-size=16777216",
               "--backend-config=python,shm-growth-byte-size=16777216",
               f"--log-verbose={args.log_verbose}"]  # fmt: skip
    url = f"http://127.0.0.1:{http}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready_s = wait_ready(url, process, args.startup_timeout)
        items = workload(args.items)
        infer(url, items[0], voice)  # first call: CUDA context and allocator warm-up
        rows = [load(url, f"http://127.0.0.1:{metrics}/metrics", items, voice, c) for c in args.concurrency]
    finally:
        process.terminate()
        try:
            process.wait(45)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    loaded = [line for line in log_path.read_text(errors="replace").splitlines() if "kokoro: loaded on" in line]
    return {"mode": mode, "ready_s": round(ready_s, 1), "model_log": loaded[-1] if loaded else "", "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tritonserver", default=shutil.which("tritonserver") or "tritonserver")
    parser.add_argument("--backend-dir", default="/opt/tritonserver/backends")
    parser.add_argument("--weights", type=Path, help="weights directory (default: full-size random)")
    parser.add_argument("--kind", default="gpu", choices=["gpu", "cpu"], help="instance kind (cpu: a smoke test)")
    parser.add_argument("--voice", default=None)
    parser.add_argument("--configs", type=parse_configs, default=[(1, 16)],
                        help="comma list of INSTANCESxMAX_BATCH: kokoro instances (instance_group count) and"
                             " max_batch_size with batching on; one run each")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1, help="run the configs this many times, alternating order")
    parser.add_argument("--items", type=int, default=64, help="requests per concurrency level")
    parser.add_argument("--concurrency", type=lambda s: [int(c) for c in s.split(",")], default=[1, 4, 16])
    parser.add_argument("--compile", default="auto,false", help="comma list of the compile setting: one run each")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--modes", default="on,off")
    parser.add_argument("--log-verbose", type=int, default=0, help="tritonserver's --log-verbose")
    parser.add_argument("--startup-timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default=None, help="a sentence kept in the results (how and where it ran)")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="gpu-triton-"))
    weights, kind = args.weights, "given"
    if weights is None:
        from pattern_tts.synthesis.random_weights import write_random_kokoro

        weights = write_random_kokoro(work / "weights", size="full")
        kind = "random full-size, realistic durations"
    voice = args.voice or sorted(p.stem for p in (weights / "voices").glob("*.pt"))[0]
    results: dict[str, Any] = {"date": dt.date.today().isoformat(), "device": device_name(args.kind), "runs": []}
    if args.note:
        results["note"] = args.note
    out = args.out or RESULTS / f"gpu-triton-{results['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    compiles = args.compile.split(",")
    for round_ in range(1, args.rounds + 1):
        configs = args.configs if round_ % 2 else args.configs[::-1]
        for compile_ in compiles:
            args.compile = compile_
            # Each compile setting renders its repositories, keeps its compile cache and writes its logs in a
            # directory of its own.
            variant_dir = work / f"compile-{compile_}"
            for instances, max_batch in configs:
                run = {
                    "weights_kind": kind,
                    "kind": args.kind,
                    "compile": compile_,
                    "precision": args.precision,
                    "instances": instances,
                    "max_batch": max_batch,
                    "round": round_,
                    "modes": [run_mode(args, variant_dir, weights, voice, mode, (instances, max_batch), round_)
                              for mode in args.modes.split(",")],
                }  # fmt: skip
                results["runs"].append(run)
                print_run(run)
                out.write_text(json.dumps(results, indent=1) + "\n")  # after each run: a cut-off run keeps its rows
    print(f"wrote {out}")


def device_name(kind: str) -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if kind == "gpu" and torch.cuda.is_available() else "CPU"
    return f"{gpu}, KIND_{kind.upper()}"


def print_run(run: dict) -> None:
    print(f"\nkokoro on Triton, {run['instances']} x KIND_{run['kind'].upper()}, max batch"
          f" {run['max_batch']}, round {run['round']} ({run['weights_kind']};"
          f" compile={run['compile']}, precision={run['precision']})", flush=True)  # fmt: skip
    print(f"{'batching':>8} {'conc':>4} {'audio s/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'batch':>6} "
          f"{'queue ms':>8} {'compute ms':>10}")  # fmt: skip
    for mode in run["modes"]:
        for row in mode["rows"]:
            print(f"{mode['mode']:>8} {row['concurrency']:>4} {row['audio_s_per_s']:>9} "
                  f"{row['p50_ms']:>8} {row['p95_ms']:>8} {row.get('mean_batch', ''):>6} "
                  f"{row.get('queue_ms_per_request', ''):>8} {row.get('compute_ms_per_request', ''):>10}")  # fmt: skip
    by_mode = {m["mode"]: {r["concurrency"]: r["audio_s_per_s"] for r in m["rows"]} for m in run["modes"]}
    if {"on", "off"} <= by_mode.keys():
        gains = {c: round(by_mode["on"][c] / by_mode["off"][c], 2) for c in by_mode["on"] if c in by_mode["off"]}
        run["batching_gain"] = gains
        print("batching on/off:", ", ".join(f"c={c} {g}x" for c, g in gains.items()))


if __name__ == "__main__":
    main()
