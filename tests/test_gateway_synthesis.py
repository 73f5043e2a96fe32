"""Scheduling of one request's chunk calls (`ChunkSynthesis`): head start, window, order, cancel.

The Triton client is replaced by a recorder here, to test the scheduling alone; the real calls are
exercised in `test_gateway_api.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from gateway.errors import BadRequest
from gateway.triton import ChunkSynthesis, KokoroJob, Synthesized, TritonClient


class Recorder(TritonClient):
    """Answers each job after `delay[job]` seconds; records start times, cancellations."""

    def __init__(self, delays: dict[str, float], fail: str | None = None) -> None:
        self.delays = delays
        self.fail = fail
        self.started: list[tuple[str, float]] = []
        self.cancelled: list[str] = []
        self.t0 = 0.0
        self.kokoro_in_flight = 0

    async def synthesize(self, job: KokoroJob) -> Synthesized:
        loop = asyncio.get_running_loop()
        self.started.append((job.phonemes, loop.time() - self.t0))
        try:
            await asyncio.sleep(self.delays[job.phonemes])
        except asyncio.CancelledError:
            self.cancelled.append(job.phonemes)
            raise
        if job.phonemes == self.fail:
            raise BadRequest("bad chunk")
        return Synthesized(np.full(10, float(ord(job.phonemes[0])), np.float32), np.ones(3, np.int64))


def _jobs(names: str) -> list[KokoroJob]:
    return [KokoroJob(n, "af_heart") for n in names]


async def _collect(synthesis: ChunkSynthesis) -> list[str]:
    return [chr(int(r.waveform[0])) async for r in synthesis]


def test_results_in_order_with_head_start() -> None:
    async def run() -> Recorder:
        rec = Recorder({"a": 0.05, "b": 0.01, "c": 0.0, "d": 0.02})
        rec.t0 = asyncio.get_running_loop().time()
        assert await _collect(ChunkSynthesis(rec, _jobs("abcd"), window=8, head_start_s=0.02)) == list("abcd")
        return rec

    rec = asyncio.run(run())
    starts = dict(rec.started)
    assert starts["a"] < 0.01
    assert all(0.015 <= starts[n] < 0.05 for n in "bcd")  # all sent together, after the lead


def test_window_bounds_calls_in_flight() -> None:
    async def run() -> Recorder:
        rec = Recorder({n: 0.01 for n in "abcdef"})
        rec.t0 = asyncio.get_running_loop().time()
        synthesis = ChunkSynthesis(rec, _jobs("abcdef"), window=2)
        assert [s for s, _ in rec.started] == []  # tasks start on the next loop iteration
        assert rec.kokoro_in_flight == 2  # but count as in flight already
        await asyncio.sleep(0)
        assert len(rec.started) == 2
        assert await _collect(synthesis) == list("abcdef")
        return rec

    assert len(asyncio.run(run()).started) == 6


def test_cancel_stops_pending_and_unsent_calls() -> None:
    async def run() -> Recorder:
        rec = Recorder({n: (0.0 if n == "a" else 10.0) for n in "abcdef"})
        synthesis = ChunkSynthesis(rec, _jobs("abcdef"), window=3)
        first = await synthesis.__anext__()
        assert first.waveform[0] == ord("a")
        await asyncio.sleep(0.01)
        synthesis.cancel()
        await asyncio.sleep(0.01)
        return rec

    rec = asyncio.run(run())
    assert {s for s, _ in rec.started} == set("abcd")  # window 3: d started when a was consumed
    assert sorted(rec.cancelled) == list("bcd")
    assert rec.kokoro_in_flight == 0  # cancelled calls are no longer counted


def test_error_of_a_chunk_cancels_the_rest() -> None:
    async def run() -> Recorder:
        rec = Recorder({"a": 0.0, "b": 0.01, "c": 10.0}, fail="b")
        synthesis = ChunkSynthesis(rec, _jobs("abc"), window=8)
        await synthesis.__anext__()
        with pytest.raises(BadRequest):
            await synthesis.__anext__()
        await asyncio.sleep(0.01)
        return rec

    rec = asyncio.run(run())
    assert rec.cancelled == ["c"]
    assert rec.kokoro_in_flight == 0


async def _blocks(names: str, delay: float, fail_after: int | None = None) -> AsyncIterator[list[KokoroJob]]:
    """A long input's later blocks, one job each, each after `delay` (its G2P call)."""
    for i, name in enumerate(names):
        await asyncio.sleep(delay)
        if i == fail_after:
            raise BadRequest("g2p failed")
        yield _jobs(name)


