"""Build a weights directory in a temporary sibling and move it into place, never half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pattern_tts.weights.errors import WeightsError


@contextlib.contextmanager
def staging_dir(dest: Path) -> Iterator[Path]:
    """A fresh directory beside ``dest``; removed if the block fails."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the weights from a server running as another user
    except OSError as exc:
        raise WeightsError(f"cannot write under {dest.parent}: {exc.strerror or exc}") from exc
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def install_dir(staged: Path, dest: Path) -> Path:
    """Replace ``dest`` by the finished ``staged`` directory (two renames on one filesystem)."""
    dest = Path(dest)
    old = None
    try:
        if dest.exists() or dest.is_symlink():
            if not dest.is_dir() or dest.is_symlink():
                raise WeightsError(f"{dest} exists and is not a directory; choose another --dest")
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.rmdir(old)
            os.replace(dest, old)
        os.replace(staged, dest)
    except OSError as exc:
        if old is not None and not dest.exists():
            os.replace(old, dest)
        shutil.rmtree(staged, ignore_errors=True)
        raise WeightsError(f"cannot move the prepared weights into {dest}: {exc.strerror or exc}") from exc
    except WeightsError:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest
