"""Voice specs: a voice name, or a blend such as ``af_bella+af_sky`` or ``af_bella(2)+af_sky(1)``.

Shared by the gateway (validation, listing) and the kokoro model (loading and mixing).
"""

from __future__ import annotations

import math
import re

_COMPONENT = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*(?:\(\s*([^()]*)\s*\))?\s*$")


class VoiceSpecError(ValueError):
    """The voice spec is malformed; the message names the bad part."""


def parse_voice_spec(spec: str) -> list[tuple[str, float]]:
    """``"af_bella(2)+af_sky"`` -> ``[("af_bella", 2.0), ("af_sky", 1.0)]`` (weights not normalised)."""
    if not spec or not spec.strip():
        raise VoiceSpecError("voice is empty")
    parts: list[tuple[str, float]] = []
    for raw in spec.split("+"):
        match = _COMPONENT.match(raw)
        if not match:
            raise VoiceSpecError(f"malformed voice component {raw.strip()!r}")
        name, weight_text = match.group(1), match.group(2)
        try:
            weight = 1.0 if weight_text is None else float(weight_text)
        except ValueError:
            raise VoiceSpecError(f"weight of {name!r} is not a number: {weight_text!r}") from None
        if not math.isfinite(weight) or weight <= 0:
            raise VoiceSpecError(f"weight of {name!r} must be a positive finite number")
        parts.append((name, weight))
    return parts


def format_voice_spec(parts: list[tuple[str, float]]) -> str:
    """The canonical spec string for ``parts`` (weights written only when they differ from 1)."""
    return "+".join(name if weight == 1.0 else f"{name}({weight:g})" for name, weight in parts)
