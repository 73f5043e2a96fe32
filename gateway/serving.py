"""The speech service: validation, G2P, concurrent chunk synthesis, encoding, streaming, timestamps."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from gateway import audio
from gateway.errors import APIError, BadRequest, ClientClosedRequest
from gateway.protocol import (
    LANG_CODES,
    PhonemeChunk,
    PhonemizeRequest,
    PhonemizeResponse,
    SpeechAudioDelta,
    SpeechAudioDone,
    SpeechRequest,
    TimestampsResponse,
    Usage,
    WordTimestamp,
)
from gateway.triton import Chunk, ChunkSynthesis, KokoroJob, Synthesized, TritonClient, Word
from gateway.voices import LANGUAGES, ResolvedVoice, VoiceCatalogue
from pattern_tts.settings import STREAM_PRIORITY_LEVELS, Settings

log = logging.getLogger("gateway")

SAMPLE_RATE = 24_000
FRAME_SAMPLES = 600  # one duration frame of the kokoro model (25 ms)
MAX_PHONEMES = 510  # Kokoro's context, per chunk
SILENCE_SAMPLES = SAMPLE_RATE // 10  # what an input with nothing to say becomes
# Raw formats convert about 2.5 ms of samples per 10 s of audio: inline up to 5 s (under a thread
# hop's cost), longer chunks in a worker thread so the event loop is never held for long.
INLINE_ENCODE_SAMPLES = 5 * SAMPLE_RATE
# The first chunk is cut into growing pieces at sentence or clause ends: the first at least this
# many phonemes (its audio is ready early), each next one at least LEAD_GROWTH times the one before
# (it is synthesised while the one before plays); see `split_lead`. Only while the model has little
# else to do (`lead_split_max_in_flight`): queued behind other work a piece is not early anyway, and
# each piece costs Kokoro's edge silences. A player does not stall while growth <= 1 / (synthesis s
# per audio s): 3 held on an AVX-512 CPU (about 0.26 s per audio s), and stalled on an AVX2 one
# (about 0.5): there 2 halved the stalls, for 0.4 and 5.6 % more synthesis in two runs
# (bench/stream_pieces.py).
LEAD_MIN_PHONEMES = 12
LEAD_GROWTH = 2
# While the model is busy the first chunk is not cut into growing pieces; one longer than this is
# still cut once, at the first sentence or clause end past its middle (`halve_long`): the decoder's
# memory grows with an item's length, and the growing pieces had kept each item short.
LONG_CHUNK_PHONEMES = 200
# Kokoro starts an input with about 300 ms of silence and ends it with about 650 ms, as at the end of
# a paragraph. Where the gateway cut a paragraph, a chunk keeps KEEP_TAIL_FRAMES[join] after its last
# audible sample (above SILENCE_LEVEL, -60 dBFS) and the next one KEEP_LEAD_FRAMES before its first
# (see `trim_silence`): a pause of about 210 ms where `split_lead` cut (a clause or sentence end), of
# about 460 ms where the 510-phoneme limit did (a sentence end where possible), as inside one input.
# A new paragraph keeps Kokoro's silences.
SILENCE_LEVEL = 1e-3
KEEP_LEAD_FRAMES = 2
Join = Literal["paragraph", "chunk", "piece"]  # how a chunk follows the one before
KEEP_TAIL_FRAMES: dict[Join, int] = {"piece": 6, "chunk": 16}
_LEAD_END = re.compile(r"[.!?…,;:—–]+[\"”')\]]*(?=\s)")
# Where `split_blocks` cuts a long input, best first: after a paragraph break, a sentence end, a
# space. (A Japanese sentence end needs no space after it.)
_BLOCK_ENDS = (
    re.compile(r"\n\s*"),
    re.compile(r"[.!?…]+[\"”')\]]*\s+|[。！？]+[」』）]*\s*"),
    re.compile(r"\s+"),
)
_SPLIT_AT = (re.compile(r"[.!?…]+\s+"), re.compile(r"[,;:—–]+\s+"), re.compile(r"\s+"))
# Kana (full and half width) and CJK ideographs: text a Japanese voice reads as Japanese.
_JAPANESE_SCRIPT = re.compile(
    r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]"
)


def split_phonemes(phonemes: str, limit: int = MAX_PHONEMES) -> list[str]:
    """Split a raw phoneme string into chunks of at most `limit` symbols, at sentence, clause or
    word boundaries when possible."""
    text = " ".join(phonemes.split())
    out: list[str] = []
    while len(text) > limit:
        cut = 0
        for pattern in _SPLIT_AT:
            ends = [m.end() for m in pattern.finditer(text, 0, limit + 1) if 0 < m.end() <= limit + 1]
            if ends:
                cut = ends[-1]
                break
        if cut == 0:
            cut = limit
        out.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        out.append(text)
    return [c for c in out if c]


@dataclass(frozen=True)
class Block:
    """A piece of a long text input that goes to the g2p model in one call."""

    text: str
    continues_paragraph: bool  # cut from the block before inside a paragraph, not at a line break


def split_blocks(text: str, limit: int) -> list[Block]:
    """`text` cut into blocks of at most `limit` characters (0: one block), each cut after the last
    paragraph break in reach, else the last sentence end, else the last space (else at `limit`).
    The blocks joined give `text` back."""
    blocks: list[Block] = []
    continues = False
    while limit > 0 and len(text) > limit:
        cut, at_break = limit, False
        for rank, pattern in enumerate(_BLOCK_ENDS):
            ends = [m.end() for m in pattern.finditer(text, 0, limit) if m.start() > 0]
            if ends:
                cut, at_break = ends[-1], rank == 0
                break
        blocks.append(Block(text[:cut], continues))
        text, continues = text[cut:], not at_break
    return [*blocks, Block(text, continues)]


def split_lead(
    chunk: Chunk, min_phonemes: int = LEAD_MIN_PHONEMES, growth: int = LEAD_GROWTH
) -> list[Chunk]:
    """Cut a request's first chunk (up to 510 phonemes, several sentences) into growing pieces.

    The first piece ends at the first sentence or clause end (`. ! ? , ; :` and dashes) at or
    beyond `min_phonemes` symbols, each next one at the first such end at or beyond `growth` times
    the piece before. The first piece is sent to Triton ahead of the rest, so its audio is ready
    early; each next piece is synthesised while the audio before it plays (on 2 slow CPU cores a
    player may still wait where two pieces meet, bench/stream_pieces.py). Cuts fall at natural
    pauses. Words keep their order; each piece's `text` is its words.

    Kokoro reads a piece alone more slowly than inside a longer input: the pieces give more audio
    than the whole chunk (bench/stream_pieces.py). Cutting at sentence ends only where possible
    measured little better, and its longer pieces raised the kokoro process's peak memory.
    """
    pieces: list[Chunk] = []
    need = min_phonemes
    while (cut := _cut_at(chunk, _LEAD_END, need)) is not None:
        lead, chunk = cut
        pieces.append(lead)
        need = growth * len(lead.phonemes)
    return [*pieces, chunk]


def halve_long(chunk: Chunk, longest: int = LONG_CHUNK_PHONEMES) -> list[Chunk]:
    """A chunk longer than `longest` phonemes cut once, at the first sentence or clause end past its
    middle; a shorter one (or one with no such end) as it is."""
    if len(chunk.phonemes) <= longest:
        return [chunk]
    cut = _cut_at(chunk, _LEAD_END, len(chunk.phonemes) // 2)
    return list(cut) if cut else [chunk]


def _cut_at(chunk: Chunk, ends: re.Pattern[str], min_phonemes: int) -> tuple[Chunk, Chunk] | None:
    """(lead, rest) cut after the first match of `ends` at or beyond `min_phonemes` symbols, or
    None when there is none before the chunk's end."""
    text = chunk.phonemes
    for m in ends.finditer(text):
        cut = m.end()
        rest = cut + (len(text[cut:]) - len(text[cut:].lstrip()))
        if cut >= min_phonemes and rest < len(text):
            left = tuple(w for w in chunk.words if w.start < cut)
            right = tuple(
                Word(w.word, max(0, w.start - rest), max(0, w.end - rest))
                for w in chunk.words
                if w.start >= cut
            )
            return (
                Chunk(" ".join(w.word for w in left), text[:cut], left),
                Chunk(" ".join(w.word for w in right), text[rest:], right),
            )
    return None


