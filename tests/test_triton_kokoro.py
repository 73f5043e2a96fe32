"""The kokoro model in a real tritonserver: dynamic batches form, results match batch-1, and a bad
request fails alone. The batch tests run with both decoders: per item (the CPU default, each
response sent as soon as its item is done) and batched (the GPU default, responses returned
together), each in its own tritonserver."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient
from tritonclient.utils import InferenceServerException

from bench.triton_direct import RequestTrace, perf_analyzer, perf_analyzer_binary, write_input_data
from pattern_tts import allocator
from pattern_tts.cpu import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_ENV
from pattern_tts.settings import STREAM_PRIORITY_LEVELS, Settings
from pattern_tts.synthesis.engine import MAX_PHONEMES
from tests.conftest import Stack, idle_releases, model_process, serve_stack, wait_for_idle_release

# Phonemes of very different lengths (Kokoro's symbols), as the g2p model would produce them.
PHONEMES = [
    "hˈI",
    "ðə kwˈɪk bɹˈWn fˈɑks.",
    "ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɔɡ, ænd ɹˈʌnz əwˈA.",
    "wˌʌns əpˌɑn ə tˈIm, ðɛɹ wʌz ə lˈɪtᵊl ɡˈɜɹl hˌu lˈɪvd ɪn ə vˈɪlɪʤ nˌɪɹ ðə fˈɔɹəst.",
    "ɪt wʌz ðə bˈɛst ʌv tˈImz.",
    "ˈɔl hjˈumən bˈiɪŋz ɑɹ bˈɔɹn fɹˈi ænd ˈikwəl ɪn dˈɪɡnᵻti ænd ɹˈIts.",
    "jˈɛs.",
    "kˈɔl mˌi ˈɪʃmeɪl. sˌʌm jˈɪɹz əɡˈO, nˈɛvəɹ mˈIndhWlˈɔŋ pɹəsˈIsli.",
]
VOICES = ["af_heart", "am_adam", "af_bella+af_sky", "bf_emma", "af_sky", "am_echo", "af_nova", "bm_george"]
# Alone or in a batch, a request's audio from the tiny model is the same to float rounding: about 115 dB
# in float32, and int16 pcm rounds on top (test_engine.py checks the batched decoder in-process).
MATCH_SNR_DB = 60.0


@pytest.fixture(scope="module")
def batched_decoder_stack(tiny_weights_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack with the decoder batched across requests, as on GPU, and Triton priority levels by
    a chunk's place in its request (`stream_priority`)."""
    with serve_stack(
        tiny_weights_dir,
        tmp_path_factory.mktemp("batched"),
        max_queue_delay_us=20000,
        batch_decoder="true",
        stream_priority="true",
        lead_split_max_in_flight=1000,  # as the shared stack: cut alike alone and among others
        release_memory_above_mib=1,  # always above: its model hands freed memory back after every item
    ) as running:
        yield running


@pytest.fixture(params=["per-item-decoder", "batched-decoder"])
def any_stack(request: pytest.FixtureRequest) -> Stack:
    name = "stack" if request.param == "per-item-decoder" else "batched_decoder_stack"
    return request.getfixturevalue(name)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = float(np.sum((reference - other) ** 2))
    return 10 * np.log10(float(np.sum(reference**2)) / max(error, 1e-20))


def metric(text: str, name: str, model: str, **labels: str) -> float:
    """The sum of the series ``name`` of ``model`` (and with ``labels``) in a Prometheus text page."""
    having = "".join(f'(?=[^}}]*{k}="{v}")' for k, v in {"model": model, **labels}.items())
    pattern = rf"^{name}{{{having}[^}}]*}} ([0-9.e+-]+)$"
    return sum(float(m) for m in re.findall(pattern, text, flags=re.MULTILINE))


