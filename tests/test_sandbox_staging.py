"""Staging task files from memory (sandboxes/staging.py) and the pool's background release:
the same files as the plain copy, never a hidden one, copies the agent may change, a task
rewritten in place read afresh; a closed session's processes end at once and its clean-up is
finished before the sandbox's folder goes. Real files, real local sandbox (no fakes)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sandmle.core.task import Task
from sandmle.sandboxes.cgroups import SessionCgroups
from sandmle.sandboxes.conformance import make_canary_task
from sandmle.sandboxes.files import copy_public_files
from sandmle.sandboxes.local import LocalSandbox, LocalSandboxConfig
from sandmle.sandboxes.staging import StagingCache

from process_support import alive, descendants, process_table


@pytest.fixture
def own_sandbox():
    """A fresh local sandbox of this test's own (one warm session, nothing preloaded), shut
    down after the test."""
    sb = LocalSandbox(LocalSandboxConfig(pool_size=1, preload=[]))
    yield sb
    asyncio.run(sb.shutdown())


@pytest.fixture
def canary(tmp_path) -> Task:
    return make_canary_task(tmp_path / "task")


def _in_session(sb: LocalSandbox, task: Task, steps, stateful: bool = False):
    """What ``await steps(session)`` returns, run in a session of ``task`` closed afterwards."""
    async def go():
        async with await sb.open(task, stateful=stateful) as session:
            return await steps(session)

    return asyncio.run(go())


def _tricky_task(root: Path) -> Task:
    """The canary task plus nested media folders, a hidden file deep in public/, a link to the
    answers and a linked folder (neither may be staged)."""
    task = make_canary_task(root)
    public = task.public_dir
    for split in ("train", "test"):
        (public / split / "deep").mkdir(parents=True)
        for i in range(5):
            (public / split / f"{i}.png").write_bytes(bytes([i]) * (100 + i))
        (public / split / "deep" / "x.wav").write_bytes(b"RIFF" + b"\0" * 50)
    (public / "train" / "deep" / "secret.txt").write_text("HIDDEN-DEEP")
    (public / "answers_link.csv").symlink_to(task.private_dir / "answers.csv")
    (public / "linked_dir").symlink_to(task.private_dir, target_is_directory=True)
    return task.model_copy(update={"hidden_files": [*task.hidden_files, public / "train" / "deep" / "secret.txt"]})


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_uid)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_staged_files_equal_the_plain_copy_and_hold_nothing_hidden(tmp_path):
    task = _tricky_task(tmp_path / "task")
    owner = 4242 if os.geteuid() == 0 else None
    cache = StagingCache(1 << 20)
    copied, first, second = tmp_path / "copied", tmp_path / "first", tmp_path / "second"
    for folder in (copied, first, second):
        folder.mkdir()
    assert copy_public_files(task, copied, owner) == cache.stage(task, first, owner) == cache.stage(task, second, owner)
    assert (cache.misses, cache.hits) == (1, 1)  # the second session is written from memory
    expected = _snapshot(copied)
    assert _snapshot(first) == expected and _snapshot(second) == expected
    names = set(expected)
    assert "train/deep/x.wav" in names and "test/3.png" in names
    assert not {"evaluator.py", "train/deep/secret.txt", "answers_link.csv"} & names
    assert not any(n.startswith("linked_dir") for n in names)
    if owner is not None:  # folders too belong to the agent's uid, as with the plain copy
        assert (first / "train" / "deep").stat().st_uid == owner == (copied / "train" / "deep").stat().st_uid


def test_a_task_rewritten_in_place_is_read_afresh(tmp_path):
    task = _tricky_task(tmp_path / "task")
    cache = StagingCache(1 << 20)
    (tmp_path / "a").mkdir()
    cache.stage(task, tmp_path / "a")
    (task.public_dir / "train.csv").write_text("id,x,y\n0,1.0,1\n")
    (task.public_dir / "train" / "new.png").write_bytes(b"new")
    (tmp_path / "b").mkdir()
    cache.stage(task, tmp_path / "b")
    assert (tmp_path / "b" / "train.csv").read_text() == "id,x,y\n0,1.0,1\n"
    assert (tmp_path / "b" / "train" / "new.png").read_bytes() == b"new"
    assert cache.misses == 2


def test_the_cache_stays_under_its_cap_and_big_tasks_are_copied(tmp_path):
    small = _tricky_task(tmp_path / "small")
    big = make_canary_task(tmp_path / "big")
    (big.public_dir / "blob.bin").write_bytes(os.urandom(64 * 1024))
    cache = StagingCache(16 * 1024)
    for i, task in enumerate((small, big, small)):
        dest = tmp_path / f"out{i}"
        dest.mkdir()
        cache.stage(task, dest)
        assert _snapshot(dest) == _snapshot_of_copy(task, tmp_path / f"ref{i}")
        assert cache._bytes <= cache.max_bytes
    assert cache.hits == 1  # the small task stayed; the big one was never kept


def _snapshot_of_copy(task: Task, dest: Path) -> dict:
    dest.mkdir()
    copy_public_files(task, dest)
    return _snapshot(dest)


def test_sessions_get_their_own_writable_copies(tmp_path, own_sandbox):
    task = _tricky_task(tmp_path / "task")
    sb = own_sandbox

    async def go():
        async with await sb.open(task) as s1:
            r1 = await s1.exec("open('train.csv', 'w').write('mine')\nimport os\nos.remove('test/0.png')\n"
                               "print(sorted(os.listdir('train/deep')))", timeout=60)
        async with await sb.open(task) as s2:
            r2 = await s2.exec("import os\nprint(open('train.csv').read()[:6], os.path.exists('test/0.png'))",
                               timeout=60)
        return r1, r2

    r1, r2 = asyncio.run(go())
    assert r1.ok and r1.stdout_tail.strip() == "['x.wav']", r1  # the hidden file is not there
    assert r2.ok and r2.stdout_tail.split() == ["id,x,y", "True"], r2
    assert (task.public_dir / "test" / "0.png").exists()  # the task's own files are untouched
    assert sb.staging.hits >= 1


def test_close_removes_the_folder_and_shutdown_waits_for_the_cgroups(canary, monkeypatch):
    made: list = []  # (owner, folders) of every session cgroup made while this test runs
    create = SessionCgroups.create

    def recording_create(self):
        cgroup = create(self)
        made.append((self, list(cgroup.dirs) if cgroup is not None else []))
        return cgroup

    monkeypatch.setattr(SessionCgroups, "create", recording_create)
    sb = LocalSandbox(LocalSandboxConfig(pool_size=1, preload=[]))

    async def go():
        dirs = []
        for _ in range(4):
            s = await sb.open(canary)
            r = await s.exec("import os\nprint(os.getppid())", timeout=60)
            assert r.ok, r
            await s.close()
            assert sb.pool.settle(10) and not s.workdir.exists()  # removed in the background
            dirs.append(s.workdir)
        return dirs

    try:
        asyncio.run(go())
    finally:
        asyncio.run(sb.shutdown())
    assert not sb.base_dir.exists()
    # shutdown returned with none of this sandbox's session cgroups left (other sandboxes of
    # this test process, such as the session's warm `sandbox` fixture, keep theirs)
    mine = [path for owner, dirs in made if owner is sb.cgroups for path in dirs]
    assert sb.cgroups is None or len(mine) >= 4 * len(sb.cgroups.parents)  # the 4 sessions' at least
    left = [path for path in mine if path.exists()]
    assert not left, left
    assert sb.cgroups is None or sb.cgroups.pending_removals == 0


def _busy_session_cgroup(cgroups: SessionCgroups):
    """A real session cgroup holding a real process (a ``sleep``), so its removal must wait."""
    cgroup = cgroups.create()
    assert cgroup is not None
    sleeper = subprocess.Popen(["sleep", "60"])
    for fd in cgroup.fds:  # what a session does to itself, done here for the sleep
        os.write(fd, str(sleeper.pid).encode())
    return cgroup, list(cgroup.dirs), sleeper


def test_finished_cgroup_removals_are_not_kept_and_shutdown_waits_for_pending_ones():
    """Each busy cgroup's removal goes to the background; once they finish the owner tracks
    none of them (it once kept every removal's thread until the sandbox shut down, one per
    session of a long run), yet :meth:`wait_for_removals` still waits for one in flight."""
    cgroups = SessionCgroups(memory_mb=64, max_pids=16)
    if cgroups.version is None:
        pytest.skip(f"no session cgroup on this host ({cgroups.unavailable})")
    sessions = 20
    made = []
    for _ in range(sessions):
        cgroup, dirs, sleeper = _busy_session_cgroup(cgroups)
        cgroup.remove()  # busy: left to a background retry
        assert all(path.exists() for path in dirs)
        sleeper.kill()
        sleeper.wait()
        made.extend(dirs)
    deadline = time.monotonic() + 30  # liveness only: each retry gives up after 30 s
    while cgroups.pending_removals and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cgroups.pending_removals == 0  # after 20 sessions nothing is kept, without a shutdown
    assert not [path for path in made if path.exists()]

    cgroup, dirs, sleeper = _busy_session_cgroup(cgroups)
    cgroup.remove()
    assert cgroups.pending_removals == 1
    threading.Timer(0.3, sleeper.kill).start()  # the session finishes dying a moment later
    try:
        cgroups.wait_for_removals()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert cgroups.pending_removals == 0 and not [path for path in dirs if path.exists()]


def test_closed_sessions_processes_are_gone_before_close_returns_to_the_caller(canary, own_sandbox):
    """close() hands the clean-up to the pool but not the kill: a step's process left running
    (a daemonised sleep) is dead within the mother's reaction time, not after shutdown."""
    async def steps(s):
        return await s.exec("import subprocess\np = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"
                            "print(p.pid)", timeout=60)

    r = _in_session(own_sandbox, canary, steps)
    assert r.ok, r
    mother = own_sandbox.pool.mother().proc.pid
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _sleepers_below(mother):
        time.sleep(0.05)
    assert not _sleepers_below(mother)


