"""Text to Kokoro phonemes, offline: normalisation, misaki G2P (English, Japanese), vocab filter, chunking.

>>> from pattern_tts.text import Phonemizer
>>> [c.to_dict() for c in Phonemizer(vocab).chunks("Hi there.")]  # doctest: +SKIP
[{'text': 'Hi there.', 'phonemes': 'hˈI ðˈɛɹ.', 'words': [{'word': 'Hi', 'start': 0, 'end': 3}, ...]}]
"""

from pattern_tts.weights.architecture import load_vocab

from .chunking import PHONEME_LIMIT, Chunk, Word, split_phonemes
from .g2p import SUPPORTED_LANGS, Phonemizer, resolve_lang
from .japanese import JapaneseUnavailable
from .normalization import normalize, normalize_text
from .vocab import VocabFilter

__all__ = [
    "PHONEME_LIMIT",
    "SUPPORTED_LANGS",
    "Chunk",
    "JapaneseUnavailable",
    "Phonemizer",
    "VocabFilter",
    "Word",
    "load_vocab",
    "normalize",
    "normalize_text",
    "resolve_lang",
    "split_phonemes",
]
