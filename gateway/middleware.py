"""One structured log line per request; unexpected exceptions become one line and an OpenAI 500, a
request cut by the end of a graceful shutdown an OpenAI 503. And the limit on speech requests served
at once."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import APIError, ServiceUnavailable
from gateway.metrics import GatewayMetrics

log = logging.getLogger("gateway.access")
errlog = logging.getLogger("gateway")

_QUIET = frozenset({"/health", "/ready", "/metrics"})


def log_info(scope: Scope) -> dict[str, Any]:
    """The request's fields for its log line (chars, chunks, format, error, ...), kept in its scope."""
    info: dict[str, Any] = scope.setdefault("state", {}).setdefault("log_info", {})
    return info


async def request_info(request: Request) -> dict[str, Any]:
    """Per-request fields the handlers add to the log line (:func:`log_info`).

    A coroutine, as is `get_service`: FastAPI runs a plain function dependency in its thread pool,
    a thread hop per request for a dictionary lookup."""
    return log_info(request.scope)


class RequestLogMiddleware:
    """Pure ASGI middleware (streaming-safe): logs when the response body is complete."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: GatewayMetrics | None = None,
        in_flight: set[asyncio.Task[Any]] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.in_flight = in_flight  # the tasks of the requests being served, for the app's shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        if self.in_flight is not None and task is not None:
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        start = time.perf_counter()
        info = log_info(scope)
        status = 0
        started = False
        complete = False
        first_byte_s: float | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started, complete, first_byte_s
            if message["type"] == "http.response.start":
                status = int(message["status"])
                started = True
            elif message["type"] == "http.response.body":
                if first_byte_s is None and message.get("body"):
                    first_byte_s = time.perf_counter() - start
                if not message.get("more_body", False):
                    complete = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # one line, no traceback, an OpenAI-shaped 500 if still possible
            if isinstance(exc, APIError):  # e.g. a chunk failing after the audio started
                info["error"] = exc.message
                errlog.warning("%s %s failed mid-response: %s", scope.get("method"), scope.get("path"), exc)
            else:
                info["error"] = f"{exc.__class__.__name__}: {exc}"
                errlog.error(
                    "unhandled error in %s %s: %s",
                    scope.get("method"),
                    scope.get("path"),
                    info["error"],
                    exc_info=errlog.isEnabledFor(logging.DEBUG),
                )
            if not started:
                err = (
                    exc
                    if isinstance(exc, APIError)
                    else APIError("The server had an error while processing your request.", 500)
                )
                await _send_error(send, err)
                status, started, complete = err.status_code, True, True
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when its graceful shutdown times out
            # (shutdown_timeout_s). A response already started ends without its last chunk, so the
            # client sees it incomplete; one not yet started gets a 503 it can retry elsewhere.
            info["error"] = "cut by the end of the server's graceful shutdown"
            if not started:
                await _send_error(send, SHUT_DOWN)
                status, started, complete = SHUT_DOWN.status_code, True, True
            raise
        finally:
            path = scope.get("path", "")
            elapsed = time.perf_counter() - start
            if self.metrics is not None:
                self.metrics.observe(path, status, elapsed, first_byte_s, info)
            fields: dict[str, Any] = {
                "method": scope.get("method"),
                "path": path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
            }
            if started and not complete:
                fields["incomplete"] = True
            fields.update(info)
            level = logging.DEBUG if path in _QUIET and status == 200 else logging.INFO
            log.log(level, " ".join(f"{k}={_fmt(v)}" for k, v in fields.items()))


@dataclass
class RequestSlots:
    """How many speech requests the gateway serves at once (`limit`, 0: no limit) and how many it is
    serving (`taken`)."""

    limit: int
    taken: int = 0


class ConcurrencyLimitMiddleware:
    """Pure ASGI middleware: at most `slots.limit` requests to `paths` at once, each counted until its
    response ends (a stream: its last chunk). One more is answered with an OpenAI-shaped 503 and
    `Retry-After` before its body is read."""

    def __init__(self, app: ASGIApp, slots: RequestSlots, paths: frozenset[str]) -> None:
        self.app = app
        self.slots = slots
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return
        slots = self.slots
        if slots.limit and slots.taken >= slots.limit:
            log_info(scope)["error"] = f"over max_concurrent_requests ({slots.limit})"
            await _send_error(send, OVERLOADED, headers={"retry-after": str(OVERLOADED_RETRY_AFTER_S)})
            return
        slots.taken += 1
        try:
            await self.app(scope, receive, send)
        finally:
            slots.taken -= 1


OVERLOADED = ServiceUnavailable(
    "The server is busy: it is serving as many speech requests as it is set to "
    "(PATTERN_TTS_MAX_CONCURRENT_REQUESTS); retry after a moment.",
    code="server_overloaded",
)
OVERLOADED_RETRY_AFTER_S = 1

SHUT_DOWN = ServiceUnavailable(
    "The server shut down before this request was finished (its shutdown timeout ran out); retry it.",
    code="shutting_down",
)


async def _send_error(send: Send, err: APIError, headers: dict[str, str] | None = None) -> None:
    """``err`` as a whole OpenAI-shaped JSON response, with extra ``headers``."""
    body = json.dumps(err.body()).encode()
    fields = {"content-type": "application/json", "content-length": str(len(body)), **(headers or {})}
    raw = [(name.encode(), value.encode()) for name, value in fields.items()]
    await send({"type": "http.response.start", "status": err.status_code, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _fmt(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or '"' in text or not text) else text
