"""Triton's output as log events: one event per line of our JSON log, whatever Triton printed.

tritonserver writes glog lines (``I1126 16:20:04.250543 26425 model_lifecycle.cc:472] "loading:
g2p:1"``), multi-line tables at start-up (repository agents, backends, models, options), and a
few bare lines (``Signal (15) received.``). A command line it refuses gets its usage text (some 400
lines) and, after it, the reason as a bare line. Its Python backend stubs share its stderr, so
Python's warnings (two lines each) and a crashing stub's traceback (many lines) come through it too.

:class:`TritonLogParser` turns that stream into :class:`LogEvent`: a glog line keeps its level and
source (``src``); a table becomes one event whose ``table`` holds its rows; a warning one event
(its echoed source line dropped); the usage text one debug event, the reason after it an error; a
traceback one event that reads ``Traceback (most recent call last): ... <the exception>``, with the
frames in ``frames``. Triton's error that it found no CUDA driver is expected where it runs
without a GPU and is logged there at info.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

_GLOG = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ ([^\]\s]+)\] ?(.*)$")
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
_PY_WARNING = re.compile(r"^(\S.*?:\d+): (\w*Warning): (.*)$")
_USAGE = "Usage: tritonserver"
# getopt's complaint about an option, printed before the usage text: "<path>/tritonserver: unrecognized option ..."
_GETOPT_ERROR = re.compile(r"^\S*tritonserver: ")
# Errors Triton logs at start-up wherever there is no CUDA driver; harmless for KIND_CPU.
EXPECTED_WITHOUT_GPU = ("CudaDriverHelper has not been initialized",)


@dataclass
class LogEvent:
    """One event: a ``logging`` level, a one-line message and extra fields."""

    level: int
    msg: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Table:
    level: int
    src: str
    rows: list[list[str]] = field(default_factory=list)


class TritonLogParser:
    """Feed Triton's output line by line; get the events each line completes.

    A table or a traceback spans lines: its event comes with the line that ends it (the blank line
    after a table, the exception line of a traceback), or from :meth:`close`.
    """

    def __init__(self, without_gpu: bool = True) -> None:
        self.without_gpu = without_gpu
        self._table: _Table | None = None
        self._traceback: list[str] | None = None
        self._after_warning = False  # Python echoes the warned line's source, indented, next
        self._usage_lines: int | None = None  # lines of the usage text being skipped

    def feed(self, line: str) -> list[LogEvent]:
        line = line.rstrip("\r\n")
        if self._table is not None:
            if line.startswith("|"):
                self._table.rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
                return []
            if line.startswith("+"):
                return []
            events = self._end_table()
            return events if not line.strip() else events + self.feed(line)
        if self._traceback is not None:  # frames are indented; the exception's line ends it
            self._traceback.append(line.strip())
            return [] if line.startswith((" ", "\t")) or not line.strip() else self._end_traceback()
        if self._usage_lines is not None:
            if _in_usage(line):
                self._usage_lines += 1
                return []
            return self._end_usage() + [LogEvent(logging.ERROR, line.strip())]  # the reason for it
        if self._after_warning:
            self._after_warning = False
            if line.startswith((" ", "\t")):
                return []
        return self._line(line)

    def close(self) -> list[LogEvent]:
        """The events of a table, traceback or usage text the output ended in."""
        if self._table is not None:
            return self._end_table()
        return self._end_usage() if self._usage_lines is not None else self._end_traceback()

    def _line(self, line: str) -> list[LogEvent]:
        if not line.strip():
            return []
        glog = _GLOG.match(line)
        if glog:
            level, src, msg = _LEVELS[glog[1]], glog[2], _unquote(glog[3])
            if not msg:  # a table follows
                self._table = _Table(level, src)
                return []
            if level == logging.ERROR and self.without_gpu and msg.startswith(EXPECTED_WITHOUT_GPU):
                level = logging.INFO
            return [LogEvent(level, msg, {"src": src})]
        if line.startswith(_USAGE):
            self._usage_lines = 1
            return []
        if line.startswith("Traceback (most recent call last)"):
            self._traceback = [line.strip()]
            return []
        warning = _PY_WARNING.match(line)
        if warning:
            self._after_warning = True
            return [LogEvent(logging.WARNING, f"{warning[2]}: {warning[3]}", {"src": warning[1]})]
        failed = line.lower().startswith(("error", "fatal")) or _GETOPT_ERROR.match(line)
        level = logging.ERROR if failed else logging.INFO
        return [LogEvent(level, line.strip())]

    def _end_table(self) -> list[LogEvent]:
        table, self._table = self._table, None
        if table is None or len(table.rows) < 2:  # a header alone: an empty table
            return []
        header, *rows = table.rows
        return [
            LogEvent(
                table.level,
                " | ".join(header),
                {"src": table.src, "table": [dict(zip(header, row, strict=False)) for row in rows]},
            )
        ]

    def _end_usage(self) -> list[LogEvent]:
        lines, self._usage_lines = self._usage_lines, None
        return [LogEvent(logging.DEBUG, "tritonserver printed its usage text", {"lines": lines})]

    def _end_traceback(self) -> list[LogEvent]:
        lines, self._traceback = self._traceback, None
        if not lines:
            return []
        frames = [line for line in lines[1:-1] if line]
        return [LogEvent(logging.ERROR, f"{lines[0]} ... {lines[-1]}", {"frames": frames})]


def _in_usage(line: str) -> bool:
    """Whether ``line`` belongs to tritonserver's usage text: blank, indented, or a section title
    (``HTTP:``)."""
    return not line.strip() or line.startswith((" ", "\t")) or line.rstrip().endswith(":")


def _unquote(msg: str) -> str:
    """Triton quotes its messages (``"loading: g2p:1"``), escaping newlines: the text inside."""
    if len(msg) >= 2 and msg[0] == msg[-1] == '"':
        try:
            text = json.loads(msg)
        except json.JSONDecodeError:
            return msg[1:-1]
        return str(text)
    return msg
