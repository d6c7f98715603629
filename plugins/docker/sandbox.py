"""The ``docker`` sandbox (extra ``sandmle[docker]``).

One container per session through the Docker Engine API: no network, memory/CPU/pids limits,
read-only root, ``no-new-privileges``, every capability dropped but the three the root step
runner needs (SETUID, SETGID, KILL), private inode-capped tmpfs ``/tmp`` and ``/dev/shm``
(charged to the container's memory) and the session directory bind-mounted at ``/workspace``.
Each step is ``docker exec`` of a small runner that applies rlimits (hard = soft), runs the step
in its own session as the agent's unprivileged uid, kills it at the timeout or past the disk
and file caps, then kills every other process in the container (so nothing outlives its step)
and, last, reports exit status, CPU time and peak memory on a marker line; a marker counts only
when the runner itself finished. The image is built locally by
``scripts/docker-image.sh`` (debootstrap + ``docker import``; no registry pulls).
Steps are stateless (``stateful=True`` raises ``NotImplementedError``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from sandmle.core.errors import SandmleError
from sandmle.core.interfaces import ComponentConfig, Sandbox, SandboxSession
from sandmle.core.records import ExecResult
from sandmle.core.registry import require
from sandmle.core.task import Task
from sandmle.sandboxes.files import HostDirFiles, copy_public_files, write_regular
from sandmle.sandboxes.results import exec_result_from_reply
from sandmle.sandboxes import tree as tree_module
from sandmle.sandboxes.tree import remove_tree
from sandmle.sandboxes.workspace_fs import mount_workspace, unmount, unmount_below
from sandmle.sandboxes.stale import make_owned_dir, owner_alive, owner_record, remove_stale_dirs

MIB = 1024 * 1024
DEFAULT_IMAGE = "sandmle/sandbox:bookworm"
_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "docker-image.sh"
_MARK = "__SANDMLE_USAGE__"
# Runs inside the container: argv = [limits_json, argv...]; prints the usage marker last.
_RUNNER = r"""
import json, os, resource, signal, sys, time
lim = json.loads(sys.argv[1]); argv = sys.argv[2:]
t0 = time.time(); pid = os.fork()
if pid == 0:
    os.setsid()
    for what, v in ((resource.RLIMIT_AS, lim['as']), (resource.RLIMIT_FSIZE, lim['fsize']), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(what, (v, v))
    for name in dir(resource):  # hard = soft: agent code may lower a limit, never raise one
        if name.startswith('RLIMIT_'):
            try:
                soft, hard = resource.getrlimit(getattr(resource, name))
                if soft != hard: resource.setrlimit(getattr(resource, name), (soft, soft))
            except (ValueError, OSError): pass
    # Agent code runs as another uid than this runner: it can neither signal nor trace the
    # process that reports its result, and setuid leaves it no capability.
    os.setgroups([]); os.setgid(lim['uid']); os.setuid(lim['uid'])
    try: os.execvp(argv[0], argv)
    except OSError as e: sys.stderr.write('cannot run %r: %s\n' % (argv[0], e)); os._exit(127)
reason, delay, next_disk, first = None, 0.0005, t0 + 0.2, None
while True:
    done, status, ru = os.wait4(pid, os.WNOHANG)
    if done: break
    now = time.time()
    if reason is None and now - t0 >= lim['timeout']: reason = 'timeout'
    elif reason is None and now >= next_disk:
        if lim.get('tmpfs'):  # its own tmpfs: statvfs sees unlinked open files too
            st = os.statvfs('/workspace')
            used = ((st.f_blocks - st.f_bfree) * st.f_frsize, max(st.f_files - st.f_ffree - 1, 0))
        else:
            used = tree_usage('/workspace', lim['disk'], lim['files'])
        grew = first is not None and (used[0] > first[0] or used[1] > first[1])
        first = first or used
        full = used[0] >= lim['disk'] if lim.get('tmpfs') else used[0] > lim['disk']
        if grew and full: reason = 'disk'
        elif grew and used[1] > lim['files']: reason = 'files'
        next_disk = time.time() + min(2.0, max(0.2, 5 * (time.time() - now)))
    if reason:
        try: os.killpg(pid, signal.SIGKILL)
        except OSError: pass
    time.sleep(delay); delay = min(delay * 2, 0.02)
try: os.kill(-1, signal.SIGKILL)  # every process of the step (CAP_KILL); never pid 1 or this one
except OSError: pass
code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
if reason is None and code != 0 and lim.get('tmpfs'):  # the step failed on a full workspace (ENOSPC)
    st = os.statvfs('/workspace')
    if st.f_ffree == 0: reason = 'files'
    elif st.f_bavail * st.f_frsize < 1 << 20: reason = 'disk'
sys.stderr.write('\n%s%s\n' % (%(mark)r, json.dumps({'exit': code, 'reason': reason,
    'cpu': ru.ru_utime + ru.ru_stime, 'rss_kb': ru.ru_maxrss, 'wall': time.time() - t0})))
""".replace("%(mark)r", repr(_MARK))
# The runner counts /workspace with the same descriptor-relative walk as the local sandbox, so
# folders nested past PATH_MAX are counted too (tree.py is stdlib-only for this reason).
_RUNNER = (Path(tree_module.__file__).read_text(encoding="utf-8") + "\n" + _RUNNER)


_REAPER = ("import os, time\nwhile True:\n  try: os.wait()\n"
           "  except ChildProcessError: time.sleep(0.5)")


class DockerSandboxConfig(ComponentConfig):
    """Container limits and image of the ``docker`` sandbox."""

    image: str = DEFAULT_IMAGE
    build_if_missing: bool = Field(True, description="run scripts/docker-image.sh when the image is absent")
    python: str = "python3"
    memory_mb: int = Field(2048, ge=64)
    cpus: float = Field(1.0, gt=0)
    pids_limit: int = Field(128, ge=8)
    tmpfs_mb: int = Field(256, ge=8, description="/tmp size (counted in the container's memory)")
    shm_mb: int = Field(64, ge=1, description="/dev/shm size (counted in the container's memory)")
    max_files: int = Field(100_000, ge=100, description=(
        "files and folders a session may create in /workspace, and in /tmp and /dev/shm each"))
    agent_uid: int = Field(10000, ge=1, description=(
        "uid agent code runs as when the host runs as root (else the host's own uid); the step "
        "runner stays root, so agent code cannot kill it or forge its report"))
    max_file_mb: int = Field(512, ge=1)
    disk_limit_mb: int = Field(1024, ge=1, description=(
        "session directory size cap: its tmpfs size (kernel-enforced; its bytes count against "
        "memory_mb, so keep it well below) or the folder scan's cap"))
    workspace_fs: str = Field("auto", pattern="^(auto|tmpfs|scan)$", description=(
        "'tmpfs': each workspace is a tmpfs of disk_limit_mb mounted by the host (root hosts; "
        "its files are memory); 'scan': the runner's folder scan; 'auto': tmpfs where possible"))
    output_limit_bytes: int = Field(16 * MIB, ge=1024)
    tail_bytes: int = Field(8192, ge=256)
    default_timeout_s: float = Field(300.0, gt=0)


def engine_unavailable_reason(start: bool = False, image: str = DEFAULT_IMAGE) -> str | None:
    """None when a Docker engine answers (and ``image`` exists), else why not. ``start`` runs
    scripts/docker-image.sh to start dockerd and build the image first."""
    try:
        docker = require("docker", "docker", "docker sandbox")
    except SandmleError as exc:
        return str(exc)

    def ready() -> str | None:
        try:
            client = docker.from_env(timeout=10)
            client.ping()
            client.images.get(image)
            return None
        except Exception as exc:  # noqa: BLE001 - any failure is a reason to report
            return f"{type(exc).__name__}: {exc}"

    reason = ready()
    if reason and start and _SCRIPT.exists():
        proc = subprocess.run(["bash", str(_SCRIPT), image], capture_output=True, text=True, timeout=900)
        reason = ready()
        if reason:
            reason += f" (docker-image.sh: {(proc.stderr or proc.stdout).strip()[-300:]})"
    return reason


class DockerSandbox(Sandbox):
    """Opens one locked-down container per session."""

    def __init__(self, config: DockerSandboxConfig):
        self.config = config
        docker = require("docker", "docker", "docker sandbox")
        reason = engine_unavailable_reason(start=config.build_if_missing, image=config.image)
        if reason:
            raise SandmleError(f"docker sandbox unavailable: {reason}")
        self.client = docker.from_env(timeout=60)
        self._owner = json.dumps(owner_record(), sort_keys=True)
        self._remove_stale()
        self.base_dir = make_owned_dir("sandmle-docker-")
        self.sessions: set[DockerSession] = set()
        # Each workspace its own tmpfs of disk_limit_mb where the host runs as root (the kernel
        # caps it, unlinked open files included); else the runner's folder scan, which says so.
        self.workspace_tmpfs = config.workspace_fs != "scan" and os.geteuid() == 0
        if config.workspace_fs == "tmpfs" and not self.workspace_tmpfs:
            raise SandmleError("workspace_fs='tmpfs' needs a host that runs as root")

    def _remove_stale(self) -> None:
        """Containers and folders left by runs that were killed (their owner process is gone)."""
        remove_stale_dirs("sandmle-docker-")
        try:
            for container in self.client.containers.list(all=True, filters={"label": "sandmle.owner"}):
                try:
                    record = json.loads(container.labels.get("sandmle.owner", ""))
                except ValueError:
                    continue
                if isinstance(record, dict) and not owner_alive(record):
                    container.remove(force=True)
        except Exception:  # noqa: BLE001 - cleaning up is best effort
            pass

    async def open(self, task: Task, *, stateful: bool = False) -> "DockerSession":
        if stateful:
            raise NotImplementedError("the docker sandbox runs stateless steps only")
        return await asyncio.to_thread(self._open_blocking, task)

    def _open_blocking(self, task: Task) -> "DockerSession":
        workdir = Path(tempfile.mkdtemp(prefix="session-", dir=self.base_dir))
        c = self.config
        if self.workspace_tmpfs:  # mounted before the container binds it: no propagation needed
            try:
                mount_workspace(workdir, c.disk_limit_mb, c.max_files + 4096)
            except OSError as exc:
                remove_tree(workdir)
                raise SandmleError(f"cannot mount the session's workspace: {exc}") from exc
        os.chmod(workdir, 0o755)
        owner = c.agent_uid if os.geteuid() == 0 else None
        if owner is not None:
            os.chown(workdir, owner, owner)
        copied = copy_public_files(task, workdir, owner)
        container = self.client.containers.run(
            # pid 1 is a tiny reaper (immune to the runner's kill(-1) cleanup), not docker-init.
            c.image, [c.python, "-c", _REAPER], detach=True, network_mode="none",
            mem_limit=f"{c.memory_mb}m", memswap_limit=f"{c.memory_mb}m",
            nano_cpus=int(c.cpus * 1e9), pids_limit=c.pids_limit, read_only=True,
            ipc_mode="none",  # no shared /dev/shm: a private one with an inode cap instead
            tmpfs={"/tmp": f"size={c.tmpfs_mb}m,nr_inodes={c.max_files}",
                   "/dev/shm": f"size={c.shm_mb}m,nr_inodes={c.max_files}"},
            # The runner (root) needs these three to hand each step to the agent's uid and to end
            # it; agent code, another uid, has none.
            cap_drop=["ALL"], cap_add=["SETUID", "SETGID", "KILL"],
            security_opt=["no-new-privileges"], user="0:0",
            volumes={str(workdir): {"bind": "/workspace", "mode": "rw"}}, working_dir="/workspace",
            environment={"HOME": "/workspace", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
                         "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"},
            labels={"sandmle.session": "1", "sandmle.owner": self._owner},
            name=f"sandmle-{uuid.uuid4().hex[:12]}",
        )
        session = DockerSession(self, container, workdir, owner, c.max_files + copied)
        self.sessions.add(session)
        return session

    async def shutdown(self) -> None:
        for session in list(self.sessions):
            await session.close()
        unmount_below(self.base_dir)  # workspaces of sessions never closed
        remove_tree(self.base_dir)


class DockerSession(HostDirFiles, SandboxSession):
    """One container; steps are ``docker exec`` of the runner."""

    def __init__(self, sandbox: DockerSandbox, container: Any, workdir: Path, owner: int | None,
                 max_files: int):
        self.sandbox, self.container, self._dir = sandbox, container, workdir
        self.file_owner, self.max_files = owner, max_files  # HostDirFiles writes as the agent
        self._closed = False

    @property
    def workdir(self) -> Path:
        return self._dir

    async def exec(self, code: str | None = None, *, command: Sequence[str] | None = None,
                   timeout: float | None = None) -> ExecResult:
        if (refused := self._refuse_exec(code, command)) is not None:
            return refused
        timeout = float(timeout or self.sandbox.config.default_timeout_s)
        return await asyncio.to_thread(self._exec_blocking, code, command, timeout)

    def _exec_blocking(self, code: str | None, command: Sequence[str] | None, timeout: float) -> ExecResult:
        from sandmle.sandboxes.zygote_main import Tail

        c = self.sandbox.config
        step = None
        if code is not None:
            step = f".sandmle_step_{uuid.uuid4().hex[:8]}.py"
            write_regular(self._dir, step, code, self.file_owner)
            argv = [c.python, step]
        else:
            argv = list(command or [])
        limits = {"as": c.memory_mb * MIB * 2, "fsize": c.max_file_mb * MIB, "timeout": timeout,
                  "tmpfs": self.sandbox.workspace_tmpfs,
                  "disk": c.disk_limit_mb * MIB, "files": self.max_files,
                  "uid": self.file_owner if self.file_owner is not None else os.getuid()}
        api = self.sandbox.client.api
        t0 = time.perf_counter()
        out, err = Tail(c.tail_bytes), Tail(c.tail_bytes + 512)
        killed, detail = None, ""
        try:
            exec_id = api.exec_create(self.container.id, [c.python, "-c", _RUNNER, json.dumps(limits), *argv],
                                      workdir="/workspace", user="0:0")["Id"]
            stream = api.exec_start(exec_id, stream=True, demux=True)
            # The runner's own alarm enforces the timeout; this guards against a wedged runner.
            guard = threading.Timer(timeout + 10, self._kill_all)
            guard.start()
            try:
                for chunk_out, chunk_err in stream:
                    if killed is not None:
                        continue  # keep draining: dockerd stalls if an exec's output is not read
                    if chunk_out:
                        out.add(chunk_out)
                    if chunk_err:
                        err.add(chunk_err)
                    if out.total + err.total > c.output_limit_bytes:
                        killed, detail = "output", f"output exceeded {c.output_limit_bytes} bytes"
                        threading.Thread(target=self._kill_all, daemon=True).start()
            finally:
                guard.cancel()
            info = api.exec_inspect(exec_id)
        except Exception as exc:  # noqa: BLE001 - an engine failure is this step's result
            return ExecResult(killed="error", detail=f"docker exec failed: {exc}", wall_s=time.perf_counter() - t0)
        finally:
            if step:
                try:
                    (self._dir / step).unlink()
                except OSError:
                    pass
        return self._result(out, err, info, killed, detail, timeout, time.perf_counter() - t0,
                            self.sandbox.workspace_tmpfs)

    @staticmethod
    def _result(out: Any, err: Any, info: dict[str, Any], killed: str | None, detail: str,
                timeout: float, wall: float, tmpfs: bool = False) -> ExecResult:
        stderr = err.text()
        usage: dict[str, Any] = {}
        if _MARK in stderr:
            stderr, _, tail = stderr.rpartition("\n" + _MARK)
            # Agent code can print a marker line too; only a runner that finished (exit 0, after
            # killing every process of the step) wrote the last one.
            if info.get("ExitCode") == 0:
                try:
                    usage = json.loads(tail.strip().splitlines()[0])
                except (ValueError, IndexError):
                    usage = {}
        if not isinstance(usage, dict):
            usage = {}
        exit_code = usage.get("exit", None if usage else info.get("ExitCode"))
        if killed is None:
            if usage.get("reason") == "timeout":
                killed, detail = "timeout", f"killed after {timeout:.1f} s timeout"
            elif usage.get("reason") == "disk":
                killed, detail = "disk", ("session directory full (its tmpfs size, enforced by the kernel)"
                                          if tmpfs else
                                          "session directory exceeded its size cap (folder scan: the fallback "
                                          "where no tmpfs could be mounted)")
            elif usage.get("reason") == "files":
                killed, detail = "disk", "session directory holds too many files and folders"
            elif exit_code == -9 or info.get("ExitCode") == 137:
                killed, detail = "memory", "killed by SIGKILL (container memory limit)"
            elif "MemoryError" in stderr[-2000:]:
                killed, detail = "memory", "memory limit reached (MemoryError)"
            elif exit_code == -25:
                killed, detail = "disk", "file size limit reached"
            elif isinstance(exit_code, int) and exit_code < 0:
                killed, detail = "signal", f"killed by signal {-exit_code}"
            elif not usage:
                killed, detail = "signal", f"the step runner ended without a report (exit {info.get('ExitCode')})"
        rss_kb = usage.get("rss_kb", 0)
        return exec_result_from_reply({
            "exit_code": exit_code, "stdout_tail": out.text(), "stderr_tail": stderr, "wall_s": wall,
            "cpu_s": usage.get("cpu", 0.0), "killed": killed, "detail": detail,
            "peak_mem_mb": rss_kb / 1024.0 if type(rss_kb) in (int, float) else rss_kb})

    def _kill_all(self) -> None:
        try:
            self.container.exec_run(["kill", "-9", "-1"])
        except Exception:  # noqa: BLE001 - the container may already be gone
            pass

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sandbox.sessions.discard(self)

        def remove() -> None:
            try:
                self.container.remove(force=True)
            except Exception:  # noqa: BLE001 - already removed
                pass
            if self.sandbox.workspace_tmpfs:
                unmount(self._dir)
            remove_tree(self._dir)

        await asyncio.to_thread(remove)


def make_docker(config: DockerSandboxConfig) -> DockerSandbox:
    """Registry factory for the ``docker`` sandbox."""
    return DockerSandbox(config)
