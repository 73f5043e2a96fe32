"""A client that goes away mid-stream stops the rest of its request's work (real stack)."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
import tritonclient.http as httpclient

from gateway.triton import DEFAULT_WINDOW
from tests.conftest import Stack
from tests.test_triton_kokoro import batch_stats, kokoro_inputs, metric

CHUNKS = 2 * DEFAULT_WINDOW  # one text chunk per line


def wait_for_log(stack: Stack, after: int, needle: str, timeout_s: float = 60) -> str:
    """The first log line past offset ``after`` that contains ``needle``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in stack.log_text()[after:].splitlines():
            if needle in line:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no log line with {needle!r} within {timeout_s} s")


def test_client_that_disconnects_mid_stream_stops_the_rest_of_its_chunks(stack: Stack) -> None:
    text = "\n".join(f"Line {i + 1}." for i in range(CHUNKS))
    phonemized = httpx.post(f"{stack.gateway_url}/v1/audio/phonemize", json={"input": text}, timeout=60).json()
    assert len(phonemized["chunks"]) == CHUNKS

    before, _ = batch_stats(stack)
    log_offset = len(stack.log_text())
    body = {"input": text, "voice": "af_heart", "response_format": "pcm"}
    with (
        httpx.Client(base_url=stack.gateway_url, timeout=120) as client,
        client.stream("POST", "/v1/audio/speech", json=body) as response,
    ):
        assert response.status_code == 200
        assert next(response.iter_bytes())
    # Leaving the block closed the connection after the first audio bytes. The gateway logs the
    # request, marked incomplete, once it has stopped it: no chunk call starts after that line.
    line = wait_for_log(stack, log_offset, f"chunks={CHUNKS} stream=audio")
    assert "incomplete=True" in line, line
    # Every chunk call already in Triton's queue runs before this sentinel request (one instance,
    # first in, first out), so once it is answered the counters hold all of them.
    httpclient.InferenceServerClient(stack.triton_http_url).infer("kokoro", kokoro_inputs("hˈI", "af_heart"))
    served = batch_stats(stack, at_least=before + 2)[0] - before - 1

    # What was already sent may run: the window, refilled by the few results consumed before the
    # disconnect was seen (33 measured); the other chunks never go out.
    assert 1 <= served <= DEFAULT_WINDOW + 4, f"{served} of {CHUNKS} chunks ran although the client left"


@pytest.mark.parametrize("route", ["/v1/audio/speech", "/v1/audio/speech/timestamps"])
def test_client_that_leaves_before_its_first_audio_stops_its_request_at_once(stack: Stack, route: str) -> None:
    """A request whose chunks wait in Triton's queue behind another request's, and whose client gives
    up (a timeout) before any audio: the gateway sees the disconnect while it waits, cancels the
    chunk calls still queued and logs a 499, instead of noticing only once its first chunk (for
    timestamps: its last) has been synthesised."""
    busy_text = " ".join(f"Sentence number {i} of a text that keeps the model busy." for i in range(60))
    body = {"input": busy_text, "voice": "af_heart", "response_format": "pcm"}
    cancelled = "pattern_tts_kokoro_cancelled_requests_total"
    log_offset = len(stack.log_text())
    with (
        httpx.Client(base_url=stack.gateway_url, timeout=120) as client,
        client.stream("POST", "/v1/audio/speech", json=body) as busy,
    ):
        assert busy.status_code == 200
        reader = busy.iter_raw()  # kept: a body iterator closes its response when it is dropped
        assert next(reader)  # its other chunks are queued in Triton now
        before = httpx.get(stack.metrics_url).text
        gone_at = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{stack.gateway_url}{route}", json={**body, "seed": 7}, timeout=1.0)
        line = json.loads(wait_for_log(stack, log_offset, f"path={route} status=499"))["msg"]
        seen_after_s = time.monotonic() - gone_at
        assert next(reader, b""), "the busy request should still be streaming"
    assert seen_after_s < 5, f"the disconnect was seen {seen_after_s:.1f} s after the client left"
    assert 'error="The client closed the connection before the response started."' in line, line
    # Its chunk calls, still queued behind the busy request's batch, reach the model cancelled when
    # the next batch forms (the busy request's own mostly leave their running batch: stage "running").
    # It had sent what its phoneme budget lets out on CPU: at least two of its (nearly full) chunks.
    chunks = min(2, int(re.search(r"chunks=(\d+)", line).group(1)))  # type: ignore[union-attr]
    queued_before = metric(before, cancelled, "kokoro", stage="queued")
    deadline, queued = time.monotonic() + 60, 0.0
    while queued < chunks and time.monotonic() < deadline:
        time.sleep(0.2)
        queued = metric(httpx.get(stack.metrics_url).text, cancelled, "kokoro", stage="queued") - queued_before
    assert queued >= chunks, f"{queued:g} of its {chunks} chunks answered as cancelled without being synthesised"
