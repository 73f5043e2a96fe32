"""The C allocator under Triton (pattern_tts/allocator.py): which one ``auto`` picks, that the
environment it builds reaches a child process, and that freed load memory goes back to the system.

scripts/bootstrap.sh unpacks libjemalloc2 into .venv/lib where apt-get can fetch it; where it
could not, ``auto`` means glibc and the tests check that path instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pattern_tts import allocator

# A child that allocates and frees ~400 MB of torch tensors, then settles: RSS (MB) before and after.
CHILD = """
import json, torch
from pattern_tts import allocator
blocks = [torch.ones(1 << 20) for _ in range(100)]  # 100 x 4 MB
del blocks
blocks = [torch.ones(25 << 20) for _ in range(3)]  # 3 x 100 MB
del blocks
before = allocator.resident_mib()
name = allocator.release_freed_memory()
after = allocator.resident_mib()
print(json.dumps({"in_use": allocator.in_use(), "settled": name, "before": before, "after": after}))
"""


# The same freed memory, then release_if_above with a limit above the RSS, then with one below it.
CHILD_ABOVE = """
import json, torch
from pattern_tts import allocator
blocks = [torch.ones(25 << 20) for _ in range(4)]  # 4 x 100 MB
del blocks
before = allocator.resident_mib()
above = allocator.release_if_above(before + 64)
kept = allocator.resident_mib()
below = allocator.release_if_above(kept - 64)
print(json.dumps({"before": before, "above": above, "kept": kept, "below": below, "after": allocator.resident_mib()}))
"""


def run_child(env: dict[str, str], code: str = CHILD) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_glibc_choice_leaves_the_environment_alone() -> None:
    assert allocator.allocator_env("glibc") == {}


def test_auto_preloads_jemalloc_exactly_when_it_is_installed() -> None:
    env = allocator.allocator_env("auto", environ={})
    library = allocator.find_jemalloc()
    if library is None:
        assert env == {}
    else:
        assert env == {"LD_PRELOAD": str(library), "MALLOC_CONF": allocator.JEMALLOC_CONF}


def test_jemalloc_env_keeps_existing_preloads_and_the_operators_malloc_conf(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "lib" / allocator.JEMALLOC_SONAME
    fake.parent.mkdir()
    fake.write_bytes(b"")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    env = allocator.allocator_env(
        "jemalloc", environ={"LD_PRELOAD": f"/opt/other.so:{fake}", "MALLOC_CONF": "narenas:2"}
    )
    assert env == {"LD_PRELOAD": f"{fake}:/opt/other.so", "MALLOC_CONF": "narenas:2"}


def test_asking_for_jemalloc_where_there_is_none_is_a_clear_error(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(allocator, "SYSTEM_LIB_DIRS", (str(tmp_path),))
    assert allocator.find_jemalloc() is None
    assert allocator.allocator_env("auto") == {}
    with pytest.raises(allocator.AllocatorNotFound, match="libjemalloc2"):
        allocator.allocator_env("jemalloc")


def test_the_chosen_allocator_serves_the_child_and_gives_freed_memory_back() -> None:
    expected = "jemalloc" if allocator.find_jemalloc() else "glibc"
    report = run_child(allocator.allocator_env("auto"))
    assert report["in_use"] == expected
    assert report["settled"] == expected
    if expected == "jemalloc":  # JEMALLOC_CONF keeps every freed page until the purge
        assert float(report["before"]) - float(report["after"]) > 300, report
    else:  # glibc unmaps the large blocks itself; the trim leaves no more than it started with
        assert float(report["after"]) <= float(report["before"]) + 1, report


def test_release_if_above_releases_only_past_its_limit() -> None:
    report = run_child(allocator.allocator_env("auto"), CHILD_ABOVE)
    assert report["above"] is False and report["below"] is True, report
    assert abs(report["kept"] - report["before"]) < 16, report  # under the limit: nothing handed back
    if allocator.find_jemalloc():  # jemalloc kept the 400 MB until the release
        assert report["kept"] - report["after"] > 300, report


def test_the_serve_stacks_kokoro_process_uses_the_allocator_auto_picks(stack) -> None:
    expected = "jemalloc" if allocator.find_jemalloc() else "glibc"
    loaded = [line for line in stack.log_text().splitlines() if "kokoro: loaded on" in line]
    assert loaded, "the kokoro model logged no load line"
    assert f"allocator={expected}" in loaded[-1], loaded[-1]


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_release_when_idle_waits_for_the_work_to_stop_then_releases_once_per_idle_spell() -> None:
    calls: list[float] = []
    idle = allocator.ReleaseWhenIdle(0.3, lambda: calls.append(time.monotonic()))
    try:
        time.sleep(0.5)
        assert calls == [], "released before any work was done"
        with idle.busy():
            time.sleep(0.6)  # longer than after_s: still no release while working
            assert calls == []
        done = time.monotonic()
        assert wait_until(lambda: len(calls) == 1, 5)
        assert calls[0] - done >= 0.3
        time.sleep(0.6)
        assert len(calls) == 1, "released again without new work"
        for _ in range(5):  # work arriving inside after_s pushes the release back
            with idle.busy():
                time.sleep(0.01)
            time.sleep(0.15)
        assert len(calls) == 1
        assert wait_until(lambda: len(calls) == 2, 5)
        assert idle.releases == 2
    finally:
        idle.close()


def test_release_when_idle_never_releases_while_a_piece_of_work_runs() -> None:
    lock, working = threading.Lock(), [0]
    overlapped: list[bool] = []  # per release: was any work running?
    idle = allocator.ReleaseWhenIdle(0.05, lambda: overlapped.append(working[0] > 0))

    def work() -> None:
        for _ in range(30):
            with idle.busy():
                with lock:
                    working[0] += 1
                time.sleep(0.02)
                with lock:
                    working[0] -= 1
            time.sleep(0.1)  # idle for longer than after_s: a release may come in here

    try:
        workers = [threading.Thread(target=work) for _ in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert overlapped, "no release happened in the idle gaps"
        assert not any(overlapped), "a release ran while work was in progress"
    finally:
        idle.close()


def test_release_when_idle_needs_a_positive_delay_and_closes() -> None:
    with pytest.raises(ValueError, match="after_s"):
        allocator.ReleaseWhenIdle(0, lambda: None)
    idle = allocator.ReleaseWhenIdle(60, lambda: None)
    idle.close()
    assert not idle._thread.is_alive()
