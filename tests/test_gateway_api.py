"""The OpenAI speech API end to end: real tritonserver + gateway (fixture `stack`), tiny model.

Inputs are short: the tiny random-weight model synthesises about one second of audio per second of
CPU. Clients are the official `openai` SDK (`max_retries=0`) and httpx, with the bodies real clients
send.
"""

from __future__ import annotations

import base64
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import av
import httpx
import numpy as np
import openai
import pytest

from tests.conftest import assert_synthesised_in_full

RATE = 24_000
TEXT = "Hello there. How are you?"
FIVE = "It is a day. We go out. The sun is up. Birds sing. We go home."
ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
FORMATS: list[ResponseFormat] = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def _url(value: str) -> str:
    return value if value.startswith("http") else f"http://{value}"


@pytest.fixture(scope="module")
def base_url(stack: Any) -> str:
    return _url(str(stack.gateway_url)).rstrip("/")


@pytest.fixture(scope="module")
def http(base_url: str) -> Any:
    with httpx.Client(base_url=base_url, timeout=300) as client:
        yield client


@pytest.fixture(scope="module")
def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key="sk-unused", max_retries=0, timeout=300)


def _metrics_url(stack: Any) -> str:
    url = _url(str(stack.metrics_url))
    return url if url.endswith("/metrics") else url.rstrip("/") + "/metrics"


def kokoro_successes(stack: Any) -> float:
    text = httpx.get(_metrics_url(stack), timeout=10).text
    values = re.findall(r'^nv_inference_request_success\{model="kokoro"[^}]*\} (\S+)', text, re.M)
    return sum(float(v) for v in values)


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    """Mono float samples and their rate, decoded with PyAV (pcm: as OpenAI defines it)."""
    if fmt == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768, RATE
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        frames: list[np.ndarray] = [frame.to_ndarray() for frame in container.decode(stream)]
        rate = stream.codec_context.sample_rate
        channels = stream.codec_context.channels
    assert channels == 1
    samples = np.concatenate(frames, axis=1)
    assert samples.shape[0] == 1
    if np.issubdtype(samples.dtype, np.integer):  # s16 / s32 -> [-1, 1)
        return samples[0].astype(np.float32) / float(-np.iinfo(samples.dtype).min), rate
    return samples[0].astype(np.float32), rate


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    n = min(len(ref), len(test))
    noise = np.sum((ref[:n] - test[:n]) ** 2)
    return float(10 * np.log10(np.sum(ref[:n] ** 2) / max(noise, 1e-20)))


