"""Async client of the Triton `g2p` and `kokoro` models (see docs/architecture.md).

One `g2p` call per request (per block of a long text), then one `kokoro` call per chunk. The chunk
calls run concurrently (up to `window` at a time per request) so that the chunks of one request and
of many requests meet in Triton's dynamic batcher; results are consumed in chunk order.

Inference goes over gRPC: the asyncio HTTP client measured about 20 ms slower per second of audio
received than gRPC (or the blocking HTTP client), and a cancelled gRPC call cancels the request in
Triton too. Readiness is read over HTTP (`/v2/models/<name>/ready`), as the probes do.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc.aio import InferenceServerClient

from gateway.errors import APIError, ServiceUnavailable, from_triton

G2P_MODEL = "g2p"
KOKORO_MODEL = "kokoro"
MODELS = (G2P_MODEL, KOKORO_MODEL)
# Chunks of one request in flight at once: enough to fill Triton's batches, bounded so that a
# 100,000-character request neither holds all of its audio in memory nor starves other requests.
DEFAULT_WINDOW = 32


@dataclass(frozen=True)
class Word:
    word: str
    start: int  # phoneme index, inclusive
    end: int  # phoneme index, exclusive


@dataclass(frozen=True)
class Chunk:
    text: str
    phonemes: str
    words: tuple[Word, ...] = ()
    continues_paragraph: bool = False  # cut from the chunk before by the 510-phoneme limit


@dataclass(frozen=True)
class KokoroJob:
    phonemes: str
    voice: str
    speed: float = 1.0
    seed: int | None = None
    priority: int = 0  # Triton priority level, 1 first; 0: the model's default level


@dataclass
class Synthesized:
    waveform: np.ndarray  # float32, 24 kHz mono
    durations: np.ndarray  # int64 frames per token, boundary tokens first and last
    extra: dict[str, object] = field(default_factory=dict)


def _bytes_input(name: str, value: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[value.encode("utf-8")]], dtype=np.object_))
    return tensor


def _scalar_input(name: str, value: float | int, datatype: str, dtype: type) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, [1, 1], datatype)
    tensor.set_data_from_numpy(np.array([[value]], dtype=dtype))
    return tensor


def parse_chunks(raw: bytes | str) -> list[Chunk]:
    """The `g2p` model's `chunks` output (JSON) as `Chunk`s."""
    data = json.loads(raw)
    chunks = []
    for item in data:
        words = tuple(Word(str(w["word"]), int(w["start"]), int(w["end"])) for w in item.get("words") or ())
        chunks.append(
            Chunk(str(item.get("text", "")), str(item["phonemes"]), words, bool(item.get("continues_paragraph")))
        )
    return chunks


