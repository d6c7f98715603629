"""Sandbox overhead: p50/p95 latency of a trivial step, a 200-row sklearn step, and a session start.

Compares, in one run: (a) a cold ``python script.py`` subprocess, (b) the ``local`` sandbox with
its warm pool, (c) the ``docker`` sandbox (skipped with the reason when no engine starts).
Ratios are cold p50 / mode p50 (higher is better). The ``session-start`` row times
open + one trivial step + close; its cold counterpart is a fresh interpreter importing pandas and
sklearn (what a session that starts its own isolated interpreter pays); ``local on demand``
(``pool_size: 0``) forks every session from the pre-imported mother when it is asked for;
``local limits off`` is the warm pool without seccomp, session cgroup and workspace tmpfs;
``pipe relay (floor)`` passes one byte host -> A -> B -> A -> host between three processes (a
step's hand-offs with no work): on a busy machine that is the scheduler's wake-up latency, the
floor under any trivial step.

    .venv/bin/python benchmarks/sandbox_overhead.py [--reps 30] [--sklearn-reps 10] [--think-s 0.05] [--json]
    .venv/bin/python benchmarks/sandbox_overhead.py --limits-ab [--reps 30] [--sklearn-reps 20]
    .venv/bin/python benchmarks/sandbox_overhead.py --compare REF [--rounds 3] [--reps 30] [--sklearn-reps 20]

``--compare REF`` measures only the local warm pool (trivial step; session start on the canary
task and on a task with 600 small media files) with the sandbox code of git revision REF and of
the working tree, in alternating child processes (REF's source from ``git archive``, first on
``PYTHONPATH``), ``--rounds`` times each, so both see the same load; it prints the medians of
the rounds' p50s and their ratios (REF / now: higher is better), and the CPU time a trivial step
costs (host and sandbox processes together, over at least 100 steps), which does not depend on
the load the way wall time does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandmle.sandboxes.conformance import make_canary_task

STEPS = {
    "trivial": "x = 1\n",
    # What nearly every agent script starts with; a cold process pays for it every step.
    "import-pd-skl": "import pandas, sklearn.ensemble\n",
    "sklearn-200": (
        "import numpy as np\nfrom sklearn.ensemble import RandomForestClassifier\n"
        "rng = np.random.default_rng(0)\nX = rng.normal(size=(200, 8))\ny = (X[:, 0] + X[:, 1] > 0).astype(int)\n"
        "print(RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y).score(X, y))\n"
    ),
}


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered), p95


def bench_cold(code: str, reps: int, workdir: Path, think_s: float) -> list[float]:
    script = workdir / "step.py"
    script.write_text(code)
    times = []
    for _ in range(reps):
        time.sleep(think_s)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(script)], cwd=workdir, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


async def bench_sandbox(sandbox, task, code: str, reps: int, think_s: float) -> list[float]:
    times = []
    async with await sandbox.open(task) as session:
        await session.exec(code, timeout=120)  # first step of a session is not the steady state
        for _ in range(reps):
            await asyncio.sleep(think_s)  # the LLM call that precedes every real step
            t0 = time.perf_counter()
            r = await session.exec(code, timeout=120)
            times.append(time.perf_counter() - t0)
            if not r.ok:
                raise RuntimeError(f"step failed: {r}")
    return times


SESSION_PRELUDE = "import pandas, sklearn.ensemble\n"


async def bench_session_start(sandbox, task, reps: int, think_s: float) -> list[float]:
    times = []
    for _ in range(reps):
        await asyncio.sleep(think_s)
        t0 = time.perf_counter()
        async with await sandbox.open(task) as session:
            r = await session.exec(STEPS["trivial"], timeout=120)
        times.append(time.perf_counter() - t0)
        if not r.ok:
            raise RuntimeError(f"step failed: {r}")
    return times


async def limits_ab(task, reps: int, starts: int, think_s: float) -> list[dict]:
    """The local warm pool with and without the issue-26 kernel limits, interleaved step by step
    (one of each in turn), so both see the same machine load: trivial step and session start."""
    from sandmle.sandboxes.local import LocalSandbox, LocalSandboxConfig

    configs = {"local limits on": {}, "local limits off": {"seccomp": False, "kernel_memory_cap": False,
                                                           "workspace_fs": "scan"}}
    sandboxes = {k: LocalSandbox(LocalSandboxConfig(pool_size=1, **v)) for k, v in configs.items()}
    times: dict[tuple[str, str], list[float]] = {(k, s): [] for k in configs for s in ("trivial", "session-start")}
    try:
        sessions = {k: await sb.open(task) for k, sb in sandboxes.items()}
        for session in sessions.values():
            await session.exec(STEPS["trivial"], timeout=120)
        for _ in range(reps):
            for k, session in sessions.items():
                await asyncio.sleep(think_s)
                t0 = time.perf_counter()
                r = await session.exec(STEPS["trivial"], timeout=120)
                times[(k, "trivial")].append(time.perf_counter() - t0)
                if not r.ok:
                    raise RuntimeError(f"step failed: {r}")
        for session in sessions.values():
            await session.close()
        for _ in range(starts):
            for k, sb in sandboxes.items():
                await asyncio.sleep(think_s)
                t0 = time.perf_counter()
                async with await sb.open(task) as session:
                    r = await session.exec(STEPS["trivial"], timeout=120)
                times[(k, "session-start")].append(time.perf_counter() - t0)
                if not r.ok:
                    raise RuntimeError(f"step failed: {r}")
    finally:
        for sb in sandboxes.values():
            await sb.shutdown()
    return [{"mode": k, "step": s, "times": t} for (k, s), t in times.items()]


def relay_floor(reps: int, think_s: float) -> list[float]:
    """Round trips of one byte host -> A -> B -> A -> host through pipes between three
    processes: the hand-offs of a sandbox step (request, worker runs, worker stops, reply)
    with no work at all. On a busy machine its p50 is the scheduler's wake-up latency, the
    floor under any trivial step."""
    import os

    pipes = [os.pipe() for _ in range(4)]  # host->A, A->host, A->B, B->A
    (h2a_r, h2a_w), (a2h_r, a2h_w), (a2b_r, a2b_w), (b2a_r, b2a_w) = pipes

    def serve(read_fd, forward, back):
        while os.read(read_fd, 1):
            if forward is not None:
                os.write(forward[1], b"x")
                os.read(forward[0], 1)
            os.write(back, b"x")
        os._exit(0)

    pids = []
    for role in ("B", "A"):
        pid = os.fork()
        if pid == 0:
            if role == "B":
                serve(a2b_r, None, b2a_w)
            serve(h2a_r, (b2a_r, a2b_w), a2h_w)
        pids.append(pid)
    times = []
    try:
        for _ in range(reps):
            time.sleep(think_s)
            t0 = time.perf_counter()
            os.write(h2a_w, b"x")
            os.read(a2h_r, 1)
            times.append(time.perf_counter() - t0)
    finally:
        import signal

        for fd in (fd for pair in pipes for fd in pair):
            os.close(fd)
        for pid in pids:  # each holds every pipe's ends, so none would see end-of-file
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return times


def make_media_task(root: Path, n_files: int = 600):
    """The canary task plus ``n_files`` small files in train/ and test/ (an image task's layout)."""
    task = make_canary_task(root)
    for i in range(n_files):
        folder = task.public_dir / ("train" if i % 2 else "test")
        folder.mkdir(exist_ok=True)
        (folder / f"{i}.png").write_bytes(bytes([i % 251]) * 8000)
    return task


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by ``root`` and every process below it, those already reaped
    included (their time is in their parent's cutime), from /proc."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            parents[int(name)] = int(fields[1])
            cpu[int(name)] = sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - tree
        tree |= frontier
    return sum(cpu.get(p, 0.0) for p in tree)


async def trivial_cpu(sandbox, task, reps: int, think_s: float) -> float:
    """CPU milliseconds per trivial step, host process and sandbox processes together: what a
    step costs whatever the machine's load (its wall time on a busy machine is that CPU time
    divided by the share of a core it gets). Clock ticks are 10 ms, hence many steps."""
    import resource

    def now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime + tree_cpu_s(sandbox.pool.mother().proc.pid)

    async with await sandbox.open(task) as session:
        await session.exec(STEPS["trivial"], timeout=120)
        await asyncio.sleep(think_s)
        before = now()
        for _ in range(reps):
            await asyncio.sleep(think_s)
            await session.exec(STEPS["trivial"], timeout=120)
        await asyncio.sleep(think_s)  # the spare forked after the last reply belongs to it
        return (now() - before) * 1000 / reps


async def quick_rows(tmpdir: Path, reps: int, starts: int, think_s: float) -> list[dict]:
    """The warm pool's trivial step and session starts (canary task; 600 media files)."""
    from sandmle.sandboxes.local import LocalSandbox, LocalSandboxConfig

    canary, media = make_canary_task(tmpdir / "canary"), make_media_task(tmpdir / "media")
    floor = relay_floor(reps, think_s)
    sandbox = LocalSandbox(LocalSandboxConfig(pool_size=1))
    try:
        rows = [{"step": "pipe relay (floor)", "times": floor},
                {"step": "trivial", "times": await bench_sandbox(sandbox, canary, STEPS["trivial"], reps, think_s)},
                {"step": "session-start", "times": await bench_session_start(sandbox, canary, starts, think_s)},
                {"step": "start 600 files", "times": await bench_session_start(sandbox, media, starts, think_s)}]
        cpu_ms = await trivial_cpu(sandbox, canary, max(reps, 100), think_s)
    finally:
        await sandbox.shutdown()
    return [{"step": r["step"], "p50_ms": round(percentiles(r["times"])[0] * 1000, 2)} for r in rows] + [
        {"step": "trivial: CPU ms/step", "p50_ms": round(cpu_ms, 2)}]


def compare(ref: str, rounds: int, reps: int, starts: int, think_s: float) -> None:
    """Alternate child processes measuring REF's sandbox and the working tree's (see --compare)."""
    import os
    import shutil

    repo = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="sandmle-overhead-ref-"))
    results: dict[str, list[list[dict]]] = {ref: [], "now": []}
    try:
        (work / "sandmle").mkdir()
        archive = subprocess.run(["git", "-C", str(repo), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work / "sandmle")], input=archive, check=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--quick", "--reps", str(reps),
               "--sklearn-reps", str(starts), "--think-s", str(think_s)]
        for _ in range(rounds):
            for label, path in ((ref, str(work)), ("now", "")):
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [path, os.environ.get("PYTHONPATH")]))}
                res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=str(work))
                if res.returncode != 0:
                    raise SystemExit(f"{label} failed: {res.stderr[-2000:]}")
                results[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'step (local warm pool)':<24}{ref + ' p50 ms':>16}{'now p50 ms':>12}{'ref/now':>9}   (median of {rounds} "
          f"alternated rounds; load average {os.getloadavg()[0]:.1f})")
    for i, row in enumerate(results["now"][0]):
        before = statistics.median(r[i]["p50_ms"] for r in results[ref])
        now = statistics.median(r[i]["p50_ms"] for r in results["now"])
        print(f"{row['step']:<24}{before:>16.1f}{now:>12.1f}{before / now:>8.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=30, help="repetitions of the trivial step")
    ap.add_argument("--sklearn-reps", type=int, default=10, help="repetitions of the sklearn step")
    ap.add_argument("--think-s", type=float, default=0.05,
                    help="idle gap before each step (an agent's LLM call); the warm pool forks the "
                         "next worker during it. The back-to-back row uses 0.")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--limits-ab", action="store_true",
                    help="only the local warm pool with and without the kernel limits (seccomp, "
                         "session cgroup, workspace tmpfs), interleaved")
    ap.add_argument("--compare", metavar="REF", help="the local warm pool of git revision REF vs the working tree")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds of --compare")
    ap.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)  # one --compare round (JSON)
    args = ap.parse_args()
    if args.compare:
        compare(args.compare, args.rounds, args.reps, args.sklearn_reps, args.think_s)
        return
    if args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(asyncio.run(quick_rows(Path(tmp), args.reps, args.sklearn_reps, args.think_s))))
        return
    if args.limits_ab:
        with tempfile.TemporaryDirectory() as tmp:
            rows = asyncio.run(limits_ab(make_canary_task(Path(tmp) / "task"), args.reps, args.sklearn_reps,
                                         args.think_s))
        off = {r["step"]: percentiles(r["times"])[0] for r in rows if r["mode"] == "local limits off"}
        print(f"{'mode':<20}{'step':<15}{'p50 ms':>9}{'p95 ms':>9}{'off/on':>9}")
        for r in rows:
            p50, p95 = percentiles(r["times"])
            print(f"{r['mode']:<20}{r['step']:<15}{p50 * 1000:>9.1f}{p95 * 1000:>9.1f}{off[r['step']] / p50:>9.2f}")
        return

    from sandmle.core.plugins import get_registry

    reps = {"trivial": args.reps, "import-pd-skl": args.sklearn_reps, "sklearn-200": args.sklearn_reps}
    rows: list[dict] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        task = make_canary_task(tmpdir / "task")
        for step, code in STEPS.items():
            rows.append({"mode": "cold subprocess", "step": step,
                         "times": bench_cold(code, reps[step], tmpdir, args.think_s)})
        rows.append({"mode": "pipe relay (floor)", "step": "trivial",
                     "times": relay_floor(args.reps, args.think_s)})
        rows.append({"mode": "cold subprocess", "step": "session-start",
                     "times": bench_cold(SESSION_PRELUDE + STEPS["trivial"], args.sklearn_reps, tmpdir,
                                         args.think_s)})
        # "limits off": the issue-26 kernel limits disabled (no seccomp filter, no session
        # cgroup, the workspace a plain host folder scanned for its size), as before them: what
        # those limits cost, measured side by side.
        no_limits = {"pool_size": 1, "seccomp": False, "kernel_memory_cap": False, "workspace_fs": "scan"}
        sandboxes = [("local warm pool", "local", {"pool_size": 1}, args.think_s),
                     ("local limits off", "local", no_limits, args.think_s),
                     ("local back-to-back", "local", {"pool_size": 1}, 0.0)]
        from sandmle.plugins.docker.sandbox import engine_unavailable_reason

        reason = engine_unavailable_reason(start=True)
        if reason:
            notes.append(f"docker skipped: {reason}")
        else:
            sandboxes.append(("docker", "docker", {}, args.think_s))
        for label, name, cfg, think_s in sandboxes:
            sandbox = get_registry().create("sandboxes", name, cfg)
            try:
                for step, code in STEPS.items():
                    times = asyncio.run(bench_sandbox(sandbox, task, code, reps[step], think_s))
                    rows.append({"mode": label, "step": step, "times": times})
                times = asyncio.run(bench_session_start(sandbox, task, args.sklearn_reps, think_s))
                rows.append({"mode": label, "step": "session-start", "times": times})
            finally:
                asyncio.run(sandbox.shutdown())
        on_demand = get_registry().create("sandboxes", "local", {"pool_size": 0})
        try:
            times = asyncio.run(bench_session_start(on_demand, task, args.sklearn_reps, args.think_s))
            rows.append({"mode": "local on demand", "step": "session-start", "times": times})
        finally:
            asyncio.run(on_demand.shutdown())
    cold = {r["step"]: percentiles(r["times"])[0] for r in rows if r["mode"] == "cold subprocess"}
    for r in rows:
        r["p50_ms"], r["p95_ms"] = (round(v * 1000, 1) for v in percentiles(r.pop("times")))
        r["speedup_vs_cold"] = round(cold[r["step"]] * 1000 / r["p50_ms"], 1)
    if args.json:
        print(json.dumps({"rows": rows, "notes": notes}, indent=2))
        return
    print(f"{'mode':<20}{'step':<15}{'p50 ms':>9}{'p95 ms':>9}{'x vs cold':>11}")
    for r in rows:
        print(f"{r['mode']:<20}{r['step']:<15}{r['p50_ms']:>9}{r['p95_ms']:>9}{r['speedup_vs_cold']:>11}")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
