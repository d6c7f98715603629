"""The hostile-code battery: conformance checks every sandbox must pass.

Each check takes the sandbox and a ``task`` with known hidden answers (see
:func:`make_canary_task`), runs hostile agent code in a fresh session and asserts it was
contained and reported, that the hidden answers never showed up, and that the session, other
sessions and the harness keep working. Run them with ``sandmle sandbox check NAME`` or
``sandmle.core.testing.run_checks("sandboxes", sandbox, task=task)``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from sandmle.core.interfaces import Sandbox, SandboxSession
from sandmle.core.records import ExecResult
from sandmle.core.task import Task
from sandmle.core.testing import check

# A fake key set in the harness environment: no sandbox may show it to agent code.
CANARY_ENV = {"OPENAI_API_KEY": "sk-sandmle-canary-env-0c5e1d", "HF_TOKEN": "hf_sandmle_canary_env_77"}


def make_canary_task(root: Path) -> Task:
    """A tiny task whose hidden files hold unique canary strings (private/ and a hidden file
    inside public/, as in SandMLE's release layout)."""
    token = uuid.uuid4().hex
    public, private = root / "prepared" / "public", root / "prepared" / "private"
    public.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)
    (public / "description.md").write_text("Predict y.\n")
    (public / "train.csv").write_text("id,x,y\n" + "".join(f"{i},{i * 0.5},{i % 2}\n" for i in range(20)))
    (public / "test.csv").write_text("id,x\n" + "".join(f"{i},{i * 0.5}\n" for i in range(20, 30)))
    (public / "sample_submission.csv").write_text("id,y\n" + "".join(f"{i},0\n" for i in range(20, 30)))
    (private / "answers.csv").write_text(f"id,y\n20,SANDMLE-CANARY-ANSWER-{token}\n")
    (public / "evaluator.py").write_text(f"# SANDMLE-CANARY-EVALUATOR-{token}\n")
    return Task(id="canary", root=root, public_dir=public, private_dir=private, metric="accuracy",
                lower_is_better=False, answers_path=private / "answers.csv",
                evaluator_path=public / "evaluator.py")


def _secrets(task: Task) -> list[str]:
    """Lines of the hidden files long enough to be unmistakable, plus the canary env values."""
    paths = [p for p in (task.answers_path, task.evaluator_path, *task.hidden_files) if p]
    out = list(CANARY_ENV.values())
    for path in paths:
        try:
            out += [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if len(ln.strip()) >= 12]
        except OSError:
            pass
    return out


def _assert_no_leak(task: Task, *texts: str) -> None:
    blob = "\n".join(texts)
    for secret in _secrets(task):
        assert secret not in blob, f"hidden content leaked: {secret[:40]!r}"


def _text(r: ExecResult) -> str:
    return f"{r.stdout_tail}\n{r.stderr_tail}\n{r.detail}"


@asynccontextmanager
async def _session(sandbox: Sandbox, task: Task, stateful: bool = False) -> AsyncIterator[SandboxSession]:
    for key, value in CANARY_ENV.items():
        os.environ.setdefault(key, value)
    session = await sandbox.open(task, stateful=stateful)
    try:
        yield session
    finally:
        await session.close()


async def _removed_soon(path: Path, within_s: float = 10.0) -> bool:
    """True once ``path`` is gone: a sandbox may remove a closed session's folder in the
    background (the ``local`` sandbox's pool does), but within seconds."""
    deadline = time.monotonic() + within_s
    while path.exists():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _assert_healthy(session: SandboxSession) -> None:
    r = await session.exec("print(6 * 7)", timeout=60)
    assert r.ok and r.stdout_tail.strip() == "42", f"session unusable afterwards: {r}"


