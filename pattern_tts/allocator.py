"""The C allocator under Triton and its python stubs: jemalloc where installed, else glibc malloc.

The kokoro model decodes one item at a time on CPU, and each item's activations are tens to hundreds
of MB, sized by its length. glibc's heap fragments under that pattern: holes left by one item are too
small for the next, longer one. Measured with the corpus's 16 longest sentences (120-413 phonemes)
as one batch, two rounds (``python -m bench.allocator``, BENCHMARKS.md):
* glibc keeping freed memory in its heap (the setting before jemalloc): the kokoro process peaked
  at 3.3 GB, then 4.4 GB, past the seed pod's 4 GiB limit;
* glibc with its default settings: 1.8 GB, then 2.0 GB (still growing), and 20 % slower: it maps
  and faults in every large activation afresh (a later run, the settings in turn: 2.2 and 1.9 GB,
  12 and 25 % slower);
* jemalloc reuses the memory by size class: 1.8 GB both rounds, and the fastest of the three.

So ``auto`` preloads jemalloc (``LD_PRELOAD``) into tritonserver, and so into its stubs, when
``libjemalloc.so.2`` is found:
* the Docker images install Debian's ``libjemalloc2``;
* ``scripts/bootstrap.sh`` unpacks the same package into the virtual environment when it can.
It falls back to glibc, with its default settings, otherwise.

``MALLOC_CONF`` keeps freed pages for reuse (no page faults on the next item). Once the model is
loaded and warmed up, :func:`release_freed_memory` hands the load's temporaries back to the system.
:class:`ReleaseWhenIdle` does the same once the model has been idle for a few seconds
(``release_memory_after_idle_s``), so that a burst of long inputs does not hold its memory until the
next one: about 600 MiB with real weights. The next request then faults its memory in again, which
cost 0.1-0.2 s of kernel time on 2 cores and no wall time that stood out of the noise
(``python -m bench.idle_release``).

While it works, the kokoro model also hands them back after each item whenever its RSS is above
``release_memory_above_mib`` (:func:`release_if_above`): a long item's activations are then not held
while shorter items follow, and the process peaks near its idle size plus one item's working memory.
Between items the cost is what the next item faults in again, once: with 12 sentences of mixed length
(14-413 phonemes) the default limit released after 3 of them, the process peaked at 1304 against 1469
MiB, and the rounds took 2 % longer in the median, inside their spread of about 10 %; releasing after
every item took 6 % longer (``python -m bench.release_above``).

Handing freed pages back *during* an item (jemalloc's background threads with a finite
``dirty_decay_ms``, after 1 or 10 s) lowers the kokoro process's peak over those 16 sentences from
1485 to 1206 MiB, and it goes back to 893 MiB after the work against staying at 1485. But every
round was slower, by 8 to 42 %, 37 % in the median: the decoder's large activations are faulted in
afresh again and again. Speed is the scarcer resource here, so within an item the pages stay. An
operator who wants them back sooner sets ``MALLOC_CONF`` (e.g.
``background_thread:true,dirty_decay_ms:1000``), which pattern-tts passes through unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

Allocator = Literal["auto", "jemalloc", "glibc"]

JEMALLOC_SONAME = "libjemalloc.so.2"
# Freed pages stay with jemalloc for reuse: the next item's activations need no page faults.
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
SYSTEM_LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
)
_MALLCTL_ARENAS_ALL = 4096  # jemalloc's "all arenas" index in mallctl names


class AllocatorNotFound(RuntimeError):
    """``allocator=jemalloc`` was asked for and no ``libjemalloc.so.2`` is installed."""


def find_jemalloc() -> Path | None:
    """``libjemalloc.so.2`` from this virtual environment's ``lib`` (bootstrap.sh) or the system's."""
    for directory in (Path(sys.prefix) / "lib", *map(Path, SYSTEM_LIB_DIRS)):
        path = directory / JEMALLOC_SONAME
        if path.is_file():
            return path
    return None


def allocator_env(choice: Allocator, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for tritonserver that selects the allocator ``choice`` (empty for glibc)."""
    environ = dict(os.environ) if environ is None else environ
    if choice == "glibc":
        return {}
    library = find_jemalloc()
    if library is None:
        if choice == "jemalloc":
            raise AllocatorNotFound(
                f"allocator=jemalloc, but {JEMALLOC_SONAME} is not installed (Debian: libjemalloc2)"
            )
        return {}
    preload = [p for p in environ.get("LD_PRELOAD", "").split(":") if p and p != str(library)]
    return {
        "LD_PRELOAD": ":".join([str(library), *preload]),
        "MALLOC_CONF": environ.get("MALLOC_CONF") or JEMALLOC_CONF,
    }


def in_use() -> Literal["jemalloc", "glibc"]:
    """The allocator serving this process's ``malloc``: jemalloc exports ``mallctl``, glibc does not."""
    return "jemalloc" if hasattr(ctypes.CDLL(None), "mallctl") else "glibc"


def release_freed_memory() -> str:
    """Hand the memory this process has freed back to the system (jemalloc: purge its arenas;
    glibc: ``malloc_trim``); returns the allocator's name."""
    if in_use() == "jemalloc":
        name = f"arena.{_MALLCTL_ARENAS_ALL}.purge".encode()
        ctypes.CDLL(None).mallctl(name, None, None, None, ctypes.c_size_t(0))
        return "jemalloc"
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is None or not hasattr(libc, "malloc_trim"):
        return "unknown"
    libc.malloc_trim(0)
    return "glibc"


def release_if_above(limit_mib: float) -> bool:
    """:func:`release_freed_memory` if this process's resident memory is above ``limit_mib``; whether it
    did. Between items the cost is what the next item faults in again (``python -m bench.release_above``)."""
    if resident_mib() <= limit_mib:
        return False
    release_freed_memory()
    return True


def resident_mib(pid: int | str = "self") -> float:
    """Resident memory (``VmRSS``) of process ``pid``, this one by default, in MiB; NaN if it has none."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class ReleaseWhenIdle:
    """Calls ``release`` once work has stopped for ``after_s`` seconds: once per idle spell.

    Wrap each piece of work in :meth:`busy`. A background thread waits for the last one to end
    and, if none starts within ``after_s``, releases. The release runs under the same lock
    :meth:`busy` takes, so it never overlaps work: work that arrives during one waits for it.
    """

    def __init__(self, after_s: float, release: Callable[[], object] = release_freed_memory) -> None:
        if after_s <= 0:
            raise ValueError(f"after_s must be > 0, got {after_s}")
        self.after_s = after_s
        self.releases = 0
        self._release = release
        self._changed = threading.Condition()
        self._working = 0
        self._idle_since: float | None = None  # None: nothing done since the last release
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="release-when-idle", daemon=True)
        self._thread.start()

    @contextmanager
    def busy(self) -> Iterator[None]:
        with self._changed:
            self._working += 1
        try:
            yield
        finally:
            with self._changed:
                self._working -= 1
                self._idle_since = time.monotonic()
                self._changed.notify()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    def _run(self) -> None:
        with self._changed:
            while not self._closed:
                if self._working or self._idle_since is None:
                    self._changed.wait()
                    continue
                left = self._idle_since + self.after_s - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                self._release()
                self.releases += 1
                self._idle_since = None


__all__ = [
    "JEMALLOC_CONF",
    "JEMALLOC_SONAME",
    "Allocator",
    "AllocatorNotFound",
    "ReleaseWhenIdle",
    "allocator_env",
    "find_jemalloc",
    "in_use",
    "release_freed_memory",
    "release_if_above",
    "resident_mib",
]
