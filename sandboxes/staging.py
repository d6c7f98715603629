"""Staging a task's public files into a session from memory, not from the task folder each time.

A study opens many sessions of the same few tasks. Copying an image or audio task's 500-600
small files with ``shutil.copyfile`` (and ``Task.public_files``' pathlib walk) cost ~110-140 ms a
session on this machine, more than the rest of a session start together. The
:class:`StagingCache` keeps each task's public files as bytes (up to a size cap, least recently
used first out) and writes them into a fresh workspace with one ``open``/``write``/``fchown`` a
file: ~10x less.

The copies stay copies: agent code owns its workspace and may overwrite or delete any staged file
(a read-only bind of the task data would change what agents can do, and would need mounts to
propagate into sessions forked before their task is known). What gets staged is exactly
``task.public_files()`` (hidden files never); a cached entry is used only while a walk of the
public folder (names, types, sizes, mtimes, inodes; cheap ``lstat`` calls) matches the walk made
when it was read, so a task rewritten in place is read afresh.
"""

from __future__ import annotations

import os
import stat
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sandmle.core.task import Task

from .files import copy_public_files, make_dir, write_all
from .tree import walk_tree

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def tree_signature(root: Path) -> tuple:
    """Every entry below ``root`` (relative name, type, size, mtime, inode), without following
    links: equal signatures mean ``Task.public_files()`` and the files' bytes are unchanged (up
    to a write that keeps size and mtime, which a staged copy of a task does not see either)."""
    out: list[tuple] = []

    def add(_fd: int, rel: str, _name: str, _is_file: bool | None, st: os.stat_result) -> None:
        out.append((rel, stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, st.st_ino))

    try:  # the public folder itself may be a link (a task set kept elsewhere); below it, none is followed
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return ()
    try:
        _, complete = walk_tree(top, on_file=add)
    finally:
        os.close(top)
    out.sort()
    if not complete:  # a folder moved while it was walked: a signature that matches no other
        out.append((object(),))
    return tuple(out)


@dataclass
class StagedTask:
    """One task's public files in memory: folders (parents first) and (relative path, bytes)."""

    signature: tuple
    dirs: list[str]
    files: list[tuple[str, bytes]]

    @property
    def nbytes(self) -> int:
        return sum(len(data) for _, data in self.files)


def _read(task: Task, signature: tuple) -> StagedTask:
    files, dirs = [], set()
    for src in task.public_files():
        rel = src.relative_to(task.public_dir).as_posix()
        parent = os.path.dirname(rel)
        while parent:
            dirs.add(parent)
            parent = os.path.dirname(parent)
        files.append((rel, src.read_bytes()))
    return StagedTask(signature, sorted(dirs, key=lambda d: (d.count("/"), d)), files)


def write_staged(staged: StagedTask, dest: Path, owner: int | None) -> int:
    """Write ``staged`` into the (fresh) folder ``dest``, files and folders owned by ``owner``
    (None: the host's own). Returns the number of files."""
    root = os.open(dest, _DIR_FLAGS)
    try:
        for rel in staged.dirs:
            make_dir(root, rel, owner)
        for rel, data in staged.files:
            fd = os.open(rel, _FILE_FLAGS, 0o666, dir_fd=root)
            try:
                write_all(fd, data, owner)
            finally:
                os.close(fd)
    finally:
        os.close(root)
    return len(staged.files)


class StagingCache:
    """Tasks' public files kept as bytes, up to ``max_bytes`` in all (see the module docstring);
    thread-safe. ``max_bytes=0`` turns it off (every session copies from the task folder)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple, StagedTask] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def stage(self, task: Task, dest: Path, owner: int | None = None) -> int:
        """Put ``task.public_files()`` into ``dest`` (a fresh session folder); returns how many."""
        if self.max_bytes <= 0:
            return copy_public_files(task, dest, owner)
        hidden = tuple(sorted(str(p.resolve()) for p in task.hidden_files))
        key = (str(task.public_dir.resolve()), hidden)
        signature = tree_signature(task.public_dir)
        with self._lock:
            staged = self._entries.get(key)
            if staged is not None and staged.signature == signature:
                self._entries.move_to_end(key)
                self.hits += 1
            else:
                staged = None
                self.misses += 1
        if staged is None:
            staged = _read(task, signature)
            if staged.nbytes > self.max_bytes:  # too big to keep: staged straight from disk
                return copy_public_files(task, dest, owner)
            self._store(key, staged)
        return write_staged(staged, dest, owner)

    def _store(self, key: tuple, staged: StagedTask) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = staged
            self._bytes += staged.nbytes
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
