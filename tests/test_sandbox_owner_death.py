"""A sandbox's processes (bwrap, the mother, sessions, steps) die with the process that owns
it, even from kill -9: a real owner killed while its mother still imports and while a step
runs, and a real ``sandmle rollout`` killed mid-episode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sandmle.sandboxes.isolation import bwrap_path
from sandmle.sandboxes.local import BASE_PREFIX

SANDMLE = [sys.executable, "-m", "sandmle.core.cli"]
_OWNER = """
import asyncio, sys, tempfile, pathlib
from sandmle.sandboxes.conformance import make_canary_task
from sandmle.sandboxes.local import LocalSandbox, LocalSandboxConfig

async def main():
    sb = LocalSandbox(LocalSandboxConfig(pool_size=2, preload=[]))
    if sys.argv[1] == "starting":  # killed while the mother still imports (~1 s or more)
        sb2 = LocalSandbox(LocalSandboxConfig(pool_size=2))
        print(sb.base_dir, sb2.base_dir, flush=True)
        await asyncio.sleep(600)
    task = make_canary_task(pathlib.Path(tempfile.mkdtemp()))
    s = await sb.open(task)
    step = asyncio.ensure_future(s.exec("import time\\nprint('step', flush=True)\\ntime.sleep(600)", timeout=600))
    await asyncio.sleep(1.0)
    print(sb.base_dir, flush=True)
    await step

asyncio.run(main())
"""


def _processes_naming(marker: str) -> list[str]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = Path(f"/proc/{name}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmd:
                found.append(f"{name}: {cmd[:80]!r}")
    return found


@pytest.mark.parametrize("when", ["starting", "running"])
def test_kill_9_of_the_owner_ends_every_sandbox_process(when):
    """A sandbox's bwrap and its mother, sessions and steps die with the process that owns the
    sandbox, even from kill -9 (main left 2 bwrap processes per killed `sandmle eval`)."""
    if bwrap_path() is None:
        pytest.skip("bubblewrap unavailable")
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, when], stdout=subprocess.PIPE, text=True)
    try:
        bases = owner.stdout.readline().split()
        assert bases, "the owner did not start its sandbox"
        time.sleep(0.3)
        assert _processes_naming(bases[0]), "no bwrap process names the sandbox folder"
        os.kill(owner.pid, signal.SIGKILL)  # the owner alone, not its process group
        owner.wait()
        assert not _gone_within(bases, 2.0)
    finally:
        if owner.poll() is None:
            owner.kill()



def _gone_within(folders: list[str], seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while any(map(_processes_naming, folders)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for f in folders for p in _processes_naming(f)]


def test_kill_9_of_sandmle_rollout_leaves_no_bwrap(tmp_path):
    if bwrap_path() is None:
        pytest.skip("bubblewrap unavailable")
    tasks = tmp_path / "tasks"
    subprocess.run(SANDMLE + ["generate", "--n", "1", "--seeds", "breast-cancer-binary", "--out", str(tasks)],
                   check=True, capture_output=True, timeout=300)
    task = next(tasks.glob("*/task.yaml")).parent
    proc = subprocess.Popen(SANDMLE + ["rollout", str(task), "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        folders: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            folders = [str(p) for p in Path(tempfile.gettempdir()).glob(f"{BASE_PREFIX}{proc.pid}-*")]
            if folders and any(map(_processes_naming, folders)):
                break
            time.sleep(0.05)
        assert proc.poll() is None and folders, "the rollout ended before its sandbox could be seen"
        time.sleep(1.0)  # mid-episode: the mother imports or a step runs
        os.kill(proc.pid, signal.SIGKILL)  # the owner alone, not its process group
        proc.wait()
        assert not _gone_within(folders, 2.0)
    finally:
        if proc.poll() is None:
            proc.kill()
