"""The gateway's Prometheus endpoint counts real requests."""

from __future__ import annotations

import re

import httpx

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
