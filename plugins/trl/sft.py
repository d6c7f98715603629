"""``sft``: supervised fine-tuning on saved trajectories with assistant-only loss masks.

Plain ``transformers.Trainer`` on pre-tokenised rows (``labels`` = -100 off the mask): TRL's
``SFTTrainer`` would need a chat template with generation tags for its assistant-only loss, which
SmolLM2's has not, and it adds nothing else here.
"""

from __future__ import annotations

from pathlib import Path

from typing import Literal

from pydantic import Field, model_validator

from sandmle.core.interfaces import ComponentConfig, Trainer, TrainResult
from sandmle.training.config import LoraSettings, LrScheduler, default_lr


class CollectSettings(ComponentConfig):
    """Make the SFT data first: roll out ``policy`` on the recipe's train tasks in its train
    scaffold and keep the episodes that pass ``filter`` (what ``sandmle eval`` + ``sandmle
    trajectories export`` would do, in one step)."""

    policy: str = Field("baseline", description="a registered backend (the teacher)")
    policy_args: dict = Field(default_factory=dict, description="the teacher's config, e.g. {style: short}")
    filter: Literal["all", "valid", "above_median", "medal"] = "valid"
    heldout: float = Field(0.2, ge=0, lt=1, description="fraction of tasks held out")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    concurrency: int = Field(2, ge=1)


class SftConfig(ComponentConfig):
    """SFT data and optimisation (steps come from ``train.max_steps``). Give ``data`` (an export)
    or ``collect`` (make it from the recipe's tasks)."""

    data: Path | None = Field(None, description="SFT JSONL from `sandmle trajectories export`")
    collect: CollectSettings | None = None
    heldout_data: Path | None = Field(None, description="default: DATA's .heldout.jsonl when it exists")
    lr: float | None = Field(None, gt=0, description="default by parameterisation: 2e-5 full fine-tuning, "
                             "2e-4 with LoRA (see sandmle.training.config.DEFAULT_LR)")
    lr_scheduler: LrScheduler = "constant_with_warmup"
    micro_batch: int = Field(1, ge=1)
    grad_accum: int = Field(4, ge=1, description="sequences per step = micro_batch x grad_accum")
    max_length: int = Field(4096, ge=16, description="tokens per sequence (longer ones are cut at the end)")
    warmup_steps: int = Field(0, ge=0, description="optimizer steps of linear warmup from 0 to lr")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    eval_every: int | None = Field(None, ge=1, description="held-out loss every N steps (default: at the end)")
    gradient_checkpointing: bool = False
    lora: LoraSettings | None = None

    @property
    def learning_rate(self) -> float:
        """``lr``, or the documented default for this parameterisation (LoRA or full)."""
        return self.lr if self.lr is not None else default_lr("sft", self.lora is not None)

    @model_validator(mode="after")
    def _one_data_source(self) -> "SftConfig":
        if (self.data is None) == (self.collect is None):
            raise ValueError("give exactly one of 'data' (an SFT JSONL) or 'collect' (roll out a teacher)")
        return self


def collect_sft_data(settings: CollectSettings, job) -> Path:  # noqa: ANN001 - TrainJob
    """Roll out the teacher on the job's tasks, save the episodes, export ``OUT/sft.jsonl``.

    Episodes already saved under ``OUT/collected/`` are reused, so a rerun does not redo them.
    """
    import asyncio
    import json

    from sandmle.training.rollout import run_episodes
    from sandmle.training.sft_data import export_sft_data

    folder = job.out / "collected"
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(t, s) for t in job.require_tasks() for s in settings.seeds
            if not (folder / f"{t.id}.s{s}.jsonl").is_file()]
    if todo:
        teacher = job.registry.create("backends", settings.policy, settings.policy_args)
        job.console.print(f"collecting SFT data: {settings.policy} on {len(todo)} episodes "
                          f"in {job.recipe.train_scaffold().label}")
        sandbox = job.sandbox()

        async def go():  # noqa: ANN202
            try:
                return await run_episodes(todo, scaffold=job.scaffold(), backends=[teacher] * len(todo),
                                          sandbox=sandbox, grader=job.grader(), reward=job.reward(),
                                          concurrency=settings.concurrency)
            finally:
                await sandbox.shutdown()
                await teacher.aclose()

        for outcome in asyncio.run(go()):
            if outcome.trajectory is not None:
                record = outcome.record()
                record["episode"]["scaffold"] = job.recipe.train_scaffold().name
                record["episode"]["policy"] = settings.policy
                path = folder / f"{outcome.task.id}.s{outcome.seed}.jsonl"
                path.write_text(json.dumps(record, default=str) + "\n", encoding="utf-8")
    out = job.out / "sft.jsonl"
    summary = export_sft_data([folder], settings.filter, out, heldout=settings.heldout, seed=job.seed)
    job.console.print(f"SFT data: {summary.kept} of {summary.episodes} episodes pass --filter {settings.filter}: "
                      f"{summary.train} for training, {summary.heldout} held out -> {out}")
    return out


