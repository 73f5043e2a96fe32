"""Request and response schemas of the OpenAI-compatible speech API (pydantic).

Request fields follow OpenAI's `POST /v1/audio/speech`; extensions are marked as such. Unknown
fields are kept in `model_extra` so that the service can ignore them (default) or reject them
(`strict_request_fields`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

AudioFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
StreamFormat = Literal["audio", "sse"]
InputType = Literal["text", "phonemes"]

# Model ids accepted in `model`; all of them run the same Kokoro model.
MODEL_IDS: tuple[str, ...] = ("kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
# Also accepted (dated OpenAI snapshots, the Hugging Face repo id), but not listed.
MODEL_ALIASES: frozenset[str] = frozenset(
    {
        "gpt-4o-mini-tts-2025-03-20",
        "gpt-4o-mini-tts-2025-12-15",
        "tts-1-1106",
        "tts-1-hd-1106",
        "hexgrad/kokoro-82m",
        "kokoro-82m",
    }
)
# Language codes accepted in `lang`: those the `g2p` model speaks (Kokoro's American and British
# English, Japanese), plus a few common spellings.
LANG_CODES: frozenset[str] = frozenset("abj")
LANG_ALIASES: dict[str, str] = {
    "en": "a",
    "en-us": "a",
    "en_us": "a",
    "american": "a",
    "en-gb": "b",
    "en_gb": "b",
    "british": "b",
    "ja": "j",
    "ja-jp": "j",
    "ja_jp": "j",
    "jp": "j",
    "japanese": "j",
}


# A UTF-16 surrogate on its own: JSON can carry one ("\\udcff"), UTF-8 cannot encode it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _unicode_text(value: str) -> str:
    if m := _LONE_SURROGATE.search(value):
        raise ValueError(
            f"contains a lone UTF-16 surrogate ({m.group(0)!r}) at character {m.start()}; send valid Unicode text"
        )
    return value


# Text that is sent on to the models (as UTF-8).
UnicodeText = Annotated[str, AfterValidator(_unicode_text)]


def _voice_id(value: Any) -> Any:
    """Accept `"af_heart"` or the newer SDK's `{"id": "af_heart"}`; strip surrounding whitespace."""
    if isinstance(value, dict):
        if set(value) - {"id"} or "id" not in value:
            raise ValueError('voice must be a string or an object {"id": "<voice>"}')
        value = value["id"]
    if isinstance(value, str):
        value = value.strip()
        if not value:
            raise ValueError("voice must not be empty")
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _model_id(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    value = value.strip()
    if value.lower() in MODEL_ALIASES or value.lower() in MODEL_IDS:
        return value.lower()
    raise ValueError(f"unknown model {value!r}; use one of: {', '.join(MODEL_IDS)}")


def _lang_code(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    code = value.strip().lower()
    code = LANG_ALIASES.get(code, code)
    if code not in LANG_CODES:
        raise ValueError(
            f"unknown language {value!r}; use a Kokoro language code: a (American English), "
            "b (British English), j (Japanese)"
        )
    return code


VoiceField = Annotated[str, BeforeValidator(_voice_id)]


class SpeechRequest(BaseModel):
    """Body of `POST /v1/audio/speech` (and `/v1/audio/speech/timestamps`)."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, BeforeValidator(_model_id)] = Field(
        default="kokoro",
        description="Model id. `kokoro`, `tts-1`, `tts-1-hd` and `gpt-4o-mini-tts` all run Kokoro-82M.",
    )
    input: UnicodeText = Field(
        description="Text to speak (or Kokoro phonemes when `input_type` is `phonemes`).",
    )
    voice: VoiceField = Field(
        description="A Kokoro voice (`af_heart`), an alias (`alloy`, `af`), or a blend "
        '(`af_bella+af_sky`, `af_bella(2)+af_sky(1)`). Also accepts `{"id": "..."}`. '
        "See `GET /v1/audio/voices`.",
    )
    response_format: Annotated[AudioFormat, BeforeValidator(_lower)] = Field(
        default="mp3", description="Audio container / codec."
    )
    speed: float = Field(
        default=1.0, ge=0.25, le=4.0, allow_inf_nan=False, description="Speaking rate, 0.25 to 4.0."
    )
    instructions: str | None = Field(
        default=None, description="Accepted for compatibility and ignored: Kokoro has no prompt."
    )
    stream_format: Annotated[StreamFormat, BeforeValidator(_lower)] = Field(
        default="audio",
        description="`audio`: the audio bytes, streamed as each chunk is synthesised. "
        "`sse`: server-sent events `speech.audio.delta` / `speech.audio.done`.",
    )
    # --- extensions --------------------------------------------------------------------------
    lang: Annotated[str | None, BeforeValidator(_lang_code)] = Field(
        default=None,
        description="Extension: Kokoro language code for G2P (`a` American, `b` British English, "
        "`j` Japanese). Default: from the voice name's first letter (`jf_alpha`: `j`; a Japanese "
        "voice reads text without kana or kanji as American English).",
    )
    input_type: Annotated[InputType, BeforeValidator(_lower)] = Field(
        default="text",
        description="Extension: `phonemes` makes `input` a Kokoro phoneme string (as returned by "
        "`POST /v1/audio/phonemize`), synthesised without G2P.",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        lt=2**62,
        description="Extension: seed of the vocoder's noise source. The same request and seed give "
        "the same audio. Default 0.",
    )


class PhonemizeRequest(BaseModel):
    """Body of `POST /v1/audio/phonemize`."""

    model_config = ConfigDict(extra="allow")

    input: UnicodeText = Field(description="Text to convert to Kokoro phonemes.")
    lang: Annotated[str, BeforeValidator(_lang_code)] = Field(
        default="a", description="Kokoro language code (`a` American, `b` British English, `j` Japanese)."
    )


class PhonemeChunk(BaseModel):
    text: str
    phonemes: str


class PhonemizeResponse(BaseModel):
    phonemes: str = Field(description="All chunks' phonemes joined by a space.")
    chunks: list[PhonemeChunk] = Field(
        description="The chunks (at most 510 phonemes each) the text is synthesised in."
    )


class WordTimestamp(BaseModel):
    word: str
    start: float = Field(description="Seconds from the start of the audio.")
    end: float = Field(description="Seconds from the start of the audio.")


class TimestampsResponse(BaseModel):
    audio: str = Field(description="The audio, base64, in `format`.")
    format: AudioFormat
    sample_rate: int
    duration: float = Field(description="Audio duration in seconds.")
    words: list[WordTimestamp]


class Usage(BaseModel):
    input_tokens: int = Field(description="Phoneme tokens synthesised.")
    output_tokens: int = Field(description="Audio frames produced (25 ms each).")
    total_tokens: int


class SpeechAudioDelta(BaseModel):
    type: Literal["speech.audio.delta"] = "speech.audio.delta"
    audio: str


class SpeechAudioDone(BaseModel):
    type: Literal["speech.audio.done"] = "speech.audio.done"
    usage: Usage


class VoiceInfo(BaseModel):
    id: str
    name: str
    language: str | None = None
    lang_code: str | None = None
    gender: Literal["female", "male"] | None = None
    alias_of: str | None = Field(
        default=None, description="For aliases: the Kokoro voice or blend it stands for."
    )


class VoicesResponse(BaseModel):
    voices: list[VoiceInfo]


class AudioModel(BaseModel):
    id: str
    name: str


class AudioModelsResponse(BaseModel):
    models: list[AudioModel]


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
