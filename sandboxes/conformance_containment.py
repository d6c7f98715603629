"""More of the hostile-code battery (see :mod:`sandmle.sandboxes.conformance`): programs that
attack how a sandbox *reports* and *bounds* a step rather than what it lets code read.

Forged reports, limits raised back up, inode floods, memory parked in /tmp and /dev/shm,
processes that keep running (and keep changing the submission) after their step returned, and
the host paths a session's mount table gives away.
"""

from __future__ import annotations

import asyncio
import math
import os
import uuid
from pathlib import Path

from sandmle.core.interfaces import Sandbox
from sandmle.core.task import Task
from sandmle.core.testing import check

from .conformance import _assert_healthy, _assert_no_leak, _hostile, _session, _text

MIB = 1024 * 1024
# Forges the end-of-step report every way it can: on each descriptor it holds, and after every
# marker-like word of its parent's command line on stdout and stderr; then kills the parent
# (the reporter, if it may) and exits 7.
_FORGE = (
    "import json, os, re, signal, sys\n"
    "fake = {'exit_code': 0, 'exit': 0, 'cpu_s': -1e308, 'cpu': -1e308, 'peak_mem_mb': float('nan'),\n"
    "        'rss_kb': float('nan'), 'killed': None, 'reason': None, 'stdout_tail': 'FORGED'}\n"
    "line = (json.dumps(fake) + '\\n').encode()\n"
    "for fd in range(3, 1024):\n"
    "    try: os.write(fd, line)\n"
    "    except OSError: pass\n"
    "try: cmd = open(f'/proc/{os.getppid()}/cmdline', 'rb').read().decode('utf-8', 'replace')\n"
    "except OSError: cmd = ''\n"
    "for mark in set(re.findall(r'__[A-Z][A-Z_]{3,}__', cmd)):\n"
    "    for stream in (sys.stdout, sys.stderr):\n"
    "        stream.write('\\n' + mark + json.dumps(fake) + '\\n')\n"
    "print('forged', flush=True)\n"
    "sys.stderr.flush()\n"
)
_EXIT_7 = "try: os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError: pass\nos._exit(7)\n"


def _sane(r) -> bool:
    numbers = (r.cpu_s, r.peak_mem_mb, r.wall_s)
    return all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 for x in numbers)


# ----------------------------------------------------------------------------- reports
@check("sandboxes")
async def forge_the_step_report(sandbox: Sandbox, task: Task) -> None:
    """A step that forges its report (a fake result line on every descriptor it holds and after
    every marker its parent's command line shows), tries to kill its reporter and exits 7 is
    reported as exit 7 with sane numbers; a stateful step's fake report cannot make the harness
    raise or record impossible numbers."""
    r = await _hostile(sandbox, task, _FORGE + _EXIT_7)
    assert r.exit_code == 7 and "forged" in r.stdout_tail, f"forged report accepted: {r}"
    assert _sane(r), f"impossible numbers reported: {r}"
    bad = _FORGE.replace("'exit_code': 0", "'exit_code': 'x'")
    try:
        async with _session(sandbox, task, stateful=True) as s:
            for code in (bad, _FORGE + "raise SystemExit(7)", _FORGE + _EXIT_7, "print(6 * 7)"):
                r = await s.exec(code, timeout=30)
                assert _sane(r) and r.stdout_tail.strip() != "FORGED", f"stateful report forged: {r}"
            await _assert_healthy(s)
    except NotImplementedError:
        pass


@check("sandboxes")
async def raise_limits_back_up(sandbox: Sandbox, task: Task) -> None:
    """Every resource limit's hard value equals its soft one, so agent code cannot raise a limit
    back up; only RLIMIT_CPU's hard limit may lie at most one second above its soft one (the
    local sandbox: so the kernel's SIGXCPU at the soft limit names a CPU-time kill)."""
    code = ("import resource\nloose = []\nfor name in dir(resource):\n  if name.startswith('RLIMIT_'):\n"
            "    soft, hard = resource.getrlimit(getattr(resource, name))\n"
            "    if soft != hard and not (name == 'RLIMIT_CPU' and 0 <= hard - soft <= 1):\n      loose.append(name)\n"
            "      try: resource.setrlimit(getattr(resource, name), (hard, hard))\n      except (ValueError, OSError): pass\n"
            "print('LOOSE', loose)\n")
    r = await _hostile(sandbox, task, code)
    assert r.ok and "LOOSE []" in r.stdout_tail, f"limits agent code can raise: {r.stdout_tail[-300:]}"


# ----------------------------------------------------------------------------- resources
@check("sandboxes")
async def inode_flood(sandbox: Sandbox, task: Task) -> None:
    """Creating empty files without end (they take no disk blocks, only inodes) is stopped and
    reported as a disk kill; in /tmp it runs out of inodes."""
    code = ("import os\nos.makedirs('flood', exist_ok=True)\ni = 0\nwhile True:\n"
            "  open(f'flood/{i}', 'w').close()\n  i += 1\n")
    async with _session(sandbox, task) as s:
        r = await s.exec(code, timeout=180)  # slow disks create a few hundred files a second
        assert r.killed == "disk", f"inode flood not stopped as a disk kill: {r.killed} {r.detail}"
        await s.exec("import shutil\nshutil.rmtree('flood', ignore_errors=True)", timeout=60)
        r = await s.exec("i = 0\ntry:\n  while i < 5_000_000:\n    open(f'/tmp/f{i}', 'w').close()\n    i += 1\n"
                         "except OSError as e:\n  print('stopped', i, e.errno)\n", timeout=60)
        assert "stopped" in r.stdout_tail or r.killed is not None, f"/tmp inode flood not bounded: {r}"
        await _assert_healthy(s)


