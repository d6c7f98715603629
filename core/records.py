"""Records that flow between components: executions, turns, trajectories, grades, rewards.

All are pydantic models so they serialise to JSONL unchanged and validate when read back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

KillReason = Literal["timeout", "memory", "output", "signal", "disk", "error"]


class ExecResult(BaseModel):
    """One sandboxed execution of agent code. Agent faults (an exception, a timeout, a limit)
    are described here, never raised."""

    exit_code: int | None = None
    """The process's exit status; ``None`` when it was killed before exiting."""
    stdout_tail: str = ""
    """The end of standard output (bounded: long output keeps its last part)."""
    stderr_tail: str = ""
    """The end of standard error (a traceback ends up here)."""
    wall_s: float = 0.0
    """Elapsed seconds."""
    cpu_s: float = 0.0
    """CPU seconds used by the code and its children."""
    peak_mem_mb: float = 0.0
    """Peak resident memory in MiB."""
    killed: KillReason | None = None
    """Why the sandbox stopped it: ``timeout``, ``memory``, ``output``, ``signal``, ``disk`` or
    ``error`` (the sandbox itself failed); ``None`` when it ended on its own."""
    detail: str = ""  # why it was killed, in words, when it was

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed is None


class ToolCall(BaseModel):
    """A tool call the model made (native function call or parsed from text tags)."""

    name: str
    """The tool's name."""
    arguments: dict[str, Any] = Field(default_factory=dict)
    """Its arguments, parsed from JSON."""
    id: str | None = None
    """The call's id, for native tool calling (answered by a ``tool`` message with that id)."""


class Usage(BaseModel):
    """Token and cost accounting, summed per trajectory."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            llm_calls=self.llm_calls + other.llm_calls,
        )


class Sampling(BaseModel):
    """Sampling parameters of one model call."""

    model_config = ConfigDict(extra="allow")

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 2048
    seed: int | None = None
    stop: list[str] | None = None
    # Sample exactly max_tokens, past the model's stop tokens (vLLM's ``ignore_eos``): a fixed
    # workload for throughput benchmarks, whatever each reply would have said.
    ignore_eos: bool = False


class Completion(BaseModel):
    """What a backend returns for one chat completion."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    token_ids: list[int] | None = None  # sampled completion tokens, when the backend knows them
    prompt_token_ids: list[int] | None = None
    logprobs: list[float] | None = None  # one per token in token_ids
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None


class Turn(BaseModel):
    """One model call and what followed it."""

    messages_in: int  # how many messages the model saw
    text: str
    """The model's reply as text."""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """Tool calls in the reply (native, or parsed from the text by the scaffold)."""
    observations: list[str] = Field(default_factory=list)
    """What the scaffold showed the model next (execution output, feedback)."""
    executions: list[ExecResult] = Field(default_factory=list)
    """Every sandbox execution this turn caused."""
    token_ids: list[int] | None = None
    prompt_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    format_ok: bool = True
    format_error: str | None = None
    stage: str | None = None  # scaffold-specific: "draft", "review", "execute_code", ...
    wall_s: float = 0.0
    usage: Usage = Field(default_factory=Usage)


class Trajectory(BaseModel):
    """One episode: the unit of grading, reporting and training."""

    task_id: str
    scaffold: str
    backend: str
    seed: int = 0
    turns: list[Turn] = Field(default_factory=list)
    """One entry per model call, in order."""
    messages: list[dict[str, Any]] = Field(default_factory=list)  # final transcript
    submission: Path | None = None
    """Where the scaffold found ``submission.csv`` in the session (gone once the session
    closes; runners keep a copy: see ``extra["kept_files"]``)."""
    stop_reason: str = "unknown"
    """Why the episode ended: ``answer``, ``max_llm_calls``, ``timeout``, ``steps_done``, ..."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens, cost and model calls, summed over the turns."""
    wall_s: float = 0.0
    extra: dict[str, Any] = Field(default_factory=dict)  # scaffold-specific (AIDE journal, ...)

    @property
    def format_rate(self) -> float:
        """Share of model turns whose output followed the scaffold's format."""
        return sum(t.format_ok for t in self.turns) / len(self.turns) if self.turns else 0.0


class Grade(BaseModel):
    """A graded submission: MLE-bench report fields plus HumanRank.

    An invalid or missing submission is a ``Grade`` with ``valid_submission=False`` and a
    ``reason``. ``score`` is the task metric on the hidden answers; the ``*_threshold`` fields
    are the task's medal thresholds; ``gold_medal``, ``silver_medal``, ``bronze_medal`` (each
    exclusive: the best one reached), ``any_medal``, ``above_median`` and ``at_or_above_median``
    follow MLE-bench's rules; ``human_rank`` is the share of the human leaderboard the score
    beats (MLE-Dojo), ``None`` without a leaderboard; :attr:`tier` names the best tier.
    """

    task_id: str = ""
    score: float | None = None  # rounded to 5 decimals, as MLE-bench reports it
    raw_score: float | None = None  # the metric's value before rounding (HumanRank ranks this one)
    valid_submission: bool = False
    submission_exists: bool = False
    reason: str | None = None  # why the submission is invalid
    is_lower_better: bool | None = None
    gold_threshold: float | None = None
    silver_threshold: float | None = None
    bronze_threshold: float | None = None
    median_threshold: float | None = None
    above_median: bool = False
    at_or_above_median: bool = False  # SandMLE's reward counts equality as reaching the median
    gold_medal: bool = False
    silver_medal: bool = False
    bronze_medal: bool = False
    any_medal: bool = False
    beats_sample_submission: bool | None = None
    human_rank: float | None = None

    @property
    def unrounded_score(self) -> float | None:
        """The metric's value as computed (``raw_score``), else ``score``: for rules that compare
        raw floats (SandMLE's release reward, MLE-Dojo's position score)."""
        return self.raw_score if self.raw_score is not None else self.score

    @property
    def tier(self) -> str:
        """Best tier reached: gold, silver, bronze, median, valid or invalid."""
        if not self.valid_submission:
            return "invalid"
        for name in ("gold", "silver", "bronze"):
            if getattr(self, f"{name}_medal"):
                return name
        return "median" if self.at_or_above_median else "valid"


class RewardBreakdown(BaseModel):
    """A reward total and its named parts (same keys for every trajectory of one reward)."""

    total: float
    """The scalar reward."""
    parts: dict[str, float]
    """Points per milestone, keyed by the reward's ``keys`` in their order."""