def kokoro_inputs(phonemes: str, voice: str, seed: int = 0, protocol: Any = httpclient) -> list[Any]:
    """The kokoro model's inputs for ``protocol``'s client (``tritonclient.http`` or ``.grpc``)."""
    inputs = [
        protocol.InferInput("phonemes", [1, 1], "BYTES"),
        protocol.InferInput("voice", [1, 1], "BYTES"),
        protocol.InferInput("seed", [1, 1], "INT64"),
    ]
    inputs[0].set_data_from_numpy(np.array([[phonemes.encode()]], dtype=np.object_))
    inputs[1].set_data_from_numpy(np.array([[voice.encode()]], dtype=np.object_))
    inputs[2].set_data_from_numpy(np.array([[seed]], dtype=np.int64))
    return inputs


def metrics_page(stack: Stack, name: str, at_least: float, timeout_s: float, **labels: str) -> str:
    """The stack's metrics page once the kokoro model's ``name`` (with ``labels``) reaches ``at_least``,
    or after ``timeout_s``: counters are updated just after a response is sent."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(stack.metrics_url).text
        if metric(text, name, "kokoro", **labels) >= at_least or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def batch_stats(stack: Stack, at_least: float = 0.0) -> tuple[float, float]:
    """(requests served, executions) of the kokoro model; waits up to 10 s until ``at_least`` requests
    show."""
    text = metrics_page(stack, "nv_inference_request_success", at_least, 10)
    return metric(text, "nv_inference_request_success", "kokoro"), metric(text, "nv_inference_exec_count", "kokoro")


async def infer_concurrently(url: str, requests: list[tuple[str, str, int]]) -> list:
    client = aioclient.InferenceServerClient(url)
    try:
        tasks = [client.infer("kokoro", kokoro_inputs(p, v, s)) for p, v, s in requests]
        return await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await client.close()


def test_concurrent_requests_form_batches_and_match_batch1(any_stack: Stack) -> None:
    stack = any_stack
    client = httpclient.InferenceServerClient(stack.triton_http_url)
    requests = [(p, v, 100 + i) for i, (p, v) in enumerate(zip(PHONEMES, VOICES, strict=True))]
    alone = [client.infer("kokoro", kokoro_inputs(*r)) for r in requests]  # one at a time

    before = batch_stats(stack)
    together = asyncio.run(infer_concurrently(stack.triton_http_url, requests))
    after = batch_stats(stack, at_least=before[0] + len(requests))

    served, executions = after[0] - before[0], after[1] - before[1]
    assert served == len(requests)
    assert executions < served, f"{served} requests in {executions} executions: no batch formed"
    for (phonemes, _, _), single, batched in zip(requests, alone, together, strict=True):
        assert not isinstance(batched, Exception), batched
        durations = single.as_numpy("durations")[0]
        assert len(durations) == len(phonemes) + 2
        np.testing.assert_array_equal(batched.as_numpy("durations")[0], durations)
        wave, wave_batched = single.as_numpy("waveform")[0], batched.as_numpy("waveform")[0]
        assert len(wave) == durations.sum() * 600
        assert wave_batched.shape == wave.shape
        assert snr_db(wave, wave_batched) >= MATCH_SNR_DB


def test_short_request_of_a_batch_is_answered_before_the_long_one_is_decoded(stack: Stack) -> None:
    """On CPU the decoder runs per item, shortest first, and each response is sent as soon as its
    item is done: a short request batched with a long one does not wait for the long one."""
    long_phonemes = " ".join(PHONEMES[3] for _ in range(4))[:400]
    requests = [(long_phonemes, "af_heart", 1), (PHONEMES[0], "am_adam", 2)]

    async def timed_together() -> list[float]:
        client = aioclient.InferenceServerClient(stack.triton_http_url)
        start = time.monotonic()

        async def one(request: tuple[str, str, int]) -> float:
            result = await client.infer("kokoro", kokoro_inputs(*request))
            assert result.as_numpy("waveform").size > 0
            return time.monotonic() - start

        try:
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            await client.close()

    before = batch_stats(stack)
    long_done, short_done = asyncio.run(timed_together())
    after = batch_stats(stack, at_least=before[0] + 2)
    assert after[1] - before[1] == 1, "the two requests were not batched together"
    # The long item's decoder runs after the short one's response went out.
    assert short_done < long_done - 0.2, (short_done, long_done)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (("hˈI", "no_such_voice"), "unknown voice 'no_such_voice'"),
        (("", "af_heart"), "phonemes are empty"),
        (("ə" * 511, "af_heart"), "more than the limit of 510"),
    ],
    ids=["unknown-voice", "empty", "too-long"],
)
def test_bad_request_fails_alone_in_its_batch(
    any_stack: Stack, bad: tuple[str, str], message: str
) -> None:
    stack = any_stack
    requests = [(PHONEMES[i], VOICES[i], i) for i in range(1, 5)]
    requests.insert(2, (*bad, 0))
    before = batch_stats(stack)
    results = asyncio.run(infer_concurrently(stack.triton_http_url, requests))
    after = batch_stats(stack, at_least=before[0] + len(requests) - 1)

    assert after[1] - before[1] < len(requests), "the bad request was not batched with the others"
    error = results.pop(2)
    assert isinstance(error, InferenceServerException)
    assert message in error.message()
    for result in results:
        assert not isinstance(result, Exception), result
        assert result.as_numpy("waveform").size > 0


def test_gateway_requests_batch_and_match_their_solo_output(any_stack: Stack) -> None:
    """8 concurrent multi-sentence requests through the gateway: fewer Triton executions than
    kokoro requests, and each response is what the same request gets alone (with
    `stream_priority`, the batched-decoder stack: chunks at priority levels 1 and 2 batch together)."""
    stack = any_stack
    texts = [
        f"This is request number {n}, and it starts here. It ends here." for n in range(8)
    ]

    def body(text: str) -> dict[str, str]:
        return {"model": "tts-1", "input": text, "voice": "af_heart", "response_format": "pcm"}

    with httpx.Client(base_url=stack.gateway_url, timeout=300) as client:
        solo = [client.post("/v1/audio/speech", json=body(t)).content for t in texts]

    async def together() -> list[bytes]:
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=300) as client:
            responses = await asyncio.gather(*(client.post("/v1/audio/speech", json=body(t)) for t in texts))
        assert all(r.status_code == 200 for r in responses)
        return [r.content for r in responses]

    before = batch_stats(stack)
    concurrent = asyncio.run(together())
    after = batch_stats(stack, at_least=before[0] + 2 * len(texts))
    served, executions = after[0] - before[0], after[1] - before[1]
    assert served >= len(texts) * 2  # several chunks per request
    assert executions < served / 2, f"{served} kokoro requests in {executions} executions"
    for alone, batched in zip(solo, concurrent, strict=True):
        a = np.frombuffer(alone, dtype="<i2").astype(np.float32)
        b = np.frombuffer(batched, dtype="<i2").astype(np.float32)
        assert a.shape == b.shape and a.size > 0
        assert snr_db(a, b) >= MATCH_SNR_DB


def test_stream_priority_renders_priority_levels(stack: Stack, batched_decoder_stack: Stack) -> None:
    """Triton's kokoro config: 4 priority levels with `stream_priority`, none without."""
    for running, levels in ((stack, 0), (batched_decoder_stack, STREAM_PRIORITY_LEVELS)):
        config = httpclient.InferenceServerClient(running.triton_http_url).get_model_config("kokoro")
        batching = config["dynamic_batching"]
        assert int(batching.get("priority_levels", 0)) == levels
        assert int(batching.get("default_priority_level", 0)) == levels


