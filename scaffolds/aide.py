"""``aide``: AIDE's greedy tree search over whole-program solutions (WecoAI/aideml).

Each step drafts a new root until ``num_drafts`` exist; then, with probability ``debug_prob``,
debugs a buggy leaf no deeper than ``max_debug_depth``, otherwise improves the best node (or
drafts when no node is good). Every program runs in a fresh process; a review call
(``submit_review``: is_bug, summary, metric, lower_is_better) reads its output. The journal of
nodes goes to ``Trajectory.extra["journal"]``; the best node's submission is the final one, as in
the MLE-bench fork of AIDE.
"""

from __future__ import annotations

import ast
import json
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from typing import ClassVar, Literal

from pydantic import Field

from sandmle.core.interfaces import Backend, SandboxSession, Scaffold, ScaffoldLimits, ScoreFn
from sandmle.core.records import Grade, Trajectory, Turn
from sandmle.core.task import Task

from .plumbing import Episode, head_tail_chars, killed_note
from .presets import PresetConfig, SamplingConfig
from .preview import data_preview


class AideConfig(PresetConfig):
    """AIDE's setup. Defaults are sandmle's micro-scale evaluation defaults; each field says which
    source it follows. Presets:

    - ``aira-greedy``: facebookresearch/aira-dojo's greedy solver as SandMLE ran it
      (``configs/solver/mlebench/greedy.yaml``: 5 drafts, debug probability 1.0, max debug depth
      20; ``configs/solver/greedy.yaml``: 500 steps, 14400 s per execution, 86400 s in all; the
      analyze operator samples at temperature 0.5, ``aide_operators/analyze.yaml``).
    - ``dojo-aide``: MLE-Dojo's AIDE as SandMLE ran it (``scaffolds/mle-dojo/.../aide/utils/config.yaml``:
      15 steps, 3 drafts, debug 0.5, depth 3, temperature 0, 8192 new tokens; 43200 s execution
      timeout, ``main.py``): no review call, a node's metric is the environment's position score
      and a bug is a FAILED execution (``mledojo/agent/aide/agent.py`` ``parse_exec_result``).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "aira-greedy": {"steps": 500, "num_drafts": 5, "debug_prob": 1.0, "max_debug_depth": 20, "parse_attempts": 3,
                        "limits": {"max_llm_calls": 2000, "max_wall_s": 86400.0, "exec_timeout_s": 14400.0},
                        # Operators send no generation kwargs (server defaults: temperature 1.0 in the
                        # OpenAI API, no new-token cap); the analyze operator sets temperature 0.5.
                        "sampling": {"temperature": 1.0, "top_p": 1.0, "max_tokens": 32768},
                        "review_sampling": {"temperature": 0.5, "max_tokens": 32768}},
        "dojo-aide": {"steps": 15, "num_drafts": 3, "debug_prob": 0.5, "max_debug_depth": 3, "review": "env",
                      "limits": {"max_llm_calls": 45, "max_wall_s": 43200.0, "exec_timeout_s": 43200.0},
                      "sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8192}},
    }

    preset: Literal["aira-greedy", "dojo-aide"] | None = Field(
        None, description="a named setup filling every field not set here (see the class docstring)")
    limits: ScaffoldLimits = Field(default_factory=lambda: ScaffoldLimits(max_llm_calls=40),
                                   description="sandmle micro-scale budget (WecoAI: 3600 s per execution)")
    steps: int = Field(8, ge=1, description="journal nodes to create (WecoAI: 20, MLE-Dojo: 15, aira-dojo: 500)")
    num_drafts: int = Field(3, ge=1, description="MLE-Dojo's AIDE: 3 (WecoAI and aira-dojo: 5)")
    debug_prob: float = Field(0.5, ge=0.0, le=1.0, description="WecoAI and MLE-Dojo: 0.5 (aira-dojo: 1.0)")
    max_debug_depth: int = Field(3, ge=0, description="a buggy leaf with debug_depth <= this may be debugged "
                                                      "(all three anchors); WecoAI and MLE-Dojo: 3")
    parse_attempts: int = Field(3, ge=1, description="tries to get a plan and a code block (all anchors: 3)")
    review: Literal["llm", "env"] = Field(
        "llm", description="'llm': a submit_review call judges each run (WecoAI, aira-dojo); 'env': no review, "
                           "bug = FAILED execution (no valid graded submission), metric = position score (MLE-Dojo)")
    llm_timeout_s: float = Field(300.0, gt=0)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig, description="sandmle evaluation defaults")
    review_sampling: SamplingConfig | None = Field(None, description="the review call's sampling (null: `sampling`)")


@dataclass
class Node:
    """One journal entry: a program, its output and its review."""

    id: int
    stage: str
    plan: str = ""
    code: str = ""
    parent: int | None = None
    term_out: str = ""
    exec_time: float = 0.0
    metric: float | None = None
    lower_is_better: bool | None = None
    is_bug: bool = True
    summary: str = ""
    has_submission: bool = False
    raw_score: float | None = None  # review "env": the graded test score and its position score
    position_score: float | None = None
    debug_depth: int = 0
    children: list[int] = field(default_factory=list)


INTRO = {
    "draft": "You are a Kaggle grandmaster taking part in a competition. Sketch a solution plan, "
             "then implement it as one Python program.",
    "improve": "You are a Kaggle grandmaster. Improve the previous solution with one atomic change, "
               "then implement it.",
    "debug": "You are a Kaggle grandmaster. The previous program has a bug; explain the fix briefly, "
             "then implement the corrected program.",
}
RESPONSE_FORMAT = ("Reply with a plan of 3-5 sentences followed by one markdown ```python code block "
                   "holding the whole program, and nothing else.")


def implementation_rules(timeout: float) -> list[str]:
    return ["Print the validation metric on a hold-out split.",
            "The program is self-contained and runs as one file.",
            f"It must finish within {timeout:g} seconds.",
            "The data files are in the current directory.",
            "Write the test predictions to submission.csv in the current directory."]


def compile_prompt(sections: dict[str, Any], level: int = 1) -> str:
    """AIDE sends a nested dict as markdown headers and bullets (one system message)."""
    out = []
    for title, body in sections.items():
        out.append(f"{'#' * level} {title}")
        if isinstance(body, dict):
            out.append(compile_prompt(body, level + 1))
        elif isinstance(body, list):
            out.extend(f"- {line}" for line in body)
        else:
            out.append(str(body))
        out.append("")
    return "\n".join(out)


_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


def extract_plan_code(text: str) -> tuple[str, str]:
    """The plan (text before the first fence) and the compiling code blocks, joined."""
    blocks = [b for b in _BLOCK.findall(text) if _compiles(b)]
    plan = text.split("```")[0].strip() if "```" in text else ""
    return plan, "\n\n".join(b.strip() for b in blocks)


def _compiles(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


REVIEW_TOOL = {"type": "function", "function": {
    "name": "submit_review", "description": "Report the outcome of the program's run.",
    "parameters": {"type": "object", "required": ["is_bug", "summary", "metric", "lower_is_better"],
                   "properties": {
                       "is_bug": {"type": "boolean", "description": "the run failed or has a bug"},
                       "summary": {"type": "string", "description": "2-3 sentences of findings or the fix"},
                       "metric": {"type": ["number", "null"], "description": "the validation metric"},
                       "lower_is_better": {"type": "boolean"}}}}}


def parse_review(tool_calls: list[Any], text: str) -> dict[str, Any] | None:
    """The review's arguments from a native call, or from JSON in the text; ``None`` if neither."""
    for call in tool_calls:
        if call.name == "submit_review" and isinstance(call.arguments, dict):
            return call.arguments
    match = re.search(r"\{.*\}", text or "", re.DOTALL)
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return None
    return data if isinstance(data, dict) and "is_bug" in data else None