def sse_events(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


@pytest.fixture(scope="module")
def reference(sdk: openai.OpenAI) -> np.ndarray:
    """The model's output for TEXT (pcm is exact: 16-bit samples, no codec delay)."""
    data = sdk.audio.speech.create(
        model="kokoro", voice="af_heart", input=TEXT, response_format="pcm"
    ).content
    samples, _ = decode(data, "pcm")
    assert len(samples) > RATE // 4
    return samples


# --- issue 3: the spine ---------------------------------------------------------------------------


def test_health_and_ready(http: httpx.Client) -> None:
    assert http.get("/health").status_code == 200
    r = http.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["models"] == {"g2p": True, "kokoro": True}


@pytest.mark.parametrize("fmt", FORMATS)
def test_sdk_every_format_decodes_at_24khz_mono(sdk: openai.OpenAI, reference: np.ndarray, fmt: ResponseFormat) -> None:
    raw = sdk.audio.speech.with_raw_response.create(
        model="tts-1", voice="af_heart", input=TEXT, response_format=fmt
    )
    assert raw.headers["content-type"].startswith(CONTENT_TYPES[fmt])
    response = raw.parse()  # what `speech.create` returns
    samples, rate = decode(response.content, fmt)
    if fmt == "opus":  # Opus decoders always output 48 kHz; OpusHead records the 24 kHz input
        head = response.content.index(b"OpusHead")
        assert int.from_bytes(response.content[head + 12 : head + 16], "little") == RATE
        assert rate == 48_000
    else:
        assert rate == RATE
    assert abs(len(samples) / rate - len(reference) / RATE) <= 0.05


def test_duration_matches_model_durations(http: httpx.Client, reference: np.ndarray) -> None:
    body = http.post(
        "/v1/audio/speech/timestamps",
        json={"model": "kokoro", "input": TEXT, "voice": "af_heart", "response_format": "wav"},
    ).json()
    samples, rate = decode(base64.b64decode(body["audio"]), "wav")
    assert rate == RATE
    assert len(samples) == len(reference)
    assert body["duration"] == pytest.approx(len(samples) / RATE, abs=1e-3)
    assert 0 < body["words"][-1]["end"] <= body["duration"]


def test_unknown_voice_is_bad_request_error(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.audio.speech.create(model="tts-1", voice="nobody", input=TEXT)
    body = exc.value.body
    assert isinstance(body, dict)
    err = body.get("error", body)
    assert err["param"] == "voice"
    assert err["type"] == "invalid_request_error"
    assert "/v1/audio/voices" in err["message"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"response_format": "ogg"}, "response_format"),
        ({"speed": 0.2}, "speed"),
        ({"speed": 4.01}, "speed"),
        ({"input": ""}, "input"),
        ({"input": "a " * 50_001}, "input"),
        ({"voice": "af_bella+nobody"}, "voice"),
        ({"voice": "af_bella(0)+af_sky(1)"}, "voice"),
    ],
)
def test_bad_requests_are_400(sdk: openai.OpenAI, extra: dict[str, Any], param: str) -> None:
    args: dict[str, Any] = {"model": "tts-1", "voice": "af_heart", "input": TEXT, **extra}
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.audio.speech.create(**args)
    body = exc.value.body
    assert isinstance(body, dict)
    assert body.get("error", body)["param"] == param
    if param == "input" and len(args["input"]) > 1000:
        assert "limit" in body.get("error", body)["message"]


def test_voices_models_and_aliases(http: httpx.Client, sdk: openai.OpenAI) -> None:
    voices = {v["id"]: v for v in http.get("/v1/audio/voices").json()["voices"]}
    for name in ("af_bella", "af_sarah", "af_heart", "am_adam", "af", "am", "alloy", "onyx"):
        assert name in voices
        assert voices[name]["name"]
    assert [m.id for m in sdk.models.list()] == ["kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"]


# --- issue 5: the whole surface -------------------------------------------------------------------


def test_streaming_response_is_chunked_and_complete(sdk: openai.OpenAI, reference: np.ndarray) -> None:
    parts: list[bytes] = []
    with sdk.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="af_heart", input=TEXT, response_format="wav"
    ) as response:
        assert response.headers["content-type"].startswith("audio/wav")
        for part in response.iter_bytes():
            parts.append(part)
    samples, rate = decode(b"".join(parts), "wav")
    assert rate == RATE
    assert len(samples) == len(reference)
    assert snr_db(reference, samples) > 30


def test_first_bytes_arrive_before_the_last_chunk_is_synthesised(stack: Any, http: httpx.Client) -> None:
    before = kokoro_successes(stack)
    at_first_bytes = None
    total = 0
    with http.stream(
        "POST", "/v1/audio/speech", json={"input": FIVE, "voice": "af_sky", "response_format": "pcm"}
    ) as r:
        assert r.status_code == 200
        for part in r.iter_raw():
            if at_first_bytes is None and part:
                at_first_bytes = kokoro_successes(stack) - before
            total += len(part)
    after = kokoro_successes(stack) - before
    assert total > 0
    assert after >= 2  # the five sentences went to kokoro as more than one chunk
    assert at_first_bytes is not None and at_first_bytes < after


