"""The gateway's Prometheus endpoint counts real requests."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Stack


def sample(text: str, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}\{{{selector}\}} ([0-9.e+]+)$" if labels else rf"^{name} ([0-9.e+]+)$"
    match = re.search(pattern, text, flags=re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_speech_requests(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=120) as client:
        before = client.get("/metrics").text
        ok = client.post("/v1/audio/speech", json={"input": "Count me.", "voice": "af_heart", "model": "tts-1"})
        bad = client.post("/v1/audio/speech", json={"input": "Hi.", "voice": "nobody", "model": "tts-1"})
        after = client.get("/metrics")
    assert (ok.status_code, bad.status_code) == (200, 400)
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    for status in ("200", "400"):
        name, labels = "pattern_tts_requests_total", {"route": "/v1/audio/speech", "status": status}
        assert sample(text, name, **labels) == sample(before, name, **labels) + 1
    ttfb = "pattern_tts_time_to_first_byte_seconds_count"
    assert sample(text, ttfb, route="/v1/audio/speech") >= sample(before, ttfb, route="/v1/audio/speech") + 1
    chars = "pattern_tts_input_characters_total"
    assert sample(text, chars) >= sample(before, chars) + len("Count me.")


def test_metrics_and_access_log_count_the_audio_sent(stack: Stack) -> None:
    """`pattern_tts_audio_seconds_total` adds up the audio each response carried, by format: what a
    throughput dashboard divides by wall time. The access log line says it per request."""
    name = "pattern_tts_audio_seconds_total"
    text = "Count the seconds of this sentence. And of this one too."
    with httpx.Client(base_url=stack.gateway_url, timeout=120) as client:
        before = client.get("/metrics").text
        speech = client.post(
            "/v1/audio/speech",
            json={"input": text, "voice": "af_heart", "model": "tts-1", "response_format": "pcm"},
        )
        after = client.get("/metrics").text
    assert speech.status_code == 200
    seconds = len(speech.content) / 2 / 24000  # 16-bit mono at 24 kHz
    assert seconds > 0.5
    assert sample(after, name, format="pcm") - sample(before, name, format="pcm") == pytest.approx(seconds, abs=2e-3)
    assert sample(after, name, format="mp3") == sample(before, name, format="mp3")
    lines = [line for line in stack.log_text().splitlines() if f"chars={len(text)} format=pcm" in line]
    assert lines, "no access log line for the request"
    logged = re.search(r"audio_s=([0-9.]+)", lines[-1])
    assert logged and float(logged.group(1)) == pytest.approx(seconds, abs=2e-3)
