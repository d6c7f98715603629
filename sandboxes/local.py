"""The ``local`` sandbox: bubblewrap isolation combined with sessions forked from a warm process.

Design
------
A micro-scale step costs ~0.07 s of real work but ~1.1 s of interpreter start and
``import pandas, sklearn``; starting one isolated interpreter per session still costs seconds
on 2 busy cores. So the unit of warmth is one *mother* process per sandbox, and sessions are
forks of it:

* the mother is a Python process started inside one ``bwrap`` (no network, an allow-listed
  read-only view of the system and the interpreter, a scrubbed environment) with the sandbox's
  base directory bound at ``/sessions``. It imports the preload modules once and waits.
* a session is a fork of the mother that enters its own mount, pid, ipc and network namespaces,
  bind-mounts only its own directory at ``/workspace`` and hides ``/sessions`` (so concurrent
  sessions never see each other), and gets private size-capped ``/tmp`` and ``/dev/shm``.
  The :class:`~sandmle.sandboxes.pool.WarmPool` keeps ``pool_size`` sessions forked ahead of need;
  ``open(task)`` takes one and writes the task's public files into its directory (from memory
  after the first time: ``staging``; the bind mount shows them at once). Closing a session kills
  it; its directory and cgroup are removed by the pool in the background (``pool.settle()``).
* each ``exec`` is a child *forked* from the session: it inherits the imports for free, calls
  ``setsid``, gets rlimits (address space, CPU, processes, file size), ``no_new_privs``, fresh pipes
  and only those fds and, under a root host, its session's own unprivileged uid (so
  ``RLIMIT_NPROC`` bounds a fork bomb per session, and agent code cannot signal or trace the
  process that reports its results). The session enforces wall-clock timeout, output and disk
  caps, and afterwards SIGKILLs every descendant.
* ``stateful=True`` forks one long-lived kernel child instead and runs every step in its
  globals; a step that kills the kernel (timeout, memory) restarts it and says so.

Kernel-enforced limits where the host allows them (each with a stated fallback, see
docs/guides/reliability.md "Sandbox limits"): a seccomp filter on agent code
(``zygote_seccomp``), one cgroup per session for memory and pids (``cgroups``), and each
workspace its own size-capped tmpfs mounted by a root host (``workspace_fs``). The sandbox's
processes die with their owner (bwrap ``--die-with-parent``, forked from a process-long thread).

Hidden answers are never copied into the session and the host file system is not mounted.
Without bwrap (``isolation="none"`` or not installed) sessions are plain forks working in their
host directories, with rlimits and their own process group; a warning is printed once, and hidden
answers are then only protected by not being copied (agent code could read them by absolute host
path).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import ComponentConfig, Sandbox, SandboxSession
from sandmle.core.records import ExecResult
from sandmle.core.task import Task

from .files import HostDirFiles
from .cgroups import SessionCgroups, remove_stale_cgroups
from .isolation import bwrap_path
from .pool import WarmPool, Zygote, ZygoteError, ZygoteSpec
from .results import exec_result_from_reply
from .staging import StagingCache
from .stale import BASE_PREFIX, make_owned_dir, remove_stale_dirs
from .tree import remove_tree
from .workspace_fs import share_folder, unmount_below

log = logging.getLogger(__name__)
MIB = 1024 * 1024
DEFAULT_PRELOAD = ["numpy", "pandas", "sklearn", "sklearn.ensemble", "sklearn.linear_model",
                   "sklearn.model_selection", "sklearn.metrics", "sklearn.preprocessing"]
_warned_reduced = False
_warned_scan = False
_MAX_ARG_BYTES = 128 * 1024 - 1  # Linux MAX_ARG_STRLEN, less the trailing NUL


class LocalSandboxConfig(ComponentConfig):
    """Limits and pool settings of the ``local`` sandbox (per execution unless noted)."""

    isolation: Literal["auto", "bwrap", "none"] = "auto"
    memory_mb: int = Field(4096, ge=64, description=(
        "address-space limit of each process (RLIMIT_AS); also caps the session's resident "
        "memory together with what its /tmp and /dev/shm hold"))
    cpu_s: int = Field(600, ge=1, description="CPU seconds per execution (RLIMIT_CPU)")
    max_procs: int = Field(64, ge=4, description="processes per session (RLIMIT_NPROC of the session uid)")
    max_file_mb: int = Field(512, ge=1, description="largest file one execution may write")
    disk_limit_mb: int = Field(2048, ge=1, description=(
        "session directory size cap: the size of its tmpfs (enforced by the kernel) or, with "
        "workspace_fs 'scan', what the folder scan may find"))
    workspace_fs: Literal["auto", "tmpfs", "scan"] = Field("auto", description=(
        "'tmpfs': each workspace is its own tmpfs of disk_limit_mb (needs a root host; its "
        "files are memory); 'scan': a host folder polled by a scan; 'auto': tmpfs where possible"))
    max_files: int = Field(100_000, ge=100, description=(
        "files and folders the session may create in its directory, and in /tmp plus /dev/shm "
        "(the task's own files come on top)"))
    output_limit_bytes: int = Field(16 * MIB, ge=1024, description="stdout+stderr cap per execution")
    tail_bytes: int = Field(8192, ge=256, description="bytes of stdout/stderr kept in ExecResult")
    preload: list[str] = Field(default_factory=lambda: list(DEFAULT_PRELOAD))
    pool_size: int = Field(2, ge=0, description="sessions forked ahead of need")
    staging_cache_mb: int = Field(256, ge=0, description=(
        "tasks' public files kept in memory (least recently used out past this size) and written "
        "into each new session from there instead of copied from the task folder; 0: off"))
    fresh_interpreter: bool = Field(False, description=(
        "run each stateless code step as a fresh `python -c` process, as SandMLE's tool runs "
        "`python main.py` (nothing pre-imported or inherited; every step pays interpreter start "
        "and its imports)"))
    kernel_memory_cap: bool = Field(True, description=(
        "one cgroup per session with memory.max = memory_mb and pids.max (v2 where delegated, "
        "else writable v1 memory+pids); where none can be made, or when false, the session's "
        "resident memory is polled instead (see docs/guides/reliability.md)"))
    seccomp: bool = Field(True, description=(
        "a seccomp filter on agent code: no namespaces (user namespaces included), mount, "
        "keyring, ptrace, bpf, perf_event_open, io_uring... (see sandboxes/zygote_seccomp.py); "
        "steps fail with a clear error where the kernel refuses it: then set false"))
    default_timeout_s: float = Field(300.0, gt=0)
    startup_timeout_s: float = Field(120.0, gt=0)


class LocalSandbox(Sandbox):
    """Opens isolated sessions backed by warm zygotes (see the module docstring)."""

    def __init__(self, config: LocalSandboxConfig | None = None):
        self.config = config or LocalSandboxConfig()
        self.bwrap = self._choose_isolation()
        remove_stale_dirs(BASE_PREFIX)  # left behind by runs that were killed
        self.base_dir = make_owned_dir(BASE_PREFIX)
        cfg = self.config
        self.workspace_fs = self._choose_workspace_fs()
        # Kernel caps per session where this host allows a cgroup; else the zygote polls memory.
        # pids.max counts threads and the session's own few processes on top of max_procs.
        self.cgroups = SessionCgroups(cfg.memory_mb, cfg.max_procs + 16) if cfg.kernel_memory_cap else None
        if self.cgroups is not None and self.cgroups.version is None:
            self.cgroups = None
        if self.cgroups is not None:
            remove_stale_cgroups(_pid_alive)  # left behind by runs that were killed
        self.spec = ZygoteSpec(
            bwrap=self.bwrap, preload=cfg.preload,
            limits={"memory_mb": cfg.memory_mb, "cpu_s": cfg.cpu_s, "max_procs": cfg.max_procs,
                    "max_file_mb": cfg.max_file_mb},
            output_limit_bytes=cfg.output_limit_bytes, tail_bytes=cfg.tail_bytes,
            disk_limit_mb=cfg.disk_limit_mb, max_files=cfg.max_files, base_dir=self.base_dir,
            startup_timeout_s=cfg.startup_timeout_s, seccomp=cfg.seccomp, cgroups=self.cgroups,
            workspace_fs=self.workspace_fs,
        )
        self.pool = WarmPool(self.spec, cfg.pool_size)
        self.staging = StagingCache(cfg.staging_cache_mb * MIB)
        self.sessions: set[LocalSession] = set()
        # A sandbox dropped without shutdown() still stops its processes and removes its dir.
        self._finalizer = weakref.finalize(self, _release, self.pool, self.base_dir)

    def _choose_workspace_fs(self) -> str:
        """"tmpfs" (a size-capped file system per workspace) where the host can mount one,
        else "scan" (the zygote's folder scan, which misses space of unlinked open files)."""
        global _warned_scan
        wanted = self.config.workspace_fs
        if wanted == "scan":
            return "scan"
        reason = share_folder(self.base_dir)
        if not reason:
            return "tmpfs"
        if wanted == "tmpfs":
            raise SandmleError(f"workspace_fs='tmpfs' but {reason}")
        if not _warned_scan:
            _warned_scan = True
            log.warning("%s: disk_limit_mb is enforced by a folder scan (fallback), which does not "
                        "see space held by unlinked open files", reason)
        return "scan"

    @property
    def isolated(self) -> bool:
        """True when sessions run inside bubblewrap."""
        return self.bwrap is not None

    def _choose_isolation(self) -> str | None:
        global _warned_reduced
        if self.config.isolation == "none":
            return None
        path = bwrap_path()
        if path is None and self.config.isolation == "bwrap":
            raise SandmleError("isolation='bwrap' but bubblewrap is missing or cannot create "
                               "namespaces here; run scripts/install-system-deps.sh")
        if path is None and not _warned_reduced:
            _warned_reduced = True
            warnings.warn("bubblewrap unavailable: the local sandbox falls back to rlimits and a "
                          "process group; agent code can see the host file system",
                          RuntimeWarning, stacklevel=3)
        return path

    async def open(self, task: Task, *, stateful: bool = False) -> "LocalSession":
        zygote, copied = await asyncio.to_thread(self._take, task)  # one thread hop, not two
        session = LocalSession(self, zygote, stateful, max_files=self.config.max_files + copied)
        self.sessions.add(session)
        return session

    def _take(self, task: Task) -> tuple[Zygote, int]:
        """A ready session with the task's public files staged in its folder."""
        zygote = self.pool.acquire()
        try:
            return zygote, self.staging.stage(task, zygote.host_dir, zygote.uid)
        except BaseException:
            zygote.close()
            raise

    async def shutdown(self) -> None:
        for session in list(self.sessions):
            await session.close()
        await asyncio.to_thread(self._finalizer)


class LocalSession(HostDirFiles, SandboxSession):
    """One task x one trajectory in one zygote."""

    def __init__(self, sandbox: LocalSandbox, zygote: Zygote, stateful: bool, max_files: int):
        self.sandbox, self.zygote, self.stateful = sandbox, zygote, stateful
        self.max_files = max_files
        self._dir = zygote.host_dir
        self._closed = False

    @property
    def workdir(self) -> Path:
        return self._dir

    async def exec(self, code: str | None = None, *, command: Sequence[str] | None = None,
                   timeout: float | None = None) -> ExecResult:
        if (refused := self._refuse_exec(code, command)) is not None:
            return refused
        timeout = float(timeout or self.sandbox.config.default_timeout_s)
        if code is not None and self.sandbox.config.fresh_interpreter and not self.stateful:
            if len(code.encode()) > _MAX_ARG_BYTES:
                return ExecResult(killed="error", detail=f"fresh_interpreter passes code as one argument, "
                                                         f"at most {_MAX_ARG_BYTES} bytes; write it to a file "
                                                         "and run the file as a command instead")
            code, command = None, [sys.executable, "-c", code]
        req = {"code": code, "command": list(command) if command is not None else None,
               "timeout": timeout, "stateful": self.stateful, "env": self.zygote.env,
               "max_files": self.max_files}
        if not self.zygote.alive():  # restarting forks a session: blocking, so in a thread
            return await asyncio.to_thread(self._exec_blocking, req, timeout)
        try:
            reply = await self.zygote.request_async(req, timeout + 15.0)
        except ZygoteError as exc:
            return await asyncio.to_thread(self._after_failure, exc)
        return exec_result_from_reply(reply)

    def _exec_blocking(self, req: dict, timeout: float) -> ExecResult:
        try:
            if not self.zygote.alive():
                self._restart()
            reply = self.zygote.request(req, timeout + 15.0)
        except ZygoteError as exc:
            return self._after_failure(exc)
        return exec_result_from_reply(reply)

    def _after_failure(self, exc: ZygoteError) -> ExecResult:
        if self._closed:  # close() ended the step; nothing to restart
            return ExecResult(killed="signal", detail="session closed during the step")
        # The agent killed its own zygote (or it hung): report, restart for the next step.
        self._restart()
        return ExecResult(killed="signal", detail=f"sandbox worker died: {exc}; restarted")

    def _restart(self) -> None:
        self.zygote.close(keep_dir=True)
        self.zygote = self.sandbox.pool.start(host_dir=self._dir, uid=self.zygote.uid)

    @property
    def file_owner(self) -> int | None:  # type: ignore[override]
        return self.zygote.uid

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sandbox.sessions.discard(self)
        # A pipe write and a message to the mother; the folder (an unmount, or a walk of whatever
        # tree agent code left) and the cgroup go in the pool's background thread.
        self.sandbox.pool.release(self.zygote)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _release(pool: WarmPool, base_dir: Path) -> None:
    """Stop the sandbox's processes and remove its folder; never raises (it runs from close
    paths and finalizers, where an exception would lose the caller's results)."""
    try:
        pool.close()
    except Exception as exc:  # noqa: BLE001 - cleanup must not fail the run
        log.warning("stopping the sandbox's processes failed: %s", exc)
    unmount_below(base_dir)  # workspaces of sessions never closed, then the shared bind
    if not remove_tree(base_dir):
        log.warning("could not remove the sandbox folder %s entirely", base_dir)


def make_local(config: LocalSandboxConfig) -> LocalSandbox:
    """Registry factory for the ``local`` sandbox."""
    return LocalSandbox(config)
