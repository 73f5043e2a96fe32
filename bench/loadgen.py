"""Closed-loop HTTP load: N requests at concurrency C against a /v1/audio/speech endpoint, streamed."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import numpy as np

SAMPLE_RATE = 24_000
WAV_HEADER = 44


@dataclass
class Record:
    """One request: when it was sent, its first audio byte, its end; what came back."""

    words: int
    sent: float
    ttfb_s: float
    latency_s: float
    audio_s: float
    status: int
    error: str = ""


def audio_seconds(body_len: int, response_format: str) -> float:
    """Seconds of 16-bit mono 24 kHz audio in a pcm or wav body."""
    if response_format == "wav":
        body_len = max(0, body_len - WAV_HEADER)
    return body_len / 2 / SAMPLE_RATE


async def one(client: httpx.AsyncClient, url: str, body: dict[str, Any], words: int, t0: float) -> Record:
    """Send one request and read its streamed body."""
    sent = time.perf_counter()
    ttfb = 0.0
    size = 0
    try:
        async with client.stream("POST", url, json=body) as response:
            async for chunk in response.aiter_raw():
                if chunk and not ttfb:
                    ttfb = time.perf_counter() - sent
                size += len(chunk)
            status = response.status_code
        done = time.perf_counter() - sent
        error = "" if status == 200 else f"HTTP {status}"
        audio = audio_seconds(size, body.get("response_format", "pcm")) if status == 200 else 0.0
        return Record(words, sent - t0, ttfb, done, audio, status, error)
    except httpx.HTTPError as exc:
        return Record(words, sent - t0, ttfb, time.perf_counter() - sent, 0.0, 0, f"{type(exc).__name__}: {exc}")


async def run_level(
    url: str, bodies: list[tuple[dict[str, Any], int]], concurrency: int, timeout_s: float = 900
) -> dict[str, Any]:
    """Send ``bodies`` ((json body, words) pairs) with ``concurrency`` clients in a closed loop."""
    queue: asyncio.Queue[tuple[dict[str, Any], int]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    records: list[Record] = []
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        t0 = time.perf_counter()

        async def worker() -> None:
            while not queue.empty():
                body, words = queue.get_nowait()
                records.append(await one(client, url, body, words, t0))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return summarize(records, wall, concurrency)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def summarize(records: list[Record], wall_s: float, concurrency: int) -> dict[str, Any]:
    """Throughput, RTF, latency and TTFB percentiles, failures of one level."""
    ok = [r for r in records if not r.error]
    lat = [r.latency_s for r in ok]
    ttfb = [r.ttfb_s for r in ok]
    audio = sum(r.audio_s for r in ok)
    return {
        "concurrency": concurrency,
        "requests": len(records),
        "failed": len(records) - len(ok),
        "errors": sorted({r.error for r in records if r.error})[:5],
        "wall_s": round(wall_s, 3),
        "audio_s": round(audio, 3),
        "audio_s_per_wall_s": round(audio / wall_s, 3) if wall_s else 0.0,
        # Real-time factor: seconds of computing per second of audio (sum of latencies / audio, c=1).
        "rtf": round(sum(lat) / audio, 4) if audio else float("nan"),
        "latency_p50_s": round(pct(lat, 50), 3),
        "latency_p95_s": round(pct(lat, 95), 3),
        "latency_p99_s": round(pct(lat, 99), 3),
        "ttfb_p50_s": round(pct(ttfb, 50), 3),
        "ttfb_p95_s": round(pct(ttfb, 95), 3),
        "records": [asdict(r) for r in records],
    }


def run(url: str, bodies: list[tuple[dict[str, Any], int]], concurrency: int) -> dict[str, Any]:
    """Synchronous wrapper of :func:`run_level`."""
    return asyncio.run(run_level(url, bodies, concurrency))
