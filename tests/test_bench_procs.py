"""bench/procs.py: the measuring process that bench scripts run set up as Triton's."""

from __future__ import annotations

from bench.procs import served_child
from pattern_tts import allocator
from pattern_tts.cpu import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_ENV

# Reports the allocator and oneDNN cache bound it runs with, after a line of other output.
CHILD = f"""
import json, os, sys
from pattern_tts import allocator
print("warming up")
onednn = os.environ.get("{ONEDNN_CACHE_ENV}")
print(json.dumps({{"allocator": allocator.in_use(), "onednn": onednn, "args": sys.argv[1:]}}))
"""


def test_the_served_child_runs_as_triton_would_and_its_last_line_becomes_the_results() -> None:
    results = served_child(CHILD, ["a", "b"], "random weights", "af_heart", note="a note")
    assert results["allocator"] == ("jemalloc" if allocator.find_jemalloc() else "glibc")
    assert results["onednn"] == str(ONEDNN_CACHE_CAPACITY)
    assert results["args"] == ["a", "b"]
    assert results["weights"] == "random weights" and results["voice"] == "af_heart" and results["note"] == "a note"
    assert {"date", "git", "machine"} <= set(results)
    assert "note" not in served_child(CHILD, [], "random weights", "af_heart")