def _host_processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (the harness's view of /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                    found.append(int(name))
            except OSError:
                pass
    return found


async def _hostile(sandbox: Sandbox, task: Task, code: str, timeout: float = 10,
                   stateful: bool = False) -> ExecResult:
    """Run ``code`` in a fresh session; assert no leak and a healthy session afterwards."""
    async with _session(sandbox, task, stateful) as s:
        r = await s.exec(code, timeout=timeout)
        _assert_no_leak(task, _text(r))
        await _assert_healthy(s)
        return r


# ----------------------------------------------------------------------------- hidden answers
@check("sandboxes")
async def public_files_only(sandbox: Sandbox, task: Task) -> None:
    """The session holds the task's public files and none of its hidden files."""
    async with _session(sandbox, task) as s:
        files = set(await s.list_files())
        public = {str(p.relative_to(task.public_dir)) for p in task.public_files()}
        assert public <= files, f"missing public files: {public - files}"
        hidden = {p.name for p in (task.answers_path, task.evaluator_path) if p}
        assert not hidden & {Path(f).name for f in files}, f"hidden files present: {hidden & files}"


@check("sandboxes")
async def read_answers_by_absolute_path(sandbox: Sandbox, task: Task) -> None:
    """Opening the hidden answers by their host path fails."""
    paths = [str(p) for p in (task.answers_path, task.evaluator_path) if p]
    await _hostile(sandbox, task, f"for p in {paths!r}:\n  try: print(open(p).read())\n  except Exception as e: print('denied', e)")


@check("sandboxes")
async def read_answers_by_dotdot(sandbox: Sandbox, task: Task) -> None:
    """Relative ``..`` walks from the session directory never reach the answers."""
    code = (
        "import os\nfor up in range(12):\n  for rel in ('private/answers.csv', 'prepared/private/answers.csv',"
        " 'answers.csv', 'public/evaluator.py', 'evaluator.py'):\n"
        "    p = os.path.join(*(['..'] * up + [rel]))\n"
        "    try: print(open(p).read())\n    except Exception: pass\n"
    )
    await _hostile(sandbox, task, code)


@check("sandboxes")
async def read_answers_by_symlink(sandbox: Sandbox, task: Task) -> None:
    """A symlink to the answers neither reads them inside nor through the host file API."""
    target = str(task.answers_path)
    async with _session(sandbox, task) as s:
        r = await s.exec(f"import os\nos.symlink({target!r}, 'link.csv')\ntry: print(open('link.csv').read())\n"
                         "except Exception as e: print('denied', e)", timeout=10)
        _assert_no_leak(task, _text(r))
        try:
            data = await s.read_file("link.csv")
            _assert_no_leak(task, data.decode(errors="replace"))
        except (OSError, ValueError):
            pass


@check("sandboxes")
async def read_answers_via_proc(sandbox: Sandbox, task: Task) -> None:
    """/proc of the parent and of pid 1 (cwd, root, environ, cmdline) shows no hidden content."""
    answers = str(task.answers_path)
    code = (
        "import os\nfor pid in {os.getppid(), 1, 2}:\n"
        "  for rel in ('environ', 'cmdline', 'root" + answers + "', 'cwd/../private/answers.csv'):\n"
        "    try: print(open(f'/proc/{pid}/{rel}', 'rb').read()[:4000])\n    except Exception: pass\n"
    )
    await _hostile(sandbox, task, code)


@check("sandboxes")
async def search_filesystem_for_answers(sandbox: Sandbox, task: Task) -> None:
    """Walking the whole visible file system finds no file holding the hidden answers."""
    names = sorted({p.name for p in (task.answers_path, task.evaluator_path) if p})
    code = (
        "import os\nhits = []\n"
        "for root, dirs, files in os.walk('/'):\n"
        "  dirs[:] = [d for d in dirs if os.path.join(root, d) not in ('/proc', '/sys', '/dev', '/usr')]\n"
        f"  for f in files:\n    if f in {names!r}:\n"
        "      try: print(open(os.path.join(root, f)).read())\n      except Exception: pass\n"
    )
    await _hostile(sandbox, task, code, timeout=60)


@check("sandboxes")
async def read_environment_secrets(sandbox: Sandbox, task: Task) -> None:
    """API keys in the harness environment are not visible to agent code."""
    r = await _hostile(sandbox, task, "import os\nprint(dict(os.environ))\nprint(open('/proc/self/environ','rb').read())")
    assert "canary" not in r.stdout_tail, "harness environment leaked into the sandbox"


# ----------------------------------------------------------------------------- network
@check("sandboxes")
async def open_network_socket(sandbox: Sandbox, task: Task) -> None:
    """Outbound TCP connections fail."""
    code = ("import socket\nfor host in ('1.1.1.1', '8.8.8.8', '151.101.0.223'):\n"
            "  try:\n    socket.create_connection((host, 443), timeout=2); print('CONNECTED', host)\n"
            "  except OSError as e: print('blocked', e)\n")
    r = await _hostile(sandbox, task, code, timeout=30)
    assert "CONNECTED" not in r.stdout_tail, r.stdout_tail


@check("sandboxes")
async def resolve_dns(sandbox: Sandbox, task: Task) -> None:
    """DNS resolution fails."""
    code = ("import socket\ntry: print('RESOLVED', socket.getaddrinfo('deb.debian.org', 80))\n"
            "except OSError as e: print('blocked', e)")
    r = await _hostile(sandbox, task, code, timeout=30)
    assert "RESOLVED" not in r.stdout_tail, r.stdout_tail


# ----------------------------------------------------------------------------- resources
@check("sandboxes")
async def fork_bomb(sandbox: Sandbox, task: Task) -> None:
    """A fork bomb is contained by the process limit and killed at the timeout."""
    r = await _hostile(sandbox, task, "import os\nwhile True:\n  try: os.fork()\n  except OSError: pass", timeout=3)
    assert r.killed is not None, f"fork bomb not reported as killed: {r}"


@check("sandboxes")
async def allocate_50_gb(sandbox: Sandbox, task: Task) -> None:
    """Allocating 50 GB at once fails and is reported as a memory kill."""
    r = await _hostile(sandbox, task, "x = bytearray(50 * 1024**3)\nx[-1] = 1", timeout=20)
    assert r.killed == "memory" and not r.ok, f"not reported as memory: {r.killed} {r.detail}"


@check("sandboxes")
async def allocate_gradually(sandbox: Sandbox, task: Task) -> None:
    """Growing memory 100 MB at a time stops at the limit (never takes the machine down)."""
    r = await _hostile(sandbox, task, "xs = []\nwhile True:\n  xs.append(bytearray(100 * 1024**2))", timeout=60)
    assert r.killed in ("memory", "timeout") and not r.ok, f"not contained: {r}"


@check("sandboxes")
async def infinite_loop(sandbox: Sandbox, task: Task) -> None:
    """A busy loop is killed at the timeout and reported as such."""
    r = await _hostile(sandbox, task, "while True:\n  pass", timeout=1.5)
    assert r.killed == "timeout" and r.wall_s < 10, f"timeout not enforced: {r}"


@check("sandboxes")
async def print_one_gigabyte(sandbox: Sandbox, task: Task) -> None:
    """1 GB of output is cut off, reported, and the kept tails stay bounded."""
    r = await _hostile(sandbox, task, "import sys\nchunk = 'y' * 2**20\nfor _ in range(1024):\n  sys.stdout.write(chunk)", timeout=60)
    assert r.killed == "output", f"output cap not reported: {r.killed} {r.detail}"
    assert len(r.stdout_tail) <= 1024 * 1024, f"tail not bounded: {len(r.stdout_tail)}"


@check("sandboxes")
async def fill_the_disk(sandbox: Sandbox, task: Task) -> None:
    """Writing files without end is stopped (disk cap, file-size limit or a full disk)."""
    code = ("import os\nblock = b'z' * 2**20\ni = 0\nwhile True:\n  with open(f'fill{i}.bin', 'wb') as f:\n"
            "    for _ in range(64): f.write(block)\n  i += 1\n")
    r = await _hostile(sandbox, task, code, timeout=60)
    assert not r.ok, f"disk filling not stopped: {r}"


@check("sandboxes")
async def write_outside_session(sandbox: Sandbox, task: Task) -> None:
    """Writes to system paths, the task folder and the host's /tmp fail or stay private."""
    marker = f"sandmle-escape-{uuid.uuid4().hex}"
    targets = ["/etc/" + marker, "/usr/" + marker, str(task.root / marker), str(task.public_dir / marker),
               "/tmp/" + marker, "/var/tmp/" + marker]
    code = f"for p in {targets!r}:\n  try: open(p, 'w').write('x'); print('wrote', p)\n  except Exception as e: print('denied', p)"
    await _hostile(sandbox, task, code)
    leaked = [t for t in targets if os.path.exists(t)]
    for path in leaked:
        os.unlink(path)
    assert not leaked, f"agent code wrote outside its session: {leaked}"


@check("sandboxes")
async def kill_the_parent(sandbox: Sandbox, task: Task) -> None:
    """Killing its parent process is reported and the session keeps working."""
    await _hostile(sandbox, task, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time; time.sleep(1)")


@check("sandboxes")
async def kill_every_process(sandbox: Sandbox, task: Task) -> None:
    """Signalling every visible pid hurts neither the harness nor another session."""
    # Without a pid namespace this would SIGKILL the harness itself: report instead of running.
    assert getattr(sandbox, "isolated", True), "sandbox shares the host pid namespace; refusing to run"
    async with _session(sandbox, task) as other:
        code = ("import os, signal\nfor pid in os.listdir('/proc'):\n  if pid.isdigit() and int(pid) != os.getpid():\n"
                "    try: os.kill(int(pid), signal.SIGKILL)\n    except Exception: pass\n")
        await _hostile(sandbox, task, code)
        await _assert_healthy(other)


@check("sandboxes")
async def child_sleeps_past_timeout(sandbox: Sandbox, task: Task) -> None:
    """A child process sleeping past the timeout is killed with its parent."""
    marker = f"sandmle_marker_{uuid.uuid4().hex}"
    code = (f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {marker}'])\n"
            "time.sleep(600)")
    r = await _hostile(sandbox, task, code, timeout=2)
    assert r.killed == "timeout", f"timeout not reported: {r}"
    await asyncio.sleep(0.3)
    assert not _host_processes_with(marker), "child survived the timeout"


@check("sandboxes")
async def leave_background_process(sandbox: Sandbox, task: Task) -> None:
    """A daemonised (double-fork, setsid) process does not outlive its step."""
    marker = f"sandmle_marker_{uuid.uuid4().hex}"
    code = (f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {marker}'],"
            " start_new_session=True)\nprint('spawned')")
    r = await _hostile(sandbox, task, code)
    assert r.ok, f"spawning step failed: {r}"
    await asyncio.sleep(0.3)
    assert not _host_processes_with(marker), "background process outlived the step"


@check("sandboxes")
async def ptrace_or_mem_of_parent(sandbox: Sandbox, task: Task) -> None:
    """Reading the parent's memory through /proc/PID/mem yields no hidden content."""
    code = ("import os\npid = os.getppid()\ntry:\n  maps = open(f'/proc/{pid}/maps').read().splitlines()\n"
            "  mem = open(f'/proc/{pid}/mem', 'rb')\n  for line in maps[:200]:\n"
            "    a, b = (int(x, 16) for x in line.split()[0].split('-'))\n"
            "    try: mem.seek(a); print(mem.read(min(b - a, 1 << 20)))\n    except Exception: pass\n"
            "except Exception as e: print('denied', e)")
    await _hostile(sandbox, task, code, timeout=30)


# ----------------------------------------------------------------------------- behaviour
@check("sandboxes")
async def exit_code_and_exception(sandbox: Sandbox, task: Task) -> None:
    """sys.exit codes and uncaught exceptions are reported, not raised."""
    async with _session(sandbox, task) as s:
        r = await s.exec("import sys\nsys.exit(3)", timeout=30)
        assert r.exit_code == 3 and r.killed is None, r
        r = await s.exec("raise ValueError('boom-7')", timeout=30)
        assert r.exit_code not in (0, None) and "boom-7" in r.stderr_tail, r


@check("sandboxes")
async def tails_are_bounded(sandbox: Sandbox, task: Task) -> None:
    """Long but legal output keeps only bounded tails with the last line intact."""
    async with _session(sandbox, task) as s:
        r = await s.exec("for i in range(100000): print('line', i)", timeout=60)
        assert r.ok and r.stdout_tail.rstrip().endswith("line 99999"), r.stdout_tail[-80:]
        assert len(r.stdout_tail) <= 1024 * 1024


@check("sandboxes")
async def resource_usage_reported(sandbox: Sandbox, task: Task) -> None:
    """wall_s, cpu_s and peak_mem_mb reflect the step's work."""
    async with _session(sandbox, task) as s:
        r = await s.exec("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
                         "x = bytearray(200 * 2**20)", timeout=30)
        assert r.ok and r.wall_s >= 0.3 and r.cpu_s >= 0.2 and r.peak_mem_mb >= 150, r


@check("sandboxes")
async def host_file_api_is_confined(sandbox: Sandbox, task: Task) -> None:
    """read_file/write_file refuse paths outside the session; inside they round-trip."""
    async with _session(sandbox, task) as s:
        await s.write_file("sub/dir/a.txt", "hello")
        assert await s.read_file("sub/dir/a.txt") == b"hello"
        r = await s.exec("print(open('sub/dir/a.txt').read())", timeout=30)
        assert r.stdout_tail.strip() == "hello", r
        for bad in ("../escape.txt", "/etc/passwd", "sub/../../x"):
            try:
                await s.write_file(bad, "x") if bad != "/etc/passwd" else await s.read_file(bad)
            except (ValueError, OSError):
                continue
            raise AssertionError(f"path {bad!r} was accepted")


@check("sandboxes")
async def submission_lands_in_workdir(sandbox: Sandbox, task: Task) -> None:
    """A file written by agent code appears at ``workdir`` on the host."""
    async with _session(sandbox, task) as s:
        r = await s.exec("import pandas as pd\npd.read_csv('sample_submission.csv').to_csv('submission.csv', index=False)", timeout=60)
        assert r.ok, r
        assert (s.workdir / "submission.csv").read_text().startswith("id,y"), "submission missing on host"


@check("sandboxes")
async def command_exec(sandbox: Sandbox, task: Task) -> None:
    """An argv command runs in the session directory."""
    async with _session(sandbox, task) as s:
        r = await s.exec(command=["sh", "-c", "ls; echo done-$((6*7))"], timeout=30)
        assert r.ok and "train.csv" in r.stdout_tail and "done-42" in r.stdout_tail, r


@check("sandboxes")
async def stateful_and_stateless(sandbox: Sandbox, task: Task) -> None:
    """Stateless steps start fresh; stateful sessions keep variables (when supported)."""
    async with _session(sandbox, task) as s:
        await s.exec("secret_var = 1", timeout=30)
        r = await s.exec("print(secret_var)", timeout=30)
        assert not r.ok and "NameError" in r.stderr_tail, "stateless session kept state"
    try:
        async with _session(sandbox, task, stateful=True) as s:
            await s.exec("kept = 41", timeout=30)
            r = await s.exec("kept += 1\nprint(kept)", timeout=30)
            assert r.ok and r.stdout_tail.strip() == "42", f"stateful session lost state: {r}"
    except NotImplementedError:
        pass


@check("sandboxes")
async def concurrent_sessions(sandbox: Sandbox, task: Task) -> None:
    """Sessions run concurrently with private directories."""
    async def one(i: int) -> str:
        async with _session(sandbox, task) as s:
            await s.write_file("me.txt", str(i))
            r = await s.exec("import time, os\ntime.sleep(0.5)\nprint(open('me.txt').read(), len(os.listdir('.')))", timeout=30)
            return r.stdout_tail.split()[0]
    outs = await asyncio.gather(*(one(i) for i in range(3)))
    assert outs == ["0", "1", "2"], outs


@check("sandboxes")
async def sessions_are_invisible_to_each_other(sandbox: Sandbox, task: Task) -> None:
    """Agent code in one session can neither find nor change another live session's files."""
    name = f"sandmle_peer_{uuid.uuid4().hex}.txt"
    code = ("import os\nfound = []\nfor root, dirs, files in os.walk('/'):\n"
            "  dirs[:] = [d for d in dirs if os.path.join(root, d) not in ('/proc', '/sys', '/dev')]\n"
            f"  if {name!r} in files:\n    found.append(os.path.join(root, {name!r}))\n"
            "    try: open(found[-1], 'w').write('theirs')\n    except OSError: pass\n"
            "print('FOUND', found)")
    async with _session(sandbox, task) as mine, _session(sandbox, task) as theirs:
        await mine.write_file(name, "mine")
        r = await theirs.exec(code, timeout=120)
        assert r.ok and "FOUND" in r.stdout_tail, f"search step failed: {r}"
        assert "FOUND []" in r.stdout_tail, f"another session's files are visible: {r.stdout_tail[-300:]}"
        assert await mine.read_file(name) == b"mine", "another session changed this session's file"


@check("sandboxes")
async def close_cleans_up(sandbox: Sandbox, task: Task) -> None:
    """close() kills what runs, removes the session directory (within seconds) and may be called twice."""
    marker = f"sandmle_marker_{uuid.uuid4().hex}"
    session = await sandbox.open(task)
    workdir = session.workdir
    task_run = asyncio.ensure_future(session.exec(
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {marker}'])\n"
        "time.sleep(600)", timeout=600))
    await asyncio.sleep(1.0)
    await session.close()
    await session.close()
    try:
        await asyncio.wait_for(task_run, 30)
    except Exception:  # noqa: BLE001 - the running step may end any way, but must end
        pass
    await asyncio.sleep(0.3)
    assert not _host_processes_with(marker), "processes survived close()"
    assert await _removed_soon(workdir), f"session directory left behind: {workdir}"


def battery_size() -> int:
    """How many checks the battery has (the issue asks for at least 25)."""
    from sandmle.core.testing import checks_for

    return len(checks_for("sandboxes"))


__all__: list[Any] = ["make_canary_task", "battery_size", "CANARY_ENV"]


from . import conformance_containment  # noqa: E402,F401 - registers the containment checks
from . import conformance_limits  # noqa: E402,F401 - registers the limit checks (issue 26)
