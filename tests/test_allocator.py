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
from pathlib import Path
from typing import Any

import pytest

from pattern_tts import allocator

# A child that allocates and frees ~400 MB of torch tensors, then settles: RSS (MB) before and after.
CHILD = """
import json, torch
from pattern_tts import allocator
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
blocks = [torch.ones(1 << 20) for _ in range(100)]  # 100 x 4 MB
del blocks
blocks = [torch.ones(25 << 20) for _ in range(3)]  # 3 x 100 MB
del blocks
before = rss_mib()
name = allocator.settle_after_load()
after = rss_mib()
print(json.dumps({"in_use": allocator.in_use(), "settled": name, "before": before, "after": after}))
"""


def run_child(env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
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


def test_the_serve_stacks_kokoro_process_uses_the_allocator_auto_picks(stack) -> None:
    expected = "jemalloc" if allocator.find_jemalloc() else "glibc"
    loaded = [line for line in stack.log_text().splitlines() if "kokoro: loaded on" in line]
    assert loaded, "the kokoro model logged no load line"
    assert f"allocator={expected}" in loaded[-1], loaded[-1]
