"""``pattern-tts``: serve (Triton + gateway), triton, gateway, weights.

Every option is also an environment variable (``PATTERN_TTS_<NAME>``, see settings.py); an option
given on the command line wins. Failures end in one line on stderr and a non-zero exit, no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pattern_tts.logs import configure_logging, log_config
from pattern_tts.settings import Settings, SettingsError, load_settings
from pattern_tts.weights import WeightsError, add_weights_parser, default_weights_dest, prepare_weights

log = logging.getLogger("pattern_tts")


def _add_gateway_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="gateway address (PATTERN_TTS_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="gateway port (PATTERN_TTS_PORT, default 8205)")


def _add_triton_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--triton-host", help="Triton bind address (default 127.0.0.1)")
    parser.add_argument("--triton-http-port", type=int, help="Triton HTTP port (default 8000)")
    parser.add_argument("--triton-grpc-port", type=int, help="Triton gRPC port (default 8001)")
    parser.add_argument("--triton-metrics-port", type=int, help="Triton metrics port (default 8002)")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="KIND_CPU or KIND_GPU (default cpu)")
    parser.add_argument("--instance-count", type=int, help="kokoro model instances (default 1)")


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", dest="weights_dir", type=Path, help="Kokoro weights directory (PATTERN_TTS_WEIGHTS_DIR)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pattern-tts", description="OpenAI-compatible text-to-speech: Kokoro-82M on Triton."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run Triton and the gateway together")
    _add_weights_option(serve)
    _add_gateway_options(serve)
    _add_triton_options(serve)
    serve.set_defaults(func=_serve)

    triton = sub.add_parser("triton", help="run Triton alone (the kokoro and g2p models)")
    _add_weights_option(triton)
    _add_triton_options(triton)
    triton.set_defaults(func=_triton)

    gateway = sub.add_parser("gateway", help="run the OpenAI-compatible gateway alone")
    _add_weights_option(gateway)
    _add_gateway_options(gateway)
    gateway.add_argument("--triton-url", help="Triton HTTP endpoint host:port")
    gateway.set_defaults(func=_gateway)

    add_weights_parser(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    fields = Settings.model_fields
    overrides: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k in fields and v is not None
    }
    return load_settings(**overrides)


def _weights_dir(settings: Settings) -> Path:
    if settings.weights_dir is not None:
        return prepare_weights(f"dir:{settings.weights_dir}", progress=False)
    return prepare_weights("auto", default_weights_dest(settings))


def _serve(args: argparse.Namespace) -> int:
    from pattern_tts.supervisor import serve

    settings = _settings(args)
    if settings.port in (settings.triton_http_port, settings.triton_grpc_port, settings.triton_metrics_port):
        raise SettingsError(f"port (PATTERN_TTS_PORT): the gateway's port {settings.port} is also one of Triton's")
    return serve(settings, _weights_dir(settings))


def _triton(args: argparse.Namespace) -> int:
    """Run tritonserver alone (the Triton container of a pod), its output logged as events."""
    from pattern_tts.supervisor import run_triton

    settings = _settings(args)
    return run_triton(settings, _weights_dir(settings))


def _gateway(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args)
    os.environ.update(settings.to_env())  # the app factory reads its settings from the environment
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=log_config(),
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(os.environ.get("PATTERN_TTS_LOG_LEVEL", "info"))
    try:
        return int(args.func(args))
    except WeightsError as exc:
        print(f"pattern-tts: no usable Kokoro weights: {exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"pattern-tts: invalid settings: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the one line a user sees instead of a traceback
        from pattern_tts.allocator import AllocatorNotFound
        from pattern_tts.supervisor import StartupError
        from pattern_tts.triton_server import TritonNotFound

        if isinstance(exc, StartupError | TritonNotFound | AllocatorNotFound):
            print(f"pattern-tts: {exc}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
