"""No leaks: the same requests, round after round, leave every process of the stack where it was.

Each round sends a fixed mix through the gateway at once (every response format, streamed and not,
server-sent events, a blend, British English, Japanese, bad requests). After the warm-up rounds and
again after the compared rounds, the test waits for the kokoro model to hand its freed memory back
once idle (``release_memory_after_idle_s``, its log event), then reads the resident memory of the
kokoro and g2p python stubs and of the gateway. The compared rounds must not add memory.

The kokoro process is read right after its allocator handed freed pages back, and the g2p process
holds still, so their limit is tight. The gateway (glibc malloc) grows by a few MiB over its first
few hundred requests and then holds (142 MiB from the 25th to the 50th round of an ad hoc run), so
its limit is looser. Checked by hand: a gateway that kept every chunk's samples grew 8.0 MiB over
the compared rounds, against 1.5 MiB for the real one. A leak of a few hundred bytes per request
would not show.
"""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from pattern_tts import allocator
from pattern_tts.settings import Settings
from tests.conftest import Stack, gateway_process, model_process, wait_for_idle_release

WARM_UP_ROUNDS = 2  # caches fill, the gateway's allocator grows
ROUNDS = 4  # compared: what they add after the warm-up
GROWTH_LIMIT_MIB = {"kokoro": 2.0, "g2p": 2.0, "gateway": 4.0}
SENTENCES = [
    "Hello there.",
    "It was the best of times.",
    "The quick brown fox jumps over the lazy dog.",
    "Call me Ishmael.",
]
BODIES: list[dict[str, Any]] = [
    *(
        {"input": SENTENCES[i % len(SENTENCES)], "voice": "af_heart", "response_format": fmt}
        for i, fmt in enumerate(("mp3", "opus", "aac", "flac", "wav", "pcm"))
    ),
    {"input": " ".join(SENTENCES[:2]), "voice": "af_bella+af_sky", "response_format": "mp3"},
    {"input": SENTENCES[1], "voice": "am_adam", "response_format": "pcm", "stream_format": "sse"},
    {"input": "今日はいい天気ですね。", "voice": "af_sky", "lang": "j", "response_format": "wav"},
    {"input": "Colour and flavour.", "voice": "bf_emma", "response_format": "opus"},
    {"input": SENTENCES[2], "voice": "nobody", "response_format": "mp3"},  # 400: unknown voice
    {"input": "", "voice": "af_heart"},  # 400: empty input
]


def send_round(base_url: str) -> list[int]:
    def send(body: dict[str, Any]) -> int:
        with httpx.Client(base_url=base_url, timeout=300) as client:
            response = client.post("/v1/audio/speech", json=body)
            response.read()
            return response.status_code

    with ThreadPoolExecutor(len(BODIES)) as pool:
        return list(pool.map(send, BODIES))


def test_memory_stays_level_over_rounds_of_the_same_requests(stack: Stack) -> None:
    after_s = Settings.model_fields["release_memory_after_idle_s"].default
    processes = {"g2p": model_process(stack, "g2p"), "gateway": gateway_process(stack)}

    def rounds_then_read(count: int) -> dict[str, float]:
        """``count`` rounds back to back, then each process's RSS once the kokoro model has released."""
        for _ in range(count):
            statuses = send_round(stack.gateway_url)
            assert statuses == [200] * (len(BODIES) - 2) + [400, 400], statuses
        release = wait_for_idle_release(stack, dt.datetime.now(dt.UTC), after_s + 20)
        kokoro = float(re.findall(r"-> (\d+) MiB", release["msg"])[0])  # RSS right after the release
        return {"kokoro": kokoro, **{name: allocator.resident_mib(pid) for name, pid in processes.items()}}

    warm = rounds_then_read(WARM_UP_ROUNDS)
    later = rounds_then_read(ROUNDS)
    growth = {name: later[name] - warm[name] for name in warm}
    assert all(growth[name] <= limit for name, limit in GROWTH_LIMIT_MIB.items()), (growth, warm, later)
