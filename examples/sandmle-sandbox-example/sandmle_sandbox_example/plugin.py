"""Sandbox ``subprocess``: each session is a temporary folder holding the task's public files;
agent code runs there as ``python -c CODE`` with resource limits.

It does NOT isolate agent code from the host (no namespaces, no separate user): code can read any
file your user can, hidden answers included, and a process that starts its own session outlives
the step. Use it for trusted code and for plugin development;
``sandmle sandbox check subprocess`` shows which of the hostile-code checks it fails, and why
the built-in ``local`` sandbox exists.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import typing
from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from sandmle.core import ComponentConfig, ExecResult, Sandbox, SandboxSession, Task, hookimpl

TAIL = 64 * 1024  # characters of stdout/stderr kept


class SubprocessConfig(ComponentConfig):
    """Limits applied to every execution."""

    memory_mb: int = Field(4096, ge=64, description="address-space limit of agent code")
    file_size_mb: int = Field(512, ge=1, description="largest file agent code may write")
    default_timeout_s: float = Field(300.0, gt=0)


def _tail(file: typing.BinaryIO) -> str:
    """The last TAIL characters written to ``file`` (read from its end: output may be huge)."""
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - 4 * TAIL))
    return file.read().decode(errors="replace")[-TAIL:]


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is already gone
        pass


class SubprocessSession(SandboxSession):
    def __init__(self, root: Path, config: SubprocessConfig):
        self.root, self.config = root, config
        self.running: set[int] = set()  # process groups of executions still running

    @property
    def workdir(self) -> Path:
        return self.root

    def _inside(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if target != self.root and self.root not in target.parents:
            raise ValueError(f"path {path!r} leaves the session directory")
        return target

    def _limits(self) -> None:  # runs in the child, before python starts
        mb = 2**20
        resource.setrlimit(resource.RLIMIT_AS, (self.config.memory_mb * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.config.file_size_mb * mb,) * 2)

    async def exec(self, code: str | None = None, *, command: Sequence[str] | None = None,
                   timeout: float | None = None) -> ExecResult:
        argv = list(command) if command is not None else [sys.executable, "-c", code or ""]
        timeout = timeout or self.config.default_timeout_s
        t0, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
        # Output goes to unnamed temporary files, not pipes: a process that escapes the group
        # (setsid) would keep a pipe open and block the read; a file is simply read afterwards.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = await asyncio.create_subprocess_exec(
                *argv, cwd=self.root, stdout=out, stderr=err, stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=self._limits, start_new_session=True)  # own process group: killed as one
            self.running.add(proc.pid)
            killed = None
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                killed = "timeout"
                _kill_group(proc.pid)
                await proc.wait()
            finally:
                self.running.discard(proc.pid)
            _kill_group(proc.pid)  # children left behind (a sleeping child) go with their group
            stdout, stderr = _tail(out), _tail(err)
        # Children's usage is process-wide: with concurrent sessions these numbers are approximate.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return ExecResult(exit_code=None if killed else proc.returncode,
                          stdout_tail=stdout, stderr_tail=stderr,
                          wall_s=time.monotonic() - t0, cpu_s=cpu_s,
                          peak_mem_mb=after.ru_maxrss / 1024, killed=killed,
                          detail=f"killed after {timeout:g} s" if killed else "")

    async def read_file(self, path: str) -> bytes:
        return self._inside(path).read_bytes()

    async def write_file(self, path: str, data: bytes | str) -> None:
        target = self._inside(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)

    async def list_files(self, path: str = ".") -> list[str]:
        base = self._inside(path)
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    async def close(self) -> None:
        for pid in list(self.running):  # what still runs is killed first
            _kill_group(pid)
        shutil.rmtree(self.root, ignore_errors=True)  # safe to call twice


class SubprocessSandbox(Sandbox):
    def __init__(self, config: SubprocessConfig):
        self.config = config

    async def open(self, task: Task, *, stateful: bool = False) -> SubprocessSession:
        if stateful:
            raise NotImplementedError("the subprocess sandbox starts a fresh python for every exec")
        root = Path(tempfile.mkdtemp(prefix=f"sandmle-subprocess-{task.id}-")).resolve()
        for src in task.public_files():  # never task.answers_path, never hidden files
            dest = root / src.relative_to(task.public_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        return SubprocessSession(root, self.config)


@hookimpl
def register_sandboxes(register):
    register("subprocess", SubprocessSandbox, config=SubprocessConfig,
             description="a temp folder and a python subprocess with rlimits; NO isolation")