def test_sse_events_concatenate_to_the_same_audio(http: httpx.Client, reference: np.ndarray) -> None:
    r = http.post(
        "/v1/audio/speech",
        json={"input": TEXT, "voice": "af_heart", "response_format": "pcm", "stream_format": "sse"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1]["type"] == "speech.audio.done"
    assert all(e["type"] == "speech.audio.delta" for e in events[:-1]) and len(events) > 1
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    samples, _ = decode(audio, "pcm")
    assert len(samples) == len(reference)
    assert snr_db(reference, samples) > 30
    usage = events[-1]["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_sse_mp3_deltas_form_one_file(http: httpx.Client, reference: np.ndarray) -> None:
    r = http.post(
        "/v1/audio/speech",
        json={"input": TEXT, "voice": "af_heart", "response_format": "mp3", "stream_format": "sse"},
    )
    audio = b"".join(base64.b64decode(e["audio"]) for e in sse_events(r.text) if "audio" in e)
    samples, rate = decode(audio, "mp3")
    assert rate == RATE
    assert abs(len(samples) - len(reference)) / RATE <= 0.05


def test_blends_and_voice_objects_synthesise(http: httpx.Client) -> None:
    def pcm(voice: Any) -> np.ndarray:
        r = http.post("/v1/audio/speech", json={"input": "Hi.", "voice": voice, "response_format": "pcm"})
        assert r.status_code == 200, (voice, r.text)
        return decode(r.content, "pcm")[0]

    bella = pcm("af_bella")
    blend = pcm("af_bella(2)+am_adam(1)")
    alias_blend = pcm({"id": " af "})  # the alias af is itself a blend
    for other in (blend, alias_blend):
        assert len(other) > 0
        assert len(other) != len(bella) or snr_db(bella, other) < 30  # a different voice


def test_word_timestamps(http: httpx.Client) -> None:
    body = http.post(
        "/v1/audio/speech/timestamps", json={"input": FIVE, "voice": "af_heart", "response_format": "mp3"}
    ).json()
    assert body["format"] == "mp3"
    samples, rate = decode(base64.b64decode(body["audio"]), "mp3")
    duration = len(samples) / rate
    words = body["words"]
    assert [re.sub(r"\W", "", w["word"]) for w in words] == re.findall(r"\w+", FIVE)
    previous_end = 0.0
    for w in words:
        assert previous_end <= w["start"] <= w["end"] <= body["duration"] <= duration
        previous_end = w["end"]


def test_phonemize_and_synthesise_from_phonemes(http: httpx.Client, reference: np.ndarray) -> None:
    r = http.post("/v1/audio/phonemize", json={"input": TEXT, "lang": "a"})
    assert r.status_code == 200
    phonemes = r.json()["phonemes"]
    assert phonemes and r.json()["chunks"]
    body = {"input": phonemes, "input_type": "phonemes", "voice": "af_heart", "response_format": "pcm"}
    ts = http.post("/v1/audio/speech/timestamps", json=body).json()
    assert len(ts["words"]) == len(phonemes.split())
    samples, _ = decode(base64.b64decode(ts["audio"]), "pcm")
    assert len(samples) == len(reference)  # the same phonemes as the text: the same audio


def test_phonemize_japanese(http: httpx.Client) -> None:
    """The g2p model reads Japanese (lang j): misaki's phonemes, one chunk per sentence group."""
    r = http.post("/v1/audio/phonemize", json={"input": "こんにちは。今日の説明を始めます。", "lang": "ja"})
    assert r.status_code == 200, r.text
    assert r.json()["phonemes"] == "koɲɲiʨiβa. kʲoː no seʦɨmeː o haʥimemasɨ."


def test_numbers_misaki_cannot_read_are_spoken(http: httpx.Client) -> None:
    """Long numbers went to num2words or cutlet, which raise (a 500): they are read digit by digit."""
    for text, lang in [("Card 4111111111111111, total " + "9" * 400 + ".", "a"), ("電話は09012345678です。", "j")]:
        r = http.post("/v1/audio/phonemize", json={"input": text, "lang": lang})
        assert r.status_code == 200, r.text
        assert len(r.json()["phonemes"]) > 30


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/v1/audio/phonemize"])
def test_lone_surrogates_in_input_are_400(http: httpx.Client, path: str) -> None:
    """JSON can carry a lone UTF-16 surrogate, UTF-8 cannot: a client error, not a 500."""
    body = b'{"input": "Hello \\udcff world", "voice": "af_heart"}'
    r = http.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "input" and err["code"] == "invalid_value"
    assert "surrogate" in err["message"] and "character 6" in err["message"]


def test_speed_changes_duration(http: httpx.Client, reference: np.ndarray) -> None:
    body = {"input": TEXT, "voice": "af_heart", "response_format": "pcm", "speed": 2.0}
    assert len(http.post("/v1/audio/speech", json=body).content) / 2 < len(reference)


def test_concurrent_requests(base_url: str) -> None:
    def one(i: int) -> int:
        body = {"input": "Hi.", "voice": ["af_sky", "am_adam", "bf_emma"][i], "response_format": "wav"}
        return httpx.post(base_url + "/v1/audio/speech", json=body, timeout=300).status_code

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(one, range(3))) == [200] * 3


# --- real clients, as they call us -----------------------------------------------------------------


def test_open_webui(http: httpx.Client) -> None:
    voices = http.get("/v1/audio/voices").json()["voices"]
    assert all("id" in v and "name" in v for v in voices)
    models = http.get("/v1/audio/models").json()["models"]
    assert {"id": "tts-1", "name": "tts-1"} in models
    r = http.post(
        "/v1/audio/speech",
        json={"input": "Hi.", "voice": voices[0]["id"], "model": "tts-1"},
        headers={"Authorization": "Bearer sk-1234"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "audio/mpeg"
    assert decode(r.content, "mp3")[1] == RATE


def test_sillytavern(http: httpx.Client) -> None:
    r = http.post(
        "/v1/audio/speech",
        json={"input": "Hi.", "voice": "af_bella", "model": "tts-1", "response_format": "mp3", "speed": 1.25},
    )
    assert r.status_code == 200
    assert decode(r.content, "mp3")[1] == RATE


def test_home_assistant_key_check(base_url: str) -> None:
    # Its key check: input "." with voice alloy; it may send no Authorization header at all.
    r = httpx.post(
        base_url + "/v1/audio/speech",
        json={"model": "tts-1", "voice": "alloy", "input": ".", "response_format": "mp3", "speed": 1.0},
        timeout=300,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "audio/mpeg"
    assert len(r.content) > 0


def test_librechat(http: httpx.Client) -> None:
    r = http.post(
        "/v1/audio/speech",
        json={"input": "Hi.", "model": "tts-1", "voice": "alloy", "backend": "openai"},
        headers={"Authorization": "undefined"},
    )
    assert r.status_code == 200
    assert decode(r.content, "mp3")[1] == RATE


def test_livekit_sse(sdk: openai.OpenAI) -> None:
    # LiveKit's OpenAI TTS adapter: gpt-4o-mini-tts, pcm, stream_format sse, instructions.
    with sdk.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts",
        voice="ash",
        input="Hi.",
        instructions="Speak in a friendly tone.",
        response_format="pcm",
        stream_format="sse",
    ) as response:
        body = response.read().decode()
    events = sse_events(body)
    assert events[-1]["type"] == "speech.audio.done"
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    assert len(audio) > 0 and len(audio) % 2 == 0


def test_long_text_is_chunked_within_context_and_nothing_is_dropped(http: httpx.Client) -> None:
    # 20,000 characters through G2P and the gateway's chunking (synthesising it all with the tiny
    # model would take many minutes of CPU).
    sentence = "The quick brown fox number {i} jumps over the lazy dog, and then it runs away. "
    text = "".join(sentence.format(i=i) for i in range(400))[:20_000]
    r = http.post("/v1/audio/phonemize", json={"input": text})
    assert r.status_code == 200
    chunks = r.json()["chunks"]
    assert len(chunks) > 10
    assert all(0 < len(c["phonemes"]) <= 510 for c in chunks)
    spoken = re.findall(r"[A-Za-z]+", " ".join(c["text"] for c in chunks))
    assert spoken == re.findall(r"[A-Za-z]+", text)


def test_20000_characters_are_synthesised_in_full(http: httpx.Client) -> None:
    """A 20,000-character input, synthesised (not only phonemised): every word of the input is in
    the timestamps, in order, inside the audio (about 85 s on 2 cores, at speed 4)."""
    from bench.corpus import paragraphs

    corpus = "\n".join(p for _, p in paragraphs())
    text = (corpus * (20_000 // len(corpus) + 1))[:20_000].rsplit(" ", 1)[0]
    body = {"input": text, "voice": "af_heart", "response_format": "pcm", "speed": 4.0}
    response = http.post("/v1/audio/speech/timestamps", json=body, timeout=1800)
    assert response.status_code == 200, response.text
    assert_synthesised_in_full(response.json(), text)
