"""Triton python backend ``kokoro``: a dynamic batch of requests -> one batched forward pass.

Thin Triton I/O around :class:`pattern_tts.synthesis.engine.KokoroEngine` (see docs/architecture.md).
One response per request (the model is not decoupled): with the per-item decoder (CPU) each is
sent through its request's response sender as soon as that request is done, with the batched
decoder (GPU) ``execute`` returns them. A bad request (unknown voice, empty or over-long phonemes,
bad speed) gets its own error and the rest of the batch is still synthesised.
"""

import contextlib
import json
import locale
import time
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from pattern_tts import allocator
from pattern_tts.cpu import cpu_quota
from pattern_tts.synthesis.engine import KokoroEngine, RequestError, SynthesisRequest


def _error(message: str, code: int | None = None) -> "pb_utils.InferenceResponse":
    """An error response; without ``code``, Triton's default (an internal error)."""
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)


class _Replies:
    """Where a batch's responses go, one per request.

    With the per-item decoder (the CPU default) each goes out through its request's response
    sender as soon as it is ready: the model is not decoupled, so that is the one final response.
    With the batched decoder (the GPU default) all items finish together, and ``execute`` returns
    the list instead. On a KIND_GPU instance Triton 2.51's python stub crashed (SIGSEGV in
    ``send``, H200) where the returned list works.
    """

    def __init__(self, requests: list, early: bool) -> None:
        self.senders = [request.get_response_sender() for request in requests] if early else None
        self.responses: list = [None] * len(requests)

    def send(self, i: int, response: "pb_utils.InferenceResponse") -> None:
        if self.senders is None:
            self.responses[i] = response
        else:
            self.senders[i].send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def returned(self) -> list | None:
        """What ``execute`` returns: None when every response went out through its sender."""
        return None if self.senders is not None else self.responses