class AideScaffold(Scaffold):
    """Greedy tree search on the shared :class:`Episode` plumbing."""

    name = "aide"

    def __init__(self, config: AideConfig | None = None):
        self.config = config or AideConfig()

    async def run(self, task: Task, backend: Backend, session: SandboxSession, *, seed: int = 0,
                  score: ScoreFn | None = None) -> Trajectory:
        cfg = self.config
        ep = Episode(task, backend, session, cfg.limits, scaffold=self.name, seed=seed,
                     sampling=cfg.sampling.for_episode(seed), llm_timeout_s=cfg.llm_timeout_s)
        rng = random.Random(seed)
        journal: list[Node] = []
        preview = data_preview(task.public_dir, [p for p in task.public_files()])
        last_messages: list[dict[str, Any]] = []
        while len(journal) < cfg.steps and ep.stop_reason is None:
            parent, stage = self._choose(journal, rng)
            node = Node(id=len(journal), stage=stage, parent=parent.id if parent else None,
                        debug_depth=parent.debug_depth + 1 if parent and stage == "debug" else 0)
            messages = [{"role": "system", "content": compile_prompt(self._prompt(stage, task, journal, parent, preview))}]
            last_messages = messages
            turn = await self._write_code(ep, messages, node)
            if turn is None:
                break
            await self._execute(ep, node, turn)
            if cfg.review == "env":
                self._env_review(ep, node, turn, score)
            else:
                await self._review(ep, task, node, seed)
            first_good = self._best(journal)
            if first_good and not node.is_bug and node.lower_is_better != first_good.lower_is_better:
                # AIDE asserts on a flipped direction; we mark the node instead of crashing.
                node.is_bug, node.summary = True, node.summary + " (metric direction flipped)"
            journal.append(node)
            if parent is not None:
                parent.children.append(node.id)
            best = self._best(journal)
            if best is node and node.metric is not None:
                ep.offer_submission(-node.metric if node.lower_is_better else node.metric)
        ep.restore_best_submission()
        best = self._best(journal)
        ep.traj.extra["journal"] = [asdict(n) for n in journal]
        ep.traj.extra["best_node"] = best.id if best else None
        if cfg.preset:
            ep.traj.extra["preset"] = cfg.preset
        return ep.finish("steps_done", last_messages)

    # ------------------------------------------------------------------ search policy
    def _choose(self, journal: list[Node], rng: random.Random) -> tuple[Node | None, str]:
        cfg = self.config
        drafts = [n for n in journal if n.parent is None]
        if len(drafts) < cfg.num_drafts:
            return None, "draft"
        if rng.random() < cfg.debug_prob:
            leaves = [n for n in journal if n.is_bug and not n.children and n.debug_depth <= cfg.max_debug_depth]
            if leaves:
                return rng.choice(leaves), "debug"
        best = self._best(journal)
        return (best, "improve") if best else (None, "draft")

    @staticmethod
    def _best(journal: list[Node]) -> Node | None:
        good = [n for n in journal if not n.is_bug and n.metric is not None]
        if not good:
            return None
        lower = good[0].lower_is_better
        return (min if lower else max)(good, key=lambda n: n.metric)

    def _prompt(self, stage: str, task: Task, journal: list[Node], parent: Node | None,
                preview: str) -> dict[str, Any]:
        rules = implementation_rules(self.config.limits.exec_timeout_s)
        sections: dict[str, Any] = {"Introduction": INTRO[stage], "Task description": task.description}
        if stage == "draft":
            sections["Memory"] = self._memory(journal)
            sections["Instructions"] = {
                "Response format": RESPONSE_FORMAT,
                "Solution sketch guideline": ["Keep the first solution simple; no exploratory analysis.",
                                              "Take the memory into account: do not repeat past designs."],
                "Implementation guideline": rules}
            sections["Data Overview"] = preview
        elif stage == "improve":
            assert parent is not None
            sections["Memory"] = self._memory(journal)
            sections["Instructions"] = {"Response format": RESPONSE_FORMAT,
                                        "Solution improvement sketch guideline": ["Make one atomic, testable change."],
                                        "Implementation guideline": rules}
            sections["Previous solution"] = {"Code": f"```python\n{parent.code}\n```"}
        else:  # debug: no memory, the failing program and its output instead
            assert parent is not None
            sections["Previous (buggy) implementation"] = f"```python\n{parent.code}\n```"
            sections["Execution output"] = f"```\n{parent.term_out}\n```"
            sections["Instructions"] = {"Response format": RESPONSE_FORMAT,
                                        "Bugfix improvement sketch guideline": ["Say briefly how to fix the bug."],
                                        "Implementation guideline": rules}
            sections["Data Overview"] = preview
        return sections

    def _memory(self, journal: list[Node]) -> str:
        if self.config.review == "env":  # MLE-Dojo's journal summary: env feedback and test scores
            blocks = [f"Design: {n.plan}\nExecution and Evaluation Feedback: {n.summary}\n"
                      f"Test Metric Score: {n.raw_score}\nTest Position Score: {n.position_score}"
                      for n in journal if not n.is_bug]
        else:
            blocks = [f"Design: {n.plan}\nResults: {n.summary}\nValidation Metric: {n.metric}"
                      for n in journal if not n.is_bug]
        return ("\n" + "-" * 40 + "\n").join(blocks) if blocks else "(no previous solutions)"

    # ------------------------------------------------------------------ one node
    async def _write_code(self, ep: Episode, messages: list[dict[str, Any]], node: Node) -> Turn | None:
        """Ask for plan + code (up to ``parse_attempts`` calls), falling back to the raw text."""
        for attempt in range(self.config.parse_attempts):
            completion, turn = await ep.call(messages, protocol=f"aide.{node.stage}", stage=node.stage)
            if completion is None:
                return None
            node.plan, node.code = extract_plan_code(turn.text)
            if node.plan and node.code:
                return turn
            turn.format_ok = False
            turn.format_error = "reply needs a plan and a ```python block that compiles"
            if attempt == self.config.parse_attempts - 1:
                node.code = node.code or turn.text  # AIDE's last resort: the whole reply as code
                return turn
        return None  # pragma: no cover - the loop always returns

    async def _execute(self, ep: Episode, node: Node, turn: Turn) -> None:
        await ep.remove_submission()  # a node's submission is only what its own run wrote
        result = await ep.execute(node.code, turn)
        out = result.stdout_tail + result.stderr_tail
        limit = ep.limits.exec_timeout_s
        if result.killed == "timeout":
            out += f"\nTimeoutError: Execution exceeded the time limit of {limit:g} seconds"
        elif result.killed:
            out += "\n" + killed_note(result, limit)
        else:
            out += f"\nExecution time: {result.wall_s:.2f} seconds (time limit is {limit:g} seconds)."
        node.term_out = head_tail_chars(out)
        node.exec_time = result.wall_s
        node.has_submission = ep.submission_exists()
        node.is_bug = not result.ok
        turn.observations.append(node.term_out)

    def _env_review(self, ep: Episode, node: Node, turn: Turn, score: ScoreFn | None) -> None:
        """MLE-Dojo's AIDE: the environment judges the run; no review call. A run is FAILED unless
        it exited cleanly and left a submission the grader scores; the metric is its position score
        (maximised; the raw score, oriented to be maximised, when the task has no leaderboard)."""
        ran = not node.is_bug  # MLE-Dojo evaluates no submission after a failed execution
        grade: Grade | None = ep.grade(score) if ran and node.has_submission else None
        if grade is not None and grade.valid_submission and grade.score is not None:
            raw = grade.unrounded_score  # MLE-Dojo reports the metric's value as computed
            node.raw_score, node.position_score = raw, grade.human_rank
            oriented = -raw if grade.is_lower_better else raw
            node.metric = grade.human_rank if grade.human_rank is not None else oriented
            position = f", position score {grade.human_rank:.4f}" if grade.human_rank is not None else ""
            evaluation = f"Submission evaluated: raw score {raw:.6g}{position}"
        else:
            reason = (grade.reason if grade is not None else "the execution failed" if not ran else
                      "no submission.csv was written" if not node.has_submission else "no grader to score it")
            evaluation = f"Submission error: {reason}"
            node.is_bug = True
        node.lower_is_better = False
        node.summary = evaluation
        node.term_out = head_tail_chars(f"{node.term_out}\n{evaluation}")  # the debug prompt shows it
        turn.observations.append(evaluation)

    async def _review(self, ep: Episode, task: Task, node: Node, seed: int) -> None:
        prompt = {"Introduction": "You are a Kaggle grandmaster reviewing a solution's run. Report "
                                  "with submit_review whether it has a bug, what you found and the "
                                  "validation metric it printed.",
                  "Task description": task.description,
                  "Implementation": f"```python\n{node.code}\n```",
                  "Execution output": f"```\n{node.term_out}\n```"}
        messages = [{"role": "system", "content": compile_prompt(prompt)}]
        sampling = self.config.review_sampling.for_episode(seed) if self.config.review_sampling else None
        completion, turn = await ep.call(messages, protocol="aide.review", stage="review", tools=[REVIEW_TOOL],
                                         sampling=sampling)
        review = parse_review(completion.tool_calls, completion.text) if completion else None
        if review is None:
            if completion is not None:
                turn.format_ok, turn.format_error = False, "no submit_review call with valid JSON"
            node.is_bug, node.summary = True, "review failed"
            return
        turn.observations.append(json.dumps(review))
        metric = review.get("metric")
        node.summary = str(review.get("summary", ""))
        node.lower_is_better = bool(review.get("lower_is_better", False))
        # AIDE: buggy if the reviewer says so, the run failed, or the metric is not a float.
        node.is_bug = bool(review.get("is_bug", True)) or node.is_bug or not isinstance(metric, float) \
            or not node.has_submission
        node.metric = float(metric) if isinstance(metric, float) else None


def make_aide(config: AideConfig) -> AideScaffold:
    """Registry factory for ``aide``."""
    return AideScaffold(config)
