"""Structured logging: one JSON object per line, one line per event, no tracebacks."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

# Record attributes that are not extra fields; uvicorn's `color_message` repeats `msg` with ANSI colours.
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra}``; an exception is folded into one field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage().strip(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            entry["error"] = f"{type(exc).__name__}: {exc}"
        return json.dumps(entry, default=str, ensure_ascii=False)


class DropShutdownCancellations(logging.Filter):
    """Drop uvicorn's ``Exception in ASGI application`` for a request it cancelled itself at the end of
    its graceful shutdown: it has just logged ``Cancel N running task(s), timeout graceful shutdown
    exceeded`` for those, and the gateway logs each request (``incomplete=True``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        cancelled = record.exc_info is not None and isinstance(record.exc_info[1], asyncio.CancelledError)
        return not (cancelled and record.getMessage().startswith("Exception in ASGI application"))


def configure_logging(level: str = "info") -> None:
    """Send every logger (ours, uvicorn's) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a Python warning is one event too, not two raw lines
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # The gateway logs one line per request itself.
    logging.getLogger("uvicorn.access").disabled = True


def log_config() -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn that uses :class:`JsonFormatter`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "pattern_tts.logs.JsonFormatter"}},
        "filters": {"shutdown_cancellations": {"()": "pattern_tts.logs.DropShutdownCancellations"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True, "filters": ["shutdown_cancellations"]},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
        },
    }
