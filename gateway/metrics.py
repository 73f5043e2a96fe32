"""Prometheus metrics of the gateway (`GET /metrics`), next to Triton's own on its metrics port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

_API_PATHS = frozenset(
    {
        "/v1/audio/speech",
        "/v1/audio/speech/timestamps",
        "/v1/audio/phonemize",
        "/v1/audio/voices",
        "/v1/audio/models",
        "/v1/models",
        "/health",
        "/ready",
        "/metrics",
    }
)
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    """Request counts, latency, time to first byte, input size, audio sent and speech requests in
    flight, in a registry of the app's own."""

    def __init__(self, speech_in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        Gauge(
            "pattern_tts_speech_requests_in_flight",
            "Speech requests being served (until their response ends); compare with "
            "PATTERN_TTS_MAX_CONCURRENT_REQUESTS.",
            registry=self.registry,
        ).set_function(speech_in_flight)
        self.requests = Counter(
            "pattern_tts_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "pattern_tts_request_duration_seconds",
            "Time until the response body was complete.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_byte = Histogram(
            "pattern_tts_time_to_first_byte_seconds",
            "Time until the first body bytes were sent.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.input_chars = Counter(
            "pattern_tts_input_characters",
            "Characters of `input` accepted for synthesis.",
            registry=self.registry,
        )
        self.chunks = Counter("pattern_tts_chunks", "Text chunks sent to the kokoro model.", registry=self.registry)
        self.audio_seconds = Counter(
            "pattern_tts_audio_seconds",
            "Seconds of audio sent to clients, by response format (a stream cut short counts what it sent).",
            ["format"],
            registry=self.registry,
        )

    def observe(self, path: str, status: int, seconds: float, first_byte_s: float | None, info: dict[str, Any]) -> None:
        route = path if path in _API_PATHS else "other"
        self.requests.labels(route, str(status)).inc()
        self.duration.labels(route).observe(seconds)
        if first_byte_s is not None:
            self.first_byte.labels(route).observe(first_byte_s)
        if status == 200 and route.startswith("/v1/audio/speech"):
            self.input_chars.inc(int(info.get("chars", 0)))
            self.chunks.inc(int(info.get("chunks", 0)))
            if "audio_s" in info:
                self.audio_seconds.labels(str(info.get("format", ""))).inc(float(info["audio_s"]))

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
