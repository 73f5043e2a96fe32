"""A client that goes away mid-stream stops the rest of its request's work (real stack)."""

from __future__ import annotations

import time

import httpx
import tritonclient.http as httpclient

from gateway.triton import DEFAULT_WINDOW
from tests.conftest import Stack
from tests.test_triton_kokoro import batch_stats, kokoro_inputs

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
