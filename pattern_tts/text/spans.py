"""Map character spans of a rewritten string back to the string it was rewritten from."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    """Replace ``source[start:end]`` by ``text``."""

    start: int
    end: int
    text: str


class OffsetMap:
    """A rewritten string plus the map from its character spans to spans of the source.

    Text outside the edits maps one to one; any span touching an edit's replacement maps to the
    whole source span of that edit.

    >>> m = OffsetMap.apply("Pay $5 now", [Edit(4, 6, "five dollars")])
    >>> m.text
    'Pay five dollars now'
    >>> m.source_span(4, 8), m.source_span(17, 20)
    ((4, 6), (7, 10))
    """

    def __init__(self, text: str, segments: list[tuple[int, int, int, int, bool]]) -> None:
        self.text = text
        # (target_start, target_end, source_start, source_end, linear), sorted, covering ``text``.
        self._segments = segments
        self._starts = [s[0] for s in segments]

    @classmethod
    def apply(cls, source: str, edits: Iterable[Edit]) -> OffsetMap:
        """Apply non-overlapping ``edits`` to ``source``."""
        parts: list[str] = []
        segments: list[tuple[int, int, int, int, bool]] = []
        pos = 0
        out = 0

        def add(piece: str, s0: int, s1: int, linear: bool) -> None:
            nonlocal out
            if piece:
                parts.append(piece)
                segments.append((out, out + len(piece), s0, s1, linear))
                out += len(piece)

        for edit in sorted(edits, key=lambda e: e.start):
            if edit.start < pos:
                raise ValueError(f"overlapping edit at {edit.start}")
            add(source[pos : edit.start], pos, edit.start, True)
            add(edit.text, edit.start, edit.end, False)
            pos = edit.end
        add(source[pos:], pos, len(source), True)
        return cls("".join(parts), segments)

    def _segment(self, index: int) -> tuple[int, int, int, int, bool]:
        return self._segments[max(0, bisect_right(self._starts, index) - 1)]

    def source_start(self, index: int) -> int:
        """Source offset where the character at ``index`` of the rewritten text comes from."""
        t0, _, s0, _, linear = self._segment(index)
        return s0 + (index - t0) if linear else s0

    def source_end(self, index: int) -> int:
        """Source offset just after the character at ``index - 1`` of the rewritten text."""
        t0, _, s0, s1, linear = self._segment(max(index - 1, 0))
        return s0 + (index - t0) if linear else s1

    def source_span(self, start: int, end: int) -> tuple[int, int]:
        """Source span of the rewritten span ``[start, end)``."""
        if not self._segments:
            return (0, 0)
        if end <= start:
            pos = self.source_start(start) if start < len(self.text) else self.source_end(start)
            return (pos, pos)
        return (self.source_start(start), self.source_end(end))
