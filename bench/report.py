"""Turn a results dict into targets (PASS/MISS), Markdown tables, a PNG plot and BENCHMARKS.md."""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.workload import Plan

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
COMMAND = ".venv/bin/python -m bench.run"
FULL = Plan(quick=False)  # what a full run measures
TOP_LEVEL = FULL.levels[-1]
# "never slower" is checked with this much measurement noise allowed (2 cores, a handful of requests).
NOISE = 0.05
# Issue 6's fidelity guard: the fast path against float32 eager on the same input.
FIDELITY_MIN_SNR_DB = 25.0
FIDELITY_MAX_WER_RISE = 2.0  # ASR word error rate, percentage points

INTRO = f"""# Benchmarks

**Run everything:** `{COMMAND}` (20 to 30 minutes on 2 quiet cores; `--quick`: fewer requests,
concurrency 1 and 4 only). Re-render this file from a results file: `.venv/bin/python -m bench.report
bench/results/<date>.json`. It writes `bench/results/<date>.json` and `.png` and rewrites this file. Needs the `bench`
packages (`psutil`, `matplotlib`, `nvidia-cuda-runtime-cu12` for perf_analyzer's `libcudart.so.12`,
`tritonclient==2.51.0` for the `perf_analyzer` binary) and Debian's `libb64-0d`. Timed phases hold
`/tmp/pattern-tts-bench.lock` (flock) so that benchmarks sharing the machine do not overlap.

What runs, in one process, on the same machine, one system at a time:

- **baseline**: the serialized design of the most used Kokoro server (`bench/baseline_server.py`): one
  stock eager fp32 `kokoro.KModel`, every request behind one lock, Kokoro's own `KPipeline` chunking,
  served over HTTP with the same `/v1/audio/speech` body; streams audio segment by segment.
- **peer**: onnxruntime on the packaged int8 Kokoro v1.0 ONNX model (what kokoro-onnx servers run), one
  request at a time, timed in-process (no HTTP, so slightly flattered).
- **stack**: `python -m pattern_tts serve` (Triton 2.51 python backend + gateway) through the gateway,
  with dynamic batching **on** (defaults) and **off** (`PATTERN_TTS_MAX_BATCH_SIZE=1`,
  `PATTERN_TTS_MAX_QUEUE_DELAY_US=0`).
- **Triton alone**: direct `tritonclient` calls at concurrency 1, and `perf_analyzer` (from the
  `tritonclient` 2.51.0 wheel) with corpus phonemes as `--input-data` at each concurrency, exactly N
  requests per level (`--request-count`).
- **batching on vs off, alternating** (`bench/batching_ab.py`): both stacks up at once, measured back
  to back at each perf_analyzer concurrency with a closed loop of tritonclient calls, the first of each
  pair alternating, {FULL.ab_rounds} rounds. The on and off phases above run minutes apart and their
  ratio carries the machine's drift; the "never slower" target is judged on this one.
- **fidelity guard** (`bench/weights_intelligibility.py`, real weights only): the fast path the stack
  serves on this machine against float32 eager `KModel` on 10 sentences, same seed: waveform SNR and
  pocketsphinx's word error rate (the two fidelity targets), the peer's word error rate beside them.

Text: `bench/corpus/` (public-domain English paragraphs, sentences of 3 to 80 words, and a 100-word
request). Full mode: concurrency 1 = {FULL.c1_sentences} sentences spread over 3 to {FULL.c1_max_words}
words (these are also perf_analyzer's input data and the direct Triton calls); concurrency
{TOP_LEVEL} = {FULL.level_requests[TOP_LEVEL]} one-sentence requests of 3 to 74 words, short and long
interleaved, closed loop; perf_analyzer at {", ".join(map(str, FULL.perf_levels))} with
2 x max(concurrency, {FULL.c1_sentences}) requests per level; gateway overhead from
{FULL.overhead_pairs} pairs of the shortest sentences (gateway vs tritonclient, each minus that
request's time inside Triton from its per-request trace). If the stack cannot start with its compiled
fast path, it is measured with `PATTERN_TTS_COMPILE=false` and the start-up error is shown below. All
HTTP responses are streamed `pcm` (the 100-word non-streamed figure is a `wav` response read to the
end; the 100-word request is sent {FULL.request_100_repeats} times each way, one after another, and
the median reported).
RTF = sum of request latencies / seconds of audio at concurrency 1 (lower is better). Stall = seconds
a player that starts at a response's first byte waits for audio. Peak RSS is the
sampled peak of the sum over the whole process tree (launcher, tritonserver, python stubs, gateway).
"""


