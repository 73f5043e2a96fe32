"""The manifest of a prepared weights directory: its source, its inputs and its files' content hashes.

A second `prepare` with the same inputs finds a matching manifest whose files still hash the same,
and does nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pattern_tts.weights.architecture import MANIFEST_NAME

FORMAT = 1


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def write_manifest(root: Path, source: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Hash every file under ``root`` and write the manifest next to them."""
    manifest = {
        "format": FORMAT,
        "source": source,
        "inputs": inputs,
        "files": {
            p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
            for p in _files(root)
        },
    }
    (root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of ``root``, or None when there is none or it is unreadable."""
    try:
        data = json.loads((Path(root) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def manifest_matches(root: Path, source: str, inputs: dict[str, Any] | None = None) -> bool:
    """Whether ``root`` was prepared from ``source`` (and ``inputs``, when given) and is intact."""
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None or manifest.get("source") != source:
        return False
    if inputs is not None and manifest.get("inputs") != json.loads(json.dumps(inputs)):
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    if {p.relative_to(root).as_posix() for p in _files(root)} != set(files):
        return False
    for rel, meta in files.items():
        path = root / rel
        if path.stat().st_size != meta.get("size") or sha256_file(path) != meta.get("sha256"):
            return False
    return True
