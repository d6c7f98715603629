"""A size-capped file system per session workspace, so the kernel enforces ``disk_limit_mb``.

Counting what a folder scan finds misses space held by files agent code unlinked but keeps
open (a session grew the host disk by 610 MiB past a 100 MiB cap that way). Where the host
runs as root, each session's folder is instead its own ``tmpfs`` mounted by the host with
``size=disk_limit_mb`` and an inode cap: a write past the cap fails with ``ENOSPC``, unlinked
or not, and nothing reaches the host disk. The host keeps seeing the files at the same path
(graders, ``read_file``) and a restarted session keeps them (the mount outlives it). Its pages
are memory: on a host with session cgroups they are charged to the session that wrote them.

For the local sandbox the sandbox folder is first bound on itself and made a *shared* mount,
so a tmpfs mounted in it later also appears inside the already running bwrap (whose view is a
slave of it); each session then binds its own. Elsewhere (an unprivileged host) the zygote's
folder scan remains the cap, and the sandbox says so once.
"""

from __future__ import annotations

import ctypes
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_SHARED = 2, 4, 4096, 16384, 1 << 20
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if _libc.mount(source.encode(), str(target).encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def unmount(path: Path | str) -> bool:
    """Detach the mount at ``path``; False when there was none (or it could not be)."""
    return _libc.umount2(str(path).encode(), MNT_DETACH) == 0


def mounts_below(path: Path | str) -> list[str]:
    """Mount points at or below ``path``, deepest first (from /proc/self/mountinfo)."""
    root = os.path.realpath(path).rstrip("/")
    found = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == root or point.startswith(root + "/"):
                found.append(point)
    except (OSError, IndexError):
        return []
    return sorted(found, key=len, reverse=True)


def unmount_below(path: Path | str) -> None:
    """Detach every mount at or below ``path`` (a killed run's workspaces); best effort."""
    for point in mounts_below(path):
        unmount(point)


def share_folder(folder: Path) -> str:
    """Bind ``folder`` on itself as a shared mount (see the module docstring); '' on success,
    else why not (the caller falls back to the folder scan)."""
    if os.geteuid() != 0:
        return "the host does not run as root, so it cannot mount a file system per workspace"
    try:
        _mount(str(folder), str(folder), None, MS_BIND)
        _mount("none", str(folder), None, MS_SHARED)
    except OSError as exc:
        unmount(folder)
        return f"cannot mount here ({exc})"
    return ""


def mount_workspace(path: Path, size_mb: int, max_inodes: int) -> None:
    """A fresh ``tmpfs`` of ``size_mb`` MiB and ``max_inodes`` inodes at ``path``."""
    _mount("tmpfs", str(path), "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(size_mb)}m,nr_inodes={int(max_inodes)},mode=0755")