class _Metrics:
    """The kokoro model's own counters, on Triton's metrics port next to its ``nv_inference_*`` ones.

    Triton counts a request answered as cancelled as a success (``nv_inference_request_success``);
    ``pattern_tts_kokoro_cancelled_requests_total`` counts those apart.
    """

    def __init__(self, model: str, version: str) -> None:
        labels = {"model": model, "version": version}
        audio = pb_utils.MetricFamily(
            name="pattern_tts_kokoro_audio_seconds_total",
            description="Seconds of audio synthesised (before the gateway trims silence where chunks meet)",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        releases = pb_utils.MetricFamily(
            name="pattern_tts_kokoro_memory_releases_total",
            description="Times the kokoro process handed the memory its requests freed back to the system: "
            "once idle (reason=idle) or after an item, its RSS above release_memory_above_mib "
            "(reason=above_limit)",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        cancelled = pb_utils.MetricFamily(
            name="pattern_tts_kokoro_cancelled_requests_total",
            description="Requests answered as cancelled, not synthesised: their clients went away while "
            "they waited (stage=queued) or while their batch ran (stage=running)",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        self._families = [audio, releases, cancelled]
        self.audio_seconds = audio.Metric(labels=labels)
        self.cancelled = {
            stage: cancelled.Metric(labels={**labels, "stage": stage}) for stage in ("queued", "running")
        }
        self.memory_releases = {
            reason: releases.Metric(labels={**labels, "reason": reason}) for reason in ("idle", "above_limit")
        }

    def close(self) -> None:
        """Drop the metrics, then their families (the stub refuses the other order)."""
        del self.audio_seconds, self.cancelled, self.memory_releases
        self._families.clear()


def _scalar(request: "pb_utils.InferenceRequest", name: str, default):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    value = tensor.as_numpy().reshape(-1)
    if value.size != 1:
        raise RequestError(f"input '{name}' must hold one value per request, got {value.size}")
    item = value[0]
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(f"input '{name}' is not valid UTF-8") from None
    return item.item()


# The stub's embedded interpreter starts in the C locale, where files open as ASCII; torch.compile
# reads its UTF-8 sources with the default encoding.
with contextlib.suppress(locale.Error):
    locale.setlocale(locale.LC_CTYPE, "C.UTF-8")


class TritonPythonModel:
    """Kokoro on CPU (KIND_CPU) or on the instance's GPU (KIND_GPU)."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        if args["model_instance_kind"] == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        else:
            device = "cpu"
            instances = sum(g.get("count", 1) for g in config.get("instance_group", [])) or 1
            threads = int(params.get("threads") or 0) or max(1, cpu_quota() // instances)
            torch.set_num_threads(threads)
        batch_decoder = {"true": True, "false": False}.get(params.get("batch_decoder", "auto"))
        cache_dir = params.get("compile_cache_dir") or ""
        start = time.perf_counter()
        self.engine = KokoroEngine(
            Path(params["weights_dir"]),
            device=device,
            batch_decoder=batch_decoder,
            compile={"true": True, "false": False}.get(params.get("compile", "false")),
            precision=params.get("precision") or "fp32",
            spectral_convs={"true": True, "false": False}.get(params.get("spectral_convs", "false")),
            compile_cache_dir=Path(cache_dir) if cache_dir else None,
        )
        loaded = time.perf_counter() - start
        self.metrics = _Metrics(args["model_name"], args["model_version"])
        # Compiles the fast path now, so that the model is not READY before it is fast.
        warmup = self.engine.warmup()
        # The load's temporaries go back to the system (pattern_tts/allocator.py).
        malloc = allocator.release_freed_memory()
        # So do a burst's activations, once the model has been idle for a while.
        idle_s = float(params.get("release_memory_after_idle_s") or 0)
        self.idle_release = allocator.ReleaseWhenIdle(idle_s, self._release_memory) if idle_s > 0 else None
        # And after each item while the process holds more than this: on CPU the activations are its RSS.
        above_mib = int(params.get("release_memory_above_mib") or 0)
        self.release_above_mib = above_mib if device == "cpu" and above_mib > 0 else None
        pb_utils.Logger.log_info(
            f"kokoro: loaded on {device} in {loaded:.1f} s, warmed up in {warmup:.1f} s "
            f"(threads={torch.get_num_threads()}, batch_decoder={self.engine.batch_decoder}, "
            f"compile={self.engine.compile}, autocast={self.engine.autocast_dtype}, "
            f"spectral_convs={self.engine.batched.spectral_convs}, "
            f"voices={len(self.engine.voices.names())}, allocator={malloc}, "
            f"release_memory_after_idle_s={idle_s:g}, release_memory_above_mib={self.release_above_mib})"
        )
        if malloc == "glibc" and device == "cpu":
            pb_utils.Logger.log_warn(
                "kokoro: glibc malloc: memory grows with long inputs (several GB); "
                f"install {allocator.JEMALLOC_SONAME} (Debian: libjemalloc2)"
            )

    def _release_memory(self) -> None:
        """Called by ``self.idle_release`` once the model has been idle for its ``after_s``."""
        before = allocator.resident_mib()
        allocator.release_freed_memory()
        self.metrics.memory_releases["idle"].increment(1)
        pb_utils.Logger.log_info(
            f"kokoro: idle {self.idle_release.after_s:g} s: released freed memory, "
            f"RSS {before:.0f} -> {allocator.resident_mib():.0f} MiB"
        )

    def _request(self, request: "pb_utils.InferenceRequest") -> SynthesisRequest:
        return SynthesisRequest(
            phonemes=_scalar(request, "phonemes", ""),
            voice=_scalar(request, "voice", "").strip(),
            speed=float(_scalar(request, "speed", 1.0)),
            seed=int(_scalar(request, "seed", 0)),
        )

    def execute(self, requests: list) -> list | None:
        """One response per request. With the per-item decoder each is sent as soon as its own
        audio is ready, so the short requests of a batch go out before its long ones are decoded."""
        with self.idle_release.busy() if self.idle_release else contextlib.nullcontext():
            return self._execute(requests)

    def _execute(self, requests: list) -> list | None:
        replies = _Replies(requests, early=not self.engine.batch_decoder)
        items, slots = [], []
        for i, request in enumerate(requests):
            if request.is_cancelled():  # its client went away while it waited in the queue
                self.metrics.cancelled["queued"].increment(1)
                replies.send(i, _error("request cancelled", pb_utils.TritonError.CANCELLED))
                continue
            try:
                items.append(self.engine.prepare(self._request(request)))
                slots.append(i)
            except RequestError as exc:
                pb_utils.Logger.log_warn(f"kokoro: bad request: {exc}")
                replies.send(i, _error(str(exc), pb_utils.TritonError.INVALID_ARG))
        if not items:
            return replies.returned()
        start = time.perf_counter()
        pending, seconds = set(range(len(items))), 0.0

        def wanted(k: int) -> bool:  # asked before an item's text side and before its decoder
            return not requests[slots[k]].is_cancelled()

        try:
            for k, out in self.engine.synthesize_each(items, wanted=wanted):
                response = pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("waveform", out.audio.numpy().astype(np.float32)[None, :]),
                        pb_utils.Tensor("durations", out.durations.numpy().astype(np.int64)[None, :]),
                    ]
                )
                item_seconds = len(out.audio) / 24000
                self.metrics.audio_seconds.increment(item_seconds)  # counted by the time it is answered
                seconds += item_seconds
                replies.send(slots[k], response)
                pending.discard(k)
                if self.release_above_mib is not None and allocator.release_if_above(self.release_above_mib):
                    self.metrics.memory_releases["above_limit"].increment(1)
        except Exception as exc:  # e.g. out of memory: fail what is left of this batch, keep serving
            pb_utils.Logger.log_error(f"kokoro: batch of {len(items)} failed: {type(exc).__name__}: {exc}")
            for k in sorted(pending):
                replies.send(slots[k], _error(f"synthesis failed: {type(exc).__name__}: {exc}"))
            return replies.returned()
        if pending:  # skipped: their clients went away while the batch ran
            pb_utils.Logger.log_info(
                f"kokoro: {len(pending)} of a batch of {len(items)} cancelled while it ran: not synthesised"
            )
            self.metrics.cancelled["running"].increment(len(pending))
        for k in sorted(pending):
            replies.send(slots[k], _error("request cancelled", pb_utils.TritonError.CANCELLED))
        elapsed = time.perf_counter() - start
        pb_utils.Logger.log_verbose(f"kokoro: batch of {len(items)} -> {seconds:.2f} s audio in {elapsed:.2f} s")
        return replies.returned()

    def finalize(self) -> None:
        if self.idle_release:
            self.idle_release.close()
        self.metrics.close()
        pb_utils.Logger.log_info("kokoro: finalized")
