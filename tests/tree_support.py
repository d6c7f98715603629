"""Deep folder trees as agent code makes them (chdir down, one mkdir at a time), for the tests of
removal and walking that must not recurse."""

from __future__ import annotations

import os
from pathlib import Path


def nest(root: Path, depth: int, name: str = "nest", bottom: str = "deep.bin", data: bytes = b"x" * 65536) -> None:
    """Folders ``depth`` deep below ``root`` (deeper than PATH_MAX allows by name), built with
    chdir as agent code would, and a file ``bottom`` holding ``data`` at the bottom."""
    here = os.open(".", os.O_RDONLY)
    try:
        os.chdir(root)
        for _ in range(depth):
            os.mkdir(name)
            os.chdir(name)
        Path(bottom).write_bytes(data)
    finally:
        os.fchdir(here)
        os.close(here)
