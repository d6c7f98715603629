"""How a zygote is walled off from the host: bubblewrap arguments, a scrubbed environment and
an optional pids cgroup.

The bwrap view of the file system is built from an allow-list, never ``--ro-bind / /``: with the
host root visible, agent code could read any task's ``prepared/private/answers.csv`` by absolute
path. Only system directories, the interpreter prefix and the virtual environment are bound
read-only; the session directory is the one writable bind (at ``/workspace``); ``/tmp`` is a
private tmpfs; network, pid, ipc and uts namespaces are new.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

SANDBOX_WORKDIR = "/workspace"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
              "/etc/localtime", "/etc/ssl/certs", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
              "/etc/mime.types")
# Variables an agent's code legitimately needs; everything else (API keys...) is dropped.
_ENV_KEEP = ("LANG", "LC_ALL", "TZ")


@functools.lru_cache(maxsize=1)
def bwrap_path() -> str | None:
    """The bwrap binary when it exists *and* can create namespaces here, else None."""
    path = shutil.which("bwrap")
    if not path:
        return None
    try:
        probe = subprocess.run(
            [path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
            capture_output=True, timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if probe.returncode != 0:
        log.warning("bwrap is installed but cannot create namespaces: %s", probe.stderr.decode()[-300:])
        return None
    return path


def python_roots() -> list[str]:
    """Directories the interpreter and its packages live in (bound read-only)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             str(Path(sys.executable).resolve().parent.parent)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(str(Path(path).resolve()))
    # Drop nested entries: binding a parent already covers them.
    ordered = sorted(r for r in roots if os.path.isdir(r))
    kept: list[str] = []
    for root in ordered:
        if not any(root == k or root.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(root)
    return [r for r in kept if r not in ("/", "/usr") and not r.startswith("/usr/")]


def scrubbed_env(workdir: str, threads: int = 1) -> dict[str, str]:
    """A minimal environment for agent code: no secrets from the harness."""
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    env.update({
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir, "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg",
        # One BLAS/OpenMP thread: forked children of a warm process must not inherit thread pools.
        "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    })
    return env


def bwrap_argv(bwrap: str, session_dir: Path) -> list[str]:
    """bwrap arguments that show the sandbox only what Python needs plus the session dir."""
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--clearenv"]
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _ETC_FILES:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    for root in python_roots():
        argv += ["--ro-bind", root, root]
    argv += ["--bind", str(session_dir), SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
    return argv


class PidsCgroup:
    """A cgroup-v1/v2 pids limit for one zygote and everything it forks (needs root).

    RLIMIT_NPROC does not bind processes that run as host root (as here and in CI containers),
    so a fork bomb is contained by the cgroup instead. ``available()`` is False elsewhere and
    RLIMIT_NPROC does the job for unprivileged users.
    """

    def __init__(self, max_pids: int):
        self.path: Path | None = None
        base = self.base()
        if base is None:
            return
        path = base / f"sandmle-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(max_pids))
            self.path = path
        except OSError as exc:
            log.debug("pids cgroup unavailable: %s", exc)

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def base() -> Path | None:
        for candidate in (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")):
            if (candidate / "cgroup.procs").exists() and os.access(candidate, os.W_OK):
                if candidate.name == "cgroup" and "pids" not in _v2_controllers(candidate):
                    continue
                return candidate
        return None

    def enter(self) -> None:
        """Move the calling process into the cgroup (used as a ``preexec_fn``)."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text("0")

    def remove(self) -> None:
        if self.path is None:
            return
        try:
            self.path.rmdir()
        except OSError:
            pass  # still has members for a moment; the kernel frees it once they exit
        self.path = None


def _v2_controllers(path: Path) -> str:
    try:
        return (path / "cgroup.controllers").read_text()
    except OSError:
        return ""