def test_triton_traces_each_request_on_the_monotonic_clock_when_asked(stack: Stack) -> None:
    client = httpclient.InferenceServerClient(stack.triton_http_url)
    trace = RequestTrace(f"http://{stack.triton_http_url}", stack.trace_file)
    before = time.monotonic_ns()
    with trace:
        start = time.perf_counter()
        waveform = client.infer("kokoro", kokoro_inputs(PHONEMES[1], VOICES[0])).as_numpy("waveform")
        latency = time.perf_counter() - start
    inside = trace.inside((before, time.monotonic_ns()))
    assert waveform.size > 0
    assert 0 < inside <= latency  # Triton's part of the call, as its trace times it
    # Over gRPC too (the gateway's protocol), call after call: the span ends when Triton starts to
    # send, not at GRPC_SEND_END, which gRPC often stamps after the client has the response.
    grpc = grpcclient.InferenceServerClient(stack.triton_grpc_url)
    with trace:
        for phonemes in PHONEMES[:2] * 3:
            before = time.monotonic_ns()
            start = time.perf_counter()
            grpc.infer("kokoro", kokoro_inputs(phonemes, VOICES[0], protocol=grpcclient))
            latency = time.perf_counter() - start
            assert 0 < trace.inside((before, time.monotonic_ns())) <= latency
    # Off again: later requests are not traced.
    traced = len(trace.spans())
    client.infer("kokoro", kokoro_inputs(PHONEMES[0], VOICES[0]))
    time.sleep(0.5)
    assert len(trace.spans()) == traced


