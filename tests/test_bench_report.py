"""The benchmark report: which measurement judges "dynamic batching on never slower than off"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.report import (
    batching_target,
    fidelity_markdown,
    fidelity_targets,
    fp32_path_markdown,
    full_runs_markdown,
    gpu_instances_markdown,
    item_memory_markdown,
    long_input_markdown,
    spectral_convs_markdown,
    stream_pieces_markdown,
    targets,
    windows_markdown,
)


def phases(on: float, off: float) -> dict[str, Any]:
    """The on and off stacks' perf_analyzer figures at c=4, measured minutes apart."""
    return {
        "stack_on": {"perf": [{"concurrency": 4, "infer_per_s": on}]},
        "stack_off": {"perf": [{"concurrency": 4, "infer_per_s": off}]},
    }


def alternating(*medians: float) -> dict[str, Any]:
    return {
        "summary": {
            str(c): {"ratios": [m - 0.02, m, m + 0.02], "median": m} for c, m in zip((1, 4, 16), medians, strict=False)
        }
    }


def test_the_alternating_measurement_judges_when_the_run_has_it() -> None:
    # The phases read 0.83x (drift between them); the alternation reads 0.99x at worst.
    results = {**phases(0.83, 1.0), "batching_ab": alternating(1.01, 0.99, 1.02)}
    stack, _, status, note = batching_target(results)
    assert status == "PASS"
    assert stack == "worst c=4: 0.99x"
    assert "median of 3 rounds" in note and "perf_analyzer c=4: 0.83x" in note


def test_a_slower_alternating_median_is_a_miss() -> None:
    results = {**phases(1.0, 1.0), "batching_ab": alternating(1.0, 0.90, 1.0)}
    stack, _, status, _ = batching_target(results)
    assert (stack, status) == ("worst c=4: 0.90x", "MISS")


def test_runs_without_the_alternation_are_judged_on_their_phases() -> None:
    assert batching_target(phases(0.83, 1.0))[2] == "MISS"
    assert batching_target(phases(0.97, 1.0))[2] == "PASS"
    assert batching_target({})[2] == "N/A"


def windows_results(windows: list[float]) -> dict[str, Any]:
    """A bench/windows.py results file with these word error rates for the windows, seeds 1 and 2."""
    return {
        "date": "2026-11-26", "weights": "random", "rows": [{}, {}],
        "summary": {
            "fast_vs_eager": {"snr_db": 31.8, "log_mel_db": 0.15},
            "windows, context 8": {"snr_db": 6.3, "log_mel_db": 1.95, "max_step_over_whole": 1.0,
                                   "decode_s_vs_whole": 1.1},
            "word error rate %": {"seeds": [1, 2], "whole": [77.0, 76.0], "windows": windows, "pieces": [74.0, 75.0]},
        },
    }  # fmt: skip


def test_the_windows_section_says_they_scored_worst_only_when_they_did_with_every_seed(tmp_path: Path) -> None:
    assert "No run yet" in windows_markdown(tmp_path)
    path = tmp_path / "windows-2026-11-26.json"
    path.write_text(json.dumps(windows_results([82.0, 84.0])))
    text = windows_markdown(tmp_path)
    assert "scored worst with every seed" in text
    assert "| fast path vs float32 eager | 31.8 | 0.15 | - | - |" in text
    path.write_text(json.dumps(windows_results([82.0, 75.5])))  # better than the whole decode with seed 2
    assert "scored worst" not in windows_markdown(tmp_path)


def fp32_path_results(rtf: dict[str, float]) -> dict[str, Any]:
    """A bench/fp32_path.py results file with these median real-time factors per variant."""
    reference = rtf["eager, channels first"]
    rows = [
        {"variant": name, "rtf_median": value, "rtf_rounds": [value], "vs_reference": round(value / reference, 3),
         "first_call_s": 1.0, "snr_db": [225.5, 105.6], "same_durations": 2}
        for name, value in rtf.items()
    ]  # fmt: skip
    return {
        "date": "2026-11-26", "cpu": "AMD EPYC", "cpu_features": {"avx2": True, "avx512f": False}, "threads": 2,
        "torch": "2.13.0", "weights": "random", "items": 2, "audio_s": 9.5, "rounds": 1,
        "conv_ms": {"channels first": 122.0, "time-major": 68.4}, "rows": rows,
    }  # fmt: skip


def test_the_fp32_path_section_names_the_fastest_variant_of_its_run(tmp_path: Path) -> None:
    assert "No run yet" in fp32_path_markdown(tmp_path)
    path = tmp_path / "fp32-path-2026-11-26.json"
    path.write_text(json.dumps(fp32_path_results({"eager, channels first": 0.74, "compiled, time-major": 0.55})))
    text = fp32_path_markdown(tmp_path)
    assert "Fastest here: **compiled, time-major**" in text
    assert "(without AVX-512)" in text and "time-major 68.4 ms" in text
    assert "| compiled, time-major | 0.55 | 0.743x | 1 | 225.5 / 105.6 | 2/2 |" in text
    path.write_text(json.dumps(fp32_path_results({"eager, channels first": 0.5, "compiled, time-major": 0.55})))
    assert "Fastest here: **eager, channels first**" in fp32_path_markdown(tmp_path)


