"""The voice catalogue: Kokoro voice files, aliases, blends.

Voices are the `voices/*.pt` files of the weights directory, by file name (the gateway never loads
them; the Triton `kokoro` model does). Aliases (first candidate present wins; an alias none of
whose candidates is present is not listed):

| alias | Kokoro voice (candidates in order) |
|---|---|
| `af` | `af_bella+af_sarah` (equal blend; Kokoro v0.19's default voice) |
| `am` | `am_adam` |
| `alloy` | `af_alloy`, `af_heart`, `af_bella`, `jf_alpha` |
| `ash` | `am_michael`, `am_adam`, `jm_kumo` |
| `ballad` | `bm_george`, `bm_lewis`, `am_adam`, `jm_kumo` |
| `coral` | `af_heart`, `af_bella`, `jf_alpha` |
| `echo` | `am_echo`, `am_adam`, `jm_kumo` |
| `fable` | `bm_fable`, `bm_george`, `bf_emma`, `jm_kumo` |
| `nova` | `af_nova`, `af_sky`, `af_bella`, `jf_nezumi` |
| `onyx` | `am_onyx`, `am_adam`, `jm_kumo` |
| `sage` | `af_sarah`, `af_heart`, `jf_gongitsune` |
| `shimmer` | `af_nicole`, `af_sky`, `af_bella`, `jf_tebukuro` |
| `verse` | `am_liam`, `am_puck`, `am_adam`, `jm_kumo` |
| `marin` | `af_aoede`, `af_kore`, `af_heart`, `jf_alpha` |
| `cedar` | `am_eric`, `am_fenrir`, `am_adam`, `jm_kumo` |

OpenAI's names fall back, last, to the Japanese voices of the packaged weights (the default on a
machine without the hub), so that a client that sends `alloy` unchanged (an SDK example, Home
Assistant's key check) still gets speech; such a voice reads text without kana or kanji as English.

Blends: `a+b` (equal weights) or `a(2)+b(1)` (weights positive and finite, normalised by the
model; syntax of `pattern_tts.voice_spec`); components may be voices or aliases. The canonical spec
sent to Triton names only voice files.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import BadRequest
from gateway.protocol import VoiceInfo
from pattern_tts.voice_spec import VoiceSpecError, format_voice_spec, parse_voice_spec
from pattern_tts.weights.architecture import CONFIG_NAME, kokoro_vocab, load_vocab

log = logging.getLogger("gateway")

LANGUAGES: dict[str, str] = {
    "a": "American English",
    "b": "British English",
    "e": "Spanish",
    "f": "French",
    "h": "Hindi",
    "i": "Italian",
    "j": "Japanese",
    "p": "Brazilian Portuguese",
    "z": "Mandarin Chinese",
}
GENDERS: dict[str, str] = {"f": "female", "m": "male"}

ALIASES: dict[str, tuple[str, ...]] = {
    "af": ("af_bella+af_sarah",),
    "am": ("am_adam",),
    "alloy": ("af_alloy", "af_heart", "af_bella", "jf_alpha"),
    "ash": ("am_michael", "am_adam", "jm_kumo"),
    "ballad": ("bm_george", "bm_lewis", "am_adam", "jm_kumo"),
    "coral": ("af_heart", "af_bella", "jf_alpha"),
    "echo": ("am_echo", "am_adam", "jm_kumo"),
    "fable": ("bm_fable", "bm_george", "bf_emma", "jm_kumo"),
    "nova": ("af_nova", "af_sky", "af_bella", "jf_nezumi"),
    "onyx": ("am_onyx", "am_adam", "jm_kumo"),
    "sage": ("af_sarah", "af_heart", "jf_gongitsune"),
    "shimmer": ("af_nicole", "af_sky", "af_bella", "jf_tebukuro"),
    "verse": ("am_liam", "am_puck", "am_adam", "jm_kumo"),
    "marin": ("af_aoede", "af_kore", "af_heart", "jf_alpha"),
    "cedar": ("am_eric", "am_fenrir", "am_adam", "jm_kumo"),
}

# Kokoro-82M v1.0's voices: the catalogue when no voices directory can be found (a gateway
# deployed without the weights); Triton still rejects a voice it does not have.
KOKORO_V1_VOICES: tuple[str, ...] = (
    "af_alloy",
    "af_aoede",
    "af_bella",
    "af_heart",
    "af_jessica",
    "af_kore",
    "af_nicole",
    "af_nova",
    "af_river",
    "af_sarah",
    "af_sky",
    "am_adam",
    "am_echo",
    "am_eric",
    "am_fenrir",
    "am_liam",
    "am_michael",
    "am_onyx",
    "am_puck",
    "am_santa",
    "bf_alice",
    "bf_emma",
    "bf_isabella",
    "bf_lily",
    "bm_daniel",
    "bm_fable",
    "bm_george",
    "bm_lewis",
    "ef_dora",
    "em_alex",
    "em_santa",
    "ff_siwis",
    "hf_alpha",
    "hf_beta",
    "hm_omega",
    "hm_psi",
    "if_sara",
    "im_nicola",
    "jf_alpha",
    "jf_gongitsune",
    "jf_nezumi",
    "jf_tebukuro",
    "jm_kumo",
    "pf_dora",
    "pm_alex",
    "pm_santa",
    "zf_xiaobei",
    "zf_xiaoni",
    "zf_xiaoxiao",
    "zf_xiaoyi",
    "zm_yunjian",
    "zm_yunxi",
    "zm_yunxia",
    "zm_yunyang",
)

_VOICES_HINT = "see GET /v1/audio/voices"
_KOKORO_NAME = re.compile(rf"^([{''.join(LANGUAGES)}])([{''.join(GENDERS)}])_")


def find_voices_dir(weights_dir: Path | None) -> Path | None:
    """Where the voice files are: `<weights_dir>/voices`, else `/models/voices`, else the hub cache."""
    if weights_dir is not None:
        return Path(weights_dir) / "voices"
    models = Path(os.environ.get("PATTERN_TTS_MODELS_MOUNT", "/models")) / "voices"
    if models.is_dir():
        return models
    try:
        from huggingface_hub import snapshot_download

        snap = snapshot_download("hexgrad/Kokoro-82M", local_files_only=True, allow_patterns=["voices/*.pt"])
        if (Path(snap) / "voices").is_dir():
            return Path(snap) / "voices"
    except Exception:  # not cached / hub library missing: no local voices
        pass
    return None


def phoneme_symbols(voices_dir: Path | None) -> frozenset[str]:
    """Kokoro's phoneme vocabulary: the `config.json` beside the voices, else Kokoro v1.0's."""
    config = voices_dir.parent / CONFIG_NAME if voices_dir is not None else None
    if config is not None and config.is_file():
        try:
            return frozenset(load_vocab(config))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read the phoneme vocabulary of %s (%s); using Kokoro v1.0's", config, exc)
    return frozenset(kokoro_vocab())


def voice_info(name: str, alias_of: str | None = None, target: str | None = None) -> VoiceInfo:
    """Language and gender from a Kokoro name's prefix (`af_heart`: American English, female)."""
    m = _KOKORO_NAME.match(target or name)
    lang = m.group(1) if m else None
    gender = GENDERS[m.group(2)] if m else None
    return VoiceInfo(
        id=name,
        name=name,
        language=LANGUAGES.get(lang) if lang else None,
        lang_code=lang,
        gender=gender,  # type: ignore[arg-type]
        alias_of=alias_of,
    )