def _get(d: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def shown(path: Path) -> Path:
    """``path`` as BENCHMARKS.md names it: relative to the repository when inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def latest_results(results_dir: Path, pattern: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest results file matching ``pattern`` (their names sort by date) and its contents."""
    runs = sorted(results_dir.glob(pattern))
    return (runs[-1], json.loads(runs[-1].read_text())) if runs else None


def all_results(results_dir: Path, pattern: str, part: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every results file matching ``pattern`` with its contents (or their ``part``), newest first by the
    ``date`` they record: a machine's suffix (``-avx2``) breaks the order of their names. Runs of one
    day keep their names' order."""
    runs = []
    for path in sorted(results_dir.glob(pattern)):
        data = json.loads(path.read_text())
        runs.append((path, data[part] if part else data))
    return sorted(runs, key=lambda run: run[1]["date"], reverse=True)


def top_level(results: dict[str, Any]) -> str | None:
    levels = _get(results, "stack_on", "levels") or _get(results, "baseline", "levels") or {}
    return max(levels, key=int) if levels else None


def _status(value: float | None, limit: float, smaller_is_better: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "N/A"
    ok = value <= limit if smaller_is_better else value >= limit
    return "PASS" if ok else "MISS"


def batching_ratios(results: dict[str, Any]) -> list[tuple[str, float]]:
    """(where, on/off throughput) for every perf level and gateway level measured both ways."""
    out = []
    on_perf = {p["concurrency"]: p for p in _get(results, "stack_on", "perf") or [] if "infer_per_s" in p}
    for p in _get(results, "stack_off", "perf") or []:
        c = p.get("concurrency")
        if c in on_perf and p.get("infer_per_s"):
            out.append((f"perf_analyzer c={c}", on_perf[c]["infer_per_s"] / p["infer_per_s"]))
    on_gw = _get(results, "stack_on", "levels") or {}
    for c, lv in (_get(results, "stack_off", "levels") or {}).items():
        if c in on_gw and lv.get("audio_s_per_wall_s"):
            out.append((f"gateway c={c}", on_gw[c]["audio_s_per_wall_s"] / lv["audio_s_per_wall_s"]))
    return out


def batching_target(results: dict[str, Any]) -> tuple[Any, str, str, str]:
    """(this stack, baseline, status, note) of "batching on never slower than off".

    Judged on the two stacks measured in alternation (``batching_ab``) when the run has them: the
    worst per-concurrency median of the rounds' on/off ratios. Older runs have only the stacks'
    phases, minutes apart, whose ratio also carries the machine's drift.
    """
    sequential = batching_ratios(results)
    apart = "; ".join(f"{w}: {r:.2f}x" for w, r in sequential)
    summary = _get(results, "batching_ab", "summary")
    if summary:
        c, worst = min(((c, row["median"]) for c, row in summary.items()), key=lambda x: x[1])
        medians = ", ".join(f"c={c} {row['median']:.2f}x" for c, row in summary.items())
        rounds = len(next(iter(summary.values()))["ratios"])
        note = f"both stacks up, alternating, median of {rounds} rounds: {medians}"
        if apart:
            note += f". Phases minutes apart (tables below, drift included): {apart}"
        return f"worst c={c}: {worst:.2f}x", "n/a", _status(worst, 1 - NOISE, smaller_is_better=False), note
    if not sequential:
        return None, "n/a", "N/A", ""
    where, worst = min(sequential, key=lambda r: r[1])
    status = _status(worst, 1 - NOISE, smaller_is_better=False)
    return f"worst {where}: {worst:.2f}x", "n/a", status, f"{apart} (on and off run minutes apart)"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 6's targets, each with this stack's figure, the baseline's, and PASS/MISS."""
    on, base = results.get("stack_on") or {}, results.get("baseline") or {}
    top = top_level(results)
    quick = results.get("mode") == "quick"
    top_note = f" (measured at c={top}{', quick mode' if quick else ''})" if top and top != "16" else ""
    rows: list[dict[str, Any]] = []

    def add(name: str, limit: str, stack: Any, baseline: Any, status: str, note: str = "") -> None:
        rows.append(_row(name, limit, stack, baseline, status, note))

    rtf = _get(on, "levels", "1", "rtf")
    add(
        "RTF at concurrency 1",
        "<= 0.12",
        rtf,
        _get(base, "levels", "1", "rtf"),
        _status(rtf, 0.12),
        f"Triton alone: {_get(on, 'direct', 'rtf')}; peer (int8 onnxruntime): "
        f"{_get(results, 'peer', 'levels', '1', 'rtf')}",
    )
    full = _get(on, "request_100_words", "non_streamed_s")
    add(
        "100-word request, non-streamed",
        "<= 5 s",
        full,
        _get(base, "request_100_words", "non_streamed_s"),
        _status(full, 5.0),
        f"peer: {_get(results, 'peer', 'request_100_words', 'non_streamed_s')} s",
    )
    ttfb = _get(on, "request_100_words", "streamed_ttfb_s")
    add(
        "100-word request, streamed: first audio byte",
        "<= 0.5 s",
        ttfb,
        _get(base, "request_100_words", "streamed_ttfb_s"),
        _status(ttfb, 0.5),
    )
    if top:
        thr = _get(on, "levels", top, "audio_s_per_wall_s")
        base_thr = _get(base, "levels", top, "audio_s_per_wall_s")
        ratio = round(thr / base_thr, 2) if thr and base_thr else None
        add(
            f"Throughput at c=16, mixed lengths, vs baseline{top_note}",
            ">= 2.5x",
            f"{thr} audio s/s ({ratio}x)",
            f"{base_thr} audio s/s",
            _status(ratio, 2.5, smaller_is_better=False),
        )
        p95 = _get(on, "levels", top, "latency_p95_s")
        add(
            f"p95 latency of a one-sentence request at c=16{top_note}",
            "<= 3 s",
            p95,
            _get(base, "levels", top, "latency_p95_s"),
            _status(p95, 3.0),
        )
    failed = sum(_get(results, k, "failed") or 0 for k in ("stack_on", "stack_off"))
    add(
        "Failed requests (stack, all runs)",
        "0",
        failed,
        _get(base, "failed"),
        "PASS" if failed == 0 else "MISS",
    )
    add("Dynamic batching on never slower than off", f"on/off >= {1 - NOISE:.2f} everywhere", *batching_target(results))
    rss = max((_get(results, k, "rss", "peak_total_mib") or 0 for k in ("stack_on", "stack_off")), default=0)
    add(
        "Peak RSS of the whole stack",
        "<= 2048 MiB",
        rss or None,
        _get(base, "rss", "peak_total_mib"),
        _status(rss or None, 2048),
        "sum of RSS over the process tree (shared pages counted per process)",
    )
    ovh = _get(on, "overhead", "overhead_p50_ms")
    method = _get(on, "overhead", "method") or ""
    add(
        "Gateway overhead, p50 per request",
        "<= 5 ms",
        ovh,
        "n/a (no separate gateway)",
        _status(ovh, 5.0),
        "same phonemes (pcm) through the gateway vs tritonclient"
        + (", each on one kept-alive connection" if "kept-alive" in method else "")
        + "; each request's time in Triton "
        + ("(its trace)" if method.startswith("triton trace") else "(model statistics)")
        + " subtracted"
        if _get(on, "overhead", "gateway_outside_triton_p50_ms") is not None
        else "raw latency differences (older method, noisy on a busy machine)"
        if ovh is not None
        else "not measured in this run",
    )
    if "fidelity" in results:
        rows.extend(fidelity_targets(results["fidelity"]))
    return rows


def fidelity_targets(fidelity: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 6's fidelity guard as two target rows: the fast path's waveform SNR against float32 eager
    (the baseline's model) on the same input, and its rise in ASR word error rate over it."""
    names = ("Fast path vs float32 eager: waveform SNR, worst sentence", "Fast path: ASR word error rate rise")
    limits = (f">= {FIDELITY_MIN_SNR_DB:g} dB", f"<= {FIDELITY_MAX_WER_RISE:g} points")
    guard = fidelity.get("fast_path")
    if guard is None:
        why = fidelity.get("skipped") or fidelity.get("error") or "not measured"
        return [_row(name, limit, None, None, "N/A", why) for name, limit in zip(names, limits, strict=True)]
    wer = fidelity["wer_percent"]
    snrs = guard["snr_db"]
    apart = sum(x is None for x in snrs)
    snr_status = "MISS" if apart else _status(guard["snr_db_min"], FIDELITY_MIN_SNR_DB, smaller_is_better=False)
    rise = round(wer["fast_path"] - wer["converted"], 2)
    calibration = f"; espeak-ng (the ASR's calibration): {wer['espeak_ng']} %" if "espeak_ng" in wer else ""
    return [
        _row(names[0], limits[0], guard["snr_db_min"], "n/a (the reference)", snr_status,
             f"{len(snrs)} sentences, voice {fidelity['voice']}; the fast path as served: {guard['engine']}"
             + (f"; {apart} not comparable sample by sample (a duration rounded the other way)" if apart else "")),
        _row(names[1], limits[1], f"{wer['fast_path']} % ({rise:+g})", f"{wer['converted']} % (float32 eager)",
             _status(rise, FIDELITY_MAX_WER_RISE),
             f"pocketsphinx over the same {fidelity['sentences']} sentences; peer (int8 onnxruntime): "
             f"{wer['onnxruntime']} %{calibration}"),
    ]  # fmt: skip


def _row(name: str, limit: str, stack: Any, baseline: Any, status: str, note: str = "") -> dict[str, Any]:
    return {"target": name, "limit": limit, "stack": stack, "baseline": baseline, "status": status, "note": note}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def perf_audio_per_entry(results: dict[str, Any]) -> float | None:
    """Mean seconds of audio per perf_analyzer input entry (direct Triton calls on the same chunks)."""
    audio = _get(results, "stack_on", "direct", "audio_s")
    entries = len(_get(results, "workload", "perf_entries_chars") or [])
    return audio / entries if audio and entries else None


def level_rows(results: dict[str, Any]) -> list[list[Any]]:
    systems = [
        ("baseline (serialized, HTTP)", "baseline"),
        ("peer: onnxruntime int8 (in-process)", "peer"),
        ("stack via gateway, batching on", "stack_on"),
        ("stack via gateway, batching off", "stack_off"),
    ]
    rows = []
    for label, key in systems:
        for c, lv in sorted((_get(results, key, "levels") or {}).items(), key=lambda kv: int(kv[0])):
            rows.append(
                [
                    label,
                    c,
                    lv["requests"],
                    lv["audio_s_per_wall_s"],
                    lv["rtf"] if c == "1" else None,
                    lv["latency_p50_s"],
                    lv["latency_p95_s"],
                    lv["latency_p99_s"],
                    lv["ttfb_p50_s"],
                    lv.get("stall_p95_s"),  # results before the stall figure have none
                    lv["failed"],
                ]
            )
    direct = _get(results, "stack_on", "direct")
    if direct:
        rows.append(
            [
                "Triton alone (tritonclient)",
                "1",
                direct["requests"],
                direct["audio_s_per_wall_s"],
                direct["rtf"],
                direct["latency_p50_s"],
                direct["latency_p95_s"],
                direct["latency_p99_s"],
                None,
                None,
                direct["failed"],
            ]
        )
    return rows


def perf_rows(results: dict[str, Any]) -> list[list[Any]]:
    per_entry = perf_audio_per_entry(results)
    rows = []
    for key, label in (("stack_on", "on"), ("stack_off", "off")):
        for p in _get(results, key, "perf") or []:
            ips = p.get("infer_per_s")
            rows.append(
                [
                    label,
                    p.get("concurrency"),
                    p.get("requests"),
                    ips,
                    round(ips * per_entry, 2) if ips and per_entry else None,
                    p.get("latency_p50_s"),
                    p.get("latency_p95_s"),
                    p.get("latency_p99_s"),
                    p.get("mean_batch"),
                    "ok" if not p.get("rc") else f"rc {p.get('rc')}",
                ]
            )
    return rows


def markdown(results: dict[str, Any], json_path: Path, png_path: Path | None) -> str:
    """The results section of BENCHMARKS.md."""
    m = results.get("machine", {})
    git = results.get("git", {})
    parts = [INTRO, f"## Latest run: {results['date']} ({results['mode']} mode)\n"]
    parts.append(
        f"- Weights: **{results['weights']['kind']}**; voice `{results['voice']}`\n"
        f"- Machine: {m.get('cpus')} CPUs ({m.get('cpu_model')}), CPU quota {m.get('cpu_quota')}, "
        f"{m.get('memory_gib')} GiB, AVX-512 BF16 {m.get('avx512_bf16')}, AMX {m.get('amx_bf16')}; no GPU\n"
        f"- Code: commit `{git.get('commit')}`{' + uncommitted changes' if git.get('dirty') else ''}; "
        f"run took {results.get('elapsed_s')} s\n"
        f"- Raw results: `{shown(json_path)}`\n"
    )
    loads = {
        k: _get(results, k, "machine_load", "foreign_share") for k in ("baseline", "peer", "stack_on", "stack_off")
    }
    loads = {k: v for k, v in loads.items() if v is not None}
    if loads:
        busy = {k: v for k, v in loads.items() if v > 0.1}
        parts.append(
            "- Other load during each phase (CPU share of processes outside the benchmark): "
            + ", ".join(f"{k} {v:.0%}" for k, v in loads.items())
            + (" - **the machine was shared during this run; absolute figures are pessimistic**" if busy else "")
            + "\n"
        )
    for key in ("baseline", "peer", "stack_on", "stack_off"):
        sec = results.get(key) or {}
        for what in ("startup_error", "error"):
            if sec.get(what):
                text = sec[what]
                cut = text.find("failed to load '")
                reason = text[:500] if cut < 0 or "Failed to initialize" in text[:600] else text[cut : cut + 500]
                parts.append(f"- **{key}: {what.replace('_', ' ')}**: `{' '.join(reason.split())}`\n")
        if sec.get("engine"):
            parts.append(f"- {key} kokoro model: `{sec['engine'][-1]}`\n")
    engines = [_get(results, k, "engine") for k in ("stack_on", "stack_off")]
    if all(engines):
        flags = [re.sub(r"loaded on .*? s, warmed up in .*? s ", "", e[-1]) for e in engines]  # type: ignore[index]
        if flags[0] != flags[1]:
            parts.append(
                "- **Batching on and off ran different kokoro engines** (see the lines above): the on/off "
                "comparison of this run is confounded.\n"
            )
    parts.append("### Targets (issue 6), baseline in the same run\n")
    parts.append(
        _table(
            ["target", "limit", "this stack", "baseline", "status", "note"],
            [
                [t["target"], t["limit"], t["stack"], t["baseline"], f"**{t['status']}**", t["note"]]
                for t in results.get("targets", [])
            ],
        )
    )
    parts.append("\n### End to end, by concurrency\n")
    parts.append(
        _table(
            [
                "system",
                "conc.",
                "requests",
                "audio s / wall s",
                "RTF",
                "p50 s",
                "p95 s",
                "p99 s",
                "first byte p50 s",
                "stall p95 s",
                "failed",
            ],
            level_rows(results),
        )
    )
    parts.append("\n### Triton alone: perf_analyzer, dynamic batching on vs off\n")
    parts.append(
        "Audio s / wall s is estimated as inferences/s x mean audio per input entry (measured by the "
        "direct calls on the same phonemes). Mean batch = requests / executions from Triton's metrics.\n"
    )
    parts.append(
        _table(
            [
                "batching",
                "conc.",
                "requests",
                "infer/s",
                "audio s / wall s (est.)",
                "p50 s",
                "p95 s",
                "p99 s",
                "mean batch",
                "result",
            ],
            perf_rows(results),
        )
    )
    parts.append("\n" + batching_ab_markdown(results.get("batching_ab"), "###").rstrip())
    parts.append("\n### 100-word request, concurrency 1\n")
    rows = []
    for label, key in (("baseline", "baseline"), ("peer (in-process)", "peer"), ("stack", "stack_on")):
        r = _get(results, key, "request_100_words")
        if r:
            samples = " / ".join(
                ", ".join(map(str, r[k])) for k in ("non_streamed_samples_s", "streamed_ttfb_samples_s") if k in r
            )
            rows.append([label, r.get("non_streamed_s"), r.get("streamed_ttfb_s"), r.get("audio_s"), samples or "-"])
    header = ["system", "non-streamed s", "streamed first byte s", "audio s", "samples: non-streamed / first byte"]
    parts.append(_table(header, rows))
    parts.append("\n### Memory, startup, overhead\n")
    rows = []
    for label, key in (
        ("baseline", "baseline"),
        ("stack, batching on", "stack_on"),
        ("stack, batching off", "stack_off"),
    ):
        sec = results.get(key) or {}
        roles = _get(sec, "rss", "peak_by_role_mib") or {}
        at_peak = _get(sec, "rss", "at_peak_by_role_mib")  # runs before fb84f4f did not record it
        phase = _get(sec, "rss", "peak_phase")  # runs before 2026-11-27 did not record it
        rows.append(
            [
                label,
                _get(sec, "rss", "peak_total_mib"),
                phase,
                ", ".join(f"{k} {v}" for k, v in at_peak.items()) if at_peak else "-",
                ", ".join(f"{k} {v}" for k, v in roles.items()),
                sec.get("startup_s"),
                sec.get("warmup_latency_s"),
            ]
        )
    parts.append(
        _table(["system", "peak RSS MiB", "peak during", "at that peak, by process MiB", "each process's own peak MiB",
                "startup s", "first request s"], rows)  # fmt: skip
    )
    ovh = _get(results, "stack_on", "overhead")
    if ovh:
        if "gateway_outside_triton_p50_ms" in ovh:
            detail = (
                f"time outside Triton p50: gateway {ovh['gateway_outside_triton_p50_ms']} ms, tritonclient "
                f"{ovh['direct_outside_triton_p50_ms']} ms; raw latency difference p50 "
                f"{ovh['raw_latency_diff_p50_ms']} ms"
            )
            edges = ovh.get("before_after_triton_p50_ms")
            if edges:
                detail += (
                    f"; before Triton / after it p50: gateway {edges['gateway'][0]} / {edges['gateway'][1]} ms,"
                    f" tritonclient {edges['direct'][0]} / {edges['direct'][1]} ms"
                )
        else:
            detail = (
                f"raw latency differences, gateway p50 {ovh.get('gateway_p50_s')} s vs direct "
                f"{ovh.get('direct_p50_s')} s: too noisy on a busy machine (newer runs subtract Triton's time)"
            )
        parts.append(
            f"\nGateway overhead: {ovh['pairs']} pairs of the shortest sentences as phonemes "
            f"(`input_type: phonemes`, pcm) through the gateway and as the same kokoro call direct: "
            f"**{ovh['overhead_p50_ms']} ms** p50 ({detail}; per pair {ovh['diffs_ms']} ms).\n"
        )
    if png_path is not None:
        parts.append(f"\n![throughput and latency by concurrency]({shown(png_path)})\n")
    peer = results.get("peer") or {}
    if "skipped" in peer:
        parts.append(f"\nPeer skipped: {peer['skipped']}.\n")
    parts.append("\nNo GPU was measured in this run (none on this machine).\n")
    return "\n".join(parts)


def plot(results: dict[str, Any], path: Path) -> Path | None:
    """Audio seconds per wall second and p95 latency against concurrency, one line per system."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    per_entry = perf_audio_per_entry(results)
    lines: list[tuple[str, list[int], list[float], list[float]]] = []
    for key, label in (
        ("baseline", "baseline (serialized)"),
        ("stack_on", "stack, batching on"),
        ("stack_off", "stack, batching off"),
        ("peer", "peer int8 ORT (c=1)"),
    ):
        levels = sorted((_get(results, key, "levels") or {}).items(), key=lambda kv: int(kv[0]))
        if levels:
            lines.append(
                (
                    label,
                    [int(c) for c, _ in levels],
                    [lv["audio_s_per_wall_s"] for _, lv in levels],
                    [lv["latency_p95_s"] for _, lv in levels],
                )
            )
    for key, label in (("stack_on", "Triton alone, on"), ("stack_off", "Triton alone, off")):
        perf = [p for p in _get(results, key, "perf") or [] if p.get("infer_per_s")]
        if perf and per_entry:
            lines.append(
                (
                    label,
                    [p["concurrency"] for p in perf],
                    [p["infer_per_s"] * per_entry for p in perf],
                    [p["latency_p95_s"] for p in perf],
                )
            )
    for label, xs, thr, p95 in lines:
        style = "--" if "Triton" in label else "-"
        ax1.plot(xs, thr, style, marker="o", label=label)
        ax2.plot(xs, p95, style, marker="o", label=label)
    for ax, title in ((ax1, "audio seconds per wall second"), (ax2, "p95 latency (s)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    ax2.set_yscale("log")
    ax1.legend(fontsize=8)
    fig.suptitle(
        f"pattern-tts vs serialized Kokoro, {results.get('machine', {}).get('cpus')} CPUs, "
        f"{results['weights']['kind'].split(':')[0]} weights ({results['mode']})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


GPU_DECODERS = {
    "batched": "each batch in one padded pass (`batch_decoder=auto` does this on a GPU)",
    "grouped": "each batch in passes over groups of similar length (less padding, more passes)",
    "per-item": "the text side batched, the iSTFTNet decoder one item at a time (the CPU default)",
}


def gpu_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The GPU section: every ``bench/gpu.py`` run (the model in-process, per batch size), newest first."""
    runs = sorted(results_dir.glob("gpu-[0-9]*.json"), reverse=True)
    if not runs:
        return "## GPU\n\nNo GPU run yet: `python -m bench.gpu` on a GPU writes `bench/results/gpu-<date>.json`.\n"
    return "\n".join(_gpu_run_markdown(path, json.loads(path.read_text())) for path in runs)


def _gpu_run_markdown(path: Path, data: dict[str, Any]) -> str:
    """One ``bench/gpu.py`` run: a table per variant, decoder and batch size."""
    base = {r["variant"]: r["audio_s_per_s"] for r in data["rows"] if r["batch"] == 1 and r["decoder"] == "batched"}
    fidelity = "snr_db_median" in data["rows"][0]
    rows = [
        [r["variant"], r["decoder"], r["batch"], r["audio_s_per_s"], f"{r['audio_s_per_s'] / base[r['variant']]:.2f}x",
         r["ms_per_batch"], r["peak_gib"]]
        + ([r["snr_db_median"], r["snr_db_min"], r["same_length"]] if fidelity else [])
        for r in data["rows"]
    ]  # fmt: skip
    headers = ["variant", "decoder", "batch", "audio s / s", "vs batch 1", "ms / batch", "peak GiB"]
    if fidelity:
        headers += ["SNR dB, median", "SNR dB, worst", "same length"]
    decoders = dict.fromkeys(r["decoder"] for r in data["rows"])
    legend = "; ".join(f"{d}: {GPU_DECODERS[d]}" for d in decoders)
    reference = data["rows"][0]
    fidelity_text = (
        f" SNR: each item's waveform against {reference['variant']}, {reference['decoder']}, batch"
        f" {reference['batch']} (the first row), over the common length; same length: items whose audio is as long"
        " as there."
        if fidelity
        else ""
    )
    return (
        f"## GPU: the batching gain ({data['device']}, {data['date']})\n\n"
        f"`python -m bench.gpu` (`bench/gpu.py`): the kokoro model's work in-process (`KokoroEngine.synthesize`,"
        f" outputs copied back to the CPU), {data['items']} corpus requests of {data['phonemes_per_item']['min']} to"
        f" {data['phonemes_per_item']['max']} phonemes, short and long interleaved, cut into batches of each size;"
        f" torch {data['torch']}, {data['weights_kind']} weights. Through Triton: the GPU-through-Triton section."
        f" Raw results: `{shown(path)}`" + (f". {data['note']}" if "note" in data else "") + ".\n\n"
        + _table(headers, rows)
        + f"\n\nDecoders: {legend}.{fidelity_text}\n"
    )


def _gpu_variant(run: dict[str, Any]) -> str:
    """A ``bench/gpu_triton.py`` run's variant: compiled or eager (both bf16)."""
    return "compiled bf16" if run["compile"] != "false" else "eager bf16"


def gpu_triton_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/gpu_triton.py`` results: the kokoro model as KIND_GPU in tritonserver."""
    runs = sorted(results_dir.glob("gpu-triton-*.json"))
    if not runs:
        return "## GPU through Triton\n\nNo run yet: `python -m bench.gpu_triton` on a GPU machine.\n"
    data = json.loads(runs[-1].read_text())
    server = "mean_batch" in data["runs"][0]["modes"][0]["rows"][0]  # Triton's counters, where recorded
    rows = []
    for run in data["runs"]:
        variant = _gpu_variant(run)
        by_mode = {m["mode"]: {r["concurrency"]: r for r in m["rows"]} for m in run["modes"]}
        for c, on in by_mode["on"].items():
            off = by_mode["off"][c]
            gain = f"{on['audio_s_per_s'] / off['audio_s_per_s']:.2f}x"
            rows.append([variant, c, on["audio_s_per_s"], off["audio_s_per_s"], gain, on["p50_ms"], off["p50_ms"]]
                        + ([on["mean_batch"], on["queue_ms_per_request"], on["compute_ms_per_request"]] if server
                           else []))  # fmt: skip
    first = data["runs"][0]
    earlier = [
        f"`{shown(path)}`: "
        + "; ".join(
            f"{_gpu_variant(run)} "
            + ", ".join(f"c={c} {gain}x" for c, gain in run.get("batching_gain", {}).items())
            for run in json.loads(path.read_text())["runs"]
        )
        for path in runs[:-1]
    ]
    spread = (
        "\nThe same command on other runs (on / off; they move between runs): "
        + " | ".join(earlier)
        + ".\n"
        if earlier
        else ""
    )
    return (
        f"## GPU through Triton: dynamic batching on vs off ({data['device']}, {data['date']})\n\n"
        f"`python -m bench.gpu_triton` (`bench/gpu_triton.py`): the kokoro model alone in tritonserver as KIND_GPU,"
        f" {first['weights_kind']} weights, {first['modes'][0]['rows'][0]['requests']} corpus requests per level"
        " over Triton's HTTP API. On: max batch 16 with dynamic batching; off: max batch 1."
        f" Raw results: `{shown(runs[-1])}`.\n\n"
        + _table(["variant", "concurrency", "on: audio s / s", "off: audio s / s", "on / off", "on: p50 ms",
                  "off: p50 ms"] + (["on: mean batch", "on: queue ms", "on: batch compute ms"] if server else []),
                 rows)  # fmt: skip
        + "\n"
        + (
            "\nFrom Triton's counters over each level: mean batch = requests / executions; queue ms = each"
            " request's wait in Triton's queue; batch compute ms = the execution each request was in (input,"
            " execute, output).\n"
            if server
            else ""
        )
        + spread
        + gpu_instances_markdown(results_dir)
    )


def gpu_instances_markdown(results_dir: Path) -> str:
    """The latest ``bench/gpu_triton.py --configs`` comparison (``gpu-instances-<date>.json``): kokoro
    instances and max batch sizes, each configuration's rows in the order they ran."""
    latest = latest_results(results_dir, "gpu-instances-*.json")
    if latest is None:
        return ""
    path, data = latest
    # Files written before runs recorded their max batch and round ran max batch 16, once.
    runs = sorted(({"max_batch": 16, "round": 1, **run} for run in data["runs"]),
                  key=lambda run: (run["instances"], run["max_batch"], run["round"]))  # fmt: skip
    rows = [
        [run["instances"], run["max_batch"], run["round"], r["concurrency"], r["audio_s_per_s"],
         r["p50_ms"], r["p95_ms"], r["mean_batch"], r["queue_ms_per_request"], r["compute_ms_per_request"]]
        for run in runs
        for r in run["modes"][0]["rows"]
    ]  # fmt: skip
    return (
        f"\n### Instances of the kokoro model on one GPU ({data['date']})\n\n"
        f"Raw results: `{shown(path)}`. {data['note']}.\n\n"
        + _table(["instances", "max batch", "round", "concurrency", "audio s / s", "p50 ms", "p95 ms", "mean batch",
                  "queue ms", "batch compute ms"], rows)  # fmt: skip
        + "\n\nWith one instance, a closed loop of clients falls into a few batches that take turns (the mean batch"
        " stays well below the max batch): the requests of a batch come back together and queue together behind"
        " the next one."
        " A second instance runs while the first one's responses travel, so the GPU idles less."
        " A max batch above the mean batch that the load forms changes nothing.\n"
    )


def allocator_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/allocator.py`` results: the kokoro process's memory per allocator setting."""
    latest = latest_results(results_dir, "allocator-*.json")
    if latest is None:
        return "## Memory per allocator\n\nNo run yet: `.venv/bin/python -m bench.allocator`.\n"
    path, data = latest
    rows = [
        [name, row["idle_mib"], " / ".join(str(r["peak_mib"]) for r in row["rounds"]),
         " / ".join(str(r["seconds"]) for r in row["rounds"]),
         " / ".join(map(str, row["rest_after_mib"])) if "rest_after_mib" in row else "-"]
        for name, row in data["allocators"].items()
    ]  # fmt: skip
    lengths = next(iter(data["allocators"].values()))["lengths"]
    return (
        f"## Memory of the kokoro process per C allocator setting ({data['date']})\n\n"
        f"`.venv/bin/python -m bench.allocator` (`bench/allocator.py`): the engine set up as the kokoro model sets"
        f" itself up on CPU, then the corpus's {len(lengths)} longest sentences ({min(lengths)}-{max(lengths)}"
        f" phonemes) as one batch, per round; {data['weights']}. Raw results: `{shown(path)}`."
        + (f" {data['note']}" if "note" in data else "")
        + "\n\n"
        + _table(["setting", "idle MiB", "peak MiB per round", "seconds per round", "MiB 3 s after"], rows)
        + "\n"
    )


def fidelity_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """Every ``bench/weights_intelligibility.py`` run (``bench.run``'s fidelity phase), newest first:
    issue 6's fidelity guard on each machine measured."""
    runs = all_results(results_dir, "weights-intelligibility-*.json", part="summary")
    runs = [(path, summary) for path, summary in runs if "fast_path" in summary]  # the first runs had no guard
    if not runs:
        return "## Fidelity guard\n\nNo run yet: `.venv/bin/python -m bench.weights_intelligibility`.\n"
    rows = []
    for path, summary in runs:
        wer, guard = summary["wer_percent"], summary["fast_path"]
        snrs = [x for x in guard["snr_db"] if x is not None]
        rows.append(
            [summary["date"][:10], _cpu_words(summary.get("machine")), guard["engine"],
             f"{guard['snr_db_min']} / {statistics.median(snrs):.1f}",
             wer["converted"], wer["fast_path"], wer["onnxruntime"], wer.get("espeak_ng", "-"),
             "PASS" if guard["pass"] else "MISS", f"`{shown(path)}`"]
        )  # fmt: skip
    latest = runs[0][1]
    return (
        "## Fidelity guard: the fast path against float32 eager\n\n"
        "`.venv/bin/python -m bench.weights_intelligibility` (`bench/weights_intelligibility.py`; `bench.run` runs"
        f" it as its fidelity phase): {latest['sentences']} English sentences phonemized for American English and"
        f" spoken with voice {latest['voice']} (the packaged model's voices are Japanese) by float32 eager `KModel`"
        " (the baseline's model) and by the fast path the kokoro model serves on that machine, same seed;"
        " onnxruntime on the packaged int8 file (the peer) beside them. Waveform SNR of the fast path against"
        f" float32 eager, and word error rates over the paragraph by {latest['asr']}. The guard: SNR >="
        f" {FIDELITY_MIN_SNR_DB:g} dB on every sentence, and a word error rate at most {FIDELITY_MAX_WER_RISE:g}"
        " points above float32 eager. pocketsphinx is a weak recogniser (espeak-ng's formant English voice, its"
        " calibration, scores worse still): its rates compare systems on the same sentences, not absolute"
        " quality.\n\n"
        + _table(["date", "CPU", "fast path", "SNR dB worst / median", "WER % float32 eager", "WER % fast path",
                  "WER % peer (int8)", "WER % espeak-ng", "guard", "raw results"], rows)  # fmt: skip
        + "\n"
    )


def _cpu_words(machine: dict[str, Any] | None) -> str:
    """A recorded ``machine``'s CPU and its bfloat16 extensions, which pick the fast path's precision:
    "AMD EPYC (avx512_bf16)", "AMD EPYC (no AVX-512 BF16 or AMX)"; "not recorded" without one."""
    if not machine:
        return "not recorded"
    extensions = [name for name in ("avx512_bf16", "amx_bf16") if machine.get(name)]
    return f"{machine['cpu_model']} ({', '.join(extensions) or 'no AVX-512 BF16 or AMX'})"


def _machine_words(data: dict[str, Any]) -> str:
    """A results file's ``machine`` in words ("AMD EPYC, 2 CPUs"); "an unrecorded machine" without one."""
    m = data.get("machine")
    return f"{m['cpu_model']}, {m['cpu_quota']} CPUs" if m else "an unrecorded machine"


def kokoro_imports_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/kokoro_imports.py`` results: what the kokoro process's imports hold."""
    latest = latest_results(results_dir, "kokoro-imports-*.json")
    if latest is None:
        return "## The kokoro process's imports\n\nNo run yet: `.venv/bin/python -m bench.kokoro_imports`.\n"
    path, data = latest
    rows = [
        [name, row["import_mib"], int(row["modules"]), "yes" if row["spacy_mapped"] else "no"]
        for name, row in data["summary"].items()
    ]
    return (
        f"## The kokoro process's imports: KModel without Kokoro's text pipeline ({data['date']})\n\n"
        "`.venv/bin/python -m bench.kokoro_imports` (`bench/kokoro_imports.py`): the resident memory that importing"
        " the engine adds after `import torch`, in fresh interpreters, the two variants alternating, median of"
        f" {data['rounds']}, on {_machine_words(data)}. Before, the engine imported Kokoro's package, whose"
        " `__init__` also imports `KPipeline` (misaki, spaCy, phonemizer); the kokoro model never reads text."
        f" Raw results: `{shown(path)}`.\n\n"
        + _table(["variant", "MiB", "modules", "spaCy mapped"], rows)
        + "\n"
    )


def idle_release_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/idle_release.py`` results: what handing memory back when idle costs the next request."""
    latest = latest_results(results_dir, "idle-release-*.json")
    if latest is None:
        return "## Handing memory back when idle\n\nNo run yet: `.venv/bin/python -m bench.idle_release`.\n"
    path, data = latest
    rows = [
        [f"{probe} ({data['probes'][probe]} phonemes)", mode, row["seconds"],
         " / ".join(str(r["seconds"]) for r in data["runs"] if r["probe"] == probe and r["mode"] == mode),
         int(row["minor_faults"]), row["system_s"], int(row["released_mib"])]
        for probe, modes in data["summary"].items()
        for mode, row in modes.items()
    ]  # fmt: skip
    return (
        f"## Handing memory back when idle: the next request's cost ({data['date']})\n\n"
        "`.venv/bin/python -m bench.idle_release` (`bench/idle_release.py`): one process set up as the kokoro model"
        f" sets itself up on CPU ({data['allocator']}), {data['weights']}, on {_machine_words(data)}."
        f" Idle at {data['idle_mib']} MiB, after a burst of the 4 longest sentences at {data['burst_mib']} MiB."
        " Before each timed sentence the longest"
        f" ({data['refill_phonemes']} phonemes) runs again, then the freed pages are kept or handed back"
        " (`release_freed_memory`, what `PATTERN_TTS_RELEASE_MEMORY_AFTER_IDLE_S` does), the order alternating by"
        " round. Medians over the rounds; page faults and system (kernel) seconds are the timed sentence's"
        f" own. Raw results: `{shown(path)}`." + (f" {data['note']}" if "note" in data else "") + "\n\n"
        + _table(["sentence", "pages", "seconds", "seconds per round", "page faults", "system s",
                  "MiB handed back"], rows)  # fmt: skip
        + "\n"
    )


def release_above_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/release_above.py`` results: handing freed memory back between items."""
    latest = latest_results(results_dir, "release-above-*.json")
    if latest is None:
        return "## Handing memory back between items\n\nNo run yet: `.venv/bin/python -m bench.release_above`.\n"
    path, data = latest
    rows = [
        [mode, row["seconds"], " / ".join(str(r["seconds"]) for r in data["runs"] if r["mode"] == mode),
         row["peak_mib"], row["releases"]]
        for mode, row in data["summary"].items()
    ]  # fmt: skip
    return (
        f"## Handing memory back between items ({data['date']})\n\n"
        "`.venv/bin/python -m bench.release_above` (`bench/release_above.py`): one process set up as the kokoro"
        f" model sets itself up on CPU ({data['allocator']}, idle at {data['idle_mib']} MiB), {data['weights']},"
        f" on {_machine_words(data)}. {len(data['phonemes'])} corpus sentences, short and long in turn"
        f" ({min(data['phonemes'])}-{max(data['phonemes'])} phonemes), in batches of 4; per round each mode from"
        " a process that has just handed its freed memory back, the order alternating by round: never while"
        " working, after each item while RSS is above `PATTERN_TTS_RELEASE_MEMORY_ABOVE_MIB`'s default, after"
        " every item. Seconds: median of the rounds; peak: the highest RSS sampled every 10 ms; releases per"
        f" round. Raw results: `{shown(path)}`." + (f" {data['note']}" if "note" in data else "") + "\n\n"
        + _table(["mode", "seconds", "seconds per round", "peak MiB", "releases"], rows)
        + "\n"
    )


def long_input_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/long_input.py`` results: long inputs' first byte, short requests beside them."""
    latest = latest_results(results_dir, "long-input-*.json")
    if latest is None:
        return "## Long inputs\n\nNo run yet: `.venv/bin/python -m bench.long_input`.\n"
    path, data = latest
    chars = data["chars"]
    beside = "beside_s" in data
    rows = [
        [label, *(f"{row[f'first_byte_s_{n}']:.2f}" for n in chars), f"{row['short_g2p_s']:.3f}",
         " / ".join(f"{r['short_g2p_s']:.3f}" for r in data["rounds"][label]),
         *([f"{row['short_first_byte_s']:.2f}", row["long_audio_s"], f"{row['hundred_words_first_byte_s']:.2f}",
            f"{row['hundred_words_end_s']:.2f}"] if beside else [])]
        for label, row in data["summary"].items()
    ]  # fmt: skip
    g2p = ", ".join(f"{int(n):,} characters {s} s" for n, s in data["in_process_g2p_s"].items())
    settings = "; ".join(
        f"`{label}`: " + (", ".join(f"`{k}={v}`" for k, v in env.items()) or "the defaults")
        for label, env in data["variants"].items()
    )
    beside_words = (
        f" Beside a stream: a {data['beside_chars']:,}-character streamed request read for {data['beside_s']:g} s,"
        f" and {data['beside_after_s']:g} s into it a one-sentence streamed request: its first byte, and the"
        " seconds of audio the long stream delivered in that time (it comes in whole chunks, up to about 30 s"
        " each). 100 words: the benchmark's 100-word request alone, streamed."
        if beside
        else ""
    )
    return (
        f"## Long inputs: G2P in blocks, chunks in flight ({data['date']})\n\n"
        "`.venv/bin/python -m bench.long_input` (`bench/long_input.py`): stacks up at once, measured in turn,"
        f" the order alternating, the median of {len(next(iter(data['rounds'].values())))} rounds; {settings};"
        f" {data['weights']}, on"
        f" {_machine_words(data)}. First byte: a streamed pcm request of the corpus paragraphs repeated to that"
        f" many characters, then closed. Short G2P: a one-sentence `/v1/audio/phonemize` sent {data['delay_s']} s"
        f" after the longest request, which it shares the g2p model with.{beside_words} The whole text's G2P in"
        f" one process: {g2p}. Raw results: `{shown(path)}`.\n\n"
        + _table(["stack", *(f"first byte s, {n:,} characters" for n in chars), "short G2P s",
                  "short G2P s per round",
                  *(["beside a stream: first byte s", "stream audio s", "100 words: first byte s",
                     "100 words: end s"] if beside else [])], rows)  # fmt: skip
        + "\n"
    )


def chunk_limit_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/chunk_limit.py`` results: phonemes per chunk, speed and audio."""
    latest = latest_results(results_dir, "chunk-limit-*.json")
    if latest is None:
        return "## Phonemes per chunk\n\nNo run yet: `.venv/bin/python -m bench.chunk_limit`.\n"
    path, data = latest
    rows = [
        [limit, s["chunks"], s["synth_s"], s["audio_s"], s["synth_s_per_audio_s"]]
        for limit, s in data["summary"].items()
    ]
    per_frame = ", ".join(f"{n}: {ms}" for n, ms in data["decoder_ms_per_frame"].items())
    joins = data.get("join_pauses")
    pauses = (
        f"\n\nWhere two chunks of one paragraph meet, Kokoro leaves a pause of {joins['untrimmed_ms']} ms (below"
        f" -60 dBFS); trimmed as the gateway trims it (`trim_silence`), {joins['trimmed_ms']} ms. Kokoro's own"
        f" pauses over 150 ms inside those chunks: {joins['inside_chunks_ms']} ms."
        if joins
        else ""
    )
    return (
        f"## Phonemes per chunk: Kokoro's 510 or shorter ({data['date']})\n\n"
        "`.venv/bin/python -m bench.chunk_limit` (`bench/chunk_limit.py`), in process, one item at a time. The"
        f" decoder's ms per frame by item length (frames: ms) is {per_frame}: long items cost a little more per"
        " frame. But the benchmark's long texts (words: "
        f"{', '.join(map(str, data['words']))}) cut into shorter chunks take as long to synthesise and give more"
        " audio for the same words (Kokoro reads a short input more slowly), so the chunks stay at 510 phonemes;"
        f" {data['rounds']} rounds, limits in alternating order; {data['weights']}. Raw results:"
        f" `{shown(path)}`.{pauses}\n\n"
        + _table(["phonemes per chunk, at most", "chunks", "synthesis s", "audio s", "synthesis s per audio s"], rows)
        + "\n"
    )


def stream_pieces_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """Every ``bench/stream_pieces.py`` run, newest first: what cutting a stream's first chunk costs on
    each machine measured (whether a player stalls depends on the machine's speed)."""
    runs = all_results(results_dir, "stream-pieces-*.json")
    if not runs:
        return "## Streamed pieces\n\nNo run yet: `.venv/bin/python -m bench.stream_pieces`.\n"
    tables = []
    for path, data in runs:
        rows = [
            [rule, s["pieces"], s["audio_s"], f"{s['vs_whole']}x", s["synth_s"], s["first_audio_s_mean"],
             s["first_audio_s_max"], s["stall_s"], s.get("pause_ms_median"), s.get("untrimmed_pause_ms_median")]
            for rule, s in data["summary"].items()
        ]  # fmt: skip
        tables.append(
            f"{data['date']}, on {_machine_words(data)}, {data['threads']} threads; {data['weights']}. Raw results:"
            f" `{shown(path)}`.\n\n"
            + _table(["rule", "pieces", "audio s", "vs whole", "synthesis s", "first audio s (mean)",
                      "first audio s (max)", "stall s", "pause ms", "pause ms, untrimmed"], rows)  # fmt: skip
        )
    return (
        f"## Streamed pieces: what cutting the first chunk costs ({runs[0][1]['date']})\n\n"
        "`.venv/bin/python -m bench.stream_pieces` (`bench/stream_pieces.py`): the 100-word request and the 16"
        " concurrency-16 sentences, their first chunk whole, cut by `split_lead` (the gateway's rule), and cut"
        " by rules tried and not kept; each piece synthesised alone in-process, one after another, and trimmed"
        " where it meets another piece as the gateway trims it (`trim_silence`); first audio = the first"
        " piece's synthesis; stall = a player's waits when it starts at the first piece; pause = milliseconds"
        " below -60 dBFS where two pieces meet, median, trimmed and untrimmed. Kokoro reads a piece alone more"
        " slowly than inside a longer input, so cut pieces give more audio than the whole chunk. A player does"
        " not stall while each piece takes no longer to synthesise than the audio before it plays: growth <="
        " 1 / (synthesis s per audio s). The gateway's growth was 3 until 2026-11-28: earlier runs' `split_lead`"
        " is that rule. Each run, newest first:\n\n"
        + "\n\n".join(tables)
        + "\n"
    )


def scheduling_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/scheduling.py`` results: streams under load by batch size and queue order."""
    latest = latest_results(results_dir, "scheduling-*.json")
    if latest is None:
        return "## Streams under load\n\nNo run yet: `.venv/bin/python -m bench.scheduling`.\n"
    path, data = latest
    keys = ("ttfb_p50_s", "ttfb_p95_s", "stall_p50_s", "stall_p95_s", "latency_p50_s", "latency_p95_s",
            "audio_s_per_wall_s", "failed")  # fmt: skip
    rows = [
        [label, c, *(round(row[k], 3) for k in keys)]
        for label, levels in data["summary"].items()
        for c, row in levels.items()
    ]
    requests = ", ".join(f"c={c}: {n}" for c, n in data["levels"].items())
    return (
        f"## Streams under load: batch size and queue order ({data['date']})\n\n"
        "`.venv/bin/python -m bench.scheduling` (`bench/scheduling.py`): the stack through the gateway,"
        f" mixed one-sentence requests as streamed pcm in a closed loop ({requests} requests), each variant"
        f" started {len(next(iter(data['rounds'].values())))} times in turn; medians over the starts. FIFO ="
        " first come, first served (the default); priority = `PATTERN_TTS_STREAM_PRIORITY=true`. Stall ="
        f" seconds a player that starts at the first byte waits for audio; {data['weights']}."
        f" Raw results: `{shown(path)}`.\n\n"
        + _table(["stack", "conc.", "first byte p50 s", "first byte p95 s", "stall p50 s", "stall p95 s",
                  "latency p50 s", "latency p95 s", "audio s / wall s", "failed"], rows)  # fmt: skip
        + "\n"
    )


def batching_ab_markdown(data: dict[str, Any] | None = None, level: str = "##") -> str:
    """Batching on vs off, the two stacks alternating: ``data`` (a run's ``batching_ab`` phase), else
    the latest ``bench/batching_ab.py`` results file."""
    title = f"{level} Batching on vs off, the two stacks alternating"
    source = "Measured in this run by `bench/batching_ab.py`"
    judged = 'The "never slower" target is judged here.'
    if not data:
        latest = latest_results(ROOT / "bench" / "results", "batching-ab-*.json")
        if latest is None:
            return f"{title}\n\nNo run yet: `.venv/bin/python -m bench.batching_ab`.\n"
        path, data = latest
        source = (
            f"Not measured in this run: `.venv/bin/python -m bench.batching_ab` on {data['date']}"
            f" (`{shown(path)}`)"
        )
        judged = "The targets table above does not use it."
    rows = []
    for c, row in data["summary"].items():
        pairs = [p for p in data["pairs"] if str(p["concurrency"]) == c]
        on = statistics.median(p["on"]["audio_s_per_wall_s"] for p in pairs)
        off = statistics.median(p["off"]["audio_s_per_wall_s"] for p in pairs)
        rows.append([c, pairs[0]["requests"], on, off, " / ".join(f"{x:.2f}" for x in row["ratios"]),
                     f"{row['median']:.2f}x"])  # fmt: skip
    return (
        f"{title}\n\n"
        f"{source}: both stacks up at once (on: defaults; off: max batch 1, no"
        " queue delay), measured back to back at each concurrency, the first of each pair alternating,"
        f" {len(next(iter(data['summary'].values()))['ratios'])} rounds; a closed loop of tritonclient calls on"
        f" perf_analyzer's input data ({data['entries']} phoneme chunks), timed to the millisecond. The"
        " tables above measure on and off minutes apart, so their ratio also carries the machine's drift."
        f" {judged}\n\n"
        + _table(["conc.", "requests", "on: audio s / s (median)", "off: audio s / s (median)",
                  "on/off per round", "on/off median"], rows)  # fmt: skip
        + "\n"
    )


def lead_split_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/lead_split.py`` results: lead pieces always, or only while the model is idle."""
    latest = latest_results(results_dir, "lead-split-*.json")
    if latest is None:
        return "## Lead pieces under load\n\nNo run yet: `.venv/bin/python -m bench.lead_split`.\n"
    path, data = latest
    rows = [
        [name, m["audio_s_per_wall_s"], m["latency_p50_s"], m["latency_p95_s"], m["ttfb_p50_s"], m["stall_p95_s"],
         m["failed"], " / ".join(str(r["audio_s_per_wall_s"]) for r in data["rounds"] if r["variant"] == name),
         " / ".join(map(str, data["request_100_words"][name]["ttfb_s"])),
         data.get("peak_rss_mib", {}).get(name, "-")]
        for name, m in data["summary"].items()
    ]  # fmt: skip
    rounds = len(data["rounds"]) // len(data["summary"])
    return (
        f"## Lead pieces under load ({data['date']})\n\n"
        f"`python -m bench.lead_split` (`bench/lead_split.py`): two stacks up at once, the same code and weights"
        f" ({data['weights']}), measured in alternation, {rounds} rounds of the suite's {data['concurrency']}"
        " one-sentence requests at once (streamed pcm), then the 100-word request streamed on each. \"pieces"
        " always\" cuts every request's first chunk into growing pieces (`PATTERN_TTS_LEAD_SPLIT_MAX_IN_FLIGHT"
        "=1000`); the default cuts only while no other kokoro call is in flight. Each piece is synthesised with"
        f" Kokoro's silences at both ends, then trimmed. Raw results: `{shown(path)}`.\n\n"
        + _table(["variant", "audio s / s (median)", "p50 s", "p95 s", "first byte p50 s", "stall p95 s", "failed",
                  "audio s / s per round", "100 words, first byte s", "peak RSS MiB"], rows)  # fmt: skip
        + "\n"
    )


def int8_convs_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/int8_convs.py`` results: int8 resblock convolutions, speed and fidelity."""
    latest = latest_results(results_dir, "int8-convs-*.json")
    if latest is None:
        return "## int8 convolutions\n\nNo run yet: `.venv/bin/python -m bench.int8_convs`.\n"
    path, data = latest
    return (
        f"## int8 convolutions on CPU: faster, but not faithful ({data['date']})\n\n"
        f"`python -m bench.int8_convs` (`bench/int8_convs.py`), {data['threads']} threads, torch {data['torch']}."
        f" Raw results: `{shown(path)}`. One resblock convolution (128 channels x 48721 frames, kernel 11,"
        " dilation 5):\n\n"
        + _table(["kernel", "ms"], [[r["kernel"], r["ms"]] for r in data["speed"]])
        + f"\n\nWaveform SNR against eager float32 with every resblock convolution rounded to int8 (simulated in"
        f" float32), {data['weights']} weights, items of {data['phonemes']} phonemes; the fast path's guard is"
        " 25 dB:\n\n"
        + _table(["rounded to int8", "SNR dB per item", "same length"],
                 [[r["quantised"], " / ".join(map(str, r["snr_db"])), r["same_length"]] for r in data["fidelity"]])
        + "\n\nAn int8 convolution takes one activation scale per tensor, and that loses the audio. Per time"
        " step the rounding would pass, but a convolution's output mixes time steps, and no int8 convolution kernel"
        " takes such scales. The fast path stays in bfloat16.\n"
    )  # fmt: skip


def windows_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/windows.py`` results: one reading decoded in windows, tried and not kept."""
    latest = latest_results(results_dir, "windows-*.json")
    if latest is None:
        return "## Windowed decoding\n\nNo run yet: `.venv/bin/python -m bench.windows`.\n"
    path, data = latest
    summary = data["summary"]
    rows = [
        [name.replace("fast_vs_eager", "fast path vs float32 eager"), s["snr_db"], s["log_mel_db"],
         s.get("max_step_over_whole", "-"), s.get("decode_s_vs_whole", "-")]
        for name, s in summary.items()
        if name != "word error rate %"
    ]  # fmt: skip
    wer = summary.get("word error rate %")
    asr = (
        f" Word error rate (%) of pocketsphinx's transcripts against the text over all {len(data['rows'])} readings,"
        f" noise seeds {wer['seeds']}: whole decode {wer['whole']}, windows {wer['windows']}, the same words as"
        f" pieces read alone (`split_lead`, the gateway's rule) {wer['pieces']}. The ASR is weak on this voice"
        + ("; the windows scored worst with every seed." if wer and all(
            w > max(a, b) for w, a, b in zip(wer["windows"], wer["whole"], wer["pieces"], strict=True)) else ".")
        if wer
        else ""
    )
    return (
        f"## Windowed decoding: tried, not kept ({data['date']})\n\n"
        "`.venv/bin/python -m bench.windows` (`bench/windows.py`): the rest of a stream's first chunk read once"
        " (its text side) and decoded window by window between words, against the whole decode of the same"
        " reading, in process; the fast path against float32 eager on the same readings for scale. SNR and"
        " log-mel distance (mean |dB| over speech frames) against the whole decode; step at a cut over the"
        f" largest step of the whole decode within 5 ms; {data['weights']}. Raw results: `{shown(path)}`."
        f"{asr} The decoder's instance norms take their statistics over each window, which changes the audio"
        " more than the fast path does; the gateway keeps reading each piece alone.\n\n"
        + _table(["variant", "SNR dB", "log-mel dB", "max step at a cut / near it", "decode s vs whole"], rows)
        + "\n"
    )


def variant_table(data: dict[str, Any], ratio_key: str, ratio_heading: str) -> str:
    """The rows ``bench.side_by_side.variant_rows`` wrote into ``data`` as a table: median RTF, its ratio to
    the baseline variant (``ratio_key``), first call, and SNR and durations against the reference."""
    rows = [
        [r["variant"], r["rtf_median"], f"{r[ratio_key]}x", r["first_call_s"], " / ".join(map(str, r["snr_db"])),
         f"{r['same_durations']}/{data['items']}"]
        for r in data["rows"]
    ]  # fmt: skip
    return _table(["variant", "RTF", ratio_heading, "first call s", "SNR dB per item", "same durations"], rows)


def fp32_path_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/fp32_path.py`` results: the float32 path's layout and compile, side by side."""
    latest = latest_results(results_dir, "fp32-path-*.json")
    if latest is None:
        return "## The float32 path on CPU\n\nNo run yet: `.venv/bin/python -m bench.fp32_path`.\n"
    path, data = latest
    fastest = min(data["rows"], key=lambda r: r["rtf_median"])["variant"]
    avx512 = "with" if data["cpu_features"].get("avx512f") else "without"
    conv = data["conv_ms"]
    return (
        f"## The float32 path on CPU: layout and compile ({data['date']})\n\n"
        "`.venv/bin/python -m bench.fp32_path` (`bench/fp32_path.py`): CPUs without AVX-512 BF16 or AMX serve"
        f" float32 (`PATTERN_TTS_PRECISION=auto`). {data['cpu']} ({avx512} AVX-512), {data['threads']} threads,"
        f" torch {data['torch']}, {data['weights']}. The concurrency-1 sentences of `bench.run` ({data['items']}"
        f" items, {data['audio_s']} s of audio), one item at a time, {data['rounds']} rounds in alternating order;"
        " RTF is the median over rounds, SNR and durations are against eager channels-first, first call includes"
        f" compiling. One resblock convolution (128 channels, kernel 11, dilation 5, 24,000 frames):"
        f" channels first {conv['channels first']} ms, time-major {conv['time-major']} ms."
        f" Raw results: `{shown(path)}`. Fastest here: **{fastest}**.\n\n"
        + variant_table(data, "vs_reference", "vs eager channels first")
        + "\n"
    )  # fmt: skip


# The history table's columns: (heading, the target row whose figures it shows).
FULL_RUN_COLUMNS = [
    ("RTF c=1", "RTF at concurrency 1"),
    ("100 words s", "100-word request, non-streamed"),
    ("first byte s", "100-word request, streamed: first audio byte"),
    ("c=16 throughput", "Throughput at c=16, mixed lengths, vs baseline"),
    ("c=16 p95 s", "p95 latency of a one-sentence request at c=16"),
    ("peak RSS MiB", "Peak RSS of the whole stack"),
    ("gateway overhead ms", "Gateway overhead, p50 per request"),
]


def full_runs_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """Every full ``bench.run`` in ``results_dir``, newest first, with its targets' figures: how the stack
    moved from commit to commit on each machine (the latest run's own section shows one machine only)."""
    runs = all_results(results_dir, "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*.json")
    rows = []
    for path, data in runs:
        if data.get("mode") != "full":
            continue
        by_name = {row["target"]: row for row in targets(data)}
        cells = [data["date"][:16], _get(data, "git", "commit") or "-", _cpu_words(data.get("machine"))]
        for _, name in FULL_RUN_COLUMNS:
            row = by_name.get(name)
            if row is None:
                cells.append("-")
            elif isinstance(row["stack"], str) or isinstance(row["baseline"], str):  # a ratio, or no baseline
                cells.append(_fmt(row["stack"]))
            else:
                cells.append(f"{_fmt(row['stack'])} ({_fmt(row['baseline'])})")
        met = sum(row["status"] == "PASS" for row in by_name.values())
        cells += [f"{met} of {len(by_name)}", f"`{shown(path)}`"]
        rows.append(cells)
    return (
        "## Every full run: this stack (the baseline in the same run)\n\n"
        "Each full `bench.run` kept in `bench/results/`, newest first, with the figures of its targets table;"
        " compare a run with its own baseline, since the same machine's speed drifts from day to day.\n\n"
        + _table(["date", "commit", "CPU", *(heading for heading, _ in FULL_RUN_COLUMNS), "targets met",
                  "raw results"], rows)
        + "\n"
    )  # fmt: skip


def spectral_convs_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """The latest ``bench/spectral_convs.py`` results: frequency-domain resblock convolutions against oneDNN's."""
    latest = latest_results(results_dir, "spectral-convs-*.json")
    if latest is None:
        return "## Spectral resblock convolutions\n\nNo run yet: `.venv/bin/python -m bench.spectral_convs`.\n"
    path, data = latest
    served = data["spectral_min_kernel"]
    convs = [
        [f"{c['channels']} x {c['frames']:,}", c["kernel"], c["dilation"], c["onednn_ms"], c["spectral_ms"],
         f"{c['speedup']}x", f"{c['relative_error']:.0e}", "yes" if c["kernel"] >= served else "no"]
        for c in data["convs"]
    ]  # fmt: skip
    avx512 = "with" if data["cpu_features"].get("avx512f") else "without"
    return (
        f"## Spectral resblock convolutions on the float32 CPU path ({data['date']})\n\n"
        "`.venv/bin/python -m bench.spectral_convs` (`bench/spectral_convs.py`;"
        " `pattern_tts/synthesis/spectral_conv.py`): the generator's resblock convolutions as block DFTs"
        " (overlap-save, dilations as phases, every step a float32 matrix product), against oneDNN's direct"
        f" convolutions. {data['cpu']} ({avx512} AVX-512), {data['threads']} threads, torch {data['torch']},"
        f" {data['weights']}. Raw results: `{shown(path)}`.\n\n"
        "Each convolution shape of a 5 s item, time-major, median of 5 calls; relative error against oneDNN's"
        f" output. Kernels of {served} taps or more run spectral"
        " (`PATTERN_TTS_SPECTRAL_CONVS=auto`: on CPU in float32):\n\n"
        + _table(["channels x frames", "kernel", "dilation", "oneDNN ms", "spectral ms", "speedup", "relative error",
                  "spectral when served"], convs)
        + f"\n\nThe kokoro model's float32 fast path on the concurrency-1 sentences of `bench.run` ({data['items']}"
        f" items, {data['audio_s']} s of audio), one item at a time, {data['rounds']} rounds in alternating order;"
        " RTF is the median over rounds; SNR and durations against float32 eager channels-first (the fidelity"
        " guard's reference; the guard is 25 dB); first call includes compiling:\n\n"
        + variant_table(data, "vs_onednn", "vs oneDNN")
        + "\n"
    )  # fmt: skip


def item_memory_markdown(results_dir: Path = ROOT / "bench" / "results") -> str:
    """Every ``bench/item_memory.py`` run, newest first: one item's live memory by length."""
    runs = all_results(results_dir, "item-memory-*.json")
    if not runs:
        return "## Live memory of one item\n\nNo run yet: `.venv/bin/python -m bench.item_memory`.\n"
    parts = [
        "## Live memory of one item, by length\n\n"
        "`.venv/bin/python -m bench.item_memory` (`bench/item_memory.py`): the engine as served on the CPU, under"
        " jemalloc; the first chunk of the 100-word request cut to each length, decoded alone as the kokoro model"
        " decodes on CPU; the most memory the synthesis held at once above its start (jemalloc's `thread.peak`,"
        " the largest of the rounds), with the spectral resblock convolutions and with oneDNN's, in alternating"
        " order. The longest items' activations are most of what the kokoro process holds above idle."
    ]
    for path, data in runs:
        rows = [
            [r["phonemes"], r["audio_s"], r["onednn_peak_mib"], r["spectral_peak_mib"],
             f"{r['spectral_peak_mib'] - r['onednn_peak_mib']:+d}", r["onednn_s"], r["spectral_s"]]
            for r in data["rows"]
        ]  # fmt: skip
        parts.append(
            f"### {data['date'][:10]}: {data['cpu']}, {data['threads']} threads, {data['rounds']} rounds\n\n"
            + (f"{data['note']} " if "note" in data else "")
            + f"Raw results: `{shown(path)}`.\n\n"
            + _table(["phonemes", "audio s", "oneDNN MiB", "spectral MiB", "spectral - oneDNN", "oneDNN s",
                      "spectral s"], rows)
        )  # fmt: skip
    return "\n\n".join(parts) + "\n"


def write_benchmarks_md(text: str) -> None:
    sections = [text, full_runs_markdown(), fidelity_markdown(), spectral_convs_markdown(), item_memory_markdown(),
                fp32_path_markdown(), stream_pieces_markdown(), windows_markdown(), chunk_limit_markdown(),
                long_input_markdown(), scheduling_markdown(), allocator_markdown(), idle_release_markdown(),
                release_above_markdown(),
                kokoro_imports_markdown(), lead_split_markdown(), int8_convs_markdown(), gpu_markdown(),
                gpu_triton_markdown()]  # fmt: skip
    BENCHMARKS_MD.write_text("\n\n".join(s.rstrip() for s in sections) + "\n", encoding="utf-8")


if __name__ == "__main__":
    # Re-render from a results file: python -m bench.report bench/results/<date>.json
    src = Path(sys.argv[1])
    data = json.loads(src.read_text())
    data["targets"] = targets(data)
    png_path = src.with_suffix(".png")
    png = plot(data, png_path) or (png_path if png_path.is_file() else None)  # no matplotlib: the plot on disk
    md = markdown(data, src.resolve(), png.resolve() if png else None)
    print(md)
    write_benchmarks_md(md)
