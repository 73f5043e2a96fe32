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
    stall_s: float = 0.0  # playback gaps of a player that starts at the first byte (pcm, wav)


def playback_stall(arrivals: list[tuple[float, int]], response_format: str) -> float:
    """Seconds a player waits for audio after it started playing at the first byte.

    ``arrivals``: (seconds since the request, body bytes received) per read of a pcm or wav
    body, 16-bit mono 24 kHz: each read's audio plays after the audio before it, or when it
    arrives if the player ran dry first. 0 for other formats (their bytes are not linear in time).
    """
    if response_format not in ("pcm", "wav") or not arrivals:
        return 0.0
    stall = 0.0
    plays_until = arrivals[0][0]
    for at, size in arrivals:
        if at > plays_until:
            stall += at - plays_until
            plays_until = at
        plays_until += size / 2 / SAMPLE_RATE
    return stall


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
    arrivals: list[tuple[float, int]] = []
    response_format = body.get("response_format", "pcm")
    try:
        async with client.stream("POST", url, json=body) as response:
            async for chunk in response.aiter_raw():
                if not chunk:
                    continue
                at = time.perf_counter() - sent
                ttfb = ttfb or at
                arrivals.append((at, len(chunk)))
                size += len(chunk)
            status = response.status_code
        done = time.perf_counter() - sent
        if response_format == "wav" and arrivals:  # the header is not audio
            arrivals[0] = (arrivals[0][0], max(0, arrivals[0][1] - WAV_HEADER))
        error = "" if status == 200 else f"HTTP {status}"
        audio = audio_seconds(size, response_format) if status == 200 else 0.0
        stall = playback_stall(arrivals, response_format) if status == 200 else 0.0
        return Record(words, sent - t0, ttfb, done, audio, status, error, stall)
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
    stall = [r.stall_s for r in ok]
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
        # Streams: seconds a player starting at the first byte waits for audio, per request.
        "stall_p50_s": round(pct(stall, 50), 3),
        "stall_p95_s": round(pct(stall, 95), 3),
        "stalled_requests": sum(1 for s in stall if s > 0.05),
        "records": [asdict(r) for r in records],
    }


def run(url: str, bodies: list[tuple[dict[str, Any], int]], concurrency: int) -> dict[str, Any]:
    """Synchronous wrapper of :func:`run_level`."""
    return asyncio.run(run_level(url, bodies, concurrency))