class TritonClient:
    """The gateway's connection to Triton: inference over gRPC, readiness over HTTP (asyncio)."""

    def __init__(
        self,
        url: str,
        grpc_url: str,
        timeout_s: float = 600.0,
        window: int = DEFAULT_WINDOW,
        phoneme_budget: int | None = None,
        head_start_s: float = 0.0,
    ) -> None:
        url = url.removeprefix("http://").rstrip("/")
        self.url = url
        self.grpc_url = grpc_url
        self.window = window
        self.phoneme_budget = phoneme_budget
        self.head_start_s = head_start_s
        self.kokoro_in_flight = 0  # kokoro calls started (start_synthesis) and not yet done
        self._timeout_s = timeout_s
        self._client = InferenceServerClient(grpc_url)
        self._health = aiohttp.ClientSession(
            base_url=f"http://{url}", timeout=aiohttp.ClientTimeout(total=5.0)
        )

    async def close(self) -> None:
        await self._client.close()
        await self._health.close()

    async def model_ready(self) -> dict[str, bool]:
        """Readiness of each model; raises `ServiceUnavailable` when Triton is unreachable."""

        async def one(model: str) -> bool:
            async with self._health.get(f"/v2/models/{model}/ready") as resp:
                await resp.read()
                return resp.status == 200

        try:
            states = await asyncio.gather(*(one(m) for m in MODELS))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ServiceUnavailable(
                f"Triton inference server unreachable at {self.url}: {exc.__class__.__name__}"
            ) from None
        return dict(zip(MODELS, states, strict=True))

    async def g2p(self, text: str, lang: str = "a") -> list[Chunk]:
        """Text -> phoneme chunks (each at most 510 symbols) with word spans."""
        inputs = [_bytes_input("text", text), _bytes_input("lang", lang)]
        try:
            result = await self._client.infer(G2P_MODEL, inputs, client_timeout=self._timeout_s)
        except Exception as exc:
            raise from_triton(exc, G2P_MODEL) from None
        raw = result.as_numpy("chunks")
        if raw is None:
            raise APIError("the g2p model returned no chunks", 500)
        return parse_chunks(raw.reshape(-1)[0])

    async def synthesize(self, job: KokoroJob) -> Synthesized:
        """One chunk's phonemes -> waveform and per-token durations."""
        inputs = [
            _bytes_input("phonemes", job.phonemes),
            _bytes_input("voice", job.voice),
            _scalar_input("speed", job.speed, "FP32", np.float32),
        ]
        if job.seed is not None:
            inputs.append(_scalar_input("seed", job.seed, "INT64", np.int64))
        try:
            result = await self._client.infer(
                KOKORO_MODEL, inputs, priority=job.priority, client_timeout=self._timeout_s
            )
        except Exception as exc:
            raise from_triton(exc, KOKORO_MODEL) from None
        waveform = result.as_numpy("waveform")
        durations = result.as_numpy("durations")
        if waveform is None or durations is None:
            raise APIError("the kokoro model returned no audio", 500)
        return Synthesized(
            np.ascontiguousarray(waveform.reshape(-1), dtype=np.float32),
            durations.reshape(-1).astype(np.int64),
        )

    def start_synthesis(self, job: KokoroJob) -> asyncio.Task[Synthesized]:
        """`synthesize(job)` as a task, counted in `kokoro_in_flight` from this call until it is done.

        Counted here, not inside the coroutine: a task runs only once the caller yields, and requests
        whose G2P results arrived together would all have read the model as idle before any of them
        had started a call (`SpeechService.prepare` cuts lead pieces only while idle).
        """
        self.kokoro_in_flight += 1
        task = asyncio.ensure_future(self.synthesize(job))
        task.add_done_callback(self._call_done)
        return task

    def _call_done(self, task: asyncio.Task[Synthesized]) -> None:
        self.kokoro_in_flight -= 1
        _retrieve(task)

    def synthesize_all(
        self, jobs: Sequence[KokoroJob], more: AsyncIterator[Sequence[KokoroJob]] | None = None
    ) -> ChunkSynthesis:
        """Start the chunks' calls (up to `window` at once), then those of `more`'s blocks as they
        come; iterate the results in order."""
        return ChunkSynthesis(self, jobs, self.window, self.head_start_s, more, self.phoneme_budget)