def _sleepers_below(root: int) -> list[int]:
    table = process_table()
    return [pid for pid in descendants(root, table) if table[pid][1] == "sleep" and alive(pid)]


@pytest.mark.parametrize("stateful", [False, True])
def test_first_step_uses_the_worker_forked_before_ready(canary, own_sandbox, stateful):
    """The spare worker forked before a session says it is ready serves the first step, a
    stateless one or (as the kernel) a stateful one whose variables then persist."""
    async def steps(s):
        first = await s.exec("import os\nx = 41\nprint(os.getpid())", timeout=60)
        second = await s.exec("import os\nprint(os.getpid(), x + 1 if 'x' in globals() else 'none')", timeout=60)
        return first, second

    first, second = _in_session(own_sandbox, canary, steps, stateful)
    assert first.ok and second.ok, (first, second)
    pid2, value = second.stdout_tail.split()
    if stateful:
        assert (pid2, value) == (first.stdout_tail.strip(), "42")
    else:
        assert value == "none" and pid2 != first.stdout_tail.strip()


def test_a_cancelled_step_never_hands_its_reply_to_the_next_one(canary, own_sandbox):
    """A step's reply is read by the event loop; a caller cancelled mid-step leaves a thread to
    collect it, so the next step gets its own reply, not the cancelled one's."""
    async def steps(s):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(s.exec("import time\ntime.sleep(1.5)\nprint('first')", timeout=60), 0.3)
        return await s.exec("print('second')", timeout=60), await s.exec("print('third')", timeout=60)

    second, third = _in_session(own_sandbox, canary, steps)
    assert second.ok and second.stdout_tail.strip() == "second", second
    assert third.ok and third.stdout_tail.strip() == "third", third
