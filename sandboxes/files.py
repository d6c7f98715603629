"""File helpers shared by every sandbox: copying a task's public files, and reading or writing a
session's files from the host without ever following a link agent code planted.

Agent code owns its session directory and may replace any file in it with a symbolic link (to
the task's hidden answers, say) at any moment, so the host never opens a path there by name
twice: :func:`open_regular` walks the path one component at a time with ``O_NOFOLLOW``, opens the
file once, and checks *that descriptor* (a regular file, one link); every later read goes
through it. :func:`write_regular` writes a temporary file and renames it over the name, which
replaces a planted link instead of writing through it.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import BinaryIO

from sandmle.core.errors import SandmleError
from sandmle.core.records import ExecResult
from sandmle.core.task import Task

from .tree import walk_tree

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SandboxPathError(SandmleError, ValueError):
    """A path that leaves the session directory, or names a link or a non-regular file."""


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


def _parts(path: str | os.PathLike) -> list[str]:
    """The components of a relative path; absolute paths and ``..`` are refused."""
    text = os.fspath(path)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if text.startswith("/") or ".." in parts or not parts:
        raise SandboxPathError(f"path {text!r} leaves the session directory")
    return parts


def _open_dir(root: Path, parts: list[str], create: bool = False, owner: int | None = None) -> int:
    """A descriptor of ``root/parts...``, reached without following any link (``create``: make
    missing folders, owned by ``owner``)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                make_dir(fd, name, owner)
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise SandboxPathError(f"{name!r} in the path is a link or not a folder") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(root: Path, path: str | os.PathLike) -> BinaryIO:
    """Open ``root/path`` for reading once and return a binary file over that descriptor.

    Refuses (:class:`SandboxPathError`) a path leaving ``root``, a link in any component, a
    file that is not regular (FIFO, device, folder) and a file with other hard links (one may
    point outside the session). A missing file raises ``FileNotFoundError``. Read, parse or
    copy only through the returned file: opening the path again would race agent code.
    """
    parts = _parts(path)
    dir_fd = _open_dir(Path(root), parts[:-1])
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; cleared below for regular files.
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY,
                     dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SandboxPathError(f"{os.fspath(path)!r} is a symbolic link") from None
        raise
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SandboxPathError(f"{os.fspath(path)!r} is not a regular file")
        if st.st_nlink > 1:
            raise SandboxPathError(f"{os.fspath(path)!r} has other hard links")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(root: Path, path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    """The bytes of ``root/path``, read through :func:`open_regular` (``max_bytes``: refuse
    larger files rather than read them)."""
    with open_regular(root, path) as fh:
        if max_bytes is None:
            return fh.read()
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SandboxPathError(f"{os.fspath(path)!r} is larger than {max_bytes} bytes")
    return data


def write_regular(root: Path, path: str | os.PathLike, data: bytes | str, owner: int | None = None) -> None:
    """Write ``data`` to ``root/path`` as a new regular file owned by ``owner`` (None: the
    host's own): written to a temporary name, then renamed over ``path``, so a link planted at
    ``path`` is replaced, never written through; missing folders are made without following links."""
    parts = _parts(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    dir_fd = _open_dir(Path(root), parts[:-1], create=True, owner=owner)
    tmp = f".sandmle-write-{secrets.token_hex(6)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=dir_fd)
        try:
            write_all(fd, payload, owner)
        finally:
            os.close(fd)
        try:
            os.rename(tmp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError:
            os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


def confined(root: Path, path: str) -> Path:
    """``root/path`` resolved, refusing anything (``..``, absolute paths, symlinks) outside root."""
    root = root.resolve()
    candidate = (root / path).resolve()
    if candidate != root and root not in candidate.parents:
        raise SandboxPathError(f"path {path!r} leaves the session directory")
    return candidate


def read_confined(root: Path, path: str) -> bytes:
    """A session file's bytes (see :func:`open_regular` for what is refused)."""
    return read_regular(root, path)


def write_confined(root: Path, path: str, data: bytes | str, owner: int | None = None) -> None:
    """Write a session file (see :func:`write_regular`)."""
    write_regular(root, path, data, owner)


def list_confined(root: Path, path: str = ".") -> list[str]:
    """Regular files below ``root/path``, relative to ``root``; links are never followed and
    any nesting depth is walked without recursion (see :mod:`.tree`)."""
    text = os.fspath(path)
    parts = [] if text.strip("/") in ("", ".") and not text.startswith("/") else _parts(text)
    try:
        fd = _open_dir(Path(root), parts)
    except FileNotFoundError:
        return []
    prefix = "/".join(parts) + "/" if parts else ""
    out: list[str] = []

    def add(_fd: int, rel: str, _name: str, is_file: bool | None, _st: os.stat_result) -> None:
        if is_file:
            out.append(prefix + rel)

    try:
        walk_tree(fd, on_file=add)
    finally:
        os.close(fd)
    return sorted(out)


def write_all(fd: int, data: bytes, owner: int | None = None) -> None:
    """Write every byte of ``data`` to ``fd`` (one ``os.write`` may write less) and, with an
    ``owner`` uid, give the file to it (the agent's uid, so agent code can rewrite its files)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    if owner is not None:
        os.fchown(fd, owner, owner)


def make_dir(dir_fd: int, name: str, owner: int | None = None) -> None:
    """Make the folder ``name`` in the folder open at ``dir_fd`` (one already there is kept)
    and, with an ``owner`` uid, give it to it (never through a link planted at ``name``)."""
    try:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    except FileExistsError:
        pass
    if owner is not None:
        os.chown(name, owner, owner, dir_fd=dir_fd, follow_symlinks=False)


class HostDirFiles:
    """The file API of a :class:`~sandmle.core.interfaces.SandboxSession` whose working directory
    is a host folder (``_dir``), confined to it; mixed into such sessions. ``file_owner`` is the
    uid agent code runs as (None: the host's own), which gets the files the host writes."""

    _dir: Path
    _closed: bool = False
    file_owner: int | None = None

    def _refuse_exec(self, code: str | None, command: object) -> ExecResult | None:
        """The recorded failure of an ``exec`` that cannot run (closed session, not exactly one of
        ``code`` and ``command``), or None: the same answers from every host-folder sandbox."""
        if self._closed:
            return ExecResult(killed="error", detail="session is closed")
        if (code is None) == (command is None):
            return ExecResult(killed="error", detail="pass exactly one of code or command")
        return None

    async def read_file(self, path: str) -> bytes:
        return await asyncio.to_thread(read_confined, self._dir, path)

    async def write_file(self, path: str, data: bytes | str) -> None:
        await asyncio.to_thread(write_confined, self._dir, path, data, self.file_owner)

    async def list_files(self, path: str = ".") -> list[str]:
        return await asyncio.to_thread(list_confined, self._dir, path)


def safe_submission(workdir: Path, name: str = "submission.csv") -> Path | None:
    """The submission file to grade, or None when it is missing or not a regular, singly linked
    file reached inside ``workdir`` without a link. A symlink named ``submission.csv`` that
    points at a task's hidden answers would otherwise be graded as a perfect submission.

    This checks the path once; a grader that then opens it by name again should instead read
    it through :func:`open_regular` (one descriptor, checked), which closes that window.
    """
    try:
        open_regular(Path(workdir), name).close()
    except (OSError, SandboxPathError):
        return None
    return Path(workdir) / name