def test_perf_analyzer_load_tests_kokoro_with_phoneme_input_data(stack: Stack, tmp_path: Path) -> None:
    """The load-testing path the README gives: scripts/perf_analyzer.sh (the tritonclient wheel's binary,
    its libraries found) runs a corpus of phonemes against kokoro, and Triton batches its requests."""
    binary = perf_analyzer_binary()
    assert binary is not None, "no perf_analyzer next to the venv's python (tritonclient==2.51.0)"
    data = write_input_data(tmp_path / "input.json", PHONEMES, "af_heart")
    result = perf_analyzer(binary, stack.triton_http_url, stack.metrics_url, data, concurrency=4, request_count=16,
                           workdir=tmp_path, timeout_s=300)  # fmt: skip
    assert result["rc"] == 0, result.get("error")
    assert result["infer_per_s"] > 0 and result["latency_p95_s"] > 0
    assert result["server_requests"] >= 16
    assert result["mean_batch"] > 1, f"{result['server_requests']} requests in {result['server_executions']} executions"


def model_process_environ(stack: Stack, model: str) -> dict[str, str]:
    """The environment of the python stub that runs ``model`` in ``stack``."""
    pairs = Path(f"/proc/{model_process(stack, model)}/environ").read_bytes().split(b"\0")
    return dict(p.decode(errors="replace").partition("=")[::2] for p in pairs if p)


def test_kokoro_model_process_runs_with_the_memory_settings(stack: Stack) -> None:
    """oneDNN's primitive cache bound (pattern_tts/cpu.py) and jemalloc where installed
    (pattern_tts/allocator.py) reach the process that runs the kokoro model."""
    env = model_process_environ(stack, "kokoro")
    assert env.get(ONEDNN_CACHE_ENV) == str(ONEDNN_CACHE_CAPACITY)
    jemalloc = allocator.find_jemalloc()
    if jemalloc is not None:
        assert str(jemalloc) in env.get("LD_PRELOAD", "").split(":")
        assert env.get("MALLOC_CONF") == allocator.JEMALLOC_CONF


def test_kokoro_model_hands_freed_memory_back_once_idle(stack: Stack) -> None:
    """`release_memory_after_idle_s` after a long request, and not before, the kokoro process hands
    the memory that request freed back to the system: one log event, with its RSS before and after."""
    after_s = Settings.model_fields["release_memory_after_idle_s"].default
    longest = " ".join(PHONEMES * 2)[:MAX_PHONEMES]
    httpclient.InferenceServerClient(stack.triton_http_url).infer("kokoro", kokoro_inputs(longest, "af_heart"))
    done = dt.datetime.now(dt.UTC)

    wait_for_idle_release(stack, done, after_s + 20)
    time.sleep(1)  # a second release, were there one, would come right after the first
    events = idle_releases(stack, done)
    assert len(events) == 1, events
    waited = (dt.datetime.fromisoformat(events[0]["ts"]) - done).total_seconds()
    assert after_s - 0.5 <= waited <= after_s + 10, waited
    before, after = map(float, re.findall(r"RSS (\d+) -> (\d+) MiB", events[0]["msg"])[0])
    assert after < before, events[0]["msg"]
    assert memory_releases(stack, "idle") >= 1


def memory_releases(stack: Stack, reason: str, at_least: float = 0.0) -> float:
    """The kokoro model's ``pattern_tts_kokoro_memory_releases_total`` for ``reason``; waits up to 5 s
    for ``at_least`` (the model counts a release after it has answered)."""
    name = "pattern_tts_kokoro_memory_releases_total"
    return metric(metrics_page(stack, name, at_least, 5, reason=reason), name, "kokoro", reason=reason)