class ChunkSynthesis:
    """Concurrent `kokoro` calls of one request, consumed in order. `cancel()` stops the rest.

    The first chunk is sent `head_start_s` before the others (a little over Triton's batching
    delay), so that it forms or joins an earlier batch and its audio can stream while the rest of
    the request is synthesised; the other chunks are then all sent at once (up to `window`, and with
    a `phoneme_budget` only while the phonemes out stay within it: on CPU the calls of all requests
    wait in one queue and run one item at a time, so what one request sends ahead delays every
    request that comes after it).
    The job lists that `more` yields (the later blocks of a long input, each from one G2P call)
    are queued behind them. Its next block is asked for once a result has been consumed since the
    last one (or when nothing is left to synthesise), and while fewer than `window` chunks wait:
    the G2P work is spread over the synthesis instead of competing with the first chunk for the
    CPU. An error of `more` is raised where its next result would have been.
    """

    def __init__(
        self,
        client: TritonClient,
        jobs: Sequence[KokoroJob],
        window: int,
        head_start_s: float = 0.0,
        more: AsyncIterator[Sequence[KokoroJob]] | None = None,
        phoneme_budget: int | None = None,
    ) -> None:
        self._client = client
        self._jobs = deque(jobs)
        self._window = max(1, window)
        self._budget = phoneme_budget
        self._tasks: deque[asyncio.Task[Synthesized]] = deque()
        self._sizes: deque[int] = deque()  # phonemes of each call in `_tasks`
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._consumed = 0
        self._changed = asyncio.Event()  # set when a result is consumed and when `more` yields or ends
        self._feed_error: Exception | None = None
        self._feeder = asyncio.ensure_future(self._feed(more)) if more is not None else None
        if head_start_s > 0 and self._jobs and (len(self._jobs) > 1 or self._feeder is not None):
            self._start(self._jobs.popleft())
            self._timer = asyncio.get_running_loop().call_later(head_start_s, self._fill)
        else:
            self._fill()

    def _waiting(self) -> int:
        return len(self._jobs) + len(self._tasks)

    async def _feed(self, more: AsyncIterator[Sequence[KokoroJob]]) -> None:
        blocks = 0
        try:
            while True:
                while self._waiting() and (self._consumed <= blocks or self._waiting() >= self._window):
                    self._changed.clear()
                    await self._changed.wait()
                jobs = await anext(more, None)
                if jobs is None:
                    return
                blocks += 1
                self._jobs.extend(jobs)
                if self._timer is None:
                    self._fill()
                self._changed.set()
        except Exception as exc:  # raised to the consumer once it has had every result before it
            self._feed_error = exc
        finally:
            self._changed.set()

    def _start(self, job: KokoroJob) -> None:
        self._tasks.append(self._client.start_synthesis(job))
        self._sizes.append(len(job.phonemes))

    def _room_for(self, job: KokoroJob) -> bool:
        """Whether `job` may go out now: under `window` calls, and (with a budget) its phonemes fit
        beside those already out, or nothing is."""
        if len(self._tasks) >= self._window:
            return False
        return self._budget is None or not self._tasks or sum(self._sizes) + len(job.phonemes) <= self._budget

    def _start_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._fill()

    def _fill(self) -> None:
        self._timer = None
        while self._jobs and not self._closed and self._room_for(self._jobs[0]):
            self._start(self._jobs.popleft())

    def __aiter__(self) -> ChunkSynthesis:
        return self

    async def __anext__(self) -> Synthesized:
        try:
            while not self._tasks:
                if self._jobs:  # the first chunk came back before its head start ran out
                    self._start_now()
                elif self._feeder is None or self._feeder.done():
                    if self._feed_error is not None:
                        raise self._feed_error
                    raise StopAsyncIteration
                else:
                    self._changed.clear()
                    await self._changed.wait()
            result = await self._tasks[0]
        except StopAsyncIteration:
            raise
        except BaseException:
            self.cancel()
            raise
        self._tasks.popleft()
        self._sizes.popleft()
        self._consumed += 1
        self._changed.set()
        if self._timer is None:
            self._fill()
        return result

    def cancel(self) -> None:
        """Cancel every call not yet consumed (the client went away or a chunk failed)."""
        self._closed = True
        self._jobs.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._feeder is not None and not self._feeder.done():
            self._feeder.cancel()
        while self._tasks:
            self._tasks.popleft().cancel()
        self._sizes.clear()

    async def aclose(self) -> None:
        self.cancel()


def _retrieve(task: asyncio.Task[Synthesized]) -> None:
    """Mark a finished call's exception as retrieved (it is raised where the result is consumed)."""
    if not task.cancelled():
        task.exception()
