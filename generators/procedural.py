"""The ``procedural`` generator: seeded hidden rules over real feature structure, verified.

Candidates are numbered 0, 1, 2, ...; candidate ``i`` uses seed ``seeds[i % len(seeds)]`` and
the RNG ``default_rng([seed, i])``, so the same (seed, i) always gives byte-identical files and
a resumed run continues where the last stopped (accepted task folders and ``rejections.jsonl``
entries are kept and skipped). Each seed has a quota (``seed_quotas``): a rejected candidate is
replaced by the next candidate of the same seed, so a set of ``n`` tasks covers its seeds evenly.
Up to ``workers`` candidates verify at once in the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sandmle.core.interfaces import Generator, Sandbox

from .configs import ProceduralConfig, ThresholdPolicy
from .resume import REJECTIONS, scan_output
from .seeds import SeedTask, select_seeds
from .synth import Candidate, synthesize
from .verify import judge, run_reference_solvers, score_submissions
from .writer import write_candidate, write_thresholds



@dataclass
class Outcome:
    """One candidate's fate (yielded by ``generate``)."""

    index: int
    task_id: str
    seed: str
    modality: str
    metric: str
    accepted: bool
    reason: str | None = None
    detail: str = ""
    n_train: int = 0
    seconds: float = 0.0
    path: str | None = None
    resumed: bool = False
    family: str = ""
    difficulty: dict[str, Any] = field(default_factory=dict)


Synthesizer = Callable[[SeedTask, np.random.Generator, int, int], Candidate]


class VerifyingGenerator(Generator):
    """Shared loop: number candidates, verify concurrently, keep/reject, resume. Subclasses
    provide ``make_candidate`` (the procedural one synthesizes; the multi-agent one asks LLMs)."""

    name = "base"

    def __init__(self, config: ProceduralConfig):
        self.config = config

    async def make_candidate(self, seed: SeedTask, rng: np.random.Generator, index: int,
                             stage: Path) -> tuple[Candidate | None, str, dict[str, Any]]:
        """Return (candidate, rejection reason if None, extra provenance)."""
        raise NotImplementedError

    def generate(self, out_dir: Path, n: int, *, seed: int = 0, seeds: Sequence[str] | None = None,
                 sandbox: Sandbox | None = None) -> Iterator[Outcome]:
        q: queue.Queue = queue.Queue()
        done = object()

        def runner() -> None:
            try:
                asyncio.run(self._run(Path(out_dir), n, seed, list(seeds or []), sandbox, q.put))
            except BaseException as exc:  # noqa: BLE001 - surfaced in the caller's thread
                q.put(exc)
            q.put(done)

        thread = threading.Thread(target=runner, daemon=True)
        thread.start()
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
        thread.join()

    async def _run(self, out: Path, n: int, seed: int, seed_names: list[str], sandbox: Sandbox | None,
                   emit: Callable[[Outcome], None]) -> None:
        seeds = list({s.name: s for s in select_seeds(seed_names)}.values())
        out.mkdir(parents=True, exist_ok=True)
        accepted, seen_idx, signatures = _resume_state(out)
        for o in accepted.values():
            emit(o)
        self._out, self._seed = out, seed
        own_sandbox = sandbox is None
        if own_sandbox:
            from sandmle.core.plugins import get_registry

            sandbox = get_registry().create("sandboxes", "local", {"pool_size": self.config.workers})
        self._sandbox = sandbox
        sem = asyncio.Semaphore(self.config.workers)
        self._sessions: asyncio.Queue = asyncio.Queue()
        self._opened: list[Any] = []
        lock = asyncio.Lock()
        quota = seed_quotas(seeds, n)
        have = Counter(o.seed for o in accepted.values())
        in_flight: Counter = Counter()
        budget = int(n * self.config.max_attempts_factor) - (len(seen_idx) - len(accepted))
        pending: set[asyncio.Task] = set()

        async def one(i: int, seed_task: SeedTask) -> None:
            async with sem:
                o = await self._candidate(out, seed_task, seed, i, sandbox, signatures, lock)
            async with lock:
                in_flight[seed_task.name] -= 1
                have[seed_task.name] += o.accepted
                if not o.accepted:
                    with open(out / REJECTIONS, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(asdict(o)) + "\n")
            emit(o)

        k = len(seeds)
        next_of = list(range(k))  # seed j's candidates are j, j + k, j + 2k, ...

        def next_index() -> int | None:
            """The lowest next candidate among seeds that still lack tasks (accepted + in flight)."""
            best = None
            for j, s in enumerate(seeds):
                if have[s.name] + in_flight[s.name] >= quota[s.name]:
                    continue
                while next_of[j] in seen_idx:
                    next_of[j] += k
                best = next_of[j] if best is None else min(best, next_of[j])
            return best

        try:
            attempts = 0
            while True:
                while len(pending) < self.config.workers * 2 and attempts < budget:
                    found = next_index()
                    if found is None:
                        break
                    seed_task = seeds[found % k]
                    in_flight[seed_task.name] += 1
                    next_of[found % k] += k
                    pending.add(asyncio.create_task(one(found, seed_task)))
                    attempts += 1
                if not pending:
                    break
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            shutil.rmtree(out / ".staging", ignore_errors=True)
            for session in self._opened:
                await session.close()
            if own_sandbox:
                await sandbox.shutdown()

    async def _candidate(self, out: Path, seed_task: SeedTask, seed: int, i: int, sandbox: Sandbox,
                         signatures: dict[str, str], lock: asyncio.Lock) -> Outcome:
        t0 = time.perf_counter()
        task_id = f"{seed_task.name}-s{seed}-{i:05d}"
        o = Outcome(i, task_id, seed_task.name, seed_task.modality, seed_task.metric, False,
                    family=seed_task.family)
        stage = out / ".staging" / task_id
        shutil.rmtree(stage, ignore_errors=True)
        try:
            rng = np.random.default_rng([seed, i])
            cand, why, extra = await self.make_candidate(seed_task, rng, i, stage)
            if cand is None:
                o.reason = why or "generation_failed"
                return o
            o.n_train = len(cand.train)
            problems = cand.name_problems()
            if problems:
                o.reason, o.detail = "incoherent_names", "; ".join(problems)[:400]
                return o
            sig = cand.signature
            async with lock:
                if sig in signatures:
                    o.reason, o.detail = "near_duplicate", f"same rule and columns as {signatures[sig]}"
                    return o
                signatures[sig] = task_id
            prov = {"generator": self.name, "seed_task": seed_task.name, "seed": seed, "index": i,
                    "family": seed_task.family, "mlebench_id": seed_task.mlebench_id,
                    "rule_signature": sig, "n_train": len(cand.train), "n_test": len(cand.test), **extra}
            task = await asyncio.to_thread(write_candidate, cand, stage, task_id, prov)
            session = await self._session(sandbox, task)
            try:
                subs, detail, wall = await run_reference_solvers(cand, task, session,
                                                                 self.config.solver_timeout_s)
            finally:
                self._sessions.put_nowait(session)
            if not subs:
                o.reason, o.detail = ("evaluator_failed" if detail.startswith("evaluator") else "solvers_failed"), detail
                return o
            verdict = await asyncio.to_thread(judge, cand, score_submissions(cand, subs), subs,
                                              self.config.thresholds)
            o.difficulty = verdict.difficulty
            if verdict.reason:
                o.reason, o.detail = verdict.reason, json.dumps(verdict.scores)[:400]
                async with lock:
                    signatures.pop(sig, None)
                return o
            prov["reference_scores"] = verdict.scores
            await asyncio.to_thread(write_thresholds, cand, stage, task_id, prov, verdict.thresholds,
                                    verdict.leaderboard, verdict.difficulty)
            final = out / task_id
            shutil.rmtree(final, ignore_errors=True)
            stage.rename(final)
            o.accepted, o.path = True, str(final)
            return o
        except Exception as exc:  # noqa: BLE001 - a bad candidate never stops the batch
            o.reason, o.detail = "error", f"{type(exc).__name__}: {exc}"[:400]
            return o
        finally:
            o.seconds = round(time.perf_counter() - t0, 3)
            if not o.accepted:
                shutil.rmtree(stage, ignore_errors=True)


    async def _session(self, sandbox: Sandbox, task: Any) -> Any:
        """A reusable verification session (at most ``workers`` are ever opened)."""
        if self._sessions.empty() and len(self._opened) < self.config.workers:
            session = await sandbox.open(task)
            self._opened.append(session)
            return session
        return await self._sessions.get()


