"""How a sandbox's mother process is walled off from the host: bubblewrap arguments and a
scrubbed environment (each session then isolates itself further, see ``zygote_main``).

The bwrap view of the file system is built from an allow-list, never ``--ro-bind / /``: with the
host root visible, agent code could read any task's ``prepared/private/answers.csv`` by absolute
path. Only system directories, the interpreter prefix and the virtual environment are bound
read-only; the sandbox's base directory (holding one directory per session) is the one writable
bind, at ``/sessions``; ``/workspace`` is the empty mount point each session binds its own
directory on; network, pid, ipc and uts namespaces are new. The mother keeps the capabilities it
needs to build each session's namespaces; agent code never runs with any.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

log = logging.getLogger(__name__)

SANDBOX_WORKDIR = "/workspace"
SANDBOX_SESSIONS = "/sessions"
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
            [path, "--ro-bind", "/", "/", *_unshare_flags(), "--cap-add", "ALL", "--die-with-parent", "true"],
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


def _unshare_flags() -> list[str]:
    # A host root keeps real uids (no user namespace) so that each session can run as its own
    # uid; an unprivileged host gets a user namespace, in which the mother holds the
    # capabilities to mount (bwrap drops them all unless told otherwise).
    if os.geteuid() == 0:
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    return ["--unshare-all"]


def bwrap_argv(bwrap: str, sessions_dir: Path) -> list[str]:
    """bwrap arguments that show the mother only what Python needs plus the sessions' directory."""
    # --die-with-parent ties bwrap's life to the *thread* that starts it: pool.py starts every
    # mother from one thread that lives as long as the host process (see pool._Spawner), so a
    # kill -9 of the host ends the sandbox at once (its sessions die with the mother).
    argv = [bwrap, *_unshare_flags(), "--cap-add", "ALL", "--new-session", "--die-with-parent",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--clearenv"]
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in _ETC_FILES:
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    made: set[str] = set()
    for root in python_roots():
        # bwrap makes missing parents 0700; agent code runs as another uid and must traverse them.
        for parent in reversed(Path(root).parents[:-1]):
            if str(parent) not in made and not str(parent).startswith(_SYSTEM_DIRS):
                made.add(str(parent))
                argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", root, root]
    argv += ["--bind", str(sessions_dir), SANDBOX_SESSIONS, "--dir", SANDBOX_WORKDIR,
             "--chdir", SANDBOX_SESSIONS]
    return argv
