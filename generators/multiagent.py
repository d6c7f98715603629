"""The ``multiagent`` generator: SandMLE's four LLM roles as a langgraph ``StateGraph``.

Data Strategist (task DNA -> hidden rule, new domain, JSON plan) -> ML Developer (a deterministic
data synthesizer program) -> MLOps Engineer (runs it in the sandbox, checks the files; on failure
asks for a fix: a debug loop of at most ``max_debug_rounds``) -> Technical Writer (description.md
that must not leak the rule) -> the same verification and sanity filter as ``procedural``
(reference solvers in the sandbox, thresholds, evaluator check). Every LLM call goes through a
registered :class:`~sandmle.core.interfaces.Backend`; each candidate's transcript is saved to
``OUT/transcripts/<task_id>.json``. An unparseable reply is retried ``max_parse_retries`` times,
then the candidate is rejected with a reason; nothing raises out of the batch.

Run with a real model (backends come from the ``litellm`` / ``openai`` plugins)::

    tasks:
      - name: llm_tasks
        n: 20
        generator:
          name: multiagent
          args: {backend: litellm, backend_args: {model: openai/gpt-4o-mini}, workers: 2}
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
from sandmle.core.interfaces import Backend
from sandmle.core.task import Task

from .configs import MultiAgentConfig
from .domains import Domain
from .procedural import VerifyingGenerator
from .seeds import SeedTask
from .synth import Candidate

FILES = ("train.csv", "test.csv", "answers.csv", "sample_submission.csv")


class GenState(TypedDict, total=False):
    seed: SeedTask
    index: int
    n_train: int
    n_test: int
    plan: dict
    code: str
    frames: dict
    error: str
    debug_rounds: int
    description: str
    reject: str
    transcript: list
    session: Any


_JSON = re.compile(r"\{.*\}", re.S)
_CODE = re.compile(r"```(?:python)?\n(.*?)```", re.S)
PLAN_KEYS = {"domain", "entity", "hidden_rule", "target", "feature_columns"}


def _json_reply(text: str) -> dict | None:
    m = _JSON.search(text)
    try:
        data = json.loads(m.group(0)) if m else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and PLAN_KEYS <= set(data) else None


def _code_reply(text: str) -> str | None:
    m = _CODE.search(text)
    return m.group(1) if m else None


class MultiAgentGenerator(VerifyingGenerator):
    """LLM roles in a langgraph graph, then the shared verification."""

    name = "multiagent"

    def __init__(self, config: MultiAgentConfig, backend: Backend | None = None):
        super().__init__(config)
        self.config: MultiAgentConfig = config
        self._backend = backend
        self._graph = self._build_graph()

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from sandmle.core.plugins import get_registry

            self._backend = get_registry().create("backends", self.config.backend, self.config.backend_args)
        return self._backend

    async def _ask(self, state: GenState, role: str, prompt: str) -> str:
        messages = [{"role": "system", "content": f"You are the {role} of an ML task-generation team."},
                    {"role": "user", "content": prompt}]
        reply = await self.backend.complete(messages, protocol=f"generator.{role.lower().replace(' ', '_')}")
        state.setdefault("transcript", []).append({"role": role, "prompt": prompt, "reply": reply.text})
        return reply.text

    # ----------------------------------------------------------------------- graph nodes
    async def strategist(self, state: GenState) -> GenState:
        seed = state["seed"]
        prompt = (f"Seed task DNA: modality={seed.modality}, task_type={seed.task_type}, metric={seed.metric}, "
                  f"classes={seed.n_classes}, submission={seed.submission}. Invent a NEW domain, a hidden rule "
                  f"label = f(features, latent) + noise, and column names. Reply with JSON keys "
                  f"{sorted(PLAN_KEYS)} and optional 'classes'.")
        for _ in range(self.config.max_parse_retries + 1):
            plan = _json_reply(await self._ask(state, "Data Strategist", prompt))
            if plan is not None:
                return {**state, "plan": plan}
            prompt = "Your reply was not the JSON object asked for. " + prompt
        return {**state, "reject": "unparseable_strategist_reply"}

    async def developer(self, state: GenState) -> GenState:
        plan = state["plan"]
        prompt = (f"Plan: {json.dumps(plan)}. Write one deterministic Python program (numpy/pandas, "
                  f"fixed seed) writing {', '.join(FILES)} into the current folder: {state['n_train']} train "
                  f"rows, {state['n_test']} test rows, an 'id' column, target column '{plan['target']}' in "
                  f"train.csv and answers.csv only. Reply with one ```python block.")
        for _ in range(self.config.max_parse_retries + 1):
            code = _code_reply(await self._ask(state, "ML Developer", prompt))
            if code is not None:
                return {**state, "code": code, "debug_rounds": 0}
            prompt = "Reply with exactly one ```python code block. " + prompt
        return {**state, "reject": "unparseable_developer_reply"}

    async def mlops(self, state: GenState) -> GenState:
        session = state["session"]
        sub = f"llm_{state['index']}"
        res = await session.exec(f"import os\nos.makedirs({sub!r}, exist_ok=True)\nos.chdir({sub!r})\n"
                                 + state["code"], timeout=self.config.code_timeout_s)
        error = "" if res.ok else f"exit {res.killed or res.exit_code}: {res.stderr_tail[-800:]}"
        frames: dict[str, pd.DataFrame] = {}
        if not error:
            try:
                for name in FILES:
                    frames[name] = pd.read_csv(io.BytesIO(await session.read_file(f"{sub}/{name}")))
                error = _check_frames(frames, state["plan"]["target"])
            except Exception as exc:  # noqa: BLE001 - reported back to the LLM
                error = f"{type(exc).__name__}: {exc}"
        await session.exec(f"import shutil; shutil.rmtree({sub!r}, ignore_errors=True)", timeout=30)
        if not error:
            return {**state, "frames": frames, "error": ""}
        rounds = state.get("debug_rounds", 0)
        if rounds >= self.config.max_debug_rounds:
            return {**state, "reject": "code_failed_after_debug", "error": error}
        reply = await self._ask(state, "MLOps Engineer",
                                f"The synthesizer failed:\n{error}\nCode:\n```python\n{state['code']}```\n"
                                "Reply with the fixed program in one ```python block.")
        code = _code_reply(reply)
        if code is None:
            return {**state, "reject": "unparseable_mlops_reply", "error": error}
        return {**state, "code": code, "debug_rounds": rounds + 1, "error": error}

    async def writer(self, state: GenState) -> GenState:
        plan = state["plan"]
        text = await self._ask(state, "Technical Writer",
                               f"Write description.md for a task about {plan['entity']} in {plan['domain']}: "
                               f"files train.csv/test.csv/sample_submission.csv, target '{plan['target']}', "
                               f"metric {state['seed'].metric}. Never reveal how the target was generated.")
        if not text.strip():
            return {**state, "reject": "empty_description"}
        if _leaks(text, plan["hidden_rule"]):
            return {**state, "reject": "description_leaks_rule"}
        return {**state, "description": text.strip() + "\n"}

    def _build_graph(self) -> Any:
        from langgraph.graph import END, StateGraph

        g = StateGraph(GenState)
        for name in ("strategist", "developer", "mlops", "writer"):
            g.add_node(name, getattr(self, name))
        g.set_entry_point("strategist")
        stop_or = lambda nxt: (lambda s: END if s.get("reject") else nxt)  # noqa: E731
        g.add_conditional_edges("strategist", stop_or("developer"))
        g.add_conditional_edges("developer", stop_or("mlops"))
        g.add_conditional_edges("mlops", lambda s: END if s.get("reject") else
                                ("mlops" if s.get("error") else "writer"))
        g.add_edge("writer", END)
        return g.compile()

    # ----------------------------------------------------------------------- candidate
    async def make_candidate(self, seed: SeedTask, rng: np.random.Generator, index: int,
                             stage: Path) -> tuple[Candidate | None, str, dict[str, Any]]:
        cfg = self.config
        state: GenState = {"seed": seed, "index": index, "transcript": [],
                           "n_train": int(rng.integers(cfg.rows[0], cfg.rows[1] + 1)),
                           "n_test": int(rng.integers(cfg.test_rows[0], cfg.test_rows[1] + 1))}
        session = await self._session(self._sandbox, _placeholder_task())
        state["session"] = session
        try:
            final = await self._graph.ainvoke(state, {"recursion_limit": 4 + 2 * cfg.max_debug_rounds + 4})
        except Exception as exc:  # noqa: BLE001 - a broken reply never stops the batch
            final = {**state, "reject": f"graph_error: {type(exc).__name__}"}
        finally:
            self._sessions.put_nowait(session)
        task_id = f"{seed.name}-s{getattr(self, '_seed', 0)}-{index:05d}"
        tdir = self._out / "transcripts"
        tdir.mkdir(parents=True, exist_ok=True)
        (tdir / f"{task_id}.json").write_text(json.dumps(final.get("transcript", []), indent=1), encoding="utf-8")
        if final.get("reject"):
            return None, final["reject"], {}
        return _to_candidate(seed, final), "", {"llm_calls": len(final["transcript"])}


def _check_frames(frames: dict[str, pd.DataFrame], target: str) -> str:
    train, test, answers, sample = (frames[f] for f in FILES)
    for name, df in frames.items():
        if "id" not in df.columns:
            return f"{name} has no 'id' column"
    if target not in train.columns or target not in answers.columns:
        return f"target column {target!r} missing from train.csv or answers.csv"
    if target in test.columns:
        return "test.csv must not contain the target column"
    if not (len(test) == len(answers) == len(sample)) or set(test["id"]) != set(answers["id"]):
        return "test.csv, answers.csv and sample_submission.csv must share the same ids"
    return ""


def _leaks(description: str, hidden_rule: str) -> bool:
    """The description repeats the rule (or a long piece of it) verbatim."""
    rule = " ".join(str(hidden_rule).lower().split())
    text = " ".join(description.lower().split())
    words = rule.split()
    return rule in text or any(" ".join(words[i:i + 6]) in text for i in range(max(0, len(words) - 5)))


def _placeholder_task() -> Task:
    root = Path(tempfile.mkdtemp(prefix="sandmle-llm-"))
    (root / "public").mkdir()
    return Task(id="llm-synthesis", root=root, public_dir=root / "public", metric="rmse", lower_is_better=True)


def _to_candidate(seed: SeedTask, s: GenState) -> Candidate:
    plan, f = s["plan"], s["frames"]
    target = plan["target"]
    train, test, answers, sample = (f[n] for n in FILES)
    classes = [str(c) for c in plan.get("classes", [])] if seed.submission == "proba_multi" else []
    cols = classes or [target]
    domain = Domain(str(plan["domain"]), str(plan["entity"]), str(plan["domain"]),
                    tuple(c for c in test.columns if c != "id"), tuple(classes), target)
    rule = {"core": {"hidden_rule": plan["hidden_rule"]}}
    return Candidate(seed=seed, domain=domain, train=train, test=test, answers=answers[["id", *cols]],
                     sample_submission=sample[["id", *cols]], target_columns=cols, rule=rule,
                     class_names=classes, description=s["description"], label_column=target)


def make_multiagent(config: MultiAgentConfig) -> MultiAgentGenerator:
    """Registry factory for ``multiagent``."""
    return MultiAgentGenerator(config)
