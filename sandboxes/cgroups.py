"""Kernel-enforced memory and process caps per session: one cgroup each, where this host lets
us make one.

cgroup v2 is used when the host's own cgroup (``0::/path`` in /proc/self/cgroup) can get
children with the ``memory`` and ``pids`` controllers (a delegated subtree, or root); else
cgroup v1's ``memory`` and ``pids`` hierarchies when they are mounted and writable (containers
often offer these). The host makes the session's cgroup, sets ``memory.max`` (v1:
``memory.limit_in_bytes`` and the swap one) and ``pids.max``, and hands the session an open
descriptor of each ``cgroup.procs``; the session writes ``0`` to it (moves itself) before it
forks anything, so every process of the session, and the pages of its private ``/tmp`` and
``/dev/shm``, are charged to that cgroup: the kernel, not a poll, stops a step that forks its
way past the memory limit. Where neither is possible the zygote's polling of resident memory
stays as the fallback, and :attr:`SessionCgroups.unavailable` says why (logged once, and put
in every result's ``detail`` of a memory kill).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)
PREFIX = "sandmle-"
_counter = itertools.count(1)
_warned = False


def _own_paths() -> dict[str, str]:
    """controller name (``""`` for v2) -> this process's cgroup path."""
    out = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                out[name] = path
    except (OSError, ValueError):
        pass
    return out


def _mounts() -> dict[str, str]:
    """controller name (``""`` for the v2 mount) -> its mount point."""
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fstype, _source, options = (right.split() + ["", "", ""])[:3]
            mount_point = left.split()[4]
            if fstype == "cgroup2":
                out.setdefault("", mount_point)
            elif fstype == "cgroup":
                for opt in options.split(","):
                    if opt in ("memory", "pids"):
                        out.setdefault(opt, mount_point)
    except (OSError, IndexError):
        pass
    return out


def _v2_parent() -> Path | None:
    mounts, paths = _mounts(), _own_paths()
    if "" not in mounts or "" not in paths:
        return None
    parent = Path(mounts[""]) / paths[""].lstrip("/")
    try:
        available = (parent / "cgroup.controllers").read_text().split()
        if not {"memory", "pids"} <= set(available):
            return None
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        if not {"memory", "pids"} <= enabled:
            # Fails (EBUSY) when the parent holds processes itself, as a non-delegated one does.
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError:
        return None
    return parent if os.access(parent, os.W_OK) else None


def _v1_parents() -> dict[str, Path] | None:
    mounts, paths = _mounts(), _own_paths()
    out = {}
    for name in ("memory", "pids"):
        if name not in mounts or name not in paths:
            return None
        parent = Path(mounts[name]) / paths[name].lstrip("/")
        if not (parent / "cgroup.procs").exists() or not os.access(parent, os.W_OK):
            return None
        out[name] = parent
    return out


class SessionCgroups:
    """Makes one cgroup per session under this process's own (see the module docstring)."""

    def __init__(self, memory_mb: int, max_pids: int):
        self.memory_bytes, self.max_pids = memory_mb * 1024 * 1024, max_pids
        self.version: str | None = None
        self.parents: dict[str, Path] = {}
        # Background removals still running: a count, not a list of their threads, so a
        # long-lived sandbox keeps nothing per finished session; shutdown waits on the condition.
        self.pending_removals = 0
        self._removals_done = threading.Condition()
        self.unavailable = ""
        v2 = _v2_parent()
        if v2 is not None:
            self.version, self.parents = "v2", {"": v2}
        else:
            v1 = _v1_parents()
            if v1 is not None:
                self.version, self.parents = "v1", v1
        if self.version is None:
            self.unavailable = ("no delegated cgroup (v2 memory+pids, or writable v1 memory and pids) "
                                "on this host: session memory is polled, not capped by the kernel")
        else:
            try:  # one throw-away cgroup proves the limits can be set here
                SessionCgroup(self, "probe").remove()
            except OSError as exc:
                self.version, self.parents = None, {}
                self.unavailable = f"cannot make session cgroups here ({exc}): session memory is polled"
        global _warned
        if self.unavailable and not _warned:
            _warned = True
            log.warning("%s", self.unavailable)

    def wait_for_removals(self, timeout: float = 35.0) -> None:
        """Wait for the background removals (each gives up after 30 s): a sandbox's shutdown returns
        with its sessions' cgroups gone, not with daemon threads that the interpreter's exit
        would kill halfway and that would leave empty cgroups behind."""
        with self._removals_done:
            self._removals_done.wait_for(lambda: self.pending_removals == 0, timeout)

    def remove_in_background(self, dirs: list[Path]) -> None:
        """Retry removing ``dirs`` for up to 30 s in a thread that :meth:`wait_for_removals`
        waits for."""
        with self._removals_done:
            self.pending_removals += 1
        try:
            threading.Thread(target=self._remove, args=(dirs,), daemon=True).start()
        except RuntimeError as exc:  # no thread to be had: left for the next sandbox's stale sweep
            self._done_one()
            log.warning("session cgroup(s) left behind (%s): %s", exc, ", ".join(map(str, dirs)))

    def _done_one(self) -> None:
        with self._removals_done:
            self.pending_removals -= 1
            self._removals_done.notify_all()

    def _remove(self, dirs: list[Path]) -> None:
        try:
            _rmdir_all(dirs, 30.0)
        finally:
            self._done_one()

    def create(self) -> "SessionCgroup | None":
        """A new session cgroup, or None (the fallback) when this host has none to give."""
        if self.version is None:
            return None
        try:
            return SessionCgroup(self, str(next(_counter)))
        except OSError as exc:
            log.warning("session cgroup not made (%s); this session's memory is polled", exc)
            return None


class SessionCgroup:
    """One session's cgroup (a folder per hierarchy) and open ``cgroup.procs`` descriptors."""

    def __init__(self, owner: SessionCgroups, suffix: str):
        self.owner = owner
        self.dirs: list[Path] = []
        self.fds: list[int] = []
        name = f"{PREFIX}{os.getpid()}-{suffix}"
        try:
            for controller, parent in owner.parents.items():
                path = parent / name
                path.mkdir()
                self.dirs.append(path)
                self._limit(owner, controller, path)
                self.fds.append(os.open(path / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        except OSError:
            self.remove()
            raise

    @staticmethod
    def _limit(owner: SessionCgroups, controller: str, path: Path) -> None:
        def write(name: str, value: object, required: bool = True) -> None:
            try:
                (path / name).write_text(str(value))
            except OSError:
                if required:
                    raise

        if controller == "":  # v2: both controllers in one folder
            write("memory.max", owner.memory_bytes)
            write("memory.swap.max", 0, required=False)
            write("memory.oom.group", 0, required=False)
            write("pids.max", owner.max_pids)
        elif controller == "memory":
            write("memory.limit_in_bytes", owner.memory_bytes)
            write("memory.memsw.limit_in_bytes", owner.memory_bytes, required=False)  # no swap either
        elif controller == "pids":
            write("pids.max", owner.max_pids)

    def close_fds(self) -> None:
        """The session holds its own copies once spawned; the host's are closed."""
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []

    def remove(self, wait_s: float = 0.0) -> None:
        """Remove the folders once their processes are gone (killed just before; exiting takes
        a moment): tried once here (for ``wait_s``), then by a background thread for up to
        30 s, so close() does not wait for the session to finish dying; never raises. A folder still busy after that is left, and
        the next sandbox of this host removes it (:func:`remove_stale_cgroups`)."""
        self.close_fds()
        dirs, self.dirs = self.dirs, []
        left = _rmdir_all(dirs, wait_s)
        if left:
            self.owner.remove_in_background(left)


def _rmdir_all(dirs: list[Path], wait_s: float) -> list[Path]:
    deadline = time.monotonic() + wait_s
    left = list(dirs)
    while left:
        for path in list(left):
            try:
                path.rmdir()
                left.remove(path)
            except FileNotFoundError:
                left.remove(path)
            except OSError:
                pass
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if left and wait_s >= 30.0:
        log.warning("session cgroup(s) still busy, left behind: %s", ", ".join(map(str, left)))
    return left


def remove_stale_cgroups(owner_alive_pid) -> None:
    """Remove empty ``sandmle-<pid>-*`` session cgroups whose owner pid is gone (``owner_alive_pid``:
    pid -> bool); best effort."""
    for parent in {p for p in (_v2_parent(), *((_v1_parents() or {}).values())) if p is not None}:
        try:
            children = list(parent.glob(PREFIX + "*"))
        except OSError:
            continue
        for child in children:
            try:
                pid = int(child.name[len(PREFIX):].split("-", 1)[0])
            except ValueError:
                continue
            if not owner_alive_pid(pid):
                try:
                    child.rmdir()
                except OSError:
                    pass
