"""A report folder's own files: an earlier run's copies go before a new run writes, so no stale
label, curve or plot is left beside the new ones (and nothing else in the folder is touched)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path


def clear_previous(out: Path, names: Iterable[str]) -> None:
    for name in names:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