def test_kokoro_model_hands_freed_memory_back_after_an_item_past_its_limit(
    stack: Stack, batched_decoder_stack: Stack
) -> None:
    """`release_memory_above_mib`: past it, the kokoro model hands freed memory back after each item it
    answers, and counts it. The batched-decoder stack's 1 MiB is always past; the shared stack's default
    is above the tiny model's process at rest, so a short request there is not followed by a release."""
    limits = {}
    for name, running in (("default", stack), ("1 MiB", batched_decoder_stack)):
        loaded = [line for line in running.log_text().splitlines() if "kokoro: loaded on" in line]
        limits[name] = re.findall(r"release_memory_above_mib=(\w+)", loaded[-1])
    default = Settings.model_fields["release_memory_above_mib"].default
    assert limits == {"default": [str(default)], "1 MiB": ["1"]}
    assert allocator.resident_mib(model_process(stack, "kokoro")) < default

    before = {id(running): memory_releases(running, "above_limit") for running in (stack, batched_decoder_stack)}
    for running in (stack, batched_decoder_stack):
        # Closed when done: Triton's shutdown waits for open HTTP connections (up to its exit timeout).
        with closing(httpclient.InferenceServerClient(running.triton_http_url)) as client:
            client.infer("kokoro", kokoro_inputs(PHONEMES[0], "af_heart"))
    released = before[id(batched_decoder_stack)] + 1
    assert memory_releases(batched_decoder_stack, "above_limit", released) == released
    assert memory_releases(stack, "above_limit") == before[id(stack)]


def test_requests_cancelled_while_their_batch_runs_are_not_synthesised(stack: Stack) -> None:
    """Six long requests; once the first is answered the client cancels the others (as the gateway
    does when its client leaves). The per-item decoder asks before each item, so the model is free
    again after at most the item it was decoding: before, it synthesised all six, and a request sent
    after the cancellation waited for them. The model's own counters on Triton's metrics port say
    how many it left out and how much audio it made."""
    import tritonclient.grpc.aio as grpcaio

    long_phonemes = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɔɡ. " * 6  # 300 symbols, about 20 s of audio

    async def first_then_cancel() -> tuple[float, float, int, int]:
        client = grpcaio.InferenceServerClient(stack.triton_grpc_url)
        try:
            start = time.monotonic()
            calls = [
                asyncio.create_task(client.infer("kokoro", kokoro_inputs(long_phonemes, "af_heart", i, grpcclient)))
                for i in range(6)
            ]
            done, pending = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
            first_s = time.monotonic() - start
            for call in pending:
                call.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            cancelled = time.monotonic()
            # One instance, first in, first out: this runs once the model is done with the six.
            short = await client.infer("kokoro", kokoro_inputs("hˈI", "af_heart", 0, grpcclient))
            long_samples = next(iter(done)).result().as_numpy("waveform").shape[1]
            short_samples = short.as_numpy("waveform").shape[1]
            return first_s, time.monotonic() - cancelled, long_samples, short_samples
        finally:
            await client.close()

    audio, cancelled = "pattern_tts_kokoro_audio_seconds_total", "pattern_tts_kokoro_cancelled_requests_total"
    before = httpx.get(stack.metrics_url).text
    first_s, after_cancel_s, long_samples, short_samples = asyncio.run(first_then_cancel())
    assert after_cancel_s < 1.5 * first_s, f"free {after_cancel_s:.1f} s after cancelling; one item: {first_s:.1f} s"

    after = httpx.get(stack.metrics_url).text
    left_out = metric(after, cancelled, "kokoro") - metric(before, cancelled, "kokoro")
    # The item after the first was decoding before the cancellations arrived; the others were left out.
    assert 1 <= left_out <= 5
    assert metric(after, cancelled, "kokoro", stage="running") > metric(before, cancelled, "kokoro", stage="running")
    # Every long item synthesised (the same length whatever its seed) and the short one, no more.
    made = ((6 - left_out) * long_samples + short_samples) / 24000
    assert metric(after, audio, "kokoro") - metric(before, audio, "kokoro") == pytest.approx(made, abs=1e-3)