class SftTrainer(Trainer):
    """Fine-tunes the policy's model on the assistant replies of exported transcripts."""

    def __init__(self, config: SftConfig):
        self.config = config

    def train(self, recipe, tasks) -> TrainResult:  # noqa: ANN001 - Trainer contract
        return run_sft(self.config, recipe, tasks)


def make_sft(config: SftConfig) -> SftTrainer:
    """Registry factory for ``sft``."""
    return SftTrainer(config)


def _examples(tokenizer, rows, stop_ids, max_length):  # noqa: ANN001, ANN202 - internal
    from sandmle.training.chat import transcript_sequence

    out = []
    for row in rows:
        try:
            seq = transcript_sequence(tokenizer, row["messages"], stop_ids)
        except ValueError:
            continue  # no assistant reply: nothing to learn
        ids, mask = seq.ids[:max_length], seq.full_mask[:max_length]
        if any(mask):
            out.append({"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]})
    return out


def run_sft(config: SftConfig, recipe, tasks) -> TrainResult:  # noqa: ANN001 - Trainer contract
    """Fine-tune the policy on ``config.data`` (assistant tokens only), checkpointing and resuming."""
    from sandmle.core.errors import SandmleError
    from sandmle.core.registry import require
    from sandmle.training.chat import stop_token_ids
    from sandmle.training.job import TrainJob
    from sandmle.training.progress import TrainProgress
    from sandmle.training.sft_data import heldout_path_for, read_sft_data

    from .common import ProgressCallbackFactory, hf_common_args, load_policy, lora_config, run_hf_trainer

    torch = require("torch", "trl", "sft trainer")
    transformers = require("transformers", "trl", "sft trainer")
    job = TrainJob.create(recipe, tasks)
    resume = job.prepare_output()
    data = config.data if config.data is not None else collect_sft_data(config.collect, job)
    model, tokenizer = load_policy(job)
    stop_ids = stop_token_ids(tokenizer, model.generation_config)
    train_rows = _examples(tokenizer, read_sft_data(data), stop_ids, config.max_length)
    if not train_rows:
        raise SandmleError(f"{data}: no transcript has an assistant reply within the first "
                           f"{config.max_length} tokens (raise max_length?)")
    heldout_file = config.heldout_data or heldout_path_for(data)
    heldout_rows = _examples(tokenizer, read_sft_data(heldout_file), stop_ids, config.max_length) \
        if Path(heldout_file).is_file() and Path(heldout_file).stat().st_size else []
    if config.lora is not None:
        model = require("peft", "trl", "LoRA training").get_peft_model(model, lora_config(config.lora))
    pad = tokenizer.pad_token_id

    def collate(batch):  # noqa: ANN001, ANN202 - right-padded ids, labels -100 off the mask
        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n], labels[i, :n], attn[i, :n] = torch.tensor(b["input_ids"]), torch.tensor(b["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": attn}

    device = job.policy_config.device
    evaluate = bool(heldout_rows and config.eval_every)
    args = transformers.TrainingArguments(
        **hf_common_args(job, device=device, scheduler=config.lr_scheduler, warmup_steps=config.warmup_steps),
        per_device_train_batch_size=config.micro_batch,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm,
        gradient_checkpointing=config.gradient_checkpointing, remove_unused_columns=False,
        eval_strategy="steps" if evaluate else "no", eval_steps=config.eval_every, per_device_eval_batch_size=1)
    mean_tokens = sum(len(r["input_ids"]) for r in train_rows) / len(train_rows)
    initial = int(resume.name.split("-")[-1]) if resume else 0
    progress = TrainProgress(job.out, job.section.max_steps, initial_step=initial, console=job.console, title="sft")
    callback = ProgressCallbackFactory(
        job, progress, tokens_of_step=lambda _step: int(mean_tokens * config.micro_batch * config.grad_accum)).build()
    trainer = transformers.Trainer(model=model, args=args, train_dataset=train_rows,
                                   eval_dataset=heldout_rows or None, data_collator=collate,
                                   processing_class=tokenizer, callbacks=[callback])
    job.write_info(train_examples=len(train_rows), heldout_examples=len(heldout_rows))
    extra: dict = {"train_examples": len(train_rows), "heldout_examples": len(heldout_rows)}
    result = run_hf_trainer(job, trainer, model, tokenizer, resume, progress, extra)
    if heldout_rows:
        result.metrics["heldout_loss"] = float(trainer.evaluate(heldout_rows)["eval_loss"])
    return result
