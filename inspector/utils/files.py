"""Every file xero-inspector writes is written here, the same way.

A temporary file is made beside the target (O_EXCL: never through a link someone left in its
place), given its mode, filled, and renamed over the target: a symlink at the target is
replaced, not followed; a failed write leaves the old file as it was and no half file; and
the mode does not depend on the umask. Anything that can hold request data (exports, reports,
logs, tokens) is owner-only; a script is owner-only and executable.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

PRIVATE = 0o600  # request data, secrets, logs
SCRIPT = 0o700  # a curl export: run by its owner, may carry kept secrets
PUBLIC = 0o644  # certificates others' clients must read (no request data, no keys)


@contextmanager
def replacing(path: str | Path, mode: int = PRIVATE) -> Iterator[BinaryIO]:
    """A binary file to fill; it becomes ``path`` when the block ends without an error."""
    fd, part = _beside(Path(path), mode)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(part, path)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise


def write(path: str | Path, data: str | bytes, mode: int = PRIVATE) -> None:
    """``data`` (text as UTF-8) as the whole of ``path``."""
    with replacing(path, mode) as out:
        out.write(data.encode("utf-8") if isinstance(data, str) else data)


def fresh(path: str | Path, mode: int = PRIVATE) -> BinaryIO:
    """A new, empty file at ``path`` open for writing (a log another process streams into):
    made and renamed into place like any other, then handed over open."""
    fd, part = _beside(Path(path), mode)
    try:
        os.replace(part, path)
    except BaseException:
        os.close(fd)
        Path(part).unlink(missing_ok=True)
        raise
    return os.fdopen(fd, "wb")


def _beside(target: Path, mode: int) -> tuple[int, str]:
    """A new file next to ``target`` (mkstemp: O_EXCL, so never through a planted link), with ``mode``."""
    fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        Path(part).unlink(missing_ok=True)
        raise
    return fd, part
