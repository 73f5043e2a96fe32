"""Kokoro's model (``KModel`` and its iSTFTNet decoder) without Kokoro's text pipeline.

``import kokoro`` runs the package's ``__init__``, which imports ``KPipeline`` and with it misaki,
spaCy, phonemizer and espeak: 67 MiB more resident memory (``python -m bench.kokoro_imports``) in
the kokoro model's process, which never reads text (the g2p model does). Kokoro keeps ``KModel``
language-blind, so its modules load alone: where ``kokoro`` is not imported yet, it is registered
without running its ``__init__``, with what that ``__init__`` does for the model (silence Kokoro's
loguru logger) and the package's names (``kokoro.KModel``, ``kokoro.KPipeline``) resolved when
first used.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def _register_kokoro_without_pipeline() -> None:
    if "kokoro" in sys.modules:
        return
    spec = importlib.util.find_spec("kokoro")
    if spec is None or spec.loader is None:
        return  # not installed: the imports below say so
    package = importlib.util.module_from_spec(spec)  # with its __path__, not executed

    def names_on_first_use(name: str) -> object:
        submodule = {"KModel": "kokoro.model", "KPipeline": "kokoro.pipeline"}.get(name)
        if submodule is None:
            raise AttributeError(f"module 'kokoro' has no attribute {name!r}")
        return getattr(importlib.import_module(submodule), name)

    package.__getattr__ = names_on_first_use  # type: ignore[method-assign]
    sys.modules["kokoro"] = package
    from loguru import logger

    logger.disable("kokoro")  # as kokoro/__init__.py does


_register_kokoro_without_pipeline()

from kokoro.istftnet import (  # noqa: E402
    AdaIN1d,
    AdainResBlk1d,
    AdaINResBlock1,
    Decoder,
    Generator,
)
from kokoro.model import KModel  # noqa: E402

__all__ = ["AdaIN1d", "AdaINResBlock1", "AdainResBlk1d", "Decoder", "Generator", "KModel"]