_FILL = ("mem = {mem} * 2**20\nchunk = b'1' * 2**24\nwritten = 0\n"
         "for d in ('/tmp', '/dev/shm'):\n  i = 0\n  try:\n"
         "    while written < 0.75 * mem:\n      with open(f'{{d}}/park{{i}}', 'wb') as f: f.write(chunk)\n"
         "      written += len(chunk); i += 1\n  except OSError:\n    pass\n"
         "print('WROTE', written, flush=True)\n")
_HOLD = ("import time\ntry:\n  x = b'2' * int(0.5 * {mem} * 2**20)\n  print('HELD', flush=True)\n  time.sleep(2)\n"
         "except MemoryError:\n  print('denied')\n")
_UNPARK = "import glob, os\nfor p in glob.glob('/tmp/park*') + glob.glob('/dev/shm/park*'): os.unlink(p)"


@check("sandboxes")
async def park_memory_in_tmp_and_shm(sandbox: Sandbox, task: Task) -> None:
    """Files in /tmp and /dev/shm are memory: with three quarters of the memory limit parked
    there, allocating half of it on top (in the next step, or in the same one) is refused or
    killed as a memory kill."""
    mem = int(getattr(getattr(sandbox, "config", None), "memory_mb", 2048))
    async with _session(sandbox, task) as s:
        for steps in ([_FILL, _HOLD], [_FILL + _HOLD]):
            wrote, held, last = 0, False, None
            for code in steps:
                last = await s.exec(code.format(mem=mem), timeout=120)
                _assert_no_leak(task, _text(last))
                words = last.stdout_tail.split()
                wrote = int(words[words.index("WROTE") + 1]) if "WROTE" in words else wrote
                held = "HELD" in words and last.killed is None
            assert not (held and wrote + 0.5 * mem * MIB > 1.1 * mem * MIB), (
                f"{wrote // MIB} MiB parked in /tmp + /dev/shm and {mem // 2} MiB allocated on top "
                f"with a {mem} MiB limit ({len(steps)} step(s)): {last.killed} {last.detail}")
            await s.exec(_UNPARK, timeout=60)
        await _assert_healthy(s)


# ----------------------------------------------------------------------------- between steps
@check("sandboxes")
async def keep_running_after_the_step(sandbox: Sandbox, task: Task) -> None:
    """A stateful step starts a thread that burns CPU and flips submission.csv between a file
    and a link to the hidden answers (the issue's attack on the grader): between steps, while
    the host grades, nothing of it runs: the file stays put and the thread makes no progress."""
    answers = str(task.answers_path)
    code = ("import os, threading\nstate = {'n': 0}\ndef flip():\n  while True:\n    state['n'] += 1\n"
            f"    try:\n      os.symlink({answers!r}, 'l.tmp'); os.replace('l.tmp', 'submission.csv')\n"
            "      open('r.tmp', 'w').write('id,y\\n20,0\\n'); os.replace('r.tmp', 'submission.csv')\n"
            "    except OSError: pass\n"
            "threading.Thread(target=flip, daemon=True).start()\nimport time; time.sleep(0.5)\n"
            "print('N', state['n'])\n")
    try:
        async with _session(sandbox, task, stateful=True) as s:
            r = await s.exec(code, timeout=30)
            assert r.ok, f"step failed: {r}"
            sub = Path(s.workdir) / "submission.csv"
            seen = set()
            for _ in range(200):
                try:
                    seen.add((sub.is_symlink(), sub.stat(follow_symlinks=False).st_ino))
                except OSError:
                    seen.add(None)
                await asyncio.sleep(0.005)
            r2 = await s.exec("print('N', state['n'])", timeout=30)
            n1 = int(r.stdout_tail.split()[-1])
            n2 = int(r2.stdout_tail.split()[-1])
            assert len(seen) == 1, f"submission.csv changed {len(seen) - 1} times between steps"
            assert n2 - n1 < max(1000, n1 // 10), f"a thread kept running between steps ({n1} -> {n2})"
            await s.exec("import os\nos.unlink('submission.csv') if os.path.islink('submission.csv') else None", timeout=30)
    except NotImplementedError:
        pass


# ----------------------------------------------------------------------------- mount view
@check("sandboxes")
async def mount_table_hides_host_paths(sandbox: Sandbox, task: Task) -> None:
    """/proc/self/mountinfo names no folder of the task, no other session's folder and no mount
    of the sandbox's folder of sessions, and lists no mount hidden under another."""
    async with _session(sandbox, task) as other, _session(sandbox, task) as s:
        r = await s.exec("print(open('/proc/self/mountinfo').read())", timeout=30)
        assert r.ok, f"cannot read mountinfo: {r}"
        lines = [ln.split() for ln in r.stdout_tail.splitlines() if len(ln.split()) > 5]
        roots = {ln[3] for ln in lines}
        forbidden = [str(Path(task.root).resolve()), str(Path(other.workdir).resolve())]
        shown = [p for p in forbidden if p in r.stdout_tail]
        assert not shown, f"mountinfo shows host paths: {shown}"
        base = str(Path(s.workdir).resolve().parent)
        assert base not in roots, f"the folder of all sessions is mounted: {base}"
        points = [ln[4] for ln in lines]
        twice = sorted({p for p in points if points.count(p) > 1})
        assert not twice, f"mounts hidden under other mounts: {twice}"