def test_the_spectral_convs_section_marks_the_kernels_served_spectral(tmp_path: Path) -> None:
    assert "No run yet" in spectral_convs_markdown(tmp_path)
    convs = [
        {"channels": 128, "frames": 24000, "kernel": k, "dilation": 5, "onednn_ms": ms, "spectral_ms": 28.0,
         "relative_error": 7e-07, "speedup": round(ms / 28.0, 2)}
        for k, ms in ((3, 14.0), (11, 44.8))
    ]  # fmt: skip
    rows = [
        {"variant": name, "rtf_median": rtf, "rtf_rounds": [rtf], "vs_onednn": round(rtf / 0.405, 3),
         "first_call_s": 13.2, "snr_db": [54.1, 35.5], "same_durations": 2}
        for name, rtf in (("oneDNN", 0.405), ("spectral", 0.337))
    ]  # fmt: skip
    data = {
        "date": "2026-11-28", "cpu": "AMD EPYC", "cpu_features": {"avx512f": False}, "threads": 2, "torch": "2.13.0",
        "weights": "random", "spectral_min_kernel": 7, "items": 2, "audio_s": 9.5, "rounds": 5, "convs": convs,
        "rows": rows,
    }  # fmt: skip
    (tmp_path / "spectral-convs-2026-11-28.json").write_text(json.dumps(data))
    text = spectral_convs_markdown(tmp_path)
    assert "| 128 x 24,000 | 3 | 5 | 14 | 28 | 0.5x | 7e-07 | no |" in text
    assert "| 128 x 24,000 | 11 | 5 | 44.8 | 28 | 1.6x | 7e-07 | yes |" in text
    assert "| spectral | 0.337 | 0.832x | 13.2 | 54.1 / 35.5 | 2/2 |" in text


def test_the_item_memory_section_lists_each_run_newest_first_with_what_spectral_adds(tmp_path: Path) -> None:
    assert "No run yet" in item_memory_markdown(tmp_path)
    for date, spectral, note in (("2026-11-28T07:00:00+00:00", 415, "Before."), ("2026-11-28T08:00:00+00:00", 333, "")):
        row = {"phonemes": 400, "audio_s": 22.8, "onednn_peak_mib": 309, "spectral_peak_mib": spectral,
               "onednn_s": 9.3, "spectral_s": 7.7}  # fmt: skip
        data = {"date": date, "cpu": "AMD EPYC", "threads": 2, "rounds": 2, "rows": [row]}
        if note:
            data["note"] = note
        # The earlier run's name sorts last: the order comes from the dates they record.
        (tmp_path / f"item-memory-2026-11-28{'-before' if note else ''}.json").write_text(json.dumps(data))
    text = item_memory_markdown(tmp_path)
    after, before = text.index("| 400 | 22.8 | 309 | 333 | +24 | 9.3 | 7.7 |"), text.index("| 309 | 415 | +106 |")
    assert after < before
    assert text.index("Before. Raw results: `" + str(tmp_path / "item-memory-2026-11-28-before.json")) > after


def test_the_long_input_section_shows_each_stack_by_input_length(tmp_path: Path) -> None:
    assert "No run yet" in long_input_markdown(tmp_path)
    rounds = {"blocks": [{"first_byte_s": {"100000": 1.4}, "short_g2p_s": 0.024}] * 2,
              "whole": [{"first_byte_s": {"100000": 4.8}, "short_g2p_s": 3.3}, {"first_byte_s": {"100000": 5.0},
                                                                             "short_g2p_s": 3.0}]}  # fmt: skip
    data = {"date": "2026-11-28", "weights": "real", "chars": [100000], "delay_s": 0.3, "rounds": rounds,
            "in_process_g2p_s": {"100000": 2.7}, "machine": {"cpu_model": "AMD EPYC", "cpu_quota": 2},
            "variants": {"blocks": {}, "whole": {"PATTERN_TTS_G2P_BLOCK_CHARS": "0"}},
            "summary": {"blocks": {"first_byte_s_100000": 1.4, "short_g2p_s": 0.024},
                        "whole": {"first_byte_s_100000": 4.9, "short_g2p_s": 3.15}}}  # fmt: skip
    (tmp_path / "long-input-2026-11-28.json").write_text(json.dumps(data))
    text = long_input_markdown(tmp_path)
    assert "| blocks | 1.40 | 0.024 | 0.024 / 0.024 |" in text
    assert "| whole | 4.90 | 3.150 | 3.300 / 3.000 |" in text
    assert "first byte s, 100,000 characters" in text and "100,000 characters 2.7 s" in text
    assert "`blocks`: the defaults; `whole`: `PATTERN_TTS_G2P_BLOCK_CHARS=0`" in text
    assert "beside a stream" not in text
    # A run with the short speech request beside a stream has two more columns.
    data.update(beside_chars=6000, beside_s=60.0, beside_after_s=5.0)
    more = {"hundred_words_first_byte_s": 1.1, "hundred_words_end_s": 12.3}
    data["summary"]["blocks"].update(short_first_byte_s=3.8, long_audio_s=226.7, **more)  # type: ignore[index]
    data["summary"]["whole"].update(short_first_byte_s=37.9, long_audio_s=103.8, **more)  # type: ignore[index]
    (tmp_path / "long-input-2026-11-28.json").write_text(json.dumps(data))
    text = long_input_markdown(tmp_path)
    assert "| blocks | 1.40 | 0.024 | 0.024 / 0.024 | 3.80 | 227 | 1.10 | 12.30 |" in text
    assert "a 6,000-character streamed request read for 60 s, and 5 s into it" in text


