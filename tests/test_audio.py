"""Tests for gateway.audio: every format whole and streamed, decoded back with PyAV."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import wave

import av
import numpy as np
import pytest

from gateway.audio import (
    CONTENT_TYPES,
    FORMATS,
    SAMPLE_RATE,
    StreamEncoder,
    encode,
    to_pcm16,
)

SR = SAMPLE_RATE
LOSSY = ("mp3", "opus", "aac")
LOSSLESS = ("flac", "wav", "pcm")
TOLERANCE_S = 0.050
# Where the input's first sample lands in the decoded output (samples at 24 kHz): mp3 keeps the
# 529-sample decoder delay; aac and opus are aligned.
LEAD = {"mp3": 529, "opus": 0, "aac": 0, "flac": 0, "wav": 0, "pcm": 0}
# Chunk sizes for the streamed tests: uneven, one shorter than any codec frame (100 < 480), one empty.
CHUNKS = (SR // 3, 100, 0, 12_345, 1, SR + 7, 0, 999)


def _signal(n: int, seed: int = 0) -> np.ndarray:
    """A 440 Hz tone with some noise, loud up to the very last sample."""
    t = np.arange(n) / SR
    noise = np.random.default_rng(seed).standard_normal(n)
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * noise).astype(np.float32)


X = _signal(sum(CHUNKS))  # ~1.75 s, an odd number of samples


def _stream(x: np.ndarray, fmt: str, chunks: tuple[int, ...] = CHUNKS) -> tuple[bytes, list[bytes]]:
    enc = StreamEncoder(fmt)  # type: ignore[arg-type]
    parts, at = [], 0
    for size in chunks:
        parts.append(enc.write(x[at : at + size]))
        at += size
    assert at == len(x)
    parts.append(enc.close())
    return b"".join(parts), parts


def _decode(data: bytes, fmt: str) -> tuple[np.ndarray, int, int]:
    """Decoded samples as float in [-1, 1] (int16 for lossless formats), rate and channels."""
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2"), SR, 1
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        frames = list(container.decode(stream))
    rate = frames[0].sample_rate if frames else stream.codec_context.sample_rate
    assert all(f.sample_rate == rate for f in frames)
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]) if frames else np.zeros(0)
    return samples, rate, channels


def _check(data: bytes, fmt: str, x: np.ndarray) -> None:
    """The bytes decode to mono 24 kHz audio of the input's duration, ending with the input's tail."""
    y, rate, channels = _decode(data, fmt)
    assert channels == 1
    assert rate == (48_000 if fmt == "opus" else SR)  # Opus decoders always output 48 kHz
    if fmt in LOSSLESS:
        np.testing.assert_array_equal(y, to_pcm16(x))
        return
    assert abs(len(y) / rate - len(x) / SR) <= TOLERANCE_S
    assert len(y) / rate >= len(x) / SR - 0.002
    # No lost tail: the input's last 20 ms are in the output, at full level.
    k = rate // SR
    end = (LEAD[fmt] + len(x)) * k
    tail = y[end - 480 * k : end].astype(np.float64)
    ref = x[-480:].astype(np.float64)
    assert np.sqrt(np.mean(tail**2)) == pytest.approx(np.sqrt(np.mean(ref**2)), rel=0.25)


def test_content_types() -> None:
    assert CONTENT_TYPES == {
        "mp3": "audio/mpeg",
        "opus": "audio/opus",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm",
    }
    assert set(FORMATS) == set(CONTENT_TYPES)
    assert SAMPLE_RATE == 24_000
    assert StreamEncoder("mp3").content_type == "audio/mpeg"


@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_whole(fmt: str) -> None:
    _check(encode(X, fmt), fmt, X)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_uneven_chunks(fmt: str) -> None:
    data, parts = _stream(X, fmt)
    _check(data, fmt, X)
    assert parts[2] == b""  # an empty write, after the header went out with the first one


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_matches_encode(fmt: str) -> None:
    whole = encode(X, fmt)  # type: ignore[arg-type]
    streamed, _ = _stream(X, fmt)
    if fmt in ("mp3", "aac", "pcm"):
        assert streamed == whole
    elif fmt == "wav":
        assert streamed[44:] == whole[44:]
    elif fmt == "flac":  # same frames; only STREAMINFO's total-samples and MD5 differ
        assert len(streamed) == len(whole)
        assert streamed[:18] == whole[:18] and streamed[42:] == whole[42:]
    else:  # opus: a fresh random Ogg serial number per stream, same audio
        np.testing.assert_array_equal(_decode(streamed, fmt)[0], _decode(whole, fmt)[0])


@pytest.mark.parametrize("fmt", FORMATS)
def test_bytes_arrive_incrementally(fmt: str) -> None:
    """After 1 s of input, write() has returned (nearly) all of it in decodable form."""
    x = _signal(3 * SR, seed=1)
    enc = StreamEncoder(fmt)  # type: ignore[arg-type]
    first = enc.write(x[:SR])
    assert first
    if fmt not in ("pcm", "wav"):
        y, rate, _ = _decode(first, fmt)
        assert len(y) / rate >= 0.85  # codec look-ahead and Ogg paging hold back ~0.1 s at most
    second = enc.write(x[SR : 2 * SR])
    assert second
    assert len(enc.close()) < len(second)


def test_mp3_plain_frames_concatenate() -> None:
    data = encode(X, "mp3")
    assert data[:2] == b"\xff\xf3"  # MPEG-2 Layer III sync, no ID3 tag in front
    # No Xing/Info/LAME header frame (LAME's version string as filler in ancillary bits is harmless).
    assert b"Xing" not in data[:1000] and b"Info" not in data[:1000]
    assert data[-128:-125] != b"TAG"  # no ID3v1 tag at the end
    y, rate, _ = _decode(data + data, "mp3")
    single = len(_decode(data, "mp3")[0])
    assert len(y) == 2 * single
    assert abs(len(y) / rate - 2 * len(X) / SR) <= 2 * TOLERANCE_S


def test_aac_is_adts() -> None:
    data = encode(X, "aac")
    at, frames = 0, 0
    while at < len(data):  # walk the ADTS frames: they cover the file exactly
        assert data[at] == 0xFF and data[at + 1] & 0xF6 == 0xF0
        assert (data[at + 2] >> 2) & 0xF == 6  # sampling frequency index 6 = 24 kHz
        at += ((data[at + 3] & 3) << 11) | (data[at + 4] << 3) | (data[at + 5] >> 5)
        frames += 1
    assert at == len(data)
    assert frames * 1024 == pytest.approx(len(X), abs=1024)


def test_opus_is_ogg() -> None:
    data, _ = _stream(X, "opus")
    assert data[:4] == b"OggS" and data[28:36] == b"OpusHead"
    assert struct.unpack("<I", data[40:44])[0] == SR  # OpusHead input sample rate


def test_wav_headers() -> None:
    streamed, _ = _stream(X, "wav")
    riff, data_size = struct.unpack("<I", streamed[4:8])[0], struct.unpack("<I", streamed[40:44])[0]
    assert (riff, data_size) == (0xFFFFFFFF, 0xFFFFFFFF)  # streaming: length unknown
    whole = encode(X, "wav")
    assert struct.unpack("<I", whole[4:8])[0] == len(whole) - 8
    assert struct.unpack("<I", whole[40:44])[0] == 2 * len(X)
    for data in (whole, streamed):
        with wave.open(io.BytesIO(data)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SR, 1, 2)
            assert w.readframes(10**9) == to_pcm16(X).tobytes()


def test_flac_streaminfo() -> None:
    def total_and_md5(data: bytes) -> tuple[int, bytes]:
        assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
        packed = struct.unpack(">Q", data[18:26])[0]
        return packed & ((1 << 36) - 1), data[26:42]

    streamed, _ = _stream(X, "flac")
    assert total_and_md5(streamed) == (0, bytes(16))  # unknown while streaming: valid
    whole = encode(X, "flac")
    assert total_and_md5(whole) == (len(X), hashlib.md5(to_pcm16(X).tobytes()).digest())
    with av.open(io.BytesIO(whole), mode="r") as container:
        stream = container.streams.audio[0]
        assert stream.duration is not None and stream.time_base is not None
        assert stream.duration * stream.time_base * SR == len(X)


def test_pcm_is_raw_s16le() -> None:
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, np.nan, np.inf, -np.inf], dtype=np.float32)
    expected = (0, 16384, -16384, 32767, -32767, 32767, -32767, 0, 32767, -32767)
    assert encode(x, "pcm") == struct.pack("<10h", *expected)
    assert encode(x, "wav")[44:] == encode(x, "pcm")


def test_input_shapes_and_errors() -> None:
    x = X[:1000]
    assert encode(x[None, :], "pcm") == encode(x, "pcm") == encode(x.astype(np.float64), "pcm")
    with pytest.raises(ValueError):
        encode(np.zeros((2, 100), np.float32), "pcm")
    with pytest.raises(ValueError):
        StreamEncoder("ogg")  # type: ignore[arg-type]
    enc = StreamEncoder("mp3")
    enc.write(x)
    assert enc.close()
    assert enc.close() == b""
    with pytest.raises(RuntimeError):
        enc.write(x)


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_input(fmt: str) -> None:
    data = encode(np.zeros(0, np.float32), fmt)  # type: ignore[arg-type]
    if fmt in ("wav", "flac"):
        assert len(_decode(data, fmt)[0]) == 0
    elif fmt == "opus":
        assert data[:4] == b"OggS"  # headers only
    else:
        assert data == b""


@pytest.mark.parametrize("fmt", FORMATS)
def test_speed(fmt: str) -> None:
    """20 s of audio encodes in well under a second (60 s takes <= 0.4 s on one core)."""
    x = _signal(20 * SR, seed=2)
    start = time.perf_counter()
    encode(x, fmt)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 1.0