def trim_silence(result: Synthesized, lead: bool, tail_frames: int | None) -> Synthesized:
    """A chunk's audio without most of the silence Kokoro puts at an input's ends, where it meets
    another chunk of the same paragraph: before its first audible sample when `lead`, after its last
    down to `tail_frames` frames when that is not None.

    Synthesised alone, an input starts with 12 to 14 frames of its boundary token and ends with
    about 650 ms below -60 dBFS; cut there, a clause break would be a pause of 0.6 to 1 s where
    the whole chunk pauses for 0 to 0.6 s. Whole frames are dropped: before the first audible sample
    but KEEP_LEAD_FRAMES (never past the boundary token), after the last but `tail_frames`. The
    durations shrink with them (the boundary token first; the last tokens, backwards), so word
    timestamps stay aligned. Audio without any audible sample is left as it is.
    """
    if not lead and tail_frames is None:
        return result
    loud = np.flatnonzero(np.abs(result.waveform) > SILENCE_LEVEL)
    if result.durations.size == 0 or loud.size == 0:
        return result
    durations = result.durations.copy()
    frames = len(result.waveform) // FRAME_SAMPLES
    start, stop = 0, frames
    if lead:
        start = max(0, min(int(loud[0]) // FRAME_SAMPLES, int(durations[0])) - KEEP_LEAD_FRAMES)
        durations[0] -= start
    if tail_frames is not None:
        stop = min(frames, int(loud[-1]) // FRAME_SAMPLES + 1 + tail_frames)
        cut = frames - stop
        for k in range(durations.size - 1, -1, -1):
            take = min(int(durations[k]), cut)
            durations[k] -= take
            cut -= take
            if cut == 0:
                break
    if (start, stop) == (0, frames):
        return result
    return Synthesized(result.waveform[start * FRAME_SAMPLES : stop * FRAME_SAMPLES], durations, result.extra)


async def _encode(encoder: audio.StreamEncoder, samples: np.ndarray) -> bytes:
    """Encode a chunk: codecs in a worker thread, off the event loop. A short chunk of a raw format
    is converted inline: that takes less than the hop to a thread (about 1 ms per request)."""
    if encoder.is_raw and samples.size <= INLINE_ENCODE_SAMPLES:
        return encoder.write(samples)
    return await run_in_threadpool(encoder.write, samples)


async def _close(encoder: audio.StreamEncoder) -> bytes:
    """Flush the encoder: a codec's in a worker thread; a raw format has nothing left to encode."""
    return encoder.close() if encoder.is_raw else await run_in_threadpool(encoder.close)


def phoneme_words(phonemes: str) -> tuple[Word, ...]:
    """Word spans of a raw phoneme chunk: its space-separated runs."""
    return tuple(Word(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", phonemes))


def word_timestamps(chunk: Chunk, result: Synthesized, offset: int) -> list[WordTimestamp]:
    """Words of one chunk in seconds, from the model's per-token frame durations.

    Token 0 is the leading boundary token, so phoneme `i` is token `i + 1`; `offset` is the chunk's
    first sample in the whole audio.
    """
    starts = np.concatenate([[0], np.cumsum(result.durations)]) * FRAME_SAMPLES
    last = len(starts) - 1
    n = len(result.waveform)
    words = []
    for w in chunk.words:
        s = min(int(starts[min(w.start + 1, last)]), n)
        e = min(int(starts[min(w.end + 1, last)]), n)
        words.append(
            WordTimestamp(
                word=w.word,
                start=round((offset + s) / SAMPLE_RATE, 3),
                end=round((offset + max(s, e)) / SAMPLE_RATE, 3),
            )
        )
    return words


@dataclass
class Prepared:
    """A validated request: its voice and the chunks to synthesise (with their kokoro jobs).

    `joins[i]`: how chunk i follows chunk i - 1: a new `paragraph` (also the first chunk), the
    next `chunk` of a paragraph cut by the 510-phoneme limit, or the next `piece` of `split_lead`.
    The silence where two chunks of a paragraph meet is trimmed (`trim_silence`).
    """

    request: SpeechRequest
    voice: ResolvedVoice
    chunks: list[Chunk]
    jobs: list[KokoroJob]
    joins: list[Join]
    rest: list[Block] = field(default_factory=list)  # blocks of the input not yet through G2P

    def trim(self, index: int, result: Synthesized) -> Synthesized:
        """Chunk `index`'s audio trimmed where it meets the chunks before and after it."""
        lead = index < len(self.joins) and self.joins[index] != "paragraph"
        if index + 1 < len(self.joins):
            after = self.joins[index + 1]
        else:  # the last chunk so far: the next block's first chunk may not be known yet
            after = "chunk" if self.rest and self.rest[0].continues_paragraph else "paragraph"
        return trim_silence(result, lead, KEEP_TAIL_FRAMES.get(after))


T = TypeVar("T")
# Returns once the client has closed its connection (`gateway.router.client_gone`).
ClientGone = Callable[[], Awaitable[None]]


async def until_client_gone(work: Awaitable[T], client_gone: ClientGone | None) -> T:
    """`work`'s result. If the client closes its connection first, `work` is cancelled (its Triton
    calls with it) and a 499 is raised: nothing is left to answer."""
    if client_gone is None:
        return await work
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # its own cleanup runs before the 499 (or the cancellation)
    if task.cancelled():
        raise ClientClosedRequest()
    return task.result()


def _silence() -> Synthesized:
    return Synthesized(np.zeros(SILENCE_SAMPLES, np.float32), np.zeros(0, np.int64))


class SpeechService:
    """Everything `POST /v1/audio/*` does; routes stay thin."""

    def __init__(
        self,
        settings: Settings,
        triton: TritonClient,
        voices: VoiceCatalogue,
        phoneme_symbols: frozenset[str] | None = None,
    ) -> None:
        self.settings = settings
        self.triton = triton
        self.voices = voices
        self.phoneme_symbols = phoneme_symbols  # Kokoro's vocabulary; None: the model checks alone

    # --- validation --------------------------------------------------------------------------
    def check_fields(self, body: BaseModel) -> None:
        """Strict mode: reject unknown top-level fields, naming the first."""
        extra = body.model_extra or {}
        if self.settings.strict_request_fields and extra:
            name = next(iter(extra))
            raise BadRequest(
                f"Unrecognized request argument supplied: '{name}'.",
                param=name,
                code="unknown_parameter",
            )

    def check_input(self, text: str) -> None:
        limit = self.settings.max_input_chars
        if not text.strip():
            raise BadRequest("'input' is empty: give the text to speak.", param="input", code="empty_input")
        if len(text) > limit:
            raise BadRequest(
                f"'input' is {len(text):,} characters long; the limit is {limit:,} characters.",
                param="input",
                code="string_above_max_length",
            )

    def check_phonemes(self, chunks: list[str]) -> None:
        """`input_type: phonemes`: every symbol in Kokoro's vocabulary, checked before any audio is
        sent (a later chunk's bad symbol would otherwise end a stream that had started)."""
        if self.phoneme_symbols is None:
            return
        unknown = sorted({c for chunk in chunks for c in chunk} - self.phoneme_symbols)
        if unknown:
            raise BadRequest(
                f"'input' has symbols outside Kokoro's phoneme vocabulary: {''.join(unknown)!r}. Send "
                "Kokoro phonemes (POST /v1/audio/phonemize returns them), or text without `input_type`.",
                param="input",
                code="invalid_value",
            )

    @staticmethod
    def g2p_lang(req: SpeechRequest, voice: ResolvedVoice) -> str:
        """`lang`, else the voice's language; a 400 for a voice whose language G2P cannot read.

        A Japanese voice given text without any Japanese script (kana, kanji) reads it as American
        English: the packaged Kokoro weights have Japanese voices only.
        """
        if req.lang:
            return req.lang
        if voice.lang_code == "j" and not _JAPANESE_SCRIPT.search(req.input):
            return "a"
        if voice.lang_code in LANG_CODES:
            return voice.lang_code
        raise BadRequest(
            f"Voice {req.voice!r} is {LANGUAGES.get(voice.lang_code, voice.lang_code)}; text-to-phoneme "
            "conversion here reads English and Japanese only: send `lang` (a: American, b: British "
            "English, j: Japanese) to read such text with it, or send phonemes with "
            "`input_type: phonemes`.",
            param="voice",
            code="unsupported_language",
        )

    async def prepare(self, req: SpeechRequest, info: dict[str, Any]) -> Prepared:
        """Validate, resolve the voice, and turn the input into phoneme chunks: all of them, or for a
        long text those of its first block (`Prepared.rest` holds the others, see `block_jobs`)."""
        info.update(chars=len(req.input), format=req.response_format)
        self.check_fields(req)
        self.check_input(req.input)
        voice = self.voices.resolve(req.voice)
        info["voice"] = voice.spec
        prep = Prepared(req, voice, [], [], [])
        if req.input_type == "phonemes":
            texts = split_phonemes(req.input)
            self.check_phonemes(texts)
            chunks = [Chunk(p, p, phoneme_words(p), i > 0) for i, p in enumerate(texts)]
        else:
            first, *prep.rest = split_blocks(req.input, self.settings.g2p_block_chars)
            chunks = await self.triton.g2p(first.text, self.g2p_lang(req, voice))
        chunks = [c for c in chunks if c.phonemes.strip()]
        if chunks:
            idle = self.triton.kokoro_in_flight <= self.settings.lead_split_max_in_flight
            pieces = split_lead(chunks[0]) if idle else halve_long(chunks[0])
            self.add_chunks(prep, pieces, then="piece")
            self.add_chunks(prep, chunks[1:])
        info["chunks"] = len(prep.chunks)
        return prep

    def add_chunks(
        self, prep: Prepared, chunks: list[Chunk], first: Join | None = None, then: Join | None = None
    ) -> list[KokoroJob]:
        """Append `chunks` and their kokoro jobs to `prep`; return the jobs. The first chunk follows
        the chunks before as `first`, each next one as `then` (None: as its paragraph says; the
        request's first chunk is always a `paragraph`)."""
        base = prep.request.seed or 0
        jobs: list[KokoroJob] = []
        for chunk in chunks:
            join: Join
            if not prep.chunks:
                join = "paragraph"  # the request's first chunk
            else:
                join = (then if jobs else first) or ("chunk" if chunk.continues_paragraph else "paragraph")
            index = len(prep.chunks)
            seed = (base + index) % 2**62
            job = KokoroJob(chunk.phonemes, prep.voice.spec, prep.request.speed, seed, self.priority(index))
            prep.chunks.append(chunk)
            prep.joins.append(join)
            prep.jobs.append(job)
            jobs.append(job)
        return jobs

    async def block_jobs(self, prep: Prepared) -> AsyncIterator[list[KokoroJob]]:
        """The kokoro jobs of each block of `prep.rest`, one G2P call per block, its chunks added to
        `prep` (a block without anything to say gives an empty list)."""
        lang = self.g2p_lang(prep.request, prep.voice)
        while prep.rest:
            chunks = await self.triton.g2p(prep.rest[0].text, lang)
            block = prep.rest.pop(0)
            chunks = [c for c in chunks if c.phonemes.strip()]
            yield self.add_chunks(prep, chunks, "chunk" if block.continues_paragraph else "paragraph")

    def priority(self, index: int) -> int:
        """Triton priority level of a request's chunk `index` (0-based): its place in the request,
        so that every waiting first piece is synthesised before any second one, and so on."""
        if not self.settings.stream_priority:
            return 0
        return min(index + 1, STREAM_PRIORITY_LEVELS)

    async def _start(self, prep: Prepared, client_gone: ClientGone | None) -> tuple[ChunkSynthesis, Synthesized]:
        """Send every chunk to Triton; wait for the first (so its errors are still a 4xx), or until
        the client goes away (a 499: its chunk calls are cancelled while still in Triton's queue)."""
        synthesis = self.triton.synthesize_all(prep.jobs, self.block_jobs(prep) if prep.rest else None)
        try:
            first = await until_client_gone(anext(synthesis, None), client_gone)
        except BaseException:
            synthesis.cancel()
            raise
        return synthesis, first if first is not None else _silence()

    # --- POST /v1/audio/speech ---------------------------------------------------------------
    async def speech(
        self, req: SpeechRequest, info: dict[str, Any], client_gone: ClientGone | None = None
    ) -> StreamingResponse:
        """Stream the audio (or SSE events) chunk by chunk as each chunk is synthesised."""
        prep = await self.prepare(req, info)
        info["stream"] = req.stream_format
        synthesis, first = await self._start(prep, client_gone)
        if req.stream_format == "sse":
            return StreamingResponse(
                self._sse(prep, synthesis, first, info),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return StreamingResponse(
            self._audio(prep, synthesis, first, info),
            media_type=audio.CONTENT_TYPES[req.response_format],
            headers={"X-Accel-Buffering": "no"},
        )

    @staticmethod
    async def _results(
        prep: Prepared, synthesis: ChunkSynthesis, first: Synthesized, info: dict[str, Any]
    ) -> AsyncIterator[Synthesized]:
        """Each chunk's audio in order, trimmed where it meets another chunk of its paragraph.
        `info["audio_s"]` (access log, metrics) holds the seconds of audio handed out so far."""
        samples = 0

        def handed_out(trimmed: Synthesized) -> Synthesized:
            nonlocal samples
            samples += len(trimmed.waveform)
            info.update(audio_s=round(samples / SAMPLE_RATE, 3), chunks=len(prep.chunks))
            return trimmed

        yield handed_out(prep.trim(0, first))
        index = 0
        async for result in synthesis:
            index += 1
            yield handed_out(prep.trim(index, result))

    async def _audio(
        self, prep: Prepared, synthesis: ChunkSynthesis, first: Synthesized, info: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        encoder = audio.StreamEncoder(prep.request.response_format)
        try:
            async for result in self._results(prep, synthesis, first, info):
                data = await _encode(encoder, result.waveform)
                if data:
                    yield data
            tail = await _close(encoder)
            if tail:
                yield tail
        finally:
            synthesis.cancel()

    async def _sse(
        self, prep: Prepared, synthesis: ChunkSynthesis, first: Synthesized, info: dict[str, Any]
    ) -> AsyncIterator[str]:
        encoder = audio.StreamEncoder(prep.request.response_format)
        out_tokens = 0
        try:
            async for result in self._results(prep, synthesis, first, info):
                out_tokens += int(result.durations.sum())
                data = await _encode(encoder, result.waveform)
                if data:
                    yield _event(SpeechAudioDelta(audio=base64.b64encode(data).decode()))
            tail = await _close(encoder)
            if tail:
                yield _event(SpeechAudioDelta(audio=base64.b64encode(tail).decode()))
            in_tokens = sum(len(j.phonemes) for j in prep.jobs)
            usage = Usage(
                input_tokens=in_tokens, output_tokens=out_tokens, total_tokens=in_tokens + out_tokens
            )
            yield _event(SpeechAudioDone(usage=usage))
        except APIError as exc:  # the status line is gone: report it as an event, on one log line
            log.warning("speech stream failed: %s", exc.message)
            yield f"data: {json.dumps({'type': 'error', **exc.body()})}\n\n"
        finally:
            synthesis.cancel()

    # --- POST /v1/audio/speech/timestamps ----------------------------------------------------
    async def timestamps(
        self, req: SpeechRequest, info: dict[str, Any], client_gone: ClientGone | None = None
    ) -> TimestampsResponse:
        """The whole audio (base64) with per-word start and end times."""
        prep = await self.prepare(req, info)
        synthesis, first = await self._start(prep, client_gone)
        waves: list[np.ndarray] = []
        words: list[WordTimestamp] = []

        async def collect() -> None:
            offset, index = 0, 0
            async for result in self._results(prep, synthesis, first, info):
                if prep.chunks:
                    words.extend(word_timestamps(prep.chunks[index], result, offset))
                waves.append(result.waveform)
                offset += len(result.waveform)
                index += 1

        try:
            await until_client_gone(collect(), client_gone)  # nothing is sent before the whole audio
        finally:
            synthesis.cancel()
        samples = np.concatenate(waves) if waves else np.zeros(0, np.float32)
        data = await run_in_threadpool(audio.encode, samples, req.response_format)
        return TimestampsResponse(
            audio=base64.b64encode(data).decode(),
            format=req.response_format,
            sample_rate=SAMPLE_RATE,
            duration=round(len(samples) / SAMPLE_RATE, 3),
            words=words,
        )

    # --- POST /v1/audio/phonemize ------------------------------------------------------------
    async def phonemize(self, req: PhonemizeRequest, info: dict[str, Any]) -> PhonemizeResponse:
        info["chars"] = len(req.input)
        self.check_fields(req)
        self.check_input(req.input)
        chunks = await self.triton.g2p(req.input, req.lang)
        info["chunks"] = len(chunks)
        return PhonemizeResponse(
            phonemes=" ".join(c.phonemes for c in chunks if c.phonemes),
            chunks=[PhonemeChunk(text=c.text, phonemes=c.phonemes) for c in chunks],
        )


def _event(message: BaseModel) -> str:
    return f"data: {message.model_dump_json()}\n\n"