def instances_run(instances: int, rate: float, **config: int) -> dict[str, Any]:
    row = {"concurrency": 16, "audio_s_per_s": rate, "p50_ms": 400.0, "p95_ms": 600.0, "mean_batch": 4.5,
           "queue_ms_per_request": 150.0, "compute_ms_per_request": 260.0}  # fmt: skip
    return {"instances": instances, **config, "modes": [{"mode": "on", "rows": [row]}]}


def test_the_gpu_instances_section_shows_the_newest_run_with_its_max_batch_and_round(tmp_path: Path) -> None:
    # An earlier file, written before runs recorded their max batch and round: it must still render.
    older = {"date": "2026-11-26", "note": "older", "runs": [instances_run(2, 320.0), instances_run(1, 214.0)]}
    (tmp_path / "gpu-instances-2026-11-26.json").write_text(json.dumps(older))
    assert "| 1 | 16 | 1 | 16 | 214 |" in gpu_instances_markdown(tmp_path)

    newer = {"date": "2026-11-26", "note": "newer", "runs": [
        instances_run(1, 161.0, max_batch=16, round=1), instances_run(2, 299.0, max_batch=32, round=1),
        instances_run(2, 314.0, max_batch=32, round=2), instances_run(1, 185.0, max_batch=16, round=2),
    ]}  # fmt: skip
    (tmp_path / "gpu-instances-2026-11-26T2345.json").write_text(json.dumps(newer))
    text = gpu_instances_markdown(tmp_path)
    assert "newer" in text and "older" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    # Sorted by configuration, then round: each configuration's rounds side by side.
    assert [row.split(" | ")[:3] for row in rows] == [["| 1", "16", "1"], ["| 1", "16", "2"], ["| 2", "32", "1"],
                                                     ["| 2", "32", "2"]]  # fmt: skip


def fidelity(snr_db: list[float | None], fast_wer: float, eager_wer: float = 55.0) -> dict[str, Any]:
    """A bench/weights_intelligibility.py summary (what bench.run keeps as its fidelity phase)."""
    present = [x for x in snr_db if x is not None]
    return {
        "voice": "jf_alpha", "sentences": len(snr_db), "asr": "pocketsphinx",
        "wer_percent": {"onnxruntime": 60.0, "converted": eager_wer, "converted_no_noise": eager_wer,
                        "fast_path": fast_wer, "espeak_ng": 83.3},
        "fast_path": {"engine": "compile=True, autocast=None", "snr_db": snr_db, "snr_db_min": min(present),
                      "pass": True},
        "date": "2026-11-28T02:00:00+00:00",
    }  # fmt: skip


def test_the_fidelity_guard_is_two_targets_judged_against_float32_eager() -> None:
    snr, wer = fidelity_targets(fidelity([31.0, 25.5], fast_wer=56.0))
    assert (snr["stack"], snr["status"]) == (25.5, "PASS")
    assert (wer["stack"], wer["baseline"], wer["status"]) == ("56.0 % (+1)", "55.0 % (float32 eager)", "PASS")
    assert "peer (int8 onnxruntime): 60.0 %" in wer["note"]

    snr, wer = fidelity_targets(fidelity([31.0, 24.9], fast_wer=57.5))
    assert (snr["status"], wer["status"]) == ("MISS", "MISS")
    assert wer["stack"] == "57.5 % (+2.5)"


def test_a_sentence_whose_length_differs_fails_the_snr_target() -> None:
    snr, _ = fidelity_targets(fidelity([40.0, None], fast_wer=55.0))
    assert snr["status"] == "MISS"
    assert "1 not comparable" in snr["note"]


