"""The gateway app without a Triton server: routes that need none, validation, error shapes, 503s.

Runs the real FastAPI app (lifespan included) in-process with Starlette's TestClient; Triton's URL
points at a closed port, so every inference path answers 503. The full stack is in
`test_gateway_api.py`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.errors import APIError
from pattern_tts.settings import Settings

VOICES = ["af_bella", "af_sarah", "af_heart", "af_sky", "am_adam", "bf_emma", "jf_alpha", "zf_xiaobei"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(tmp_path: Path, **settings: Any) -> TestClient:
    weights = tmp_path / "weights"
    (weights / "voices").mkdir(parents=True, exist_ok=True)
    for name in VOICES:
        (weights / "voices" / f"{name}.pt").write_bytes(b"")
    s = Settings(
        weights_dir=weights,
        triton_url=f"127.0.0.1:{_closed_port()}",
        triton_grpc_url=f"127.0.0.1:{_closed_port()}",
        request_timeout_s=5,
        **settings,
    )
    return TestClient(create_app(s), raise_server_exceptions=False)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path, max_input_chars=50) as c:
        yield c


@pytest.fixture
def sdk(client: TestClient) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=str(client.base_url) + "/v1", api_key="unused", http_client=client, max_retries=0
    )


def _is_openai_error(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) >= {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    return err


def test_health_and_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/audio/speech" in spec["paths"]
    assert "/v1/audio/speech/timestamps" in spec["paths"]


def test_ready_is_503_when_triton_is_unreachable(client: TestClient) -> None:
    r = client.get("/ready")
    assert r.status_code == 503
    err = _is_openai_error(r.json())
    assert "unreachable" in err["message"]


def test_models(client: TestClient, sdk: openai.OpenAI) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids == ["kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"]
    assert all(m["object"] == "model" and m["owned_by"] and m["created"] > 0 for m in body["data"])
    assert [m.id for m in sdk.models.list()] == ids
    assert sdk.models.retrieve("tts-1").id == "tts-1"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("whisper-1")
    assert client.get("/v1/audio/models").json() == {"models": [{"id": i, "name": i} for i in ids]}


def test_voices(client: TestClient) -> None:
    voices = {v["id"]: v for v in client.get("/v1/audio/voices").json()["voices"]}
    assert set(VOICES) <= set(voices)
    assert voices["af_heart"]["name"] == "af_heart"
    assert voices["af_heart"]["language"] == "American English"
    assert voices["bf_emma"]["language"] == "British English"
    assert voices["am_adam"]["gender"] == "male"
    assert voices["af"]["alias_of"] == "af_bella+af_sarah"
    assert voices["alloy"]["alias_of"] == "af_heart"
    for alias in ("am", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage"):
        assert alias in voices
    for alias in ("shimmer", "verse", "marin", "cedar"):
        assert alias in voices


def test_not_found_and_method_not_allowed_in_openai_shape(client: TestClient) -> None:
    r = client.get("/v1/nothing")
    assert r.status_code == 404
    _is_openai_error(r.json())
    r = client.get("/v1/audio/speech")
    assert r.status_code == 405
    _is_openai_error(r.json())


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"voice": "nobody"}, "voice", "/v1/audio/voices"),
        ({"voice": "af_bella+nobody"}, "voice", "'nobody'"),
        ({"voice": "af_bella(-1)+af_sky"}, "voice", "positive"),
        ({"voice": ""}, "voice", "voice"),
        ({"response_format": "ogg"}, "response_format", "response_format"),
        ({"speed": 0.1}, "speed", "speed"),
        ({"speed": 5}, "speed", "speed"),
        ({"input": ""}, "input", "empty"),
        ({"input": " \n "}, "input", "empty"),
        ({"input": "x" * 51}, "input", "limit is 50 characters"),
        ({"model": "whisper-1"}, "model", "model"),
        ({"stream_format": "chunks"}, "stream_format", "stream_format"),
        ({"input": None}, "input", "Missing required parameter"),
    ],
)
def test_bad_requests_are_400_in_openai_shape(
    client: TestClient, body: dict[str, Any], param: str, needle: str
) -> None:
    payload = {"model": "tts-1", "input": "Hello.", "voice": "alloy", **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    for path in ("/v1/audio/speech", "/v1/audio/speech/timestamps"):
        r = client.post(path, json=payload)
        assert r.status_code == 400, r.text
        err = _is_openai_error(r.json())
        assert err["type"] == "invalid_request_error"
        assert err["param"] == param
        assert needle in err["message"]


def test_bad_json_is_400(client: TestClient) -> None:
    r = client.post("/v1/audio/speech", content=b'{"input": ', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "JSON" in _is_openai_error(r.json())["message"]
    r = client.post("/v1/audio/speech", json=["not", "an", "object"])
    assert r.status_code == 400
    _is_openai_error(r.json())


def test_sdk_raises_bad_request_for_unknown_voice(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.audio.speech.create(model="tts-1", voice="nobody", input="Hello.")
    assert exc.value.status_code == 400
    body = exc.value.body
    assert isinstance(body, dict)
    # The SDK hands over the `error` object of the body.
    err = body.get("error", body)
    assert err["param"] == "voice"
    assert "/v1/audio/voices" in err["message"]


def test_sdk_gets_503_when_triton_is_unreachable(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as exc:
        sdk.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")
    assert exc.value.status_code == 503
    with pytest.raises(openai.APIStatusError) as exc:
        sdk.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", extra_body={"backend": "x"})
    assert exc.value.status_code == 503  # unknown fields are ignored by default


def test_phonemize_validation(client: TestClient) -> None:
    r = client.post("/v1/audio/phonemize", json={"input": ""})
    assert r.status_code == 400
    assert _is_openai_error(r.json())["param"] == "input"
    r = client.post("/v1/audio/phonemize", json={"input": "Hello", "lang": "xx"})
    assert r.status_code == 400
    assert _is_openai_error(r.json())["param"] == "lang"
    assert client.post("/v1/audio/phonemize", json={"input": "Hello"}).status_code == 503


def test_strict_mode_rejects_unknown_fields(tmp_path: Path) -> None:
    with _client(tmp_path, strict_request_fields=True) as client:
        r = client.post(
            "/v1/audio/speech", json={"model": "tts-1", "input": "Hi.", "voice": "alloy", "backend": "x"}
        )
        assert r.status_code == 400
        err = _is_openai_error(r.json())
        assert err["param"] == "backend"
        assert "'backend'" in err["message"]
        sdk = openai.OpenAI(base_url="http://testserver/v1", api_key="k", http_client=client, max_retries=0)
        with pytest.raises(openai.BadRequestError):
            sdk.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", extra_body={"foo": 1})
        # Known fields (including the extensions) pass strict mode and reach Triton (closed: 503).
        r = client.post(
            "/v1/audio/speech",
            json={"model": "tts-1", "input": "Hi.", "voice": "alloy", "lang": "a", "seed": 1},
        )
        assert r.status_code == 503


def test_authorization_header_is_ignored(client: TestClient) -> None:
    r = client.get("/v1/audio/voices", headers={"Authorization": "undefined"})
    assert r.status_code == 200
    r = client.post(
        "/v1/audio/speech",
        json={"input": "Hi.", "voice": "nobody"},
        headers={"Authorization": "undefined"},
    )
    assert r.status_code == 400


def test_voice_of_a_language_g2p_cannot_read(client: TestClient) -> None:
    r = client.post("/v1/audio/speech", json={"input": "Hi.", "voice": "zf_xiaobei"})
    assert r.status_code == 400
    err = _is_openai_error(r.json())
    assert err["param"] == "voice" and "Mandarin Chinese" in err["message"]
    # With an explicit lang it reads English text (here: reaches Triton, which is down).
    r = client.post("/v1/audio/speech", json={"input": "Hi.", "voice": "zf_xiaobei", "lang": "a"})
    assert r.status_code == 503
    # Raw phonemes need no G2P.
    body = {"input": "haɪ", "voice": "zf_xiaobei", "input_type": "phonemes"}
    assert client.post("/v1/audio/speech", json=body).status_code == 503


def test_phonemes_outside_kokoros_vocabulary_are_a_400_before_any_call(client: TestClient) -> None:
    # Triton is down here: a 503 would mean the gateway had called it (a later chunk's symbols:
    # test_gateway_protocol.py).
    phonemes = "hˈɛlO wˈɜɹld. 7 x#"
    body = {"input": phonemes, "voice": "af_heart", "input_type": "phonemes"}
    r = client.post("/v1/audio/speech", json=body)
    assert r.status_code == 400
    err = _is_openai_error(r.json())
    assert err["param"] == "input" and err["code"] == "invalid_value"
    assert "'#7'" in err["message"]  # each unknown symbol once, sorted; x is a Kokoro symbol


def test_japanese_voice_reads_japanese_by_default(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    langs: list[str] = []

    async def g2p(self: object, text: str, lang: str = "a") -> list[object]:
        langs.append(lang)
        raise APIError("Triton is down", 503)

    monkeypatch.setattr("gateway.triton.TritonClient.g2p", g2p)
    for body in (
        {"input": "こんにちは。", "voice": "jf_alpha"},
        {"input": "こんにちは。", "voice": "jf_alpha", "lang": "ja"},
        {"input": "Hello.", "voice": "jf_alpha", "lang": "a"},  # English text with a Japanese voice
        {"input": "Hello.", "voice": "jf_alpha"},  # no kana or kanji: read as English
        {"input": "Hello.", "voice": "jf_alpha", "lang": "j"},  # unless asked
        {"input": "ｶﾀｶﾅ", "voice": "jf_alpha"},
        {"input": "こんにちは。", "voice": "af_bella", "lang": "j"},
    ):
        assert client.post("/v1/audio/speech", json=body).status_code == 503
    assert langs == ["j", "j", "a", "a", "j", "j", "j"]
    r = client.post("/v1/audio/phonemize", json={"input": "こんにちは。", "lang": "japanese"})
    assert (r.status_code, langs[-1]) == (503, "j")


def test_unexpected_error_is_500_in_openai_shape_and_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(tmp_path)

    async def boom() -> None:
        raise RuntimeError("kaboom")

    client.app.add_api_route("/boom", boom)  # type: ignore[attr-defined]
    with client, caplog.at_level("INFO", logger="gateway"):
        r = client.get("/boom")
    assert r.status_code == 500
    err = _is_openai_error(r.json())
    assert "kaboom" not in err["message"] and "Traceback" not in r.text
    errors = [rec for rec in caplog.records if rec.levelname == "ERROR"]
    assert len(errors) == 1 and "kaboom" in errors[0].getMessage()
    assert not errors[0].exc_info  # no traceback
    access = [rec.getMessage() for rec in caplog.records if rec.name == "gateway.access"]
    assert any("path=/boom status=500" in line for line in access)
