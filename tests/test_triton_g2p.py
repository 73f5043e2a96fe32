"""The g2p and kokoro models' processes under the real stack: each loads only its side of Kokoro (the g2p
no torch, the kokoro model no text pipeline)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import Stack, model_process


def loads_torch(pid: int) -> bool:
    return "libtorch_cpu" in Path(f"/proc/{pid}/maps").read_text()


def test_g2p_process_phonemizes_without_torch(stack: Stack) -> None:
    for lang, text in (("a", "Hello there, world."), ("b", "Colour me surprised."), ("j", "今日は。")):
        reply = httpx.post(f"{stack.gateway_url}/v1/audio/phonemize", json={"input": text, "lang": lang}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["phonemes"].strip()
    assert loads_torch(model_process(stack, "kokoro"))  # the check sees torch where it is loaded
    assert not loads_torch(model_process(stack, "g2p"))


def spacy_libraries(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return sorted({line.split()[-1] for line in maps if "/spacy/" in line or "/thinc/" in line})


def test_the_kokoro_process_runs_the_model_without_kokoros_text_pipeline(stack: Stack) -> None:
    """``import kokoro`` would load KPipeline, and with it misaki and spaCy (67 MiB), into the process
    that only runs KModel (pattern_tts/synthesis/kokoro_model.py)."""
    reply = httpx.post(f"{stack.gateway_url}/v1/audio/phonemize", json={"input": "Hello there."}, timeout=60)
    assert reply.status_code == 200, reply.text
    assert spacy_libraries(model_process(stack, "g2p"))  # the check sees spaCy where it is loaded
    assert not spacy_libraries(model_process(stack, "kokoro"))
