"""argparse wiring of `pattern-tts weights prepare|check`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pattern_tts.weights.errors import WeightsError
from pattern_tts.weights.prepare import prepare_weights
from pattern_tts.weights.validate import validate_weights_dir, voice_names

_SOURCE_HELP = (
    "auto (default): PATTERN_TTS_WEIGHTS_DIR, /models, an already prepared --dest, the hub, then the "
    "packaged model; dir:PATH: validate an existing directory; hub: hexgrad/Kokoro-82M with all voices; "
    "packaged: convert the int8 ONNX model from the `weights` extra (Japanese voices only)"
)


def add_weights_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `weights prepare [--source ...] [--dest DIR]` and `weights check DIR` to a CLI."""
    parser = subparsers.add_parser("weights", help="prepare or check Kokoro weights")
    sub = parser.add_subparsers(dest="weights_command", required=True)
    prepare = sub.add_parser(
        "prepare", help="make a weights directory (config.json, kokoro-v1_0.pth, voices/)"
    )
    prepare.add_argument("--source", default="auto", metavar="auto|dir:PATH|hub|packaged", help=_SOURCE_HELP)
    prepare.add_argument(
        "--dest", type=Path, default=None, help="output directory (default: <cache_dir>/weights)"
    )
    prepare.add_argument("--no-progress", action="store_true", help="no progress bars")
    check = sub.add_parser("check", help="validate a weights directory and list its voices")
    check.add_argument("path", type=Path)
    parser.set_defaults(func=run_weights_command)
    return parser


def run_weights_command(args: argparse.Namespace) -> int:
    """Run a parsed `weights` command; prints the weights directory, or one error line. Exit status."""
    try:
        if args.weights_command == "check":
            problems = validate_weights_dir(args.path)
            if problems:
                raise WeightsError(f"{args.path}: " + "; ".join(problems))
            print(f"{args.path}: usable; voices: {', '.join(voice_names(args.path))}")
            return 0
        path = prepare_weights(args.source, args.dest, progress=not args.no_progress)
    except WeightsError as exc:
        print(f"pattern-tts weights: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m pattern_tts.weights prepare ...`."""
    parser = argparse.ArgumentParser(prog="python -m pattern_tts.weights")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_weights_parser(subparsers)
    args = parser.parse_args(["weights", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
