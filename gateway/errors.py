"""All error mapping of the gateway, in OpenAI's shape `{"error": {"message", "type", "param", "code"}}`.

- request validation (bad JSON, bad field values) -> 400 with `param` (never FastAPI's 422 shape)
- `APIError` raised by the service (unknown voice, empty / too long input, ...) -> its status
- Triton unreachable or a model not loaded -> 503; a Triton per-request error -> 400 with its message
- 404 / 405 -> OpenAI shape; anything else -> 500 without a traceback, logged on one line
- a client gone before its response started -> 499 (nginx's code), for the log line and metrics
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from tritonclient.utils import InferenceServerException

log = logging.getLogger("gateway")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    500: "server_error",
    502: "server_error",
    503: "service_unavailable",
    504: "server_error",
}


class APIError(Exception):
    """An error answered in OpenAI's error shape."""

    def __init__(
        self,
        message: str,
        status_code: int = 400,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status_code, "server_error" if status_code >= 500 else "error")

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status_code)


class BadRequest(APIError):
    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, 400, param=param, code=code)


class ServiceUnavailable(APIError):
    def __init__(self, message: str, *, code: str | None = "service_unavailable") -> None:
        super().__init__(message, 503, code=code)


class ClientClosedRequest(APIError):
    """The client closed its connection before the response started: nginx's 499, for the log line and
    the metrics (the client is gone, nothing reaches it)."""

    def __init__(self) -> None:
        super().__init__(
            "The client closed the connection before the response started.", 499, code="client_closed_request"
        )


def from_triton(exc: BaseException, model: str) -> APIError:
    """Map an exception of a Triton call to an `APIError` (400, 503 or 500)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, InferenceServerException):
        # gRPC statuses read "StatusCode.INVALID_ARGUMENT"; HTTP ones "400".
        status = str(exc.status() or "").removeprefix("StatusCode.")
        msg = str(exc.message() or exc)
        low = msg.lower()
        if status == "DEADLINE_EXCEEDED":
            return APIError(f"Triton model '{model}' timed out", 504, code="timeout")
        if (
            "unknown model" in low
            or "not ready" in low
            or "unavailable" in low
            or status in {"502", "503", "UNAVAILABLE", "NOT_FOUND"}
        ):
            return ServiceUnavailable(f"Triton model '{model}' is not available: {msg}")
        if status.startswith("4") or status in {"INVALID_ARGUMENT", "OUT_OF_RANGE"}:
            return BadRequest(msg, code="invalid_value")
        return APIError(f"inference server error in '{model}': {msg}", 500)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return APIError(f"Triton model '{model}' timed out", 504, code="timeout")
    if isinstance(exc, aiohttp.ClientError | ConnectionError | OSError):
        return ServiceUnavailable(f"Triton inference server unreachable: {exc.__class__.__name__}")
    return APIError("internal server error", 500)


_BRANCHES = frozenset({"str", "int", "float", "bool", "none", "list", "dict", "literal"})


def _param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    # Drop pydantic's union / validator branch labels, keep field names and indices.
    parts = [p for p in parts if p not in _BRANCHES and "[" not in p and not p.startswith("function-")]
    return ".".join(parts) or None


def validation_error(exc: RequestValidationError) -> APIError:
    """The first validation error as one 400 naming its parameter."""
    errors = exc.errors()
    if not errors:
        return BadRequest("invalid request")
    err = errors[0]
    param = _param(err.get("loc", ()))
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", "invalid value"))
    if kind == "json_invalid":
        return BadRequest("The request body is not valid JSON.", code="invalid_json")
    if kind == "missing":
        if param is None:
            return BadRequest("The request body is missing or not a JSON object.")
        return BadRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required")
    if param is None:
        return BadRequest(f"Invalid request body: {msg}.", code="invalid_type")
    msg = msg.removeprefix("Value error, ")
    more = f" ({len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    return BadRequest(f"Invalid value for '{param}': {msg}{more}", param=param, code="invalid_value")


def _note(request: Request, err: APIError) -> JSONResponse:
    """Put the error on the request's log line (see `gateway.middleware`) and answer it."""
    state = request.scope.setdefault("state", {})
    state.setdefault("log_info", {})["error"] = err.message
    return err.response()


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return _note(request, exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _note(request, validation_error(exc))


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        message = f"Unknown route: {request.method} {request.url.path}"
    elif status == 405:
        message = f"Method {request.method} not allowed for {request.url.path}"
    else:
        message = str(exc.detail)
    err = APIError(message, status, code="not_found" if status == 404 else None)
    return JSONResponse(err.body(), status_code=status, headers=getattr(exc, "headers", None))


def install(app: FastAPI) -> None:
    """Register the exception handlers (unexpected exceptions are handled by the middleware)."""
    app.add_exception_handler(APIError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
