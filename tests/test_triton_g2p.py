"""The g2p model's process under the real stack: it phonemizes without loading torch."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Stack, model_process


def loads_torch(pid: int) -> bool:
    return "libtorch_cpu" in Path(f"/proc/{pid}/maps").read_text()


def test_g2p_process_phonemizes_without_torch(stack: Stack) -> None:
    import httpx

    for lang, text in (("a", "Hello there, world."), ("b", "Colour me surprised."), ("j", "今日は。")):
        reply = httpx.post(f"{stack.gateway_url}/v1/audio/phonemize", json={"input": text, "lang": lang}, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["phonemes"].strip()
    assert loads_torch(model_process(stack, "kokoro"))  # the check sees torch where it is loaded
    assert not loads_torch(model_process(stack, "g2p"))
