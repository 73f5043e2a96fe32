"""The FastAPI application: `create_app(settings)`; `uvicorn gateway.app:create_app --factory`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gateway import errors
from gateway.metrics import GatewayMetrics
from gateway.middleware import ConcurrencyLimitMiddleware, RequestLogMiddleware, RequestSlots
from gateway.router import SPEECH_PATHS, router
from gateway.serving import SpeechService
from gateway.triton import TritonClient
from gateway.voices import VoiceCatalogue, find_voices_dir, phoneme_symbols
from pattern_tts.settings import Settings, get_settings

DESCRIPTION = """OpenAI-compatible text-to-speech: Kokoro-82M on NVIDIA Triton Inference Server.

`POST /v1/audio/speech` takes OpenAI's body; `model` may be `kokoro`, `tts-1`, `tts-1-hd` or
`gpt-4o-mini-tts` (all the same model); `instructions` is accepted and ignored. Extensions: `lang`,
`input_type: "phonemes"`, `seed`. The `Authorization` header is ignored.
"""

# How long the app's shutdown waits for the requests uvicorn cancelled (its graceful shutdown timed out)
# to end: they log their line and cancel their Triton calls. uvicorn exits as soon as the app has shut
# down, and a request still running then would end unlogged.
CANCELLED_REQUESTS_END_S = 5.0


# On CPU one request's calls out at once: two full 510-phoneme chunks, or every piece of a one-paragraph
# request (the 100-word benchmark request: 5 calls, 521 phonemes), see `max_phonemes_in_flight`.
CPU_PHONEMES_IN_FLIGHT = 1100


def triton_url(settings: Settings) -> str:
    """The Triton HTTP endpoint (host:port) the gateway reads readiness from."""
    return settings.triton_url or f"127.0.0.1:{settings.triton_http_port}"


def phonemes_in_flight(settings: Settings) -> int | None:
    """Phonemes one request keeps in Triton at once: `max_phonemes_in_flight`, else by device
    (None: no limit, only the window of calls)."""
    if settings.max_phonemes_in_flight is not None:
        return settings.max_phonemes_in_flight or None
    return None if settings.device == "cuda" else CPU_PHONEMES_IN_FLIGHT


def triton_grpc_url(settings: Settings) -> str:
    """The Triton gRPC endpoint (host:port) the gateway sends inference to."""
    return settings.triton_grpc_url or f"127.0.0.1:{settings.triton_grpc_port}"


def _configure_logging(settings: Settings) -> None:
    """A plain stderr handler for the gateway's loggers unless the host app configured logging."""
    logger = logging.getLogger("gateway")
    logger.setLevel(settings.log_level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the gateway app; the Triton client opens on startup and closes on shutdown."""
    settings = settings or get_settings()
    _configure_logging(settings)
    requests_in_flight: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        triton = TritonClient(
            triton_url(settings),
            triton_grpc_url(settings),
            timeout_s=settings.request_timeout_s,
            phoneme_budget=phonemes_in_flight(settings),
            # The first chunk goes a little over one batching delay ahead of the rest.
            head_start_s=settings.max_queue_delay_us / 1e6 + 0.005,
        )
        voices_dir = find_voices_dir(settings.weights_dir)
        app.state.service = SpeechService(settings, triton, VoiceCatalogue(voices_dir), phoneme_symbols(voices_dir))
        try:
            yield
        finally:
            if requests_in_flight:
                await asyncio.wait(set(requests_in_flight), timeout=CANCELLED_REQUESTS_END_S)
            await triton.close()

    app = FastAPI(
        title="pattern-tts",
        description=DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    errors.install(app)
    slots = RequestSlots(settings.max_concurrent_requests)
    metrics = GatewayMetrics(speech_in_flight=lambda: slots.taken)
    app.add_middleware(ConcurrencyLimitMiddleware, slots=slots, paths=SPEECH_PATHS)
    # Added last, so outermost: it logs and counts the 503s of the limit too.
    app.add_middleware(RequestLogMiddleware, metrics=metrics, in_flight=requests_in_flight)
    app.include_router(router)
    app.add_api_route("/metrics", metrics.endpoint, methods=["GET"], include_in_schema=False)
    return app


def __getattr__(name: str) -> FastAPI:
    """`gateway.app:app` for uvicorn without `--factory`: built on first access."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