def test_a_run_without_the_fidelity_phase_says_why_in_its_rows() -> None:
    rows = fidelity_targets({"skipped": "an ASR word error rate needs real weights"})
    assert [r["status"] for r in rows] == ["N/A", "N/A"]
    assert all(r["note"] == "an ASR word error rate needs real weights" for r in rows)
    # Runs from before the phase existed get no rows at all.
    assert not [r for r in targets({}) if "Fast path" in r["target"]]
    assert len([r for r in targets({"fidelity": fidelity([30.0], 55.0)}) if "Fast path" in r["target"]]) == 2


def test_the_fidelity_section_lists_each_guarded_run_newest_first(tmp_path: Path) -> None:
    newer = {**fidelity([44.0, 46.0], 55.0), "machine": {"cpu_model": "AMD EPYC", "avx512_bf16": False}}
    older = {**fidelity([30.0, 33.0], 55.0), "date": "2026-11-26T05:00:00+00:00"}
    unguarded = {key: value for key, value in older.items() if key != "fast_path"}  # the first runs had no guard
    for name, summary in (("2026-11-28-avx2", newer), ("2026-11-26", older), ("2026-11-25", unguarded)):
        (tmp_path / f"weights-intelligibility-{name}.json").write_text(json.dumps({"summary": summary}))
    text = fidelity_markdown(tmp_path)
    lines = [line for line in text.splitlines() if line.startswith("| 2026-")]
    assert len(lines) == 2
    assert lines[0].startswith("| 2026-11-28 | AMD EPYC (no AVX-512 BF16 or AMX) |") and "44.0 / 45.0" in lines[0]
    assert lines[1].startswith("| 2026-11-26 | not recorded |") and "30.0 / 31.5" in lines[1]


def test_the_streamed_pieces_section_shows_each_machine_s_run_newest_first(tmp_path: Path) -> None:
    def run(date: str, stall: float, **extra: Any) -> dict[str, Any]:
        rule = {"pieces": 30, "audio_s": 160, "vs_whole": 1.03, "synth_s": 41.6, "first_audio_s_mean": 0.8,
                "first_audio_s_max": 1.6, "stall_s": stall, "pause_ms_median": 222, "untrimmed_pause_ms_median": 932}
        return {"date": date, "weights": "real", "threads": 2, "summary": {"split_lead": rule}, **extra}  # fmt: skip

    (tmp_path / "stream-pieces-2026-11-26.json").write_text(json.dumps(run("2026-11-26", 0.18)))
    machine = {"cpu_model": "AMD EPYC", "cpu_quota": 2}
    (tmp_path / "stream-pieces-2026-11-28.json").write_text(json.dumps(run("2026-11-28", 9.5, machine=machine)))
    text = stream_pieces_markdown(tmp_path)
    assert text.startswith("## Streamed pieces: what cutting the first chunk costs (2026-11-28)")
    newer, older = text.index("2026-11-28, on AMD EPYC, 2 CPUs"), text.index("2026-11-26, on an unrecorded machine")
    assert newer < older
    assert text.index("| 9.5 |") < older < text.index("| 0.18 |")


def test_every_full_run_is_listed_newest_first_with_its_own_baseline(tmp_path: Path) -> None:
    def run(date: str, commit: str, stack_rtf: float, mode: str = "full") -> dict[str, Any]:
        return {
            "date": date, "mode": mode, "git": {"commit": commit},
            "machine": {"cpu_model": "AMD EPYC", "avx512_bf16": commit == "bbbbbbb"},
            "stack_on": {"levels": {"1": {"rtf": stack_rtf}}}, "baseline": {"levels": {"1": {"rtf": 0.62}}},
        }  # fmt: skip

    # Names sort apart from dates (a machine's suffix): the order is the recorded date's.
    (tmp_path / "2026-11-28-avx2-aaaaaaa.json").write_text(json.dumps(run("2026-11-28T04:14:37", "aaaaaaa", 0.42)))
    (tmp_path / "2026-11-28.json").write_text(json.dumps(run("2026-11-28T01:00:00", "bbbbbbb", 0.28)))
    (tmp_path / "2026-11-29.json").write_text(json.dumps(run("2026-11-29T01:00:00", "ccccccc", 0.1, "quick")))
    text = full_runs_markdown(tmp_path)
    lines = [line for line in text.splitlines() if line.startswith("| 2026")]
    assert len(lines) == 2, "quick runs are left out"
    assert lines[0].startswith("| 2026-11-28T04:14 | aaaaaaa | AMD EPYC (no AVX-512 BF16 or AMX) | 0.42 (0.62) |")
    assert lines[1].startswith("| 2026-11-28T01:00 | bbbbbbb | AMD EPYC (avx512_bf16) | 0.28 (0.62) |")