def test_blocks_are_asked_for_one_per_consumed_result_and_keep_their_order() -> None:
    """The G2P of the next block waits for a result to be consumed (it would compete with the first
    chunk's synthesis for the CPU); the blocks' chunks follow in order."""
    consumed: list[str] = []
    asked: list[int] = []  # results consumed when each block was asked for

    async def blocks() -> AsyncIterator[list[KokoroJob]]:
        for names in ["cd", "e", "f"]:
            asked.append(len(consumed))
            await asyncio.sleep(0.01)
            yield _jobs(names)

    async def run() -> None:
        rec = Recorder({n: 0.02 for n in "abcdef"})
        async for result in ChunkSynthesis(rec, _jobs("ab"), window=8, head_start_s=0.005, more=blocks()):
            consumed.append(chr(int(result.waveform[0])))

    asyncio.run(run())
    assert consumed == list("abcdef")
    assert asked[0] == 1 and all(n >= k + 1 for k, n in enumerate(asked))


def test_blocks_wait_while_a_window_of_chunks_waits() -> None:
    consumed: list[str] = []
    asked: list[int] = []

    async def blocks() -> AsyncIterator[list[KokoroJob]]:
        for names in ["cde", "fgh", "i"]:
            asked.append(len(consumed))
            yield _jobs(names)

    async def run() -> None:
        rec = Recorder({n: 0.01 for n in "acdefghi"} | {"b": 0.05})
        async for result in ChunkSynthesis(rec, _jobs("ab"), window=2, more=blocks()):
            consumed.append(chr(int(result.waveform[0])))

    asyncio.run(run())
    assert consumed == list("abcdefghi")
    # After "a": b and c, d, e wait; the next block only once fewer than 2 do (after d), not after b.
    assert asked[0] == 1 and asked[1] >= 4


def test_no_first_jobs_waits_for_the_blocks() -> None:
    async def run(first: str, blocks: str) -> list[str]:
        rec = Recorder({n: 0.0 for n in first + blocks})
        synthesis = ChunkSynthesis(rec, _jobs(first), window=8, head_start_s=0.02, more=_blocks(blocks, 0.01))
        return await _collect(synthesis)

    assert asyncio.run(run("", "ab")) == ["a", "b"]
    assert asyncio.run(run("", "")) == []
    assert asyncio.run(run("a", "")) == ["a"]


def test_a_blocks_error_comes_after_the_results_before_it() -> None:
    async def run() -> tuple[list[str], Recorder]:
        rec = Recorder({n: 0.0 for n in "abc"})
        synthesis = ChunkSynthesis(rec, _jobs("a"), window=8, more=_blocks("bcd", 0.01, fail_after=2))
        got = [chr(int((await synthesis.__anext__()).waveform[0])) for _ in range(3)]
        with pytest.raises(BadRequest, match="g2p failed"):
            await synthesis.__anext__()
        return got, rec

    got, rec = asyncio.run(run())
    assert got == list("abc") and rec.kokoro_in_flight == 0


def test_cancel_stops_the_blocks() -> None:
    async def run() -> Recorder:
        rec = Recorder({n: 0.0 for n in "abcd"})
        synthesis = ChunkSynthesis(rec, _jobs("a"), window=8, more=_blocks("bcd", 0.02))
        await synthesis.__anext__()
        synthesis.cancel()
        await asyncio.sleep(0.1)
        return rec

    assert [s for s, _ in asyncio.run(run()).started] == ["a"]  # b, c, d were never converted


def test_a_phoneme_budget_holds_chunks_back_until_earlier_ones_come_back() -> None:
    """On CPU the calls of all requests share one queue: a request sends chunks only while their
    phonemes fit its budget (or while it has nothing out), the rest as earlier ones are consumed."""
    jobs = [KokoroJob(p, "af_heart") for p in ("a" * 500, "b" * 500, "c" * 500, "d" * 50)]

    async def run(budget: int | None) -> dict[str, float]:
        rec = Recorder({"a" * 500: 0.03, "b" * 500: 0.1, "c" * 500: 0.01, "d" * 50: 0.01})
        rec.t0 = asyncio.get_running_loop().time()
        synthesis = ChunkSynthesis(rec, jobs, window=8, phoneme_budget=budget)
        assert await _collect(synthesis) == list("abcd")
        return {name[0]: t for name, t in rec.started}

    starts = asyncio.run(run(1100))
    assert starts["a"] < 0.02 and starts["b"] < 0.02  # 1,000 phonemes out
    assert starts["c"] >= 0.03 and starts["d"] >= 0.03  # after a came back: 500 + 500 + 50 fit
    assert max(asyncio.run(run(None)).values()) < 0.02  # no budget: all at once

    async def alone() -> list[str]:
        big = KokoroJob("e" * 2000, "af_heart")
        return await _collect(ChunkSynthesis(Recorder({big.phonemes: 0.0}), [big], window=8, phoneme_budget=1100))

    assert asyncio.run(alone()) == ["e"]  # a chunk over the budget still goes out when nothing else is
