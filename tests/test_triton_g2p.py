"""The g2p model's process under the real stack: it phonemizes without loading torch."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Stack


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found.extend(children)
        todo.extend(children)
    return found


def model_process(stack: Stack, model: str) -> int:
    """The pid of the python-backend stub that runs ``model``."""
    for pid in descendants(stack.process.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"triton_python_backend_stub") and argv[1].endswith(f"/{model}/1/model.py".encode()):
            return pid
    raise AssertionError(f"no python stub for model {model!r} under pid {stack.process.pid}")


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
