"""The benchmark's load generator: playback stalls of a streamed response."""

from __future__ import annotations

import pytest

from bench.loadgen import SAMPLE_RATE, playback_stall

SECOND = 2 * SAMPLE_RATE  # bytes of one second of 16-bit mono pcm


def test_no_stall_when_each_read_arrives_before_the_audio_before_it_has_played() -> None:
    assert playback_stall([(0.5, SECOND), (1.2, SECOND), (2.4, SECOND)], "pcm") == 0.0


def test_stall_is_the_time_a_player_waits_after_it_ran_dry() -> None:
    # Plays 0.5-1.5 s; the next second arrives at 2.0 (0.5 s wait) and plays until 3.0; the last
    # arrives at 4.0 (1 s wait).
    arrivals = [(0.5, SECOND), (2.0, SECOND), (4.0, SECOND // 2)]
    assert playback_stall(arrivals, "pcm") == pytest.approx(1.5)
    assert playback_stall(arrivals, "wav") == pytest.approx(1.5)


def test_no_stall_figure_for_compressed_formats_or_an_empty_body() -> None:
    assert playback_stall([(0.5, 100), (9.0, 100)], "mp3") == 0.0
    assert playback_stall([], "pcm") == 0.0
