"""Host side of the warm pool: zygote processes started ahead of need, one per future session.

A zygote is ``python -c <zygote_main.py>`` inside its own bwrap (or plain, when isolation is
off), with a fresh empty host directory bound as its working directory. Starting one costs the
interpreter start plus the preload imports (~1 s for pandas + sklearn); the pool pays that in a
background thread so ``Sandbox.open`` only copies the task's public files into an already
running zygote's directory. All calls are blocking and thread-safe; the async sessions wrap
them with ``asyncio.to_thread`` so one pool serves any number of event loops.
"""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .isolation import SANDBOX_WORKDIR, PidsCgroup, bwrap_argv, scrubbed_env

log = logging.getLogger(__name__)
_ZYGOTE_SOURCE = (Path(__file__).parent / "zygote_main.py").read_text(encoding="utf-8")


class ZygoteError(RuntimeError):
    """The zygote died or stopped answering (the session restarts it)."""


class ZygoteSpec:
    """Everything needed to start identical zygotes."""

    def __init__(self, *, bwrap: str | None, preload: list[str], limits: dict[str, Any],
                 output_limit_bytes: int, tail_bytes: int, disk_limit_mb: int, max_procs: int,
                 base_dir: Path, startup_timeout_s: float = 120.0):
        self.bwrap, self.preload, self.limits = bwrap, preload, limits
        self.output_limit_bytes, self.tail_bytes = output_limit_bytes, tail_bytes
        self.disk_limit_mb, self.max_procs = disk_limit_mb, max_procs
        self.base_dir, self.startup_timeout_s = base_dir, startup_timeout_s


class Zygote:
    """One running zygote and its host directory."""

    def __init__(self, spec: ZygoteSpec, host_dir: Path | None = None):
        self.spec = spec
        # A restarted zygote reuses its session's directory (the files survive the restart).
        self.host_dir = host_dir or Path(tempfile.mkdtemp(prefix="session-", dir=spec.base_dir))
        os.chmod(self.host_dir, 0o777)  # the sandbox may run as an unmapped uid
        inner = SANDBOX_WORKDIR if spec.bwrap else str(self.host_dir)
        self.env = scrubbed_env(inner)
        cfg = {"workdir": inner, "limits": spec.limits, "preload": spec.preload,
               "output_limit_bytes": spec.output_limit_bytes, "tail_bytes": spec.tail_bytes,
               "disk_limit_mb": spec.disk_limit_mb}
        python = [sys.executable, "-c", _ZYGOTE_SOURCE, json.dumps(cfg)]
        if spec.bwrap:
            argv = bwrap_argv(spec.bwrap, self.host_dir)
            for key, value in self.env.items():
                argv += ["--setenv", key, value]
            argv += python
        else:
            argv = python
        # A few extra pids for bwrap's init and the zygote itself.
        self.cgroup = PidsCgroup(spec.max_procs + 8)
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
            stderr=open(spec.base_dir / f"{self.host_dir.name}.log", "wb"),
            cwd=self.host_dir, env=self.env, start_new_session=True,
            preexec_fn=self.cgroup.enter if self.cgroup.path else None,
        )
        self.ready_info: dict[str, Any] | None = None
        self._buf = b""

    def wait_ready(self) -> dict[str, Any]:
        """Block until the preload imports are done."""
        if self.ready_info is None:
            self.ready_info = self._read_reply(self.spec.startup_timeout_s)
            if self.ready_info.get("preload_failed"):
                log.warning("sandbox preload failed: %s", self.ready_info["preload_failed"])
        return self.ready_info

    def request(self, req: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait for its reply (``timeout`` is the host-side safety net)."""
        with self._lock:
            self.wait_ready()
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write((json.dumps(req) + "\n").encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                raise ZygoteError(f"zygote is gone: {exc}") from exc
            return self._read_reply(timeout)

    def _read_reply(self, timeout: float) -> dict[str, Any]:
        """One JSON line from the zygote, waiting at most ``timeout`` seconds (select, no thread)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0)) if remaining > 0 else ([], [], [])
            if not ready:
                self.kill()
                raise ZygoteError(f"zygote did not answer within {timeout:.0f} s")
            data = os.read(fd, 1 << 16)
            if not data:
                self.kill()
                raise ZygoteError(f"zygote exited (status {self.proc.poll()}); see {self.log_path}")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    @property
    def log_path(self) -> Path:
        return self.spec.base_dir / f"{self.host_dir.name}.log"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill the zygote's whole process group (bwrap, its pid namespace dies with it)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass

    def close(self, keep_dir: bool = False) -> None:
        """Stop the zygote and delete its directory (unless ``keep_dir``) and cgroup."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"op": "exit"}\n')  # type: ignore[union-attr]
                self.proc.stdin.flush()  # type: ignore[union-attr]
                self.proc.wait(2)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self.kill()
        if not keep_dir:
            shutil.rmtree(self.host_dir, ignore_errors=True)
        try:
            self.log_path.unlink()
        except OSError:
            pass
        for _ in range(50):
            self.cgroup.remove()
            if self.cgroup.path is None:
                break
            time.sleep(0.02)


class WarmPool:
    """Keeps ``size`` ready zygotes; ``acquire`` hands one out and starts a replacement."""

    def __init__(self, spec: ZygoteSpec, size: int):
        self.spec, self.size = spec, size
        self._ready: deque[Zygote] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._starting = 0
        self._refill()

    def _refill(self) -> None:
        with self._lock:
            missing = self.size - len(self._ready) - self._starting
            if self._closed or missing <= 0:
                return
            self._starting += missing
        for _ in range(missing):
            threading.Thread(target=self._start_one, daemon=True).start()

    def _start_one(self) -> None:
        zygote = None
        try:
            zygote = Zygote(self.spec)
            zygote.wait_ready()
        except Exception as exc:  # noqa: BLE001 - the next acquire starts one inline and raises
            log.warning("warm sandbox worker failed to start: %s", exc)
            if zygote is not None:
                zygote.close()
            zygote = None
        with self._lock:
            self._starting -= 1
            if zygote is not None and not self._closed:
                self._ready.append(zygote)
                zygote = None
        if zygote is not None:
            zygote.close()

    def acquire(self) -> Zygote:
        """A ready zygote (from the pool when one is warm, else started now)."""
        zygote = None
        with self._lock:
            while self._ready:
                candidate = self._ready.popleft()
                if candidate.alive():
                    zygote = candidate
                    break
                candidate.close()
        self._refill()
        if zygote is None:
            zygote = Zygote(self.spec)
            zygote.wait_ready()
        return zygote

    def close(self) -> None:
        with self._lock:
            self._closed = True
            ready, self._ready = list(self._ready), deque()
        for zygote in ready:
            zygote.close()