class ProceduralGenerator(VerifyingGenerator):
    """Hidden-rule synthesis from seeds (no LLM)."""

    name = "procedural"

    async def make_candidate(self, seed: SeedTask, rng: np.random.Generator, index: int,
                             stage: Path) -> tuple[Candidate | None, str, dict[str, Any]]:
        cfg = self.config
        n_train = int(rng.integers(cfg.rows[0], cfg.rows[1] + 1))
        test_rows = cfg.media_test_rows if seed.synth in ("image", "audio") else cfg.test_rows
        n_test = int(rng.integers(test_rows[0], test_rows[1] + 1))
        return await asyncio.to_thread(synthesize, seed, rng, n_train, n_test, cfg.noise), "", {}


def seed_quotas(seeds: Sequence[SeedTask], n: int) -> Counter:
    """Tasks wanted per seed: ``n`` spread over the seeds in order (the first ``n % k`` get one
    more), so a set covers its seeds evenly and a rejected candidate is replaced from its own seed.
    Candidates of one seed run in index order, so the accepted set does not depend on timing."""
    quota: Counter = Counter()
    for j in range(n):
        quota[seeds[j % len(seeds)].name] += 1
    return quota


def _resume_state(out: Path) -> tuple[dict[int, Outcome], set[int], dict[str, str]]:
    """Verified tasks and decided indices already in ``out`` (so a rerun skips them); invalid
    task folders are moved aside and generated again (see :mod:`.resume`)."""
    state = scan_output(out)
    accepted: dict[int, Outcome] = {}
    sigs: dict[str, str] = {}
    for i, done in state.done.items():
        meta, prov = done.meta, done.meta.get("provenance") or {}
        sigs[prov.get("rule_signature", "")] = done.task_id
        accepted[i] = Outcome(i, done.task_id, prov.get("seed_task", ""), meta.get("modality", ""),
                              meta.get("metric", ""), True, n_train=int(prov.get("n_train", 0) or 0),
                              path=str(done.path), resumed=True, family=prov.get("family", ""),
                              difficulty=meta.get("difficulty") or {})
    return accepted, state.seen, sigs


def make_procedural(config: ProceduralConfig) -> ProceduralGenerator:
    """Registry factory for ``procedural``."""
    return ProceduralGenerator(config)