@dataclass(frozen=True)
class ResolvedVoice:
    """A voice request resolved to Kokoro voices with weights."""

    parts: tuple[tuple[str, float], ...]

    @property
    def spec(self) -> str:
        """The canonical spec for Triton: `af_heart`, `a+b` (equal weights) or `a(2)+b`."""
        if len({w for _, w in self.parts}) == 1:
            return format_voice_spec([(n, 1.0) for n, _ in self.parts])
        return format_voice_spec(list(self.parts))

    @property
    def lang_code(self) -> str:
        """Kokoro language code of the (first) voice, `a` when the name does not tell."""
        m = _KOKORO_NAME.match(self.parts[0][0])
        return m.group(1) if m else "a"


class VoiceCatalogue:
    """Voice files of one directory (rescanned when it changes) plus the aliases."""

    def __init__(self, voices_dir: Path | None, fallback: Iterable[str] = KOKORO_V1_VOICES) -> None:
        self.voices_dir = voices_dir
        self._fallback = tuple(sorted(fallback))
        self._stamp: float | None = None
        self._voices: tuple[str, ...] = ()
        if voices_dir is None:
            log.warning("no voices directory found; listing Kokoro v1.0's voices")

    def voices(self) -> tuple[str, ...]:
        """Sorted Kokoro voice names available."""
        if self.voices_dir is None:
            return self._fallback
        try:
            stamp = self.voices_dir.stat().st_mtime
        except OSError:
            return ()
        if stamp != self._stamp:
            self._voices = tuple(sorted(p.stem.lower() for p in self.voices_dir.glob("*.pt")))
            self._stamp = stamp
        return self._voices

    def aliases(self) -> dict[str, str]:
        """Alias -> the Kokoro voice spec it stands for, for aliases whose voices are present."""
        have = set(self.voices())
        out: dict[str, str] = {}
        for alias, candidates in ALIASES.items():
            if alias in have:  # a real voice file of that name wins
                continue
            for cand in candidates:
                if all(part in have for part in cand.split("+")):
                    out[alias] = cand
                    break
        return out

    def list(self) -> list[VoiceInfo]:
        """Every voice, then every alias, for `GET /v1/audio/voices`."""
        infos = [voice_info(v) for v in self.voices()]
        for alias, target in self.aliases().items():
            infos.append(voice_info(alias, alias_of=target, target=target.split("+")[0]))
        return infos

    def resolve(self, spec: str) -> ResolvedVoice:
        """Parse a voice, alias or blend; raise a 400 (`param: voice`) naming what is wrong."""
        try:
            parts = parse_voice_spec(spec.lower())
        except VoiceSpecError as exc:
            raise BadRequest(
                f"Invalid voice {spec.strip()!r}: {exc}. Use a voice name, or a blend like "
                f"af_bella(2)+af_sky(1) ({_VOICES_HINT}).",
                param="voice",
                code="invalid_voice",
            ) from None
        have = set(self.voices())
        aliases = self.aliases()
        weights: dict[str, float] = {}
        for name, weight in parts:
            if name in have:
                targets = [name]
            elif name in aliases:
                targets = aliases[name].split("+")
            else:
                where = f" in blend {spec.strip()!r}" if len(parts) > 1 else ""
                raise BadRequest(
                    f"Unknown voice {name!r}{where}; {_VOICES_HINT} for the available voices.",
                    param="voice",
                    code="voice_not_found",
                )
            for target in targets:
                weights[target] = weights.get(target, 0.0) + weight / len(targets)
        return ResolvedVoice(tuple(weights.items()))
