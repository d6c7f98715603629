"""Battery checks of the resource limits agent code tried to get around (issue 26): folders
nested past the host's recursion and path limits, disk space held by unlinked files, memory
spread over many forked processes, a CPU-time kill reported as such, and the kernel surface
(user namespaces, the keyring, mount, ptrace) closed to agent code.

Registered by importing this module (``sandboxes/conformance.py`` does, last).
"""

from __future__ import annotations

from sandmle.core.interfaces import Sandbox
from sandmle.core.task import Task
from sandmle.core.testing import check

from .conformance import _assert_healthy, _assert_no_leak, _removed_soon, _session, _text

# 2,500 levels: past Python's recursion limit (1,000) and, with 2-byte names, past PATH_MAX.
_NEST = ("import os\nfor _ in range(2500):\n  os.mkdir('nest')\n  os.chdir('nest')\n"
         "open('deep.txt', 'w').write('bottom')\nprint('nested')")


@check("sandboxes")
async def deep_nesting(sandbox: Sandbox, task: Task) -> None:
    """Folders nested 2,500 deep neither crash list_files nor close(), and are removed."""
    session = await sandbox.open(task)
    workdir = session.workdir
    try:
        r = await session.exec(_NEST, timeout=120)
        assert r.ok and "nested" in r.stdout_tail, f"nesting step failed: {r}"
        files = await session.list_files()
        deep = [f for f in files if f.endswith("/deep.txt")]
        assert deep and deep[0].count("nest/") == 2500, f"deep file not listed: {files[:5]}"
        await _assert_healthy(session)
    finally:
        await session.close()
    assert await _removed_soon(workdir), f"session directory left behind: {workdir}"


# Each attempt prints "<name> ok" only when the kernel let it through.
_KERNEL_SURFACE = r"""
import ctypes, os, platform, subprocess
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": {"add_key": 248, "keyctl": 250, "bpf": 321},
      "aarch64": {"add_key": 217, "keyctl": 219, "bpf": 280}}[platform.machine()]
def attempt(name, fn):
    try:
        print(name, "ok" if fn() == 0 else "denied", flush=True)
    except Exception as e:
        print(name, "denied", e, flush=True)
attempt("unshare_user", lambda: libc.unshare(0x10000000))
attempt("unshare_mount", lambda: libc.unshare(0x00020000))
attempt("unshare_net", lambda: libc.unshare(0x40000000))
attempt("add_key", lambda: 0 if libc.syscall(nr["add_key"], b"user", b"sandmle-key", b"v", 1, -4 & 0xffffffff) > 0 else 1)
attempt("keyctl_join", lambda: 0 if libc.syscall(nr["keyctl"], 1, b"sandmle-ring") > 0 else 1)
attempt("mount_tmpfs", lambda: libc.mount(b"none", b"/workspace", b"tmpfs", 0, None))
attempt("bpf_map", lambda: 0 if libc.syscall(nr["bpf"], 0, 0, 0) >= 0 else 1)
for argv in (["unshare", "-U", "-r", "true"], ["unshare", "-U", "true"]):
    try:
        attempt(" ".join(argv[:2]).replace(" ", "_"), lambda: subprocess.run(argv, capture_output=True).returncode)
    except FileNotFoundError:
        pass
"""


@check("sandboxes")
async def kernel_surface(sandbox: Sandbox, task: Task) -> None:
    """No user (or any other) namespace, kernel key, mount or BPF object for agent code."""
    async with _session(sandbox, task) as s:
        r = await s.exec(_KERNEL_SURFACE, timeout=60)
        _assert_no_leak(task, _text(r))
        lines = [ln for ln in r.stdout_tail.splitlines() if ln.strip()]
        assert len(lines) >= 7, f"probe did not run: {r}"
        allowed = [ln for ln in lines if ln.split()[1:2] == ["ok"]]
        assert not allowed, f"kernel interfaces open to agent code: {allowed}"
        await _assert_healthy(s)


# Eight children each touch 400 MiB and hold it; the parent prints how many held theirs at
# once (a child that said "holding" and is not dead yet), each time that number changes.
_FORK_MEMORY = r"""
import os, select, sys, time
r, w = os.pipe()
kids = {}
for i in range(8):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        block = bytearray(400 * 1024 * 1024)
        for j in range(0, len(block), 4096):
            block[j] = 1
        os.write(w, bytes([i]))
        time.sleep(4)
        os._exit(0)
    kids[i] = pid
os.close(w)
holding, dead, most, deadline = set(), set(), 0, time.time() + 20
while time.time() < deadline and len(holding | dead) < 8:
    if select.select([r], [], [], 0.02)[0]:
        data = os.read(r, 8)
        if not data:
            break
        holding |= set(data)
    for i in list(holding):
        if os.waitpid(kids[i], os.WNOHANG)[0]:
            holding.discard(i)
            dead.add(i)
    if len(holding) > most:
        most = len(holding)
        print("holding", most, flush=True)
print("max", most, flush=True)
"""


@check("sandboxes")
async def fork_memory(sandbox: Sandbox, task: Task) -> None:
    """Eight forked children of 400 MiB each never hold more than the session's memory cap at
    once: the cap covers all of a session's processes together, enforced as they allocate."""
    cap_mb = getattr(getattr(sandbox, "config", None), "memory_mb", None)
    async with _session(sandbox, task) as s:
        r = await s.exec(_FORK_MEMORY, timeout=90)
        _assert_no_leak(task, _text(r))
        counts = [int(ln.split()[1]) for ln in r.stdout_tail.splitlines() if ln.startswith(("holding", "max"))]
        most = max(counts, default=0)
        assert most < 8, f"8 x 400 MiB held at once: {r}"
        if cap_mb:
            assert most * 400 <= cap_mb, f"{most} x 400 MiB held at once past memory_mb={cap_mb}: {r}"
        await _assert_healthy(s)


# Writes 64 MiB files, unlinks each at once and keeps it open: a folder scan finds nothing.
_UNLINKED = r"""
import os
held, written, block = [], 0, b"u" * (1 << 20)
try:
    while written < {target}:
        fd = os.open("hidden-%d" % len(held), os.O_CREAT | os.O_WRONLY)
        os.unlink("hidden-%d" % len(held))
        held.append(fd)
        for _ in range(64):
            os.write(fd, block)
            written += 1
        print("wrote", written, flush=True)
except OSError as e:
    print("stopped", written, e, flush=True)
"""


@check("sandboxes")
async def unlinked_files_count_against_disk(sandbox: Sandbox, task: Task) -> None:
    """Space held by files agent code unlinked but keeps open counts against the disk cap
    (a stateful session keeps them across steps where the sandbox has one)."""
    cap_mb = getattr(getattr(sandbox, "config", None), "disk_limit_mb", None) or 2048
    code = _UNLINKED.replace("{target}", str(cap_mb + 256))
    try:
        session = await sandbox.open(task, stateful=True)
    except NotImplementedError:
        session = await sandbox.open(task)
    try:
        r = await session.exec(code, timeout=120)
        _assert_no_leak(task, _text(r))
        counts = [int(ln.split()[1]) for ln in r.stdout_tail.splitlines() if ln.startswith(("wrote", "stopped"))]
        assert max(counts, default=0) <= cap_mb + 64, f"wrote {max(counts)} MiB past disk_limit_mb={cap_mb}: {r}"
        await _assert_healthy(session)
    finally:
        await session.close()


__all__ = ["deep_nesting", "kernel_surface", "fork_memory", "unlinked_files_count_against_disk"]
