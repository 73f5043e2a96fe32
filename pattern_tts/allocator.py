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
loaded and warmed up, :func:`settle_after_load` hands the load's temporaries back to the system.

Handing freed pages back as they go unused (jemalloc's background threads with a finite
``dirty_decay_ms``, after 1 or 10 s) lowers the kokoro process's peak over those 16 sentences from
1485 to 1206 MiB, and it goes back to 893 MiB after the work against staying at 1485. But every
round was slower, by 8 to 42 %, 37 % in the median: the decoder's large activations are faulted in
afresh again and again. Speed is the scarcer resource here, so the pages stay. An operator who wants
the memory back sets ``MALLOC_CONF`` (e.g. ``background_thread:true,dirty_decay_ms:1000``),
which pattern-tts passes through unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
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


def settle_after_load() -> str:
    """Hand the memory freed during model load and warm-up back to the system (jemalloc: purge its
    arenas; glibc: ``malloc_trim``); returns the allocator's name."""
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


__all__ = [
    "JEMALLOC_CONF",
    "JEMALLOC_SONAME",
    "Allocator",
    "AllocatorNotFound",
    "allocator_env",
    "find_jemalloc",
    "in_use",
    "settle_after_load",
]
