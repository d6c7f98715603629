"""File helpers shared by every sandbox: copying a task's public files and confined paths."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from sandmle.core.errors import SandmleError
from sandmle.core.task import Task


class SandboxPathError(SandmleError, ValueError):
    """A path that leaves the session directory."""


def copy_public_files(task: Task, dest: Path, owner: int | None = None) -> int:
    """Copy ``task.public_files()`` (never hidden files, never ``private/``) into ``dest``;
    ``owner``: the uid agent code runs as, which gets the copies (and their folders)."""
    count = 0
    for src in task.public_files():
        rel = src.relative_to(task.public_dir)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)  # a copy, not a link: the agent may overwrite it freely
        give_to(dest, target, owner)
        count += 1
    return count


def give_to(root: Path, target: Path, owner: int | None) -> None:
    """Make ``target`` and its folders below ``root`` belong to ``owner`` (no-op for None):
    files the host puts in a session must be the agent's to change, as if it had made them."""
    if owner is None:
        return
    root = root.resolve()
    path = target.resolve()
    while path != root and root in path.parents:
        os.chown(path, owner, owner, follow_symlinks=False)
        path = path.parent


def confined(root: Path, path: str) -> Path:
    """``root/path`` resolved, refusing anything (``..``, absolute paths, symlinks) outside root."""
    root = root.resolve()
    candidate = (root / path).resolve()
    if candidate != root and root not in candidate.parents:
        raise SandboxPathError(f"path {path!r} leaves the session directory")
    return candidate


def read_confined(root: Path, path: str) -> bytes:
    target = confined(root, path)
    if target.exists() and not target.is_file():
        # A FIFO or device made by agent code would block or stream forever on the host.
        raise SandboxPathError(f"path {path!r} is not a regular file")
    return target.read_bytes()


def write_confined(root: Path, path: str, data: bytes | str, owner: int | None = None) -> None:
    target = confined(root, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    give_to(root, target, owner)


def list_confined(root: Path, path: str = ".") -> list[str]:
    base = confined(root, path)
    rootr = root.resolve()
    out = []
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            full = Path(dirpath) / name
            if full.is_symlink():
                continue  # never follow agent-made links out of the session
            out.append(str(full.relative_to(rootr)))
    return sorted(out)


class HostDirFiles:
    """The file API of a :class:`~sandmle.core.interfaces.SandboxSession` whose working directory
    is a host folder (``_dir``), confined to it; mixed into such sessions. ``file_owner`` is the
    uid agent code runs as (None: the host's own), which gets the files the host writes."""

    _dir: Path
    file_owner: int | None = None

    async def read_file(self, path: str) -> bytes:
        return await asyncio.to_thread(read_confined, self._dir, path)

    async def write_file(self, path: str, data: bytes | str) -> None:
        await asyncio.to_thread(write_confined, self._dir, path, data, self.file_owner)

    async def list_files(self, path: str = ".") -> list[str]:
        return await asyncio.to_thread(list_confined, self._dir, path)


def safe_submission(workdir: Path, name: str = "submission.csv") -> Path | None:
    """The submission file to grade, or None when it is missing or not a regular file inside
    ``workdir``. Graders must use this: a symlink named ``submission.csv`` that points at a
    task's hidden answers would otherwise be graded as a perfect submission."""
    path = Path(workdir) / name
    try:
        if path.is_symlink() or not path.is_file():
            return None
        confined(Path(workdir), name)
    except (OSError, SandboxPathError):
        return None
    return path
