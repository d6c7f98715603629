"""A killed run's sandbox folder is removed when the next sandbox starts (by owner pid and start
time); folders of live owners and folders without an owner record are left alone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tree_support import nest  # tests/ is on sys.path

from sandmle.sandboxes.local import BASE_PREFIX, LocalSandbox, LocalSandboxConfig
from sandmle.sandboxes.stale import OWNER_FILE, make_owned_dir, owner_record

_HOLDER = """
import asyncio, sys, time
from sandmle.sandboxes.local import LocalSandbox, LocalSandboxConfig
sb = LocalSandbox(LocalSandboxConfig(pool_size=1, preload=[]))
print(sb.base_dir, flush=True)
time.sleep(600)
"""


def test_kill_9_leaves_a_folder_the_next_sandbox_removes():
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE, text=True)
    base = Path(holder.stdout.readline().strip())
    assert base.is_dir() and base.name.startswith(f"{BASE_PREFIX}{holder.pid}-")
    live = make_owned_dir(BASE_PREFIX)  # this process's own: alive
    legacy = Path(tempfile.mkdtemp(prefix=BASE_PREFIX))  # no record: never touched
    reused = make_owned_dir(BASE_PREFIX)  # a pid that now belongs to another process
    record = owner_record()
    (reused / OWNER_FILE).write_text(json.dumps(dict(record, start=record["start"] - 1)))
    try:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert base.is_dir(), "a kill -9 leaves the folder (the reason for this cleanup)"
        sb = LocalSandbox(LocalSandboxConfig(pool_size=0, preload=[]))
        asyncio.run(sb.shutdown())
        assert not base.exists() and not reused.exists()
        assert live.is_dir() and legacy.is_dir()
    finally:
        for path in (live, legacy, reused):
            subprocess.run(["rm", "-rf", str(path)])


def test_docker_removes_containers_and_folders_of_dead_owners():
    import pytest

    from sandmle.plugins.docker.sandbox import DEFAULT_IMAGE, DockerSandbox, DockerSandboxConfig, engine_unavailable_reason

    reason = engine_unavailable_reason(start=True)
    if reason:
        pytest.skip(f"docker engine unavailable: {reason}")
    import docker

    dead = subprocess.Popen(["true"])
    dead.wait()
    record = json.dumps(owner_record(dead.pid) | {"start": 1}, sort_keys=True)
    client = docker.from_env()
    stale = client.containers.create(DEFAULT_IMAGE, ["true"], labels={"sandmle.owner": record})
    folder = make_owned_dir("sandmle-docker-")
    (folder / OWNER_FILE).write_text(record)
    sb = DockerSandbox(DockerSandboxConfig())
    try:
        assert not folder.exists()
        assert stale.id not in {c.id for c in client.containers.list(all=True)}
    finally:
        asyncio.run(sb.shutdown())


def test_any_sandmle_process_removes_them_at_start():
    """A resumed run with nothing left to do starts no sandbox; loading the plugins is enough."""
    from sandmle.core import plugins

    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = make_owned_dir(BASE_PREFIX)
    (folder / OWNER_FILE).write_text(json.dumps(owner_record(dead.pid) | {"start": 1}))
    plugins.reset()
    plugins.get_registry()
    assert not folder.exists()


def test_a_deeply_nested_stale_folder_is_removed_and_never_blocks_a_new_sandbox():
    # On main, shutil.rmtree raised RecursionError here (ignore_errors does not cover it) and
    # every later LocalSandbox() on this TMPDIR failed.
    dead = subprocess.Popen(["true"])
    dead.wait()
    folder = make_owned_dir(BASE_PREFIX)
    (folder / OWNER_FILE).write_text(json.dumps(owner_record(dead.pid) | {"start": 1}))
    nest(folder, 2500, bottom="deep.txt", data=b"bottom")
    sb = LocalSandbox(LocalSandboxConfig(pool_size=0, preload=[]))
    asyncio.run(sb.shutdown())
    assert not folder.exists()
    assert not sb.base_dir.exists()
