"""PATTERN_TTS_MAX_CONCURRENT_REQUESTS: a gateway serving its limit of speech requests answers one more
with an OpenAI-shaped 503 and Retry-After at once, and takes requests again as soon as a slot is free.
A second gateway, started for this, in front of the shared stack's Triton."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import (
    Stack,
    assert_structured,
    free_ports,
    stack_env,
    start_pattern_tts,
    stop_process,
    wait_for,
)

# One: a second stream's first chunk would queue in Triton behind all of the first one's.
LIMIT = 1
# About 3 minutes of audio: still streaming while the test runs, whatever the machine.
LONG_TEXT = " ".join(f"Sentence number {i} of a long text that keeps the gateway busy." for i in range(200))
IN_FLIGHT = "pattern_tts_speech_requests_in_flight"


def in_flight(url: str) -> float:
    match = re.search(rf"^{IN_FLIGHT} ([0-9.e+]+)$", httpx.get(f"{url}/metrics").text, flags=re.MULTILINE)
    assert match, f"no {IN_FLIGHT} on /metrics"
    return float(match.group(1))


@pytest.fixture(scope="module")
def limited_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(URL, log) of a gateway with max_concurrent_requests=LIMIT, on the shared stack's Triton."""
    work = tmp_path_factory.mktemp("limited-gateway")
    (port,) = free_ports(1)
    env = stack_env(
        work / "cache",
        port=port,
        weights_dir=stack.weights_dir,
        triton_url=stack.triton_http_url,
        triton_grpc_url=stack.triton_grpc_url,
        max_concurrent_requests=LIMIT,
    )
    log_path = work / "gateway.log"
    process = start_pattern_tts(["gateway"], env, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/ready", process, log_path, 120)
        yield url, log_path
    finally:
        stop_process(process)
    assert process.returncode in (0, -15)  # uvicorn re-raises the SIGTERM once it has shut down
    log = log_path.read_text()
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
    assert_structured(log)


def test_a_request_over_the_limit_gets_a_503_with_retry_after(limited_gateway: tuple[str, Path]) -> None:
    url, log_path = limited_gateway
    body = {"model": "tts-1", "input": LONG_TEXT, "voice": "af_heart", "response_format": "pcm"}
    with (
        httpx.Client(base_url=url, timeout=120) as client,
        client.stream("POST", "/v1/audio/speech", json=body) as streaming,
    ):
        assert streaming.status_code == 200
        reader = streaming.iter_raw()  # kept: a body iterator closes its response when it is dropped
        assert next(reader)  # streaming: in flight until its body ends
        assert in_flight(url) == LIMIT

        started = time.monotonic()
        refused = client.post("/v1/audio/speech", json={**body, "input": "One more."})
        assert time.monotonic() - started < 2  # at once, not after a place in a queue
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        error = refused.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "server_overloaded"
        assert "PATTERN_TTS_MAX_CONCURRENT_REQUESTS" in error["message"]
        timestamps = client.post("/v1/audio/speech/timestamps", json={**body, "input": "One more."})
        assert timestamps.status_code == 503

        # The SDK sees the same error (no retries here; by default it retries after Retry-After).
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as raised:
            sdk.audio.speech.create(model="tts-1", voice="af_heart", input="One more.")
        assert raised.value.status_code == 503
        # Only speech is limited: the rest of the API answers.
        assert client.post("/v1/audio/phonemize", json={"input": "Still here."}).status_code == 200
        assert client.get("/ready").status_code == 200
    # The stream closed by its client: its slot is free again (once the gateway sees it gone).
    deadline = time.monotonic() + 30
    while in_flight(url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert in_flight(url) == 0

    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    audio = sdk.audio.speech.create(model="tts-1", voice="af_heart", input="My turn now.", response_format="wav")
    assert audio.content[:4] == b"RIFF"

    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    refusals = [e["msg"] for e in events if "status=503" in e["msg"]]
    assert len(refusals) == 3, refusals
    assert all(f'error="over max_concurrent_requests ({LIMIT})"' in msg for msg in refusals), refusals
