"""HTTP routes (thin: the work is in `gateway.serving`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.responses import StreamingResponse

from gateway.audio import CONTENT_TYPES
from gateway.errors import APIError
from gateway.middleware import request_info
from gateway.protocol import (
    MODEL_IDS,
    AudioModel,
    AudioModelsResponse,
    ErrorResponse,
    Model,
    ModelList,
    PhonemizeRequest,
    PhonemizeResponse,
    SpeechRequest,
    TimestampsResponse,
    VoicesResponse,
)
from gateway.serving import ClientGone, SpeechService

MODEL_CREATED = 1_735_689_600  # 2025-01-01, a fixed `created` for the model list
OWNER = "pattern-tts"


async def get_service(request: Request) -> SpeechService:
    service: SpeechService = request.app.state.service
    return service


async def client_gone(request: Request) -> ClientGone:
    """Waits until the client closes its connection. Its body is read by then, so the next ASGI
    message is the disconnect: the same wait Starlette's StreamingResponse makes once it streams."""

    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return wait


ServiceDep = Annotated[SpeechService, Depends(get_service)]
InfoDep = Annotated[dict[str, Any], Depends(request_info)]
ClientGoneDep = Annotated[ClientGone, Depends(client_gone)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request (OpenAI error shape)"},
    503: {"model": ErrorResponse, "description": "Triton is unreachable or not ready"},
}
_SPEECH_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    503: {
        "model": ErrorResponse,
        "description": "Triton is unreachable or not ready, or the gateway serves as many speech requests as "
        "it may (`code: server_overloaded`, with `Retry-After`)",
    },
}
_AUDIO_TYPES: dict[str, dict[str, Any]] = {t: {} for t in CONTENT_TYPES.values()}

router = APIRouter()
# The routes that synthesise, bounded by PATTERN_TTS_MAX_CONCURRENT_REQUESTS.
SPEECH_PATHS = frozenset({"/v1/audio/speech", "/v1/audio/speech/timestamps"})


@router.post(
    "/v1/audio/speech",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {**_AUDIO_TYPES, "text/event-stream": {}},
            "description": "Audio, streamed chunk by chunk; SSE events with `stream_format: sse`.",
        },
        **_SPEECH_ERRORS,
    },
    tags=["audio"],
)
async def create_speech(
    body: SpeechRequest, service: ServiceDep, info: InfoDep, gone: ClientGoneDep
) -> StreamingResponse:
    """OpenAI's text-to-speech: `input` spoken by `voice`, in `response_format`."""
    return await service.speech(body, info, gone)


@router.post(
    "/v1/audio/speech/timestamps",
    response_model=TimestampsResponse,
    responses=_SPEECH_ERRORS,
    tags=["audio"],
)
async def create_speech_timestamps(
    body: SpeechRequest, service: ServiceDep, info: InfoDep, gone: ClientGoneDep
) -> TimestampsResponse:
    """The audio as base64 JSON with word-level `{word, start, end}` times in seconds."""
    return await service.timestamps(body, info, gone)


@router.post("/v1/audio/phonemize", response_model=PhonemizeResponse, responses=_ERRORS, tags=["audio"])
async def phonemize(body: PhonemizeRequest, service: ServiceDep, info: InfoDep) -> PhonemizeResponse:
    """Text to Kokoro phonemes (edit them, then send with `input_type: phonemes`)."""
    return await service.phonemize(body, info)


@router.get("/v1/audio/voices", response_model=VoicesResponse, tags=["audio"])
async def list_voices(service: ServiceDep) -> VoicesResponse:
    """Voices and aliases, with language and gender where the name tells them."""
    return VoicesResponse(voices=service.voices.list())


@router.get("/v1/audio/models", response_model=AudioModelsResponse, tags=["audio"])
async def list_audio_models() -> AudioModelsResponse:
    """Speech models, in the shape Open WebUI reads."""
    return AudioModelsResponse(models=[AudioModel(id=m, name=m) for m in MODEL_IDS])


@router.get("/v1/models", response_model=ModelList, tags=["models"])
async def list_models() -> ModelList:
    """OpenAI's model list."""
    return ModelList(data=[Model(id=m, created=MODEL_CREATED, owned_by=OWNER) for m in MODEL_IDS])


@router.get("/v1/models/{model_id}", response_model=Model, responses={404: {"model": ErrorResponse}})
async def retrieve_model(model_id: str) -> Model:
    """One model of the list."""
    if model_id not in MODEL_IDS:
        raise APIError(f"The model '{model_id}' does not exist", 404, param="model", code="model_not_found")
    return Model(id=model_id, created=MODEL_CREATED, owned_by=OWNER)


@router.get("/health", tags=["health"])
async def health() -> dict[str, str]:
    """The gateway process is alive (says nothing about Triton)."""
    return {"status": "ok"}


@router.get("/ready", tags=["health"], responses={503: {"model": ErrorResponse}})
async def ready(service: ServiceDep) -> JSONResponse:
    """200 when Triton reports both models ready, else 503 with the reason."""
    try:
        models = await service.triton.model_ready()
    except APIError as exc:
        return JSONResponse({"status": "unavailable", **exc.body()}, status_code=503)
    if all(models.values()):
        return JSONResponse({"status": "ready", "models": models})
    missing = ", ".join(m for m, ok in models.items() if not ok)
    err = APIError(f"Triton model(s) not ready: {missing}", 503, code="model_not_ready")
    return JSONResponse({"status": "not_ready", "models": models, **err.body()}, status_code=503)
