"""The serialized baseline: one ``kokoro.KModel``, one request at a time, ``KPipeline`` chunking.

    .venv/bin/python -m bench.baseline_server --weights DIR --port PORT [--threads N]

This is the design of the most used Kokoro server: a single model, every request serialised behind
one lock, no batching, Kokoro's own ``KPipeline`` text splitting (<= 510 phonemes per segment) and
one stock eager ``KModel`` forward per segment. It serves the same ``POST /v1/audio/speech`` body as
the gateway (``input``, ``voice``, ``speed``, ``response_format`` pcm or wav) and streams audio segment
by segment. The misaki G2P is built offline (pattern_tts.text.offline_spacy) instead of downloading
spaCy's model.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from kokoro import KModel, KPipeline
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

SAMPLE_RATE = 24_000
REPO_ID = "hexgrad/Kokoro-82M"


class Speech(BaseModel):
    """The subset of OpenAI's speech body the baseline understands (extra fields ignored)."""

    input: str
    voice: str
    speed: float = 1.0
    response_format: str = "wav"


@contextlib.contextmanager
def offline_english_g2p() -> Iterator[None]:
    """Make ``KPipeline('a')`` build misaki's G2P from the installed spaCy package, not a download."""
    from misaki import en

    from pattern_tts.text.offline_spacy import english_g2p

    original = en.G2P
    en.G2P = lambda *a, british=False, **k: english_g2p(british)  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        en.G2P = original  # type: ignore[misc]


def build_pipeline(weights: Path) -> KPipeline:
    """One KModel (eager fp32, as shipped) inside a KPipeline for American English."""
    model = KModel(repo_id=REPO_ID, config=str(weights / "config.json"), model=str(weights / "kokoro-v1_0.pth"))
    model = model.to("cpu").eval()
    with offline_english_g2p():
        return KPipeline(lang_code="a", repo_id=REPO_ID, model=model)


def wav_header() -> bytes:
    """A streaming WAV header (16-bit mono 24 kHz, unknown length)."""
    size = 0xFFFFFFFF
    return (
        b"RIFF"
        + struct.pack("<I", size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
        + b"data"
        + struct.pack("<I", size - 36)
    )


def to_pcm(audio: torch.Tensor) -> bytes:
    samples = np.clip(audio.detach().cpu().numpy(), -1.0, 1.0)
    return (samples * 32767).astype("<i2").tobytes()


def create_app(pipeline: KPipeline, voices_dir: Path) -> FastAPI:
    """The baseline HTTP app: every request holds the one lock for all of its segments."""
    app = FastAPI(title="kokoro serialized baseline")
    lock = asyncio.Lock()

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/audio/speech")
    async def speech(req: Speech) -> StreamingResponse:
        voice = voices_dir / f"{req.voice}.pt"
        if not voice.is_file():
            raise HTTPException(400, f"unknown voice {req.voice!r}")
        if req.response_format not in ("pcm", "wav"):
            raise HTTPException(400, "response_format must be pcm or wav")

        async def body() -> AsyncIterator[bytes]:
            async with lock:
                if req.response_format == "wav":
                    yield wav_header()
                results = pipeline(req.input, voice=str(voice), speed=req.speed)
                while True:
                    result: Any = await run_in_threadpool(next, results, None)
                    if result is None:
                        break
                    if result.audio is not None:
                        yield await run_in_threadpool(to_pcm, result.audio)

        media = "audio/wav" if req.response_format == "wav" else "audio/pcm"
        return StreamingResponse(body(), media_type=media)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipeline = build_pipeline(args.weights)
    uvicorn.run(create_app(pipeline, args.weights / "voices"), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
